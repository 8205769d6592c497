//! `voisin board backup`: a snapshot taken while the board writes is a
//! valid, complete `SQLite` database.

// A test that cannot unwrap has failed, and the panic says where.
#![allow(clippy::unwrap_used)]

mod board_support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::Connection;
use voisin::board::{Board, Config, SystemClock};

fn seeded(dir: &std::path::Path) -> std::path::PathBuf {
    let db = dir.join("board.sqlite");
    voisin::board::seed::seed(&db, 2_000, &["books".into(), "tools".into()]).unwrap();
    db
}

#[test]
fn a_snapshot_taken_during_writes_is_complete_and_valid() {
    let dir = tempfile::tempdir().unwrap();
    let db = seeded(dir.path());
    // Open through the board so the schema and WAL mode are the real ones.
    Board::open(Config::new(db.clone()), Arc::new(SystemClock)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let conn = Connection::open(&db).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .unwrap();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                conn.execute(
                    "INSERT INTO offers (owner_id, kind, category, title, created_at) VALUES ('seed', 'item', 'books', ?1, 0)",
                    [format!("written during backup {n}")],
                )
                .unwrap();
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    let mut counts = Vec::new();
    for i in 0..3 {
        let out = dir.path().join(format!("snapshot-{i}.sqlite"));
        voisin::board::backup::snapshot(&db, &out).unwrap();
        let snap = Connection::open(&out).unwrap();
        let check: String = snap
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let offers: i64 = snap
            .query_row("SELECT count(*) FROM offers", [], |r| r.get(0))
            .unwrap();
        let indexed: i64 = snap
            .query_row("SELECT count(*) FROM offers_fts WHERE offers_fts MATCH 'livre OR roman OR written OR perceuse OR tente OR vélo OR scie OR ponceuse OR guitare OR jeu OR film OR tondeuse OR raclette OR projecteur OR appareil OR cuisine OR échelle'", [], |r| r.get(0))
            .unwrap();
        assert!(offers >= 2_000, "the seeded offers are all there");
        assert_eq!(
            offers, indexed,
            "the search index matches the table: one moment's state"
        );
        counts.push(offers);
    }
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert!(written > 0, "writes went on during the backup");
    assert!(counts.windows(2).all(|w| w[0] <= w[1]));
}

/// Fills a board database to about 100 MB with photos.
fn hundred_megabytes(dir: &std::path::Path) -> std::path::PathBuf {
    let db = seeded(dir);
    Board::open(Config::new(db.clone()), Arc::new(SystemClock)).unwrap();
    let mut conn = Connection::open(&db).unwrap();
    let tx = conn.transaction().unwrap();
    // 1 MB each, in the board's rows of 64 KiB.
    for i in 1..=100 {
        tx.execute(
            "INSERT INTO photos (offer_id, content_type, size) VALUES (?1, 'image/png', 1048576)",
            [i],
        )
        .unwrap();
        tx.execute(
            "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < 15)
             INSERT INTO photo_chunks (offer_id, seq, data) SELECT ?1, n, randomblob(65536) FROM seq",
            [i],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    drop(conn);
    assert!(std::fs::metadata(&db).unwrap().len() > 100_000_000);
    db
}

#[test]
fn a_backup_of_a_100_mb_database_finishes_under_ten_writes_a_second_and_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let db = hundred_megabytes(dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    // Each write is one transaction adding an offer and its mail: a copy
    // that holds one without the other mixes two moments.
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut conn = Connection::open(&db).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .unwrap();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let tx = conn.transaction().unwrap();
                tx.execute(
                    "INSERT INTO offers (owner_id, kind, category, title, created_at) VALUES ('seed', 'item', 'books', ?1, 0)",
                    [format!("during backup {n}")],
                )
                .unwrap();
                tx.execute(
                    "INSERT INTO mail_queue (recipient, subject, body, created_at, next_attempt_at) VALUES ('a@b.c', ?1, '', 0, 0)",
                    [format!("during backup {n}")],
                )
                .unwrap();
                tx.commit().unwrap();
                n += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = dir.path().join("snapshot.sqlite");
    let (done, finished) = std::sync::mpsc::channel();
    {
        let (db, out) = (db.clone(), out.clone());
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let result = voisin::board::backup::snapshot(&db, &out);
            let _ = done.send((result, started.elapsed()));
        });
    }
    // About a second on this machine; a minute means it never finishes.
    let outcome = finished.recv_timeout(std::time::Duration::from_mins(1));
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    let (result, took) = outcome.expect("the backup finishes while writes go on");
    result.unwrap();
    assert!(written >= 3, "writes went on during the backup ({written})");
    eprintln!("backup of 100 MB under 10 writes/s took {took:?}");
    let snap = Connection::open(&out).unwrap();
    let check: String = snap
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let count = |sql: &str| -> i64 { snap.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM photos"), 100);
    let offers = count("SELECT count(*) FROM offers WHERE title LIKE 'during backup%'");
    let mails = count("SELECT count(*) FROM mail_queue WHERE subject LIKE 'during backup%'");
    assert!(offers >= 2, "writes before the backup began are in it");
    assert_eq!(offers, mails, "the copy is one moment's state");
    let journal: String = snap
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "delete", "the copy is one file");
}

#[cfg(unix)]
#[test]
fn snapshots_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let db = seeded(dir.path());
    let out = dir.path().join("snap.sqlite");
    voisin::board::backup::snapshot(&db, &out).unwrap();
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "members' addresses and hashes stay private"
    );
}

