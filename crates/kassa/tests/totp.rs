//! Two-factor sign-in (TOTP, RFC 6238) against a running gateway on a manual clock, on both
//! databases, over HTTP as a browser would (cookies and forms by hand):
//!
//! - enrolment shows the secret, its `otpauth://` URI and a QR code; a wrong code does not turn
//!   it on, a current one does and shows ten recovery codes once;
//! - sign-in with a password then asks for a code before any session exists; the code is
//!   computed here from the shown secret (HMAC-SHA-1 per RFC 6238, independent of the code
//!   under test), one step either side is accepted, a wrong or reused code is refused, a
//!   recovery code works once, and wrong codes count toward the lockout;
//! - turning it off takes a current code;
//! - an owner's "require two-factor" sends a user without it to enrolment and refuses
//!   everything else until then; only an owner may set it.

mod common;

use std::time::Duration;

use common::served::{Page, Visitor};
use common::Kassa;
use hmac::{Hmac, Mac};
use kassa::db::testing::TestDb;
use kassa::domain::Role;
use reqwest::StatusCode;
use sha1::Sha1;

const STEP: Duration = Duration::from_secs(30);

/// The audit entries of `action`: actor, target and details, as text.
async fn audited(kassa: &Kassa, action: &str) -> Vec<String> {
    let action = action.to_owned();
    kassa
        .state
        .db
        .read(move |tx| {
            let rows = tx.query(
                "SELECT actor, target, details FROM audit_log WHERE action = $1 ORDER BY id",
                &[action.into()],
            )?;
            rows.iter()
                .map(|r| -> Result<String, kassa::db::DbError> {
                    Ok(format!(
                        "{} {} {}",
                        r.text("actor")?,
                        r.text("target")?,
                        r.text("details")?
                    ))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .expect("audit entries")
}

/// No audit entry holds `secret` (base32 or raw hex) or any of `codes`.
async fn audit_holds_no_secret(kassa: &Kassa, secret: &[u8], codes: &[String]) {
    let all = audited_all(kassa).await;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let base32 = totp_rs::Secret::Raw(secret.to_vec())
        .to_encoded()
        .to_string();
    assert!(!all.is_empty());
    for entry in &all {
        assert!(!entry.contains(&hex) && !entry.contains(&base32), "{entry}");
        for code in codes {
            assert!(!entry.contains(code.as_str()), "{entry}");
            assert!(!entry.contains(&code.replace('-', "")), "{entry}");
        }
    }
}

async fn audited_all(kassa: &Kassa) -> Vec<String> {
    kassa
        .state
        .db
        .read(|tx| {
            let rows = tx.query("SELECT target, details FROM audit_log", &[])?;
            rows.iter()
                .map(|r| -> Result<String, kassa::db::DbError> {
                    Ok(format!("{} {}", r.text("target")?, r.text("details")?))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .expect("audit entries")
}
const PASSWORD: &str = "correct horse battery";

/// RFC 4648 base32 (no padding), as the page shows the secret.
fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut value, mut out) = (0u32, 0u64, Vec::new());
    for c in text.trim_end_matches('=').chars() {
        let digit = ALPHABET.find(c).expect("a base32 letter") as u64;
        value = (value << 5) | digit;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((value >> bits) as u8);
            value &= (1 << bits) - 1;
        }
    }
    out
}

/// The six-digit TOTP code of `secret` at unix milliseconds `at_ms` (RFC 6238 over RFC 4226's
/// HOTP: HMAC-SHA-1 of the big-endian step, dynamic truncation).
fn code_at(secret: &[u8], at_ms: i64) -> String {
    let step = (at_ms / 1000 / 30) as u64;
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("any key length");
    mac.update(&step.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[19] & 0x0f);
    let number = u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]);
    format!("{:06}", number % 1_000_000)
}

#[test]
fn the_test_computes_the_rfc_vectors() {
    // RFC 6238 appendix B, SHA-1, last six digits.
    let key = b"12345678901234567890";
    assert_eq!(code_at(key, 59_000), "287082");
    assert_eq!(code_at(key, 1_111_111_109_000), "081804");
    assert_eq!(code_at(key, 2_000_000_000_000), "279037");
    assert_eq!(base32_decode("GEZDGNBVGY3TQOJQ"), b"1234567890");
}

/// A user of `org` with a password.
async fn user(kassa: &Kassa, org: i64, email: &str, role: Role) {
    let hash = kassa::dashboard::hash_password(PASSWORD).expect("hash");
    kassa
        .store()
        .users()
        .create_user(org, email, Some(&hash), role)
        .await
        .expect("user");
}

/// Enrols the signed-in `visitor`: the secret shown, checked in its URI and QR code; a wrong
/// code refused; then turned on. The secret and the recovery codes.
async fn enrol(kassa: &Kassa, visitor: &mut Visitor) -> (Vec<u8>, Vec<String>) {
    let page = visitor.get("/dashboard/security").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"tfa-start\""), "{}", page.body);
    let started = visitor
        .submit("/dashboard/security", "/dashboard/security/totp/start", &[])
        .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER);
    let page = visitor.get("/dashboard/security").await;
    let shown = page.between("id=\"tfa-secret\">", "<");
    let uri = page
        .between("id=\"tfa-uri\">", "<")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&");
    assert!(
        uri.starts_with("otpauth://totp/Kassa:") && uri.contains(&format!("secret={shown}")),
        "{uri}"
    );
    assert!(uri.contains("issuer=Kassa"), "{uri}");
    assert!(page.between("id=\"tfa-qr\">", "</div>").contains("<svg"));
    let secret = base32_decode(&shown);
    assert_eq!(secret.len(), 20);

    let now = kassa.store().now_ms();
    let wrong = format!(
        "{:06}",
        (code_at(&secret, now).parse::<u32>().expect("digits") + 1) % 1_000_000
    );
    let form = [("code", wrong.as_str())];
    let refused = visitor
        .submit(
            "/dashboard/security",
            "/dashboard/security/totp/confirm",
            &form,
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("data-field=\"code\""));
    let code = code_at(&secret, now);
    let form = [("code", code.as_str())];
    let enabled = visitor
        .submit(
            "/dashboard/security",
            "/dashboard/security/totp/confirm",
            &form,
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK);
    assert!(enabled.body.contains("data-enabled=\"1\""));
    let codes: Vec<String> = enabled
        .between("id=\"recovery-codes\">", "</ul>")
        .split("<code>")
        .skip(1)
        .map(|c| c.split('<').next().expect("code").to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{codes:?}");
    // Shown once: the page again lists none.
    let again = visitor.get("/dashboard/security").await;
    assert!(!again.body.contains(&codes[0]));
    assert!(again.body.contains("id=\"codes-left\">10<"));
    (secret, codes)
}

/// Signs out, signs in with the password: the code form, and no session yet.
async fn first_factor(visitor: &mut Visitor, email: &str) {
    if visitor.has_cookie("kassa_session") {
        let out = visitor
            .submit("/dashboard/security", "/dashboard/logout", &[])
            .await;
        assert_eq!(out.status, StatusCode::SEE_OTHER);
    }
    let answer = visitor.sign_in(email, PASSWORD).await;
    assert_eq!(
        answer.location.as_deref(),
        Some("/dashboard/login/two-factor")
    );
    assert!(!visitor.has_cookie("kassa_session"));
    let home = visitor.get("/dashboard/invoices").await;
    assert_eq!(
        home.status,
        StatusCode::SEE_OTHER,
        "no session before the code"
    );
}

/// Sends `code` on the code form; the answer.
async fn second_factor(visitor: &mut Visitor, code: &str) -> Page {
    let path = "/dashboard/login/two-factor";
    visitor.submit(path, path, &[("code", code)]).await
}

async fn enrol_and_sign_in(test: TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (kassa, org, _) = Kassa::stepped_demo(&test, dir.path()).await;
    let base = format!("http://{}", kassa.addr);
    let email = "owner@example.com";
    user(&kassa, org, email, Role::Owner).await;
    let mut visitor = Visitor::new(&base);
    let signed = visitor.sign_in(email, PASSWORD).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER);
    assert!(visitor.has_cookie("kassa_session"), "no two-factor yet");
    let (secret, codes) = enrol(&kassa, &mut visitor).await;
    let enabled = audited(&kassa, "two_factor.enabled").await;
    assert_eq!(enabled.len(), 1, "{enabled:?}");
    assert!(
        enabled[0].starts_with("owner@example.com user:owner@example.com"),
        "{enabled:?}"
    );

    // The code that confirmed enrolment is of this step: not accepted again.
    first_factor(&mut visitor, email).await;
    let now = kassa.store().now_ms();
    let refused = second_factor(&mut visitor, &code_at(&secret, now)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "a reused code");
    assert!(!visitor.has_cookie("kassa_session"));
    // The next step's code (a clock a little behind the phone's) is.
    let next = code_at(&secret, now + 30_000);
    let signed = second_factor(&mut visitor, &next).await;
    assert_eq!(signed.location.as_deref(), Some("/dashboard/invoices"));
    assert!(visitor.has_cookie("kassa_session"));
    assert_eq!(
        visitor.get("/dashboard/invoices").await.status,
        StatusCode::OK
    );

    // A code used once is refused on the next sign-in; a later step's works.
    first_factor(&mut visitor, email).await;
    let reused = second_factor(&mut visitor, &next).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    kassa.state.clock.advance(STEP * 2);
    let later = code_at(&secret, kassa.store().now_ms());
    let signed = second_factor(&mut visitor, &later).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER);

    // A recovery code works once (typed in capitals, with spaces), then never again.
    first_factor(&mut visitor, email).await;
    let typed = codes[3].to_uppercase().replace('-', " ");
    assert_eq!(
        second_factor(&mut visitor, &typed).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(visitor
        .get("/dashboard/security")
        .await
        .body
        .contains("id=\"codes-left\">9<"));
    first_factor(&mut visitor, email).await;
    let again = second_factor(&mut visitor, &codes[3]).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(again.body.contains("id=\"login-note\""));

    // Wrong codes count toward the lockout: after five, even a right code is refused, and so
    // is the password, until the lock ends.
    // (One wrong so far: the reused recovery code.)
    let current = code_at(&secret, kassa.store().now_ms());
    let wrongs = ["000000", "999999", "zzzzz-zzzzz", "123456", "654321"];
    for wrong in wrongs.iter().filter(|w| **w != current).take(4) {
        let refused = second_factor(&mut visitor, wrong).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    }
    kassa.state.clock.advance(STEP * 2);
    let right = code_at(&secret, kassa.store().now_ms());
    let locked = second_factor(&mut visitor, &right).await;
    assert_eq!(locked.status, StatusCode::UNAUTHORIZED);
    assert!(!visitor.has_cookie("kassa_session"));
    let password = visitor.sign_in(email, PASSWORD).await;
    assert_eq!(password.status, StatusCode::UNAUTHORIZED, "locked out");
    kassa.state.clock.advance(Duration::from_secs(16 * 60));
    first_factor(&mut visitor, email).await;
    let code = code_at(&secret, kassa.store().now_ms());
    assert_eq!(
        second_factor(&mut visitor, &code).await.status,
        StatusCode::SEE_OTHER
    );

    // Turning it off takes a current code (not the one just used, nor a wrong one).
    let off = "/dashboard/security/totp/disable";
    let refused = visitor
        .submit("/dashboard/security", off, &[("code", &code)])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    kassa.state.clock.advance(STEP);
    let code = code_at(&secret, kassa.store().now_ms());
    let done = visitor
        .submit("/dashboard/security", off, &[("code", &code)])
        .await;
    assert_eq!(
        done.location.as_deref(),
        Some("/dashboard/security?done=tfa_disabled")
    );
    let page = visitor.get("/dashboard/security").await;
    assert!(page.body.contains("data-enabled=\"0\""));
    assert_eq!(audited(&kassa, "two_factor.disabled").await.len(), 1);
    audit_holds_no_secret(&kassa, &secret, &codes).await;
    let out = visitor
        .submit("/dashboard/security", "/dashboard/logout", &[])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let signed = visitor.sign_in(email, PASSWORD).await;
    assert_eq!(signed.location.as_deref(), Some("/dashboard/invoices"));
    assert!(visitor.has_cookie("kassa_session"));
}

