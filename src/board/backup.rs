//! Consistent snapshots of the board's database while it runs, through
//! SQLite's online backup API: pages are copied in steps, and a write in
//! between restarts the copy, so the result is always one moment's state.
//! The catalog entry's backup step runs `voisin board backup`.

use std::io::Write;
use std::path::Path;
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
    anyhow::ensure!(check == "ok", "the snapshot failed its integrity check: {check}");
    Ok(())
}

/// Writes a snapshot to `out`: a file, or standard output for `-`.
pub fn run(database: &Path, out: &Path) -> anyhow::Result<()> {
    if out != Path::new("-") {
        return snapshot(database, out);
    }
    let dir = tempfile_dir()?;
    let file = dir.join("snapshot.sqlite");
    let result = snapshot(database, &file).and_then(|()| {
        let bytes = std::fs::read(&file)?;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&bytes)?;
        stdout.flush()?;
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// A private scratch folder for a snapshot bound for standard output.
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("voisin-board-backup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("cannot create a scratch folder for the snapshot")?;
    Ok(dir)
}
