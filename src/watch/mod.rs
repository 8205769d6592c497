//! The watch: one pass over everything that can go wrong while nobody is
//! looking — containers down or restarting, backups late, certificates
//! about to expire, disks filling up, mail ports that do not answer — each
//! as a [`Finding`] with a stable code. `voisin watch` turns the findings
//! into alerts ([`incidents`], [`alert`]); `voisin status` shows them.
//!
//! Looking is split from judging: [`look`] gathers what the engine, the
//! repository and the disks say, and the functions that judge it are pure,
//! so each rule is tested on its own.

pub mod alert;
pub mod incidents;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::ObservedContainer;
use crate::manifest::{Limits, Operations};
use crate::render::DesiredState;
use crate::units::{self, FreeSpace};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something will go wrong if nobody acts: a late backup, a filling disk.
    Warning,
    /// Something is wrong now: a service is down.
    Critical,
}

impl Severity {
    /// The word shown to people.
    pub fn word(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// One thing wrong, found by one pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// A stable kebab-case name for the kind of problem (docs/operations.md).
    pub code: String,
    /// What it concerns: a container, a service, a host name, a disk. With
    /// the code, it names the incident from one pass to the next.
    pub subject: String,
    /// How bad it is.
    pub severity: Severity,
    /// What is wrong, in a sentence.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl Finding {
    fn new(
        code: &str,
        subject: impl Into<String>,
        severity: Severity,
        message: String,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            code: code.to_string(),
            subject: subject.into(),
            severity,
            message,
            hint: hint.into(),
        }
    }

    /// The incident's identity: the same problem with the same thing.
    pub fn key(&self) -> String {
        format!("{}:{}", self.code, self.subject)
    }
}

/// The operations section with its defaults, read into numbers. The
/// manifest was checked, so every value parses; a value that does not
/// (a manifest edited since) falls back to the default.
#[derive(Debug, Clone)]
pub struct Policy {
    /// A newest snapshot older than this is late.
    pub snapshot_age: Duration,
    /// A last proven restore older than this is late.
    pub verified_age: Duration,
    /// A certificate expiring sooner than this is a warning.
    pub certificate: Duration,
    /// Free space below this is a warning.
    pub disk_free: FreeSpace,
    /// How often an alert still going on is sent again.
    pub remind_every: Duration,
}

impl Policy {
    /// The policy of a manifest's `operations` section (or the defaults).
    pub fn of(operations: Option<&Operations>) -> Self {
        let defaults = Operations::default();
        let ops = operations.unwrap_or(&defaults);
        let limits: &Limits = &ops.limits;
        let duration = |text: &str, fallback: &str| {
            units::parse_duration(text)
                .or_else(|_| units::parse_duration(fallback))
                .unwrap_or(Duration::from_hours(24))
        };
        let fallback = Limits::default();
        Self {
            snapshot_age: duration(&limits.snapshot_age, &fallback.snapshot_age),
            verified_age: duration(&limits.verified_age, &fallback.verified_age),
            certificate: duration(&limits.certificate, &fallback.certificate),
            disk_free: units::parse_free_space(&limits.disk_free)
                .unwrap_or(FreeSpace::Percent(10.0)),
            remind_every: duration(&ops.remind_every, &defaults.remind_every),
        }
    }
}

// --- containers ------------------------------------------------------------

/// Containers the bundle should run and do not, or that are unhealthy or
/// were restarted since `restarts_before` (each container's restart count
/// at the previous pass).
pub fn containers(
    desired: &DesiredState,
    observed: &[ObservedContainer],
    restarts_before: &std::collections::BTreeMap<String, i64>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for spec in &desired.containers {
        let name = &spec.name;
        let Some(c) = observed.iter().find(|c| &c.name == name) else {
            out.push(Finding::new(
                "container-missing",
                name,
                Severity::Critical,
                format!("the container `{name}` of {} does not exist", spec.service),
                "run `voisin deploy` to create it again",
            ));
            continue;
        };
        if !c.state.running {
            out.push(Finding::new(
                "container-down",
                name,
                Severity::Critical,
                format!(
                    "the container `{name}` of {} is {} (exit code {})",
                    spec.service, c.state.status, c.state.exit_code
                ),
                format!(
                    "see `voisin logs {}`, then `voisin deploy` starts it again",
                    spec.service
                ),
            ));
        } else if c.state.health.as_deref() == Some("unhealthy") {
            out.push(Finding::new(
                "container-unhealthy",
                name,
                Severity::Critical,
                format!(
                    "the container `{name}` of {} fails its health check",
                    spec.service
                ),
                format!("see `voisin logs {}`", spec.service),
            ));
        }
        if let Some(before) = restarts_before.get(name)
            && c.state.restarts > *before
        {
            out.push(Finding::new(
                "container-restarted",
                name,
                Severity::Warning,
                format!(
                    "the engine restarted `{name}` {} time(s) since the last watch",
                    c.state.restarts - before
                ),
                format!("it crashed: see `voisin logs {}`", spec.service),
            ));
        }
    }
    out
}

