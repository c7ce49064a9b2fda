//! Request signing of the Kaspi Pay POS protocol, as pure functions.
//!
//! - `X-Kb-TokenSnMac`: an OCRA-style time-based code over the session's `token_sn`,
//!   keyed with the session's `vtoken_secret` (30-second steps).
//! - `X-Sign`: ECDSA P-256 (SHA-256) over the SHA-256 digest of a canonical string built from
//!   the URL, the headers named in `X-SH` and the body.
//! - `X-SU`: MD5 of the lower-cased URL.
//! - the vtoken secret: the raw ECDH P-256 shared secret (x coordinate), no KDF.
//!
//! Both the client and the simulator use these functions; the unit tests pin them to
//! `shared/kaspi/vectors.json`, computed with an independent implementation.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
use p256::{PublicKey, SecretKey};
use sha2::Sha256;

/// The OCRA suite name that starts the MAC message.
pub const OCRA_SUITE: &[u8] = b"OCRA-1:HOTP-SHA256-6:QH64-T1M";
/// Length of one MAC time step.
pub const TIME_STEP_MS: i64 = 30_000;

/// Signed header list of a qrpay request.
pub const QRPAY_SIGNED: &str = "url,X-Install-ID,X-PI,X-App-Bld,X-Platform-Ver,X-Locale,X-App-Ver,X-Device-ID,X-SV,X-Time,X-Platform-Type,X-Call,X-Kb-TokenSnMac,X-Kb-TokenSn";
/// Signed header list of an mtoken request before a profile id is known.
pub const MTOKEN_SIGNED: &str = "url,X-Kb-Client-Ip,X-Time,X-App-Ver,X-SV,X-Locale,X-App-Bld,X-Install-ID,X-Kb-TokenSn,X-S,X-Kb-TokenSnMac,X-Call";
/// Signed header list of an mtoken request once a profile id is known.
pub const MTOKEN_SIGNED_WITH_PROFILE: &str = "url,X-Kb-Client-Ip,X-App-Bld,X-S,X-Kb-TokenSn,X-Time,X-App-Ver,X-Kb-TokenSnMac,X-Call,X-PI,X-Install-ID,X-Locale,X-SV";
/// Signed header list of the login `finish` request.
pub const FINISH_SIGNED: &str =
    "url,X-Time-Zone,X-Request-ID,X-Net-Type,X-Emulator,X-Call,X-Platform-Type,X-Locale,X-Time,X-SV";

/// The MAC time step of a moment.
pub fn time_step(unix_ms: i64) -> u64 {
    // Negative times do not occur in practice; clamp rather than wrap.
    u64::try_from(unix_ms.div_euclid(TIME_STEP_MS)).unwrap_or(0)
}

/// `X-Kb-TokenSnMac` at a moment. With no secret the code is `000000`.
pub fn token_sn_mac(token_sn: &str, secret: &[u8], unix_ms: i64) -> String {
    token_sn_mac_at_step(token_sn, secret, time_step(unix_ms))
}

/// `X-Kb-TokenSnMac` for one time step (the simulator checks neighbouring steps).
pub fn token_sn_mac_at_step(token_sn: &str, secret: &[u8], step: u64) -> String {
    if secret.is_empty() {
        return "000000".to_owned();
    }
    let mut q = hex::encode(token_sn.as_bytes());
    q.truncate(64);
    let mut q_bytes = hex::decode(&q).unwrap_or_default();
    q_bytes.resize(128, 0);

    let mut mac = <Hmac<Sha256>>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(OCRA_SUITE);
    mac.update(&[0]);
    mac.update(&q_bytes);
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();

    let offset = usize::from(digest[31] & 0x0f);
    let word = u32::from_be_bytes([
        digest[offset],
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]) & 0x7fff_ffff;
    format!("{:06}", word % 1_000_000)
}

/// `X-SU`: MD5 hex of the lower-cased URL.
pub fn x_su(url: &str) -> String {
    hex::encode(Md5::digest(url.to_lowercase().as_bytes()))
}

