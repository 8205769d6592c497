//! Offers: the front page, browsing by category, word search, the offer
//! page, publishing an offer with its photo, and availability.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse as _;
use rusqlite::{Connection, params, params_from_iter};
use serde::{Deserialize, Serialize};

use super::loaded::{Offer, OfferData, RequestRow, STATUS_SQL, offer_data, visible};
use super::{AppState, Failure, Outcome, Viewer, member_page, render, see_other};
use crate::board::cache::Cached;
use crate::board::photos;

/// Offers per page when browsing.
const PAGE_SIZE: usize = 24;

/// An offer as lists show it.
#[derive(Debug, Serialize)]
pub(crate) struct Card {
    id: i64,
    kind: String,
    category: String,
    title: String,
    /// The title's first letter, shown when there is no photo.
    initial: String,
    owner: String,
    has_photo: bool,
    /// `available`, `out` (lent or promised) or `unavailable`.
    status: String,
    created_at: i64,
}

/// Which offers a list shows.
#[derive(Debug, Default)]
struct Filter {
    category: Option<String>,
    /// An FTS5 query built by [`fts_query`], never the raw input.
    words: Option<String>,
    since: Option<i64>,
}

/// Turns what a member typed into an FTS5 query: each run of letters and
/// digits becomes a quoted prefix term, everything else is dropped, so no
/// input can be read as FTS syntax (and it is a bound parameter anyway).
pub(crate) fn fts_query(input: &str) -> Option<String> {
    let terms: Vec<String> = input
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(8)
        .map(|w| format!("\"{w}\"*"))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// The first letter of a title, upper-cased.
fn initial(title: &str) -> String {
    title
        .chars()
        .next()
        .map(char::to_uppercase)
        .map(Iterator::collect)
        .unwrap_or_default()
}

fn list(
    conn: &Connection,
    filter: &Filter,
    limit: usize,
    offset: usize,
) -> rusqlite::Result<Vec<Card>> {
    let mut sql = format!(
        "SELECT o.id, o.kind, o.category, o.title, m.name,
                o.has_photo, {STATUS_SQL}, o.created_at
         FROM offers o JOIN members m ON m.id = o.owner_id
         WHERE o.hidden = 0 AND m.in_file = 1 AND m.disabled = 0"
    );
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(c) = &filter.category {
        args.push(c.clone().into());
        let _ = write!(sql, " AND o.category = ?{}", args.len());
    }
    if let Some(w) = &filter.words {
        args.push(w.clone().into());
        let _ = write!(
            sql,
            " AND o.id IN (SELECT rowid FROM offers_fts WHERE offers_fts MATCH ?{})",
            args.len()
        );
    }
    if let Some(s) = filter.since {
        args.push(s.into());
        let _ = write!(sql, " AND o.created_at >= ?{}", args.len());
    }
    // LIMIT and OFFSET are our own integers, written into the SQL: SQLite
    // plans around their values, so binding them would re-prepare the
    // statement at every run (three times slower).
    let _ = write!(
        sql,
        " ORDER BY o.created_at DESC, o.id DESC LIMIT {limit} OFFSET {offset}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), |r| {
        Ok(Card {
            id: r.get(0)?,
            kind: r.get(1)?,
            category: r.get(2)?,
            initial: initial(&r.get::<_, String>(3)?),
            title: r.get(3)?,
            owner: r.get(4)?,
            has_photo: r.get(5)?,
            status: r.get(6)?,
            created_at: r.get(7)?,
        })
    })?;
    rows.collect()
}

/// The front page: new offers of the week, categories and search; the
/// sign-in page for visitors. The week starts on the hour, so the list is
/// reused (like the browse pages') until the next change or the next hour.
pub(crate) async fn front(State(state): State<AppState>, viewer: Viewer) -> Outcome {
    let Some(me) = viewer.member.clone() else {
        return super::session::page(State(state), viewer).await;
    };
    // The week starts on the hour, as the kept page lasts.
    let since = (state.clock.now() - 7 * 86_400).div_euclid(3_600) * 3_600;
    let page = format!("front\u{1f}{}", viewer.notice);
    member_page(&state, &viewer, &me, page, |csrf| {
        let filter = Filter {
            since: Some(since),
            ..Filter::default()
        };
        let list = cached_list(&state, format!("front\u{1f}{since}"), filter, 1)?;
        let mut ctx = state.context(Some(&me), csrf);
        ctx.insert("notice", &viewer.notice);
        ctx.insert("cards", list.html.as_ref());
        ctx.insert("empty", &list.empty);
        Ok(state.pages.render("front.html", &ctx)?)
    })
}

