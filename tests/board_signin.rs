//! Signing in under attack: wrong passwords slow the next attempt per
//! account and per client instead of locking anyone out, `X-Forwarded-For`
//! counts only from the configured proxy, and a member sees and ends
//! their sessions.

#![allow(clippy::unwrap_used)]

mod board_support;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use board_support::{Resp, TestBoard};
use voisin::board::config::Subnet;

/// A sign-in attempt from `peer`, with `forwarded` as `X-Forwarded-For`.
async fn attempt(
    b: &TestBoard,
    peer: [u8; 4],
    forwarded: Option<&str>,
    login: &str,
    password: &str,
) -> Resp {
    let csrf = "a-token-of-this-browser";
    let body =
        serde_urlencoded::to_string([("login", login), ("password", password), ("csrf", csrf)])
            .unwrap();
    let mut req = Request::post("/signin")
        .header(header::COOKIE, format!("voisin_csrf={csrf}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    let mut req = req.body(Body::from(body)).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(std::net::SocketAddr::from((peer, 40_000))));
    b.send(req).await
}

const HOME: [u8; 4] = [192, 0, 2, 10];

#[tokio::test]
async fn wrong_passwords_slow_an_account_down_but_never_lock_its_member_out() {
    let b = TestBoard::new();
    for i in 0..3 {
        let r = attempt(&b, HOME, None, "bob", "guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = attempt(&b, HOME, None, "bob", "bob-password").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "the next waits");
    assert_eq!(r.headers[header::RETRY_AFTER], "1");
    assert!(r.body.contains("Too many attempts"), "{}", r.body);
    b.clock.advance(1);
    let r = attempt(&b, HOME, None, "bob", "guess").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = attempt(&b, HOME, None, "bob", "bob-password").await;
    assert_eq!(
        r.headers[header::RETRY_AFTER],
        "2",
        "each failure doubles the wait"
    );
    b.clock.advance(2);
    let r = attempt(&b, HOME, None, "bob", "bob-password").await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "after the wait, bob gets in"
    );

    // Someone hammers carol's account from many addresses: carol waits
    // half a minute at most, never a quarter of an hour.
    for i in 0..40u8 {
        b.clock.advance(31);
        let r = attempt(&b, [203, 0, 113, i], None, "carol", "guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let r = attempt(&b, HOME, None, "carol", "carol-password").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: i64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait <= 30, "waits {wait} s");
    b.clock.advance(30);
    let r = attempt(&b, HOME, None, "carol", "carol-password").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_member_id_and_its_address_are_one_account_for_the_limits() {
    let b = TestBoard::new();
    for (i, login) in ["bob", "BOB@amis-quartier.org", " Bob "].iter().enumerate() {
        let peer = [198, 51, 100, u8::try_from(i).unwrap()];
        let r = attempt(&b, peer, None, login, "guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{login}");
    }
    let r = attempt(
        &b,
        [198, 51, 100, 99],
        None,
        "bob@amis-quartier.org",
        "guess",
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "three guesses at bob under any name make the fourth wait"
    );
}

#[tokio::test]
async fn successful_sign_ins_do_not_count_toward_any_limit() {
    let b = TestBoard::new();
    for i in 0..25 {
        let r = attempt(&b, HOME, None, "alice", "alice-password").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "sign-in {i}");
    }
    for i in 0..3 {
        let r = attempt(&b, HOME, None, "alice", "typo").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "typo {i}");
    }
    b.clock.advance(1);
    let r = attempt(&b, HOME, None, "alice", "alice-password").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

/// Eleven wrong passwords for eleven accounts, each from a new
/// `X-Forwarded-For`: the answer to the last.
async fn rotating_guesses(b: &TestBoard, peer: [u8; 4]) -> StatusCode {
    let mut last = StatusCode::OK;
    for i in 0..11 {
        let forwarded = format!("203.0.113.{i}");
        last = attempt(b, peer, Some(&forwarded), &format!("nobody{i}"), "guess")
            .await
            .status;
    }
    last
}

#[tokio::test]
async fn forwarded_for_is_ignored_unless_the_peer_is_the_configured_proxy() {
    // No proxy configured: a private peer's header is not believed.
    let b = TestBoard::new();
    assert_eq!(
        rotating_guesses(&b, [172, 18, 0, 2]).await,
        StatusCode::TOO_MANY_REQUESTS,
        "a forged header does not make new clients"
    );

    // The proxy is 172.18.0.2: another peer on its network is not it.
    let b = TestBoard::with(|c| c.trusted_proxies = vec![Subnet::parse("172.18.0.2").unwrap()]);
    assert_eq!(
        rotating_guesses(&b, [172, 18, 0, 9]).await,
        StatusCode::TOO_MANY_REQUESTS,
        "a neighbour container cannot pose as the proxy"
    );

    // Through the proxy, each client counts on its own...
    assert_eq!(
        rotating_guesses(&b, [172, 18, 0, 2]).await,
        StatusCode::UNAUTHORIZED,
        "neighbours behind the proxy are told apart"
    );
    // ...and one client is slowed whatever accounts it tries, even when it
    // puts its own guess in front of the proxy's entry.
    let mut last = StatusCode::OK;
    for i in 0..11 {
        let forwarded = format!("10.9.9.{i}, 198.51.100.7");
        last = attempt(
            &b,
            [172, 18, 0, 2],
            Some(&forwarded),
            &format!("x{i}"),
            "guess",
        )
        .await
        .status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn changing_the_password_signs_out_every_other_session() {
    let b = TestBoard::new();
    let mut laptop = b.signed_in("bob").await;
    let mut phone = b.signed_in("bob").await;
    let r = laptop
        .post(
            "/account/password",
            &[("current", "bob-password"), ("new", "a brand new secret")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(phone.get("/offers").await.location(), "/signin");
    assert_eq!(laptop.get("/offers").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_account_page_lists_sessions_and_ends_them() {
    let b = TestBoard::new();
    let mut laptop = b.signed_in("bob").await;
    let mut phone = b.signed_in("bob").await;
    let mut tablet = b.signed_in("bob").await;
    let page = laptop.get("/account").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.body.matches("/account/sessions/").count(),
        3,
        "two to end, and all others"
    );
    assert!(page.body.contains("this browser"));
    let first = page
        .body
        .split("/account/sessions/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let r = laptop
        .post(&format!("/account/sessions/{first}/end"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let still = [
        phone.get("/offers").await.status == StatusCode::OK,
        tablet.get("/offers").await.status == StatusCode::OK,
    ];
    assert_eq!(still.iter().filter(|s| **s).count(), 1, "one session ended");
    let r = laptop.post("/account/sessions/others/end", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(phone.get("/offers").await.location(), "/signin");
    assert_eq!(tablet.get("/offers").await.location(), "/signin");
    assert_eq!(laptop.get("/offers").await.status, StatusCode::OK);
    // Another member's session cannot be named and ended.
    let mut carol = b.signed_in("carol").await;
    let hers = b.count("SELECT count(*) FROM sessions WHERE member_id = 'bob'");
    let r = carol
        .post(&format!("/account/sessions/{first}/end"), &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        b.count("SELECT count(*) FROM sessions WHERE member_id = 'bob'"),
        hers
    );
}

#[tokio::test]
async fn a_password_too_long_is_called_too_long() {
    let b = TestBoard::new();
    let mut bob = b.signed_in("bob").await;
    let long = "x".repeat(1_001);
    let r = bob
        .post(
            "/account/password",
            &[("current", "bob-password"), ("new", &long)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("at most 1,000"), "{}", r.body);
}
