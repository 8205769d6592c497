//! The board in a real browser: Debian's chromium, headless, driven through
//! chromedriver's `WebDriver` protocol with a few lines of HTTP written here.
//! Two members sign in; one offers a drill, the other asks for it; it is
//! accepted, handed over and returned. Screenshots of the front page are
//! saved under `target/board-screenshots/`. Without chromium the test fails:
//! `.ci/run` installs it.

// A test that cannot unwrap has failed, and the panic says where.
#![allow(clippy::unwrap_used)]

mod board_support;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use board_support::TestBoard;
use serde_json::{Value, json};

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is missing: install Debian's `chromium` and `chromium-driver` (.ci/run does)");
        let driver = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && driver.call("GET", "/status", None)["ready"] == true
            {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One `WebDriver` command: JSON over HTTP/1.1.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_mins(1)))
            .unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .unwrap();
        // chromedriver keeps the connection open whatever the request says:
        // read the headers, then exactly the body they announce.
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 65_536];
        let head_end = loop {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "chromedriver closed the connection");
            raw.extend_from_slice(&buf[..n]);
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse::<usize>().unwrap());
        let chunked = head.contains("transfer-encoding: chunked");
        loop {
            let have = raw.len() - head_end;
            let done = match length {
                Some(len) => have >= len,
                None if chunked => raw.ends_with(b"0\r\n\r\n"),
                None => false,
            };
            if done {
                break;
            }
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
        }
        let rest = String::from_utf8_lossy(&raw[head_end..]).into_owned();
        let json_text = if chunked { dechunk(&rest) } else { rest };
        let value: Value = serde_json::from_str(&json_text).unwrap();
        let value = value["value"].clone();
        assert!(value.get("error").is_none(), "{method} {path}: {value}");
        value
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

/// One browser window.
struct Browser<'a> {
    driver: &'a Driver,
    session: String,
    base: String,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl<'a> Browser<'a> {
    fn open(driver: &'a Driver, base: &str) -> Self {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--lang=en"]
            }
        }}});
        let value = driver.call("POST", "/session", Some(caps));
        let browser = Self {
            driver,
            session: value["sessionId"].as_str().unwrap().to_string(),
            base: base.to_string(),
        };
        // Elements are looked for up to 5 s, while the next page loads.
        browser.cmd("POST", "/timeouts", Some(json!({"implicit": 5000})));
        browser
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.driver
            .call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn go(&self, path: &str) {
        self.cmd(
            "POST",
            "/url",
            Some(json!({"url": format!("{}{path}", self.base)})),
        );
    }

    fn find(&self, css: &str) -> String {
        let source = || self.cmd("GET", "/source", None);
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
        }));
        let Ok(v) = found else {
            panic!("no `{css}` on {}:\n{}", self.url(), source());
        };
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("`{css}`: {v}"))
            .to_string()
    }

    fn fill(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.cmd("POST", &format!("/element/{el}/clear"), Some(json!({})));
        self.cmd(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        );
    }

    fn click(&self, css: &str) {
        let el = self.find(css);
        self.cmd("POST", &format!("/element/{el}/click"), Some(json!({})));
    }

    /// Clicks a form's button and waits until the page it leads to has
    /// loaded: a page's own text can already hold what the next one should
    /// show (the "Returned" button before the "Returned" state), so waiting
    /// for text alone could go on while the form is still on its way.
    fn submit(&self, css: &str) {
        let script = |body: &str| json!({"script": body, "args": []});
        self.cmd(
            "POST",
            "/execute/sync",
            Some(script("window.voisinLeaving = true;")),
        );
        self.click(css);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let loaded = self.cmd(
                "POST",
                "/execute/sync",
                Some(script(
                    "return !window.voisinLeaving && document.readyState === 'complete';",
                )),
            );
            if loaded.as_bool() == Some(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "`{css}` led to no new page on {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The visible text of the page, read by script so that a page being
    /// replaced cannot leave a stale element behind.
    fn text(&self) -> String {
        let script =
            json!({"script": "return document.body ? document.body.innerText : '';", "args": []});
        self.cmd("POST", "/execute/sync", Some(script))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits (up to 10 s) until the page shows `needle`, and returns its
    /// text: a click that posts a form returns before the next page is drawn.
    fn wait_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` on {}:\n{text}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap().to_string()
    }

    fn sign_in(&self, login: &str, password: &str) {
        self.go("/");
        self.fill("form[action='/signin'] input[name=login]", login);
        self.fill("form[action='/signin'] input[name=password]", password);
        self.click("form[action='/signin'] button");
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.cmd("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("board-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        path
    }

    fn close(self) {
        self.cmd("DELETE", "", None);
    }
}

fn scenario(driver: &Driver, base: &str) {
    let alice = Browser::open(driver, base);
    let bob = Browser::open(driver, base);

    alice.sign_in("alice", "alice-password");
    alice.wait_text("Signed in as Alice Martin");
    bob.sign_in("bob@amis-quartier.org", "bob-password");
    bob.wait_text("Signed in as Bob Durand");

    alice.go("/offers/new");
    alice.fill("input[name=title]", "Perceuse Bosch");
    alice.click("select[name=category] option:nth-child(3)");
    alice.fill(
        "textarea[name=description]",
        "Drill with a set of bits; hammer mode works.",
    );
    alice.fill("input[name=condition]", "good");
    alice.submit("form[action='/offers'] button");
    alice.wait_text("Your offer is on the board.");
    let offer = alice.url();
    let offer_path = &offer[base.len()..];
    assert!(offer_path.starts_with("/offers/"), "{offer}");

    bob.go("/offers?category=tools");
    bob.wait_text("Perceuse Bosch");
    bob.go(offer_path.split('?').next().unwrap());
    bob.screenshot("offer-ask.png");
    bob.fill("textarea[name=message]", "Could I have it for the weekend?");
    bob.submit("form[action$='/request'] button");
    bob.wait_text("Your request was sent to the owner.");

    alice.go("/requests");
    let page = alice.wait_text("asked by Bob Durand");
    assert!(
        page.contains("Could I have it for the weekend?") && page.contains("asked by Bob Durand")
    );
    alice.submit("form[action$='/accept'] button");
    alice.wait_text("Accepted");
    alice.submit("form[action$='/lend'] button");
    alice.wait_text("Lent");
    bob.go("/requests");
    bob.wait_text("Lent");
    alice.submit("form[action$='/return'] button");
    alice.wait_text("Returned");
    bob.go("/requests");
    bob.wait_text("Returned");
    alice.go("/requests");
    alice.screenshot("requests.png");

    alice.go("/");
    let front = alice.wait_text("Perceuse Bosch");
    assert!(
        front.contains("New this week") && front.contains("Perceuse Bosch"),
        "{front}"
    );
    assert!(alice.screenshot("front.png").exists());
    alice.cmd(
        "POST",
        "/window/rect",
        Some(json!({"width": 390, "height": 844})),
    );
    alice.go("/");
    alice.screenshot("front-phone.png");
    alice.go(offer_path.split('?').next().unwrap());
    alice.screenshot("offer-phone.png");
    bob.go("/signin");
    bob.cmd(
        "POST",
        "/window/rect",
        Some(json!({"width": 390, "height": 844})),
    );
    alice.close();
    bob.close();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_members_lend_and_return_a_drill_in_a_real_browser() {
    let board = TestBoard::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = board
        .board
        .router()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    tokio::task::spawn_blocking(move || {
        let driver = Driver::start();
        scenario(&driver, &base);
    })
    .await
    .unwrap();
    drop(board);
}
