//! The board's `SQLite` database: its schema, migrations, and a small pool of
//! connections. `SQLite` calls block, so they run on tokio's blocking threads;
//! a pool lets reads proceed in parallel (WAL mode) without reopening files.
//!
//! Every change goes through [`Db::write`]: `SQLite` takes one writer at a
//! time, and a transaction that reads before it writes cannot take the
//! write lock once another writer has committed since its read
//! (`SQLITE_BUSY_SNAPSHOT`, which no busy timeout waits out). So writers in
//! this process take turns on an async lock, each runs in an `IMMEDIATE`
//! transaction (the write lock from its first statement), and a writer
//! from another process (a restore) is waited for and retried. Members
//! wait a little under a crowd; they never see "database is locked".

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context as _, anyhow};
use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};
use tokio::sync::Semaphore;

/// The schema, one migration per entry; `PRAGMA user_version` records how
/// many have run. Never edit a released migration: add one.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE members (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    -- the hash the members file gave; when it changes, it replaces password_hash
    initial_hash TEXT,
    password_hash TEXT,
    in_file INTEGER NOT NULL DEFAULT 1,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX members_email ON members(lower(email));

CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members(id),
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE sign_in_links (
    token_hash BLOB PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members(id),
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE offers (
    id INTEGER PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES members(id),
    kind TEXT NOT NULL CHECK (kind IN ('item', 'service')),
    category TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    condition TEXT NOT NULL DEFAULT '',
    availability TEXT NOT NULL DEFAULT '',
    available INTEGER NOT NULL DEFAULT 1,
    hidden INTEGER NOT NULL DEFAULT 0,
    has_photo INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX offers_recent ON offers(created_at DESC, id DESC);
CREATE INDEX offers_category ON offers(category, created_at DESC, id DESC);
CREATE INDEX offers_owner ON offers(owner_id);

CREATE TABLE photos (
    offer_id INTEGER PRIMARY KEY REFERENCES offers(id),
    content_type TEXT NOT NULL,
    data BLOB NOT NULL
);

CREATE VIRTUAL TABLE offers_fts USING fts5(
    title, description, content='offers', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER offers_fts_insert AFTER INSERT ON offers BEGIN
    INSERT INTO offers_fts(rowid, title, description) VALUES (new.id, new.title, new.description);
END;
CREATE TRIGGER offers_fts_update AFTER UPDATE OF title, description ON offers BEGIN
    INSERT INTO offers_fts(offers_fts, rowid, title, description)
        VALUES ('delete', old.id, old.title, old.description);
    INSERT INTO offers_fts(rowid, title, description) VALUES (new.id, new.title, new.description);
END;

-- a member asking for an offer: a loan for an item, a request for a service
CREATE TABLE requests (
    id INTEGER PRIMARY KEY,
    offer_id INTEGER NOT NULL REFERENCES offers(id),
    requester_id TEXT NOT NULL REFERENCES members(id),
    start_date TEXT,
    end_date TEXT,
    message TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    lent_at INTEGER,
    due_date TEXT,
    returned_at INTEGER,
    reminded_before INTEGER NOT NULL DEFAULT 0,
    reminded_after INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX requests_offer ON requests(offer_id, state);
CREATE INDEX requests_requester ON requests(requester_id);
CREATE INDEX requests_due ON requests(state, due_date);

CREATE TABLE mail_queue (
    id INTEGER PRIMARY KEY,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at INTEGER,
    last_error TEXT
);
CREATE INDEX mail_pending ON mail_queue(next_attempt_at) WHERE sent_at IS NULL;
",
    r"
-- what the account page shows of a member's sessions
ALTER TABLE sessions ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN agent TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_member ON sessions(member_id);
",
    // Photos in rows of 64 KiB (`PHOTO_CHUNK`), read one row at a time.
    // Read in pieces from one blob, a photo cost quadratic time: each
    // piece opened the blob again, and SQLite found its place by walking
    // the blob's chain of overflow pages from the start. Existing photos
    // are cut here, inside the migration's transaction.
    r"
CREATE TABLE photo_chunks (
    offer_id INTEGER NOT NULL REFERENCES photos(offer_id),
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (offer_id, seq)
);
WITH RECURSIVE chunk(offer_id, seq, size) AS (
    SELECT offer_id, 0, length(data) FROM photos
    UNION ALL
    SELECT offer_id, seq + 1, size FROM chunk WHERE (seq + 1) * 65536 < size
)
INSERT INTO photo_chunks (offer_id, seq, data)
    SELECT chunk.offer_id, chunk.seq, substr(photos.data, chunk.seq * 65536 + 1, 65536)
    FROM chunk JOIN photos ON photos.offer_id = chunk.offer_id;
ALTER TABLE photos ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE photos SET size = length(data);
ALTER TABLE photos DROP COLUMN data;
",
];

/// The size of the rows photos are stored in (see the third migration).
pub const PHOTO_CHUNK: usize = 64 * 1024;

/// A pool of connections to the board's database.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Pool>,
}

struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
    /// Held by the one writer of this process at a time.
    writer: Arc<tokio::sync::Mutex<()>>,
}

/// How long a write keeps trying while another process holds the lock.
const WRITE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

impl Db {
    /// Opens (creating when missing) the database at `path`, brings its
    /// schema up to date, and keeps up to `size` connections.
    pub fn open(path: &Path, size: usize) -> anyhow::Result<Self> {
        let mut first = connect(path)?;
        migrate(&mut first)?;
        Ok(Self {
            inner: Arc::new(Pool {
                path: path.to_path_buf(),
                idle: Mutex::new(vec![first]),
                permits: Semaphore::new(size.max(1)),
                writer: Arc::new(tokio::sync::Mutex::new(())),
            }),
        })
    }

    /// Runs `work` with a connection on a blocking thread.
    pub async fn call<T, F>(&self, work: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| anyhow!("the database pool is closed"))?;
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.blocking(work))
            .await
            .context("a database task panicked")?
    }

    /// Runs `work` in one `IMMEDIATE` transaction on a blocking thread,
    /// after the writers before it, and commits when it returns `Ok`.
    /// When `SQLite` reports the database busy or locked (another process
    /// writes), the transaction is rolled back and `work` runs again, so it
    /// must only touch the database.
    pub async fn write<T, F>(&self, work: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Transaction<'_>) -> anyhow::Result<T> + Send + 'static,
    {
        let turn = self.inner.writer.clone().lock_owned().await;
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let result = db.write_blocking(work);
            drop(turn);
            result
        })
        .await
        .context("a database task panicked")?
    }

    /// [`Db::write`] on the calling thread, for code that is not async.
    /// Only the async writers take turns on the lock: the two meet only
    /// at start-up, where the busy timeout and the retries suffice.
    pub fn write_blocking<T>(
        &self,
        mut work: impl FnMut(&Transaction<'_>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let started = std::time::Instant::now();
        let mut attempt: u32 = 0;
        loop {
            let result = self.blocking(|conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let value = work(&tx)?;
                tx.commit()?;
                Ok(value)
            });
            match result {
                Err(err) if is_busy(&err) && started.elapsed() < WRITE_PATIENCE => {
                    attempt += 1;
                    // Back off a little more each time, up to a quarter second.
                    let pause = 5 * u64::from(attempt.min(50));
                    std::thread::sleep(std::time::Duration::from_millis(pause));
                }
                other => return other,
            }
        }
    }

    /// Runs a short read on the calling thread. The pages every member
    /// loads (session check, browsing) run queries of some tens of
    /// microseconds; handing them to the blocking pool costs more than the
    /// query, and WAL readers never wait for writers.
    pub fn read<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.blocking(work)
    }

    /// Runs `work` with a connection on the current thread, for code that
    /// is not async (start-up, tools, tests).
    pub fn blocking<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let taken = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match taken {
            Some(conn) => conn,
            None => connect(&self.inner.path)?,
        };
        let result = work(&mut conn);
        self.inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
        result
    }
}

