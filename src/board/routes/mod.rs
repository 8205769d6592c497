//! The board's HTTP surface: the router, who is asking ([`Viewer`]), the
//! CSRF guard every form passes through, and how failures become pages.

mod admin;
mod loaded;

pub(crate) use loaded::OfferData;
mod offers;
mod requests;
mod session;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_util::StreamExt as _;
use rusqlite::OptionalExtension as _;
use serde::Serialize;

use super::Shared;
use super::auth::{self, cookie, set_cookie};
use super::cache::CutPage;
use super::config::Subnet;

/// The state every handler shares.
pub(crate) type AppState = Arc<Shared>;

/// The board's routes, with their middleware.
pub(crate) fn router(state: AppState) -> Router {
    // Room for the photo plus the other fields of the offer form.
    let body_limit = usize::try_from(state.config.photo_max_size)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    table()
        .router
        .layer(middleware::from_fn_with_state(state.clone(), every_request))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// What every request passes through, outermost first: the security
/// headers, the failure pages, the forgetting of what a change made stale,
/// and the CSRF guard. One layer rather than four: each layer costs every
/// request a boxed future and a clone of the rest of the router (see
/// `docs/benchmarks.md`, "Lending board").
async fn every_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let post = req.method() == Method::POST;
    let response = csrf_guard(&state, req, next).await;
    if post {
        changed(&state);
    }
    let response = failure_page(&state, response);
    with_security_headers(&state, response)
}

/// The paths that take a POST, as the router registers them (tests prove
/// each one refuses a form without its CSRF token).
pub(crate) fn post_paths() -> Vec<&'static str> {
    table().posts
}

/// The paths that answer a GET, as the router registers them.
pub(crate) fn get_paths() -> Vec<&'static str> {
    table().gets
}

/// The routes, and which of them take a POST: every POST is registered
/// through [`Routes::post`] or [`Routes::both`], so the list cannot miss one.
fn table() -> Routes {
    Routes::default()
        .get("/", offers::front)
        .get("/healthz", healthz)
        .get("/style.css", style)
        .both("/signin", session::page, session::password)
        .both("/signin/link", session::link_page, session::send_link)
        .post("/signin/link/use", session::use_link)
        .post("/signout", session::sign_out)
        .get("/account", session::account)
        .post("/account/password", session::change_password)
        .post("/account/sessions/{id}/end", session::end_session)
        .both("/offers", offers::browse, offers::create)
        .get("/offers/new", offers::new_form)
        .get("/offers/{id}", offers::show)
        .post("/offers/{id}/availability", offers::availability)
        .post("/offers/{id}/hide", admin::hide_offer)
        .post("/offers/{id}/unhide", admin::unhide_offer)
        .post("/offers/{id}/request", requests::create)
        .get("/photos/{id}", offers::photo)
        .get("/requests", requests::history)
        .post("/requests/{id}/{action}", requests::act)
        .get("/admin", admin::page)
        .post("/admin/members/{id}/{action}", admin::member_action)
}

/// A router being built, with the paths that take a POST.
#[derive(Default)]
struct Routes {
    router: Router<AppState>,
    gets: Vec<&'static str>,
    posts: Vec<&'static str>,
}

impl Routes {
    fn get<H, T>(mut self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, get(handler));
        self.gets.push(path);
        self
    }

    fn post<H, T>(mut self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, post(handler));
        self.posts.push(path);
        self
    }

    fn both<G, T, P, U>(mut self, path: &'static str, page: G, form: P) -> Self
    where
        G: Handler<T, AppState>,
        P: Handler<U, AppState>,
        T: 'static,
        U: 'static,
    {
        self.router = self.router.route(path, get(page).post(form));
        self.gets.push(path);
        self.posts.push(path);
        self
    }
}

/// Why a request was refused. Handlers return it; [`failure_page`] turns
/// it into a page in the board's language.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No such page, or one the viewer may not see.
    NotFound,
    /// The viewer may not do this (not the owner, not an admin).
    Forbidden,
    /// The page needs a signed-in member.
    SignIn,
    /// The form is invalid; the key names the message.
    Invalid(&'static str),
    /// The form's CSRF token is missing or wrong.
    Csrf,
    /// The upload is larger than allowed.
    TooLarge,
    /// A form without a file is larger than any of the board's forms.
    FormTooLarge,
    /// Too many attempts; try again in this many seconds.
    RateLimited(i64),
    /// Something broke on our side; logged, never shown in detail.
    Internal(anyhow::Error),
}

