//! What an API key may do: a [`Scope`] is one resource and one action (`invoices:write`), a
//! key holds a set of them ([`Scopes`]).
//!
//! Rules:
//! - A write scope implies the read scope of the same resource: a key that may create invoices
//!   may read them back. [`Scopes`] keeps the implied read bit set, so a check is one bit test.
//! - A key made without a choice holds every scope ([`Scopes::ALL`]), written `*`; it is stored
//!   that way, so such a key also holds scopes a later version adds.
//! - Text forms: `resource:action`, several separated by spaces or commas. [`Scopes`] displays
//!   in its shortest form: `*`, else one entry per resource, its write scope standing for the
//!   read it implies (`invoices:write refunds:read`).

use std::fmt;

/// What a scope is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// Invoices and payments: create, cancel, read, stats, status checks, QR codes, the
    /// sandbox payer's helpers.
    Invoices,
    /// Refunds of paid invoices.
    Refunds,
    /// Recurring invoices.
    Subscriptions,
    /// Units, items and their images.
    Catalog,
    /// Webhook endpoints, their secrets and deliveries.
    Webhooks,
}

impl Resource {
    /// Every resource, in the order scopes are listed.
    pub const ALL: [Resource; 5] = [
        Resource::Invoices,
        Resource::Refunds,
        Resource::Subscriptions,
        Resource::Catalog,
        Resource::Webhooks,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Invoices => "invoices",
            Resource::Refunds => "refunds",
            Resource::Subscriptions => "subscriptions",
            Resource::Catalog => "catalog",
            Resource::Webhooks => "webhooks",
        }
    }

    fn index(self) -> u16 {
        match self {
            Resource::Invoices => 0,
            Resource::Refunds => 1,
            Resource::Subscriptions => 2,
            Resource::Catalog => 3,
            Resource::Webhooks => 4,
        }
    }
}

/// Reading or changing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Read,
    Write,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
        }
    }
}

/// One permission: a resource and an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scope {
    pub resource: Resource,
    pub action: Action,
}

impl Scope {
    pub const fn new(resource: Resource, action: Action) -> Scope {
        Scope { resource, action }
    }

    pub const fn read(resource: Resource) -> Scope {
        Scope::new(resource, Action::Read)
    }

    pub const fn write(resource: Resource) -> Scope {
        Scope::new(resource, Action::Write)
    }

    /// Every scope, reads before writes per resource.
    pub fn all() -> impl Iterator<Item = Scope> {
        Resource::ALL
            .into_iter()
            .flat_map(|r| [Scope::read(r), Scope::write(r)])
    }

    /// `invoices:read`; [`ScopeError`] (which lists the valid ones) for anything else.
    pub fn parse(text: &str) -> Result<Scope, ScopeError> {
        let text = text.trim();
        Scope::all()
            .find(|s| s.to_string().eq_ignore_ascii_case(text))
            .ok_or_else(|| ScopeError {
                given: text.to_owned(),
            })
    }

    fn bit(self) -> u16 {
        let action = match self.action {
            Action::Read => 0,
            Action::Write => 1,
        };
        1 << (self.resource.index() * 2 + action)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource.as_str(), self.action.as_str())
    }
}

/// A text that is not a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeError {
    pub given: String,
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let valid: Vec<String> = Scope::all().map(|s| s.to_string()).collect();
        write!(
            f,
            "unknown scope {:?}; valid scopes: {}",
            self.given,
            valid.join(", ")
        )
    }
}

impl std::error::Error for ScopeError {}

/// The scopes of one key, as a bit set (write bits always carry their read bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scopes(u16);

impl Scopes {
    /// Every scope: a key made without a choice.
    pub const ALL: Scopes = Scopes((1 << (Resource::ALL.len() * 2)) - 1);
    /// No scope at all (a key cannot be made with it; a start for building a set).
    pub const NONE: Scopes = Scopes(0);

    /// Adds `scope` (and the read it implies).
    pub fn with(self, scope: Scope) -> Scopes {
        let implied = Scope::read(scope.resource).bit();
        Scopes(self.0 | scope.bit() | implied)
    }

