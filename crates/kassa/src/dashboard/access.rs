//! Who may open which dashboard route: every route (method and path as the router matched it)
//! needs one [`Action`], listed here in one table; the session check asks [`required`] and
//! [`Role::may`](crate::domain::Role::may) before any handler runs. A route missing from the
//! table is refused to everyone (and logged as a bug), so forgetting one cannot open it: any
//! test that uses the new route fails until it is listed.

use axum::http::Method;

use crate::domain::Action;

/// `(method, path under /dashboard, action)`: `GET` also covers `HEAD`.
const ROUTES: &[(&str, &str, Action)] = &[
    // Reading.
    ("GET", "/", Action::View),
    ("GET", "/invoices", Action::View),
    ("GET", "/invoices.csv", Action::View),
    ("GET", "/invoices/{id}", Action::View),
    ("GET", "/invoices/{id}/status", Action::View),
    ("GET", "/invoices/{id}/qr.png", Action::View),
    ("GET", "/subscriptions", Action::View),
    ("GET", "/subscriptions/{id}", Action::View),
    ("GET", "/catalog", Action::View),
    ("GET", "/catalog/images/{file}", Action::View),
    ("GET", "/catalog/{id}", Action::View),
    ("GET", "/webhooks", Action::View),
    ("GET", "/webhooks/{id}", Action::View),
    ("GET", "/api-keys", Action::View),
    ("GET", "/cashier", Action::View),
    ("GET", "/cashier/step", Action::View),
    ("GET", "/sandbox", Action::View),
    ("GET", "/team", Action::View),
    // Their own account.
    ("POST", "/logout", Action::OwnAccount),
    ("GET", "/password", Action::OwnAccount),
    ("POST", "/password", Action::OwnAccount),
    // Invoices.
    ("GET", "/invoices/new", Action::CreateInvoice),
    ("POST", "/invoices/new", Action::CreateInvoice),
    ("POST", "/invoices/{id}/cancel", Action::CancelInvoice),
    ("POST", "/invoices/{id}/refund", Action::RefundInvoice),
    (
        "POST",
        "/invoices/{id}/sandbox/{action}",
        Action::UseSandbox,
    ),
    (
        "POST",
        "/invoices/{id}/deliveries/{endpoint}/{delivery}/redeliver",
        Action::ManageWebhooks,
    ),
    // Subscriptions.
    ("GET", "/subscriptions/new", Action::ManageSubscriptions),
    ("POST", "/subscriptions/new", Action::ManageSubscriptions),
    (
        "POST",
        "/subscriptions/{id}/pause",
        Action::ManageSubscriptions,
    ),
    (
        "POST",
        "/subscriptions/{id}/resume",
        Action::ManageSubscriptions,
    ),
    (
        "POST",
        "/subscriptions/{id}/cancel",
        Action::ManageSubscriptions,
    ),
    // The catalog.
    ("POST", "/catalog", Action::ManageCatalog),
    ("POST", "/catalog/{id}", Action::ManageCatalog),
    ("POST", "/catalog/{id}/delete", Action::ManageCatalog),
    ("POST", "/catalog/{id}/image", Action::ManageCatalog),
    ("POST", "/catalog/{id}/image/delete", Action::ManageCatalog),
    // Webhooks.
    ("POST", "/webhooks", Action::ManageWebhooks),
    ("POST", "/webhooks/{id}/rotate", Action::ManageWebhooks),
    ("POST", "/webhooks/{id}/enable", Action::ManageWebhooks),
    ("POST", "/webhooks/{id}/disable", Action::ManageWebhooks),
    ("POST", "/webhooks/{id}/test", Action::ManageWebhooks),
    ("POST", "/webhooks/{id}/delete", Action::ManageWebhooks),
    (
        "POST",
        "/webhooks/{id}/deliveries/{delivery}/redeliver",
        Action::ManageWebhooks,
    ),
    // API keys.
    ("POST", "/api-keys", Action::ManageApiKeys),
    ("POST", "/api-keys/{id}/revoke", Action::ManageApiKeys),
    // The cashier.
    ("POST", "/cashier/connect", Action::ManageCashier),
    ("POST", "/cashier/answer", Action::ManageCashier),
    // The sandbox.
    ("POST", "/sandbox/clock", Action::UseSandbox),
    // The team.
    ("POST", "/team/invite", Action::ManageTeam),
    ("POST", "/team/{id}/role", Action::ManageTeam),
    ("POST", "/team/{id}/remove", Action::ManageTeam),
];

/// The action a request to `route` (the matched path, with or without the `/dashboard`
/// prefix) with `method` needs; `None` when the table does not list it.
pub(super) fn required(method: &Method, route: &str) -> Option<Action> {
    let route = route.strip_prefix(super::PREFIX).unwrap_or(route);
    let route = if route.is_empty() { "/" } else { route };
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTES
        .iter()
        .find(|(m, path, _)| *m == method && *path == route)
        .map(|(_, _, action)| *action)
}

/// The actions every page's template may ask about (`can.<action>`), for the signed-in role.
pub(super) fn can(role: crate::domain::Role) -> serde_json::Value {
    Action::ALL
        .iter()
        .map(|a| (a.as_str().to_owned(), role.may(*a).into()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for (method, path, _) in ROUTES {
            assert!(["GET", "POST"].contains(method), "{method} {path}");
            assert!(path.starts_with('/'), "{path}");
            assert!(seen.insert((method, path)), "{method} {path} twice");
        }
    }

    #[test]
    fn every_change_needs_more_than_reading() {
        for (method, path, action) in ROUTES {
            if *method == "POST" {
                assert_ne!(*action, Action::View, "POST {path}");
            }
        }
    }

    #[test]
    fn lookup() {
        assert_eq!(required(&Method::GET, "/dashboard"), Some(Action::View));
        assert_eq!(required(&Method::GET, "/dashboard/"), Some(Action::View));
        assert_eq!(required(&Method::HEAD, "/invoices"), Some(Action::View));
        assert_eq!(
            required(&Method::POST, "/dashboard/invoices/{id}/refund"),
            Some(Action::RefundInvoice)
        );
        assert_eq!(required(&Method::POST, "/invoices/{id}"), None);
        assert_eq!(required(&Method::DELETE, "/invoices/{id}"), None);
    }
}
