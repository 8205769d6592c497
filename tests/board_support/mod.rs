//! What the board's tests share: a board on a temporary database with four
//! members and a hand-driven clock, and a client that keeps cookies and
//! puts the CSRF token into forms like a browser would.

#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use tempfile::TempDir;
use tower::ServiceExt as _;
use voisin::board::{Board, Config, ManualClock, hash_password};

/// 2026-11-02 09:00 UTC, a Monday: tests start here.
pub const START: i64 = 1_793_610_000;

/// Passwords of the test members; dave has none (mail link only).
pub const MEMBERS: &[(&str, &str, bool, Option<&str>)] = &[
    ("alice", "Alice Martin", true, Some("alice-password")),
    ("bob", "Bob Durand", false, Some("bob-password")),
    ("carol", "Carol Petit", false, Some("carol-password")),
    ("dave", "Dave Leroy", false, None),
];

/// The members file for [`MEMBERS`], hashed once per test binary (argon2
/// is slow on purpose).
pub fn members_json(only: &[&str]) -> String {
    static HASHES: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    let hashes = HASHES.get_or_init(|| {
        MEMBERS
            .iter()
            .filter_map(|(id, _, _, pw)| pw.map(|pw| (*id, hash_password(pw).unwrap())))
            .collect()
    });
    let members: Vec<serde_json::Value> = MEMBERS
        .iter()
        .filter(|(id, ..)| only.is_empty() || only.contains(id))
        .map(|(id, name, admin, _)| {
            let mut m = serde_json::json!({
                "id": id, "name": name, "email": format!("{id}@amis-quartier.org"), "admin": admin,
            });
            if let Some(h) = hashes.get(id) {
                m["password_hash"] = h.clone().into();
            }
            m
        })
        .collect();
    serde_json::json!({ "members": members }).to_string()
}

/// A board on a fresh database.
pub struct TestBoard {
    pub board: Board,
    pub clock: Arc<ManualClock>,
    pub dir: TempDir,
    pub config: Config,
    router: Router,
}

impl TestBoard {
    /// A board with the default settings.
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// A board with settings changed by `edit`.
    pub fn with(edit: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let members = dir.path().join("members.json");
        std::fs::write(&members, members_json(&[])).unwrap();
        let mut config = Config::new(dir.path().join("board.sqlite"));
        config.members_file = Some(members);
        config.association = "Les Amis du Quartier".into();
        config.categories = ["books", "films", "tools", "services"]
            .map(String::from)
            .to_vec();
        config.photo_max_size = 100_000;
        edit(&mut config);
        let clock = Arc::new(ManualClock::new(START));
        let board = Board::open(config.clone(), clock.clone()).unwrap();
        let router = board.router();
        Self {
            board,
            clock,
            dir,
            config,
            router,
        }
    }

    /// Opens the board again on the same database (a restart), with the
    /// members file replaced by `members_json`.
    pub fn restart_with_members(&mut self, members_json: &str) {
        std::fs::write(self.config.members_file.as_ref().unwrap(), members_json).unwrap();
        self.board = Board::open(self.config.clone(), self.clock.clone()).unwrap();
        self.router = self.board.router();
    }

    /// The board's routes, to send requests from several tasks at once.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Adds `n` members without passwords, `m001` onwards, signed in
    /// straight through the database (argon2 sign-ins would take minutes):
    /// returns each one's cookie header, token included, and the token.
    pub fn crowd(&mut self, n: usize) -> Vec<(String, String)> {
        let mut json: serde_json::Value = serde_json::from_str(&members_json(&[])).unwrap();
        let list = json["members"].as_array_mut().unwrap();
        for i in 1..=n {
            list.push(serde_json::json!({
                "id": format!("m{i:03}"), "name": format!("Member {i}"),
                "email": format!("m{i:03}@amis-quartier.org"),
            }));
        }
        self.restart_with_members(&json.to_string());
        let conn = rusqlite::Connection::open(&self.config.database).unwrap();
        (1..=n)
            .map(|i| {
                let token = format!("session-of-member-{i:03}");
                let hash = <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()).to_vec();
                conn.execute(
                    "INSERT INTO sessions (token_hash, member_id, expires_at) VALUES (?1, ?2, ?3)",
                    rusqlite::params![hash, format!("m{i:03}"), START + 86_400],
                )
                .unwrap();
                let csrf = format!("csrf{i:03}");
                (format!("voisin_session={token}; voisin_csrf={csrf}"), csrf)
            })
            .collect()
    }

    /// Sends one request through the router.
    pub async fn send(&self, req: Request<Body>) -> Resp {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            bytes: bytes.to_vec(),
        }
    }

    /// A visitor with no cookies.
    pub fn visitor(&self) -> Client<'_> {
        Client {
            board: self,
            cookies: HashMap::new(),
        }
    }

    /// A member signed in with their password.
    pub async fn signed_in(&self, id: &str) -> Client<'_> {
        let password = MEMBERS.iter().find(|m| m.0 == id).unwrap().3.unwrap();
        let mut c = self.visitor();
        let r = c
            .post("/signin", &[("login", id), ("password", password)])
            .await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "sign-in of {id} failed: {}",
            r.body
        );
        c
    }

    /// Runs a query on the board's database.
    pub fn query<T>(&self, sql: &str, map: impl FnOnce(&rusqlite::Connection, &str) -> T) -> T {
        let conn = rusqlite::Connection::open(&self.config.database).unwrap();
        map(&conn, sql)
    }

    /// A number from the database.
    pub fn count(&self, sql: &str) -> i64 {
        self.query(sql, |c, sql| c.query_row(sql, [], |r| r.get(0)).unwrap())
    }

    /// Queued mails as (recipient, subject, body).
    pub fn mails(&self) -> Vec<(String, String, String)> {
        self.query(
            "SELECT recipient, subject, body FROM mail_queue ORDER BY id",
            |c, sql| {
                let mut s = c.prepare(sql).unwrap();
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            },
        )
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
    pub bytes: Vec<u8>,
}