    /// Whether a request needing `scope` may go ahead.
    pub fn allows(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn is_all(self) -> bool {
        self == Scopes::ALL
    }

    /// The scopes held, implied reads included, reads before writes.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::all().filter(move |s| self.allows(*s))
    }

    /// The shortest listing: one scope per resource held, a write standing for its read.
    pub fn shortest(self) -> Vec<Scope> {
        Resource::ALL
            .into_iter()
            .filter_map(|r| {
                if self.allows(Scope::write(r)) {
                    Some(Scope::write(r))
                } else if self.allows(Scope::read(r)) {
                    Some(Scope::read(r))
                } else {
                    None
                }
            })
            .collect()
    }

    /// The set named by `texts` (each one scope); the first unknown one is the error.
    pub fn from_list<S: AsRef<str>>(texts: &[S]) -> Result<Scopes, ScopeError> {
        texts.iter().try_fold(Scopes::NONE, |set, t| {
            Ok(set.with(Scope::parse(t.as_ref())?))
        })
    }

    /// Reads the stored (or displayed) form: `*`, or scopes separated by spaces or commas.
    pub fn parse(text: &str) -> Result<Scopes, ScopeError> {
        if text.trim() == "*" {
            return Ok(Scopes::ALL);
        }
        let parts: Vec<&str> = text
            .split([' ', ','])
            .filter(|p| !p.trim().is_empty())
            .collect();
        Scopes::from_list(&parts)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("*");
        }
        let names: Vec<String> = self.shortest().iter().map(|s| s.to_string()).collect();
        f.write_str(&names.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_display() {
        for scope in Scope::all() {
            assert_eq!(Scope::parse(&scope.to_string()), Ok(scope));
        }
        assert_eq!(
            Scope::parse(" Invoices:Write "),
            Ok(Scope::write(Resource::Invoices))
        );
        let err = Scope::parse("invoices:delete").expect_err("unknown");
        let text = err.to_string();
        assert!(text.contains("\"invoices:delete\""), "{text}");
        assert!(text.contains("webhooks:write"), "{text}");
        assert!(Scope::parse("invoices").is_err());
        assert!(Scope::parse("").is_err());
        assert_eq!(Scope::all().count(), 10);
    }

    #[test]
    fn write_implies_read_of_the_same_resource_only() {
        let set = Scopes::NONE.with(Scope::write(Resource::Invoices));
        assert!(set.allows(Scope::read(Resource::Invoices)));
        assert!(set.allows(Scope::write(Resource::Invoices)));
        assert!(!set.allows(Scope::read(Resource::Refunds)));
        let read = Scopes::NONE.with(Scope::read(Resource::Refunds));
        assert!(read.allows(Scope::read(Resource::Refunds)));
        assert!(!read.allows(Scope::write(Resource::Refunds)));
        assert!(Scopes::NONE.is_empty());
        assert!(Scope::all().all(|s| Scopes::ALL.allows(s)));
        assert!(Scope::all().all(|s| !Scopes::NONE.allows(s)));
    }

    #[test]
    fn sets_round_trip_in_their_shortest_form() {
        assert_eq!(Scopes::ALL.to_string(), "*");
        assert_eq!(Scopes::parse("*"), Ok(Scopes::ALL));
        let set = Scopes::parse("refunds:read, invoices:write invoices:read").expect("valid");
        assert_eq!(set.to_string(), "invoices:write refunds:read");
        assert_eq!(Scopes::parse(&set.to_string()), Ok(set));
        assert_eq!(
            set.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            ["invoices:read", "invoices:write", "refunds:read"]
        );
        // Every scope named one by one is the whole set.
        let every: Vec<String> = Scope::all().map(|s| s.to_string()).collect();
        assert_eq!(Scopes::from_list(&every), Ok(Scopes::ALL));
        assert_eq!(Scopes::parse(""), Ok(Scopes::NONE));
        assert!(Scopes::parse("invoices:read bogus").is_err());
    }
}
