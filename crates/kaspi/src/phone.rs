//! Phone numbers as Kaspi takes them: 10 local digits starting with 7 (`7001234567`).

use std::fmt;

/// A Kazakhstan mobile number normalized to Kaspi's 10 digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a Kazakhstan mobile number such as 87001234567 or +7 700 123 45 67")]
pub struct PhoneError;

/// Accepts `87001234567`, `+77001234567`, `7001234567`, with spaces, brackets and dashes.
pub fn normalize(input: &str) -> Result<Phone, PhoneError> {
    let rest = input.strip_prefix('+').unwrap_or(input);
    if rest.is_empty()
        || !rest
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '(' | ')' | '-'))
    {
        return Err(PhoneError);
    }
    let mut digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    if digits.len() == 11 && (digits.starts_with('7') || digits.starts_with('8')) {
        digits.remove(0);
    }
    if digits.len() != 10 || !digits.starts_with('7') {
        return Err(PhoneError);
    }
    Ok(Phone(digits))
}

impl Phone {
    /// The 10 digits Kaspi takes.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The `8XXXXXXXXXX` form users and ApiPay write.
    pub fn national(&self) -> String {
        format!("8{}", self.0)
    }
    /// The `+7XXXXXXXXXX` form.
    pub fn international(&self) -> String {
        format!("+7{}", self.0)
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.0)
    }
}

impl std::str::FromStr for Phone {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        normalize(s)
    }
}
