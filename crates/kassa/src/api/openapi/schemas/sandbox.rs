//! The sandbox clock.

use utoipa::ToSchema;

/// The sandbox clock: Kassa's and the sandbox Kaspi's time.
#[derive(ToSchema)]
pub struct SandboxClock {
    #[schema(format = DateTime)]
    pub now: String,
    #[schema(format = DateTime)]
    pub now_almaty: String,
    /// Today in Asia/Almaty.
    #[schema(format = Date)]
    pub today: String,
    pub is_sandbox: bool,
}

/// How far to move the sandbox clock: `days` or `seconds` (one of them), at most ten years.
#[derive(ToSchema)]
pub struct ClockAdvanceRequest {
    #[schema(minimum = 1, maximum = 3660)]
    pub days: Option<i64>,
    #[schema(minimum = 1, maximum = 316_224_000)]
    pub seconds: Option<i64>,
}

/// The clock after the move, and how much due work (polls, billing, webhooks) was done on the
/// way.
#[derive(ToSchema)]
pub struct ClockAdvanced {
    #[serde(flatten)]
    pub clock: SandboxClock,
    pub advanced_by_seconds: u64,
    pub work_done: u64,
}
