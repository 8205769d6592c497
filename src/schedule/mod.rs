//! The association's unattended routine: which jobs run when (from the
//! manifest's `operations`), written as systemd units ([`systemd`]) or cron
//! lines ([`cron`]), and the record each scheduled run leaves in
//! `.voisin/schedule-runs.json` ([`runs`]) so that `schedule show` and
//! `status` can say how it last ended.
//!
//! Everything here is pure text and data but the run record: installing
//! (writing files, asking `systemctl` and `crontab`) is the command's work.

pub mod cron;
pub mod runs;
pub mod systemd;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::manifest::Manifest;

pub use runs::{LastRun, last_runs};

/// One job of the routine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Job {
    /// The nightly backup, then `backup prune`.
    Backup,
    /// The weekly `backup verify`.
    Verify,
    /// `voisin watch`, every few minutes.
    Watch,
}

impl Job {
    /// Every job, in the order they are shown.
    pub const ALL: [Self; 3] = [Self::Backup, Self::Verify, Self::Watch];

    /// The job's name, as units, cron tags and `schedule run` write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::Verify => "verify",
            Self::Watch => "watch",
        }
    }

    /// The job named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|j| j.name() == name)
    }

    /// The voisin commands the job runs, in order; the first that fails
    /// ends the job.
    pub fn commands(self) -> &'static [&'static [&'static str]] {
        match self {
            Self::Backup => &[&["backup"], &["backup", "prune"]],
            Self::Verify => &[&["backup", "verify"]],
            Self::Watch => &[&["watch"]],
        }
    }

    /// What the job does, in a volunteer's words.
    pub fn summary(self) -> &'static str {
        match self {
            Self::Backup => "nightly backup and prune",
            Self::Verify => "weekly backup verify",
            Self::Watch => "watch",
        }
    }

    /// Whether the job waits for the others of the routine that touch the
    /// repository (a backup still running when verify starts).
    pub fn uses_repository(self) -> bool {
        matches!(self, Self::Backup | Self::Verify)
    }
}

/// When a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Every day at this time, in the association's zone.
    Daily {
        /// 0–23.
        hour: u8,
        /// 0–59.
        minute: u8,
    },
    /// Every week on this day (Monday = 0) and time, in the association's zone.
    Weekly {
        /// Monday = 0 … Sunday = 6.
        day: u8,
        /// 0–23.
        hour: u8,
        /// 0–59.
        minute: u8,
    },
    /// Over and over, this long apart.
    Every(Duration),
}

/// The routine of one manifest, ready to be written as units or cron lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routine {
    /// The association's short name: units and cron files are named after it.
    pub slug: String,
    /// The association's domain, for descriptions.
    pub domain: String,
    /// The association's IANA time zone.
    pub timezone: String,
    /// The manifest, absolute.
    pub manifest: PathBuf,
    /// The voisin executable, absolute.
    pub exe: PathBuf,
    /// The jobs and when they run.
    pub jobs: Vec<(Job, When)>,
    /// Jobs left out, and why.
    pub left_out: Vec<(Job, String)>,
}

/// Why a routine cannot be worked out.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// A time of `operations` does not read (`check` reports it too).
    #[error("`operations.{key}`: {message}")]
    Time {
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A path that must be absolute is not.
    #[error("`{0}` is not an absolute path")]
    Relative(PathBuf),
}

/// The routine `manifest` (at the absolute path `manifest_path`) asks for,
/// run by the executable `exe`.
pub fn routine(
    manifest: &Manifest,
    manifest_path: &Path,
    exe: &Path,
) -> Result<Routine, ScheduleError> {
    for path in [manifest_path, exe] {
        if !path.is_absolute() {
            return Err(ScheduleError::Relative(path.to_path_buf()));
        }
    }
    let ops = manifest.operations.clone().unwrap_or_default();
    let time = |key: &'static str, e: crate::units::UnitError| ScheduleError::Time {
        key,
        message: e.message,
    };
    let (hour, minute) =
        crate::units::parse_time_of_day(&ops.backup_at).map_err(|e| time("backup_at", e))?;
    let (day, vhour, vminute) =
        crate::units::parse_weekly(&ops.verify_at).map_err(|e| time("verify_at", e))?;
    let every =
        crate::units::parse_duration(&ops.watch_every).map_err(|e| time("watch_every", e))?;
    let mut jobs = Vec::new();
    let mut left_out = Vec::new();
    if manifest.backup.is_some() {
        jobs.push((Job::Backup, When::Daily { hour, minute }));
        jobs.push((
            Job::Verify,
            When::Weekly {
                day,
                hour: vhour,
                minute: vminute,
            },
        ));
    } else {
        for job in [Job::Backup, Job::Verify] {
            left_out.push((job, "the manifest has no `backup` section".to_string()));
        }
    }
    jobs.push((Job::Watch, When::Every(every)));
    Ok(Routine {
        slug: crate::render::slug(&manifest.association.domain),
        domain: manifest.association.domain.clone(),
        timezone: manifest.association.timezone.clone(),
        manifest: manifest_path.to_path_buf(),
        exe: exe.to_path_buf(),
        jobs,
        left_out,
    })
}

impl Routine {
    /// The command line a job's unit or cron line runs: voisin by absolute
    /// path, the manifest by absolute path, no progress bars.
    pub fn command(&self, job: Job) -> Vec<String> {
        vec![
            self.exe.display().to_string(),
            "-f".into(),
            self.manifest.display().to_string(),
            "--progress".into(),
            "never".into(),
            "schedule".into(),
            "run".into(),
            job.name().into(),
        ]
    }

    /// The first line of every file voisin writes for this routine, by
    /// which `show` and `remove` know their own and its manifest.
    pub fn marker(&self) -> String {
        format!("{MARKER}{}", self.manifest.display())
    }
}

/// What every file (or crontab block) written by `schedule install` starts
/// with, followed by the manifest's path.
pub const MARKER: &str = "# Written by `voisin schedule install` for ";

/// The manifest a file voisin wrote is for, read from its marker line.
pub fn manifest_of(text: &str) -> Option<PathBuf> {
    text.lines()
        .find_map(|l| l.strip_prefix(MARKER))
        .map(|rest| PathBuf::from(rest.trim()))
}

/// Two digits, as clocks write them.
fn two(n: u8) -> String {
    format!("{n:02}")
}

/// A time of day as `HH:MM`.
pub fn clock(hour: u8, minute: u8) -> String {
    format!("{}:{}", two(hour), two(minute))
}

/// Day names as systemd and people read them, Monday first.
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl When {
    /// In words, for `show` and descriptions.
    pub fn describe(&self, timezone: &str) -> String {
        match *self {
            Self::Daily { hour, minute } => {
                format!("every day at {} {timezone}", clock(hour, minute))
            }
            Self::Weekly { day, hour, minute } => format!(
                "every {} at {} {timezone}",
                DAY_NAMES[usize::from(day % 7)],
                clock(hour, minute)
            ),
            Self::Every(d) => format!("every {}", humantime(d)),
        }
    }
}

/// A duration as the manifest would write it: `5m`, `2h`, `90s`.
fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3_600) {
        format!("{}h", s / 3_600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}
