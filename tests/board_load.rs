//! The board under a crowd: many members at once asking for one item,
//! uploading photos, and an owner answering them all. `SQLite` takes one
//! writer at a time; members must wait their turn, never see a 500.

#![allow(clippy::unwrap_used)]

mod board_support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use board_support::{TestBoard, multipart, png};
use tower::ServiceExt as _;

/// Sends every request at once, each from its own task, and returns the
/// statuses.
async fn all_at_once(b: &TestBoard, requests: Vec<Request<Body>>) -> Vec<StatusCode> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|req| {
            let router = b.router();
            tokio::spawn(async move { router.oneshot(req).await.unwrap().status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

fn form(path: &str, cookies: &str, body: String) -> Request<Body> {
    Request::post(path)
        .header(header::COOKIE, cookies)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_members_asking_for_one_item_at_once_all_get_an_answer() {
    let mut b = TestBoard::new();
    let crowd = b.crowd(100);
    let mut alice = b.signed_in("alice").await;
    let drill = alice.offer("Drill", "tools").await;
    let path = format!("/offers/{drill}/request");
    let asks = crowd
        .iter()
        .map(|(cookies, csrf)| form(&path, cookies, format!("csrf={csrf}&message=please")))
        .collect();
    let statuses = all_at_once(&b, asks).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::SEE_OTHER),
        "every request is placed: {statuses:?}"
    );
    assert_eq!(b.count("SELECT count(*) FROM requests"), 100);
    assert_eq!(b.count("SELECT count(*) FROM mail_queue"), 100);

    // The owner accepts all hundred at once (two tabs, a double click,
    // a script): one wins, the others are answered, none breaks.
    let csrf = alice.csrf().await;
    let session = alice.cookies["voisin_session"].clone();
    let cookies = format!("voisin_session={session}; voisin_csrf={csrf}");
    let ids: Vec<i64> = b.query("SELECT id FROM requests", |c, sql| {
        let mut s = c.prepare(sql).unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    });
    let accepts = ids
        .iter()
        .map(|id| {
            form(
                &format!("/requests/{id}/accept"),
                &cookies,
                format!("csrf={csrf}"),
            )
        })
        .collect();
    let statuses = all_at_once(&b, accepts).await;
    assert!(
        statuses
            .iter()
            .all(|s| matches!(*s, StatusCode::SEE_OTHER | StatusCode::UNPROCESSABLE_ENTITY)),
        "no member sees an error of the board's own: {statuses:?}"
    );
    assert_eq!(
        b.count("SELECT count(*) FROM requests WHERE state = 'accepted'"),
        1,
        "one borrower at a time"
    );
    assert_eq!(
        b.count("SELECT count(*) FROM requests WHERE state = 'waiting'"),
        99
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_photos_uploaded_at_once_are_all_published() {
    let mut b = TestBoard::with(|c| c.photo_max_size = 2_000_000);
    let crowd = b.crowd(40);
    let photo = png(1_000_000);
    let uploads = crowd
        .iter()
        .enumerate()
        .map(|(i, (cookies, csrf))| {
            let title = format!("Offer {i}");
            let (kind, body) = multipart(
                &[
                    ("csrf", csrf),
                    ("kind", "item"),
                    ("category", "tools"),
                    ("title", &title),
                ],
                Some(&photo),
            );
            Request::post("/offers")
                .header(header::COOKIE, cookies)
                .header(header::CONTENT_TYPE, kind)
                .body(Body::from(body))
                .unwrap()
        })
        .collect();
    let statuses = all_at_once(&b, uploads).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::SEE_OTHER),
        "every upload is published: {statuses:?}"
    );
    assert_eq!(
        b.count("SELECT count(*) FROM offers WHERE has_photo = 1"),
        40
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_writing_while_others_read_never_see_an_error() {
    let mut b = TestBoard::new();
    let crowd = b.crowd(60);
    let mut alice = b.signed_in("alice").await;
    let drill = alice.offer("Drill", "tools").await;
    let mut mixed = Vec::new();
    for (i, (cookies, csrf)) in crowd.iter().enumerate() {
        mixed.push(form(
            &format!("/offers/{drill}/request"),
            cookies,
            format!("csrf={csrf}"),
        ));
        mixed.push(form("/signout", cookies, format!("csrf={csrf}")));
        for path in ["/", "/offers", &format!("/offers/{drill}"), "/requests"] {
            mixed.push(
                Request::get(path)
                    .header(header::COOKIE, &crowd[(i + 1) % crowd.len()].0)
                    .body(Body::empty())
                    .unwrap(),
            );
        }
    }
    let statuses = all_at_once(&b, mixed).await;
    assert!(
        statuses.iter().all(|s| s.as_u16() < 500),
        "no 500 under mixed load: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_wait_out_another_process_holding_the_write_lock() {
    let mut b = TestBoard::new();
    let crowd = b.crowd(20);
    let mut alice = b.signed_in("alice").await;
    let drill = alice.offer("Drill", "tools").await;
    // Another process (a restore, a tool) writes for longer than the
    // busy timeout.
    let database = b.config.database.clone();
    let (held, release) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn({
        let database = database.clone();
        move || {
            let mut conn = rusqlite::Connection::open(&database).unwrap();
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .unwrap();
            tx.execute("UPDATE offers SET availability = 'soon'", [])
                .unwrap();
            held.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_secs(7));
            tx.commit().unwrap();
        }
    });
    release.recv().unwrap();
    let path = format!("/offers/{drill}/request");
    let asks = crowd
        .iter()
        .map(|(cookies, csrf)| form(&path, cookies, format!("csrf={csrf}")))
        .collect();
    let statuses = all_at_once(&b, asks).await;
    holder.join().unwrap();
    assert!(
        statuses.iter().all(|s| *s == StatusCode::SEE_OTHER),
        "every request waits its turn: {statuses:?}"
    );
    assert_eq!(b.count("SELECT count(*) FROM requests"), 20);
}
