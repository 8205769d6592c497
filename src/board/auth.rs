//! Who is asking: random tokens for sessions, sign-in links and CSRF,
//! password checks, cookies, the link rate limiter and the password
//! throttle.
//!
//! Tokens are stored only as SHA-256 hashes, so a copy of the database (a
//! backup) cannot be used to sign in. Every random byte comes from the
//! operating system's generator.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock, PoisonError};

use argon2::Argon2;
use argon2::password_hash::PasswordVerifier as _;
use argon2::password_hash::phc::PasswordHash;
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// How long a session lasts.
pub const SESSION_SECONDS: i64 = 30 * 86_400;
/// How long a mailed sign-in link stays valid.
pub const LINK_SECONDS: i64 = 30 * 60;

/// A new random token: 32 bytes from the OS generator, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // Without the OS generator nothing here can be secure: refuse to run.
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database keeps of a token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Whether two strings are equal, in time that does not depend on where
/// they differ.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a password against a member's PHC hash. Without a hash (unknown
/// member, or link-only sign-in) a dummy hash is checked anyway, so the
/// answer takes as long and nobody can tell which accounts exist.
pub fn verify_password(hash: Option<&str>, password: &str) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let (hash, real) = match hash {
        Some(h) => (h, true),
        None => (
            DUMMY
                .get_or_init(|| {
                    super::members::hash_password("voisin dummy password").unwrap_or_default()
                })
                .as_str(),
            false,
        ),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

/// The value of cookie `name` in a request's headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: `HttpOnly` and `SameSite=Lax` always, `Secure` when the
/// board is served over https. `max_age` 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Cookie names. Over https they take the `__Host-` prefix, which browsers
/// only accept from the board's own host with `Secure`: a neighbouring
/// subdomain cannot plant a CSRF token or a session.
#[derive(Debug, Clone)]
pub struct CookieNames {
    /// The session cookie.
    pub session: String,
    /// The CSRF token cookie (double-submit).
    pub csrf: String,
}

impl CookieNames {
    /// The names for a board served over https (`secure`) or not.
    pub fn new(secure: bool) -> Self {
        let prefix = if secure { "__Host-" } else { "" };
        Self {
            session: format!("{prefix}voisin_session"),
            csrf: format!("{prefix}voisin_csrf"),
        }
    }
}

/// Counts attempts per key in a sliding window, in memory: sign-in link
/// mails per address and per client.
#[derive(Debug, Default)]
pub struct RateLimiter {
    hits: Mutex<HashMap<String, VecDeque<i64>>>,
}

impl RateLimiter {
    /// Records an attempt for `key` at `now` and says whether it is within
    /// `limit` attempts per `window` seconds.
    pub fn allow(&self, key: &str, limit: usize, window: i64, now: i64) -> bool {
        let mut hits = self.hits.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget idle keys now and then, so the map cannot grow without end.
        if hits.len() > 10_000 {
            hits.retain(|_, q| q.back().is_some_and(|t| *t > now - window));
        }
        let q = hits.entry(key.to_string()).or_default();
        while q.front().is_some_and(|t| *t <= now - window) {
            q.pop_front();
        }
        if q.len() >= limit {
            return false;
        }
        q.push_back(now);
        true
    }
}

/// Failed attempts per key, each making the next attempt wait longer:
/// the first few are free, then the wait doubles up to a cap. Instead of
/// locking an account (which lets anyone lock a neighbour out), guessing
/// becomes slow. Only failures count; a key is forgotten once it has been
/// quiet for [`Throttle::FORGET`] seconds.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, (u32, i64)>>,
}

impl Throttle {
    /// Quiet seconds after which a key's failures are forgotten.
    pub const FORGET: i64 = 15 * 60;

    /// How many seconds `key` must still wait at `now` before another
    /// attempt, given `free` failures without a wait and a wait of at most
    /// `cap` seconds; `None` when it may try now.
    pub fn wait(&self, key: &str, free: u32, cap: i64, now: i64) -> Option<i64> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let &(count, last) = failures.get(key)?;
        if count < free || now - last >= Self::FORGET {
            return None;
        }
        let delay = 1_i64.checked_shl(count - free).unwrap_or(i64::MAX).min(cap);
        let left = last + delay - now;
        (left > 0).then_some(left)
    }

    /// Records a failed attempt for `key` at `now`.
    pub fn fail(&self, key: &str, now: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget quiet keys now and then, so the map cannot grow without end.
        if failures.len() > 10_000 {
            failures.retain(|_, (_, last)| now - *last < Self::FORGET);
        }
        let entry = failures.entry(key.to_string()).or_insert((0, now));
        if now - entry.1 >= Self::FORGET {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
    }

    /// Forgets `key`'s failures (its owner proved who they are).
    pub fn forget(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn throttle_waits_longer_after_each_failure_up_to_its_cap() {
        let t = Throttle::default();
        for _ in 0..3 {
            assert_eq!(t.wait("k", 3, 30, 100), None);
            t.fail("k", 100);
        }
        t.fail("k", 100);
        assert_eq!(t.wait("k", 3, 30, 100), Some(2), "fourth failure: 2 s");
        assert_eq!(t.wait("k", 3, 30, 102), None);
        for _ in 0..20 {
            t.fail("k", 200);
        }
        assert_eq!(t.wait("k", 3, 30, 200), Some(30), "never more than the cap");
        assert_eq!(t.wait("other", 3, 30, 200), None);
        t.forget("k");
        assert_eq!(t.wait("k", 3, 30, 200), None);
        t.fail("k", 0);
        t.fail("k", Throttle::FORGET + 1);
        assert_eq!(
            t.wait("k", 1, 30, Throttle::FORGET + 1),
            Some(1),
            "a quiet key starts afresh"
        );
    }

    #[test]
    fn limiter_refuses_past_the_limit_and_forgets_after_the_window() {
        let l = RateLimiter::default();
        assert!(l.allow("k", 2, 60, 0));
        assert!(l.allow("k", 2, 60, 1));
        assert!(!l.allow("k", 2, 60, 2));
        assert!(l.allow("k", 2, 60, 61));
    }

    #[test]
    fn cookie_reads_the_named_pair_only() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; voisin_csrf=xyz; b=2"),
        );
        assert_eq!(cookie(&h, "voisin_csrf"), Some("xyz"));
        assert_eq!(cookie(&h, "voisin"), None);
    }

    #[test]
    fn tokens_are_distinct_and_urlsafe() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn unknown_members_never_verify() {
        assert!(!verify_password(None, "voisin dummy password"));
    }
}
