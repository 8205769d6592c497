//! Asking for an offer and what follows. An item's loan goes requested →
//! accepted → lent → returned (or declined, or cancelled), with a waiting
//! list while the item is promised or out; a service goes requested →
//! agreed → done. Only the owner moves a request forward; only the
//! requester cancels.

use axum::Form;
use axum::extract::{Path, State};
use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension as _, params};
use serde::{Deserialize, Serialize};

use super::offers::{Offer, load_offer, visible};
use super::{AppState, Failure, Outcome, Viewer, render, see_other};
use crate::board::Shared;

/// States in which a request still holds a place.
const ACTIVE: &[&str] = &["requested", "waiting", "accepted", "lent", "agreed"];

/// A request as pages show it, with what the viewer may do to it.
#[derive(Debug, Serialize)]
pub(crate) struct RequestRow {
    pub id: i64,
    pub offer_id: i64,
    pub offer_title: String,
    pub kind: String,
    pub requester_id: String,
    pub requester: String,
    pub owner: String,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub due_date: Option<String>,
    pub message: String,
    pub state: String,
    pub state_label: String,
    pub active: bool,
    pub overdue: bool,
    pub actions: Vec<Action>,
}

/// A button on a request.
#[derive(Debug, Serialize)]
pub(crate) struct Action {
    name: &'static str,
    label: String,
}

/// What the owner (`owner`) or the requester may do to a request of this
/// kind in this state.
fn allowed(kind: &str, state: &str, owner: bool, requester: bool) -> Vec<&'static str> {
    let mut out = Vec::new();
    if owner {
        out.extend_from_slice(match (kind, state) {
            ("item", "requested") => &["accept", "decline"][..],
            ("service", "requested") => &["agree", "decline"][..],
            ("item", "waiting") => &["decline"][..],
            ("item", "accepted") => &["lend"][..],
            ("item", "lent") => &["return"][..],
            ("service", "agreed") => &["done"][..],
            _ => &[][..],
        });
    }
    if requester
        && matches!(
            (kind, state),
            ("item", "requested" | "waiting" | "accepted") | ("service", "requested" | "agreed")
        )
    {
        out.push("cancel");
    }
    out
}

const ROW_SQL: &str = "SELECT r.id, r.offer_id, o.title, o.kind, r.requester_id, q.name, w.name,
        r.start_date, r.end_date, r.due_date, r.message, r.state, o.owner_id
    FROM requests r JOIN offers o ON o.id = r.offer_id
    JOIN members q ON q.id = r.requester_id JOIN members w ON w.id = o.owner_id";

fn rows(
    conn: &Connection,
    filter: &str,
    arg: &dyn rusqlite::ToSql,
    viewer: &str,
    shared: &Shared,
) -> rusqlite::Result<Vec<RequestRow>> {
    let today = shared.clock.today().to_string();
    let mut stmt = conn.prepare_cached(&format!(
        "{ROW_SQL} WHERE {filter} ORDER BY r.id DESC LIMIT 200"
    ))?;
    let found = stmt.query_map([arg], |r| {
        let kind: String = r.get(3)?;
        let state: String = r.get(11)?;
        let requester_id: String = r.get(4)?;
        let owner_id: String = r.get(12)?;
        let due_date: Option<String> = r.get(9)?;
        let actions = allowed(&kind, &state, owner_id == viewer, requester_id == viewer)
            .into_iter()
            .map(|name| Action {
                name,
                label: shared.texts.get(&format!("action_{name}")).to_string(),
            })
            .collect();
        Ok(RequestRow {
            id: r.get(0)?,
            offer_id: r.get(1)?,
            offer_title: r.get(2)?,
            requester: r.get(5)?,
            owner: r.get(6)?,
            start_date: r.get(7)?,
            end_date: r.get(8)?,
            overdue: state == "lent" && due_date.as_deref().is_some_and(|d| d < today.as_str()),
            due_date,
            message: r.get(10)?,
            state_label: shared.texts.get(&format!("state_{state}")).to_string(),
            active: ACTIVE.contains(&state.as_str()),
            state,
            kind,
            requester_id,
            actions,
        })
    })?;
    found.collect()
}

/// The requests an offer's page shows: all of them to the owner, their
/// own to anyone else.
pub(crate) fn requests_for_offer(
    conn: &Connection,
    offer: &Offer,
    viewer: &str,
    shared: &Shared,
) -> rusqlite::Result<Vec<RequestRow>> {
    let all = rows(conn, "r.offer_id = ?1", &offer.id, viewer, shared)?;
    Ok(all
        .into_iter()
        .filter(|r| offer.owner_id == viewer || r.requester_id == viewer)
        .collect())
}

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::allowed;

    #[test]
    fn only_the_owner_moves_a_loan_forward() {
        assert_eq!(allowed("item", "requested", false, true), ["cancel"]);
        assert_eq!(
            allowed("item", "requested", true, false),
            ["accept", "decline"]
        );
        assert_eq!(allowed("item", "lent", false, true), Vec::<&str>::new());
        assert_eq!(allowed("service", "agreed", true, false), ["done"]);
    }
}
