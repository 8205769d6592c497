//! `voisin board serve` as its container runs it: the real binary,
//! configured through `VOISIN_BOARD_*` variables, on loopback. Secrets (the
//! SMTP password, sign-in tokens, session keys) never reach its log, even
//! when the mail server is down and errors are logged.

// A test that cannot unwrap has failed, and the panic says where.
#![allow(clippy::unwrap_used)]

mod board_support;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One HTTP/1.1 request; returns the whole answer (headers and body).
fn http(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serve_reads_its_environment_and_keeps_secrets_out_of_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let members = dir.path().join("members.json");
    std::fs::write(&members, board_support::members_json(&[])).unwrap();
    let password_file = dir.path().join("smtp_password");
    std::fs::write(&password_file, "correct-horse-battery-staple\n").unwrap();
    let (port, smtp_port) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_voisin"))
        .args(["board", "serve"])
        .env("VOISIN_BOARD_LISTEN", format!("127.0.0.1:{port}"))
        .env("VOISIN_BOARD_DATABASE", dir.path().join("board.sqlite"))
        .env("VOISIN_BOARD_PUBLIC_URL", "https://pret.amis-quartier.org")
        .env("VOISIN_BOARD_LOCALE", "fr")
        .env("VOISIN_BOARD_ASSOCIATION", "Les Amis du Quartier")
        .env("VOISIN_BOARD_CATEGORIES", "livres,dvd,outils,services")
        .env("VOISIN_BOARD_LOAN_PERIOD", "21d")
        .env("VOISIN_BOARD_REMINDER_BEFORE", "2d")
        .env("VOISIN_BOARD_PHOTO_MAX_SIZE", "5 MB")
        .env("VOISIN_BOARD_MEMBERS_FILE", &members)
        .env("VOISIN_BOARD_SMTP_HOST", "127.0.0.1")
        .env("VOISIN_BOARD_SMTP_PORT", smtp_port.to_string())
        .env("VOISIN_BOARD_SMTP_USER", "pret@amis-quartier.org")
        .env("VOISIN_BOARD_SMTP_PASSWORD_FILE", &password_file)
        .env("VOISIN_BOARD_SMTP_FROM", "pret@amis-quartier.org")
        .env("VOISIN_BOARD_SMTP_TLS", "none")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the board did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let health = http(
        port,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    let page = http(
        port,
        "GET /signin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        page.contains("Se connecter"),
        "the locale comes from the environment"
    );
    let cookie = page
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: __host-voisin_csrf=")
        })
        .expect("an https public url gives `__Host-` cookies");
    assert!(cookie.contains("; Secure"));
    let csrf = cookie_value(cookie);
    let body = format!("email=dave%40amis-quartier.org&csrf={csrf}");
    let sent = http(
        port,
        &format!(
            "POST /signin/link HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: __Host-voisin_csrf={csrf}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(sent.starts_with("HTTP/1.1 303"), "{sent}");
    // The queued link mail is tried at once, against a port where nothing
    // listens: the failure is logged.
    let db = rusqlite::Connection::open(dir.path().join("board.sqlite")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let tried: i64 = db
            .query_row(
                "SELECT coalesce(max(attempts), 0) FROM mail_queue",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0);
        if tried > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the mail task never tried the queued mail"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr) + String::from_utf8_lossy(&output.stdout);
    assert!(
        log.contains("not delivered"),
        "the failed delivery is logged: {log}"
    );
    assert!(!log.contains("correct-horse-battery-staple"), "{log}");
    assert!(!log.contains("token="), "{log}");
    assert!(!log.contains(&csrf), "{log}");
}

/// The contract with `voisin render`: the members file it writes for the
/// board is read by the board, and the initial password `voisin members
/// credentials` hands over signs the member in.
#[tokio::test]
async fn the_rendered_members_file_and_handed_over_password_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("voisin.yaml");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/full-association.yaml"
        ),
        &manifest,
    )
    .unwrap();
    let voisin = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_voisin"))
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    voisin(&["render", "--out", "out"]);
    let credentials = voisin(&["members", "credentials", "alice"]);
    let password = credentials
        .lines()
        .find_map(|l| l.trim().strip_prefix("initial password:"))
        .unwrap()
        .trim()
        .to_string();
    let members = walk(&dir.path().join("out"))
        .into_iter()
        .find(|p| p.ends_with("etc/voisin-board/members.json"))
        .expect("render writes the board's members file");

    let mut config = voisin::board::Config::new(dir.path().join("board.sqlite"));
    config.members_file = Some(members);
    let board = voisin::board::Board::open(
        config,
        std::sync::Arc::new(voisin::board::ManualClock::new(board_support::START)),
    )
    .unwrap();
    let router = board.router();
    let send = |req: axum::http::Request<axum::body::Body>| {
        use tower::ServiceExt as _;
        router.clone().oneshot(req)
    };
    let page = send(
        axum::http::Request::get("/signin")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
    let csrf = cookie_value(&cookie);
    let body =
        serde_urlencoded::to_string([("login", "alice"), ("password", &password), ("csrf", &csrf)])
            .unwrap();
    let signed_in = send(
        axum::http::Request::post("/signin")
            .header("cookie", format!("voisin_csrf={csrf}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(body))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        signed_in.status(),
        303,
        "the handed-over password signs alice in"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The value of a `Set-Cookie` header: what stands between `=` and `;`.
fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split('=')
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("a cookie with a value")
        .to_string()
}
