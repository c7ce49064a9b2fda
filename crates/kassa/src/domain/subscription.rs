//! Subscriptions: their billing periods and statuses, and the calendar of billing dates.
//!
//! Dates are Asia/Almaty calendar dates (UTC+5 all year). A date is billed at
//! [`BILLING_HOUR`] o'clock in Almaty. `daily`, `weekly` and `biweekly` count days from the
//! start date; `monthly`, `quarterly` and `yearly` bill on the billing day (1–28, default the
//! start date's day, at most 28) of every first, third or twelfth month counted from the start
//! date's month. A day of at most 28 exists in every month, so February and leap years need
//! nothing special.

use time::{Date, Duration, Month, OffsetDateTime, Time, UtcOffset};

use super::invoice::spelled;

/// Asia/Almaty: UTC+5 all year.
pub const ALMATY: UtcOffset = match UtcOffset::from_hms(5, 0, 0) {
    Ok(offset) => offset,
    Err(_) => UtcOffset::UTC,
};

/// The hour of the day (Almaty) at which a billing date's invoice is sent: a time a payer is
/// awake to confirm a payment request on the phone.
pub const BILLING_HOUR: u8 = 10;

/// How often a subscription bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BillingPeriod {
    Daily,
    Weekly,
    Biweekly,
    Monthly,
    Quarterly,
    Yearly,
}

spelled!(BillingPeriod {
    Daily = "daily",
    Weekly = "weekly",
    Biweekly = "biweekly",
    Monthly = "monthly",
    Quarterly = "quarterly",
    Yearly = "yearly",
});

impl BillingPeriod {
    /// Whether dates fall on a billing day of the month (else they count days).
    pub fn uses_billing_day(self) -> bool {
        matches!(
            self,
            BillingPeriod::Monthly | BillingPeriod::Quarterly | BillingPeriod::Yearly
        )
    }

    /// Days between dates, or months between dates.
    fn step(self) -> i64 {
        match self {
            BillingPeriod::Daily => 1,
            BillingPeriod::Weekly => 7,
            BillingPeriod::Biweekly => 14,
            BillingPeriod::Monthly => 1,
            BillingPeriod::Quarterly => 3,
            BillingPeriod::Yearly => 12,
        }
    }
}

/// A subscription's status as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionStatus {
    /// Billing on schedule (also while a failed payment is retried or in grace).
    Active,
    /// Billing stopped until resumed.
    Paused,
    /// Ended by the merchant; final.
    Cancelled,
    /// Ended unpaid after the grace period; final.
    Expired,
}

spelled!(SubscriptionStatus {
    Active = "active",
    Paused = "paused",
    Cancelled = "cancelled",
    Expired = "expired",
});

/// What the merchant asks of a subscription's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionAction {
    Pause,
    Resume,
    Cancel,
}

impl SubscriptionAction {
    /// The status `action` leads to from `from`, if it may.
    pub fn apply(self, from: SubscriptionStatus) -> Option<SubscriptionStatus> {
        use SubscriptionStatus::{Active, Cancelled, Paused};
        match (self, from) {
            (SubscriptionAction::Pause, Active) => Some(Paused),
            (SubscriptionAction::Resume, Paused) => Some(Active),
            (SubscriptionAction::Cancel, Active | Paused) => Some(Cancelled),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionAction::Pause => "pause",
            SubscriptionAction::Resume => "resume",
            SubscriptionAction::Cancel => "cancel",
        }
    }
}

/// The calendar of one subscription's billing dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    pub period: BillingPeriod,
    /// The day of the month dates fall on (monthly, quarterly, yearly).
    pub billing_day: u8,
    /// The start date: days are counted, or months stepped, from it.
    pub anchor: Date,
}

impl Calendar {
    /// The calendar of a subscription starting on `anchor`; `billing_day` defaults to the
    /// start date's day, at most 28.
    pub fn new(period: BillingPeriod, billing_day: Option<u8>, anchor: Date) -> Calendar {
        Calendar {
            period,
            billing_day: billing_day.unwrap_or_else(|| anchor.day().min(28)),
            anchor,
        }
    }

