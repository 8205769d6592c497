//! Upgrades: moving a service to a newer version of its catalog entry,
//! with a way back.
//!
//! The deploy record keeps the entry each service was deployed from
//! ([`Deployed`]). When the catalog's entry has another version (or other
//! images) than the recorded one, and the service keeps data or the entry
//! declares upgrade steps, the service is *pinned*: every command renders
//! it from the recorded entry ([`pinned_catalog`]), so `deploy` never
//! changes its version; only `voisin upgrade` does, like this:
//!
//! 1. a safety snapshot of the service (no snapshot, no upgrade);
//! 2. the journal ([`journal`]) written on the engine: service, versions,
//!    snapshot;
//! 3. the new version deployed by the ordinary apply (health awaited,
//!    after-start steps), then the entry's upgrade steps and checks;
//! 4. the record updated (the commit point), then the journal removed.
//!
//! Any failure, Ctrl-C or a kill between 2 and 4 ends in [`rollback`]: the
//! service's containers stopped, its volumes put back from the snapshot,
//! the old version's containers put back by the ordinary plan and apply,
//! and its dumps loaded. A journal found by the next `upgrade` or `deploy`
//! is finished the same way, or, when the record already holds the new
//! entry, only removed.
//!
//! The version rules ([`matches`], [`compare`], [`path_for`]) are pure and
//! unit-tested below.

pub mod journal;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use rustic_core::repofile::SnapshotFile;

use crate::backup::repo::Repo;
use crate::backup::{self, BackupError};
use crate::catalog::{Catalog, Entry};
use crate::deploy::record::{Deployed, Record};
use crate::deploy::{self, DeployError};
use crate::engine::create::KIND_LABEL;
use crate::engine::{Engine, EngineError};
use crate::progress::Reporter;
use crate::render::DesiredState;
use crate::render::state::{ServiceEntry, UpgradePath};

/// Why an upgrade did not happen, or failed.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The upgrade is not allowed as asked.
    #[error("{message}")]
    Refused {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: String,
    },
    /// The engine does not run what the manifest says yet.
    #[error("the engine does not run what the manifest says: {changes}")]
    NotConverged {
        /// The first changes `plan` shows.
        changes: String,
    },
    /// The safety snapshot failed: nothing was changed.
    #[error(
        "the safety snapshot of `{service}` failed, so it was not upgraded; nothing was changed"
    )]
    Snapshot {
        /// The service.
        service: String,
        /// Why.
        #[source]
        cause: Box<BackupError>,
    },
    /// The new version failed, and the old one is back with its data.
    #[error(
        "upgrading `{service}` {change} failed, and it was rolled back: {back}\n  what failed: {cause}{logs}"
    )]
    RolledBack {
        /// The service.
        service: String,
        /// `from ENTRY VERSION to ENTRY VERSION`.
        change: String,
        /// What runs again, and where its data came back from.
        back: String,
        /// What failed.
        cause: String,
        /// The end of the new containers' logs.
        logs: String,
    },
    /// Interrupted (Ctrl-C), and rolled back.
    #[error("interrupted; `{service}` was rolled back to {from}{data}")]
    Interrupted {
        /// The service.
        service: String,
        /// The entry and version it runs again.
        from: String,
        /// Where its data came back from.
        data: String,
    },
    /// The rollback itself failed: the journal stays for the next run.
    #[error("upgrading `{service}` failed ({cause}), and so did putting {from} back: {rollback}")]
    RollbackFailed {
        /// The service.
        service: String,
        /// The entry and version to put back.
        from: String,
        /// What failed first.
        cause: String,
        /// Why the rollback failed.
        rollback: String,
        /// The safety snapshot, when there is one.
        snapshot: Option<String>,
    },
    /// A backup or restore step.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// The apply of a plan.
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// The engine.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl UpgradeError {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Refused { hint, .. } => Some(hint.clone()),
            Self::NotConverged { .. } => Some(
                "run `voisin deploy` first (it keeps services that wait for an upgrade on their deployed version), then `voisin upgrade`".into(),
            ),
            Self::Snapshot { cause, .. } => cause.hint(),
            Self::RolledBack { .. } => Some(
                "read the log lines above; fix the cause (or wait for a fixed catalog entry) and run `voisin upgrade` again".into(),
            ),
            Self::RollbackFailed { snapshot, .. } => Some(match snapshot {
                Some(id) => {
                    let id = id.get(..8).unwrap_or(id);
                    format!(
                    "run `voisin upgrade` or `voisin deploy` again: both finish the rollback from the journal; the data before the upgrade is in snapshot {id} (`voisin restore {id}`)"
                    )
                }
                None => "run `voisin upgrade` or `voisin deploy` again: both finish the rollback from the journal".into(),
            }),
            Self::Backup(e) => e.hint(),
            Self::Deploy(e) => e.hint(),
            Self::Engine(e) => e.hint().map(str::to_string),
            Self::Interrupted { .. } => None,
        }
    }
}

