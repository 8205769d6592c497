//! Caches for what members load most. Between two changes to the board
//! every member sees the same offer lists, each member the same pages (but
//! for each browser's CSRF token), and a session stays who it is: all are
//! kept in memory and forgotten whenever a form is posted (every change to
//! the board, signing out and disabling a member included, comes through a
//! POST).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Lists kept at most; past this the cache starts afresh.
const CAPACITY: usize = 512;

/// Rendered lists by query, valid for one generation of the board.
#[derive(Debug, Default)]
pub struct ListCache {
    generation: AtomicU64,
    lists: Mutex<(u64, HashMap<String, Cached>)>,
}

/// A rendered list and whether a next page exists.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The list's HTML.
    pub html: Arc<str>,
    /// Whether there are more offers after this page.
    pub more: bool,
    /// Whether the list has no offer at all.
    pub empty: bool,
}

impl ListCache {
    /// The current generation; read it before querying, so a change that
    /// lands during the query makes the stored list stale, never wrong.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Marks every stored list stale: the board changed.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The list for `key` if it was rendered in the current generation.
    pub fn get(&self, key: &str) -> Option<Cached> {
        let now = self.generation();
        let lists = self.lists.lock().unwrap_or_else(PoisonError::into_inner);
        if lists.0 != now {
            return None;
        }
        lists.1.get(key).cloned()
    }

    /// Stores a list rendered from data read in `generation`.
    pub fn put(&self, key: String, generation: u64, list: Cached) {
        let mut lists = self.lists.lock().unwrap_or_else(PoisonError::into_inner);
        if lists.0 != generation || lists.1.len() >= CAPACITY {
            if generation < lists.0 {
                return;
            }
            *lists = (generation, HashMap::new());
        }
        if generation == self.generation() {
            lists.1.insert(key, list);
        }
    }
}

/// Values computed from the database, valid for one generation of the
/// board (see [`ListCache::generation`]), at most `capacity` of them.
#[derive(Debug)]
pub struct Memo<K, V> {
    capacity: usize,
    stored: Mutex<(u64, HashMap<K, V>)>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Memo<K, V> {
    /// An empty memo that keeps at most `capacity` values.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            stored: Mutex::new((0, HashMap::new())),
        }
    }

    /// The value for `key` if it was computed in `generation`.
    pub fn get(&self, key: &K, generation: u64) -> Option<V> {
        let stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        if stored.0 != generation {
            return None;
        }
        stored.1.get(key).cloned()
    }

    /// Stores a value computed from data read in `generation`; values of
    /// an older generation are dropped, one of a newer is kept out.
    pub fn put(&self, key: K, generation: u64, value: V) {
        let mut stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        if generation < stored.0 {
            return;
        }
        if generation > stored.0 || stored.1.len() >= self.capacity {
            *stored = (generation, HashMap::new());
        }
        stored.1.insert(key, value);
    }
}

/// A rendered page cut where each CSRF token goes. Between two changes a
/// member's page is the same in every browser but for the token, which is
/// each browser's own: the page is rendered once with a stand-in for it,
/// cut there, and joined again around the token of whoever asks.
#[derive(Debug)]
pub struct CutPage {
    parts: Vec<String>,
}

impl CutPage {
    /// Cuts `html` wherever `slot`, the stand-in for the token, appears.
    pub fn cut(html: &str, slot: &str) -> Self {
        Self {
            parts: html.split(slot).map(str::to_string).collect(),
        }
    }

    /// The page with `token` in every place the stand-in was.
    pub fn with_token(&self, token: &str) -> String {
        let slots = self.parts.len().saturating_sub(1);
        let len = self.parts.iter().map(String::len).sum::<usize>() + token.len() * slots;
        let mut page = String::with_capacity(len);
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                page.push_str(token);
            }
            page.push_str(part);
        }
        page
    }
}

/// Signed-in sessions by token hash, with their expiry, so a page view
/// needs no database query to know who is asking.
#[derive(Debug)]
pub struct SessionCache<T> {
    sessions: Mutex<HashMap<Vec<u8>, (T, i64)>>,
}

impl<T> Default for SessionCache<T> {
    fn default() -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> SessionCache<T> {
    /// The session's member, if cached and not expired at `now`.
    pub fn get(&self, token_hash: &[u8], now: i64) -> Option<T> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions
            .get(token_hash)
            .filter(|(_, expires)| *expires > now)
            .map(|(member, _)| member.clone())
    }

    /// Remembers a session found in the database.
    pub fn put(&self, token_hash: Vec<u8>, member: T, expires: i64) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions.len() >= 10_000 {
            sessions.clear();
        }
        sessions.insert(token_hash, (member, expires));
    }

    /// Forgets every session; the database still has them.
    pub fn clear(&self) {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn list(text: &str) -> Cached {
        Cached {
            html: text.into(),
            more: false,
            empty: false,
        }
    }

    #[test]
    fn a_cut_page_takes_each_browsers_token_in_every_form() {
        let page = CutPage::cut("<a>SLOT</a><b>SLOT</b>", "SLOT");
        assert_eq!(page.with_token("t1"), "<a>t1</a><b>t1</b>");
        assert_eq!(page.with_token("t2"), "<a>t2</a><b>t2</b>");
        assert_eq!(CutPage::cut("no form", "SLOT").with_token("t"), "no form");
    }

    #[test]
    fn expired_sessions_are_not_served_from_the_cache() {
        let c = SessionCache::default();
        c.put(vec![1], "alice", 100);
        assert_eq!(c.get(&[1], 99), Some("alice"));
        assert_eq!(c.get(&[1], 100), None);
        c.clear();
        assert_eq!(c.get(&[1], 0), None);
    }

    #[test]
    fn a_memo_forgets_values_of_older_generations() {
        let m = Memo::new(2);
        m.put(1, 5, "a");
        assert_eq!(m.get(&1, 5), Some("a"));
        assert_eq!(m.get(&1, 6), None, "the board changed since");
        m.put(1, 4, "old");
        assert_eq!(m.get(&1, 5), Some("a"), "a value read before is not stored");
        m.put(2, 5, "b");
        m.put(3, 5, "c");
        assert_eq!(m.get(&1, 5), None, "past its capacity it starts afresh");
        assert_eq!(m.get(&3, 5), Some("c"));
    }

    #[test]
    fn a_change_makes_every_stored_list_stale() {
        let c = ListCache::default();
        c.put("all".into(), c.generation(), list("a"));
        assert_eq!(c.get("all").unwrap().html.as_ref(), "a");
        c.invalidate();
        assert!(c.get("all").is_none());
    }

    #[test]
    fn a_list_read_before_a_change_is_never_stored_after_it() {
        let c = ListCache::default();
        let read_at = c.generation();
        c.invalidate();
        c.put("all".into(), read_at, list("old"));
        assert!(c.get("all").is_none());
    }
}
