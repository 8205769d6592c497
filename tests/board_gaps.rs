//! Behaviour that no test noticed breaking: each test here was checked by
//! putting its bug in by hand and watching it fail (see the report of
//! issue 10). Expired sessions, reminders sent once, who moves a loan on,
//! the default due date, hidden photos, `Secure` cookies, links for
//! disabled members, the link limit, the settings `board serve` reads, and
//! the catalog's environment names.

#![allow(clippy::unwrap_used)]

mod board_support;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use board_support::{TestBoard, png};
use clap::Parser as _;

fn request_of(b: &TestBoard, who: &str) -> i64 {
    b.count(&format!(
        "SELECT max(id) FROM requests WHERE requester_id = '{who}'"
    ))
}

#[tokio::test]
async fn an_expired_session_is_refused_even_when_remembered() {
    let b = TestBoard::new();
    let mut bob = b.signed_in("bob").await;
    assert_eq!(bob.get("/offers").await.status, StatusCode::OK);
    b.clock.advance(30 * 86_400 + 1);
    assert_eq!(
        bob.get("/offers").await.location(),
        "/signin",
        "from the cache"
    );
    let mut again = b.visitor();
    again.cookies = bob.cookies.clone();
    // A POST empties the session cache: the database decides.
    b.signed_in("carol").await.post("/signout", &[]).await;
    assert_eq!(
        again.get("/offers").await.location(),
        "/signin",
        "from the database"
    );
}

/// Alice lends her drill to bob, until `end` days from the start if given.
async fn lent_drill(b: &TestBoard, end: Option<i64>) -> i64 {
    let mut alice = b.signed_in("alice").await;
    let mut bob = b.signed_in("bob").await;
    let drill = alice.offer("Drill", "tools").await;
    let end_date = end.map(|d| {
        (chrono::DateTime::from_timestamp(board_support::START + d * 86_400, 0)
            .unwrap()
            .date_naive())
        .to_string()
    });
    let mut fields = vec![];
    if let Some(e) = &end_date {
        fields.push(("end_date", e.as_str()));
    }
    let r = bob.post(&format!("/offers/{drill}/request"), &fields).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let loan = request_of(b, "bob");
    for action in ["accept", "lend"] {
        let r = alice.post(&format!("/requests/{loan}/{action}"), &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{action}");
    }
    loan
}

#[tokio::test]
async fn the_overdue_mail_goes_out_once() {
    let b = TestBoard::new();
    lent_drill(&b, Some(1)).await;
    b.clock.advance(3 * 86_400);
    for _ in 0..3 {
        b.board.send_reminders().await.unwrap();
        b.clock.advance(61);
    }
    let overdue = b
        .mails()
        .into_iter()
        .filter(|(to, subject, _)| to.starts_with("bob@") && subject.contains("was due"))
        .count();
    assert_eq!(overdue, 1, "one overdue mail, not one a minute");
}

#[tokio::test]
async fn only_the_owner_lends_takes_back_or_closes() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    let mut bob = b.signed_in("bob").await;
    let mut carol = b.signed_in("carol").await;
    let drill = alice.offer("Drill", "tools").await;
    bob.post(&format!("/offers/{drill}/request"), &[]).await;
    let loan = request_of(&b, "bob");
    alice.post(&format!("/requests/{loan}/accept"), &[]).await;
    for who in [&mut carol, &mut bob] {
        let r = who.post(&format!("/requests/{loan}/lend"), &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "only the owner lends");
    }
    alice.post(&format!("/requests/{loan}/lend"), &[]).await;
    for who in [&mut carol, &mut bob] {
        let r = who.post(&format!("/requests/{loan}/return"), &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "only the owner takes back");
    }
    let lesson = alice
        .offer_kind("Guitar lesson", "services", "service")
        .await;
    bob.post(&format!("/offers/{lesson}/request"), &[]).await;
    let asked = request_of(&b, "bob");
    alice.post(&format!("/requests/{asked}/agree"), &[]).await;
    for who in [&mut carol, &mut bob] {
        let r = who.post(&format!("/requests/{asked}/done"), &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "only the owner closes");
    }
    let states: Vec<String> = b.query("SELECT state FROM requests ORDER BY id", |c, sql| {
        let mut s = c.prepare(sql).unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    });
    assert_eq!(states, ["lent", "agreed"]);
}

#[tokio::test]
async fn the_default_due_date_follows_the_loan_period() {
    let b = TestBoard::with(|c| c.loan_period = std::time::Duration::from_hours(10 * 24));
    let loan = lent_drill(&b, None).await;
    let due: String = b.query("SELECT due_date FROM requests WHERE id = ?1", |c, sql| {
        c.query_row(sql, [loan], |r| r.get(0)).unwrap()
    });
    assert_eq!(due, "2026-11-12", "ten days after 2026-11-02");
    let mut carol = b.signed_in("carol").await;
    let page = carol.get("/offers/1").await;
    assert!(page.body.contains("2026-11-12"), "the form proposes it too");
}

