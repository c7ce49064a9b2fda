//! A `kassa serve` process in sandbox mode on a test database (its address, first sign-in
//! link, data dir, and its CLI), and a dashboard visitor: an HTTP client holding one session's
//! cookies by hand, not following redirects.

use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::StatusCode;

/// A `kassa serve` in sandbox mode: its address and the one-time sign-in link it printed.
pub struct Served {
    pub child: tokio::process::Child,
    pub addr: String,
    pub first_link: String,
    pub data_dir: tempfile::TempDir,
    pub database_url: String,
}

impl Served {
    pub async fn start(database_url: &str) -> Served {
        let data_dir = tempfile::tempdir().expect("data dir");
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kassa"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("KASSA_DATA_DIR", data_dir.path())
            .env("KASSA_DATABASE_URL", database_url)
            .env("KASSA_RATE_LIMIT_PER_MINUTE", "0")
            .env("KASSA_WEBHOOK_ALLOW_PRIVATE", "1")
            .env("KASSA_WEBHOOK_RETRY_SCHEDULE", "100ms,200ms,300ms")
            .env("RUST_LOG", "warn")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("kassa starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
        let (addr, first_link) = tokio::time::timeout(Duration::from_secs(60), async {
            let mut addr = None;
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(a) = line.strip_prefix("kassa listening on http://") {
                    addr = Some(a.trim().to_owned());
                }
                if let Some(at) = line.find("/dashboard/login/") {
                    let link = line[..].trim().to_owned();
                    assert!(at > 0, "{line}");
                    return (addr.expect("listening first"), link);
                }
            }
            panic!("kassa exited before printing the dashboard link");
        })
        .await
        .expect("kassa starts in time");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Served {
            child,
            addr,
            first_link,
            data_dir,
            database_url: database_url.to_owned(),
        }
    }

    /// Stops the server (as a signal stops it) and removes its data dir.
    pub async fn stop(self) {
        let Served {
            child, data_dir, ..
        } = self;
        super::terminate(child).await;
        drop(data_dir);
    }

    /// `kassa user create` of `email` in `org` with `role` and `password`; its stdout.
    pub fn create_user(&self, org: &str, email: &str, role: &str, password: &str) -> String {
        self.cli(
            &[
                "user",
                "create",
                "--org",
                org,
                "--email",
                email,
                "--role",
                role,
                "--password-stdin",
            ],
            &format!("{password}\n"),
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A new one-time sign-in link of `email` (`kassa user login-link`).
    pub fn login_link(&self, email: &str) -> String {
        let base = self.url("");
        let link = self.cli(
            &["user", "login-link", "--email", email, "--url", &base],
            "",
        );
        link.trim().to_owned()
    }

    /// Runs `kassa <args>` on this server's data dir and database, `stdin` as its input;
    /// its stdout.
    pub fn cli(&self, args: &[&str], stdin: &str) -> String {
        use std::io::Write as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kassa"))
            .args(args)
            .env("KASSA_DATA_DIR", self.data_dir.path())
            .env("KASSA_DATABASE_URL", &self.database_url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kassa runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("written");
        let out = child.wait_with_output().expect("kassa ends");
        assert!(
            out.status.success(),
            "kassa {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }
}

/// An HTTP client that does not follow redirects, holding one session's cookies by hand.
pub struct Visitor {
    pub http: reqwest::Client,
    pub base: String,
    pub cookies: Vec<(String, String)>,
}

pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    /// The CSRF token of the page's first form.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf_token\" value=\"")
            .unwrap_or_else(|| panic!("a form with a CSRF token: {}", self.body));
        let rest = &self.body[at + "name=\"csrf_token\" value=\"".len()..];
        rest[..rest.find('"').expect("closing quote")].to_owned()
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

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn take(&mut self, r: reqwest::Response) -> Page {
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

    /// Signs in with the form; the answer to the form's `POST`.
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
