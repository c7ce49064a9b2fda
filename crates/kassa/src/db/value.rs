//! `Value` (a statement parameter or a column value) and `Row` (one result row with typed getters).
//!
//! Only four kinds of value cross the boundary so the same SQL works on both databases: integers
//! (also booleans as 0/1 and timestamps as unix milliseconds), text, bytes and NULL.

use std::sync::Arc;

use super::DbError;

/// A parameter bound to a statement, or a value read from a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer; columns holding it are BIGINT on PostgreSQL.
    Int(i64),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes (BLOB on SQLite, BYTEA on PostgreSQL).
    Bytes(Vec<u8>),
}

impl Value {
    /// The kind of value, for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Value {
        Value::Int(v.into())
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(v.into())
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(v.into())
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Bytes(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Bytes(v.to_vec())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// One result row: the column names (shared by all rows of a result) and the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    /// A row of `values` under `columns`; both have the same length.
    pub(crate) fn new(columns: Arc<[String]>, values: Vec<Value>) -> Row {
        debug_assert_eq!(columns.len(), values.len());
        Row { columns, values }
    }

    /// The column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The value of column `name`, or a `Decode` error when there is no such column.
    pub fn get(&self, name: &str) -> Result<&Value, DbError> {
        self.columns
            .iter()
            .position(|c| c == name)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| DbError::decode(name, "no such column in the result"))
    }

    /// An integer column that must not be NULL.
    pub fn i64(&self, name: &str) -> Result<i64, DbError> {
        self.opt_i64(name)?
            .ok_or_else(|| DbError::decode(name, "expected an integer, found NULL"))
    }

    /// An integer column that may be NULL.
    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, DbError> {
        match self.get(name)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            other => Err(wrong_kind(name, "an integer", other)),
        }
    }

    /// A text column that must not be NULL.
    pub fn text(&self, name: &str) -> Result<String, DbError> {
        self.opt_text(name)?
            .ok_or_else(|| DbError::decode(name, "expected text, found NULL"))
    }

    /// A text column that must hold one of the spellings `parse` knows (an enum's).
    pub fn parsed<T>(&self, name: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T, DbError> {
        let text = self.text(name)?;
        parse(&text).ok_or_else(|| DbError::decode(name, format!("unknown value `{text}`")))
    }

    /// A text column that may be NULL.
    pub fn opt_text(&self, name: &str) -> Result<Option<String>, DbError> {
        match self.get(name)? {
            Value::Null => Ok(None),
            Value::Text(v) => Ok(Some(v.clone())),
            other => Err(wrong_kind(name, "text", other)),
        }
    }

    /// A bytes column that must not be NULL.
    pub fn bytes(&self, name: &str) -> Result<Vec<u8>, DbError> {
        self.opt_bytes(name)?
            .ok_or_else(|| DbError::decode(name, "expected bytes, found NULL"))
    }

    /// A bytes column that may be NULL.
    pub fn opt_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, DbError> {
        match self.get(name)? {
            Value::Null => Ok(None),
            Value::Bytes(v) => Ok(Some(v.clone())),
            other => Err(wrong_kind(name, "bytes", other)),
        }
    }

    /// A boolean stored as the integer 0 or 1 (any other value is a decode error).
    pub fn bool(&self, name: &str) -> Result<bool, DbError> {
        match self.i64(name)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DbError::decode(
                name,
                format!("expected a boolean 0 or 1, found {v}"),
            )),
        }
    }
}

fn wrong_kind(column: &str, expected: &str, found: &Value) -> DbError {
    DbError::decode(
        column,
        format!("expected {expected}, found {}", found.kind()),
    )
}