/// A service whose catalog entry moved on from what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The service (role).
    pub service: String,
    /// The entry's name.
    pub entry: String,
    /// The deployed version.
    pub deployed: String,
    /// The catalog's version.
    pub available: String,
    /// Whether `deploy` keeps it on the deployed version.
    pub pinned: bool,
}

impl Pending {
    /// `entry VERSION` as deployed.
    pub fn from_label(&self) -> String {
        format!("{} {}", self.entry, self.deployed)
    }
    /// `entry VERSION` as the catalog has it.
    pub fn to_label(&self) -> String {
        format!("{} {}", self.entry, self.available)
    }
}

/// The images an entry runs, by container.
fn images(entry: &Entry) -> BTreeMap<&str, &str> {
    entry
        .containers
        .iter()
        .map(|(n, c)| (n.as_str(), c.image.as_str()))
        .collect()
}

/// The services whose catalog entry has another version or other images
/// than the recorded one. A service keeps data when its recorded entry
/// backs something up; such a service, or one whose new entry declares
/// upgrade steps, is pinned to its recorded entry.
pub fn pending(catalog: &Catalog, record: &Record) -> Vec<Pending> {
    record
        .services
        .iter()
        .filter_map(|(service, deployed)| {
            let new = catalog.get(&deployed.entry.name)?;
            let old = &deployed.entry;
            if new.version == old.version && images(new) == images(old) {
                return None;
            }
            Some(Pending {
                service: service.clone(),
                entry: new.name.clone(),
                deployed: old.version.clone(),
                available: new.version.clone(),
                pinned: old.backup.is_some() || !new.upgrades.is_empty(),
            })
        })
        .collect()
}

/// `catalog` with the recorded entries of `services` in place of its own,
/// templates included.
pub fn pinned_catalog<'s>(
    catalog: &Catalog,
    record: &Record,
    services: impl IntoIterator<Item = &'s str>,
) -> Catalog {
    let mut pinned = catalog.clone();
    for service in services {
        let Some(d) = record.services.get(service) else {
            continue;
        };
        let name = &d.entry.name;
        let prefix = format!("{name}/");
        pinned.templates.retain(|t| !t.starts_with(&prefix));
        pinned
            .template_sources
            .retain(|t, _| !t.starts_with(&prefix));
        for (path, text) in &d.templates {
            pinned.templates.insert(path.clone());
            pinned.template_sources.insert(path.clone(), text.clone());
        }
        pinned.entries.insert(name.clone(), d.entry.clone());
    }
    pinned
}

/// The catalog every command but `upgrade` renders from: `catalog`, with
/// the pinned services on their recorded entries; and those services.
pub fn effective_catalog(catalog: &Catalog, record: &Record) -> (Catalog, Vec<Pending>) {
    let waiting: Vec<Pending> = pending(catalog, record)
        .into_iter()
        .filter(|p| p.pinned)
        .collect();
    let pinned = pinned_catalog(catalog, record, waiting.iter().map(|p| p.service.as_str()));
    (pinned, waiting)
}

/// What the record should say each service of `desired` runs, taken from
/// the catalog it was rendered from.
pub fn deployed(catalog: &Catalog, desired: &DesiredState) -> BTreeMap<String, Deployed> {
    desired
        .entries
        .iter()
        .filter_map(|e| {
            let entry = catalog.get(&e.entry)?.clone();
            let prefix = format!("{}/", e.entry);
            let templates = catalog
                .template_sources
                .iter()
                .filter(|(p, _)| p.starts_with(&prefix))
                .map(|(p, t)| (p.clone(), t.clone()))
                .collect();
            Some((e.service.clone(), Deployed { entry, templates }))
        })
        .collect()
}

