//! Browser tests: a real headless Chromium driven over WebDriver (chromedriver) with
//! fantoccini.
//!
//! ```ignore
//! let Some(browser) = common::browser::start().await else {
//!     return; // no browser here, outside CI: the test said it was skipped
//! };
//! browser.goto(&format!("http://{addr}/")).await;
//! browser.click("#pay").await;
//! browser.wait_text("#status", "Оплачено", Duration::from_secs(5)).await;
//! browser.screenshots("pay-page").await;
//! browser.close().await;
//! ```
//!
//! Elements are found by CSS selector, once, with no implicit wait: a selector that matches
//! nothing yet fails at once, so wait with [`Browser::wait_text`] for what a page shows later.
//! Anything else WebDriver can do is on [`Browser::client`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

/// The desktop viewport, in CSS pixels.
pub const DESKTOP: (u32, u32) = (1280, 900);
/// The phone viewport (an iPhone 12–15), in CSS pixels.
pub const PHONE: (u32, u32) = (390, 844);

/// How long chromedriver may take to answer after it starts, and Chromium to open a session.
const STARTUP: Duration = Duration::from_secs(20);
/// How long a page may take to load before `goto` fails.
const PAGE_LOAD: Duration = Duration::from_secs(30);

/// A headless Chromium with its own fresh profile, and the chromedriver driving it.
pub struct Browser {
    /// The WebDriver session, for whatever the helpers here don't cover.
    pub client: Client,
    driver: tokio::process::Child,
    /// The profile (`--user-data-dir`), removed when the browser is dropped.
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    /// Kills chromedriver's process group: chromedriver, and the Chromium processes it started,
    /// which killing chromedriver alone would leave running.
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Starts chromedriver and a headless Chromium at the desktop size. `None` (after one line on
/// stderr saying the test was skipped) when either is missing outside CI; in CI (env `CI`
/// set) a missing browser fails the test.
pub async fn start() -> Option<Browser> {
    let driver_path = match find(
        "KASSA_CHROMEDRIVER",
        "/usr/bin/chromedriver",
        &["chromedriver"],
    ) {
        Ok(path) => path,
        Err(why) => return missing(&why),
    };
    let chromium = match find(
        "KASSA_CHROMIUM",
        "/usr/bin/chromium",
        &["chromium", "chromium-browser"],
    ) {
        Ok(path) => path,
        Err(why) => return missing(&why),
    };

    let port = free_port();
    let mut driver = tokio::process::Command::new(&driver_path)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // A process group of its own, which Chromium joins: `Drop` kills them all.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_path.display()));
    wait_listening(&mut driver, port).await;

    let profile = tempfile::tempdir().expect("a tempdir for the browser profile");
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                "--lang=ru-RU",
                format!("--user-data-dir={}", profile.path().display()),
            ],
            // `--lang` alone changes nothing on Linux: this is what pages see
            // (`navigator.languages`, the `Accept-Language` header).
            "prefs": { "intl": { "accept_languages": "ru-RU,ru" } },
        }),
    );
    let connecting = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await;
    let client = connecting
        .unwrap_or_else(|e| panic!("chromedriver could not start {}: {e}", chromium.display()));
    client
        .update_timeouts(TimeoutConfiguration::new(None, Some(PAGE_LOAD), None))
        .await
        .expect("page load timeout set");
    let browser = Browser {
        client,
        driver,
        _profile: profile,
    };
    browser.set_size(DESKTOP.0, DESKTOP.1).await;
    Some(browser)
}

impl Browser {
    /// Opens `url` and waits until the page has loaded.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// Makes the page's viewport `width` × `height` CSS pixels (`innerWidth` × `innerHeight`).
    /// The window is larger: even headless, Chromium counts a toolbar's height in it (about
    /// 140 px), so the window is resized once, measured, and resized again by the difference.
    pub async fn set_size(&self, width: u32, height: u32) {
        self.window_rect(width, height).await;
        let (inner_width, inner_height) = self.viewport().await;
        if (inner_width, inner_height) != (width, height) {
            self.window_rect(
                (2 * width).saturating_sub(inner_width),
                (2 * height).saturating_sub(inner_height),
            )
            .await;
        }
    }

    /// The page's viewport now: `innerWidth` × `innerHeight`, in CSS pixels.
    pub async fn viewport(&self) -> (u32, u32) {
        let size = self
            .client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .expect("the viewport measured");
        let side = |i: usize| {
            size[i]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or_else(|| panic!("not a viewport size: {size}"))
        };
        (side(0), side(1))
    }

    async fn window_rect(&self, width: u32, height: u32) {
        self.client
            .set_window_rect(0, 0, width, height)
            .await
            .unwrap_or_else(|e| panic!("cannot resize the window to {width}x{height}: {e}"));
    }

