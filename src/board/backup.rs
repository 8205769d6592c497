//! Consistent snapshots of the board's database while it runs, through
//! `SQLite`'s online backup API: pages are copied in steps, and a write in
//! between restarts the copy, so the result is always one moment's state.
//! The catalog entry's backup step runs `voisin board backup`.

use std::io::{Read as _, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::backup::Backup;
use rusqlite::{Connection, OpenFlags};

/// Copies the database at `database` into a new file at `out`.
pub fn snapshot(database: &Path, out: &Path) -> anyhow::Result<()> {
    let source = Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open the board database `{}`", database.display()))?;
    source.busy_timeout(Duration::from_secs(10))?;
    let mut target = Connection::open(out)
        .with_context(|| format!("cannot create the snapshot `{}`", out.display()))?;
    {
        let backup = Backup::new(&source, &mut target)?;
        // 256 pages a step, with a pause that lets the board's writers in.
        backup
            .run_to_completion(256, Duration::from_millis(5), None)
            .context("the online backup did not complete")?;
    }
    // A snapshot is one self-contained file, not a WAL pair.
    target.pragma_update(None, "journal_mode", "DELETE")?;
    let check: String = target.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    anyhow::ensure!(
        check == "ok",
        "the snapshot failed its integrity check: {check}"
    );
    Ok(())
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
        let bytes = std::fs::read(&scratch)?;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&bytes)?;
        stdout.flush()?;
        Ok(())
    });
    let _ = std::fs::remove_file(&scratch);
    result
}

/// Replaces the database at `database` with the snapshot at `input` (or
/// standard input for `-`), through the online backup API so a running
/// board sees the restored data at once. The snapshot is checked first: a
/// damaged or foreign file never replaces the board's data.
pub fn restore(database: &Path, input: &Path) -> anyhow::Result<()> {
    let scratch;
    let source_path = if input == Path::new("-") {
        scratch = Some(scratch_beside(database, "restore"));
        let path = scratch.as_deref().unwrap_or(input);
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context("cannot read the snapshot from standard input")?;
        std::fs::write(path, bytes)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        path.to_path_buf()
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
    let tables: i64 = source.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('members', 'offers', 'requests')",
        [],
        |r| r.get(0),
    )?;
    anyhow::ensure!(tables == 3, "the snapshot is not a lending board database");
    let mut target = Connection::open(database)
        .with_context(|| format!("cannot open the board database `{}`", database.display()))?;
    target.busy_timeout(Duration::from_secs(10))?;
    let backup = Backup::new(&source, &mut target)?;
    backup
        .run_to_completion(256, Duration::from_millis(5), None)
        .context("the restore did not complete")?;
    Ok(())
}

/// A scratch file beside the database, unique to this process.
fn scratch_beside(database: &Path, what: &str) -> PathBuf {
    let mut name = database.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{what}-{}", std::process::id()));
    database.with_file_name(name)
}