    /// The first billing date strictly after `date`.
    pub fn next_after(&self, date: Date) -> Date {
        let step = self.period.step();
        if !self.period.uses_billing_day() {
            let since = (date - self.anchor).whole_days();
            let k = since.div_euclid(step) + 1;
            return self.anchor + Duration::days(k * step);
        }
        let index = |d: Date| i64::from(d.year()) * 12 + i64::from(u8::from(d.month())) - 1;
        let anchor = index(self.anchor);
        // The last month of the cycle at or before `date`'s month, then the next if its date
        // is not after `date`.
        let mut month = index(date) - (index(date) - anchor).rem_euclid(step);
        loop {
            let candidate = self.on_month(month);
            if candidate > date {
                return candidate;
            }
            month += step;
        }
    }

    /// The first billing date on or after `date`.
    pub fn on_or_after(&self, date: Date) -> Date {
        match date.previous_day() {
            Some(before) => self.next_after(before),
            None => date,
        }
    }

    /// The last day of the period that starts on billing date `start`.
    pub fn period_end(&self, start: Date) -> Date {
        let next = self.next_after(start);
        next.previous_day().unwrap_or(next)
    }

    /// The first billing date after `after` whose billing moment is later than `now_ms`: the
    /// schedule goes on from its own dates and skips none but those already past.
    pub fn next_due(&self, after: Date, now_ms: i64) -> Date {
        let mut next = self.next_after(after);
        if billing_moment(next) <= now_ms {
            next = self.on_or_after(almaty_date(now_ms));
            if billing_moment(next) <= now_ms {
                next = self.next_after(next);
            }
        }
        next
    }

    /// The billing date in month number `index` (year × 12 + month − 1).
    fn on_month(&self, index: i64) -> Date {
        let year = i32::try_from(index.div_euclid(12)).unwrap_or(9999);
        let month = u8::try_from(index.rem_euclid(12) + 1).unwrap_or(1);
        let month = Month::try_from(month).unwrap_or(Month::January);
        Date::from_calendar_date(year, month, self.billing_day).unwrap_or(Date::MAX)
    }
}

/// The Almaty calendar date at unix ms `at_ms`.
pub fn almaty_date(at_ms: i64) -> Date {
    to_offset_datetime(at_ms).to_offset(ALMATY).date()
}

