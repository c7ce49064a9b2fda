//! `DbError`: the one error type of the database layer, the same for both backends.
//!
//! Errors name the statement by its first words only, never by its parameter values: those can be
//! secrets (tokens, phone numbers). Unique violations get their own variant so callers can detect a
//! conflict without knowing which database is underneath.

/// An error from the database layer.
///
/// `Clone` because one failed group commit answers every write of its batch with the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// The database could not be reached or opened, or the URL or options are unusable.
    #[error("database connection failed: {0}")]
    Connection(String),
    /// A statement failed.
    #[error("database query `{sql}` failed: {message}")]
    Query {
        /// The first words of the SQL, enough to find it in the code.
        sql: String,
        /// The database's message (PostgreSQL's primary message, without the detail line that
        /// can quote row values).
        message: String,
    },
    /// A statement violated a UNIQUE or PRIMARY KEY constraint.
    #[error("unique constraint violated by `{sql}`: {message}")]
    UniqueViolation {
        /// The first words of the SQL.
        sql: String,
        /// The database's message; names the constraint (PostgreSQL) or the columns (SQLite).
        message: String,
    },
    /// A column is missing or does not hold the type asked for.
    #[error("cannot decode column `{column}`: {message}")]
    Decode {
        /// The column's name.
        column: String,
        /// What was wrong.
        message: String,
    },
    /// The database handle is shutting down, or its worker thread is gone.
    #[error("the database is closed")]
    Closed,
}

impl DbError {
    /// A `Query` error for `sql` with `message`.
    pub(crate) fn query(sql: &str, message: impl Into<String>) -> DbError {
        DbError::Query {
            sql: sql_head(sql),
            message: message.into(),
        }
    }

    /// A `Decode` error for `column`.
    pub(crate) fn decode(column: &str, message: impl Into<String>) -> DbError {
        DbError::Decode {
            column: column.to_owned(),
            message: message.into(),
        }
    }
}

/// The first few words of `sql` on one line, for error messages and logs.
pub(crate) fn sql_head(sql: &str) -> String {
    const MAX_WORDS: usize = 6;
    const MAX_CHARS: usize = 60;
    let mut head = String::new();
    let mut words = sql.split_whitespace();
    for (i, word) in words.by_ref().take(MAX_WORDS).enumerate() {
        if head.len() + word.len() > MAX_CHARS {
            head.push_str(" …");
            return head;
        }
        if i > 0 {
            head.push(' ');
        }
        head.push_str(word);
    }
    if words.next().is_some() {
        head.push_str(" …");
    }
    head
}

#[cfg(test)]
mod tests {
    use super::sql_head;

    #[test]
    fn sql_head_keeps_the_first_words() {
        assert_eq!(sql_head("SELECT 1"), "SELECT 1");
        assert_eq!(
            sql_head("INSERT INTO invoices\n  (id, amount, phone, status, created_at) VALUES ($1)"),
            "INSERT INTO invoices (id, amount, phone, …"
        );
    }
}