/// Writes into the record what each service runs, when it says otherwise.
pub async fn record_deployed(
    engine: &Engine,
    desired: &DesiredState,
    services: BTreeMap<String, Deployed>,
) -> Result<(), EngineError> {
    let mut record = deploy::record::read(engine, &desired.association).await?;
    if record.services == services {
        return Ok(());
    }
    record.services = services;
    deploy::record::write(engine, &desired.association, &desired.domain, &record).await
}

/// Whether a deployed version is one an upgrade path starts from: `*`, or
/// the path's dot-separated parts are the first parts of the version.
pub fn matches(from: &str, version: &str) -> bool {
    let from = from.trim();
    if from == "*" {
        return true;
    }
    let wanted: Vec<&str> = from.split('.').collect();
    let have: Vec<&str> = version.trim().split('.').collect();
    wanted.len() <= have.len() && wanted.iter().zip(&have).all(|(a, b)| a == b)
}

/// Orders two versions part by part, numerically where both parts are
/// numbers (`9` before `10`), else as text; a missing part counts as `0`.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or("0"),
            b.get(i).copied().unwrap_or("0"),
        );
        let order = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

/// The upgrade path from `deployed` to the entry `to`, when it may be
/// taken: `None` when the entry declares no path (images only, no steps),
/// a refusal when it goes backwards or skips a version the entry does not
/// start from.
pub fn path_for<'e>(
    pending: &Pending,
    to: &'e ServiceEntry,
) -> Result<Option<&'e UpgradePath>, UpgradeError> {
    if compare(&pending.deployed, &pending.available) == Ordering::Greater {
        return Err(UpgradeError::Refused {
            message: format!(
                "`{}` runs {}, newer than the catalog's {}: voisin does not downgrade",
                pending.service,
                pending.from_label(),
                pending.to_label()
            ),
            hint: "use the catalog it was deployed from; to go back to older data, restore a snapshot (`voisin backup list`)".into(),
        });
    }
    if to.upgrades.is_empty() {
        return Ok(None);
    }
    if let Some(path) = to
        .upgrades
        .iter()
        .find(|p| matches(&p.from, &pending.deployed))
    {
        return Ok(Some(path));
    }
    let from: Vec<String> = to
        .upgrades
        .iter()
        .map(|p| format!("`{}`", p.from))
        .collect();
    Err(UpgradeError::Refused {
        message: format!(
            "`{}` cannot go from {} to {} directly: {} {} upgrades only from version {}",
            pending.service,
            pending.from_label(),
            pending.to_label(),
            pending.entry,
            pending.available,
            from.join(" or ")
        ),
        hint: format!(
            "go through {} {} first: upgrade with a catalog that has that version, then with this one",
            pending.entry,
            to.upgrades
                .iter()
                .map(|p| p.from.as_str())
                .filter(|f| *f != "*")
                .max_by(|a, b| compare(a, b))
                .unwrap_or("an intermediate version")
        ),
    })
}

/// The end of the logs of the service's containers, for an error message.
pub async fn logs_of(engine: &Engine, desired: &DesiredState, service: &str) -> String {
    let mut text = String::new();
    for spec in desired.containers.iter().filter(|c| c.service == service) {
        if engine.container(&spec.name).await.ok().flatten().is_none() {
            continue;
        }
        let lines = deploy::health::last_lines(engine, &spec.name).await;
        let _ = write!(text, "\n  log of `{}`{lines}", spec.name);
    }
    text
}

/// Moves `service` to `new` (its containers by the ordinary plan and apply),
/// then runs the upgrade path's steps and checks. Changes nothing on the
/// way back: the caller rolls back when this fails.
pub async fn switch(
    engine: &Engine,
    new: &DesiredState,
    path: Option<&UpgradePath>,
    reporter: &Arc<dyn Reporter>,
) -> Result<(), UpgradeError> {
    let observed = deploy::observe(engine, new).await?;
    let plan = crate::plan::plan(new, &observed);
    if !plan.is_empty() {
        deploy::apply(engine, new, &plan, reporter, None).await?;
    }
    if let Some(path) = path {
        let places = backup::Places::one(&Arc::new(engine.clone()));
        backup::run_steps(&places, &path.steps, reporter).await?;
        backup::run_steps(&places, &path.checks, reporter).await?;
    }
    Ok(())
}