/// When billing date `date` is billed: [`BILLING_HOUR`] o'clock in Almaty, as unix ms.
pub fn billing_moment(date: Date) -> i64 {
    let at = date
        .with_time(Time::from_hms(BILLING_HOUR, 0, 0).unwrap_or(Time::MIDNIGHT))
        .assume_offset(ALMATY);
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Unix ms `at_ms` in Almaty, RFC 3339 (`2026-03-01T10:00:00+05:00`).
pub fn almaty_rfc3339(at_ms: i64) -> String {
    let at = to_offset_datetime(at_ms).to_offset(ALMATY);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `date` as `YYYY-MM-DD`.
pub fn date_text(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// A `YYYY-MM-DD` date.
pub fn parse_date(text: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    if text.len() != 10 {
        return None;
    }
    Date::parse(text, &format).ok()
}

/// `date` as ApiPay's label writes it (`01.02.2026`).
pub fn date_label(date: Date) -> String {
    format!(
        "{:02}.{:02}.{:04}",
        date.day(),
        u8::from(date.month()),
        date.year()
    )
}

fn to_offset_datetime(at_ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn dates(calendar: &Calendar, from: Date, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = from;
        for _ in 0..n {
            at = calendar.next_after(at);
            out.push(date_text(at));
        }
        out
    }

    #[test]
    fn the_docs_example_bills_a_month_after_the_start() {
        let monthly = Calendar::new(BillingPeriod::Monthly, Some(1), date!(2025 - 02 - 01));
        assert_eq!(
            monthly.next_after(date!(2025 - 02 - 01)),
            date!(2025 - 03 - 01)
        );
    }

    #[test]
    fn billing_day_28_falls_in_every_february_leap_or_not() {
        let monthly = Calendar::new(BillingPeriod::Monthly, Some(28), date!(2027 - 11 - 30));
        assert_eq!(
            dates(&monthly, date!(2027 - 11 - 30), 5),
            [
                "2027-12-28",
                "2028-01-28",
                "2028-02-28",
                "2028-03-28",
                "2028-04-28"
            ]
        );
        // The start's day past 28 bills on the 28th.
        let from_31 = Calendar::new(BillingPeriod::Monthly, None, date!(2028 - 01 - 31));
        assert_eq!(from_31.billing_day, 28);
        assert_eq!(
            from_31.next_after(date!(2028 - 01 - 31)),
            date!(2028 - 02 - 28)
        );
        assert_eq!(
            from_31.period_end(date!(2028 - 02 - 28)),
            date!(2028 - 03 - 27)
        );
    }

    #[test]
    fn quarterly_and_yearly_step_from_the_start_month() {
        let quarterly = Calendar::new(BillingPeriod::Quarterly, Some(1), date!(2026 - 01 - 15));
        assert_eq!(
            dates(&quarterly, date!(2026 - 01 - 15), 4),
            ["2026-04-01", "2026-07-01", "2026-10-01", "2027-01-01"]
        );
        let yearly = Calendar::new(BillingPeriod::Yearly, None, date!(2028 - 02 - 29));
        assert_eq!(
            dates(&yearly, date!(2028 - 02 - 29), 2),
            ["2029-02-28", "2030-02-28"]
        );
    }

    #[test]
    fn days_count_from_the_start() {
        let weekly = Calendar::new(BillingPeriod::Weekly, Some(5), date!(2028 - 02 - 26));
        assert_eq!(
            dates(&weekly, date!(2028 - 02 - 26), 2),
            ["2028-03-04", "2028-03-11"]
        );
        let biweekly = Calendar::new(BillingPeriod::Biweekly, None, date!(2026 - 12 - 25));
        assert_eq!(
            biweekly.next_after(date!(2027 - 01 - 07)),
            date!(2027 - 01 - 08)
        );
        let daily = Calendar::new(BillingPeriod::Daily, None, date!(2028 - 02 - 28));
        assert_eq!(
            dates(&daily, date!(2028 - 02 - 28), 2),
            ["2028-02-29", "2028-03-01"]
        );
        assert_eq!(
            daily.on_or_after(date!(2028 - 03 - 05)),
            date!(2028 - 03 - 05)
        );
    }

    #[test]
    fn a_date_is_billed_at_ten_in_almaty() {
        let at = billing_moment(date!(2026 - 03 - 01));
        assert_eq!(almaty_rfc3339(at), "2026-03-01T10:00:00+05:00");
        assert_eq!(almaty_date(at), date!(2026 - 03 - 01));
        // 23:00 UTC is already the next day in Almaty.
        assert_eq!(almaty_date(at + 18 * 3_600_000), date!(2026 - 03 - 02));
    }

    #[test]
    fn the_next_due_date_skips_only_what_is_past() {
        let monthly = Calendar::new(BillingPeriod::Monthly, Some(1), date!(2026 - 01 - 01));
        let feb = billing_moment(date!(2026 - 02 - 01));
        assert_eq!(
            monthly.next_due(date!(2026 - 01 - 01), feb - 1),
            date!(2026 - 02 - 01)
        );
        // Resumed on 1 April after ten: May.
        let april_noon = billing_moment(date!(2026 - 04 - 01)) + 2 * 3_600_000;
        assert_eq!(
            monthly.next_due(date!(2026 - 01 - 01), april_noon),
            date!(2026 - 05 - 01)
        );
        // …before ten: that same day.
        assert_eq!(
            monthly.next_due(date!(2026 - 01 - 01), april_noon - 3 * 3_600_000),
            date!(2026 - 04 - 01)
        );
    }

    #[test]
    fn actions_move_only_where_they_make_sense() {
        use SubscriptionAction::{Cancel, Pause, Resume};
        use SubscriptionStatus::{Active, Cancelled, Expired, Paused};
        assert_eq!(Pause.apply(Active), Some(Paused));
        assert_eq!(Resume.apply(Paused), Some(Active));
        assert_eq!(Cancel.apply(Paused), Some(Cancelled));
        assert_eq!(Resume.apply(Cancelled), None);
        assert_eq!(Pause.apply(Expired), None);
        assert_eq!(Cancel.apply(Expired), None);
        assert_eq!(Resume.apply(Active), None);
        assert!(parse_date("2026-02-30").is_none() && parse_date("2026-2-3").is_none());
        assert_eq!(parse_date("2026-02-28"), Some(date!(2026 - 02 - 28)));
    }
}
