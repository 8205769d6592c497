//! What the offer and request pages both load: an offer whole, and the
//! requests shown with it, with what the viewer may do to each. Kept apart
//! so that `offers` and `requests` each use it and neither uses the other.

use rusqlite::{Connection, OptionalExtension as _};
use serde::Serialize;

use crate::board::Shared;

/// An offer's status as lists and pages show it: `available`, `out` (lent
/// or promised) or `unavailable`.
pub(crate) const STATUS_SQL: &str = "CASE WHEN o.available = 0 THEN 'unavailable'
    WHEN EXISTS (SELECT 1 FROM requests r WHERE r.offer_id = o.id AND r.state IN ('accepted', 'lent'))
    THEN 'out' ELSE 'available' END";

/// One offer in full.
#[derive(Debug, Serialize)]
#[allow(clippy::struct_excessive_bools)] // flags of the offer, as the page shows them
pub(crate) struct Offer {
    pub id: i64,
    pub owner_id: String,
    pub owner: String,
    pub kind: String,
    pub category: String,
    pub title: String,
    pub description: String,
    pub condition: String,
    pub availability: String,
    pub available: bool,
    pub hidden: bool,
    pub has_photo: bool,
    pub status: String,
    pub created_at: i64,
    /// Whether the owner may still be shown (in the file, not disabled).
    pub owner_active: bool,
}

/// Loads an offer, whoever may see it.
pub(crate) fn load_offer(conn: &Connection, id: i64) -> rusqlite::Result<Option<Offer>> {
    conn.prepare_cached(&format!(
        "SELECT o.id, o.owner_id, m.name, o.kind, o.category, o.title, o.description, o.condition,
                o.availability, o.available, o.hidden, o.has_photo, {STATUS_SQL}, o.created_at,
                m.in_file = 1 AND m.disabled = 0
         FROM offers o JOIN members m ON m.id = o.owner_id WHERE o.id = ?1"
    ))?
    .query_row([id], |r| {
        Ok(Offer {
            id: r.get(0)?,
            owner_id: r.get(1)?,
            owner: r.get(2)?,
            kind: r.get(3)?,
            category: r.get(4)?,
            title: r.get(5)?,
            description: r.get(6)?,
            condition: r.get(7)?,
            availability: r.get(8)?,
            available: r.get(9)?,
            hidden: r.get(10)?,
            has_photo: r.get(11)?,
            status: r.get(12)?,
            created_at: r.get(13)?,
            owner_active: r.get(14)?,
        })
    })
    .optional()
}

/// Whether `offer` may be shown to `admin`-or-not viewers: hidden offers
/// and those of disabled members are for admins only.
pub(crate) fn visible(offer: &Offer, admin: bool) -> bool {
    admin || (!offer.hidden && offer.owner_active)
}

/// States in which a request still holds a place.
const ACTIVE: &[&str] = &["requested", "waiting", "accepted", "lent", "agreed"];

/// An offer and all its requests, as read for its owner: what the offer
/// page shows anyone, after keeping the viewer's own requests.
#[derive(Debug)]
pub(crate) struct OfferData {
    pub offer: Offer,
    pub rows: Vec<RequestRow>,
}

/// A request as pages show it, with what the viewer may do to it.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Action {
    name: &'static str,
    label: String,
}

/// What the owner (`owner`) or the requester may do to a request of this
/// kind in this state.
pub(crate) fn allowed(kind: &str, state: &str, owner: bool, requester: bool) -> Vec<&'static str> {
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

pub(crate) fn rows(
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
        let actions = actions(
            &kind,
            &state,
            owner_id == viewer,
            requester_id == viewer,
            shared,
        );
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

/// The buttons the owner (`owner`) or the requester sees on a request.
pub(crate) fn actions(
    kind: &str,
    state: &str,
    owner: bool,
    requester: bool,
    shared: &Shared,
) -> Vec<Action> {
    allowed(kind, state, owner, requester)
        .into_iter()
        .map(|name| Action {
            name,
            label: shared.texts.get(&format!("action_{name}")).to_string(),
        })
        .collect()
}

/// An offer and every request for it, with the owner's buttons.
pub(crate) fn offer_data(
    conn: &Connection,
    id: i64,
    shared: &Shared,
) -> rusqlite::Result<Option<OfferData>> {
    let Some(offer) = load_offer(conn, id)? else {
        return Ok(None);
    };
    let rows = rows(conn, "r.offer_id = ?1", &offer.id, &offer.owner_id, shared)?;
    Ok(Some(OfferData { offer, rows }))
}

impl OfferData {
    /// The requests the offer page shows `viewer`, with their buttons:
    /// all of them to the owner, their own to anyone else.
    pub(crate) fn rows_for(&self, viewer: &str, shared: &Shared) -> Vec<RequestRow> {
        let owner = self.offer.owner_id == viewer;
        self.rows
            .iter()
            .filter(|r| owner || r.requester_id == viewer)
            .map(|r| RequestRow {
                actions: actions(&r.kind, &r.state, owner, r.requester_id == viewer, shared),
                ..r.clone()
            })
            .collect()
    }
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
