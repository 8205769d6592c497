//! Asking for an offer and what follows. An item's loan goes requested →
//! accepted → lent → returned (or declined, or cancelled), with a waiting
//! list while the item is promised or out; a service goes requested →
//! agreed → done. Only the owner moves a request forward; only the
//! requester cancels.

use axum::Form;
use axum::extract::{Path, State};
use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension as _, params};
use serde::Deserialize;

use super::loaded::{allowed, load_offer, rows, visible};
use super::{AppState, Failure, Outcome, Viewer, render, see_other};
use crate::board::Shared;

/// Both sides of a member's history.
pub(crate) async fn history(State(state): State<AppState>, viewer: Viewer) -> Outcome {
    let me = viewer.member()?.clone();
    let (id, shared) = (me.id.clone(), state.clone());
    let (asked, received) = state
        .db
        .call(move |c| {
            Ok((
                rows(c, "r.requester_id = ?1", &id, &id, &shared)?,
                rows(c, "o.owner_id = ?1", &id, &id, &shared)?,
            ))
        })
        .await?;
    let mut ctx = state.context(Some(&me), &viewer.csrf);
    ctx.insert("notice", &viewer.notice);
    ctx.insert("asked", &asked);
    ctx.insert("received", &received);
    render(&state, "requests.html", &ctx)
}

#[derive(Debug, Deserialize)]
pub(crate) struct RequestForm {
    #[serde(default)]
    start_date: String,
    #[serde(default)]
    end_date: String,
    #[serde(default)]
    message: String,
}

fn date(text: &str) -> Result<Option<NaiveDate>, Failure> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| Failure::Invalid("error_dates"))
}

/// Asks to borrow an item (for dates) or for a service. When the item is
/// promised or out, the request joins its waiting list.
pub(crate) async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<RequestForm>,
) -> Outcome {
    let me = viewer.member()?.clone();
    if form.message.chars().count() > 1_000 {
        return Err(Failure::Invalid("error_too_long"));
    }
    let today = state.clock.today();
    let start = date(&form.start_date)?.unwrap_or(today);
    let end = date(&form.end_date)?.unwrap_or(
        start + chrono::Days::new(u64::try_from(state.config.loan_days()).unwrap_or(21)),
    );
    // Within a year from today, for at most a year: a start in 9999 is a
    // slip of the keyboard, not a plan.
    if start < today
        || (start - today).num_days() > 366
        || end < start
        || (end - start).num_days() > 366
    {
        return Err(Failure::Invalid("error_dates"));
    }
    let shared = state.clone();
    let placed = state
        .db
        .write(move |tx| {
            let Some(offer) = load_offer(tx, id)? else {
                return Ok(Err(Failure::NotFound));
            };
            if !visible(&offer, false) {
                return Ok(Err(Failure::NotFound));
            }
            if offer.owner_id == me.id {
                return Ok(Err(Failure::Forbidden));
            }
            if !offer.available {
                return Ok(Err(Failure::Invalid("error_unavailable")));
            }
            let already: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM requests WHERE offer_id = ?1 AND requester_id = ?2
                 AND state IN ('requested', 'waiting', 'accepted', 'lent', 'agreed'))",
                params![id, me.id],
                |r| r.get(0),
            )?;
            if already {
                return Ok(Err(Failure::Invalid("error_already_asked")));
            }
            let waiting = offer.kind == "item" && offer.status == "out";
            let new_state = if waiting { "waiting" } else { "requested" };
            let (start, end) = if offer.kind == "item" {
                (Some(start.to_string()), Some(end.to_string()))
            } else {
                (None, None)
            };
            let now = shared.clock.now();
            tx.execute(
                "INSERT INTO requests (offer_id, requester_id, start_date, end_date, message, state,
                                       created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                params![id, me.id, start, end, form.message.trim(), new_state, now],
            )?;
            let owner_email: String = tx.query_row(
                "SELECT email FROM members WHERE id = ?1",
                [&offer.owner_id],
                |r| r.get(0),
            )?;
            let t = &shared.texts;
            let dates = match (&start, &end) {
                (Some(s), Some(e)) => t.fill("mail_dates", &[("start", s), ("end", e)]),
                _ => String::new(),
            };
            let link = format!("{}/requests", shared.config.public_url);
            let key = if waiting {
                "mail_waiting_body"
            } else {
                "mail_request_body"
            };
            shared.queue_mail(
                tx,
                &owner_email,
                &t.fill(
                    "mail_request_subject",
                    &[("offer", &offer.title), ("member", &me.name)],
                ),
                &t.fill(
                    key,
                    &[
                        ("offer", &offer.title),
                        ("member", &me.name),
                        ("dates", &dates),
                        ("message", form.message.trim()),
                        ("link", &link),
                    ],
                ),
            )?;
            Ok(Ok(new_state))
        })
        .await??;
    Ok(see_other(&format!("/offers/{id}?notice={placed}")))
}

