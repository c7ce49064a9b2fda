//! Request signing of the Kaspi Pay POS protocol, as pure functions.
//!
//! - `X-Kb-TokenSnMac`: an OCRA-style time-based code over the session's `token_sn`,
//!   keyed with the session's `vtoken_secret` (30-second steps).
//! - `X-Sign`: ECDSA P-256 (SHA-256) over the SHA-256 digest of a canonical string built from
//!   the URL, the headers named in `X-SH` and the body. Signing takes a [`SigningKeyPair`],
//!   checking a [`VerifyKey`]; both use `ring`, which is several times faster than the `p256`
//!   crate (still used for ECDH and for key generation and encoding).
//! - `X-SU`: MD5 of the lower-cased URL.
//! - the vtoken secret: the raw ECDH P-256 shared secret (x coordinate), no KDF.
//!
//! Both the client and the simulator use these functions; the unit tests pin them to
//! `shared/kaspi/vectors.json`, computed with an independent implementation.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
use p256::{PublicKey, SecretKey};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1,
    ECDSA_P256_SHA256_ASN1_SIGNING,
};
use sha2::Sha256;
use zeroize::Zeroizing;

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

/// Why a signature or a signing key could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The private and public halves given do not make a P-256 key pair.
    #[error("the P-256 signing key was rejected")]
    Key,
    /// The operating system's random source failed (ECDSA needs a fresh nonce per signature).
    #[error("the system random source failed")]
    Random,
}

/// A P-256 key pair that makes ECDSA-SHA256 signatures (`X-Sign`, `signed.sign`).
///
/// Build it once per device: building costs a scalar multiplication, signing does not
/// repeat it. The nonce of each signature is random (hedged with the key and the message),
/// so two signatures of the same data differ; both verify.
pub struct SigningKeyPair {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl SigningKeyPair {
    /// The key pair of a P-256 secret key.
    pub fn from_secret_key(key: &SecretKey) -> Result<Self, SignError> {
        let scalar = Zeroizing::new(key.to_bytes());
        let public = key.public_key().to_encoded_point(false);
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &scalar[..],
            public.as_bytes(),
            &rng,
        )
        .map_err(|_| SignError::Key)?;
        Ok(Self { pair, rng })
    }

    /// DER ECDSA-SHA256 signature over `data` (ECDSA hashes `data` itself).
    pub fn sign_der(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let signature = self
            .pair
            .sign(&self.rng, data)
            .map_err(|_| SignError::Random)?;
        Ok(signature.as_ref().to_vec())
    }

    /// The public half, for checking this pair's signatures.
    pub fn verify_key(&self) -> VerifyKey {
        let mut point = [0u8; 65];
        point.copy_from_slice(self.pair.public_key().as_ref());
        VerifyKey { point }
    }
}

impl fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyPair")
            .field("public", &self.verify_key())
            .finish_non_exhaustive()
    }
}

/// A P-256 public key that checks ECDSA-SHA256 signatures.
///
/// Holds the uncompressed point (65 bytes), checked to lie on the curve when it is made, so
/// checking a signature parses nothing but the signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyKey {
    point: [u8; 65],
}

impl VerifyKey {
    /// The key of a P-256 public key.
    pub fn from_public_key(public: &PublicKey) -> Self {
        let mut point = [0u8; 65];
        // An uncompressed encoding of a valid (non-identity) point is always 65 bytes.
        point.copy_from_slice(public.to_encoded_point(false).as_bytes());
        Self { point }
    }

    /// Parses a SEC1 point (uncompressed or compressed); `None` unless it is on P-256.
    pub fn from_sec1_bytes(bytes: &[u8]) -> Option<Self> {
        PublicKey::from_sec1_bytes(bytes)
            .ok()
            .map(|public| Self::from_public_key(&public))
    }

    /// The uncompressed SEC1 point (65 bytes, starting with `0x04`).
    pub fn as_sec1_bytes(&self) -> &[u8; 65] {
        &self.point
    }

    /// Whether `signature_der` is a valid DER ECDSA-SHA256 signature over `data` by this key.
    /// Malformed signatures are simply not valid.
    pub fn verify_der(&self, data: &[u8], signature_der: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point[..])
            .verify(data, signature_der)
            .is_ok()
    }
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VerifyKey")
            .field(&hex::encode(self.point))
            .finish()
    }
}