/// MD5 hex of a string (`pkTag` is the MD5 of the `pk` string).
pub fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

/// The canonical string that `X-Sign` signs.
///
/// `header` looks a header up by the name written in `signed_list` (empty when absent).
pub fn canonical_string<'a>(
    url: &str,
    signed_list: &str,
    header: impl Fn(&str) -> Option<&'a str>,
    body: Option<&[u8]>,
) -> Vec<u8> {
    let lines: Vec<String> = signed_list
        .split(',')
        .map(|name| {
            if name == "url" {
                format!("url:{}", url.to_lowercase())
            } else {
                format!("{}:{}", name.to_lowercase(), header(name).unwrap_or(""))
            }
        })
        .collect();
    let mut out = lines.join("\n").into_bytes();
    if let Some(body) = body {
        out.push(b'\n');
        out.extend_from_slice(body);
    }
    out
}

/// SHA-256 digest of bytes.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// `X-Sign`: base64 DER ECDSA-SHA256 signature over the SHA-256 digest of `canonical`.
pub fn x_sign(key: &SigningKey, canonical: &[u8]) -> String {
    sign_bytes(key, &sha256(canonical))
}

/// Checks an `X-Sign` value against a canonical string.
pub fn verify_x_sign(key: &VerifyingKey, canonical: &[u8], x_sign_b64: &str) -> bool {
    verify_bytes(key, &sha256(canonical), x_sign_b64)
}

/// Base64 DER ECDSA-SHA256 signature over `data` (ECDSA hashes `data` itself).
pub fn sign_bytes(key: &SigningKey, data: &[u8]) -> String {
    let signature: Signature = key.sign(data);
    B64.encode(signature.to_der().as_bytes())
}

/// Checks a base64 DER ECDSA-SHA256 signature over `data`.
pub fn verify_bytes(key: &VerifyingKey, data: &[u8], signature_b64: &str) -> bool {
    let Ok(der) = B64.decode(signature_b64.trim()) else {
        return false;
    };
    let Ok(signature) = Signature::from_der(&der) else {
        return false;
    };
    key.verify(data, &signature).is_ok()
}

/// An ECDH key's public half as base64 SPKI DER (the `x509` fields of the protocol).
pub fn public_x509_b64(public: &PublicKey) -> String {
    let der = public
        .to_public_key_der()
        .expect("a P-256 public key always encodes as SPKI");
    B64.encode(der.as_bytes())
}

/// Parses a base64 SPKI DER P-256 public key.
pub fn public_from_x509_b64(x509_b64: &str) -> Option<PublicKey> {
    let der = B64.decode(x509_b64.trim()).ok()?;
    PublicKey::from_public_key_der(&der).ok()
}

