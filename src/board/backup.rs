//! Consistent snapshots of the board's database while it runs, through
//! `SQLite`'s online backup API, and restoring one.
//!
//! A snapshot copies every page in one step, inside one read transaction
//! on the source: in WAL mode the board's writers go on meanwhile, and the
//! copy is the state at the moment the step began. (Copying a few pages at
//! a time, with pauses for the writers, restarts at every write from
//! another connection and never finishes under steady writes.) The copy is
//! written beside its destination and renamed into place once it passes
//! its integrity check, so a failure leaves no partial file. Snapshots
//! hold members' addresses and password hashes: they are `0600`.
//! The catalog entry's backup step runs `voisin board backup --out -`.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

/// How long a copy waits for a lock it needs (a restore waits for the
/// board's writer to finish its transaction).
const PATIENCE: Duration = Duration::from_mins(1);

/// Copies the database at `database` into a new file at `out`.
pub fn snapshot(database: &Path, out: &Path) -> anyhow::Result<()> {
    let source = Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open the board database `{}`", database.display()))?;
    source.busy_timeout(Duration::from_secs(10))?;
    let scratch = scratch_beside(out, "partial");
    let result = (|| {
        private_file(&scratch)?;
        let mut target = Connection::open(&scratch)
            .with_context(|| format!("cannot create the snapshot `{}`", out.display()))?;
        copy_all(&source, &mut target).context("the online backup did not complete")?;
        // A snapshot is one self-contained file, not a WAL pair.
        target.pragma_update(None, "journal_mode", "DELETE")?;
        let check: String = target.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        anyhow::ensure!(
            check == "ok",
            "the snapshot failed its integrity check: {check}"
        );
        drop(target);
        std::fs::rename(&scratch, out)
            .with_context(|| format!("cannot write the snapshot `{}`", out.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&scratch);
    }
    result
}

/// Writes a snapshot to `out`: a file, or standard output for `-`.
pub fn run(database: &Path, out: &Path) -> anyhow::Result<()> {
    if out != Path::new("-") {
        return snapshot(database, out);
    }
    // The container's root is read-only: the scratch copy goes beside the
    // database, on its (writable) volume.
    let scratch = scratch_beside(database, "backup");
    let result = snapshot(database, &scratch).and_then(|()| {
        let mut file = File::open(&scratch)?;
        let mut stdout = std::io::stdout().lock();
        std::io::copy(&mut file, &mut stdout)
            .context("cannot write the snapshot to standard output")?;
        stdout.flush()?;
        Ok(())
    });
    let _ = std::fs::remove_file(&scratch);
    result
}

/// Replaces the database at `database` with the snapshot at `input` (or
/// standard input for `-`), through the online backup API so a running
/// board sees the restored data at once. The snapshot is checked first: a
/// damaged file, or any database that is not a lending board's, never
/// replaces the board's data.
pub fn restore(database: &Path, input: &Path) -> anyhow::Result<()> {
    let scratch;
    let source_path = if input == Path::new("-") {
        let path = scratch_beside(database, "restore");
        scratch = Some(path.clone());
        let written = private_file(&path).and_then(|mut file| {
            std::io::copy(&mut std::io::stdin().lock(), &mut file)
                .context("cannot read the snapshot from standard input")?;
            file.sync_all()?;
            Ok(())
        });
        if let Err(err) = written {
            let _ = std::fs::remove_file(&path);
            return Err(err);
        }
        path
    } else {
        scratch = None;
        input.to_path_buf()
    };
    let result = restore_from(database, &source_path);
    if let Some(path) = scratch {
        let _ = std::fs::remove_file(path);
    }
    result
}

fn restore_from(database: &Path, source_path: &Path) -> anyhow::Result<()> {
    let source = Connection::open_with_flags(source_path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open the snapshot `{}`", source_path.display()))?;
    let check: String = source
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .context("the snapshot is not an SQLite database")?;
    anyhow::ensure!(check == "ok", "the snapshot is damaged: {check}");
    super::db::ensure_board_database(&source).with_context(|| {
        format!(
            "`{}` is not a lending board database\nhint: give a file `voisin board backup` wrote",
            source_path.display()
        )
    })?;
    let mut target = Connection::open(database)
        .with_context(|| format!("cannot open the board database `{}`", database.display()))?;
    target.busy_timeout(Duration::from_secs(10))?;
    copy_all(&source, &mut target).context("the restore did not complete")?;
    // A snapshot taken by an older voisin has an older schema: the board
    // reading it now expects this one's.
    super::db::migrate(&mut target).context("the restored database could not be brought up to date")
}

/// Copies every page of `source` into `target` in one step, waiting while
/// a lock it needs is held.
fn copy_all(source: &Connection, target: &mut Connection) -> anyhow::Result<()> {
    let backup = Backup::new(source, target)?;
    let started = Instant::now();
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            // More cannot follow a step of every page; Busy and Locked
            // mean another connection holds a lock for now.
            _ if started.elapsed() < PATIENCE => std::thread::sleep(Duration::from_millis(50)),
            other => anyhow::bail!("the database stayed locked ({other:?})"),
        }
    }
}

/// Creates `path` empty, readable and writable by its owner only.
fn private_file(path: &Path) -> anyhow::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .with_context(|| format!("cannot create `{}`", path.display()))
}

/// A scratch file beside `path`, unique to this process.
fn scratch_beside(path: &Path, what: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{what}-{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::db::tests::{assert_photos_in_chunks, second_schema_board};
    use super::super::db::{Db, PHOTO_CHUNK};

    #[test]
    fn a_snapshot_of_an_older_schema_is_restored_up_to_date() {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = dir.path().join("old.sqlite");
        let sizes = [3 * PHOTO_CHUNK + 1];
        second_schema_board(&snapshot, &sizes);
        let board = dir.path().join("board.sqlite");
        let db = Db::open(&board, 1).unwrap();
        super::restore(&board, &snapshot).unwrap();
        db.blocking(|c| {
            super::super::db::ensure_board_database(c)?;
            let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            assert_eq!(version, 3);
            assert_photos_in_chunks(c, &sizes);
            Ok(())
        })
        .unwrap();
    }
}
