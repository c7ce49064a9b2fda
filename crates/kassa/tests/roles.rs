//! Roles of dashboard users, against a real `kassa serve` in sandbox mode on both databases:
//! each role signs in over HTTP and tries a representative page and form of each kind of
//! action; what the role may do works, what it may not is a 403 page that changed nothing.
//! Then the team's rules (nobody changes themselves, only owners touch owners, removal ends
//! sessions at once), and the team page in a real Chromium: invite, the invitation link in a
//! fresh browser, a password set, the role changed, the member removed.

mod common;

use std::time::Duration;

use common::browser;
use common::served::{Page, Served, Visitor};
use kassa::db::testing::TestDb;
use kassa::domain::Role;
use kassa::store::{StoreError, TeamChange, LAST_OWNER, ROLE_CHANGED};
use reqwest::StatusCode;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// The roles, in the order of the columns of [`MATRIX`].
const ROLES: [&str; 5] = ["owner", "admin", "developer", "operator", "viewer"];

/// Who may do what, as the issue states it (written out here, not read from the code).
const MATRIX: &[(&str, [bool; 5])] = &[
    ("create_invoice", [true, true, true, true, false]),
    ("cancel_invoice", [true, true, true, true, false]),
    ("refund_invoice", [true, true, true, true, false]),
    ("api_key", [true, true, true, false, false]),
    ("webhook", [true, true, true, false, false]),
    ("catalog", [true, true, true, false, false]),
    ("subscription", [true, true, true, false, false]),
    ("cashier", [true, true, false, false, false]),
    ("team_invite", [true, true, false, false, false]),
    ("team_change", [true, true, false, false, false]),
    ("team_remove", [true, true, false, false, false]),
];

/// A signed-in member of the `demo` organization and their session's CSRF token.
struct Member {
    role: &'static str,
    visitor: Visitor,
    csrf: String,
}

impl Member {
    /// Posts `form` with this session's CSRF token.
    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let mut form = form.to_vec();
        form.push(("csrf_token", &self.csrf));
        self.visitor.post(path, &form).await
    }
}

/// The sandbox API with a key of `demo`, to set the scene (invoices to cancel and refund).
struct Api<'a> {
    served: &'a Served,
    key: String,
    http: reqwest::Client,
}

