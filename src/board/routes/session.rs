//! Signing in and out: by password (argon2) or by a one-time link sent by
//! mail; the account page, its password and its sessions. Every answer is
//! the same whether an account exists or not. Failed password checks slow
//! the next attempt, per account (by member, however they are named) and
//! per client; links are limited per address and per client.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse as _, Response};
use rusqlite::{OptionalExtension as _, params};
use serde::Deserialize;

use super::{AppState, Failure, Outcome, Viewer, render, see_other};
use crate::board::auth::{self, set_cookie};

/// Link mails per client address in [`WINDOW`].
const PER_CLIENT: usize = 20;
/// Link mails per address in [`WINDOW`].
const LINKS_PER_ADDRESS: usize = 3;
/// The link limits' window, in seconds.
const WINDOW: i64 = 15 * 60;
/// Wrong passwords an account takes before each attempt must wait.
const ACCOUNT_FREE: u32 = 3;
/// The longest an account's member waits between attempts, in seconds: a
/// guesser is slowed to two tries a minute, the real member barely.
const ACCOUNT_CAP: i64 = 30;
/// Wrong passwords a client makes before each attempt must wait.
const CLIENT_FREE: u32 = 10;
/// The longest a client waits between attempts, in seconds.
const CLIENT_CAP: i64 = 15 * 60;

pub(crate) async fn page(State(state): State<AppState>, viewer: Viewer) -> Outcome {
    if viewer.member.is_some() {
        return Ok(see_other("/"));
    }
    let mut ctx = state.context(None, &viewer.csrf);
    ctx.insert("notice", &viewer.notice);
    render(&state, "signin.html", &ctx)
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    login: String,
    password: String,
}

pub(crate) async fn password(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: axum::http::HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Outcome {
    let login = form.login.trim().to_lowercase();
    let now = state.clock.now();
    let found = {
        let login = login.clone();
        state
            .db
            .call(move |c| {
                Ok(c.query_row(
                    "SELECT id, password_hash FROM members
                     WHERE (id = ?1 OR lower(email) = ?1) AND in_file = 1 AND disabled = 0",
                    [&login],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
                )
                .optional()?)
            })
            .await?
    };
    // A member's id and address are one account: guesses at either count
    // together.
    let account_key = format!(
        "account:{}",
        found.as_ref().map_or(login.as_str(), |(id, _)| id.as_str())
    );
    let client_key = format!("client:{}", viewer.client);
    let wait = [
        state
            .throttle
            .wait(&client_key, CLIENT_FREE, CLIENT_CAP, now),
        state
            .throttle
            .wait(&account_key, ACCOUNT_FREE, ACCOUNT_CAP, now),
    ];
    if let Some(seconds) = wait.into_iter().flatten().max() {
        return Err(Failure::RateLimited(seconds));
    }
    let (id, hash) = found.map_or((None, None), |(id, h)| (Some(id), h));
    let (id, hash) = match hash {
        Some(hash) => (id, Some(hash)),
        // No such member, or one without a password: check against another
        // member's hash, made with the same parameters, so the answer takes
        // just as long and cannot tell which accounts exist. The result is
        // thrown away with the id.
        None => (None, decoy_hash(&state).await?),
    };
    let password = form.password;
    // argon2 takes tens of milliseconds of CPU: keep it off the async threads.
    let _permit = state
        .password_checks
        .acquire()
        .await
        .map_err(|e| Failure::Internal(e.into()))?;
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(hash.as_deref(), &password))
        .await
        .unwrap_or(false);
    match id {
        Some(id) if ok => {
            state.throttle.forget(&account_key);
            start_session(&state, id, &headers).await
        }
        _ => {
            state.throttle.fail(&client_key, now);
            state.throttle.fail(&account_key, now);
            let mut ctx = state.context(None, &viewer.csrf);
            ctx.insert("error", state.texts.get("signin_failed"));
            ctx.insert("login", &form.login);
            let mut response = render(&state, "signin.html", &ctx)?;
            *response.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
            Ok(response)
        }
    }
}