/// Whether `SQLite` refused for another connection's lock: worth another try.
fn is_busy(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
            .is_some_and(|code| matches!(code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
    })
}

/// How long delivered mails stay in the queue, for a look when someone
/// says a mail never came.
const KEEP_SENT_MAIL: i64 = 30 * 86_400;

/// Forgets what can no longer be used: expired sessions and sign-in links,
/// and mails delivered more than a month ago. Returns how many rows went.
pub fn tidy(conn: &Connection, now: i64) -> anyhow::Result<usize> {
    let mut gone = conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
    gone += conn.execute("DELETE FROM sign_in_links WHERE expires_at <= ?1", [now])?;
    gone += conn.execute(
        "DELETE FROM mail_queue WHERE sent_at IS NOT NULL AND sent_at < ?1",
        [now - KEEP_SENT_MAIL],
    )?;
    Ok(gone)
}

/// Opens one connection with the settings every connection needs.
fn connect(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)
        .with_context(|| format!("cannot open the board database `{}`", path.display()))?;
    // WAL lets readers run beside the one writer; the busy timeout makes a
    // writer wait for another instead of failing at once.
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Fails unless `conn` holds a lending board's database: a schema version
/// this voisin knows, and the tables and columns the board reads.
pub fn ensure_board_database(conn: &Connection) -> anyhow::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = i64::try_from(MIGRATIONS.len())?;
    anyhow::ensure!(
        (1..=known).contains(&version),
        "its schema version is {version}, and this voisin knows 1 to {known}"
    );
    // Before the third migration photos were one blob each (a restore
    // brings such a snapshot up to date).
    let photos: &[&str] = if version < 3 {
        &["SELECT offer_id, content_type, data FROM photos"]
    } else {
        &[
            "SELECT offer_id, content_type, size FROM photos",
            "SELECT offer_id, seq, data FROM photo_chunks",
        ]
    };
    for probe in [
        "SELECT id, name, email, admin, password_hash, in_file, disabled FROM members",
        "SELECT token_hash, member_id, expires_at FROM sessions",
        "SELECT id, owner_id, kind, category, title, hidden, has_photo FROM offers",
        "SELECT id, offer_id, requester_id, state, due_date FROM requests",
        "SELECT id, recipient, subject, body, sent_at FROM mail_queue",
        "SELECT rowid FROM offers_fts",
    ]
    .iter()
    .chain(photos)
    {
        conn.prepare(&format!("{probe} LIMIT 0"))
            .with_context(|| format!("it lacks what `{probe}` reads"))?;
    }
    Ok(())
}