impl Api<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, self.served.url(&format!("/api/v1{path}")))
            .header("X-API-Key", &self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.expect("API call");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    async fn status(&self, id: i64) -> String {
        self.call(reqwest::Method::GET, &format!("/invoices/{id}"), None)
            .await["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A pending invoice; paid too when `paid`.
    async fn invoice(&self, paid: bool) -> i64 {
        let made = self
            .call(
                reqwest::Method::POST,
                "/invoices",
                Some(
                    json!({"phone_number": "87001234567", "amount": 2000, "description": "roles"}),
                ),
            )
            .await;
        let id = made["id"].as_i64().unwrap_or_else(|| panic!("{made}"));
        common::wait_for(WAIT, || async {
            (self.status(id).await == "pending").then_some(())
        })
        .await
        .expect("the invoice is sent");
        if paid {
            self.call(
                reqwest::Method::POST,
                &format!("/sandbox/invoices/{id}/pay"),
                None,
            )
            .await;
            common::wait_for(WAIT, || async {
                (self.status(id).await == "paid").then_some(())
            })
            .await
            .expect("the invoice is paid");
        }
        id
    }
}

/// One attempt: the form `form` posted to `path`, and what `measure` (an SQL `… AS n`) counts
/// before and after.
struct Attempt<'a> {
    path: String,
    form: Vec<(&'a str, String)>,
    measure: String,
    /// The status of an allowed attempt.
    allowed: StatusCode,
}

async fn attempt(
    db: &kassa::db::Db,
    member: &mut Member,
    what: &str,
    allowed: bool,
    a: Attempt<'_>,
) {
    let before = common::count(db, &a.measure).await;
    let form: Vec<(&str, &str)> = a.form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = member.post(&a.path, &form).await;
    let who = format!("{} {what}", member.role);
    if allowed {
        assert_eq!(page.status, a.allowed, "{who}: {}", page.body);
        if a.allowed != StatusCode::UNPROCESSABLE_ENTITY {
            let changed = common::wait_for(WAIT, || async {
                (common::count(db, &a.measure).await == before + 1).then_some(())
            })
            .await;
            assert!(changed.is_some(), "{who}: nothing changed");
        }
    } else {
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{who}: {}", page.body);
        assert!(
            page.body.contains("id=\"forbidden\""),
            "{who}: {}",
            page.body
        );
        assert!(page.body.contains("Ничего не изменено"), "{who}");
        assert_eq!(
            common::count(db, &a.measure).await,
            before,
            "{who}: changed"
        );
    }
}

/// Signs in every role (the owner with the first start's link; the others made by the CLI).
async fn sign_in_all(served: &Served) -> Vec<Member> {
    let base = served.url("");
    let mut members = Vec::new();
    for role in ROLES {
        let mut visitor = Visitor::new(&base);
        if role == "owner" {
            let path = &served.first_link[served.first_link.find("/dashboard/").expect("path")..];
            assert_eq!(visitor.get(path).await.status, StatusCode::SEE_OTHER);
        } else {
            let email = format!("{role}@example.com");
            let listed = served.create_user("demo", &email, role, "a-long-password-1");
            assert!(listed.contains(&format!("{email} (id ")), "{listed}");
            let signed = visitor.sign_in(&email, "a-long-password-1").await;
            assert_eq!(
                signed.status,
                StatusCode::SEE_OTHER,
                "{role}: {}",
                signed.body
            );
        }
        let page = visitor.get("/dashboard/").await;
        assert_eq!(page.status, StatusCode::OK, "{role}");
        let csrf = page.csrf();
        members.push(Member {
            role,
            visitor,
            csrf,
        });
    }
    let list = served.cli(&["user", "list", "--org", "demo"], "");
    for role in ROLES {
        assert!(list.contains(role), "{role} listed: {list}");
    }
    members
}

/// The audit entries of `target` (`user:<email>`): `action actor details`, oldest first.
async fn audit_of(db: &kassa::db::Db, target: &str) -> Vec<String> {
    let target = target.to_owned();
    db.read(move |tx| {
        let rows = tx.query(
            "SELECT action, actor, details FROM audit_log WHERE target = $1 ORDER BY id",
            &[target.into()],
        )?;
        rows.iter()
            .map(|r| {
                Ok(format!(
                    "{} {} {}",
                    r.text("action")?,
                    r.text("actor")?,
                    r.text("details")?
                ))
            })
            .collect::<Result<Vec<_>, kassa::db::DbError>>()
    })
    .await
    .expect("audit entries")
}

/// The id of `email` among the dashboard users.
async fn user_id(db: &kassa::db::Db, email: &str) -> i64 {
    common::count(
        db,
        &format!("SELECT id AS n FROM dashboard_users WHERE email = '{email}'"),
    )
    .await
}

/// Each role against each kind of action, over HTTP.
async fn each_role(served: &Served, test: &TestDb) {
    let db = test.db();
    let key = served.cli(&["api-key", "create", "--org", "demo"], "");
    let api = Api {
        served,
        key: key.trim().to_owned(),
        http: reqwest::Client::new(),
    };
    let mut members = sign_in_all(served).await;

    for (i, member) in members.iter_mut().enumerate() {
        let may = |what: &str| {
            MATRIX
                .iter()
                .find(|(w, _)| *w == what)
                .expect("in the matrix")
                .1[i]
        };
        let role = member.role;

        // Every role reads every page, the team's included.
        for page in [
            "/dashboard/",
            "/dashboard/invoices",
            "/dashboard/api-keys",
            "/dashboard/webhooks",
            "/dashboard/catalog",
            "/dashboard/subscriptions",
            "/dashboard/cashier",
            "/dashboard/team",
        ] {
            let seen = member.visitor.get(page).await;
            assert_eq!(seen.status, StatusCode::OK, "{role} {page}: {}", seen.body);
        }
        // Pages show only the buttons the role may use.
        for (page, marker, what) in [
            (
                "/dashboard/invoices",
                "id=\"new-invoice\"",
                "create_invoice",
            ),
            ("/dashboard/api-keys", "id=\"key-form\"", "api_key"),
            ("/dashboard/webhooks", "id=\"webhook-form\"", "webhook"),
            ("/dashboard/catalog", "id=\"catalog-add-form\"", "catalog"),
            (
                "/dashboard/subscriptions",
                "id=\"new-subscription\"",
                "subscription",
            ),
            ("/dashboard/cashier", "id=\"connect-form\"", "cashier"),
            ("/dashboard/team", "id=\"invite-form\"", "team_invite"),
        ] {
            let seen = member.visitor.get(page).await;
            assert_eq!(
                seen.body.contains(marker),
                may(what),
                "{role} {page} shows {marker}"
            );
        }
        // A page that is a form needs the form's permission.
        let new_invoice = member.visitor.get("/dashboard/invoices/new").await;
        let expected = if may("create_invoice") {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(
            new_invoice.status, expected,
            "{role} /dashboard/invoices/new"
        );

        let pending = api.invoice(false).await;
        let paid = api.invoice(true).await;
        let shown = member
            .visitor
            .get(&format!("/dashboard/invoices/{pending}"))
            .await;
        assert_eq!(
            shown.body.contains("id=\"cancel-invoice\""),
            may("cancel_invoice"),
            "{role}"
        );
        let shown = member
            .visitor
            .get(&format!("/dashboard/invoices/{paid}"))
            .await;
        assert_eq!(
            shown.body.contains("id=\"refund-form\""),
            may("refund_invoice"),
            "{role}"
        );

        // Members for the team's forms to change and remove, made by the CLI.
        let (change_target, remove_target) = (
            format!("change-{role}@example.com"),
            format!("remove-{role}@example.com"),
        );
        for email in [&change_target, &remove_target] {
            served.create_user("demo", email, "viewer", "a-long-password-1");
        }
        let change_id = user_id(&db, &change_target).await;
        let remove_id = user_id(&db, &remove_target).await;

        let attempts = [
            ("create_invoice", Attempt {
                path: "/dashboard/invoices/new".into(),
                form: vec![("phone_number", "87001234567".into()), ("amount", "1500".into())],
                measure: "SELECT COUNT(*) AS n FROM invoices".into(),
                allowed: StatusCode::SEE_OTHER,
            }),
            ("cancel_invoice", Attempt {
                path: format!("/dashboard/invoices/{pending}/cancel"),
                form: vec![],
                measure: format!("SELECT COUNT(*) AS n FROM invoices WHERE id = {pending} AND status = 'cancelled'"),
                allowed: StatusCode::SEE_OTHER,
            }),
            ("refund_invoice", Attempt {
                path: format!("/dashboard/invoices/{paid}/refund"),
                form: vec![("amount", "500".into()), ("reason", "roles".into())],
                measure: format!("SELECT COUNT(*) AS n FROM refunds WHERE invoice_id = {paid}"),
                allowed: StatusCode::SEE_OTHER,
            }),
            ("api_key", Attempt {
                path: "/dashboard/api-keys".into(),
                form: vec![
                    ("name", format!("by {role}")),
                    ("scope", "invoices:write".into()),
                ],
                measure: "SELECT COUNT(*) AS n FROM api_keys".into(),
                allowed: StatusCode::OK,
            }),
            ("webhook", Attempt {
                path: "/dashboard/webhooks".into(),
                form: vec![("url", format!("http://127.0.0.1:9/{role}")), ("events", "invoice.status_changed".into())],
                measure: "SELECT COUNT(*) AS n FROM webhook_endpoints".into(),
                allowed: StatusCode::OK,
            }),
            ("catalog", Attempt {
                path: "/dashboard/catalog".into(),
                form: vec![("name", format!("Товар {role}")), ("selling_price", "990".into()), ("unit_id", "1".into())],
                measure: "SELECT COUNT(*) AS n FROM catalog_items".into(),
                allowed: StatusCode::SEE_OTHER,
            }),
            ("subscription", Attempt {
                path: "/dashboard/subscriptions/new".into(),
                form: vec![("phone_number", "87001234568".into()), ("amount", "700".into()), ("billing_period", "monthly".into())],
                measure: "SELECT COUNT(*) AS n FROM subscriptions".into(),
                allowed: StatusCode::SEE_OTHER,
            }),
            // Connecting a cashier with a bad phone: allowed reaches the form's check (422),
            // and no role starts a login either way.
            ("cashier", Attempt {
                path: "/dashboard/cashier/connect".into(),
                form: vec![("phone_number", "12".into())],
                measure: "SELECT COUNT(*) AS n FROM terminals".into(),
                allowed: StatusCode::UNPROCESSABLE_ENTITY,
            }),
            ("team_invite", Attempt {
                path: "/dashboard/team/invite".into(),
                form: vec![("email", format!("invited-by-{role}@example.com")), ("role", "operator".into())],
                measure: "SELECT COUNT(*) AS n FROM dashboard_users".into(),
                allowed: StatusCode::OK,
            }),
            ("team_change", Attempt {
                path: format!("/dashboard/team/{change_id}/role"),
                form: vec![("role", "developer".into())],
                measure: format!("SELECT COUNT(*) AS n FROM dashboard_users WHERE id = {change_id} AND role = 'developer'"),
                allowed: StatusCode::SEE_OTHER,
            }),
            ("team_remove", Attempt {
                path: format!("/dashboard/team/{remove_id}/remove"),
                form: vec![],
                measure: format!("SELECT COUNT(*) AS n FROM dashboard_users WHERE id = {remove_id} AND disabled_at IS NOT NULL"),
                allowed: StatusCode::SEE_OTHER,
            }),
        ];
        assert_eq!(attempts.len(), MATRIX.len());
        for (what, a) in attempts {
            attempt(&db, member, what, may(what), a).await;
        }
        // A refused form's page is the dashboard's, in the user's language.
        if !may("team_invite") {
            member
                .visitor
                .get("/dashboard/lang/en?back=/dashboard/")
                .await;
            let refused = member
                .post(
                    "/dashboard/team/invite",
                    &[("email", "x@example.com"), ("role", "viewer")],
                )
                .await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN);
            assert!(
                refused.body.contains("Your role does not allow this"),
                "{}",
                refused.body
            );
            assert!(
                refused.body.contains("href=\"/dashboard/team\""),
                "the navigation"
            );
            member
                .visitor
                .get("/dashboard/lang/ru?back=/dashboard/")
                .await;
        }
    }
    team_rules(&db, &mut members).await;
}

/// The team's rules beyond the permission: nobody changes themselves, only an owner touches
/// an owner or grants the role, a removed member's session ends at once.
async fn team_rules(db: &kassa::db::Db, members: &mut [Member]) {
    let owner_id = user_id(db, "demo@example.com").await;
    let admin_id = user_id(db, "admin@example.com").await;
    let operator_id = user_id(db, "operator@example.com").await;
    let owners =
        "SELECT COUNT(*) AS n FROM dashboard_users WHERE role = 'owner' AND disabled_at IS NULL";
    let roles_now = "SELECT COUNT(*) AS n FROM dashboard_users WHERE role = 'admin'";
    let (owner, rest) = members.split_first_mut().expect("owner");
    let admin = &mut rest[0];

    // An admin may not touch an owner, make one, or invite one.
    let users_before = common::count(db, "SELECT COUNT(*) AS n FROM dashboard_users").await;
    for (path, form) in [
        (
            format!("/dashboard/team/{owner_id}/role"),
            vec![("role", "viewer")],
        ),
        (format!("/dashboard/team/{owner_id}/remove"), vec![]),
        (
            format!("/dashboard/team/{operator_id}/role"),
            vec![("role", "owner")],
        ),
        (
            "/dashboard/team/invite".to_owned(),
            vec![("email", "boss@example.com"), ("role", "owner")],
        ),
    ] {
        let refused = admin.post(&path, &form).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "admin {path}: {}",
            refused.body
        );
    }
    assert_eq!(common::count(db, owners).await, 1);
    assert_eq!(
        common::count(db, "SELECT COUNT(*) AS n FROM dashboard_users").await,
        users_before
    );
    assert_eq!(
        common::count(db, &format!("SELECT COUNT(*) AS n FROM dashboard_users WHERE id = {operator_id} AND role = 'operator'")).await,
        1
    );
    // An admin's page offers no owner and no controls on the owner's row.
    let page = admin.visitor.get("/dashboard/team").await;
    assert!(
        !page.body.contains("<option value=\"owner\""),
        "{}",
        page.body
    );
    assert!(!page.body.contains(&format!("id=\"remove-{owner_id}\"")));
    assert!(page.body.contains(&format!("id=\"remove-{operator_id}\"")));

    // Nobody changes their own role or removes themselves.
    let admins = common::count(db, roles_now).await;
    for (who, id) in [(&mut *owner, owner_id), (&mut *admin, admin_id)] {
        let refused = who
            .post(&format!("/dashboard/team/{id}/role"), &[("role", "viewer")])
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
        assert!(refused.body.contains("id=\"team-error\""));
        let refused = who.post(&format!("/dashboard/team/{id}/remove"), &[]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(common::count(db, owners).await, 1);
    assert_eq!(common::count(db, roles_now).await, admins);

    // An owner makes the admin an owner; then either may remove the other, not both: the
    // organization keeps an active owner.
    let made = owner
        .post(
            &format!("/dashboard/team/{admin_id}/role"),
            &[("role", "owner")],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    assert_eq!(common::count(db, owners).await, 2);
    let removed = admin
        .post(&format!("/dashboard/team/{owner_id}/remove"), &[])
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    assert_eq!(common::count(db, owners).await, 1);
    // The removed owner's session ended at once.
    let gone = owner.visitor.get("/dashboard/team").await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    // A removed member invited again comes back with the new role and a fresh link.
    let back = admin
        .post(
            "/dashboard/team/invite",
            &[("email", "demo@example.com"), ("role", "viewer")],
        )
        .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    assert!(back.body.contains("id=\"invite-link\""));
    let again = admin
        .post(
            "/dashboard/team/invite",
            &[("email", "demo@example.com"), ("role", "viewer")],
        )
        .await;
    assert_eq!(
        again.status,
        StatusCode::CONFLICT,
        "an active member is not invited twice"
    );
    let bad = admin
        .post(
            "/dashboard/team/invite",
            &[("email", "not-an-address"), ("role", "viewer")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("data-field=\"email\""));

    // The team's changes are in the audit log, by whom, with what changed; the refused ones
    // are not.
    assert_eq!(
        audit_of(db, "user:admin@example.com").await,
        [
            r#"user.created cli:USER {"role":"admin"}"#.replace("USER", &cli_user()),
            r#"user.role_changed demo@example.com {"from":"admin","to":"owner"}"#.to_owned(),
        ]
    );
    assert_eq!(
        audit_of(db, "user:demo@example.com").await,
        [
            r#"user.removed admin@example.com {"role":"owner"}"#,
            r#"user.invited admin@example.com {"returning":true,"role":"viewer"}"#,
        ]
    );
    // The store keeps an active owner whoever asks: the last one can be neither removed nor
    // demoted, and a change made on a stale role is refused.
    let store = kassa::store::Store::new(db.clone());
    let org = common::count(
        db,
        "SELECT org_id AS n FROM dashboard_users WHERE email = 'admin@example.com'",
    )
    .await;
    for change in [TeamChange::Remove, TeamChange::Role(Role::Viewer)] {
        let refused = store
            .users()
            .change_member(org, admin_id, Role::Owner, change)
            .await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(ref why)) if why == LAST_OWNER),
            "{refused:?}"
        );
    }
    let stale = store
        .users()
        .change_member(org, operator_id, Role::Viewer, TeamChange::Remove)
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict(ref why)) if why == ROLE_CHANGED),
        "{stale:?}"
    );
    assert_eq!(common::count(db, owners).await, 1);
    assert_eq!(
        common::count(db, &format!("SELECT COUNT(*) AS n FROM dashboard_users WHERE id = {operator_id} AND disabled_at IS NULL")).await,
        1
    );

    let forged = common::count(
        db,
        "SELECT COUNT(*) AS n FROM audit_log WHERE target = 'user:boss@example.com'",
    )
    .await;
    assert_eq!(forged, 0);
}