/// Marks a failure response so [`failure_page`] can render it.
#[derive(Debug, Clone, Copy)]
struct FailureKey(&'static str);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, key) = match self {
            Self::SignIn => return Redirect::to("/signin").into_response(),
            Self::NotFound => (StatusCode::NOT_FOUND, "error_not_found"),
            Self::Forbidden => (StatusCode::FORBIDDEN, "error_forbidden"),
            Self::Invalid(key) => (StatusCode::UNPROCESSABLE_ENTITY, key),
            Self::Csrf => (StatusCode::FORBIDDEN, "error_csrf"),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "error_too_large"),
            Self::FormTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "error_form_too_large"),
            Self::RateLimited(seconds) => {
                let mut response = StatusCode::TOO_MANY_REQUESTS.into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
                response
                    .extensions_mut()
                    .insert(FailureKey("error_rate_limited"));
                return response;
            }
            Self::Internal(err) => {
                eprintln!("board: {err:#}");
                (StatusCode::INTERNAL_SERVER_ERROR, "error_internal")
            }
        };
        let mut response = status.into_response();
        response.extensions_mut().insert(FailureKey(key));
        response
    }
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        Self::Internal(err)
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(err: rusqlite::Error) -> Self {
        Self::Internal(err.into())
    }
}

/// What handlers return.
pub(crate) type Outcome = Result<Response, Failure>;

/// Renders a failure response as a page in the board's language: the
/// handlers' own, and the bare ones axum gives for a path that matches no
/// route, a body over the limit or a form it cannot read. Headers the
/// failure set (like `Retry-After`) are kept.
fn failure_page(state: &AppState, response: Response) -> Response {
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    let key = match response.extensions().get::<FailureKey>() {
        Some(FailureKey(key)) => *key,
        None if is_html => return response,
        None => match response.status() {
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => "error_not_found",
            StatusCode::PAYLOAD_TOO_LARGE => "error_too_large",
            StatusCode::TOO_MANY_REQUESTS => "error_rate_limited",
            StatusCode::BAD_REQUEST
            | StatusCode::UNSUPPORTED_MEDIA_TYPE
            | StatusCode::UNPROCESSABLE_ENTITY => "error_bad_request",
            _ => return response,
        },
    };
    let mut ctx = state.context(None, "");
    ctx.insert("message", state.texts.get(key));
    let Ok(html) = state.pages.render("message.html", &ctx) else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Response::from_parts(parts, Body::from(html))
}

/// The policy every answer carries: everything from the board itself, no
/// script at all (the pages need none), no plugins, no framing, forms that
/// post only to the board.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'none'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Security headers on every answer, pages, photos, errors and redirects
/// alike, from the board itself: a local trial has no proxy to add them.
/// A handler's own choice (the sign-in link page's stricter referrer
/// policy) is kept.
fn with_security_headers(state: &AppState, mut response: Response) -> Response {
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "same-origin");
    set(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if state.config.secure_cookies {
        // Only over https: a browser keeps this for a year, and a trial on
        // plain http would lock itself out.
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    response
}

/// Every change to the board comes through a POST: once one is answered
/// (its transaction committed), cached offer lists and sessions are stale,
/// and mail it queued can go.
fn changed(state: &AppState) {
    state.lists.invalidate();
    state.sessions.clear();
    state.mail_waiting.notify_one();
}

/// The token a form must carry, from the CSRF cookie (or a new one).
#[derive(Debug, Clone)]
pub(crate) struct CsrfToken(pub String);

/// Largest urlencoded form: the board's forms hold a few short fields and
/// a message of at most 1,000 characters.
const FORM_LIMIT: usize = 64 * 1024;

/// How much of a multipart body is read before its first field must be
/// whole: the token is the first field of every multipart form.
const MULTIPART_HEAD: usize = 4 * 1024;

/// Double-submit CSRF protection for every state-changing request, in this
/// one place whatever the body's type: a random token lives in an
/// `HttpOnly` cookie and in a hidden field of every form; a request whose
/// field does not match the cookie is refused before any handler runs.
/// Together with `SameSite` cookies this stops other sites from posting on
/// a member's behalf.
///
/// An urlencoded body is read whole (it is small). A multipart body may
/// carry a photo of megabytes, so it is not buffered: its first field must
/// be the token (browsers send fields in the form's order, and the hidden
/// field comes first), and only the first few kilobytes are read to find
/// it, then handed on with the rest of the stream.
async fn csrf_guard(state: &AppState, mut req: Request, next: Next) -> Response {
    let existing = cookie(req.headers(), &state.cookies.csrf).map(str::to_string);
    let fresh = existing.is_none();
    let token = existing.unwrap_or_else(auth::random_token);
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let checked = if fresh {
            Err(Failure::Csrf)
        } else {
            check_form_token(req, &token).await
        };
        match checked {
            Ok(passed) => req = passed,
            Err(failure) => return failure.into_response(),
        }
    }
    req.extensions_mut().insert(CsrfToken(token.clone()));
    let mut response = next.run(req).await;
    if fresh {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(
                &state.cookies.csrf,
                &token,
                auth::SESSION_SECONDS,
                state.config.secure_cookies,
            ),
        );
    }
    response
}