// --- backups ---------------------------------------------------------------

/// The age of a service's newest snapshot and of its last proven restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupAge {
    /// The service (role).
    pub service: String,
    /// Seconds since its newest snapshot; none when it has none.
    pub last_snapshot_age_seconds: Option<i64>,
    /// Seconds since a restore of it was last proven; none when never.
    pub last_verified_restore_age_seconds: Option<i64>,
}

/// Services whose backups are missing or older than the policy allows,
/// or a repository that cannot be read (`error`).
pub fn backups(ages: &[BackupAge], error: Option<&str>, policy: &Policy) -> Vec<Finding> {
    if let Some(e) = error {
        return vec![Finding::new(
            "repository-unreadable",
            "repository",
            Severity::Critical,
            format!("the backup repository cannot be read: {e}"),
            "run `voisin doctor`; until it is fixed no backup is taken",
        )];
    }
    let mut out = Vec::new();
    let late = |age: Option<i64>, limit: Duration| {
        age.is_none_or(|a| u64::try_from(a).unwrap_or(0) > limit.as_secs())
    };
    for a in ages {
        let service = &a.service;
        if late(a.last_snapshot_age_seconds, policy.snapshot_age) {
            let message = match a.last_snapshot_age_seconds {
                None => format!("{service} has never been backed up"),
                Some(s) => format!("the last backup of {service} is {} old", human_age(s)),
            };
            out.push(Finding::new(
                "backup-late",
                service,
                Severity::Warning,
                message,
                format!(
                    "run `voisin backup {service}` and see why the nightly one did not (`voisin schedule show`)"
                ),
            ));
        }
        if late(a.last_verified_restore_age_seconds, policy.verified_age) {
            let message = match a.last_verified_restore_age_seconds {
                None => format!("no backup of {service} has been proven by a test restore"),
                Some(s) => format!(
                    "the last test restore of {service} was {} ago",
                    human_age(s)
                ),
            };
            out.push(Finding::new(
                "verify-late",
                service,
                Severity::Warning,
                message,
                "run `voisin backup verify`",
            ));
        }
    }
    out
}

/// An age as people read it, in the largest unit that keeps two digits:
/// `90 s`, `40 min`, `36 h`, `9 days`.
pub fn human_age(seconds: i64) -> String {
    match seconds.max(0) {
        s @ 0..=119 => format!("{s} s"),
        s @ 120..=7_199 => format!("{} min", s / 60),
        s @ 7_200..=172_799 => format!("{} h", s / 3_600),
        s => format!("{} days", s / 86_400),
    }
}

// --- the schedule ----------------------------------------------------------

/// Scheduled jobs (`voisin schedule`) whose last run failed. The watch's
/// own runs are left out: what made one fail is a finding of its own.
pub fn scheduled(
    runs: &std::collections::BTreeMap<String, crate::schedule::LastRun>,
) -> Vec<Finding> {
    runs.iter()
        .filter(|(job, _)| job.as_str() != "watch")
        .filter_map(|(job, run)| {
            let code = run.exit_code.filter(|c| *c != 0)?;
            let what = run.failed.as_deref().unwrap_or(job.as_str());
            Some(Finding::new(
                "scheduled-run-failed",
                job,
                Severity::Warning,
                format!(
                    "the scheduled {job} of {} failed: `voisin {what}` exited {code}",
                    run.started
                ),
                format!("see its output (`voisin schedule show`, the journal), then run `voisin {what}` by hand"),
            ))
        })
        .collect()
}