/// The vtoken secret: raw ECDH shared secret (x coordinate, 32 bytes) of our key and theirs.
pub fn ecdh_secret(ours: &SecretKey, theirs: &PublicKey) -> [u8; 32] {
    let shared = p256::ecdh::diffie_hellman(ours.to_nonzero_scalar(), theirs.as_affine());
    let mut out = [0u8; 32];
    out.copy_from_slice(shared.raw_secret_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{secret_key_from_pkcs8_b64, DeviceIdentity};
    use serde_json::Value;

    /// The vectors are read from the shared folder; a missing file fails the test.
    fn vectors() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/kaspi/vectors.json"
        );
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("test vectors must exist at {path}: {e}"));
        serde_json::from_str(&text).expect("vectors.json is JSON")
    }

    fn s<'a>(v: &'a Value, key: &str) -> &'a str {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} is a string"))
    }

    #[test]
    fn token_sn_mac_matches_every_vector() {
        let v = vectors();
        let cases = v["token_sn_mac"].as_array().expect("array");
        assert!(!cases.is_empty());
        for case in cases {
            let secret = hex::decode(s(case, "secret_hex")).expect("hex");
            let unix_ms = case["unix_ms"].as_i64().expect("unix_ms");
            assert_eq!(
                time_step(unix_ms),
                case["time_step"].as_u64().expect("step")
            );
            assert_eq!(
                token_sn_mac(s(case, "token_sn"), &secret, unix_ms),
                s(case, "code"),
                "case {case}"
            );
        }
    }

    #[test]
    fn x_su_matches_every_vector() {
        let v = vectors();
        let cases = v["x_su"].as_array().expect("array");
        assert!(!cases.is_empty());
        for case in cases {
            assert_eq!(x_su(s(case, "url")), s(case, "md5_hex"));
        }
    }

    #[test]
    fn device_vector_gives_pk_and_pk_tag() {
        let v = vectors();
        let d = &v["device"];
        let key = secret_key_from_pkcs8_b64(s(d, "private_key_pkcs8_der_b64")).expect("key");
        let device = DeviceIdentity::from_parts("D".into(), "I".into(), "P".into(), key);
        assert_eq!(device.pk(), s(d, "pk_uncompressed_b64"));
        assert_eq!(device.pk_tag(), s(d, "pk_tag_md5_hex"));
        assert_eq!(device.x509(), s(d, "public_key_spki_der_b64"));
    }

    fn check_x_sign_case(v: &Value, case: &Value, headers: &Value, body: Option<&str>) {
        let canonical = canonical_string(
            s(case, "url"),
            s(&v["x_sign"], "x_sh"),
            |name| headers[name].as_str(),
            body.map(str::as_bytes),
        );
        assert_eq!(
            String::from_utf8_lossy(&canonical),
            s(case, "canonical_string")
        );
        assert_eq!(
            hex::encode(sha256(&canonical)),
            s(case, "sha256_of_canonical_hex")
        );

        let key =
            secret_key_from_pkcs8_b64(s(&v["device"], "private_key_pkcs8_der_b64")).expect("key");
        let signing = SigningKey::from(&key);
        let verifying = VerifyingKey::from(&signing);
        // The vector's own signature, made by the other implementation, verifies here...
        assert!(verify_x_sign(&verifying, &canonical, s(case, "x_sign_b64")));
        // ...ours verifies too, and a changed canonical string does not.
        let ours = x_sign(&signing, &canonical);
        assert!(verify_x_sign(&verifying, &canonical, &ours));
        let mut tampered = canonical.clone();
        tampered.push(b'x');
        assert!(!verify_x_sign(&verifying, &tampered, &ours));
        assert!(!verify_x_sign(&verifying, &tampered, s(case, "x_sign_b64")));
    }

    #[test]
    fn x_sign_with_body_matches_vector() {
        let v = vectors();
        let case = &v["x_sign"];
        check_x_sign_case(&v, case, &case["headers"], Some(s(case, "body")));
    }

    #[test]
    fn x_sign_without_body_matches_vector() {
        let v = vectors();
        check_x_sign_case(&v, &v["x_sign_no_body"], &v["x_sign"]["headers"], None);
    }

    #[test]
    fn ecdh_secret_matches_vector_from_both_sides_of_the_exchange() {
        let v = vectors();
        let e = &v["ecdh_vtoken"];
        let client = secret_key_from_pkcs8_b64(s(e, "client_private_pkcs8_der_b64")).expect("key");
        assert_eq!(
            public_x509_b64(&client.public_key()),
            s(e, "client_x509_b64")
        );
        let server = public_from_x509_b64(s(e, "server_x509_b64")).expect("server key");
        assert_eq!(
            hex::encode(ecdh_secret(&client, &server)),
            s(e, "shared_secret_hex")
        );
    }

    #[test]
    fn phone_normalization_matches_every_vector() {
        let v = vectors();
        let cases = v["phone_normalization"].as_array().expect("array");
        assert!(!cases.is_empty());
        for case in cases {
            let got = crate::phone::normalize(s(case, "input"));
            if case["error"].as_bool() == Some(true) {
                assert!(got.is_err(), "{case} must be refused, got {got:?}");
            } else {
                assert_eq!(got.expect("valid").as_str(), s(case, "normalized"));
            }
        }
    }
}
