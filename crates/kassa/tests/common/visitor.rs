//! A browser-less dashboard visitor: an HTTP client that follows no redirect and keeps one
//! visitor's cookies by hand, so a test sees every `Set-Cookie` and `Location`.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::StatusCode;

/// One visitor of the dashboard at `base` (`http://addr`).
pub struct Visitor {
    pub http: reqwest::Client,
    base: String,
    pub cookies: Vec<(String, String)>,
}

/// An answer, read whole.
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    /// The CSRF token of the page's first form.
    pub fn csrf(&self) -> String {
        self.between("name=\"csrf_token\" value=\"", "\"")
    }

    /// The text between the first `start` and the `end` after it.
    pub fn between(&self, start: &str, end: &str) -> String {
        let at = self
            .body
            .find(start)
            .unwrap_or_else(|| panic!("{start:?} in the page: {}", self.body));
        let rest = &self.body[at + start.len()..];
        rest[..rest.find(end).expect("the end")].to_owned()
    }
}

impl Visitor {
    pub fn new(base: &str) -> Visitor {
        Visitor {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("client"),
            base: base.to_owned(),
            cookies: Vec::new(),
        }
    }

    pub fn has_cookie(&self, name: &str) -> bool {
        self.cookies.iter().any(|(k, _)| k == name)
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn take(&mut self, r: reqwest::Response) -> Page {
        for c in r.headers().get_all(SET_COOKIE) {
            let c = c.to_str().expect("ascii cookie");
            let pair = c.split(';').next().expect("pair");
            let (k, v) = pair.split_once('=').expect("name=value");
            self.cookies.retain(|(name, _)| name != k);
            if !v.is_empty() && !c.contains("Max-Age=0") {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
        }
        Page {
            status: r.status(),
            location: r
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().expect("ascii").to_owned()),
            body: r.text().await.expect("body"),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.take(r).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .form(form)
            .send()
            .await
            .expect("POST");
        self.take(r).await
    }

    /// `POST path` with the CSRF token of the page at `from` and `form`.
    pub async fn submit(&mut self, from: &str, path: &str, form: &[(&str, &str)]) -> Page {
        let csrf = self.get(from).await.csrf();
        let mut fields = vec![("csrf_token", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post(path, &fields).await
    }

    /// Signs in with the password form, on to the invoices; the answer to the form's `POST`.
    pub async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let form = self.get("/dashboard/login").await;
        assert_eq!(form.status, StatusCode::OK);
        assert!(form.body.contains("name=\"email\"") && form.body.contains("name=\"password\""));
        let csrf = form.csrf();
        self.post(
            "/dashboard/login",
            &[
                ("email", email),
                ("password", password),
                ("csrf_token", &csrf),
                ("next", "/dashboard/invoices"),
            ],
        )
        .await
    }
}
