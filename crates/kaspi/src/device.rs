//! The virtual device Kassa presents to Kaspi: ids, PIN hash and the P-256 signing key.
//!
//! Made once per cashier and kept secret: replacing it makes Kaspi ask for an SMS login again.
//! The JSON form uses the same keys as pykaspi's terminal file (`deviceId`, `installId`,
//! `pinHash`, `privateKey`, `publicKey`), so a device can move between the two.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use md5::{Digest as _, Md5};
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use p256::SecretKey;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

use crate::sign::{self, SigningKeyPair};

/// Identity of the virtual device.
#[derive(Clone)]
pub struct DeviceIdentity {
    device_id: String,
    install_id: String,
    pin_hash: String,
    key: SecretKey,
    /// Built from `key` once: building it costs a scalar multiplication, and every signed
    /// request needs it. Shared by the clones of the identity.
    signing: Arc<SigningKeyPair>,
    /// `pk`, derived once for the same reason.
    pk: String,
}

/// Why a stored device identity could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("device file: {0}")]
    Io(#[from] std::io::Error),
    #[error("device JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("device private key is not a base64 PKCS#8 P-256 key")]
    Key,
    #[error("device signing key: {0}")]
    Signing(#[from] sign::SignError),
}

#[derive(Serialize, Deserialize)]
struct DeviceJson {
    #[serde(rename = "deviceId")]
    device_id: String,
    #[serde(rename = "installId")]
    install_id: String,
    #[serde(rename = "pinHash")]
    pin_hash: String,
    #[serde(rename = "privateKey")]
    private_key: String,
    #[serde(rename = "publicKey", default)]
    public_key: String,
}

/// Parses a base64 PKCS#8 DER P-256 private key.
pub fn secret_key_from_pkcs8_b64(b64: &str) -> Result<SecretKey, DeviceError> {
    let der = B64.decode(b64.trim()).map_err(|_| DeviceError::Key)?;
    SecretKey::from_pkcs8_der(&der).map_err(|_| DeviceError::Key)
}

/// Base64 PKCS#8 DER of a P-256 private key.
pub fn secret_key_to_pkcs8_b64(key: &SecretKey) -> String {
    let der = key
        .to_pkcs8_der()
        .expect("a P-256 secret key always encodes as PKCS#8");
    B64.encode(der.as_bytes())
}

fn upper_uuid() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

impl DeviceIdentity {
    /// A new random identity.
    pub fn generate() -> Self {
        let mut pin = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut pin);
        Self::from_parts(
            upper_uuid(),
            upper_uuid(),
            hex::encode(Md5::digest(pin)),
            SecretKey::random(&mut rand::thread_rng()),
        )
    }

    /// An identity from its parts (tests, migrations from other tools).
    ///
    /// Panics only if the operating system's random source fails while the signing key pair
    /// is built ([`DeviceIdentity::generate`] needs that source anyway);
    /// [`DeviceIdentity::from_json`] returns an error instead.
    pub fn from_parts(
        device_id: String,
        install_id: String,
        pin_hash: String,
        key: SecretKey,
    ) -> Self {
        Self::try_from_parts(device_id, install_id, pin_hash, key)
            .expect("the system random source works and ring takes every P-256 secret key")
    }

    /// [`DeviceIdentity::from_parts`], returning an error instead of panicking if the signing
    /// key pair cannot be built.
    fn try_from_parts(
        device_id: String,
        install_id: String,
        pin_hash: String,
        key: SecretKey,
    ) -> Result<Self, DeviceError> {
        let signing = Arc::new(SigningKeyPair::from_secret_key(&key)?);
        let pk = B64.encode(signing.verify_key().as_sec1_bytes());
        Ok(Self {
            device_id,
            install_id,
            pin_hash,
            key,
            signing,
            pk,
        })
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }
    pub fn install_id(&self) -> &str {
        &self.install_id
    }
    pub fn pin_hash(&self) -> &str {
        &self.pin_hash
    }

    /// The ECDSA key pair that signs requests (built once, with the identity).
    pub fn signing_key(&self) -> &SigningKeyPair {
        &self.signing
    }

    /// `pk`: base64 of the uncompressed public point (65 bytes).
    pub fn pk(&self) -> String {
        self.pk.clone()
    }

    /// `pkTag`: MD5 hex of the `pk` string.
    pub fn pk_tag(&self) -> String {
        sign::md5_hex(&self.pk())
    }

    /// The public key as base64 SPKI DER.
    pub fn x509(&self) -> String {
        sign::public_x509_b64(&self.key.public_key())
    }

    /// The identity as JSON (secret: it holds the private key).
    pub fn to_json(&self) -> String {
        let json = DeviceJson {
            device_id: self.device_id.clone(),
            install_id: self.install_id.clone(),
            pin_hash: self.pin_hash.clone(),
            private_key: secret_key_to_pkcs8_b64(&self.key),
            public_key: self.x509(),
        };
        serde_json::to_string_pretty(&json).expect("plain strings serialize")
    }

    /// Reads the JSON form.
    pub fn from_json(text: &str) -> Result<Self, DeviceError> {
        let json: DeviceJson = serde_json::from_str(text)?;
        Self::try_from_parts(
            json.device_id,
            json.install_id,
            json.pin_hash,
            secret_key_from_pkcs8_b64(&json.private_key)?,
        )
    }

    /// Writes the JSON form to `path`, readable and writable by the owner only.
    pub fn save(&self, path: &Path) -> Result<(), DeviceError> {
        write_owner_only(path, self.to_json().as_bytes())?;
        Ok(())
    }

    /// Reads an identity written by [`DeviceIdentity::save`].
    pub fn load(path: &Path) -> Result<Self, DeviceError> {
        Self::from_json(&std::fs::read_to_string(path)?)
    }
}

/// Writes a file that only its owner may read: created with mode 0600 (on Unix) and
/// replaced atomically, so no reader ever sees half a secret.
pub fn write_owner_only(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("secret"),
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

impl fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("device_id", &self.device_id)
            .field("install_id", &self.install_id)
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_load_round_trip_with_owner_only_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("device.json");
        let device = DeviceIdentity::generate();
        device.save(&path).expect("save");
        let loaded = DeviceIdentity::load(&path).expect("load");
        assert_eq!(loaded.device_id(), device.device_id());
        assert_eq!(loaded.install_id(), device.install_id());
        assert_eq!(loaded.pin_hash(), device.pin_hash());
        assert_eq!(loaded.pk(), device.pk());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn generated_ids_have_the_protocol_shapes() {
        let d = DeviceIdentity::generate();
        assert_eq!(d.device_id().len(), 36);
        assert_eq!(d.device_id(), d.device_id().to_uppercase());
        assert_eq!(d.pin_hash().len(), 32);
        assert_eq!(B64.decode(d.pk()).expect("b64").len(), 65);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let d = DeviceIdentity::generate();
        let text = format!("{d:?}");
        assert!(text.contains("redacted"));
        assert!(!text.contains(&secret_key_to_pkcs8_b64(&d.key)));
    }
}
