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
    let csrf = cookie
        .split('=')
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
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
    std::thread::sleep(Duration::from_secs(2));
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