/// Page `page` of the offers `filter` selects, rendered, from the cache
/// when nothing changed since it was rendered.
fn cached_list(
    state: &AppState,
    key: String,
    filter: Filter,
    page: usize,
) -> Result<Cached, Failure> {
    if let Some(list) = state.lists.get(&key) {
        return Ok(list);
    }
    let generation = state.lists.generation();
    // One more than a page tells whether there is a next page without
    // counting every offer.
    let cards = state
        .db
        .read(move |c| Ok(list(c, &filter, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)?))?;
    let more = cards.len() > PAGE_SIZE;
    let cards: Vec<Card> = cards.into_iter().take(PAGE_SIZE).collect();
    let mut ctx = tera::Context::new();
    ctx.insert("offers", &cards);
    let list = Cached {
        html: state.pages.render("cards.html", &ctx)?.into(),
        more,
        empty: cards.is_empty(),
    };
    state.lists.put(key, generation, list.clone());
    Ok(list)
}

#[derive(Debug, Deserialize)]
pub(crate) struct BrowseQuery {
    #[serde(default)]
    category: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<usize>,
}

/// Browsing and searching: newest first, a page at a time.
pub(crate) async fn browse(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<BrowseQuery>,
) -> Outcome {
    let me = viewer.member()?.clone();
    let page = query.page.unwrap_or(1).clamp(1, 10_000);
    let key = format!(
        "offers\u{1f}{}\u{1f}{}\u{1f}{page}",
        query.category, query.q
    );
    member_page(&state, &viewer, &me, key, |csrf| {
        browse_page(&state, &me, csrf, &query, page)
    })
}

/// The offer list (a category's, a search's) as `browse` shows it.
fn browse_page(
    state: &AppState,
    me: &super::Member,
    csrf: &str,
    query: &BrowseQuery,
    page: usize,
) -> Result<String, Failure> {
    let category = Some(query.category.clone()).filter(|c| state.config.categories.contains(c));
    let words = fts_query(&query.q);
    let searching = !query.q.trim().is_empty();
    let list = if searching && words.is_none() {
        // Nothing searchable was typed: nothing found.
        let mut ctx = tera::Context::new();
        ctx.insert("offers", &Vec::<Card>::new());
        Cached {
            html: state.pages.render("cards.html", &ctx)?.into(),
            more: false,
            empty: true,
        }
    } else {
        let key = format!(
            "{}\u{1f}{}\u{1f}{page}",
            category.as_deref().unwrap_or(""),
            words.as_deref().unwrap_or("")
        );
        let filter = Filter {
            category,
            words,
            since: None,
        };
        cached_list(state, key, filter, page)?
    };
    let mut ctx = state.context(Some(me), csrf);
    ctx.insert("cards", list.html.as_ref());
    ctx.insert("category", &query.category);
    ctx.insert("q", &query.q);
    ctx.insert("page", &page);
    ctx.insert("more", &list.more);
    Ok(state.pages.render("offers.html", &ctx)?)
}

pub(crate) async fn new_form(State(state): State<AppState>, viewer: Viewer) -> Outcome {
    let me = viewer.member()?.clone();
    let mut ctx = state.context(Some(&me), &viewer.csrf);
    // Tenths of a megabyte, for people: `5 MB`, `0.5 MB`.
    let tenths = state.config.photo_max_size.div_ceil(100_000);
    ctx.insert(
        "max_photo_mb",
        &format!("{}.{}", tenths / 10, tenths % 10).replace(".0", ""),
    );
    render(&state, "offer_new.html", &ctx)
}

/// What a photo's first bytes say it is; only common web images pass.
pub(crate) fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

#[derive(Debug, Default)]
struct OfferForm {
    kind: String,
    category: String,
    title: String,
    description: String,
    condition: String,
    availability: String,
    photo: Option<(Vec<u8>, &'static str)>,
}

/// Reads the multipart offer form, refusing a photo over the size limit
/// or that is not an image.
async fn read_offer_form(mut multipart: Multipart, max: u64) -> Result<OfferForm, Failure> {
    let too_large = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Failure::TooLarge
        } else {
            Failure::Invalid("error_form")
        }
    };
    let mut form = OfferForm::default();
    while let Some(mut field) = multipart.next_field().await.map_err(too_large)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "photo" {
            let mut data = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(too_large)? {
                data.extend_from_slice(&chunk);
                if data.len() as u64 > max {
                    return Err(Failure::TooLarge);
                }
            }
            if !data.is_empty() {
                let kind = image_type(&data).ok_or(Failure::Invalid("error_photo_type"))?;
                form.photo = Some((data, kind));
            }
            continue;
        }
        let text = field.text().await.map_err(too_large)?;
        let slot = match name.as_str() {
            "kind" => &mut form.kind,
            "category" => &mut form.category,
            "title" => &mut form.title,
            "description" => &mut form.description,
            "condition" => &mut form.condition,
            "availability" => &mut form.availability,
            _ => continue,
        };
        *slot = text;
    }
    Ok(form)
}

