//! Cross-site request forgery: every POST route the router registers
//! refuses a form whose token is missing, another visitor's, or one from
//! before sign-in, whether the form is urlencoded or multipart.

#![allow(clippy::unwrap_used)]

mod board_support;

use axum::http::StatusCode;
use board_support::{Client, Resp, TestBoard};
use voisin::board::Board;

/// What the board answers to a refused token.
fn refused_for_csrf(r: &Resp) -> bool {
    r.status == StatusCode::FORBIDDEN && r.body.contains("This form has expired")
}

/// A real path for a route pattern: its placeholders filled with an
/// offer, a request and a member that exist.
fn fill(pattern: &str, offer: i64, request: i64) -> String {
    let path = if pattern.starts_with("/admin/members/") {
        pattern
            .replace("{id}", "bob")
            .replace("{action}", "disable")
    } else if pattern.starts_with("/requests/") {
        pattern
            .replace("{id}", &request.to_string())
            .replace("{action}", "accept")
    } else {
        pattern.replace("{id}", &offer.to_string())
    };
    assert!(
        !path.contains('{'),
        "no value for a placeholder in {pattern}"
    );
    path
}

/// Posts `token` (or none) to `path` in both encodings and checks both are
/// refused as forgeries.
async fn assert_refused(alice: &mut Client<'_>, path: &str, token: Option<&str>, what: &str) {
    let mut fields: Vec<(&str, &str)> = Vec::new();
    if let Some(t) = token {
        fields.push(("csrf", t));
    }
    fields.extend([
        ("message", "x"),
        ("available", "on"),
        ("new", "a-new-password-1"),
    ]);
    let body = serde_urlencoded::to_string(&fields).unwrap();
    let r = alice
        .post_raw(path, "application/x-www-form-urlencoded", body.into_bytes())
        .await;
    assert!(
        refused_for_csrf(&r),
        "urlencoded POST {path} with {what} passed: {} {}",
        r.status,
        r.body
    );
    let r = alice.post_multipart(path, &fields, None).await;
    assert!(
        refused_for_csrf(&r),
        "multipart POST {path} with {what} passed: {} {}",
        r.status,
        r.body
    );
}

#[tokio::test]
async fn every_post_route_refuses_a_missing_foreign_or_stale_token_in_any_encoding() {
    let b = TestBoard::new();
    let mut bob = b.signed_in("bob").await;
    // Alice's token from before she signed in: signing in replaces it.
    let mut alice = b.visitor();
    let stale = alice.csrf().await;
    let r = alice
        .post(
            "/signin",
            &[("login", "alice"), ("password", "alice-password")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_ne!(alice.csrf().await, stale, "sign-in renews the token");
    let foreign = b.visitor().csrf().await;
    let offer = alice.offer("Drill", "tools").await;
    bob.post(&format!("/offers/{offer}/request"), &[("message", "hi")])
        .await;
    let request = b.count("SELECT max(id) FROM requests");

    let posts = Board::post_paths();
    assert!(
        posts.len() >= 12,
        "the router registers every form: {posts:?}"
    );
    for pattern in &posts {
        let path = fill(pattern, offer, request);
        assert_refused(&mut alice, &path, None, "no token").await;
        assert_refused(&mut alice, &path, Some("forged"), "a made-up token").await;
        assert_refused(&mut alice, &path, Some(&foreign), "another visitor's token").await;
        assert_refused(
            &mut alice,
            &path,
            Some(&stale),
            "a token from before sign-in",
        )
        .await;
        // A body type no form sends is refused too.
        let r = alice
            .post_raw(&path, "application/json", b"{\"csrf\":\"x\"}".to_vec())
            .await;
        assert!(refused_for_csrf(&r), "json POST {path} passed");
        let r = alice
            .post_raw(&path, "text/plain", b"csrf=x".to_vec())
            .await;
        assert!(refused_for_csrf(&r), "text POST {path} passed");
    }

    // Nothing changed, and alice is still signed in.
    assert_eq!(b.count("SELECT count(*) FROM offers"), 1);
    assert_eq!(b.count("SELECT count(*) FROM offers WHERE hidden = 1"), 0);
    assert_eq!(
        b.count("SELECT count(*) FROM offers WHERE available = 0"),
        0,
        "availability unchanged"
    );
    assert_eq!(
        b.count("SELECT count(*) FROM requests WHERE state = 'requested'"),
        1
    );
    assert_eq!(
        b.count("SELECT count(*) FROM members WHERE disabled = 1"),
        0
    );
    assert_eq!(b.count("SELECT count(*) FROM sessions"), 2, "no sign-out");
    assert_eq!(b.count("SELECT count(*) FROM mail_queue"), 1);
    assert_eq!(alice.get("/account").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_right_token_passes_the_guard_in_either_encoding() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    let mut bob = b.signed_in("bob").await;
    let offer = alice.offer("Drill", "tools").await;
    bob.post(&format!("/offers/{offer}/request"), &[("message", "hi")])
        .await;
    let request = b.count("SELECT max(id) FROM requests");
    // Signing out last: it ends the session the others need.
    let mut posts = Board::post_paths();
    posts.sort_by_key(|p| *p == "/signout");
    for pattern in posts {
        let path = fill(pattern, offer, request);
        let token = alice.csrf().await;
        let r = alice
            .post_multipart(&path, &[("csrf", &token), ("message", "x")], None)
            .await;
        assert!(!refused_for_csrf(&r), "multipart POST {path} was refused");
        let token = alice.csrf().await;
        let r = alice
            .post_raw(
                &path,
                "application/x-www-form-urlencoded",
                format!("csrf={token}&message=x").into_bytes(),
            )
            .await;
        assert!(!refused_for_csrf(&r), "urlencoded POST {path} was refused");
    }
    assert_eq!(
        b.count("SELECT count(*) FROM members WHERE id = 'bob' AND disabled = 1"),
        1,
        "the admin's form went through"
    );
}

#[tokio::test]
async fn a_multipart_form_whose_token_is_not_the_first_field_is_refused() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    let token = alice.csrf().await;
    let r = alice
        .post_multipart(
            "/offers",
            &[
                ("kind", "item"),
                ("category", "tools"),
                ("title", "Drill"),
                ("csrf", &token),
            ],
            None,
        )
        .await;
    assert!(refused_for_csrf(&r), "{} {}", r.status, r.body);
    assert_eq!(b.count("SELECT count(*) FROM offers"), 0);
}