/// Some member's password hash, for [`password`]'s decoy check.
async fn decoy_hash(state: &AppState) -> Result<Option<String>, Failure> {
    Ok(state
        .db
        .call(|c| {
            Ok(c.query_row(
                "SELECT password_hash FROM members WHERE password_hash IS NOT NULL LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await?)
}

/// Creates a session for `member` and sends the browser home with its
/// cookie; the CSRF token is renewed so none from before sign-in survives.
async fn start_session(
    state: &AppState,
    member: String,
    headers: &axum::http::HeaderMap,
) -> Outcome {
    let token = auth::random_token();
    let hash = auth::token_hash(&token);
    let now = state.clock.now();
    let expires = now + auth::SESSION_SECONDS;
    // What the account page shows to tell sessions apart.
    let agent: String = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(160)
        .collect();
    state
        .db
        .write(move |c| {
            c.execute(
                "INSERT INTO sessions (token_hash, member_id, expires_at, created_at, agent)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![hash, member, expires, now, agent],
            )?;
            Ok(())
        })
        .await?;
    let secure = state.config.secure_cookies;
    let mut response = see_other("/");
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(
            &state.cookies.session,
            &token,
            auth::SESSION_SECONDS,
            secure,
        ),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(
            &state.cookies.csrf,
            &auth::random_token(),
            auth::SESSION_SECONDS,
            secure,
        ),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub(crate) struct LinkForm {
    email: String,
}

/// Mails a one-time sign-in link when the address belongs to an active
/// member; the answer is the same either way.
pub(crate) async fn send_link(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<LinkForm>,
) -> Outcome {
    let email = form.email.trim().to_lowercase();
    let now = state.clock.now();
    if !state.limiter.allow(
        &format!("client:{}", viewer.client),
        PER_CLIENT,
        WINDOW,
        now,
    ) || !state
        .limiter
        .allow(&format!("link:{email}"), LINKS_PER_ADDRESS, WINDOW, now)
    {
        return Err(Failure::RateLimited(WINDOW));
    }
    let shared = state.clone();
    state
        .db
        .write(move |tx| {
            let member: Option<(String, String)> = tx
                .query_row(
                    "SELECT id, email FROM members
                     WHERE lower(email) = ?1 AND in_file = 1 AND disabled = 0",
                    [&email],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((id, address)) = member {
                let token = auth::random_token();
                tx.execute(
                    "INSERT INTO sign_in_links (token_hash, member_id, expires_at) VALUES (?1, ?2, ?3)",
                    params![auth::token_hash(&token), id, now + auth::LINK_SECONDS],
                )?;
                let link = format!("{}/signin/link?token={token}", shared.config.public_url);
                let t = &shared.texts;
                let association = shared.config.association.as_str();
                shared.queue_mail(
                    tx,
                    &address,
                    &t.fill("mail_link_subject", &[("association", association)]),
                    &t.fill("mail_link_body", &[("association", association), ("link", &link)]),
                )?;
            }
            Ok(())
        })
        .await?;
    Ok(see_other("/signin?notice=link_sent"))
}

#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// The page a mailed link opens: a button that signs in. Signing in takes
/// a POST so that mail scanners following links do not use the token up.
pub(crate) async fn link_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<TokenQuery>,
) -> Outcome {
    let mut ctx = state.context(None, &viewer.csrf);
    ctx.insert("token", &query.token);
    let mut response = render(&state, "link.html", &ctx)?;
    // The token is in the address: keep it out of other sites' logs.
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        axum::http::HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}

pub(crate) async fn use_link(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Form(form): Form<TokenQuery>,
) -> Outcome {
    let hash = auth::token_hash(&form.token);
    let now = state.clock.now();
    let member = state
        .db
        .write(move |c| {
            // Deleting the row is what makes the link single-use.
            Ok(c.query_row(
                "DELETE FROM sign_in_links WHERE token_hash = ?1 AND expires_at > ?2
                 RETURNING member_id",
                params![hash, now],
                |r| r.get::<_, String>(0),
            )
            .optional()?)
        })
        .await?;
    match member {
        Some(id) => start_session(&state, id, &headers).await,
        None => Ok(see_other("/signin?notice=link_invalid")),
    }
}

pub(crate) async fn sign_out(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(token) = auth::cookie(&headers, &state.cookies.session) {
        let hash = auth::token_hash(token);
        let _ = state
            .db
            .write(move |c| {
                c.execute("DELETE FROM sessions WHERE token_hash = ?1", [&hash])?;
                Ok(())
            })
            .await;
    }
    let mut response = see_other("/signin").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state.cookies.session, "", 0, state.config.secure_cookies),
    );
    response
}

/// A session as the account page lists it.
#[derive(Debug, serde::Serialize)]
struct SessionRow {
    /// The first 16 hex digits of the token's hash: names the session in
    /// forms without revealing anything that signs in.
    id: String,
    /// When it began, as a date (empty for sessions from before voisin
    /// kept it).
    started: String,
    agent: String,
    current: bool,
}

/// A session's public name: see [`SessionRow::id`].
fn session_id(hash: &[u8]) -> String {
    use std::fmt::Write as _;
    hash.iter().take(8).fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The account page: who the member is, and a form to set a password
/// (members who came by mailed link have none yet).
pub(crate) async fn account(State(state): State<AppState>, viewer: Viewer) -> Outcome {
    let me = viewer.member()?.clone();
    let (id, now, current) = (me.id.clone(), state.clock.now(), viewer.session.clone());
    let (has_password, sessions) = state
        .db
        .call(move |c| {
            let has_password = c.query_row(
                "SELECT password_hash IS NOT NULL FROM members WHERE id = ?1",
                [&id],
                |r| r.get::<_, bool>(0),
            )?;
            let sessions = c
                .prepare_cached(
                    "SELECT token_hash, created_at, agent FROM sessions
                     WHERE member_id = ?1 AND expires_at > ?2 ORDER BY created_at DESC",
                )?
                .query_map(params![id, now], |r| {
                    let hash: Vec<u8> = r.get(0)?;
                    let created: i64 = r.get(1)?;
                    Ok(SessionRow {
                        id: session_id(&hash),
                        started: chrono::DateTime::from_timestamp(created, 0)
                            .filter(|_| created > 0)
                            .map(|t| t.date_naive().to_string())
                            .unwrap_or_default(),
                        agent: r.get(2)?,
                        current: current.as_deref() == Some(hash.as_slice()),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((has_password, sessions))
        })
        .await?;
    let mut ctx = state.context(Some(&me), &viewer.csrf);
    ctx.insert("notice", &viewer.notice);
    ctx.insert("has_password", &has_password);
    ctx.insert("sessions", &sessions);
    render(&state, "account.html", &ctx)
}

#[derive(Deserialize)]
pub(crate) struct PasswordChange {
    #[serde(default)]
    current: String,
    new: String,
}

/// Shortest password a member may choose, in characters.
const MIN_PASSWORD: usize = 10;
/// Longest password a member may choose, in bytes: argon2 hashes any
/// length, but there is no use in megabytes.
const MAX_PASSWORD: usize = 1_000;

/// Sets a member's password. One already set must be given first, so a
/// session left open on a shared computer cannot take the account over.
pub(crate) async fn change_password(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<PasswordChange>,
) -> Outcome {
    let me = viewer.member()?.clone();
    if form.new.chars().count() < MIN_PASSWORD {
        return Err(Failure::Invalid("error_password_short"));
    }
    if form.new.len() > MAX_PASSWORD {
        return Err(Failure::Invalid("error_password_long"));
    }
    let now = state.clock.now();
    let account_key = format!("account:{}", me.id);
    if let Some(seconds) = state
        .throttle
        .wait(&account_key, ACCOUNT_FREE, ACCOUNT_CAP, now)
    {
        return Err(Failure::RateLimited(seconds));
    }
    let id = me.id.clone();
    let current: Option<String> = state
        .db
        .call(move |c| {
            Ok(c.query_row(
                "SELECT password_hash FROM members WHERE id = ?1",
                [&id],
                |r| r.get(0),
            )?)
        })
        .await?;
    let _permit = state
        .password_checks
        .acquire()
        .await
        .map_err(|e| Failure::Internal(e.into()))?;
    let (given, new) = (form.current, form.new);
    let hashed = tokio::task::spawn_blocking(move || {
        if current.is_some() && !auth::verify_password(current.as_deref(), &given) {
            return Ok(None);
        }
        crate::board::hash_password(&new).map(Some)
    })
    .await
    .map_err(|e| Failure::Internal(e.into()))??;
    let Some(hash) = hashed else {
        state.throttle.fail(&account_key, now);
        return Err(Failure::Invalid("error_password_wrong"));
    };
    // Whoever else was signed in as this member (a stolen session, a
    // shared computer) is signed out: the new password is the only way in.
    let current = viewer.session.clone().unwrap_or_default();
    state
        .db
        .write(move |c| {
            c.execute(
                "UPDATE members SET password_hash = ?2 WHERE id = ?1",
                params![me.id, hash],
            )?;
            c.execute(
                "DELETE FROM sessions WHERE member_id = ?1 AND token_hash <> ?2",
                params![me.id, current],
            )?;
            Ok(())
        })
        .await?;
    Ok(see_other("/account?notice=password_set"))
}

/// Ends one of the member's sessions (by its public name), or every one
/// but this (`others`).
pub(crate) async fn end_session(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Outcome {
    let me = viewer.member()?.clone();
    let current = viewer.session.clone().unwrap_or_default();
    let others = id == "others";
    let ended = state
        .db
        .write(move |c| {
            let hashes: Vec<Vec<u8>> = c
                .prepare_cached("SELECT token_hash FROM sessions WHERE member_id = ?1")?
                .query_map([&me.id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut ended = 0;
            for hash in hashes {
                let chosen = if others {
                    hash != current
                } else {
                    session_id(&hash) == id
                };
                if chosen {
                    ended += c.execute("DELETE FROM sessions WHERE token_hash = ?1", [&hash])?;
                }
            }
            Ok(ended)
        })
        .await?;
    if ended == 0 && !others {
        return Err(Failure::NotFound);
    }
    Ok(see_other("/account?notice=sessions_ended"))
}
