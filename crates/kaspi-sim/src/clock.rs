//! The simulator's clock and the wire forms of time.
//!
//! The sim clock is the real clock moved forward by everything `advance` added, so tests
//! can jump over TTLs and payer delays without sleeping. Kaspi answers in Kazakhstan time
//! (`+05:00`); internally every moment is unix milliseconds (`i64`).
//!
//! Request MACs are NOT checked against this clock: clients compute `X-Kb-TokenSnMac` from
//! the real time, so [`real_unix_ms`] is used there.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::macros::offset;
use time::{OffsetDateTime, UtcOffset};

/// Kazakhstan's offset, in which Kaspi writes every date.
pub(crate) const KZ: UtcOffset = offset!(+5);

/// Real time plus everything the clock was advanced by (the offset is what a restart keeps).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Clock {
    advanced: Duration,
}

impl Clock {
    /// Now on the sim clock, in unix milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        real_unix_ms().saturating_add(duration_ms(self.advanced))
    }

    pub(crate) fn advance(&mut self, by: Duration) {
        self.advanced = self.advanced.saturating_add(by);
    }
}

/// Now on the real wall clock, in unix milliseconds.
pub(crate) fn real_unix_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// A duration in whole milliseconds (saturating).
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A moment in Kazakhstan time.
pub(crate) fn at(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(KZ)
}

/// `2026-04-15T13:57:25+05:00` (`OrderRegDate`, `ExpireDate`).
pub(crate) fn fmt_seconds(ms: i64) -> String {
    let t = at(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+05:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `2026-04-15T13:57:25.123+05:00` (`TransactionDate`, the history cursor).
pub(crate) fn fmt_millis(ms: i64) -> String {
    let t = at(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+05:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// `2026-04-15`.
pub(crate) fn fmt_date(ms: i64) -> String {
    let t = at(ms);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

/// Reads a history cursor (an RFC 3339 `TransactionDate`) back into unix milliseconds.
pub(crate) fn parse_cursor(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms_are_kazakhstan_time() {
        // 2026-04-15T08:57:25.007Z
        let ms = 1_776_243_445_007;
        assert_eq!(fmt_seconds(ms), "2026-04-15T13:57:25+05:00");
        assert_eq!(fmt_millis(ms), "2026-04-15T13:57:25.007+05:00");
        assert_eq!(fmt_date(ms), "2026-04-15");
        assert_eq!(parse_cursor(&fmt_millis(ms)), Some(ms));
        assert_eq!(parse_cursor("2026-04-15T13:57:25+05:00"), Some(ms - 7));
        assert_eq!(parse_cursor("yesterday"), None);
    }

    #[test]
    fn advancing_moves_the_sim_clock_only() {
        let mut clock = Clock::default();
        let before = clock.now_ms();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now_ms() - before >= 3_600_000);
        assert!(real_unix_ms() - before < 3_600_000);
    }
}