/// Runs the migrations this database has not seen yet, each in its own
/// transaction.
pub(crate) fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let done: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(done)?) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("board database migration {} failed", i + 1))?;
        tx.pragma_update(None, "user_version", i64::try_from(i + 1)?)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// The bytes of a test photo of `n` bytes.
    pub(crate) fn photo(n: usize) -> Vec<u8> {
        (0..n).map(|i| u8::try_from(i % 253).unwrap()).collect()
    }

    /// Creates at `path` a board as the second schema left it, with one
    /// offer and photo (of [`photo`]'s bytes) per size, ids from 1.
    pub(crate) fn second_schema_board(path: &Path, sizes: &[usize]) {
        let old = Connection::open(path).unwrap();
        old.execute_batch(MIGRATIONS[0]).unwrap();
        old.execute_batch(MIGRATIONS[1]).unwrap();
        old.pragma_update(None, "user_version", 2).unwrap();
        old.execute(
            "INSERT INTO members (id, name, email, created_at) VALUES ('m', 'M', 'm@x', 0)",
            [],
        )
        .unwrap();
        for (id, &size) in (1..).zip(sizes) {
            old.execute(
                "INSERT INTO offers (id, owner_id, kind, category, title, has_photo, created_at)
                 VALUES (?1, 'm', 'item', 'tools', 'T', 1, 0)",
                [id],
            )
            .unwrap();
            old.execute(
                "INSERT INTO photos (offer_id, content_type, data) VALUES (?1, 'image/png', ?2)",
                rusqlite::params![id, photo(size)],
            )
            .unwrap();
        }
    }

    /// Fails unless the board at `c` holds [`second_schema_board`]'s
    /// photos of `sizes`, whole and in chunks.
    pub(crate) fn assert_photos_in_chunks(c: &Connection, sizes: &[usize]) {
        for (id, &size) in (1..).zip(sizes) {
            let (kind, stored) = crate::board::photos::find(c, id).unwrap().unwrap();
            assert_eq!((kind.as_str(), stored), ("image/png", size as u64));
            let chunks: Vec<usize> = c
                .prepare("SELECT length(data) FROM photo_chunks WHERE offer_id = ?1 ORDER BY seq")
                .unwrap()
                .query_map([id], |r| r.get::<_, i64>(0))
                .unwrap()
                .map(|n| usize::try_from(n.unwrap()).unwrap())
                .collect();
            assert!(chunks.iter().all(|&n| n <= PHOTO_CHUNK), "{chunks:?}");
            assert_eq!(chunks.len(), size.div_ceil(PHOTO_CHUNK));
            let whole = crate::board::photos::read_whole(c, id, size).unwrap();
            assert!(whole == photo(size), "photo {id} is whole and in order");
        }
    }

    #[test]
    fn photos_of_an_older_board_are_cut_into_chunks_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.sqlite");
        // Smaller than a chunk, exactly two, two and a bit.
        let sizes = [10, 2 * PHOTO_CHUNK, 2 * PHOTO_CHUNK + 5];
        second_schema_board(&path, &sizes);
        let db = Db::open(&path, 1).unwrap();
        db.blocking(|c| {
            ensure_board_database(c)?;
            assert_photos_in_chunks(c, &sizes);
            Ok(())
        })
        .unwrap();
    }
}
