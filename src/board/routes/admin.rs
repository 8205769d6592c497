//! What the association's admins may do: hide an offer (and show it
//! again), disable a member (and enable them again). Nothing is deleted,
//! so history stays whole.

use axum::extract::{Path, State};
use rusqlite::params;
use serde::Serialize;

use super::{AppState, Failure, Outcome, Viewer, render, see_other};

#[derive(Debug, Serialize)]
struct MemberRow {
    id: String,
    name: String,
    email: String,
    admin: bool,
    in_file: bool,
    disabled: bool,
}

#[derive(Debug, Serialize)]
struct HiddenOffer {
    id: i64,
    title: String,
    owner: String,
}

pub(crate) async fn page(State(state): State<AppState>, viewer: Viewer) -> Outcome {
    let me = viewer.admin()?.clone();
    let (members, hidden) = state
        .db
        .call(|c| {
            let members = c
                .prepare_cached(
                    "SELECT id, name, email, admin, in_file, disabled FROM members ORDER BY name",
                )?
                .query_map([], |r| {
                    Ok(MemberRow {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        email: r.get(2)?,
                        admin: r.get(3)?,
                        in_file: r.get(4)?,
                        disabled: r.get(5)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let hidden = c
                .prepare_cached(
                    "SELECT o.id, o.title, m.name FROM offers o JOIN members m ON m.id = o.owner_id
                     WHERE o.hidden = 1 ORDER BY o.id DESC",
                )?
                .query_map([], |r| {
                    Ok(HiddenOffer {
                        id: r.get(0)?,
                        title: r.get(1)?,
                        owner: r.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((members, hidden))
        })
        .await?;
    let mut ctx = state.context(Some(&me), &viewer.csrf);
    ctx.insert("notice", &viewer.notice);
    ctx.insert("members", &members);
    ctx.insert("hidden", &hidden);
    render(&state, "admin.html", &ctx)
}

async fn set_hidden(state: AppState, viewer: &Viewer, id: i64, hidden: bool) -> Outcome {
    viewer.admin()?;
    let changed = state
        .db
        .write(move |c| {
            Ok(c.execute(
                "UPDATE offers SET hidden = ?2 WHERE id = ?1",
                params![id, hidden],
            )?)
        })
        .await?;
    if changed == 0 {
        return Err(Failure::NotFound);
    }
    Ok(see_other(&format!("/offers/{id}?notice=saved")))
}

pub(crate) async fn hide_offer(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Outcome {
    set_hidden(state, &viewer, id, true).await
}

pub(crate) async fn unhide_offer(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Outcome {
    set_hidden(state, &viewer, id, false).await
}

/// Disables or enables a member. A disabled member cannot sign in (their
/// sessions end now) and their offers are hidden; their history stays.
pub(crate) async fn member_action(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, action)): Path<(String, String)>,
) -> Outcome {
    let me = viewer.admin()?.clone();
    let disabled = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return Err(Failure::NotFound),
    };
    if disabled && id == me.id {
        return Err(Failure::Invalid("error_disable_self"));
    }
    let changed = state
        .db
        .write(move |tx| {
            let n = tx.execute(
                "UPDATE members SET disabled = ?2 WHERE id = ?1",
                params![id, disabled],
            )?;
            if disabled {
                tx.execute("DELETE FROM sessions WHERE member_id = ?1", [&id])?;
            }
            Ok(n)
        })
        .await?;
    if changed == 0 {
        return Err(Failure::NotFound);
    }
    Ok(see_other("/admin?notice=saved"))
}
