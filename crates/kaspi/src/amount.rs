//! Amounts as Kaspi writes them: KZT as a JSON number with at most two decimals
//! (`1500.0`, `99.99`), held here as whole tiyn in an `i64`.
//!
//! No arithmetic is ever done in floating point. On the wire a number is read from its
//! decimal text, and written as the shortest decimal that names the same value
//! (`1500.0`, as pykaspi and the app send it).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount in tiyn (1 KZT = 100 tiyn).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(i64);

/// Why a decimal text is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("not a decimal number")]
    NotDecimal,
    #[error("more than two decimals")]
    TooPrecise,
    #[error("out of range")]
    OutOfRange,
}

impl Amount {
    pub const ZERO: Amount = Amount(0);

    pub const fn from_tiyn(tiyn: i64) -> Self {
        Self(tiyn)
    }
    pub const fn tiyn(self) -> i64 {
        self.0
    }

    /// Parses `"1500"`, `"1500.5"`, `"1500.50"`, `"-3.25"`, `"1.5e3"` exactly.
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        let text = text.trim();
        let (negative, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        // Split off an exponent (serde_json writes large floats as `1e16`).
        let (mantissa, exp) = match body.find(['e', 'E']) {
            Some(i) => {
                let exp: i32 = body[i + 1..].parse().map_err(|_| AmountError::NotDecimal)?;
                (&body[..i], exp)
            }
            None => (body, 0),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if (int_part.is_empty() && frac_part.is_empty())
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(AmountError::NotDecimal);
        }
        let mut digits: String = format!("{int_part}{frac_part}");
        // Value = digits * 10^(exp - frac_len); we want tiyn = value * 100.
        let shift =
            exp + 2 - i32::try_from(frac_part.len()).map_err(|_| AmountError::OutOfRange)?;
        if shift >= 0 {
            if shift > 20 {
                return Err(AmountError::OutOfRange);
            }
            digits.extend(std::iter::repeat_n('0', shift.unsigned_abs() as usize));
        } else {
            let cut = shift.unsigned_abs() as usize;
            let keep = digits.len().saturating_sub(cut);
            if digits[keep..].bytes().any(|b| b != b'0') {
                return Err(AmountError::TooPrecise);
            }
            digits.truncate(keep);
        }
        let trimmed = digits.trim_start_matches('0');
        let magnitude: i64 = if trimmed.is_empty() {
            0
        } else {
            trimmed.parse().map_err(|_| AmountError::OutOfRange)?
        };
        Ok(Self(if negative { -magnitude } else { magnitude }))
    }

    /// `"1500.00"`: two decimals, as the gateway APIs write amounts.
    pub fn to_decimal_string(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }

    /// The shortest decimal that names this amount with at least one decimal: `1500.0`, `12.5`.
    pub fn to_wire_string(self) -> String {
        let full = self.to_decimal_string();
        match full.strip_suffix('0') {
            Some(short) => short.to_owned(),
            None => full,
        }
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_decimal_string())
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.to_decimal_string())
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A JSON number written from its exact decimal text.
        let number: serde_json::Number = self
            .to_wire_string()
            .parse()
            .map_err(serde::ser::Error::custom)?;
        number.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(serde_json::Number),
            Text(String),
        }
        let text = match Raw::deserialize(deserializer)? {
            Raw::Number(n) => n.to_string(),
            Raw::Text(s) => s,
        };
        Amount::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(Amount::parse("1500").unwrap().tiyn(), 150_000);
        assert_eq!(Amount::parse("1500.0").unwrap().tiyn(), 150_000);
        assert_eq!(Amount::parse("0.01").unwrap().tiyn(), 1);
        assert_eq!(Amount::parse("99999999.99").unwrap().tiyn(), 9_999_999_999);
        assert_eq!(Amount::parse("1.5e3").unwrap().tiyn(), 150_000);
        assert_eq!(Amount::parse("1e-2").unwrap().tiyn(), 1);
        assert_eq!(Amount::parse("-3.25").unwrap().tiyn(), -325);
        assert_eq!(Amount::parse("0.001"), Err(AmountError::TooPrecise));
        assert_eq!(Amount::parse("abc"), Err(AmountError::NotDecimal));
        assert_eq!(Amount::parse("."), Err(AmountError::NotDecimal));
        assert_eq!(Amount::parse("1e300"), Err(AmountError::OutOfRange));
    }

    #[test]
    fn writes_the_forms_kaspi_and_apis_use() {
        let a = Amount::from_tiyn(150_000);
        assert_eq!(a.to_decimal_string(), "1500.00");
        assert_eq!(a.to_wire_string(), "1500.0");
        assert_eq!(Amount::from_tiyn(1250).to_wire_string(), "12.5");
        assert_eq!(Amount::from_tiyn(1234).to_wire_string(), "12.34");
        assert_eq!(serde_json::to_string(&a).unwrap(), "1500.0");
        let back: Amount = serde_json::from_str("1500.0").unwrap();
        assert_eq!(back, a);
        let big: Amount = serde_json::from_str("99999999.99").unwrap();
        assert_eq!(big.tiyn(), 9_999_999_999);
    }
}