/// Finds the `csrf` field of a form and compares it with `token`; gives
/// the request back, its body whole, when they match.
async fn check_form_token(req: Request, token: &str) -> Result<Request, Failure> {
    let kind = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let essence = kind
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (parts, body) = req.into_parts();
    let (sent, body) = match essence.as_str() {
        "application/x-www-form-urlencoded" => {
            let (bytes, rest) = read_head(body, FORM_LIMIT + 1).await?;
            if bytes.len() > FORM_LIMIT {
                drop(rest);
                return Err(Failure::FormTooLarge);
            }
            let fields: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
            let sent = fields
                .into_iter()
                .find(|(k, _)| k == "csrf")
                .map(|(_, v)| v);
            (sent, Body::from(bytes))
        }
        "multipart/form-data" => {
            let boundary = multer::parse_boundary(&kind).map_err(|_| Failure::Csrf)?;
            let (head, rest) = read_head(body, MULTIPART_HEAD).await?;
            let sent = first_field_token(head.clone(), &boundary).await;
            let whole = futures_util::stream::once(std::future::ready(Ok::<_, axum::Error>(head)))
                .chain(rest);
            (sent, Body::from_stream(whole))
        }
        _ => (None, Body::empty()),
    };
    if sent.is_some_and(|s| auth::same(&s, token)) {
        Ok(Request::from_parts(parts, body))
    } else {
        Err(Failure::Csrf)
    }
}

/// Reads at least `at_least` bytes of a body (all of it when shorter) and
/// gives them back with the stream of the rest.
async fn read_head(
    body: Body,
    at_least: usize,
) -> Result<(Bytes, axum::body::BodyDataStream), Failure> {
    let mut rest = body.into_data_stream();
    let mut head = Vec::new();
    while head.len() < at_least {
        match rest.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            // A broken body, or one that came too slowly (the limits on
            // size are larger than what is read here).
            Some(Err(_)) => return Err(Failure::Invalid("error_bad_request")),
            None => break,
        }
    }
    Ok((Bytes::from(head), rest))
}

/// The value of the first field of a multipart body when that field is
/// `csrf` and lies whole within `head`.
async fn first_field_token(head: Bytes, boundary: &str) -> Option<String> {
    let stream = futures_util::stream::once(std::future::ready(Ok::<_, std::io::Error>(head)));
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().per_field(1024));
    let mut fields = multer::Multipart::with_constraints(stream, boundary, constraints);
    let field = fields.next_field().await.ok()??;
    if field.name() != Some("csrf") || field.file_name().is_some() {
        return None;
    }
    field.text().await.ok()
}

/// A signed-in member, as pages and checks need them.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Member {
    pub id: String,
    pub name: String,
    pub email: String,
    pub admin: bool,
}

/// Who is asking: the signed-in member if any, the CSRF token for forms,
/// the client's address (for rate limits), and a notice to show.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub member: Option<Member>,
    /// The hash of the session token the request came with, if any.
    pub session: Option<Vec<u8>>,
    pub csrf: String,
    pub client: String,
    pub notice: String,
}

impl Viewer {
    /// The signed-in member, or a redirect to the sign-in page.
    pub fn member(&self) -> Result<&Member, Failure> {
        self.member.as_ref().ok_or(Failure::SignIn)
    }

