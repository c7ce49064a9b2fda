//! The domain's values as the database holds them: money in tiyn and operation ids as BIGINT,
//! phones as Kaspi's 10 digits.

use crate::db::{DbError, Row, Value};
use crate::domain::{date_text, parse_date, parse_phone, KaspiOperationId, Money, Phone};
use time::Date;

impl From<Money> for Value {
    fn from(money: Money) -> Value {
        Value::from(money.tiyn())
    }
}

impl From<KaspiOperationId> for Value {
    fn from(id: KaspiOperationId) -> Value {
        Value::from(id.get())
    }
}

impl From<&Phone> for Value {
    fn from(phone: &Phone) -> Value {
        Value::from(phone.as_str())
    }
}

impl From<Date> for Value {
    fn from(date: Date) -> Value {
        Value::from(date_text(date))
    }
}

/// Reads the domain's values from rows.
pub(crate) trait DomainColumns {
    fn money(&self, name: &str) -> Result<Money, DbError>;
    fn opt_money(&self, name: &str) -> Result<Option<Money>, DbError>;
    fn opt_operation_id(&self, name: &str) -> Result<Option<KaspiOperationId>, DbError>;
    fn opt_phone(&self, name: &str) -> Result<Option<Phone>, DbError>;
    fn opt_date(&self, name: &str) -> Result<Option<Date>, DbError>;
}

impl DomainColumns for Row {
    fn money(&self, name: &str) -> Result<Money, DbError> {
        self.i64(name).map(Money::from_tiyn)
    }

    fn opt_money(&self, name: &str) -> Result<Option<Money>, DbError> {
        Ok(self.opt_i64(name)?.map(Money::from_tiyn))
    }

    fn opt_operation_id(&self, name: &str) -> Result<Option<KaspiOperationId>, DbError> {
        Ok(self.opt_i64(name)?.map(KaspiOperationId::new))
    }

    fn opt_phone(&self, name: &str) -> Result<Option<Phone>, DbError> {
        self.opt_text(name)?
            .map(|text| {
                parse_phone(&text)
                    .map_err(|_| DbError::decode(name, format!("not a phone number `{text}`")))
            })
            .transpose()
    }

    fn opt_date(&self, name: &str) -> Result<Option<Date>, DbError> {
        self.opt_text(name)?
            .map(|text| {
                parse_date(&text)
                    .ok_or_else(|| DbError::decode(name, format!("not a date `{text}`")))
            })
            .transpose()
    }
}
