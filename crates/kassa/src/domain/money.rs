//! Money: whole tiyn in an `i64` (1 tenge = 100 tiyn), read from exact decimal text and written
//! as each surface writes amounts. No arithmetic is ever done in floating point.

use std::fmt;

/// An amount in tiyn.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

/// Why a value is not an amount a payment can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoneyError {
    /// Not a number (nor a numeric string).
    NotANumber,
    /// A number with more than two decimals.
    TooPrecise,
    /// Outside 0.01–99 999 999.99 tenge.
    OutOfRange,
}

impl Money {
    pub const ZERO: Money = Money(0);
    /// The least a payment or a refund can be: 0.01 tenge.
    pub const MIN_PAYMENT: Money = Money(1);
    /// The most a payment can be: 99 999 999.99 tenge.
    pub const MAX_PAYMENT: Money = Money(9_999_999_999);

    pub const fn from_tiyn(tiyn: i64) -> Money {
        Money(tiyn)
    }

    pub const fn tiyn(self) -> i64 {
        self.0
    }

    /// An amount a payment can have, from decimal tenge (`"1500"`, `"15.5"`, `" 99.99 "`),
    /// read exactly.
    pub fn parse_payment(text: &str) -> Result<Money, MoneyError> {
        let amount = kaspi::Amount::parse(text).map_err(|e| match e {
            kaspi::amount::AmountError::TooPrecise => MoneyError::TooPrecise,
            kaspi::amount::AmountError::OutOfRange => MoneyError::OutOfRange,
            kaspi::amount::AmountError::NotDecimal => MoneyError::NotANumber,
        })?;
        let money = Money::from(amount);
        if (Money::MIN_PAYMENT..=Money::MAX_PAYMENT).contains(&money) {
            Ok(money)
        } else {
            Err(MoneyError::OutOfRange)
        }
    }

    /// An amount a payment can have, from a JSON request: a number (read through its shortest
    /// decimal form, exact for every amount in range) or a numeric string.
    pub fn from_json(value: &serde_json::Value) -> Result<Money, MoneyError> {
        match value {
            serde_json::Value::Number(n) => Money::parse_payment(&n.to_string()),
            serde_json::Value::String(s) => Money::parse_payment(s.trim()),
            _ => Err(MoneyError::NotANumber),
        }
    }

    /// `"10000.00"`: two decimals, as ApiPay writes amounts.
    pub fn to_decimal_string(self) -> String {
        kaspi::Amount::from(self).to_decimal_string()
    }

    /// A JSON number of tenge (`1500`, `15.5`), as xPayment writes amounts: made from the exact
    /// decimal text, so the number printed is the decimal amount.
    pub fn to_json_number(self) -> serde_json::Value {
        if self.0 % 100 == 0 {
            serde_json::Value::from(self.0 / 100)
        } else {
            self.to_decimal_string()
                .parse::<serde_json::Number>()
                .map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    pub fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Money) -> Money {
        Money(self.0.saturating_sub(other.0))
    }
}

impl From<kaspi::Amount> for Money {
    fn from(amount: kaspi::Amount) -> Money {
        Money(amount.tiyn())
    }
}

impl From<Money> for kaspi::Amount {
    fn from(money: Money) -> kaspi::Amount {
        kaspi::Amount::from_tiyn(money.0)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_decimal_string())
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({})", self.to_decimal_string())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Money, MoneyError};

    #[test]
    fn amounts_are_read_exactly_from_numbers_and_strings() {
        assert_eq!(
            Money::from_json(&json!(1500)),
            Ok(Money::from_tiyn(150_000))
        );
        assert_eq!(Money::from_json(&json!(0.1)), Ok(Money::from_tiyn(10)));
        assert_eq!(
            Money::from_json(&json!(3000.5)),
            Ok(Money::from_tiyn(300_050))
        );
        assert_eq!(
            Money::from_json(&json!(" 99.99 ")),
            Ok(Money::from_tiyn(9_999))
        );
        assert_eq!(
            Money::from_json(&json!(99_999_999.99)),
            Ok(Money::MAX_PAYMENT)
        );
        assert_eq!(Money::from_json(&json!(0.01)), Ok(Money::MIN_PAYMENT));
    }

    #[test]
    fn what_is_not_a_payment_amount_says_why() {
        assert_eq!(Money::from_json(&json!(1.005)), Err(MoneyError::TooPrecise));
        assert_eq!(
            Money::from_json(&json!("12,5")),
            Err(MoneyError::NotANumber)
        );
        assert_eq!(Money::from_json(&json!(true)), Err(MoneyError::NotANumber));
        assert_eq!(Money::from_json(&json!(0)), Err(MoneyError::OutOfRange));
        assert_eq!(Money::from_json(&json!(-5)), Err(MoneyError::OutOfRange));
        assert_eq!(
            Money::from_json(&json!(100_000_000)),
            Err(MoneyError::OutOfRange)
        );
    }

    #[test]
    fn each_surface_writes_amounts_its_way() {
        let m = Money::from_tiyn(300_050);
        assert_eq!(m.to_decimal_string(), "3000.50");
        assert_eq!(m.to_json_number(), json!(3000.5));
        assert_eq!(Money::from_tiyn(150_000).to_json_number(), json!(1500));
        assert_eq!(Money::from_tiyn(7).to_decimal_string(), "0.07");
        assert_eq!(Money::from_tiyn(7).to_json_number().to_string(), "0.07");
        assert_eq!(Money::from_tiyn(-250).to_decimal_string(), "-2.50");
    }
}
