//! What the client is configured with: the app fingerprint it presents, the base URLs of the
//! three hosts, and timeouts. Every version string is settable, because Kaspi can refuse an
//! old app version at any time; the app version and build can even be changed while clients
//! run ([`SharedApp`]), since Kaspi raises its minimum build for every cashier at once.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The Kaspi Pay app this client presents itself as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppFingerprint {
    pub version: String,
    pub build: String,
    pub platform: String,
    pub platform_version: String,
    pub locale: String,
    pub model: String,
    pub brand: String,
    pub device_name: String,
    pub screen_width: String,
    pub screen_height: String,
    pub cf_network: String,
    pub darwin: String,
}

impl Default for AppFingerprint {
    fn default() -> Self {
        Self {
            version: "26.0921".into(),
            build: "1115".into(),
            platform: "iOS".into(),
            platform_version: "18.4".into(),
            locale: "ru-RU".into(),
            model: "iPhone16,2".into(),
            brand: "Apple".into(),
            device_name: "iPhone".into(),
            screen_width: "430.0".into(),
            screen_height: "932.0".into(),
            cf_network: "CFNetwork/3826.400.120".into(),
            darwin: "Darwin/24.4.0".into(),
        }
    }
}

impl AppFingerprint {
    /// The app's native User-Agent.
    pub fn native_user_agent(&self) -> String {
        format!(
            "Kaspi%20Pay/{} {} {}",
            self.build, self.cf_network, self.darwin
        )
    }

    /// The User-Agent of the app's web view (login steps).
    pub fn browser_user_agent(&self) -> String {
        format!(
            "Mozilla/5.0 (iPhone; CPU iPhone OS {} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
            self.platform_version.replace('.', "_")
        )
    }
}

/// The app fingerprint shared by every client made from one [`ClientConfig`] (clones share
/// it): a new version or build set here is presented from the next request on, without
/// rebuilding any client.
#[derive(Debug, Clone, Default)]
pub struct SharedApp(Arc<RwLock<AppFingerprint>>);

impl SharedApp {
    pub fn new(app: AppFingerprint) -> Self {
        Self(Arc::new(RwLock::new(app)))
    }

    /// The fingerprint as it is now.
    pub fn get(&self) -> AppFingerprint {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Presents `version` and `build` from the next request on; `true` when they changed.
    pub fn set_release(&self, version: &str, build: &str) -> bool {
        let mut app = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if app.version == version && app.build == build {
            return false;
        }
        version.clone_into(&mut app.version);
        build.clone_into(&mut app.build);
        true
    }
}

impl From<AppFingerprint> for SharedApp {
    fn from(app: AppFingerprint) -> Self {
        Self::new(app)
    }
}

/// Base URLs of Kaspi's three hosts, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    pub entrance: String,
    pub mtoken: String,
    pub qrpay: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            entrance: "https://entrance-pay.kaspi.kz".into(),
            mtoken: "https://mtoken.kaspi.kz".into(),
            qrpay: "https://qrpay.kaspi.kz".into(),
        }
    }
}

impl Endpoints {
    /// The three hosts served under one base, as the simulator does
    /// (`{base}/entrance-pay`, `{base}/mtoken`, `{base}/qrpay`).
    pub fn under(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            entrance: format!("{base}/entrance-pay"),
            mtoken: format!("{base}/mtoken"),
            qrpay: format!("{base}/qrpay"),
        }
    }
}

/// Everything a [`crate::Client`] is built from.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub endpoints: Endpoints,
    /// The app presented to Kaspi; shared with every clone of this configuration.
    pub app: SharedApp,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request and its answer.
    pub request_timeout: Duration,
    /// `X-Kb-Client-Ip` sent to mtoken (the app sends its local address).
    pub client_ip: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            endpoints: Endpoints::default(),
            app: SharedApp::default(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            client_ip: "192.168.1.96".into(),
        }
    }
}