#[test]
fn the_backup_command_writes_a_database_to_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let db = seeded(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_voisin"))
        .args(["board", "backup", "--database"])
        .arg(&db)
        .args(["--out", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(b"SQLite format 3\0"));
    let copy = dir.path().join("copy.sqlite");
    std::fs::write(&copy, &out.stdout).unwrap();
    let n: i64 = Connection::open(&copy)
        .unwrap()
        .query_row("SELECT count(*) FROM offers", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2_000);
}

#[test]
fn the_backup_command_fails_clearly_on_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_voisin"))
        .args(["board", "backup", "--database"])
        .arg(dir.path().join("nope.sqlite"))
        .arg("--out")
        .arg(dir.path().join("x.sqlite"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open the board database"));
}

#[test]
fn restore_brings_back_a_snapshot_and_refuses_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let db = seeded(dir.path());
    let snap = dir.path().join("snap.sqlite");
    voisin::board::backup::snapshot(&db, &snap).unwrap();
    Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM offers", [])
        .unwrap();

    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"not a database at all, really not").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_voisin"))
        .args(["board", "restore", "--database"])
        .arg(&db)
        .arg("--in")
        .arg(&junk)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a foreign file never replaces the data"
    );

    // A valid SQLite database that is not a board's: restoring it would
    // wipe the board.
    let other = dir.path().join("other.sqlite");
    Connection::open(&other)
        .unwrap()
        .execute_batch(
            "CREATE TABLE members (x); CREATE TABLE offers (y); CREATE TABLE requests (z);
             INSERT INTO offers VALUES (1);",
        )
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_voisin"))
        .args(["board", "restore", "--database"])
        .arg(&db)
        .arg("--in")
        .arg(&other)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "another program's database is refused"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a lending board database"), "{stderr}");
    assert!(
        Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*) FROM members", [], |r| r.get::<_, i64>(0))
            .is_ok(),
        "the board's data is untouched"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_voisin"))
        .args(["board", "restore", "--database"])
        .arg(&db)
        .args(["--in", "-"])
        .stdin(std::fs::File::open(&snap).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n: i64 = Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM offers", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2_000);
    let leftovers = std::fs::read_dir(dir.path()).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".restore-")
    });
    assert_eq!(leftovers.count(), 0, "the scratch copy is removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_succeeds_against_a_running_board_and_fails_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let board = Board::open(
        Config::new(dir.path().join("b.sqlite")),
        Arc::new(SystemClock),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, board.router()).await.unwrap() });
    let check = |addr: String| {
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_voisin"))
                .args(["board", "healthcheck", "--listen", &addr])
                .output()
                .unwrap()
        })
    };
    let ok = check(addr.to_string()).await.unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down = check(free.to_string()).await.unwrap();
    assert_eq!(down.status.code(), Some(1));
}
