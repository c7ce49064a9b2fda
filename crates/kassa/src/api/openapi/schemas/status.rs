//! `GET /api/v1/status`: the gateway and its Kaspi sessions.

use utoipa::ToSchema;

/// `GET /api/v1/status`: whether the gateway answers, and the state of its Kaspi cashiers.
#[derive(ToSchema)]
pub struct GatewayStatus {
    #[schema(example = "ok")]
    pub status: String,
    #[schema(format = DateTime)]
    pub timestamp: String,
    pub kaspi: KaspiStatus,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KaspiMode {
    Sandbox,
    Live,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KaspiState {
    Ok,
    NeedsLogin,
    AppBuildOutdated,
}

/// The Kaspi side: a monitor alerts on `state` other than `ok`.
#[derive(ToSchema)]
pub struct KaspiStatus {
    pub mode: KaspiMode,
    /// `null` when the terminals could not be read.
    #[schema(required = true)]
    pub sessions: Option<KaspiSessions>,
    /// Left out when the terminals could not be read.
    #[serde(default)]
    pub state: Option<KaspiState>,
    /// What to do, when `state` is not `ok`.
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub app: KaspiApp,
}

/// Cashier sessions that work and that need a login, with the distinct reasons.
#[derive(ToSchema)]
pub struct KaspiSessions {
    pub healthy: i64,
    pub needs_login: i64,
    pub reasons: Vec<String>,
}

/// The Kaspi app version and build Kassa presents.
#[derive(ToSchema)]
pub struct KaspiApp {
    pub version: String,
    pub build: String,
    /// `settings` or `config`.
    pub source: String,
}
