//! Placeholder rewriting: SQL is written once with PostgreSQL's `$1, $2…`; SQLite gets `?1, ?2…`.
//!
//! SQLite would accept `$1` but treat it as a *named* parameter numbered by first appearance, so
//! `VALUES ($2, $1)` would bind backwards; `?N` keeps the numbers. Text inside quotes and comments
//! is left alone. Each connection keeps a small cache so a statement is rewritten once.

use std::collections::HashMap;

/// Rewrites `$N` outside string literals, quoted identifiers and comments into `?N`.
pub fn to_sqlite_placeholders(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    // Start of the text not yet copied to `out`.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                // A doubled quote inside is two adjacent literals for this scan: same result.
                i = find_byte(bytes, i + 1, quote).map_or(bytes.len(), |end| end + 1);
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = find_byte(bytes, i + 2, b'\n').map_or(bytes.len(), |end| end + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |end| i + 2 + end + 2);
            }
            b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
                && !(i > 0 && is_ident_byte(bytes[i - 1])) =>
            {
                out.push_str(&sql[copied..i]);
                out.push('?');
                copied = i + 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    out
}

fn find_byte(bytes: &[u8], from: usize, needle: u8) -> Option<usize> {
    bytes
        .get(from..)?
        .iter()
        .position(|b| *b == needle)
        .map(|p| from + p)
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// A per-connection cache of rewritten statements.
#[derive(Debug, Default)]
pub struct PlaceholderCache {
    rewritten: HashMap<String, String>,
}

impl PlaceholderCache {
    /// Past this many distinct statements the cache starts over: the gateway has far fewer, so
    /// only SQL built at run time (which it should not do) could grow it.
    const MAX_ENTRIES: usize = 1024;

    /// `sql` with SQLite placeholders.
    pub fn sqlite<'a>(&'a mut self, sql: &'a str) -> &'a str {
        if !sql.contains('$') {
            return sql;
        }
        if !self.rewritten.contains_key(sql) {
            if self.rewritten.len() >= Self::MAX_ENTRIES {
                self.rewritten.clear();
            }
            self.rewritten
                .insert(sql.to_owned(), to_sqlite_placeholders(sql));
        }
        self.rewritten.get(sql).map_or(sql, String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::{to_sqlite_placeholders as rw, PlaceholderCache};

    #[test]
    fn rewrites_numbered_placeholders() {
        assert_eq!(
            rw("INSERT INTO t (a, b) VALUES ($2, $1) RETURNING a"),
            "INSERT INTO t (a, b) VALUES (?2, ?1) RETURNING a"
        );
        assert_eq!(rw("SELECT $10,$1"), "SELECT ?10,?1");
        assert_eq!(rw("SELECT 1"), "SELECT 1");
    }

    #[test]
    fn leaves_quotes_comments_and_identifiers_alone() {
        assert_eq!(
            rw("SELECT '$1', 'it''s $2', \"$3\", $4 -- $5\n, $6 /* $7 */ , a$8, $ 9"),
            "SELECT '$1', 'it''s $2', \"$3\", ?4 -- $5\n, ?6 /* $7 */ , a$8, $ 9"
        );
        assert_eq!(rw("SELECT 'unterminated $1"), "SELECT 'unterminated $1");
    }

    #[test]
    fn cache_returns_the_rewrite() {
        let mut cache = PlaceholderCache::default();
        assert_eq!(cache.sqlite("SELECT $1"), "SELECT ?1");
        assert_eq!(cache.sqlite("SELECT $1"), "SELECT ?1");
        assert_eq!(cache.sqlite("SELECT 1"), "SELECT 1");
    }
}