/// Publishes an offer.
pub(crate) async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    multipart: Multipart,
) -> Outcome {
    // A photo is held in memory until it is stored: a few at a time keep
    // the board's memory bounded; the others wait, their bodies unread.
    let _turn = state
        .uploads
        .acquire()
        .await
        .map_err(|e| Failure::Internal(e.into()))?;
    let form = read_offer_form(multipart, state.config.photo_max_size).await?;
    let me = viewer.member()?.clone();
    let title = form.title.trim().to_string();
    // A title is one line: a line break or other control character in it
    // would break mail subjects and the layout of every list.
    if title.is_empty() || title.chars().count() > 120 || title.chars().any(char::is_control) {
        return Err(Failure::Invalid("error_title"));
    }
    if [&form.condition, &form.availability]
        .iter()
        .any(|f| f.chars().any(char::is_control))
    {
        return Err(Failure::Invalid("error_form"));
    }
    if !matches!(form.kind.as_str(), "item" | "service") {
        return Err(Failure::Invalid("error_form"));
    }
    if !state.config.categories.contains(&form.category) {
        return Err(Failure::Invalid("error_category"));
    }
    if form.description.chars().count() > 4_000
        || form.condition.chars().count() > 200
        || form.availability.chars().count() > 200
    {
        return Err(Failure::Invalid("error_too_long"));
    }
    let now = state.clock.now();
    let id = state
        .db
        .write(move |tx| {
            tx.execute(
                "INSERT INTO offers (owner_id, kind, category, title, description, condition,
                                     availability, has_photo, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    me.id,
                    form.kind,
                    form.category,
                    title,
                    form.description.trim(),
                    form.condition.trim(),
                    form.availability.trim(),
                    form.photo.is_some(),
                    now
                ],
            )?;
            let id = tx.last_insert_rowid();
            if let Some((data, kind)) = &form.photo {
                photos::store(tx, id, kind, data)?;
            }
            Ok(id)
        })
        .await?;
    Ok(see_other(&format!("/offers/{id}?notice=offer_created")))
}

/// An offer and its requests, from the cache when nothing changed since
/// they were read (and the day is the same: rows say what is overdue).
fn cached_offer(state: &AppState, id: i64) -> Result<Option<Arc<OfferData>>, Failure> {
    let key = (id, state.clock.today().to_string());
    let generation = state.lists.generation();
    if let Some(data) = state.offer_pages.get(&key, generation) {
        return Ok(Some(data));
    }
    let shared = state.clone();
    // Two indexed queries of some tens of microseconds: on this thread,
    // like the lists (see `Db::read`).
    let Some(data) = state.db.read(move |c| Ok(offer_data(c, id, &shared)?))? else {
        return Ok(None);
    };
    let data = Arc::new(data);
    state.offer_pages.put(key, generation, data.clone());
    Ok(Some(data))
}

/// Whether `me` may see `offer`: anyone a visible one, its owner and the
/// admins a hidden one too.
fn may_see(offer: &Offer, me: &super::Member) -> bool {
    offer.owner_id == me.id || visible(offer, me.admin)
}

