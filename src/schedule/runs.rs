//! `.voisin/schedule-runs.json`: how each scheduled job last ran (start,
//! end, exit code), written by `voisin schedule run` at the start and end
//! of every run, read by `schedule show` and `status`. cron keeps no such
//! record, and systemd's is lost with the journal's rotation: this one
//! stays beside the manifest.
//!
//! Jobs may end at the same moment (the watch and a backup), so each
//! read-modify-write holds `.voisin/schedule-runs.lock`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How one job last ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// When it started (RFC 3339, UTC).
    pub started: String,
    /// When it ended; `None` while it runs, or when it was killed.
    pub ended: Option<String>,
    /// Its exit code: 0 when every command succeeded; `None` while it runs.
    pub exit_code: Option<i32>,
    /// The voisin command that failed, when one did (`backup prune`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    jobs: BTreeMap<String, LastRun>,
}

const FILE: &str = "schedule-runs.json";

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// The last run of each job that ever ran, by job name (`backup`,
/// `verify`, `watch`); empty when none has, or the file cannot be read.
pub fn last_runs(state_dir: &Path) -> BTreeMap<String, LastRun> {
    std::fs::read(path(state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice::<File>(&b).ok())
        .map(|f| f.jobs)
        .unwrap_or_default()
}

/// Records `run` as `job`'s last run.
pub fn record(state_dir: &Path, job: &str, run: &LastRun) -> io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state_dir.join("schedule-runs.lock"))?;
    lock.lock()?;
    let mut file = File {
        version: 1,
        jobs: last_runs(state_dir),
    };
    file.jobs.insert(job.to_string(), run.clone());
    // Through a temporary file, so a reader sees it whole or not at all.
    let tmp = state_dir.join(format!("{FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(&file)?)?;
    std::fs::rename(tmp, path(state_dir))?;
    lock.unlock()
}

/// Now, as the record writes it.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_several_jobs_are_kept_side_by_side() {
        let dir = tempfile::tempdir().expect("a temp dir");
        assert!(last_runs(dir.path()).is_empty());
        let started = LastRun {
            started: "2025-01-01T02:15:00Z".into(),
            ended: None,
            exit_code: None,
            failed: None,
        };
        record(dir.path(), "backup", &started).expect("recorded");
        let watch = LastRun {
            ended: Some("2025-01-01T02:16:00Z".into()),
            exit_code: Some(0),
            ..started.clone()
        };
        record(dir.path(), "watch", &watch).expect("recorded");
        let runs = last_runs(dir.path());
        assert_eq!(runs["backup"], started);
        assert_eq!(runs["watch"], watch);
    }
}
