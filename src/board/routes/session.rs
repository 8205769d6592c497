//! Signing in and out: by password (argon2) or by a one-time link sent by
//! mail. Every answer is the same whether an account exists or not, and
//! attempts are rate limited per client address and per account.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse as _, Response};
use rusqlite::{OptionalExtension as _, params};
use serde::Deserialize;

use super::{AppState, Failure, Outcome, Viewer, render, see_other};
use crate::board::auth::{self, set_cookie};

/// Attempts per client address in [`WINDOW`].
const PER_CLIENT: usize = 20;
/// Attempts per account in [`WINDOW`].
const PER_ACCOUNT: usize = 5;
/// The rate limits' window, in seconds.
const WINDOW: i64 = 15 * 60;

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
    Form(form): Form<PasswordForm>,
) -> Outcome {
    let login = form.login.trim().to_lowercase();
    let now = state.clock.now();
    let account_key = format!("account:{login}");
    if !state.limiter.allow(
        &format!("client:{}", viewer.client),
        PER_CLIENT,
        WINDOW,
        now,
    ) || !state.limiter.allow(&account_key, PER_ACCOUNT, WINDOW, now)
    {
        return Err(Failure::RateLimited);
    }
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
            state.limiter.clear(&account_key);
            start_session(&state, id).await
        }
        _ => {
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
async fn start_session(state: &AppState, member: String) -> Outcome {
    let token = auth::random_token();
    let hash = auth::token_hash(&token);
    let expires = state.clock.now() + auth::SESSION_SECONDS;
    state
        .db
        .write(move |c| {
            c.execute(
                "INSERT INTO sessions (token_hash, member_id, expires_at) VALUES (?1, ?2, ?3)",
                params![hash, member, expires],
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
        .allow(&format!("link:{email}"), 3, WINDOW, now)
    {
        return Err(Failure::RateLimited);
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
        Some(id) => start_session(&state, id).await,
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

/// The account page: who the member is, and a form to set a password
/// (members who came by mailed link have none yet).
pub(crate) async fn account(State(state): State<AppState>, viewer: Viewer) -> Outcome {
    let me = viewer.member()?.clone();
    let id = me.id.clone();
    let has_password = state
        .db
        .call(move |c| {
            Ok(c.query_row(
                "SELECT password_hash IS NOT NULL FROM members WHERE id = ?1",
                [&id],
                |r| r.get::<_, bool>(0),
            )?)
        })
        .await?;
    let mut ctx = state.context(Some(&me), &viewer.csrf);
    ctx.insert("notice", &viewer.notice);
    ctx.insert("has_password", &has_password);
    render(&state, "account.html", &ctx)
}

#[derive(Deserialize)]
pub(crate) struct PasswordChange {
    #[serde(default)]
    current: String,
    new: String,
}

/// Shortest password a member may choose.
const MIN_PASSWORD: usize = 10;

/// Sets a member's password. One already set must be given first, so a
/// session left open on a shared computer cannot take the account over.
pub(crate) async fn change_password(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<PasswordChange>,
) -> Outcome {
    let me = viewer.member()?.clone();
    if form.new.chars().count() < MIN_PASSWORD || form.new.len() > 1_000 {
        return Err(Failure::Invalid("error_password_short"));
    }
    let now = state.clock.now();
    if !state
        .limiter
        .allow(&format!("account:{}", me.id), PER_ACCOUNT, WINDOW, now)
    {
        return Err(Failure::RateLimited);
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
        return Err(Failure::Invalid("error_password_wrong"));
    };
    state
        .db
        .write(move |c| {
            c.execute(
                "UPDATE members SET password_hash = ?2 WHERE id = ?1",
                params![me.id, hash],
            )?;
            Ok(())
        })
        .await?;
    Ok(see_other("/account?notice=password_set"))
}