struct Loaded {
    state: String,
    kind: String,
    owner_id: String,
    requester_id: String,
    requester_email: String,
    offer_id: i64,
    offer_title: String,
    end_date: Option<String>,
}

/// Moves a request on: accept, decline, lend, return, cancel, agree, done.
pub(crate) async fn act(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, action)): Path<(i64, String)>,
) -> Outcome {
    let me = viewer.member()?.clone();
    let shared = state.clone();
    state
        .db
        .write(move |tx| {
            let loaded = tx
                .query_row(
                    "SELECT r.state, o.kind, o.owner_id, r.requester_id, q.email, o.id, o.title, r.end_date
                     FROM requests r JOIN offers o ON o.id = r.offer_id
                     JOIN members q ON q.id = r.requester_id WHERE r.id = ?1",
                    [id],
                    |r| {
                        Ok(Loaded {
                            state: r.get(0)?,
                            kind: r.get(1)?,
                            owner_id: r.get(2)?,
                            requester_id: r.get(3)?,
                            requester_email: r.get(4)?,
                            offer_id: r.get(5)?,
                            offer_title: r.get(6)?,
                            end_date: r.get(7)?,
                        })
                    },
                )
                .optional()?;
            let Some(l) = loaded else {
                return Ok(Err(Failure::NotFound));
            };
            let (owner, requester) = (l.owner_id == me.id, l.requester_id == me.id);
            if !owner && !requester {
                return Ok(Err(Failure::Forbidden));
            }
            if !allowed(&l.kind, &l.state, owner, requester).contains(&action.as_str()) {
                // The action exists but is the other side's to take.
                let theirs = allowed(&l.kind, &l.state, true, true).contains(&action.as_str());
                return Ok(Err(if theirs { Failure::Forbidden } else { Failure::Invalid("error_state") }));
            }
            let now = shared.clock.now();
            let new_state = match action.as_str() {
                "accept" => "accepted",
                "decline" => "declined",
                "lend" => "lent",
                "return" => "returned",
                "cancel" => "cancelled",
                "agree" => "agreed",
                _ => "done",
            };
            tx.execute(
                "UPDATE requests SET state = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, new_state, now],
            )?;
            let t = &shared.texts;
            let link = format!("{}/offers/{}", shared.config.public_url, l.offer_id);
            match action.as_str() {
                "accept" => {
                    // One borrower at a time: the others wait their turn.
                    tx.execute(
                        "UPDATE requests SET state = 'waiting', updated_at = ?3
                         WHERE offer_id = ?1 AND state = 'requested' AND id <> ?2",
                        params![l.offer_id, id, now],
                    )?;
                }
                "lend" => {
                    let due = l.end_date.clone().unwrap_or_else(|| {
                        (shared.clock.today()
                            + chrono::Days::new(u64::try_from(shared.config.loan_days()).unwrap_or(21)))
                        .to_string()
                    });
                    tx.execute(
                        "UPDATE requests SET lent_at = ?2, due_date = ?3 WHERE id = ?1",
                        params![id, now, due],
                    )?;
                }
                "return" => {
                    tx.execute("UPDATE requests SET returned_at = ?2 WHERE id = ?1", params![id, now])?;
                }
                _ => {}
            }
            if matches!(action.as_str(), "accept" | "decline" | "agree") && owner {
                let key = format!("mail_{new_state}");
                shared.queue_mail(
                    tx,
                    &l.requester_email,
                    &t.fill(&format!("{key}_subject"), &[("offer", &l.offer_title)]),
                    &t.fill(&format!("{key}_body"), &[("offer", &l.offer_title), ("link", &link)]),
                )?;
            }
            let freed = action == "return" || (action == "cancel" && l.state == "accepted");
            if freed {
                promote_next(tx, &shared, l.offer_id, &l.offer_title, &link)?;
            }
            Ok(Ok(()))
        })
        .await??;
    Ok(see_other("/requests?notice=updated"))
}

/// When an item comes back (or a promise is cancelled), the first member
/// on the waiting list becomes the pending request and is told.
fn promote_next(
    tx: &Connection,
    shared: &Shared,
    offer_id: i64,
    title: &str,
    link: &str,
) -> rusqlite::Result<()> {
    let next: Option<(i64, String)> = tx
        .query_row(
            "SELECT r.id, m.email FROM requests r JOIN members m ON m.id = r.requester_id
             WHERE r.offer_id = ?1 AND r.state = 'waiting' ORDER BY r.id LIMIT 1",
            [offer_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((id, email)) = next {
        tx.execute(
            "UPDATE requests SET state = 'requested', updated_at = ?2 WHERE id = ?1",
            params![id, shared.clock.now()],
        )?;
        let t = &shared.texts;
        shared.queue_mail(
            tx,
            &email,
            &t.fill("mail_turn_subject", &[("offer", title)]),
            &t.fill("mail_turn_body", &[("offer", title), ("link", link)]),
        )?;
    }
    Ok(())
}