    /// Saves what the viewport shows as `<name>.png` in the screenshot folder (env
    /// `KASSA_SCREENSHOTS`, by default `target/screenshots/` of the workspace); its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot taken");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Saves `<name>-desktop.png` at 1280×900 and `<name>-phone.png` at 390×844, then goes
    /// back to the desktop size; both paths. Fails when the phone picture is not 390 pixels
    /// wide (a browser that would not shrink its window that far).
    pub async fn screenshots(&self, name: &str) -> (PathBuf, PathBuf) {
        self.set_size(DESKTOP.0, DESKTOP.1).await;
        let desktop = self.screenshot(&format!("{name}-desktop")).await;
        self.set_size(PHONE.0, PHONE.1).await;
        let phone = self.screenshot(&format!("{name}-phone")).await;
        self.set_size(DESKTOP.0, DESKTOP.1).await;
        let width = png_width(&phone);
        assert_eq!(
            width,
            PHONE.0,
            "{} is {width} px wide, not the phone's {}",
            phone.display(),
            PHONE.0
        );
        (desktop, phone)
    }

    /// The visible text of the first element matching `css` (what a person sees: hidden
    /// parts give nothing).
    pub async fn text(&self, css: &str) -> String {
        self.find(css)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("no text of {css:?}: {e}"))
    }

    /// [`Browser::text`], or `None` while there is no such element or it is going away (a page
    /// being replaced): for waiting on a page that is loading.
    pub async fn try_text(&self, css: &str) -> Option<String> {
        let element = self.client.find(Locator::Css(css)).await.ok()?;
        element.text().await.ok()
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css:?}: {e}"));
    }

    /// Empties the field matching `css`, then types `value` into it.
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("cannot clear {css:?}: {e}"));
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("cannot type into {css:?}: {e}"));
    }

    /// Checks every 100 ms, for at most `limit`, until the element matching `css` is there and
    /// its text contains `needle`; on time-out, fails showing the last text seen.
    pub async fn wait_text(&self, css: &str, needle: &str, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let seen = match self.client.find(Locator::Css(css)).await {
                Ok(element) => match element.text().await {
                    Ok(text) if text.contains(needle) => return,
                    Ok(text) => format!("{text:?}"),
                    Err(e) => format!("(no text: {e})"),
                },
                Err(e) => format!("(no such element: {e})"),
            };
            if tokio::time::Instant::now() >= deadline {
                panic!("{css:?} did not show {needle:?} within {limit:?}; last seen: {seen}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The path of the page now shown (`/pay/42`), without query or fragment.
    pub async fn current_path(&self) -> String {
        let url = self.client.current_url().await.expect("current URL");
        url.path().to_owned()
    }

    /// Accepts the confirmation the page's script asked for (`data-confirm`), once it shows.
    pub async fn accept_confirm(&self) {
        super::wait_for(Duration::from_secs(5), || async {
            self.client.accept_alert().await.ok()
        })
        .await
        .expect("no confirmation was asked");
    }

    /// Ends the session (Chromium quits) and stops chromedriver. Dropping a `Browser` without
    /// this (a test that failed) kills both at once instead.
    pub async fn close(self) {
        if let Err(e) = self.client.clone().close().await {
            eprintln!("closing the browser session: {e}");
        }
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element matches {css:?}: {e}"))
    }
}

/// The program named by env `var`, else `default`, else the first of `names` on PATH; or why
/// there is none.
fn find(var: &str, default: &str, names: &[&str]) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(var) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{var}={} does not exist", path.display()))
        };
    }
    if Path::new(default).is_file() {
        return Ok(default.into());
    }
    let on_path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&on_path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            format!(
                "no {default}, no {} on PATH, {var} not set",
                names.join(" or ")
            )
        })
}

/// Outside CI: says on stderr that the browser test is skipped, and why. In CI: fails.
fn missing(why: &str) -> Option<Browser> {
    if std::env::var_os("CI").is_some() {
        panic!(
            "chromium/chromedriver missing: .ci/run installs them with apt-get install chromium \
             chromium-driver ({why})"
        );
    }
    // Straight to stderr: libtest hides `eprintln!` of a passing test.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "browser test SKIPPED: chromium/chromedriver missing ({why})"
    );
    None
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// Waits until chromedriver accepts connections on `port`; fails if it exits or takes too long.
async fn wait_listening(driver: &mut tokio::process::Child, port: u16) {
    let deadline = tokio::time::Instant::now() + STARTUP;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        if let Ok(Some(status)) = driver.try_wait() {
            panic!("chromedriver exited before listening on port {port}: {status}");
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("chromedriver did not listen on port {port} within {STARTUP:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where screenshots go: env `KASSA_SCREENSHOTS`, else `<workspace>/target/screenshots`.
fn screenshot_dir() -> PathBuf {
    match std::env::var_os("KASSA_SCREENSHOTS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .expect("the workspace holds crates/kassa")
            .join("target/screenshots"),
    }
}

/// The width of the PNG at `path`, from its header (IHDR, bytes 16..20, big-endian).
pub fn png_width(path: &Path) -> u32 {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        bytes.len() >= 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR",
        "{} is not a PNG",
        path.display()
    );
    u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]])
}