/// Puts `service` back as `old` says, with the data `snapshot` holds: its
/// containers stopped, its volumes put back, the old containers put back
/// by the ordinary plan and apply (which awaits their health), its dumps
/// loaded. Safe to run again after an interruption.
pub async fn rollback(
    engine: &Arc<Engine>,
    old: &DesiredState,
    service: &str,
    snapshot: Option<(&Arc<Repo>, &SnapshotFile)>,
    reporter: &Arc<dyn Reporter>,
) -> Result<(), UpgradeError> {
    reporter.note(&format!("rolling `{service}` back"));
    // Nothing of the service may run while its data is put back: neither
    // the new version (which would write in the new format) nor a
    // half-replaced one.
    for c in engine.containers(&old.domain).await? {
        if c.labels.get("voisin.service").is_some_and(|s| s == service)
            && !c.labels.contains_key(KIND_LABEL)
        {
            let base = c
                .name
                .trim_end_matches(crate::plan::NEXT_SUFFIX)
                .trim_end_matches(crate::plan::OLD_SUFFIX);
            let grace = old
                .containers
                .iter()
                .find(|s| s.name == base)
                .map_or(10, |s| s.stop_grace_seconds);
            engine.stop(&c.name, grace).await?;
        }
    }
    let backed_up = old.backups.iter().find(|b| b.service == service);
    if let (Some((repo, snap)), Some(b)) = (snapshot, backed_up) {
        backup::restore_volumes(engine, old, b, repo, snap, reporter).await?;
    }
    let observed = deploy::observe(engine, old).await?;
    let plan = crate::plan::plan(old, &observed);
    if !plan.is_empty() {
        deploy::apply(engine, old, &plan, reporter, None).await?;
    }
    if let (Some((repo, snap)), Some(b)) = (snapshot, backed_up) {
        backup::restore_dumps(&backup::Places::one(engine), b, repo, snap, reporter).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_matches_the_versions_it_names_by_their_first_parts() {
        assert!(matches("29", "29"));
        assert!(matches("29", "29.0.3"));
        assert!(matches("29.0", "29.0.3"));
        assert!(matches("*", "1"));
        assert!(!matches("29", "28.0.9"));
        assert!(!matches("29", "290"));
        assert!(!matches("29.0.3", "29"));
    }

    #[test]
    fn versions_compare_part_by_part_numerically() {
        assert_eq!(compare("9", "10"), Ordering::Less);
        assert_eq!(compare("29.0.3", "29.0.10"), Ordering::Less);
        assert_eq!(compare("30", "29.9"), Ordering::Greater);
        assert_eq!(compare("2", "2.0"), Ordering::Equal);
        assert_eq!(compare("1.0-rc", "1.0-rc"), Ordering::Equal);
    }

    fn pending(deployed: &str, available: &str) -> Pending {
        Pending {
            service: "cloud".into(),
            entry: "nextcloud".into(),
            deployed: deployed.into(),
            available: available.into(),
            pinned: true,
        }
    }

    fn entry(froms: &[&str]) -> ServiceEntry {
        ServiceEntry {
            service: "cloud".into(),
            entry: "nextcloud".into(),
            version: "30".into(),
            upgrades: froms
                .iter()
                .map(|f| UpgradePath {
                    from: (*f).into(),
                    steps: Vec::new(),
                    checks: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn skipping_a_major_version_is_refused_naming_the_one_to_go_through() {
        let e = entry(&["29"]);
        let err = path_for(&pending("28.0.4", "30.0.1"), &e).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("only from version `29`"), "{text}");
        assert!(
            err.hint()
                .unwrap_or_default()
                .contains("go through nextcloud 29"),
            "{err:?}"
        );
        assert!(path_for(&pending("29.0.7", "30.0.1"), &e).is_ok());
    }

    #[test]
    fn going_back_to_an_older_version_is_refused() {
        let err = path_for(&pending("31", "30"), &entry(&[])).expect_err("refused");
        assert!(err.to_string().contains("does not downgrade"), "{err}");
    }

    #[test]
    fn an_entry_without_paths_upgrades_from_any_earlier_version_without_steps() {
        assert_eq!(
            path_for(&pending("1", "5"), &entry(&[])).expect("allowed"),
            None
        );
    }
}
