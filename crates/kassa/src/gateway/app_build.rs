//! The Kaspi app version and build Kassa presents, as settings that take effect without a
//! restart, and the `app_build_outdated` state.
//!
//! Kaspi refuses app builds below a minimum it raises from time to time, for every cashier at
//! once (`OldVersionToUpdate`). The configured version and build (`kaspi_app_version`,
//! `kaspi_app_build`) are the defaults; `kassa kaspi app-build set` stores newer ones in the
//! `settings` table, and every process reads them again every few seconds into the
//! [`kaspi::SharedApp`] all its clients present. When Kaspi refuses the build in use, the
//! build is noted there (`kaspi.app_build_refused`): that is the gateway's `app_build_outdated`
//! state, shown by `/status`, the log and 503 answers, until a call with a build Kaspi takes
//! succeeds.

use std::sync::Mutex;
use std::time::Duration;

use kaspi::SharedApp;

use super::GatewayError;
use crate::store::Store;

/// The setting of the app version presented to Kaspi.
pub const SETTING_APP_VERSION: &str = "kaspi.app_version";
/// The setting of the app build presented to Kaspi.
pub const SETTING_APP_BUILD: &str = "kaspi.app_build";
/// The build Kaspi last refused (`OldVersionToUpdate`).
pub const SETTING_APP_BUILD_REFUSED: &str = "kaspi.app_build_refused";

/// The version and build in use, and whether Kaspi refuses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppBuildState {
    pub version: String,
    pub build: String,
    /// Where they come from: `settings` (`kassa kaspi app-build set`) or `config`.
    pub source: &'static str,
    /// Kaspi refused this build: the gateway is `app_build_outdated`.
    pub outdated: bool,
}

impl AppBuildState {
    /// What to do about an outdated build, for people.
    pub fn action(&self) -> String {
        format!(
            "Kaspi no longer accepts app build {}: set a newer one with `kassa kaspi app-build set \
             <build> --version <version>` (setting {SETTING_APP_BUILD}); it takes effect in every \
             process within seconds",
            self.build
        )
    }
}

/// This process's view of the app build settings.
pub(crate) struct AppBuild {
    shared: SharedApp,
    /// The configured version and build (the defaults).
    configured: (String, String),
    every: Duration,
    /// When the settings were last read (unix ms, on the gateway's clock).
    checked: Mutex<Option<i64>>,
    /// The build Kaspi refused, as this process last knew it.
    refused: Mutex<Option<String>>,
}

impl AppBuild {
    pub(crate) fn new(shared: SharedApp, every: Duration) -> AppBuild {
        let app = shared.get();
        AppBuild {
            shared,
            configured: (app.version, app.build),
            every,
            checked: Mutex::new(None),
            refused: Mutex::new(None),
        }
    }

    /// The state the stored settings give.
    pub(crate) async fn state(&self, store: &Store) -> Result<AppBuildState, GatewayError> {
        let settings = store.settings().await?;
        let version = settings.get(SETTING_APP_VERSION);
        let build = settings.get(SETTING_APP_BUILD);
        let source = if version.is_some() || build.is_some() {
            "settings"
        } else {
            "config"
        };
        let version = version.unwrap_or(&self.configured.0).clone();
        let build = build.unwrap_or(&self.configured.1).clone();
        let outdated = settings.get(SETTING_APP_BUILD_REFUSED) == Some(&build);
        Ok(AppBuildState {
            version,
            build,
            source,
            outdated,
        })
    }

    /// Reads the settings again if the last read is older than the interval, and presents
    /// what they say from the next request on; `true` when the version or build changed.
    pub(crate) async fn sync(&self, store: &Store) -> Result<bool, GatewayError> {
        {
            let Ok(mut checked) = self.checked.lock() else {
                return Ok(false);
            };
            let now = store.now_ms();
            if checked.is_some_and(|at| now.saturating_sub(at) < crate::clock::ms(self.every)) {
                return Ok(false);
            }
            *checked = Some(now);
        }
        let settings = store.settings().await?;
        if let Ok(mut refused) = self.refused.lock() {
            *refused = settings.get(SETTING_APP_BUILD_REFUSED).cloned();
        }
        let version = settings
            .get(SETTING_APP_VERSION)
            .unwrap_or(&self.configured.0);
        let build = settings
            .get(SETTING_APP_BUILD)
            .unwrap_or(&self.configured.1);
        let changed = self.shared.set_release(version, build);
        if changed {
            tracing::info!(
                version,
                build,
                "the Kaspi app version and build changed; presenting them from now on"
            );
        }
        Ok(changed)
    }

    /// Kaspi refused `build`: notes it (every process then shows `app_build_outdated`) and
    /// says what to do, once per process and build.
    pub(crate) async fn refused(&self, store: &Store, build: &str, kaspi_says: &str) {
        let known = self
            .refused
            .lock()
            .map(|mut refused| {
                let known = refused.as_deref() == Some(build);
                *refused = Some(build.to_owned());
                known
            })
            .unwrap_or(false);
        if known {
            return;
        }
        tracing::error!(
            build,
            kaspi_says,
            "Kaspi refuses the app build Kassa presents (OldVersionToUpdate): every cashier is \
             stopped until a newer one is set with `kassa kaspi app-build set <build> --version \
             <version>` (setting {SETTING_APP_BUILD}); it takes effect without a restart"
        );
        if let Err(e) = store.set_setting(SETTING_APP_BUILD_REFUSED, build).await {
            tracing::warn!(error = %e, "cannot note the refused app build");
        }
    }

    /// A call went through: if a build was noted as refused, that is over.
    pub(crate) async fn accepted(&self, store: &Store) {
        let was = self
            .refused
            .lock()
            .ok()
            .and_then(|mut refused| refused.take());
        if let Some(build) = was {
            let now = self.shared.get().build;
            tracing::info!(refused = build, now, "Kaspi accepts the app build again");
            if let Err(e) = store.delete_setting(SETTING_APP_BUILD_REFUSED).await {
                tracing::warn!(error = %e, "cannot clear the refused app build");
            }
        }
    }
}
