//! Webhook secrets and the three signature recipes a receiver can check.
//!
//! A secret is `whsec_` followed by the standard base64 of 32 random bytes, the form Standard
//! Webhooks libraries take as it is. One secret, shown once, serves all three recipes, each
//! using it the way its own documentation says:
//!
//! - ApiPay: `X-Webhook-Signature: sha256=<hex HMAC-SHA256(key, raw body)>` where the key is
//!   the secret text as UTF-8 bytes, whole (`whsec_…` included), exactly ApiPay's recipe
//!   `hmac.new(secret.encode(), payload, hashlib.sha256)`.
//! - xPayment: `X-xPayment-Signature: <hex HMAC-SHA256(key, raw body)>`, the same key.
//! - Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>`
//!   where the key is the base64-decoded part after `whsec_` (the 32 bytes), as the Standard
//!   Webhooks libraries decode it.
//!
//! While a rotated-out secret is still in its grace period, `webhook-signature` carries one
//! `v1,…` per secret, separated by spaces (newest first) as the Standard Webhooks spec allows;
//! the ApiPay and xPayment headers carry one signature, by the newest secret.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

use crate::store::WebhookFormat;

/// The prefix of every secret Kassa makes.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret: `whsec_` and base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", B64.encode(bytes))
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return [0; 32];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Hex HMAC-SHA256 of `body` keyed by the secret's text (ApiPay and xPayment).
pub fn hex_signature(secret: &str, body: &[u8]) -> String {
    hex::encode(hmac_sha256(secret.as_bytes(), &[body]))
}

/// The Standard Webhooks key of a secret: the bytes the base64 after `whsec_` stands for (a
/// secret not of that form is used as text).
pub fn standard_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|b64| B64.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// `v1,<base64>` over `{msg_id}.{timestamp}.{body}`.
pub fn standard_signature(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(
        &standard_key(secret),
        &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    format!("v1,{}", B64.encode(mac))
}

/// The headers that sign one attempt. `secrets` are the secrets signing now, newest first
/// (never empty); `timestamp` is unix seconds.
pub fn signature_headers(
    format: WebhookFormat,
    secrets: &[String],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("webhook-id", msg_id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
    ];
    let standard = secrets
        .iter()
        .map(|s| standard_signature(s, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ");
    headers.push(("webhook-signature", standard));
    if let Some(newest) = secrets.first() {
        match format {
            WebhookFormat::ApiPay => headers.push((
                "x-webhook-signature",
                format!("sha256={}", hex_signature(newest, body)),
            )),
            WebhookFormat::XPayment => {
                headers.push(("x-xpayment-signature", hex_signature(newest, body)));
            }
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_standard_form() {
        let secret = new_secret();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(standard_key(&secret).len(), 32);
        assert_ne!(new_secret(), secret);
    }

    /// The example of the Standard Webhooks specification.
    #[test]
    fn standard_webhooks_example_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            standard_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn rotation_signs_with_both_secrets() {
        let secrets = vec!["whsec_bmV3".to_owned(), "whsec_b2xk".to_owned()];
        let headers = signature_headers(WebhookFormat::XPayment, &secrets, "id", 1, b"{}");
        let sig = &headers
            .iter()
            .find(|(n, _)| *n == "webhook-signature")
            .expect("sig")
            .1;
        assert_eq!(sig.split(' ').count(), 2);
        let x = &headers
            .iter()
            .find(|(n, _)| *n == "x-xpayment-signature")
            .expect("x")
            .1;
        assert_eq!(x, &hex_signature("whsec_bmV3", b"{}"));
    }
}