/// `X-Sign`: base64 DER ECDSA-SHA256 signature over the SHA-256 digest of `canonical`.
pub fn x_sign(key: &SigningKeyPair, canonical: &[u8]) -> Result<String, SignError> {
    sign_bytes(key, &sha256(canonical))
}

/// Checks an `X-Sign` value against a canonical string.
pub fn verify_x_sign(key: &VerifyKey, canonical: &[u8], x_sign_b64: &str) -> bool {
    verify_bytes(key, &sha256(canonical), x_sign_b64)
}

/// Base64 DER ECDSA-SHA256 signature over `data` (ECDSA hashes `data` itself).
pub fn sign_bytes(key: &SigningKeyPair, data: &[u8]) -> Result<String, SignError> {
    Ok(B64.encode(key.sign_der(data)?))
}

/// Checks a base64 DER ECDSA-SHA256 signature over `data`; anything malformed is `false`.
pub fn verify_bytes(key: &VerifyKey, data: &[u8], signature_b64: &str) -> bool {
    let Ok(der) = B64.decode(signature_b64.trim()) else {
        return false;
    };
    key.verify_der(data, &der)
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
        let signing = SigningKeyPair::from_secret_key(&key).expect("key pair");
        let verifying = signing.verify_key();
        // The key pair's public half is the vector's `pk`.
        let pk = B64
            .decode(s(&v["device"], "pk_uncompressed_b64"))
            .expect("b64");
        assert_eq!(VerifyKey::from_sec1_bytes(&pk), Some(verifying));
        // The vector's own signature, made by the other implementation, verifies here...
        assert!(verify_x_sign(&verifying, &canonical, s(case, "x_sign_b64")));
        // ...ours verifies too, here and with the `p256` crate (a second implementation)...
        let ours = x_sign(&signing, &canonical).expect("signed");
        assert!(verify_x_sign(&verifying, &canonical, &ours));
        assert!(p256_verifies(&key, &sha256(&canonical), &ours));
        // ...and a changed canonical string verifies with neither signature.
        let mut tampered = canonical.clone();
        tampered.push(b'x');
        assert!(!verify_x_sign(&verifying, &tampered, &ours));
        assert!(!verify_x_sign(&verifying, &tampered, s(case, "x_sign_b64")));
    }

    /// Checks a base64 DER signature with the `p256` crate instead of `ring`.
    fn p256_verifies(key: &SecretKey, data: &[u8], signature_b64: &str) -> bool {
        use p256::ecdsa::signature::Verifier as _;
        let der = B64.decode(signature_b64).expect("b64");
        let signature = p256::ecdsa::Signature::from_der(&der).expect("DER");
        p256::ecdsa::VerifyingKey::from(key.public_key())
            .verify(data, &signature)
            .is_ok()
    }

    /// A DER signature made by the `p256` crate (deterministic, RFC 6979).
    fn p256_sign_der(key: &SecretKey, data: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer as _;
        let signature: p256::ecdsa::Signature = p256::ecdsa::SigningKey::from(key).sign(data);
        signature.to_der().as_bytes().to_vec()
    }

    fn vector_key() -> SecretKey {
        secret_key_from_pkcs8_b64(s(&vectors()["device"], "private_key_pkcs8_der_b64"))
            .expect("key")
    }

    #[test]
    fn signatures_use_fresh_nonces_and_agree_with_p256_both_ways() {
        let key = vector_key();
        let pair = SigningKeyPair::from_secret_key(&key).expect("key pair");
        let verify = pair.verify_key();
        let data = b"eyJpbnN0YWxsSWQiOiJJIn0=";
        let one = sign_bytes(&pair, data).expect("signed");
        let two = sign_bytes(&pair, data).expect("signed");
        assert_ne!(one, two, "ring draws a new nonce per signature");
        for ours in [&one, &two] {
            assert!(verify_bytes(&verify, data, ours));
            assert!(p256_verifies(&key, data, ours));
        }
        let theirs = B64.encode(p256_sign_der(&key, data));
        assert!(verify_bytes(&verify, data, &theirs));
        assert!(!verify_bytes(&verify, b"other data", &theirs));
        // Another key's signature does not verify.
        let other = SigningKeyPair::from_secret_key(&SecretKey::random(&mut rand::thread_rng()))
            .expect("key pair");
        let foreign = sign_bytes(&other, data).expect("signed");
        assert!(!verify_bytes(&verify, data, &foreign));
    }

    #[test]
    fn malformed_signatures_fail_without_panicking() {
        let key = vector_key();
        let pair = SigningKeyPair::from_secret_key(&key).expect("key pair");
        let verify = pair.verify_key();
        let data = b"data";
        let good = pair.sign_der(data).expect("signed");
        let mut truncated = good.clone();
        truncated.pop();
        let mut trailing = good.clone();
        trailing.push(0);
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        // r = 0, s = 1: well-formed DER, out of range.
        let zero_r = vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01];
        for bad in [
            Vec::new(),
            vec![0x30],
            vec![0xff; 72],
            truncated,
            trailing,
            flipped,
            zero_r,
        ] {
            assert!(!verify.verify_der(data, &bad), "{bad:02x?}");
            assert!(!verify_bytes(&verify, data, &B64.encode(&bad)));
        }
        for bad_b64 in ["", "!!!", "not base64 at all", "AAAA===="] {
            assert!(!verify_bytes(&verify, data, bad_b64));
            assert!(!verify_x_sign(&verify, data, bad_b64));
        }
        assert!(verify.verify_der(data, &good));
    }

    #[test]
    fn verify_keys_take_only_points_on_the_curve() {
        let public = vector_key().public_key();
        let uncompressed = public.to_encoded_point(false);
        let compressed = public.to_encoded_point(true);
        let key = VerifyKey::from_sec1_bytes(uncompressed.as_bytes()).expect("uncompressed");
        assert_eq!(key.as_sec1_bytes().as_slice(), uncompressed.as_bytes());
        assert_eq!(VerifyKey::from_sec1_bytes(compressed.as_bytes()), Some(key));
        assert_eq!(VerifyKey::from_public_key(&public), key);

        let mut off_curve = uncompressed.as_bytes().to_vec();
        off_curve[64] ^= 1;
        for bad in [
            &[][..],
            &[0x00][..],
            &[0x04; 65][..],
            &off_curve[..],
            &uncompressed.as_bytes()[..64],
        ] {
            assert_eq!(VerifyKey::from_sec1_bytes(bad), None, "{bad:02x?}");
        }
    }

    #[test]
    fn debug_of_a_key_pair_shows_only_the_public_point() {
        let key = vector_key();
        let pair = SigningKeyPair::from_secret_key(&key).expect("key pair");
        let text = format!("{pair:?}");
        assert!(text.contains(&hex::encode(pair.verify_key().as_sec1_bytes())));
        assert!(!text.contains(&hex::encode(key.to_bytes())));
    }

    /// Times 2,000 signatures and 2,000 verifications with the `p256` crate and with `ring`:
    /// `cargo test --release -p kaspi --lib -- --ignored --nocapture sign_and_verify_speed`.
    /// Prints the figures; asserts nothing about them.
    #[test]
    #[ignore = "timing, run by hand in release mode"]
    fn sign_and_verify_speed() {
        use p256::ecdsa::signature::{Signer as _, Verifier as _};
        use std::hint::black_box;
        use std::time::Instant;

        const N: u32 = 2_000;
        let key = vector_key();
        let data = sha256(b"canonical string");
        let per_op = |start: Instant| start.elapsed().as_secs_f64() * 1e6 / f64::from(N);

        let p_sign = p256::ecdsa::SigningKey::from(&key);
        let p_verify = p256::ecdsa::VerifyingKey::from(&p_sign);
        let start = Instant::now();
        let mut p_sigs = Vec::new();
        for _ in 0..N {
            let signature: p256::ecdsa::Signature = p_sign.sign(black_box(&data));
            p_sigs.push(signature);
        }
        let p256_sign = per_op(start);
        let start = Instant::now();
        for signature in &p_sigs {
            assert!(p_verify.verify(black_box(&data), signature).is_ok());
        }
        let p256_verify = per_op(start);

        let pair = SigningKeyPair::from_secret_key(&key).expect("key pair");
        let verify = pair.verify_key();
        let start = Instant::now();
        let mut r_sigs = Vec::new();
        for _ in 0..N {
            r_sigs.push(pair.sign_der(black_box(&data)).expect("signed"));
        }
        let ring_sign = per_op(start);
        let start = Instant::now();
        for der in &r_sigs {
            assert!(verify.verify_der(black_box(&data), der));
        }
        let ring_verify = per_op(start);

        println!("p256: sign {p256_sign:.1} us, verify {p256_verify:.1} us");
        println!("ring: sign {ring_sign:.1} us, verify {ring_verify:.1} us");
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
