//! A cashier's session with Kaspi: the token, the vtoken secret that keys the MAC, the ECDH key
//! that re-derives the secret on refresh, and the organization context.
//!
//! Secret as a whole: the gateway stores it encrypted. `Debug` shows only the organization.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize as _;

/// The organization the cashier works for, as Kaspi's org context names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgContext {
    pub profile_id: Option<String>,
    pub organization_id: Option<String>,
    pub organization_name: Option<String>,
    pub organization_idn: Option<String>,
    pub organization_kbe: Option<String>,
    pub emp_id: Option<String>,
    pub is_cashier: Option<bool>,
    pub user_id: Option<String>,
    pub phone: Option<String>,
}

/// An authenticated session.
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    pub(crate) token_sn: String,
    #[serde(serialize_with = "ser_b64", deserialize_with = "de_b64")]
    pub(crate) vtoken_secret: Vec<u8>,
    /// PKCS#8 DER base64 of the client's ECDH key from the login's finish step.
    pub(crate) ecdh_private_key: String,
    pub org: OrgContext,
}

impl Session {
    /// Builds a session from stored parts.
    pub fn from_parts(
        token_sn: String,
        vtoken_secret: Vec<u8>,
        ecdh_private_key: String,
        org: OrgContext,
    ) -> Self {
        Self {
            token_sn,
            vtoken_secret,
            ecdh_private_key,
            org,
        }
    }

    /// The session as JSON (secret).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain fields serialize")
    }

    /// Reads [`Session::to_json`].
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The profile id sent as `X-PI` (empty when unknown).
    pub fn profile_id(&self) -> &str {
        self.org.profile_id.as_deref().unwrap_or("")
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.vtoken_secret.zeroize();
        self.ecdh_private_key.zeroize();
        self.token_sn.zeroize();
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("token_sn", &"<redacted>")
            .field("vtoken_secret", &"<redacted>")
            .field("org", &self.org)
            .finish()
    }
}

fn ser_b64<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&B64.encode(bytes))
}

fn de_b64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    B64.decode(text).map_err(serde::de::Error::custom)
}
