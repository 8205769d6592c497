//! The engine lock: a container named after the association, created from
//! the tool image and never started. The engine refuses a second container
//! of the same name, so taking the lock is atomic for every admin on every
//! machine; its labels say who holds it.

use std::collections::BTreeMap;

use crate::engine::create::KIND_LABEL;
use crate::engine::{ASSOCIATION_LABEL, Engine, EngineError};

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// What they run (`deploy`, `backup`…).
    pub command: String,
    /// Their user name.
    pub user: String,
    /// Their machine.
    pub host: String,
    /// Their process.
    pub pid: u32,
    /// When they took it (RFC 3339).
    pub started: String,
    /// Their machine's boot, to tell a dead process from a live one.
    boot: String,
    /// Their process's start time, against reused process numbers.
    pid_start: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`voisin {}` by {} on {} (process {}), since {}",
            self.command, self.user, self.host, self.pid, self.started
        )
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone else holds it.
    #[error("another voisin run holds the lock of this association: {holder}")]
    Held {
        /// Who.
        holder: Holder,
    },
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl LockError {
    /// What to do.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Held { .. } => Some(
                "wait for it to finish; if that run died on another machine, take the lock over with `--force-unlock`".into(),
            ),
            Self::Engine(e) => e.hint().map(str::to_string),
        }
    }
}

/// A held lock; released by [`Lock::release`].
#[derive(Debug)]
pub struct Lock {
    name: String,
    /// What the run whose dead lock this one took over was doing: its
    /// requests may still be in the engine's hands (see
    /// [`crate::backup::recover`]).
    pub took_over: Option<String>,
}

/// The lock's container name for an association.
pub fn name(slug: &str) -> String {
    format!("{slug}-voisin-lock")
}

impl Holder {
    fn me(command: &str) -> Self {
        let pid = std::process::id();
        Self {
            command: command.to_string(),
            user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| format!("uid {}", uid())),
            host: hostname(),
            pid,
            started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            boot: boot_id(),
            pid_start: process_start(pid).unwrap_or_default(),
        }
    }

    fn labels(&self, domain: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (ASSOCIATION_LABEL.to_string(), domain.to_string()),
            (KIND_LABEL.to_string(), "lock".to_string()),
            ("voisin.lock.command".to_string(), self.command.clone()),
            ("voisin.lock.user".to_string(), self.user.clone()),
            ("voisin.lock.host".to_string(), self.host.clone()),
            ("voisin.lock.pid".to_string(), self.pid.to_string()),
            ("voisin.lock.started".to_string(), self.started.clone()),
            ("voisin.lock.boot".to_string(), self.boot.clone()),
            ("voisin.lock.pid_start".to_string(), self.pid_start.clone()),
        ])
    }

    fn from_labels(labels: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| {
            labels
                .get(&format!("voisin.lock.{k}"))
                .cloned()
                .unwrap_or_default()
        };
        Self {
            command: get("command"),
            user: get("user"),
            host: get("host"),
            pid: get("pid").parse().unwrap_or(0),
            started: get("started"),
            boot: get("boot"),
            pid_start: get("pid_start"),
        }
    }

    /// True when the holder ran on this machine, since its last boot, and
    /// its process is gone (or the number now belongs to another process).
    fn is_dead_here(&self) -> bool {
        if self.host != hostname() || self.boot.is_empty() || self.boot != boot_id() {
            return false;
        }
        match process_start(self.pid) {
            None => true,
            Some(start) => start != self.pid_start,
        }
    }
}

/// Takes the association's lock for `command`. A lock left by a run that
/// died on this machine is taken over (said through `note`); one held
/// elsewhere is only taken over with `force`.
pub async fn acquire(
    engine: &Engine,
    slug: &str,
    domain: &str,
    command: &str,
    force: bool,
    note: &dyn Fn(&str),
) -> Result<Lock, LockError> {
    let name = name(slug);
    let me = Holder::me(command);
    let mut took_over = None;
    for _ in 0..3 {
        let body = crate::engine::create::marker(&me.labels(domain));
        match engine.create_container(&name, body, &[]).await {
            Ok(_) => return Ok(Lock { name, took_over }),
            Err(e) if e.is_conflict() => {
                let Some(held) = engine.container(&name).await? else {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    // Released between our try and our look: try again.
                    continue;
                };
                let holder = Holder::from_labels(&held.labels);
                if holder.is_dead_here() {
                    note(&format!(
                        "taking over the lock left by {holder}, which is no longer running"
                    ));
                } else if force {
                    note(&format!(
                        "taking over the lock held by {holder} (--force-unlock)"
                    ));
                } else {
                    return Err(LockError::Held { holder });
                }
                took_over = Some(holder.command);
                engine.remove(&name).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(LockError::Engine(EngineError::Failed(
        "the lock kept changing hands; try again".into(),
    )))
}

/// Whether a lock container's labels name a run that died on this
/// machine: the lock is stale and what that run left is owed.
pub fn is_stale(labels: &BTreeMap<String, String>) -> bool {
    Holder::from_labels(labels).is_dead_here()
}

/// Who holds the association's lock, if anyone.
pub async fn holder(engine: &Engine, slug: &str) -> Result<Option<Holder>, EngineError> {
    Ok(engine
        .container(&name(slug))
        .await?
        .map(|c| Holder::from_labels(&c.labels)))
}

impl Lock {
    /// Gives the lock back.
    pub async fn release(self, engine: &Engine) -> Result<(), EngineError> {
        engine.remove(&self.name).await
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "unknown".into(), |h| h.trim().to_string())
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().to_string())
        .unwrap_or_default()
}

fn uid() -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
}

/// A process's start time (field 22 of `/proc/PID/stat`), when it exists.
fn process_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: count from the last `)`.
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_finished_one_is_dead() {
        let me = Holder::me("deploy");
        assert!(!me.is_dead_here(), "a live process is not dead");
        let mut child = std::process::Command::new("true").spawn().expect("spawns");
        let pid = child.id();
        let start = process_start(pid).unwrap_or_default();
        child.wait().expect("waits");
        let gone = Holder {
            pid,
            pid_start: start,
            ..Holder::me("deploy")
        };
        assert!(gone.is_dead_here(), "a finished process is dead");
        let elsewhere = Holder {
            host: "another-machine".into(),
            ..gone
        };
        assert!(
            !elsewhere.is_dead_here(),
            "a process on another machine cannot be judged"
        );
    }
}
