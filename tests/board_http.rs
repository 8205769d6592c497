//! The lending board over HTTP, driven in-process through its router: every
//! flow members go through, and every refusal.

// A test that cannot unwrap has failed, and the panic says where.
#![allow(clippy::unwrap_used)]

mod board_support;

use axum::http::StatusCode;
use board_support::{TestBoard, members_json, png};

// --- health, sign-in, sessions -------------------------------------------

#[tokio::test]
async fn healthz_answers_when_the_database_does() {
    let b = TestBoard::new();
    let r = b.visitor().get("/healthz").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.trim(), "ok");
}

#[tokio::test]
async fn pages_send_visitors_to_sign_in() {
    let b = TestBoard::new();
    let mut v = b.visitor();
    for path in [
        "/offers",
        "/offers/new",
        "/requests",
        "/admin",
        "/photos/1",
        "/offers/1",
    ] {
        let r = v.get(path).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.location(), "/signin", "{path}");
    }
    let front = v.get("/").await;
    assert!(
        front.body.contains("name=\"password\""),
        "the front page offers sign-in"
    );
}

#[tokio::test]
async fn password_sign_in_sets_an_httponly_samesite_session_cookie() {
    let b = TestBoard::new();
    let mut c = b.visitor();
    let r = c
        .post("/signin", &[("login", "bob"), ("password", "bob-password")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let session = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("voisin_session="))
        .unwrap();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax"));
    assert!(
        !session.contains("Secure"),
        "plain http keeps cookies usable locally"
    );
    let home = c.get("/").await;
    assert!(home.body.contains("Bob Durand"));
}

#[tokio::test]
async fn sign_in_by_email_works_too() {
    let b = TestBoard::new();
    let mut c = b.visitor();
    let r = c
        .post(
            "/signin",
            &[
                ("login", "Carol@Amis-Quartier.org"),
                ("password", "carol-password"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn https_public_url_makes_cookies_secure_and_host_bound() {
    let b = TestBoard::with(|c| {
        c.public_url = "https://pret.amis-quartier.org".into();
        c.secure_cookies = true;
    });
    let r = b.visitor().get("/signin").await;
    let csrf = r.set_cookies().into_iter().next().unwrap();
    assert!(csrf.starts_with("__Host-voisin_csrf="), "{csrf}");
    assert!(csrf.contains("; Secure"));
}

#[tokio::test]
async fn wrong_password_and_unknown_member_get_the_same_answer() {
    let b = TestBoard::new();
    let wrong = b
        .visitor()
        .post("/signin", &[("login", "bob"), ("password", "nope")])
        .await;
    let unknown = b
        .visitor()
        .post("/signin", &[("login", "mallory"), ("password", "nope")])
        .await;
    let link_only = b
        .visitor()
        .post("/signin", &[("login", "dave"), ("password", "nope")])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(link_only.status, wrong.status);
    let strip = |s: &str| {
        s.replace("mallory", "X")
            .replace("bob", "X")
            .replace("dave", "X")
    };
    let csrf_free = |s: &str| {
        s.lines()
            .filter(|l| !l.contains("csrf"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        csrf_free(&strip(&wrong.body)),
        csrf_free(&strip(&unknown.body))
    );
    assert!(wrong.body.contains("Wrong member id or password"));
    // Unknown and password-less logins are checked against another
    // member's hash (for equal timing); that hash must never let them in.
    for login in ["mallory", "dave"] {
        let r = b
            .visitor()
            .post(
                "/signin",
                &[("login", login), ("password", "alice-password")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{login}");
    }
}

#[tokio::test]
async fn link_requests_answer_the_same_whether_the_address_exists_or_not() {
    let b = TestBoard::new();
    let known = b
        .visitor()
        .post("/signin/link", &[("email", "dave@amis-quartier.org")])
        .await;
    let unknown = b
        .visitor()
        .post("/signin/link", &[("email", "who@example.net")])
        .await;
    assert_eq!(known.status, StatusCode::SEE_OTHER);
    assert_eq!(
        (unknown.status, unknown.location()),
        (known.status, known.location())
    );
    let mails = b.mails();
    assert_eq!(mails.len(), 1, "only the member gets a mail");
    assert_eq!(mails[0].0, "dave@amis-quartier.org");
}

#[tokio::test]
async fn a_mailed_link_signs_in_once_and_expires() {
    let b = TestBoard::new();
    b.visitor()
        .post("/signin/link", &[("email", "dave@amis-quartier.org")])
        .await;
    let body = &b.mails()[0].2;
    let url = body
        .lines()
        .find(|l| l.contains("/signin/link?token="))
        .unwrap()
        .trim();
    let token = url.split("token=").nth(1).unwrap().to_string();
    assert!(
        url.starts_with("http://localhost:8080/"),
        "links use the public url"
    );

    let mut c = b.visitor();
    let page = c.get(&format!("/signin/link?token={token}")).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "opening the link does not use it up"
    );
    assert!(page.body.contains(&token));
    let used = c.post("/signin/link/use", &[("token", &token)]).await;
    assert_eq!(used.location(), "/");
    assert!(c.get("/").await.body.contains("Dave Leroy"));

    let again = b
        .visitor()
        .post("/signin/link/use", &[("token", &token)])
        .await;
    assert_eq!(
        again.location(),
        "/signin?notice=link_invalid",
        "a link works once"
    );

    b.visitor()
        .post("/signin/link", &[("email", "dave@amis-quartier.org")])
        .await;
    let body = &b.mails()[1].2;
    let token = body
        .split("token=")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    b.clock.advance(31 * 60);
    let late = b
        .visitor()
        .post("/signin/link/use", &[("token", &token)])
        .await;
    assert_eq!(
        late.location(),
        "/signin?notice=link_invalid",
        "a link expires after 30 minutes"
    );
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let b = TestBoard::new();
    let mut c = b.signed_in("bob").await;
    let session = c.cookies["voisin_session"].clone();
    c.post("/signout", &[]).await;
    let mut stale = b.visitor();
    stale.cookies.insert("voisin_session".into(), session);
    assert_eq!(stale.get("/offers").await.location(), "/signin");
}

// CSRF: see `board_csrf.rs`, which covers every POST route.

// --- offers ----------------------------------------------------------------

#[tokio::test]
async fn an_offer_with_a_photo_is_published_and_its_photo_served() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    let photo = png(2_000);
    let r = alice
        .offer_with(
            &[
                ("kind", "item"),
                ("category", "tools"),
                ("title", "Perceuse à percussion"),
                ("description", "Bosch, with bits"),
                ("condition", "works well"),
                ("availability", "evenings"),
            ],
            Some(&photo),
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = alice.get(r.location()).await;
    assert!(page.body.contains("Perceuse à percussion") && page.body.contains("works well"));
    assert!(page.body.contains("Your offer is on the board."));
    let id = r
        .location()
        .trim_start_matches("/offers/")
        .split('?')
        .next()
        .unwrap();
    let img = b.signed_in("bob").await.get(&format!("/photos/{id}")).await;
    assert_eq!(img.status, StatusCode::OK);
    assert_eq!(img.headers["content-type"], "image/png");
    assert_eq!(img.headers["x-content-type-options"], "nosniff");
    assert_eq!(img.bytes, photo);
}

#[tokio::test]
async fn a_photo_of_many_chunks_comes_back_byte_for_byte() {
    let b = TestBoard::with(|c| c.photo_max_size = 1_000_000);
    let mut alice = b.signed_in("alice").await;
    // Not a multiple of the chunk size, and no two chunks alike.
    let mut photo = png(8);
    photo.extend((0..300_007u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0]));
    let id = {
        let r = alice
            .offer_with(
                &[("kind", "item"), ("category", "tools"), ("title", "Big")],
                Some(&photo),
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        b.count("SELECT max(id) FROM offers")
    };
    let img = alice.get(&format!("/photos/{id}")).await;
    assert_eq!(img.status, StatusCode::OK);
    assert_eq!(
        img.headers["content-length"],
        photo.len().to_string().as_str()
    );
    assert!(img.bytes == photo, "the photo is whole and in order");
}

#[tokio::test]
async fn an_oversized_photo_is_refused() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    let fields = [("kind", "item"), ("category", "tools"), ("title", "Big")];
    let r = alice.offer_with(&fields, Some(&png(100_001)), true).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.body.contains("The photo is too large"));
    let r = alice.offer_with(&fields, Some(&png(400_000)), true).await;
    assert_eq!(
        r.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "past the body limit too"
    );
    assert_eq!(b.count("SELECT count(*) FROM offers"), 0);
}

#[tokio::test]
async fn a_photo_that_is_not_an_image_is_refused_whatever_its_name() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    let fields = [("kind", "item"), ("category", "tools"), ("title", "Fake")];
    let r = alice
        .offer_with(&fields, Some(b"<svg onload=alert(1)></svg>"), true)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("must be a JPEG, PNG"));
    assert_eq!(b.count("SELECT count(*) FROM offers"), 0);
}

#[tokio::test]
async fn offers_need_a_title_and_a_known_category() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    let r = alice
        .offer_with(
            &[("kind", "item"), ("category", "boats"), ("title", "Canoe")],
            None,
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = alice
        .offer_with(
            &[("kind", "item"), ("category", "tools"), ("title", "  ")],
            None,
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = alice
        .offer_with(
            &[("kind", "car"), ("category", "tools"), ("title", "Van")],
            None,
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    for title in [
        "Drill\r\nBcc: everyone@example.org",
        "Drill\nsecond line",
        "Tab\there",
    ] {
        let r = alice
            .offer_with(
                &[("kind", "item"), ("category", "tools"), ("title", title)],
                None,
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{title:?}");
    }
    assert_eq!(b.count("SELECT count(*) FROM offers"), 0);
}

#[tokio::test]
async fn browsing_by_category_shows_only_that_category() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    alice.offer("Les Misérables", "books").await;
    alice.offer("Ladder", "tools").await;
    let books = alice.get("/offers?category=books").await;
    assert!(books.body.contains("Les Misérables") && !books.body.contains("Ladder"));
    let all = alice.get("/offers").await;
    assert!(all.body.contains("Les Misérables") && all.body.contains("Ladder"));
    let unknown = alice.get("/offers?category=%27%20OR%201%3D1").await;
    assert_eq!(
        unknown.status,
        StatusCode::OK,
        "an unknown category shows everything"
    );
}

#[tokio::test]
async fn search_finds_words_without_accents_and_by_prefix() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    alice.offer("Échelle télescopique", "tools").await;
    alice.offer("Tente deux places", "tools").await;
    let r = alice.get("/offers?q=echelle").await;
    assert!(r.body.contains("Échelle télescopique") && !r.body.contains("Tente"));
    let r = alice.get("/offers?q=tele").await;
    assert!(r.body.contains("Échelle télescopique"));
    let r = alice.get("/offers?q=piano").await;
    assert!(r.body.contains("No offer matches"));
}

#[tokio::test]
async fn sql_like_search_input_is_harmless() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    alice.offer("Drill", "tools").await;
    for q in [
        "'; DROP TABLE offers; --",
        "\" OR 1=1 --",
        "drill\" OR \"",
        "*",
        "NEAR(a b)",
        "title:drill",
        "') UNION SELECT password_hash FROM members --",
        "%",
        "\\",
    ] {
        let url = format!("/offers?q={}", serde_urlencoded_component(q));
        let r = alice.get(&url).await;
        assert_eq!(r.status, StatusCode::OK, "{q}");
        assert!(!r.body.contains("$argon2"), "{q}");
    }
    let r = alice.get("/offers?q=drill%27%3B--").await;
    assert!(r.body.contains("Drill"), "the words in it still search");
    assert_eq!(
        b.count("SELECT count(*) FROM offers"),
        1,
        "the table is still there"
    );
}

fn serde_urlencoded_component(q: &str) -> String {
    serde_urlencoded::to_string([("", q)])
        .unwrap()
        .trim_start_matches('=')
        .to_string()
}

#[tokio::test]
async fn browsing_pages_through_many_offers() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    for i in 0..30 {
        b.clock.advance(1);
        alice.offer(&format!("Book number {i}"), "books").await;
    }
    let first = alice.get("/offers").await;
    assert!(first.body.contains("Book number 29") && !first.body.contains("Book number 5<"));
    assert!(first.body.contains("page=2"));
    let second = alice.get("/offers?page=2").await;
    assert!(second.body.contains("Book number 0<") && !second.body.contains("page=3"));
}

/// The `csrf` fields of a page's forms.
fn form_tokens(page: &str) -> Vec<&str> {
    page.match_indices("name=\"csrf\" value=\"")
        .map(|(at, field)| {
            let rest = &page[at + field.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

#[tokio::test]
async fn kept_pages_carry_each_browsers_own_token_and_show_every_change() {
    let b = TestBoard::new();
    let mut laptop = b.signed_in("alice").await;
    let mut phone = b.signed_in("alice").await;
    let (laptop_token, phone_token) = (laptop.csrf().await, phone.csrf().await);
    assert_ne!(laptop_token, phone_token);
    let id = laptop.offer("Kept drill", "tools").await;
    for path in ["/".to_string(), "/offers".into(), format!("/offers/{id}")] {
        // Twice each: the second view is the kept page.
        for _ in 0..2 {
            for (client, token) in [(&mut laptop, &laptop_token), (&mut phone, &phone_token)] {
                let page = client.get(&path).await;
                let tokens = form_tokens(&page.body);
                assert!(!tokens.is_empty(), "{path} has a form");
                assert!(tokens.iter().all(|t| t == token), "{path}: {tokens:?}");
            }
        }
    }
    phone.offer("Fresh ladder", "tools").await;
    assert!(laptop.get("/offers").await.body.contains("Fresh ladder"));
    assert!(laptop.get("/").await.body.contains("Fresh ladder"));
    // Another member gets their own page, with their own token.
    let mut bob = b.signed_in("bob").await;
    let bob_token = bob.csrf().await;
    let page = bob.get("/offers").await.body;
    assert!(page.contains("Bob Durand"));
    assert!(form_tokens(&page).iter().all(|t| *t == bob_token));
}

#[tokio::test]
async fn the_front_page_shows_what_is_new_this_week() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    alice.offer("Old raclette set", "tools").await;
    b.clock.advance(8 * 86_400);
    alice.offer("Fresh sewing machine", "tools").await;
    let front = alice.get("/").await;
    assert!(front.body.contains("New this week"));
    assert!(front.body.contains("Fresh sewing machine"));
    assert!(!front.body.contains("Old raclette set"));
}

#[tokio::test]
async fn only_the_owner_sets_availability_and_unavailable_offers_cannot_be_asked_for() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    let mut bob = b.signed_in("bob").await;
    let id = alice.offer("Tent", "tools").await;
    let r = bob
        .post(
            &format!("/offers/{id}/availability"),
            &[("availability", "never")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = alice
        .post(
            &format!("/offers/{id}/availability"),
            &[("availability", "back in May")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = bob.get(&format!("/offers/{id}")).await;
    assert!(page.body.contains("Not available") && page.body.contains("back in May"));
    let r = bob.post(&format!("/offers/{id}/request"), &[]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

// --- loans -------------------------------------------------------------------

fn request_id(b: &TestBoard, who: &str) -> i64 {
    b.count(&format!(
        "SELECT max(id) FROM requests WHERE requester_id = '{who}'"
    ))
}

fn state_of(b: &TestBoard, id: i64) -> String {
    b.query(
        &format!("SELECT state FROM requests WHERE id = {id}"),
        |c, sql| c.query_row(sql, [], |r| r.get(0)).unwrap(),
    )
}

#[tokio::test]
async fn a_loan_goes_from_request_to_return_and_both_sides_see_it() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    let mut bob = b.signed_in("bob").await;
    let drill = alice.offer("Drill", "tools").await;
    let r = bob
        .post(
            &format!("/offers/{drill}/request"),
            &[
                ("start_date", "2026-11-03"),
                ("end_date", "2026-11-10"),
                ("message", "For shelves"),
            ],
        )
        .await;
    assert_eq!(r.location(), format!("/offers/{drill}?notice=requested"));
    let loan = request_id(&b, "bob");
    let mail = b.mails().pop().unwrap();
    assert_eq!(mail.0, "alice@amis-quartier.org");
    assert!(
        mail.1.contains("Bob Durand")
            && mail.2.contains("For shelves")
            && mail.2.contains("2026-11-10")
    );

    let owner_view = alice.get("/requests").await;
    assert!(
        owner_view.body.contains("For shelves")
            && owner_view
                .body
                .contains(&format!("/requests/{loan}/accept"))
    );
    let borrower_view = bob.get("/requests").await;
    assert!(borrower_view.body.contains("Requested") && !borrower_view.body.contains("/accept"));

    for (action, state) in [
        ("accept", "accepted"),
        ("lend", "lent"),
        ("return", "returned"),
    ] {
        let r = alice.post(&format!("/requests/{loan}/{action}"), &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{action}: {}", r.body);
        assert_eq!(state_of(&b, loan), state);
    }
    assert_eq!(
        b.count(&format!(
            "SELECT count(*) FROM requests WHERE id = {loan} AND due_date = '2026-11-10'"
        )),
        1
    );
    assert!(
        b.mails()
            .iter()
            .any(|m| m.0 == "bob@amis-quartier.org" && m.1.contains("accepted"))
    );
    let history = bob.get("/requests").await;
    assert!(history.body.contains("Drill") && history.body.contains("Returned"));
    let history = alice.get("/requests").await;
    assert!(history.body.contains("Returned") && history.body.contains("Bob Durand"));
}

#[tokio::test]
async fn only_the_owner_can_accept_decline_lend_or_return() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    let mut bob = b.signed_in("bob").await;
    let mut carol = b.signed_in("carol").await;
    let drill = alice.offer("Drill", "tools").await;
    bob.post(&format!("/offers/{drill}/request"), &[]).await;
    let loan = request_id(&b, "bob");
    for action in ["accept", "decline"] {
        let r = carol.post(&format!("/requests/{loan}/{action}"), &[]).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "a stranger cannot {action}"
        );
        let r = bob.post(&format!("/requests/{loan}/{action}"), &[]).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "the borrower cannot {action}"
        );
    }
    let r = carol.post(&format!("/requests/{loan}/cancel"), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "only the borrower cancels");
    let r = alice.post(&format!("/requests/{loan}/return"), &[]).await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "nothing to return yet"
    );
    let r = alice.post(&format!("/requests/{loan}/fly"), &[]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = alice.post("/requests/999/accept", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(state_of(&b, loan), "requested");
}

#[tokio::test]
async fn a_second_borrower_of_a_lent_item_joins_the_waiting_list_and_moves_up_on_return() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    let mut bob = b.signed_in("bob").await;
    let mut carol = b.signed_in("carol").await;
    let drill = alice.offer("Drill", "tools").await;
    bob.post(&format!("/offers/{drill}/request"), &[]).await;
    let first = request_id(&b, "bob");
    alice.post(&format!("/requests/{first}/accept"), &[]).await;
    alice.post(&format!("/requests/{first}/lend"), &[]).await;

    let page = carol.get(&format!("/offers/{drill}")).await;
    assert!(page.body.contains("Lent out") && page.body.contains("waiting list"));
    let r = carol
        .post(
            &format!("/offers/{drill}/request"),
            &[("message", "after Bob?")],
        )
        .await;
    assert_eq!(r.location(), format!("/offers/{drill}?notice=waiting"));
    let second = request_id(&b, "carol");
    assert_eq!(state_of(&b, second), "waiting");
    let r = carol.post(&format!("/offers/{drill}/request"), &[]).await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "one request per member"
    );

    alice.post(&format!("/requests/{first}/return"), &[]).await;
    assert_eq!(
        state_of(&b, second),
        "requested",
        "the next in line moves up"
    );
    let mail = b.mails().pop().unwrap();
    assert_eq!(mail.0, "carol@amis-quartier.org");
    assert!(mail.1.contains("is back"));
}

#[tokio::test]
async fn accepting_one_request_puts_the_others_on_the_waiting_list() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    let drill = alice.offer("Drill", "tools").await;
    b.signed_in("bob")
        .await
        .post(&format!("/offers/{drill}/request"), &[])
        .await;
    let mut carol = b.signed_in("carol").await;
    carol.post(&format!("/offers/{drill}/request"), &[]).await;
    alice
        .post(&format!("/requests/{}/accept", request_id(&b, "bob")), &[])
        .await;
    assert_eq!(state_of(&b, request_id(&b, "carol")), "waiting");
    // Bob changes his mind: Carol is next.
    b.signed_in("bob")
        .await
        .post(&format!("/requests/{}/cancel", request_id(&b, "bob")), &[])
        .await;
    assert_eq!(state_of(&b, request_id(&b, "carol")), "requested");
}

#[tokio::test]
async fn members_cannot_ask_for_their_own_offer_or_with_bad_dates() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    let drill = alice.offer("Drill", "tools").await;
    let r = alice.post(&format!("/offers/{drill}/request"), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let mut bob = b.signed_in("bob").await;
    for (start, end) in [
        ("2026-10-01", "2026-10-05"),
        ("2026-11-10", "2026-11-05"),
        ("soon", ""),
        ("9999-12-31", ""),
        ("2028-01-01", "2028-01-02"),
    ] {
        let r = bob
            .post(
                &format!("/offers/{drill}/request"),
                &[("start_date", start), ("end_date", end)],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{start}..{end}");
    }
    let r = bob.post("/offers/999/request", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_service_is_asked_agreed_and_done() {
    let b = TestBoard::new();
    let mut carol = b.signed_in("carol").await;
    let mut bob = b.signed_in("bob").await;
    let help = carol
        .offer_kind("Help with tax forms", "services", "service")
        .await;
    let page = bob.get(&format!("/offers/{help}")).await;
    assert!(page.body.contains("Ask for this service") && !page.body.contains("type=\"date\""));
    bob.post(
        &format!("/offers/{help}/request"),
        &[("message", "Saturday?")],
    )
    .await;
    let ask = request_id(&b, "bob");
    let r = bob.post(&format!("/requests/{ask}/agree"), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = carol.post(&format!("/requests/{ask}/accept"), &[]).await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "services are agreed, not lent"
    );
    carol.post(&format!("/requests/{ask}/agree"), &[]).await;
    assert_eq!(state_of(&b, ask), "agreed");
    carol.post(&format!("/requests/{ask}/done"), &[]).await;
    assert_eq!(state_of(&b, ask), "done");
    assert!(bob.get("/requests").await.body.contains("Done"));
}

// --- admins --------------------------------------------------------------------

#[tokio::test]
async fn an_admin_hides_an_offer_and_members_cannot() {
    let b = TestBoard::new();
    let mut bob = b.signed_in("bob").await;
    let mut alice = b.signed_in("alice").await;
    let id = bob.offer("Dubious thing", "tools").await;
    let r = bob.post(&format!("/offers/{id}/hide"), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = alice.post(&format!("/offers/{id}/hide"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(!bob.get("/offers").await.body.contains("Dubious thing"));
    assert_eq!(
        b.signed_in("carol")
            .await
            .get(&format!("/offers/{id}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(
        alice.get("/admin").await.body.contains("Dubious thing"),
        "admins see what they hid"
    );
    let own = bob.get(&format!("/offers/{id}")).await;
    assert_eq!(
        own.status,
        StatusCode::OK,
        "the owner still sees their offer"
    );
    assert!(own.body.contains("Dubious thing"));
    alice.post(&format!("/offers/{id}/unhide"), &[]).await;
    assert!(bob.get("/offers").await.body.contains("Dubious thing"));
}

#[tokio::test]
async fn an_admin_disables_a_member_who_then_cannot_sign_in_and_whose_offers_vanish() {
    let b = TestBoard::new();
    let mut bob = b.signed_in("bob").await;
    let mut alice = b.signed_in("alice").await;
    bob.offer("Ladder of Bob", "tools").await;
    assert_eq!(bob.get("/admin").await.status, StatusCode::FORBIDDEN);
    let r = bob.post("/admin/members/carol/disable", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = alice.post("/admin/members/bob/disable", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        bob.get("/offers").await.location(),
        "/signin",
        "the session ended"
    );
    let r = b
        .visitor()
        .post("/signin", &[("login", "bob"), ("password", "bob-password")])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!alice.get("/offers").await.body.contains("Ladder of Bob"));
    alice.post("/admin/members/bob/enable", &[]).await;
    b.signed_in("bob").await;
    assert!(alice.get("/offers").await.body.contains("Ladder of Bob"));
    let r = alice.post("/admin/members/alice/disable", &[]).await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an admin cannot lock themself out"
    );
}

// --- members file ----------------------------------------------------------------

#[tokio::test]
async fn members_missing_from_the_file_are_disabled_keep_their_history_and_return() {
    let mut b = TestBoard::new();
    {
        let mut alice = b.signed_in("alice").await;
        let drill = alice.offer("Drill", "tools").await;
        b.signed_in("bob")
            .await
            .post(&format!("/offers/{drill}/request"), &[])
            .await;
    }
    b.restart_with_members(&members_json(&["alice", "carol", "dave"]));
    let r = b
        .visitor()
        .post("/signin", &[("login", "bob"), ("password", "bob-password")])
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "bob left the association"
    );
    assert_eq!(
        b.count("SELECT count(*) FROM requests WHERE requester_id = 'bob'"),
        1,
        "history is kept"
    );
    assert!(
        b.signed_in("alice")
            .await
            .get("/admin")
            .await
            .body
            .contains("No longer in the association")
    );

    let renamed = members_json(&[]).replace("Bob Durand", "Bob Durand-Petit");
    b.restart_with_members(&renamed);
    let mut bob = b.signed_in("bob").await;
    assert!(
        bob.get("/").await.body.contains("Bob Durand-Petit"),
        "back, with his new name"
    );
    assert!(bob.get("/requests").await.body.contains("Drill"));
}

// --- language ----------------------------------------------------------------------

#[tokio::test]
async fn french_boards_speak_french() {
    let b = TestBoard::with(|c| c.locale = voisin::board::config::Locale::Fr);
    let page = b.visitor().get("/signin").await;
    assert!(page.body.contains("<html lang=\"fr\">") && page.body.contains("Se connecter"));
    let mut alice = b.signed_in("alice").await;
    let drill = alice.offer("Perceuse", "tools").await;
    b.signed_in("bob")
        .await
        .post(&format!("/offers/{drill}/request"), &[])
        .await;
    assert!(b.mails()[0].1.contains("demande « Perceuse »"));
    assert!(alice.get("/requests").await.body.contains("Accepter"));
}

#[tokio::test]
async fn pages_are_escaped() {
    let b = TestBoard::new();
    let mut alice = b.signed_in("alice").await;
    let id = alice.offer("<script>alert(1)</script>", "tools").await;
    let page = alice.get(&format!("/offers/{id}")).await;
    assert!(!page.body.contains("<script>alert") && page.body.contains("&lt;script&gt;"));
}

#[tokio::test]
async fn pages_are_html_and_errors_are_pages_too() {
    let b = TestBoard::new();
    let page = b.visitor().get("/signin").await;
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    let missing = b.signed_in("bob").await.get("/offers/4242").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.headers["content-type"], "text/html; charset=utf-8");
    assert!(missing.body.contains("does not exist"));
}

#[tokio::test]
async fn tidying_forgets_expired_sessions_and_links_but_not_live_ones() {
    let b = TestBoard::new();
    b.signed_in("bob").await;
    b.visitor()
        .post("/signin/link", &[("email", "dave@amis-quartier.org")])
        .await;
    assert_eq!(
        b.board.tidy().await.unwrap(),
        0,
        "everything is still valid"
    );
    b.clock.advance(31 * 60);
    assert_eq!(b.board.tidy().await.unwrap(), 1, "the link expired");
    assert_eq!(b.count("SELECT count(*) FROM sessions"), 1);
    b.clock.advance(31 * 86_400);
    b.board.tidy().await.unwrap();
    assert_eq!(b.count("SELECT count(*) FROM sessions"), 0);
    assert_eq!(
        b.count("SELECT count(*) FROM mail_queue"),
        1,
        "undelivered mail is never dropped"
    );
}

#[tokio::test]
async fn a_member_who_came_by_link_chooses_a_password_and_signs_in_with_it() {
    let b = TestBoard::new();
    b.visitor()
        .post("/signin/link", &[("email", "dave@amis-quartier.org")])
        .await;
    let body = &b.mails()[0].2;
    let token = body
        .split("token=")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let mut dave = b.visitor();
    dave.post("/signin/link/use", &[("token", &token)]).await;
    let page = dave.get("/account").await;
    assert!(page.body.contains("Choose a password") && !page.body.contains("name=\"current\""));
    let r = dave.post("/account/password", &[("new", "short")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = dave
        .post("/account/password", &[("new", "a long walk to the bakery")])
        .await;
    assert_eq!(r.location(), "/account?notice=password_set");
    let r = b
        .visitor()
        .post(
            "/signin",
            &[("login", "dave"), ("password", "a long walk to the bakery")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn changing_a_password_needs_the_current_one_and_survives_a_restart() {
    let mut b = TestBoard::new();
    {
        let mut bob = b.signed_in("bob").await;
        let r = bob
            .post(
                "/account/password",
                &[("current", "wrong"), ("new", "a brand new secret")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r = bob
            .post(
                "/account/password",
                &[("current", "bob-password"), ("new", "a brand new secret")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
    }
    b.restart_with_members(&members_json(&[]));
    let old = b
        .visitor()
        .post("/signin", &[("login", "bob"), ("password", "bob-password")])
        .await;
    assert_eq!(
        old.status,
        StatusCode::UNAUTHORIZED,
        "the same members file does not undo it"
    );
    let new = b
        .visitor()
        .post(
            "/signin",
            &[("login", "bob"), ("password", "a brand new secret")],
        )
        .await;
    assert_eq!(new.status, StatusCode::SEE_OTHER);
}
