//! The board's HTTP surface: the router, who is asking ([`Viewer`]), the
//! CSRF guard every form passes through, and how failures become pages.

mod admin;
mod offers;
mod requests;
mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rusqlite::OptionalExtension as _;
use serde::Serialize;

use super::Shared;
use super::auth::{self, cookie, set_cookie};

/// The state every handler shares.
pub(crate) type AppState = Arc<Shared>;

/// The board's routes, with their middleware.
pub(crate) fn router(state: AppState) -> Router {
    // Room for the photo plus the other fields of the offer form.
    let body_limit = usize::try_from(state.config.photo_max_size)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    Router::new()
        .route("/", get(offers::front))
        .route("/healthz", get(healthz))
        .route("/style.css", get(style))
        .route("/signin", get(session::page).post(session::password))
        .route(
            "/signin/link",
            get(session::link_page).post(session::send_link),
        )
        .route("/signin/link/use", post(session::use_link))
        .route("/signout", post(session::sign_out))
        .route("/account", get(session::account))
        .route("/account/password", post(session::change_password))
        .route("/offers", get(offers::browse).post(offers::create))
        .route("/offers/new", get(offers::new_form))
        .route("/offers/{id}", get(offers::show))
        .route("/offers/{id}/availability", post(offers::availability))
        .route("/offers/{id}/hide", post(admin::hide_offer))
        .route("/offers/{id}/unhide", post(admin::unhide_offer))
        .route("/offers/{id}/request", post(requests::create))
        .route("/photos/{id}", get(offers::photo))
        .route("/requests", get(requests::history))
        .route("/requests/{id}/{action}", post(requests::act))
        .route("/admin", get(admin::page))
        .route("/admin/members/{id}/{action}", post(admin::member_action))
        .layer(middleware::from_fn_with_state(state.clone(), csrf_guard))
        .layer(middleware::from_fn_with_state(state.clone(), changes))
        .layer(middleware::from_fn_with_state(state.clone(), failure_pages))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Why a request was refused. Handlers return it; [`failure_pages`] turns
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
    /// Too many attempts; try later.
    RateLimited,
    /// Something broke on our side; logged, never shown in detail.
    Internal(anyhow::Error),
}

/// Marks a failure response so [`failure_pages`] can render it.
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
            Self::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "error_rate_limited"),
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

/// Renders failure responses (and axum's own 413) as pages.
async fn failure_pages(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let key = match response.extensions().get::<FailureKey>() {
        Some(FailureKey(key)) => *key,
        None if response.status() == StatusCode::PAYLOAD_TOO_LARGE => "error_too_large",
        None => return response,
    };
    let status = response.status();
    let mut ctx = state.context(None, "");
    ctx.insert("message", state.texts.get(key));
    match state.pages.render("message.html", &ctx) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => status.into_response(),
    }
}

/// Every change to the board comes through a POST: once one is answered
/// (its transaction committed), cached offer lists and sessions are stale,
/// and mail it queued can go.
async fn changes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let post = req.method() == Method::POST;
    let response = next.run(req).await;
    if post {
        state.lists.invalidate();
        state.sessions.clear();
        state.mail_waiting.notify_one();
    }
    response
}

/// The token a form must carry, from the CSRF cookie (or a new one).
#[derive(Debug, Clone)]
pub(crate) struct CsrfToken(pub String);

/// Multipart forms are checked by their handler, which reads the body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CsrfPending;

/// Double-submit CSRF protection for every form: a random token lives in
/// an `HttpOnly` cookie and in a hidden field of every form; a POST whose
/// field does not match the cookie is refused. Together with `SameSite`
/// cookies this stops other sites from posting on a member's behalf.
async fn csrf_guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let existing = cookie(req.headers(), &state.cookies.csrf).map(str::to_string);
    let fresh = existing.is_none();
    let token = existing.unwrap_or_else(auth::random_token);
    if req.method() == Method::POST {
        let kind = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if kind.starts_with("multipart/form-data") {
            if fresh {
                return Failure::Csrf.into_response();
            }
            req.extensions_mut().insert(CsrfPending);
        } else if kind.starts_with("application/x-www-form-urlencoded") {
            let (parts, body) = req.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
                return Failure::TooLarge.into_response();
            };
            let fields: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
            let sent = fields
                .iter()
                .find(|(k, _)| k == "csrf")
                .map(|(_, v)| v.as_str());
            if fresh || !sent.is_some_and(|s| auth::same(s, &token)) {
                return Failure::Csrf.into_response();
            }
            req = Request::from_parts(parts, Body::from(bytes));
        } else {
            return Failure::Csrf.into_response();
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
        let client = client_address(parts);
        let notice = parts
            .uri
            .query()
            .and_then(|q| serde_urlencoded::from_str::<HashMap<String, String>>(q).ok())
            .and_then(|q| q.get("notice").cloned())
            .filter(|k| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .map(|k| state.texts.get(&format!("notice_{k}")).to_string())
            .unwrap_or_default();
        let member = match cookie(&parts.headers, &state.cookies.session) {
            None => None,
            Some(token) => {
                let hash = auth::token_hash(token);
                let now = state.clock.now();
                let cached = state.sessions.get(&hash, now);
                if cached.is_some() {
                    cached
                } else {
                    lookup_session(state, hash, now)?
                }
            }
        };
        Ok(Self {
            member,
            csrf,
            client,
            notice,
        })
    }
}

/// The client's address, for rate limits. Behind the association's proxy
/// (a peer on a private or loopback address) it is the last address the
/// proxy added to `X-Forwarded-For`; anyone else's header is ignored, so a
/// client cannot pick its own address.
fn client_address(parts: &Parts) -> String {
    let Some(peer) = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return "local".into();
    };
    let behind_proxy = match peer {
        std::net::IpAddr::V4(ip) => ip.is_private() || ip.is_loopback(),
        std::net::IpAddr::V6(ip) => ip.is_loopback() || ip.is_unique_local(),
    };
    let forwarded = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .next_back();
    match forwarded {
        Some(client) if behind_proxy => client.to_string(),
        _ => peer.to_string(),
    }
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
