//! Incidents between passes, kept in `.voisin/watch.json`, so that a
//! problem is announced once when it starts, reminded at the set interval
//! while it lasts, and announced again once when it ends: no floods.
//!
//! A change is marked as told only once an alert carrying it went out
//! through at least one channel; when every channel fails, the next pass
//! tells it again, and the failure is kept for `status` to show.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Finding, Severity};

/// What the watch remembers between two passes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchState {
    /// When the last pass ran (Unix seconds).
    #[serde(default)]
    pub last_pass: Option<i64>,
    /// Problems going on, by [`Finding::key`].
    #[serde(default)]
    pub open: BTreeMap<String, Incident>,
    /// Problems that ended but whose end was not told yet.
    #[serde(default)]
    pub ended: BTreeMap<String, Incident>,
    /// Each container's restart count at the last pass.
    #[serde(default)]
    pub restarts: BTreeMap<String, i64>,
    /// The last time every alert channel failed, and why.
    #[serde(default)]
    pub undelivered: Option<Undelivered>,
}

/// One problem, from its first pass on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// The finding, as last seen.
    pub finding: Finding,
    /// When it was first seen (Unix seconds).
    pub since: i64,
    /// When an alert about it last went out; none while untold.
    pub told: Option<i64>,
}

/// Alerts that reached nobody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undelivered {
    /// When (Unix seconds).
    pub at: i64,
    /// Why, per channel.
    pub errors: Vec<String>,
}

/// What one pass has to tell.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Problems that started (or were never told).
    pub started: Vec<Finding>,
    /// Problems still going on whose reminder is due.
    pub reminded: Vec<(Finding, i64)>,
    /// Problems that ended.
    pub resolved: Vec<Finding>,
}

impl Changes {
    /// Whether there is nothing to tell.
    pub fn is_empty(&self) -> bool {
        self.started.is_empty() && self.reminded.is_empty() && self.resolved.is_empty()
    }

    /// The worst severity among what is told, for the alert's priority.
    pub fn worst(&self) -> Option<Severity> {
        self.started
            .iter()
            .chain(self.reminded.iter().map(|(f, _)| f))
            .map(|f| f.severity)
            .max()
    }
}

impl WatchState {
    /// The state file of the manifest whose state folder is `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("watch.json")
    }

    /// Reads the state; a missing or unreadable file is a fresh start (the
    /// worst it costs is one alert told again).
    pub fn read(dir: &Path) -> Self {
        std::fs::read(Self::path(dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Writes the state, whole or not at all.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let path = Self::path(dir);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, &path)
    }

    /// Folds a pass's findings in at `now` and returns what to tell, given
    /// that reminders are due every `remind` seconds. Call [`Self::told`]
    /// once an alert went out.
    pub fn update(&mut self, findings: &[Finding], now: i64, remind: i64) -> Changes {
        self.last_pass = Some(now);
        let mut changes = Changes::default();
        let mut open = BTreeMap::new();
        for f in findings {
            let key = f.key();
            // A problem that ended and came back before its end was told
            // simply goes on.
            let before = self.open.remove(&key).or_else(|| self.ended.remove(&key));
            let incident = if let Some(mut i) = before {
                i.finding = f.clone();
                match i.told {
                    None => changes.started.push(f.clone()),
                    Some(t) if now - t >= remind => {
                        changes.reminded.push((f.clone(), i.since));
                    }
                    Some(_) => {}
                }
                i
            } else {
                changes.started.push(f.clone());
                Incident {
                    finding: f.clone(),
                    since: now,
                    told: None,
                }
            };
            open.insert(key, incident);
        }
        for (key, incident) in std::mem::take(&mut self.open) {
            // An end is worth telling only of a start that was told.
            if incident.told.is_some() {
                self.ended.insert(key, incident);
            }
        }
        changes
            .resolved
            .extend(self.ended.values().map(|i| i.finding.clone()));
        self.open = open;
        changes
    }

    /// Marks what `changes` carried as told at `now`.
    pub fn told(&mut self, changes: &Changes, now: i64) {
        for f in changes
            .started
            .iter()
            .chain(changes.reminded.iter().map(|(f, _)| f))
        {
            if let Some(i) = self.open.get_mut(&f.key()) {
                i.told = Some(now);
            }
        }
        for f in &changes.resolved {
            self.ended.remove(&f.key());
        }
        self.undelivered = None;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn down(name: &str) -> Finding {
        Finding {
            code: "container-down".into(),
            subject: name.into(),
            severity: Severity::Critical,
            message: format!("{name} is down"),
            hint: String::new(),
        }
    }

    const HOUR: i64 = 3_600;

    #[test]
    fn a_problem_is_told_once_reminded_when_due_and_its_end_told_once() {
        let mut s = WatchState::default();
        let c = s.update(&[down("mail")], 0, 12 * HOUR);
        assert_eq!(c.started, [down("mail")]);
        s.told(&c, 0);
        assert!(s.update(&[down("mail")], HOUR, 12 * HOUR).is_empty());
        let c = s.update(&[down("mail")], 12 * HOUR, 12 * HOUR);
        assert_eq!(c.reminded, [(down("mail"), 0)]);
        s.told(&c, 12 * HOUR);
        assert!(s.update(&[down("mail")], 13 * HOUR, 12 * HOUR).is_empty());
        let c = s.update(&[], 14 * HOUR, 12 * HOUR);
        assert_eq!(c.resolved, [down("mail")]);
        s.told(&c, 14 * HOUR);
        assert!(s.update(&[], 15 * HOUR, 12 * HOUR).is_empty());
    }

    #[test]
    fn what_could_not_be_told_is_told_at_the_next_pass() {
        let mut s = WatchState::default();
        let c = s.update(&[down("mail")], 0, 12 * HOUR);
        assert_eq!(c.started.len(), 1);
        // Every channel failed: nothing is marked as told.
        let c = s.update(&[down("mail")], 300, 12 * HOUR);
        assert_eq!(c.started, [down("mail")]);
        s.told(&c, 300);
        let c = s.update(&[], 600, 12 * HOUR);
        assert_eq!(c.resolved.len(), 1);
        // The end could not be told either: it is told next time.
        let c = s.update(&[], 900, 12 * HOUR);
        assert_eq!(c.resolved, [down("mail")]);
    }

    #[test]
    fn a_problem_that_ends_before_it_was_told_is_never_told() {
        let mut s = WatchState::default();
        s.update(&[down("mail")], 0, 12 * HOUR);
        assert!(s.update(&[], 300, 12 * HOUR).is_empty());
    }

    #[test]
    fn a_problem_back_before_its_end_was_told_just_goes_on() {
        let mut s = WatchState::default();
        let c = s.update(&[down("mail")], 0, 12 * HOUR);
        s.told(&c, 0);
        let ended = s.update(&[], 300, 12 * HOUR);
        assert_eq!(ended.resolved.len(), 1);
        let c = s.update(&[down("mail")], 600, 12 * HOUR);
        assert!(c.is_empty(), "{c:?}");
    }
}