/// The host's user as the CLI's audit entries name it.
fn cli_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The team page in a real browser: invite, the link in a fresh browser, a password set,
/// the role changed, the member removed (their session ends).
async fn in_browser(served: &Served, test: &TestDb, screenshots: bool) {
    let Some(lead) = browser::start().await else {
        return;
    };
    let db = test.db();
    let link = served.cli(
        &[
            "user",
            "login-link",
            "--email",
            "admin@example.com",
            "--url",
            &served.url(""),
        ],
        "",
    );
    lead.goto(link.trim()).await;
    lead.goto(&served.url("/dashboard/team")).await;
    lead.wait_text("h1", "Команда", WAIT).await;
    lead.fill("#invite-form input[name=email]", "newcomer@example.com")
        .await;
    lead.client
        .find(fantoccini::Locator::Css("#invite-role"))
        .await
        .expect("role select")
        .select_by_value("operator")
        .await
        .expect("operator chosen");
    lead.click("#invite").await;
    lead.wait_text("#invite-link", "/dashboard/login/", WAIT)
        .await;
    let invite = lead.text("#invite-link").await;
    let id = user_id(&db, "newcomer@example.com").await;
    // At a phone's width the page fits: nothing sticks out sideways.
    if screenshots {
        lead.screenshots("team").await;
    }
    lead.set_size(browser::PHONE.0, browser::PHONE.1).await;
    let overflow = lead
        .client
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await
        .expect("measured");
    assert!(overflow.as_i64().is_some_and(|o| o <= 0), "{overflow}");
    lead.set_size(browser::DESKTOP.0, browser::DESKTOP.1).await;
    lead.wait_text(&format!("tr[data-id=\"{id}\"]"), "приглашён", WAIT)
        .await;

    // The invited person opens the link in their own browser and sets a password.
    let newcomer = browser::start().await.expect("a second browser");
    newcomer.goto(invite.trim()).await;
    assert_eq!(newcomer.current_path().await, "/dashboard/");
    newcomer.wait_text(".who", "оператор", WAIT).await;
    newcomer.click("#set-password").await;
    newcomer
        .fill("#password-form input[name=password]", "newcomer-password-1")
        .await;
    newcomer
        .fill("#password-form input[name=again]", "newcomer-password-1")
        .await;
    newcomer.click("#save-password").await;
    newcomer.wait_text(".flash", "Пароль сохранён", WAIT).await;
    assert!(newcomer
        .client
        .find(fantoccini::Locator::Css("#password-note"))
        .await
        .is_err());
    let hash = common::count(&db, &format!("SELECT COUNT(*) AS n FROM dashboard_users WHERE id = {id} AND password_hash IS NOT NULL")).await;
    assert_eq!(hash, 1);
    // Used once: the link no longer signs anyone in.
    let again = Visitor::new(&served.url(""))
        .get(&invite[invite.find("/dashboard/").expect("path")..])
        .await;
    assert_eq!(
        again.location.as_deref(),
        Some("/dashboard/login?note=link_used")
    );

    // The admin sees them active, makes them a developer, then removes them.
    lead.client.refresh().await.expect("reloaded");
    lead.wait_text(&format!("tr[data-id=\"{id}\"]"), "работает", WAIT)
        .await;
    lead.client
        .find(fantoccini::Locator::Css(&format!("#role-{id}")))
        .await
        .expect("role select")
        .select_by_value("developer")
        .await
        .expect("developer chosen");
    lead.click(&format!("#change-{id}")).await;
    lead.wait_text(".flash", "Роль изменена", WAIT).await;
    lead.wait_text(
        &format!("tr[data-id=\"{id}\"] .member-role"),
        "разработчик",
        WAIT,
    )
    .await;
    newcomer.client.refresh().await.expect("reloaded");
    newcomer.wait_text(".who", "разработчик", WAIT).await;
    lead.click(&format!("#remove-{id}")).await;
    lead.accept_confirm().await;
    lead.wait_text(".flash", "Участник удалён", WAIT).await;
    lead.wait_text(&format!("tr[data-id=\"{id}\"]"), "удалён", WAIT)
        .await;
    newcomer.goto(&served.url("/dashboard/team")).await;
    assert_eq!(newcomer.current_path().await, "/dashboard/login");
    // Each step is in the audit log, by whom it was done; no password, hash or link in it.
    let entries = audit_of(&db, "user:newcomer@example.com").await;
    assert_eq!(
        entries,
        [
            r#"user.invited admin@example.com {"returning":false,"role":"operator"}"#,
            r#"user.password_set newcomer@example.com {}"#,
            r#"user.role_changed admin@example.com {"from":"operator","to":"developer"}"#,
            r#"user.removed admin@example.com {"role":"developer"}"#,
        ]
    );
    let token = &invite[invite.rfind('/').expect("token") + 1..];
    let leaks = common::count(
        &db,
        &format!("SELECT COUNT(*) AS n FROM audit_log WHERE details LIKE '%newcomer-password%' OR details LIKE '%argon2%' OR details LIKE '%{token}%'"),
    )
    .await;
    assert_eq!(leaks, 0);
    newcomer.close().await;
    lead.close().await;
}

async fn roles(test: TestDb, screenshots: bool) {
    let served = Served::start(test.url()).await;
    each_role(&served, &test).await;
    in_browser(&served, &test, screenshots).await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    roles(TestDb::sqlite().await, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    roles(test, false).await;
}
