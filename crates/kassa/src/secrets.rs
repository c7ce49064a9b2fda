//! Secrets at rest: the master key, encryption of the cashier's device and session, and the
//! keyed hash under which API keys are stored.
//!
//! - The master key comes from `KASSA_MASTER_KEY` (base64 of 32 bytes) or from
//!   `<data dir>/master.key`, generated on first start with mode 0600.
//! - Sealed values are AES-256-GCM with a random nonce, bound to what they belong to
//!   (associated data), under a key derived from the master key for that purpose.
//! - API keys are shown once and kept only as HMAC-SHA256 under a derived key, with a short
//!   visible prefix to tell them apart in lists. A key says its mode in the open:
//!   `kassa_live_…` or `kassa_test_…` (keys made before modes, `kassa_…`, are live keys).

use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

use crate::domain::Mode;

/// Length of the visible prefix of an API key: its mode and five characters of its own
/// (`kassa_test_AbCd5`). Keys made before modes kept 12 (`kassa_AbCd5x`).
pub const API_KEY_PREFIX_LEN: usize = 16;
/// The visible prefix of a key made before modes.
const LEGACY_API_KEY_PREFIX_LEN: usize = 12;

/// The key every other secret key is derived from.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

/// Why a secret could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("KASSA_MASTER_KEY must be base64 of 32 bytes")]
    BadEnvKey,
    #[error("the master key file {0} is not base64 of 32 bytes")]
    BadKeyFile(String),
    #[error("master key file: {0}")]
    Io(#[from] std::io::Error),
    #[error("a sealed secret could not be opened (wrong master key or damaged data)")]
    Open,
}

impl MasterKey {
    /// From `KASSA_MASTER_KEY`, else `<data_dir>/master.key`, created (0600) when missing.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, SecretError> {
        if let Ok(text) = std::env::var("KASSA_MASTER_KEY") {
            return Self::from_b64(&text).ok_or(SecretError::BadEnvKey);
        }
        let path = data_dir.join("master.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_b64(&text)
                .ok_or_else(|| SecretError::BadKeyFile(path.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                kaspi::device::write_owner_only(&path, B64.encode(key.0).as_bytes())?;
                tracing::info!(path = %path.display(), "generated a new master key (keep it: it decrypts the cashier sessions)");
                Ok(key)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        Self(key)
    }

    fn from_b64(text: &str) -> Option<Self> {
        let bytes = B64.decode(text.trim()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// A key for one purpose, so no two uses share a key.
    fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"kassa/");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Encrypts `plaintext`, bound to `context` (e.g. "terminal:42").
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let cipher = Aes256Gcm::new_from_slice(&self.derive("seal")).expect("32-byte key");
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer does not fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts what [`MasterKey::seal`] made for the same `context`.
    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < 12 {
            return Err(SecretError::Open);
        }
        let cipher = Aes256Gcm::new_from_slice(&self.derive("seal")).expect("32-byte key");
        let (nonce, body) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| SecretError::Open)?;
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: body,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Open)
    }

    /// The stored form of an API key.
    pub fn api_key_hash(&self, api_key: &str) -> String {
        self.keyed_hash("api-key", api_key)
    }

    /// The stored form of a two-factor recovery code: keyed, so a copy of the database alone
    /// cannot be searched for the (short) codes.
    pub fn recovery_code_hash(&self, code: &str) -> String {
        self.keyed_hash("recovery-code", code)
    }

    fn keyed_hash(&self, purpose: &str, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.derive(purpose))
            .expect("HMAC takes any key length");
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// A new live API key (see [`new_api_key_for`]).
pub fn new_api_key() -> (String, String) {
    new_api_key_for(Mode::Live)
}

/// A new API key of `mode`: `kassa_live_` or `kassa_test_` and 32 random bytes. Returns the
/// key and its visible prefix. The mode in the key is for people: what a key may reach is
/// its organization's (a test key belongs to the organization's test twin).
pub fn new_api_key_for(mode: Mode) -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let key = format!("kassa_{mode}_{}", B64URL.encode(bytes));
    let prefix = api_key_prefix(&key).to_owned();
    (key, prefix)
}

/// The visible prefix of `key`, as stored beside its hash and shown in lists and the audit log
/// ([`API_KEY_PREFIX_LEN`]; a key made before modes, `kassa_…`, keeps its 12).
pub fn api_key_prefix(key: &str) -> &str {
    let len = if key.starts_with("kassa_live_") || key.starts_with("kassa_test_") {
        API_KEY_PREFIX_LEN
    } else {
        LEGACY_API_KEY_PREFIX_LEN
    };
    key.get(..len).unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"session json", "terminal:1");
        assert!(!sealed.windows(7).any(|w| w == b"session"));
        assert_eq!(
            key.open(&sealed, "terminal:1").expect("opens"),
            b"session json"
        );
        assert!(key.open(&sealed, "terminal:2").is_err());
        assert!(MasterKey::generate().open(&sealed, "terminal:1").is_err());
        assert!(key.open(&sealed[..5], "terminal:1").is_err());
    }

    #[test]
    fn api_keys_hash_stably_and_differently_per_master_key() {
        let (api_key, prefix) = new_api_key();
        assert!(api_key.starts_with(&prefix) && prefix.starts_with("kassa_live_"));
        let (test_key, test_prefix) = new_api_key_for(Mode::Test);
        assert!(test_key.starts_with(&test_prefix) && test_prefix.starts_with("kassa_test_"));
        assert_eq!(test_prefix.len(), API_KEY_PREFIX_LEN);
        assert_eq!(api_key_prefix("kassa_AbCdEfGhIjKlMn"), "kassa_AbCdEf");
        let key = MasterKey::generate();
        assert_eq!(key.api_key_hash(&api_key), key.api_key_hash(&api_key));
        assert_ne!(
            key.api_key_hash(&api_key),
            MasterKey::generate().api_key_hash(&api_key)
        );
        assert!(!key.api_key_hash(&api_key).contains(&api_key));
    }

    #[test]
    fn master_key_file_is_created_owner_only_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = MasterKey::load_or_create(dir.path()).expect("create");
        let b = MasterKey::load_or_create(dir.path()).expect("reuse");
        assert_eq!(a.0, b.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("master.key"))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(format!("{a:?}").contains("redacted"));
    }
}