pub(crate) async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Outcome {
    let me = viewer.member()?.clone();
    // Today (UTC) changes on the hour, as the kept page does.
    let page = format!("offer\u{1f}{id}\u{1f}{}", viewer.notice);
    member_page(&state, &viewer, &me, page, |csrf| {
        let data = cached_offer(&state, id)?
            .filter(|d| may_see(&d.offer, &me))
            .ok_or(Failure::NotFound)?;
        let rows = data.rows_for(&me.id, &state);
        let offer = &data.offer;
        let mine = offer.owner_id == me.id;
        let asked = rows
            .iter()
            .any(|r: &RequestRow| r.requester_id == me.id && r.active);
        let today = state.clock.today();
        let due = today + chrono::Days::new(u64::try_from(state.config.loan_days()).unwrap_or(21));
        let mut ctx = state.context(Some(&me), csrf);
        ctx.insert("notice", &viewer.notice);
        ctx.insert("offer", &offer);
        ctx.insert("mine", &mine);
        ctx.insert("asked", &asked);
        ctx.insert("requests", &rows);
        ctx.insert("today", &today.to_string());
        ctx.insert("default_end", &due.to_string());
        ctx.insert(
            "status_label",
            state.texts.get(&format!("status_{}", offer.status)),
        );
        Ok(state.pages.render("offer.html", &ctx)?)
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct AvailabilityForm {
    #[serde(default)]
    available: Option<String>,
    #[serde(default)]
    availability: String,
}

/// The owner says whether the offer can be asked for, and when.
pub(crate) async fn availability(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<AvailabilityForm>,
) -> Outcome {
    let me = viewer.member()?.clone();
    if form.availability.chars().count() > 200 {
        return Err(Failure::Invalid("error_too_long"));
    }
    let changed = state
        .db
        .write(move |c| {
            Ok(c.execute(
                "UPDATE offers SET available = ?3, availability = ?4 WHERE id = ?1 AND owner_id = ?2",
                params![id, me.id, form.available.is_some(), form.availability.trim()],
            )?)
        })
        .await?;
    if changed == 0 {
        return Err(Failure::Forbidden);
    }
    Ok(see_other(&format!("/offers/{id}?notice=saved")))
}

/// Photos up to this size are kept in memory once served (a few dozen at
/// most, see `PHOTOS_KEPT`): most boards' photos are this small, and a
/// kept photo is sent without touching the database or copying it.
pub(crate) const PHOTO_KEPT_SIZE: usize = 256 * 1024;

/// An offer's photo, for signed-in members only. A large one is streamed
/// from the database a chunk at a time (see `board::photos`), as fast as
/// the client takes it, so a crowd fetching it holds a chunk or two each
/// in memory, not the photo each (the server lets a connection queue
/// about one chunk, see `server::WRITE_BUFFER`).
pub(crate) async fn photo(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Outcome {
    let me = viewer.member()?.clone();
    let data = cached_offer(&state, id)?
        .filter(|d| may_see(&d.offer, &me) && d.offer.has_photo)
        .ok_or(Failure::NotFound)?;
    drop(data);
    let headers = |kind: HeaderValue, len: u64| {
        [
            (header::CONTENT_TYPE, kind),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=86400"),
            ),
        ]
    };
    let generation = state.lists.generation();
    if let Some((kind, bytes)) = state.photos.get(&id, generation) {
        return Ok((headers(kind, bytes.len() as u64), bytes).into_response());
    }
    let (kind, len) = state
        .db
        .read(move |c| photos::find(c, id))?
        .ok_or(Failure::NotFound)?;
    let kind = HeaderValue::from_str(&kind).map_err(|e| Failure::Internal(e.into()))?;
    let small = usize::try_from(len).ok().filter(|&n| n <= PHOTO_KEPT_SIZE);
    if let Some(size) = small {
        let bytes = axum::body::Bytes::from(state.db.read(|c| photos::read_whole(c, id, size))?);
        state
            .photos
            .put(id, generation, (kind.clone(), bytes.clone()));
        return Ok((headers(kind, len), bytes).into_response());
    }
    let db = state.db.clone();
    // Photos are never rewritten once published, so chunks read apart
    // still make one photo.
    let chunks = futures_util::stream::unfold(Some(0_i64), move |next| {
        let db = db.clone();
        async move {
            let seq = next?;
            // One indexed query of some tens of microseconds, on this
            // thread like the lists (see `Db::read`).
            match db.read(|c| Ok(photos::chunk(c, id, seq)?)) {
                Ok(Some(bytes)) => Some((Ok(axum::body::Bytes::from(bytes)), Some(seq + 1))),
                Ok(None) => None,
                // The client sees a cut-short answer; the log says why.
                Err(err) => {
                    eprintln!("board: reading photo {id} failed: {err:#}");
                    Some((
                        Err(std::io::Error::other("the photo could not be read")),
                        None,
                    ))
                }
            }
        }
    });
    Ok((headers(kind, len), axum::body::Body::from_stream(chunks)).into_response())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn search_input_becomes_quoted_prefix_terms_only() {
        assert_eq!(
            fts_query("perceuse\" OR 1=1; DROP TABLE offers --").as_deref(),
            Some("\"perceuse\"* \"OR\"* \"1\"* \"1\"* \"DROP\"* \"TABLE\"* \"offers\"*")
        );
        assert_eq!(fts_query("'; --"), None);
    }

    #[test]
    fn photos_are_recognised_by_their_first_bytes() {
        assert_eq!(image_type(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(image_type(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(image_type(b"<svg onload=alert(1)>"), None);
    }
}