impl Resp {
    /// Where a redirect goes.
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map_or("", |v| v.to_str().unwrap())
    }

    /// Every `Set-Cookie` line.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
}

/// A browser-like client: keeps cookies, adds the CSRF field to forms.
pub struct Client<'a> {
    board: &'a TestBoard,
    pub cookies: HashMap<String, String>,
}

impl Client<'_> {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, r: &Resp) {
        for line in r.set_cookies() {
            let pair = line.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || line.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
    }

    /// The CSRF token the board gave this client (fetching a page first
    /// when it has none yet).
    pub async fn csrf(&mut self) -> String {
        if !self.cookies.contains_key("voisin_csrf") {
            self.get("/signin").await;
        }
        self.cookies["voisin_csrf"].clone()
    }

    /// GET `path`.
    pub async fn get(&mut self, path: &str) -> Resp {
        let req = Request::get(path)
            .header(header::COOKIE, self.cookie_header())
            .body(Body::empty())
            .unwrap();
        let r = self.board.send(req).await;
        self.keep(&r);
        r
    }

    /// POSTs a form, with the CSRF token added.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let csrf = self.csrf().await;
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf", &csrf));
        let body = serde_urlencoded::to_string(&all).unwrap();
        self.post_raw(path, "application/x-www-form-urlencoded", body.into_bytes())
            .await
    }

    /// POSTs a body as is.
    pub async fn post_raw(&mut self, path: &str, content_type: &str, body: Vec<u8>) -> Resp {
        let req = Request::post(path)
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        let r = self.board.send(req).await;
        self.keep(&r);
        r
    }

    /// POSTs `fields` as `multipart/form-data`, in the given order, with
    /// an optional photo last.
    pub async fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        photo: Option<&[u8]>,
    ) -> Resp {
        let (content_type, body) = multipart(fields, photo);
        self.post_raw(path, &content_type, body).await
    }

    /// Publishes an offer through the multipart form; returns the response.
    /// The token comes first, as the form's hidden field does.
    pub async fn offer_with(
        &mut self,
        fields: &[(&str, &str)],
        photo: Option<&[u8]>,
        with_csrf: bool,
    ) -> Resp {
        let csrf = self.csrf().await;
        let mut all: Vec<(&str, &str)> = Vec::new();
        if with_csrf {
            all.push(("csrf", &csrf));
        }
        all.extend_from_slice(fields);
        self.post_multipart("/offers", &all, photo).await
    }

    /// Publishes an item and returns its id.
    pub async fn offer(&mut self, title: &str, category: &str) -> i64 {
        self.offer_kind(title, category, "item").await
    }

    /// Publishes an offer of `kind` and returns its id.
    pub async fn offer_kind(&mut self, title: &str, category: &str, kind: &str) -> i64 {
        let r = self
            .offer_with(
                &[
                    ("kind", kind),
                    ("category", category),
                    ("title", title),
                    ("description", "in good shape"),
                ],
                None,
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "offer failed: {}", r.body);
        r.location()
            .trim_start_matches("/offers/")
            .split('?')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }
}

/// The smallest valid PNG header plus padding.
pub fn png(len: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.resize(len.max(8), 0);
    v
}

/// A `multipart/form-data` body of `fields` in order, then `photo`: the
/// content type and the bytes.
pub fn multipart(fields: &[(&str, &str)], photo: Option<&[u8]>) -> (String, Vec<u8>) {
    let boundary = "----voisintestboundary";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some(photo) = photo {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"p.png\"\r\nContent-Type: image/png\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(photo);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