    /// The signed-in admin, or a refusal.
    pub fn admin(&self) -> Result<&Member, Failure> {
        let m = self.member()?;
        if m.admin {
            Ok(m)
        } else {
            Err(Failure::Forbidden)
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let csrf = parts
            .extensions
            .get::<CsrfToken>()
            .map(|t| t.0.clone())
            .unwrap_or_default();
        let client = client_address(parts, &state.config.trusted_proxies);
        let notice = parts
            .uri
            .query()
            .and_then(|q| serde_urlencoded::from_str::<HashMap<String, String>>(q).ok())
            .and_then(|q| q.get("notice").cloned())
            .filter(|k| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .map(|k| state.texts.get(&format!("notice_{k}")).to_string())
            .unwrap_or_default();
        let session = cookie(&parts.headers, &state.cookies.session).map(auth::token_hash);
        let member = match &session {
            None => None,
            Some(hash) => {
                let now = state.clock.now();
                let cached = state.sessions.get(hash, now);
                if cached.is_some() {
                    cached
                } else {
                    lookup_session(state, hash.clone(), now)?
                }
            }
        };
        Ok(Self {
            member,
            session,
            csrf,
            client,
            notice,
        })
    }
}

/// The client's address, for rate limits. A peer among the configured
/// trusted proxies (the one voisin deploys) speaks for its client: the
/// client is the last address in `X-Forwarded-For` that is not itself a
/// trusted proxy. Anyone else's header is ignored, so a client cannot
/// choose its own address; with no trusted proxy configured, none is read.
fn client_address(parts: &Parts, trusted: &[Subnet]) -> String {
    let Some(peer) = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return "local".into();
    };
    let is_proxy = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_proxy(peer) {
        return peer.to_string();
    }
    let forwarded: Vec<IpAddr> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|a| a.trim().parse::<IpAddr>())
        .collect::<Result<_, _>>()
        // A header we cannot read whole names nobody we can trust.
        .unwrap_or_default();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !is_proxy(*ip))
        .unwrap_or(peer)
        .to_string()
}

/// Finds a session in the database and remembers it.
fn lookup_session(state: &AppState, hash: Vec<u8>, now: i64) -> Result<Option<Member>, Failure> {
    let key = hash.clone();
    let found = state.db.read(move |conn| {
        Ok(conn
            .prepare_cached(
                "SELECT m.id, m.name, m.email, m.admin, s.expires_at FROM sessions s
                 JOIN members m ON m.id = s.member_id
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2
                   AND m.in_file = 1 AND m.disabled = 0",
            )?
            .query_row(rusqlite::params![key, now], |r| {
                let member = Member {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    email: r.get(2)?,
                    admin: r.get(3)?,
                };
                Ok((member, r.get::<_, i64>(4)?))
            })
            .optional()?)
    })?;
    Ok(found.map(|(member, expires)| {
        state.sessions.put(hash, member.clone(), expires);
        member
    }))
}

/// Longest key of a page kept in memory (see [`member_page`]).
const MEMBER_PAGE_KEY_MAX: usize = 200;

/// A signed-in member's page `page` (a key naming it and everything it
/// shows but the member and the time): kept from an earlier view when
/// nothing changed since within the hour, else rendered by `render` (given
/// the stand-in for the CSRF token to put in its forms) and kept. Its
/// figures are in `docs/benchmarks.md`: rendering every view was most of a
/// page's cost.
pub(crate) fn member_page(
    state: &AppState,
    viewer: &Viewer,
    member: &Member,
    page: String,
    render: impl FnOnce(&str) -> Result<String, Failure>,
) -> Outcome {
    // A search of a whole paragraph is not worth keeping: kept pages stay
    // small, whatever members type.
    if page.len() > MEMBER_PAGE_KEY_MAX {
        return Ok(Html(render(&viewer.csrf)?).into_response());
    }
    // Read first, so a change during the rendering makes the page stale,
    // never wrong (see `ListCache::generation`).
    let generation = state.lists.generation();
    let key = (page, member.id.clone(), state.clock.now().div_euclid(3_600));
    let cut = if let Some(cut) = state.member_pages.get(&key, generation) {
        cut
    } else {
        let cut = Arc::new(CutPage::cut(&render(&state.csrf_slot)?, &state.csrf_slot));
        state.member_pages.put(key, generation, cut.clone());
        cut
    };
    Ok(Html(cut.with_token(&viewer.csrf)).into_response())
}

/// Renders a page.
pub(crate) fn render(state: &AppState, name: &str, ctx: &tera::Context) -> Outcome {
    Ok(Html(state.pages.render(name, ctx)?).into_response())
}

/// A redirect after a successful form (303: the browser follows with GET).
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state
        .db
        .call(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
        .await
    {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response(),
    }
}

async fn style() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        include_str!("../pages/style.css"),
    )
        .into_response()
}