on_both_databases!(enrolment_and_sign_in, enrol_and_sign_in);

async fn organization_requires_it(test: TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (kassa, org, _) = Kassa::stepped_demo(&test, dir.path()).await;
    let base = format!("http://{}", kassa.addr);
    user(&kassa, org, "boss@example.com", Role::Owner).await;
    user(&kassa, org, "clerk@example.com", Role::Viewer).await;
    user(&kassa, org, "admin@example.com", Role::Admin).await;

    // Only an owner sets the rule: not a viewer, not even an admin.
    let mut admin = Visitor::new(&base);
    admin.sign_in("admin@example.com", PASSWORD).await;
    let refused = admin
        .submit(
            "/dashboard/security",
            "/dashboard/security/require",
            &[("require", "1")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let mut clerk = Visitor::new(&base);
    clerk.sign_in("clerk@example.com", PASSWORD).await;
    let refused = clerk
        .submit(
            "/dashboard/security",
            "/dashboard/security/require",
            &[("require", "1")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(!kassa
        .store()
        .users()
        .org_requires_two_factor(org)
        .await
        .expect("read"));
    let mut boss = Visitor::new(&base);
    boss.sign_in("boss@example.com", PASSWORD).await;
    let set = boss
        .submit(
            "/dashboard/security",
            "/dashboard/security/require",
            &[("require", "1")],
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER);
    assert!(kassa
        .store()
        .users()
        .org_requires_two_factor(org)
        .await
        .expect("read"));

    // The clerk, signed in without two-factor, is sent to enrolment and can do nothing else.
    let sent = clerk.get("/dashboard/invoices").await;
    assert_eq!(sent.location.as_deref(), Some("/dashboard/security"));
    let page = clerk.get("/dashboard/security").await;
    assert!(page.body.contains("id=\"tfa-required\""));
    // The owner, also without it, is held the same way: not even an invoice is made.
    assert_eq!(
        boss.get("/dashboard/api-keys").await.location.as_deref(),
        Some("/dashboard/security")
    );
    let invoices = common::count(&kassa.state.db, "SELECT COUNT(*) AS n FROM invoices").await;
    let csrf = boss.get("/dashboard/security").await.csrf();
    let made = boss
        .post(
            "/dashboard/invoices/new",
            &[
                ("csrf_token", &csrf),
                ("phone_number", "87001234567"),
                ("amount", "100"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::FORBIDDEN);
    assert_eq!(
        common::count(&kassa.state.db, "SELECT COUNT(*) AS n FROM invoices").await,
        invoices
    );
    // A new sign-in lands there too.
    let mut fresh = Visitor::new(&base);
    fresh.sign_in("clerk@example.com", PASSWORD).await;
    let sent = fresh.get("/dashboard/").await;
    assert_eq!(sent.location.as_deref(), Some("/dashboard/security"));

    // A viewer may still enrol (their own sign-in), and then goes on as a viewer.
    enrol(&kassa, &mut clerk).await;
    assert_eq!(
        clerk.get("/dashboard/invoices").await.status,
        StatusCode::OK
    );
    // Turning the rule off frees the owner.
    let off = boss
        .submit("/dashboard/security", "/dashboard/security/require", &[])
        .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER);
    assert_eq!(boss.get("/dashboard/api-keys").await.status, StatusCode::OK);
}

on_both_databases!(organization_requirement, organization_requires_it);
