//! The board's server facing slow and greedy clients, over real TCP: a
//! client that sends its headers or body too slowly is cut off, one client
//! cannot hold more than its share of connections, and every answer
//! carries the security headers.

#![allow(clippy::unwrap_used)]

mod board_support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use axum::http::{StatusCode, header};
use board_support::TestBoard;
use voisin::board::Board;

/// Serves `b` on a loopback port; the server stops with the runtime.
async fn serve(b: &TestBoard) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let board = b.board.clone();
    tokio::spawn(async move {
        board
            .serve_on(listener, std::future::pending())
            .await
            .unwrap();
    });
    addr
}

/// Waits (at most `limit`) for the server to close `stream`; returns how
/// long that took, or `None` if it stayed open.
fn closed_within(mut stream: TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {} // an answer (408, 400); the close follows
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

fn quick() -> TestBoard {
    TestBoard::with(|c| {
        c.read_timeout = Duration::from_secs(1);
        c.body_deadline = Duration::from_secs(3);
        c.max_connections_per_client = 4;
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_sending_its_headers_too_slowly_is_cut_off() {
    let b = quick();
    let addr = serve(&b).await;
    let took = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: board\r\n").unwrap();
        closed_within(s, Duration::from_secs(10))
    })
    .await
    .unwrap();
    let took = took.expect("the half-sent request is closed");
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_sending_its_body_too_slowly_is_cut_off() {
    let b = quick();
    let addr = serve(&b).await;
    let took = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(
            b"POST /signin HTTP/1.1\r\nHost: board\r\nCookie: voisin_csrf=t\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ncsrf=t&",
        )
        .unwrap();
        closed_within(s, Duration::from_secs(10))
    })
    .await
    .unwrap();
    let took = took.expect("the half-sent body is closed");
    assert!(took < Duration::from_secs(4), "closed after {took:?}");

    // A trickle of one byte a moment keeps each read in time but not the
    // whole body.
    let took = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(
            b"POST /signin HTTP/1.1\r\nHost: board\r\nCookie: voisin_csrf=t\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n",
        )
        .unwrap();
        let started = Instant::now();
        s.set_nonblocking(true).unwrap();
        while started.elapsed() < Duration::from_secs(10) {
            // A failed write, an answer or a close: the server gave up on
            // the body (it has 1,000 bytes to wait for, and gets one byte
            // every 300 ms).
            if s.write_all(b"x").is_err() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(300));
            let mut probe = [0u8; 1024];
            match s.read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                _ => return Some(started.elapsed()),
            }
        }
        None
    })
    .await
    .unwrap();
    let took = took.expect("the trickle is cut off");
    assert!(took < Duration::from_secs(6), "closed after {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_client_cannot_hold_more_than_its_connections() {
    let b = quick();
    let addr = serve(&b).await;
    tokio::task::spawn_blocking(move || {
        let held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(100));
        let extra = TcpStream::connect(addr).unwrap();
        assert!(
            closed_within(extra, Duration::from_millis(500)).is_some(),
            "a fifth connection is closed at once"
        );
        drop(held);
        std::thread::sleep(Duration::from_millis(200));
        let mut again = TcpStream::connect(addr).unwrap();
        again
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: board\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        again.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let b = TestBoard::with(|c| {
        c.public_url = "https://pret.example.org".into();
        c.secure_cookies = true;
    });
    let mut alice = b.visitor();
    let r = alice
        .post_raw("/signin", "application/x-www-form-urlencoded", Vec::new())
        .await;
    let mut answers = vec![("refused POST".to_string(), r)];
    for path in Board::get_paths() {
        let path = path.replace("{id}", "1");
        answers.push((path.clone(), alice.get(&path).await));
    }
    answers.push(("no such page".into(), alice.get("/nowhere").await));
    answers.push(("bad id".into(), alice.get("/offers/abc").await));
    for (what, r) in &answers {
        let h = &r.headers;
        let csp = h
            .get(header::CONTENT_SECURITY_POLICY)
            .unwrap_or_else(|| panic!("{what}: no CSP ({})", r.status))
            .to_str()
            .unwrap();
        assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
        assert!(csp.contains("script-src 'none'"), "{what}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{what}");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{what}");
        assert!(h.contains_key(header::REFERRER_POLICY), "{what}");
        assert_eq!(
            h[header::STRICT_TRANSPORT_SECURITY],
            "max-age=31536000",
            "{what}"
        );
    }
    // Signed in, the pages themselves, and a photo.
    let signed = TestBoard::new();
    let mut bob = signed.signed_in("bob").await;
    let r = bob
        .offer_with(
            &[("kind", "item"), ("category", "tools"), ("title", "Saw")],
            Some(&board_support::png(500)),
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    for path in Board::get_paths() {
        let path = path.replace("{id}", "1");
        let r = bob.get(&path).await;
        assert!(
            r.headers.contains_key(header::CONTENT_SECURITY_POLICY),
            "{path}"
        );
        assert!(
            !r.headers.contains_key(header::STRICT_TRANSPORT_SECURITY),
            "{path}: no HSTS over plain http"
        );
        assert!(
            !r.body.contains("<script")
                && !r.body.contains(" style=")
                && !r.body.contains("<style"),
            "{path}: nothing inline for the policy to block"
        );
    }
}

#[tokio::test]
async fn bare_errors_are_pages_in_the_boards_language() {
    let b = TestBoard::with(|c| c.locale = voisin::board::config::Locale::Fr);
    let mut bob = b.signed_in("bob").await;
    let missing = bob.get("/nulle-part").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.body.contains("<html lang=\"fr\""),
        "{}",
        missing.body
    );
    assert!(missing.body.contains("existe pas"), "{}", missing.body);
    let bad = bob.get("/offers/abc").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("incompréhensible"), "{}", bad.body);
    let form = bob.post("/account/password", &[("nothing", "here")]).await;
    assert!(form.status.is_client_error());
    assert!(form.body.contains("<html lang=\"fr\""), "{}", form.body);
}