#[tokio::test]
async fn photos_of_hidden_offers_and_disabled_members_are_not_served() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    let mut bob = b.signed_in("bob").await;
    let mut carol = b.signed_in("carol").await;
    let r = bob
        .offer_with(
            &[("kind", "item"), ("category", "tools"), ("title", "Saw")],
            Some(&png(300)),
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let photo = "/photos/1";
    assert_eq!(carol.get(photo).await.status, StatusCode::OK);
    alice.post("/offers/1/hide", &[]).await;
    assert_eq!(
        carol.get(photo).await.status,
        StatusCode::NOT_FOUND,
        "hidden"
    );
    assert_eq!(
        bob.get(photo).await.status,
        StatusCode::OK,
        "its owner sees it"
    );
    alice.post("/offers/1/unhide", &[]).await;
    alice.post("/admin/members/bob/disable", &[]).await;
    assert_eq!(
        carol.get(photo).await.status,
        StatusCode::NOT_FOUND,
        "owner disabled"
    );
    assert_eq!(
        alice.get(photo).await.status,
        StatusCode::OK,
        "admins see it"
    );
}

#[tokio::test]
async fn the_session_cookie_is_secure_and_host_bound_under_https() {
    let b = TestBoard::with(|c| {
        c.public_url = "https://pret.amis-quartier.org".into();
        c.secure_cookies = true;
    });
    let page = b
        .send(Request::get("/signin").body(Body::empty()).unwrap())
        .await;
    let csrf = page.set_cookies()[0]
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let body = format!("login=bob&password=bob-password&csrf={csrf}");
    let r = b
        .send(
            Request::post("/signin")
                .header(header::COOKIE, format!("__Host-voisin_csrf={csrf}"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let session = r
        .set_cookies()
        .into_iter()
        .find(|c| c.contains("voisin_session"))
        .unwrap();
    assert!(session.starts_with("__Host-voisin_session="), "{session}");
    assert!(session.contains("; Secure"), "{session}");
    assert!(session.contains("; HttpOnly"), "{session}");
}

#[tokio::test]
async fn no_sign_in_link_is_mailed_to_a_disabled_member() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    alice.post("/admin/members/dave/disable", &[]).await;
    let r = b
        .visitor()
        .post("/signin/link", &[("email", "dave@amis-quartier.org")])
        .await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "the same answer as for anyone"
    );
    assert!(b.mails().iter().all(|(to, ..)| !to.starts_with("dave@")));
}

#[tokio::test]
async fn sign_in_links_are_limited_per_address() {
    let b = TestBoard::new();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = b
            .visitor()
            .post("/signin/link", &[("email", "dave@amis-quartier.org")])
            .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses[..3], [StatusCode::SEE_OTHER; 3]);
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(b.mails().len(), 3, "nobody's inbox is flooded");
}

#[test]
fn serve_resolves_every_setting_it_is_given() {
    let cli = voisin::cli::Cli::try_parse_from([
        "voisin",
        "board",
        "serve",
        "--database",
        "/data/board.sqlite",
        "--public-url",
        "https://pret.example.org/",
        "--locale",
        "fr",
        "--association",
        "Les Amis",
        "--categories",
        "livres, dvd,,outils",
        "--loan-period",
        "9d",
        "--reminder-before",
        "3d",
        "--photo-max-size",
        "2 MB",
        "--trusted-proxy",
        "10.213.7.0/24",
        "--read-timeout",
        "20s",
        "--max-connections-per-client",
        "8",
    ])
    .unwrap();
    let voisin::cli::Command::Board(voisin::cli::BoardCommand::Serve(args)) = cli.command else {
        panic!("not `board serve`");
    };
    let c = voisin::board::Config::resolve(&args).unwrap();
    assert_eq!(c.public_url, "https://pret.example.org");
    assert!(c.secure_cookies);
    assert_eq!(c.locale, voisin::board::config::Locale::Fr);
    assert_eq!(c.association, "Les Amis");
    assert_eq!(c.categories, ["livres", "dvd", "outils"]);
    assert_eq!(c.loan_days(), 9);
    assert_eq!(c.reminder_days(), 3);
    assert_eq!(c.photo_max_size, 2_000_000);
    assert!(c.trusted_proxies[0].contains("10.213.7.9".parse().unwrap()));
    assert_eq!(c.read_timeout, std::time::Duration::from_secs(20));
    assert_eq!(c.max_connections_per_client, 8);
}

#[test]
fn the_catalog_sets_only_environment_names_board_serve_reads() {
    use clap::CommandFactory as _;
    let cli = voisin::cli::Cli::command();
    let serve = cli
        .find_subcommand("board")
        .and_then(|b| b.find_subcommand("serve"))
        .unwrap();
    let read: BTreeSet<String> = serve
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/catalog/voisin-board.yaml"
    ))
    .unwrap();
    let entry: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let set: BTreeSet<String> = entry["containers"]["board"]["env"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(set.len() >= 10, "{set:?}");
    let unread: Vec<_> = set.difference(&read).collect();
    assert!(
        unread.is_empty(),
        "the catalog sets names serve never reads: {unread:?}"
    );
    assert!(
        set.contains("VOISIN_BOARD_TRUSTED_PROXY"),
        "the deployed board trusts its proxy"
    );
}