// --- certificates ----------------------------------------------------------

/// A certificate found in the proxy's store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The host names it covers.
    pub names: Vec<String>,
    /// When it stops being valid (Unix seconds).
    pub not_after: i64,
}

/// Reads the certificates of a Traefik ACME store (`acme.json`): each
/// resolver's `Certificates[]`, whose `certificate` is a base64 PEM chain;
/// the first certificate of the chain is the host's.
pub fn traefik_store(json: &[u8]) -> Result<Vec<Certificate>, String> {
    use base64::Engine as _;
    let store: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
    let mut out = Vec::new();
    for resolver in store.as_object().into_iter().flat_map(|o| o.values()) {
        for cert in resolver["Certificates"].as_array().into_iter().flatten() {
            let Some(b64) = cert["certificate"].as_str() else {
                continue;
            };
            let pem = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("a certificate is not base64: {e}"))?;
            let (_, pem) = x509_parser::pem::parse_x509_pem(&pem)
                .map_err(|e| format!("a certificate is not PEM: {e}"))?;
            let x509 = pem
                .parse_x509()
                .map_err(|e| format!("a certificate cannot be read: {e}"))?;
            let mut names: Vec<String> = cert["domain"]["main"]
                .as_str()
                .into_iter()
                .map(str::to_string)
                .collect();
            names.extend(
                cert["domain"]["sans"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_string)),
            );
            if names.is_empty() {
                names.push(x509.subject().to_string());
            }
            out.push(Certificate {
                names,
                not_after: x509.validity().not_after.timestamp(),
            });
        }
    }
    Ok(out)
}

/// Certificates that expired or expire within the policy's warning time,
/// and hosts the bundle serves that have none yet.
pub fn certificates(
    store: &[Certificate],
    hosts: &[String],
    now: i64,
    policy: &Policy,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let warn = i64::try_from(policy.certificate.as_secs()).unwrap_or(i64::MAX);
    for host in hosts {
        let covering = store
            .iter()
            .filter(|c| c.names.iter().any(|n| covers(n, host)))
            .max_by_key(|c| c.not_after);
        let Some(cert) = covering else {
            // Until the proxy asks for it (first requests after a deploy),
            // a host has no certificate: a warning, not an outage.
            out.push(Finding::new(
                "certificate-missing",
                host,
                Severity::Warning,
                format!("the proxy has no certificate for {host}"),
                "check that the host's DNS records point here (`voisin dns --check`) and see `voisin logs proxy`",
            ));
            continue;
        };
        let left = cert.not_after - now;
        if left <= 0 {
            out.push(Finding::new(
                "certificate-expired",
                host,
                Severity::Critical,
                format!("the certificate of {host} expired {} ago", human_age(-left)),
                "see `voisin logs proxy` for why it was not renewed; `voisin dns --check` for the records",
            ));
        } else if left < warn {
            out.push(Finding::new(
                "certificate-expiring",
                host,
                Severity::Warning,
                format!("the certificate of {host} expires in {}", human_age(left)),
                "the proxy renews 30 days ahead: see `voisin logs proxy` for why it did not",
            ));
        }
    }
    out
}

/// Whether a certificate name (maybe `*.domain`) covers `host`.
fn covers(name: &str, host: &str) -> bool {
    match name.strip_prefix("*.") {
        Some(domain) => host
            .split_once('.')
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(domain)),
        None => name.eq_ignore_ascii_case(host),
    }
}

// --- disks -----------------------------------------------------------------

/// Free space on one disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// What lives there: `volumes`, `repository`.
    pub what: String,
    /// A path on it.
    pub path: PathBuf,
    /// Bytes free for voisin.
    pub available: u64,
    /// Bytes in all.
    pub total: u64,
}

impl Disk {
    /// The free space of the disk that holds `path`, or would hold it: a
    /// repository's folder may not exist before the first backup.
    pub fn of(what: &str, path: &Path) -> std::io::Result<Self> {
        let existing = path.ancestors().find(|p| p.exists()).unwrap_or(path);
        let stat = nix::sys::statvfs::statvfs(existing).map_err(std::io::Error::from)?;
        let block = stat.fragment_size();
        Ok(Self {
            what: what.to_string(),
            path: path.to_path_buf(),
            available: stat.blocks_available().saturating_mul(block),
            total: stat.blocks().saturating_mul(block),
        })
    }
}

/// Disks whose free space is below the policy's.
pub fn disks(disks: &[Disk], policy: &Policy) -> Vec<Finding> {
    disks
        .iter()
        .filter(|d| policy.disk_free.short(d.available, d.total))
        .map(|d| {
            Finding::new(
                "disk-low",
                &d.what,
                Severity::Warning,
                format!(
                    "the disk of the {} ({}) has {} free of {}",
                    d.what,
                    d.path.display(),
                    units::human_bytes(d.available),
                    units::human_bytes(d.total)
                ),
                "free space (`docker system prune` removes unused images) or `voisin backup prune`",
            )
        })
        .collect()
}

// --- ports -----------------------------------------------------------------

/// Whether a TCP port answers within a few seconds.
pub async fn answers(address: std::net::SocketAddr) -> bool {
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(address),
    )
    .await
    .is_ok_and(|r| r.is_ok())
}

/// The mail ports this bundle publishes on the machine, with where to
/// knock: the published address, or loopback for every address.
pub fn mail_ports(desired: &DesiredState) -> Vec<(String, std::net::SocketAddr)> {
    let mut out = Vec::new();
    for spec in desired.containers.iter().filter(|c| c.service == "mail") {
        for port in spec.ports.iter().filter(|p| p.protocol == "tcp") {
            let ip = port
                .host_ip
                .as_deref()
                .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
                .filter(|ip| !ip.is_unspecified())
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
            out.push((spec.name.clone(), std::net::SocketAddr::new(ip, port.host)));
        }
    }
    out
}

/// A mail port that does not answer.
pub fn port_closed(container: &str, address: std::net::SocketAddr) -> Finding {
    Finding::new(
        "mail-port-closed",
        format!("{}/tcp", address.port()),
        Severity::Critical,
        format!(
            "nothing answers on port {} ({address}), published by `{container}`",
            address.port()
        ),
        "see `voisin status` and `voisin logs mail`; `voisin doctor` checks what holds the port",
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::of(None)
    }

    #[test]
    fn a_backup_older_than_the_limit_or_never_made_is_late() {
        let ages = [
            BackupAge {
                service: "board".into(),
                last_snapshot_age_seconds: Some(40 * 3_600),
                last_verified_restore_age_seconds: Some(3_600),
            },
            BackupAge {
                service: "cloud".into(),
                last_snapshot_age_seconds: Some(3_600),
                last_verified_restore_age_seconds: None,
            },
        ];
        let found = backups(&ages, None, &policy());
        let keys: Vec<String> = found.iter().map(Finding::key).collect();
        assert_eq!(keys, ["backup-late:board", "verify-late:cloud"]);
        assert!(
            found[0].message.contains("40 h old"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn certificates_close_to_expiry_warn_and_expired_ones_are_critical() {
        let now = 1_000_000_000;
        let store = [
            Certificate {
                names: vec!["pret.amis.org".into()],
                not_after: now + 10 * 86_400,
            },
            Certificate {
                names: vec!["*.amis.org".into()],
                not_after: now - 60,
            },
            Certificate {
                names: vec!["cloud.amis.org".into()],
                not_after: now + 60 * 86_400,
            },
        ];
        let hosts = [
            "pret.amis.org",
            "mail.amis.org",
            "cloud.amis.org",
            "x.other.org",
        ]
        .map(String::from);
        let found = certificates(&store, &hosts, now, &policy());
        let keys: Vec<(String, Severity)> = found.iter().map(|f| (f.key(), f.severity)).collect();
        assert_eq!(
            keys,
            [
                (
                    "certificate-expiring:pret.amis.org".into(),
                    Severity::Warning
                ),
                (
                    "certificate-expired:mail.amis.org".into(),
                    Severity::Critical
                ),
                ("certificate-missing:x.other.org".into(), Severity::Warning),
            ]
        );
    }

    #[test]
    fn a_disk_below_its_share_is_low() {
        let disk = |available| Disk {
            what: "volumes".into(),
            path: "/var/lib/docker".into(),
            available,
            total: 1_000,
        };
        assert!(disks(&[disk(100)], &policy()).is_empty());
        assert_eq!(disks(&[disk(99)], &policy())[0].code, "disk-low");
    }
}
