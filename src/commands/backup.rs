//! `voisin backup [list|verify|prune]`, `voisin restore` and the hidden
//! `voisin agent`: parse, connect, hold the lock, call [`crate::backup`],
//! print what happened.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backup::repo::{self, Location, Repo, Snapshot};
use crate::backup::swarm::Ground;
use crate::backup::{self, BackupError, Verified, VerifiedRestore};
use crate::cli::{
    AgentCommand, BackupArgs, BackupCommand, Format, GlobalArgs, PruneArgs, RestoreArgs, VerifyArgs,
};
use crate::deploy::lock;
use crate::engine::Engine;
use crate::progress::Reporter;
use crate::render::DesiredState;
use crate::watch::human_age;
use crate::{Outcome, units};

use super::deploy::{Connected, connect};

/// Where the repository is and its password, from the manifest.
pub(super) fn repository(bundle: &super::Bundle) -> Result<(Location, String), BackupError> {
    let backup = bundle
        .manifest
        .backup
        .as_ref()
        .ok_or(repo::RepoError::NotConfigured)?;
    let base = bundle
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let location = Location::parse(&backup.repository, &base)?;
    let password = repo::password(backup, &base)?;
    Ok((location, password))
}

fn state_dir(bundle: &super::Bundle) -> PathBuf {
    crate::secrets::state_dir(&bundle.path)
}

pub(super) async fn open(
    location: &Location,
    password: &str,
    create: bool,
    reporter: &Arc<dyn Reporter>,
) -> Result<Arc<Repo>, BackupError> {
    let location = location.clone();
    let password = password.to_string();
    let bars = repo::Bars(reporter.clone());
    tokio::task::spawn_blocking(move || {
        repo::open_indexed(&location, &password, create, Some(bars))
    })
    .await
    .map_err(|e| BackupError::Local(e.to_string()))?
    .map(Arc::new)
    .map_err(BackupError::from)
}

/// Runs `work` under the association's lock, after settling what earlier
/// interrupted runs left; Ctrl-C settles again, releases, and exits 130.
async fn locked<T>(
    engine: &Arc<Engine>,
    desired: &DesiredState,
    reporter: &Arc<dyn Reporter>,
    what: &str,
    force_unlock: bool,
    work: impl Future<Output = Result<T, BackupError>>,
) -> anyhow::Result<T> {
    crate::deploy::ensure_tool_image(engine).await?;
    let note = |s: &str| reporter.note(s);
    let held = lock::acquire(
        engine,
        &desired.association,
        &desired.domain,
        what,
        force_unlock,
        &note,
    )
    .await?;
    let result = async {
        backup::recover(engine, desired, reporter, held.took_over.as_deref()).await?;
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => {
                reporter.note("interrupted: switching maintenance mode off and cleaning up");
                // Our own requests may still be in the engine's hands.
                backup::recover(engine, desired, reporter, Some(what)).await?;
                Err(BackupError::Interrupted)
            }
        }
    }
    .await;
    held.release(engine).await?;
    Ok(result?)
}

/// `voisin backup …`.
pub fn backup(global: &GlobalArgs, args: &BackupArgs) -> anyhow::Result<Outcome> {
    match &args.command {
        Some(BackupCommand::List) => list(global),
        Some(BackupCommand::Verify(v)) => verify(global, v, args),
        Some(BackupCommand::Prune(p)) => prune(global, p, args),
        None => take(global, args),
    }
}

/// Where the work runs: the engine, or the swarm it manages when the
/// manifest says so.
fn connect_ground(global: &GlobalArgs) -> anyhow::Result<Result<(Connected, Ground), Outcome>> {
    let c = match connect(global)? {
        Ok(c) => c,
        Err(outcome) => return Ok(Err(outcome)),
    };
    let Some(section) = super::swarm::section(&c) else {
        let engine = Arc::new(c.engine.clone());
        return Ok(Ok((c, Ground::One(engine))));
    };
    let base = super::swarm::base(&c);
    let swarm = c.runtime.block_on(crate::deploy::swarm::connect(
        c.engine.clone(),
        &section,
        &base,
        &c.reporter,
    ))?;
    Ok(Ok((c, Ground::Swarm(swarm))))
}

fn take(global: &GlobalArgs, args: &BackupArgs) -> anyhow::Result<Outcome> {
    let (
        Connected {
            bundle,
            desired,
            runtime,
            reporter,
            ..
        },
        ground,
    ) = match connect_ground(global)? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    if args.force_unlock {
        super::deploy::confirm_unlock(args.yes)?;
    }
    let services = backup::chosen(&desired, &args.services)?;
    let (location, password) = repository(&bundle)?;
    let _settle = Settle(&location);
    let results = runtime.block_on(locked(
        ground.lock_engine(),
        &desired,
        &reporter,
        "backup",
        args.force_unlock,
        async {
            Box::pin(ground.recover_nodes(&desired, &reporter)).await?;
            let repo = open(&location, &password, true, &reporter).await?;
            let stale = backup::forget_incomplete_of(&repo, &desired.domain).await?;
            if stale > 0 {
                reporter.note(&format!(
                    "removed {stale} snapshot(s) that interrupted backups left half-written"
                ));
            }
            let mut results = Vec::new();
            for s in &services {
                let r = match ground.places(&desired, Some(s)).await {
                    Ok(places) => {
                        backup::backup_service(&places, &desired, s, &repo, "backup", &reporter)
                            .await
                    }
                    Err(e) => Err(e),
                };
                results.push((s.service.clone(), r));
            }
            Ok(results)
        },
    ))?;
    let mut out = std::io::stdout().lock();
    let mut failed = Vec::new();
    let mut json = Vec::new();
    for (service, r) in results {
        match r {
            Ok(t) => {
                if global.format == Format::Json {
                    json.push(serde_json::json!({"service": service, "ok": true, "snapshot": t.snapshot, "seconds": t.seconds}));
                } else if !global.quiet {
                    writeln!(
                        out,
                        "{service}: snapshot {} — {} new, {} in all, {:.1} s",
                        t.snapshot.short_id,
                        units::human_bytes(t.snapshot.added_bytes),
                        units::human_bytes(t.snapshot.total_bytes),
                        t.seconds
                    )?;
                }
            }
            Err(e) => {
                if global.format == Format::Json {
                    json.push(serde_json::json!({"service": service, "ok": false, "error": e.to_string()}));
                }
                failed.push(e);
            }
        }
    }
    if global.format == Format::Json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"version": 1, "services": json}))?
        )?;
    }
    drop(out);
    if let Some(first) = failed.into_iter().next() {
        return Err(first.into());
    }
    Ok(Outcome::Success)
}

fn list(global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let bundle = match super::load_bundle(global)? {
        Ok(b) => b,
        Err(outcome) => return Ok(outcome),
    };
    let (location, password) = repository(&bundle)?;
    let _settle = Settle(&location);
    let repo = repo::open(&location, &password, false)?;
    let snapshots: Vec<Snapshot> = repo::snapshots(&repo, &bundle.manifest.association.domain)?
        .iter()
        .map(Snapshot::from_file)
        .collect();
    let verified = Verified::read(&state_dir(&bundle));
    let mut out = std::io::stdout().lock();
    if global.format == Format::Json {
        let json = serde_json::json!({"version": 1, "repository": location.shown, "snapshots": snapshots, "verified": verified.services});
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(Outcome::Success);
    }
    if snapshots.is_empty() {
        writeln!(
            out,
            "no snapshot yet in {} (run `voisin backup`)",
            location.shown
        )?;
        return Ok(Outcome::Success);
    }
    let now = chrono::Utc::now().timestamp();
    writeln!(
        out,
        "{:<10} {:<20} {:<10} {:>10} {:>10}",
        "SNAPSHOT", "TAKEN", "SERVICE", "SIZE", "NEW"
    )?;
    for s in &snapshots {
        let mut marks = Vec::new();
        if s.reason != "backup" {
            marks.push(s.reason.clone());
        }
        if verified
            .services
            .get(&s.service)
            .is_some_and(|v| v.snapshot == s.id)
        {
            marks.push("verified".into());
        }
        writeln!(
            out,
            "{:<10} {:<20} {:<10} {:>10} {:>10}  {}",
            s.short_id,
            format!("{} ago", human_age(now - s.unix)),
            s.service,
            units::human_bytes(s.total_bytes),
            units::human_bytes(s.added_bytes),
            marks.join(", ")
        )?;
    }
    Ok(Outcome::Success)
}

fn verify(global: &GlobalArgs, args: &VerifyArgs, common: &BackupArgs) -> anyhow::Result<Outcome> {
    let Connected {
        bundle,
        desired,
        engine,
        runtime,
        reporter,
    } = match connect(global)? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    let subset = match &args.read_data_subset {
        None => rustic_core::ReadSubsetOption::All,
        Some(text) => text.parse().map_err(|_| {
            crate::UsageError::new(
                format!("`--read-data-subset {text}` is not a share of the data"),
                Some("give a percentage like `10%`".into()),
            )
        })?,
    };
    let (location, password) = repository(&bundle)?;
    let _settle = Settle(&location);
    let engine = Arc::new(engine);
    let dir = state_dir(&bundle);
    let report = runtime.block_on(locked(
        &engine,
        &desired,
        &reporter,
        "verify",
        common.force_unlock,
        async {
            let repo = open(&location, &password, false, &reporter).await?;
            reporter.note("checking the repository");
            let check_repo = repo.clone();
            let check = tokio::task::spawn_blocking(move || backup::check(&check_repo, subset))
                .await
                .unwrap_or_else(|e| vec![format!("the repository check stopped: {e}")]);
            let snapshots = backup::snapshots_of(&repo, &desired.domain).await?;
            reporter.note("reading back every snapshot's data");
            let damage_repo = repo.clone();
            let all = snapshots.clone();
            let damaged =
                tokio::task::spawn_blocking(move || backup::damaged_snapshots(&damage_repo, &all))
                    .await
                    .map_err(|e| BackupError::Local(e.to_string()))?;
            let bad: BTreeSet<String> = damaged
                .iter()
                .map(|(s, _)| s.id.to_hex().to_string())
                .collect();
            let mut restores = Vec::new();
            for service in &desired.backups {
                let Ok(latest) = backup::pick(&snapshots, &service.service, None) else {
                    continue;
                };
                if bad.contains(latest.id.to_hex().as_str()) {
                    continue;
                }
                reporter.note(&format!("test restore of {}", service.service));
                let t = backup::test_restore(&engine, &desired, service, &repo, &latest).await?;
                restores.push(t);
            }
            Ok((check, damaged, restores))
        },
    ))?;
    let (check, damaged, restores) = report;
    let mut verified = Verified::read(&dir);
    let now = chrono::Utc::now().timestamp();
    for t in restores.iter().filter(|t| t.differences.is_empty()) {
        verified.services.insert(
            t.service.clone(),
            VerifiedRestore {
                snapshot: t.snapshot.clone(),
                at: now,
            },
        );
    }
    verified.write(&dir)?;
    let ok =
        check.is_empty() && damaged.is_empty() && restores.iter().all(|t| t.differences.is_empty());
    print_verify(global, ok, &check, &damaged, &restores)?;
    if ok {
        Ok(Outcome::Success)
    } else {
        writeln!(
            std::io::stderr().lock(),
            "error: the backups are damaged (above); undamaged snapshots still restore\n  hint: run `voisin backup` now for a fresh snapshot, then `voisin backup prune` to drop the damaged data"
        )?;
        Ok(Outcome::Failed)
    }
}

fn prune(global: &GlobalArgs, args: &PruneArgs, common: &BackupArgs) -> anyhow::Result<Outcome> {
    let Connected {
        bundle,
        desired,
        engine,
        runtime,
        reporter,
    } = match connect(global)? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    let (location, password) = repository(&bundle)?;
    let _settle = Settle(&location);
    let policy = bundle
        .manifest
        .backup
        .as_ref()
        .map(|b| b.keep.clone())
        .unwrap_or_default();
    let verified = Verified::read(&state_dir(&bundle));
    let engine = Arc::new(engine);
    let dry_run = args.dry_run;
    let removed = runtime.block_on(locked(
        &engine,
        &desired,
        &reporter,
        "prune",
        common.force_unlock,
        async {
            let repo = open(&location, &password, false, &reporter).await?;
            let snapshots = backup::snapshots_of(&repo, &desired.domain).await?;
            let forget = to_forget(&snapshots, &policy, &verified);
            if dry_run {
                return Ok(forget);
            }
            let prune_repo = repo.clone();
            let ids: Vec<_> = forget.iter().map(|s| s.id).collect();
            let domain = desired.domain.clone();
            tokio::task::spawn_blocking(move || -> Result<(), BackupError> {
                if !ids.is_empty() {
                    prune_repo
                        .delete_snapshots(&ids)
                        .map_err(|e| BackupError::Local(e.to_string()))?;
                }
                backup::forget_incomplete(&prune_repo, &domain)?;
                let opts = rustic_core::PruneOptions::default();
                let plan = prune_repo
                    .prune_plan(&opts)
                    .map_err(|e| BackupError::Local(e.to_string()))?;
                prune_repo
                    .prune(&opts, plan)
                    .map_err(|e| BackupError::Local(e.to_string()))
            })
            .await
            .map_err(|e| BackupError::Local(e.to_string()))??;
            Ok(forget)
        },
    ))?;
    let mut out = std::io::stdout().lock();
    let shown: Vec<Snapshot> = removed.iter().map(Snapshot::from_file).collect();
    if global.format == Format::Json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"version": 1, "dry_run": dry_run, "removed": shown})
            )?
        )?;
    } else if !global.quiet {
        let verb = if dry_run { "would remove" } else { "removed" };
        if shown.is_empty() {
            writeln!(
                out,
                "the keep policy wants every snapshot: nothing to remove"
            )?;
        }
        for s in &shown {
            writeln!(
                out,
                "{verb} snapshot {} of {} ({})",
                s.short_id, s.service, s.time
            )?;
        }
    }
    Ok(Outcome::Success)
}

/// `voisin restore [SNAPSHOT] [SERVICE...]`.
pub fn restore(global: &GlobalArgs, args: &RestoreArgs) -> anyhow::Result<Outcome> {
    let (
        Connected {
            bundle,
            desired,
            runtime,
            reporter,
            ..
        },
        ground,
    ) = match connect_ground(global)? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    let known: Vec<&str> = desired.backups.iter().map(|b| b.service.as_str()).collect();
    let (wanted, names): (Option<String>, Vec<String>) = match args.what.split_first() {
        Some((first, rest)) if !known.contains(&first.as_str()) => {
            (Some(first.clone()), rest.to_vec())
        }
        _ => (None, args.what.clone()),
    };
    let (location, password) = repository(&bundle)?;
    let _settle = Settle(&location);
    if !args.yes {
        super::confirm(
            &format!(
                "this replaces the current data of {} with the snapshot's (a safety snapshot is taken first); type `{}` to go on: ",
                if names.is_empty() {
                    "every service".to_string()
                } else {
                    names.join(", ")
                },
                desired.domain
            ),
            &desired.domain,
            "`restore` replaces the services' current data and needs a confirmation",
            "add `--yes` when that is what you want",
            "not confirmed; nothing was changed",
        )?;
    }
    if args.force_unlock {
        super::deploy::confirm_unlock(args.yes)?;
    }
    let done = runtime.block_on(locked(
        ground.lock_engine(),
        &desired,
        &reporter,
        "restore",
        args.force_unlock,
        async {
            Box::pin(ground.recover_nodes(&desired, &reporter)).await?;
            let repo = open(&location, &password, false, &reporter).await?;
            let snapshots: Vec<_> = backup::snapshots_of(&repo, &desired.domain).await?;
            let plan = restore_plan(&desired, &snapshots, wanted.as_deref(), &names)?;
            let mut done = Vec::new();
            for (service, _) in &plan {
                reporter.note(&format!(
                    "safety snapshot of {} before restoring",
                    service.service
                ));
                let places = ground.places(&desired, Some(service)).await?;
                let t =
                    backup::backup_service(&places, &desired, service, &repo, "safety", &reporter)
                        .await?;
                reporter.note(&format!("safety snapshot {} taken", t.snapshot.short_id));
            }
            for (service, snap) in &plan {
                ground
                    .restore_service(&desired, service, &repo, snap, &reporter)
                    .await?;
                done.push((service.service.clone(), Snapshot::from_file(snap)));
            }
            Ok(done)
        },
    ))?;
    let mut out = std::io::stdout().lock();
    if global.format == Format::Json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"version": 1, "restored": done.iter().map(|(s, snap)| serde_json::json!({"service": s, "snapshot": snap})).collect::<Vec<_>>()})
            )?
        )?;
    } else if !global.quiet {
        for (service, snap) in &done {
            writeln!(
                out,
                "{service}: restored from snapshot {} ({}), healthy",
                snap.short_id, snap.time
            )?;
        }
    }
    Ok(Outcome::Success)
}

/// `voisin agent …`, inside a helper container.
pub fn agent(cmd: &AgentCommand) -> anyhow::Result<Outcome> {
    match cmd {
        AgentCommand::Idle => loop {
            std::thread::sleep(std::time::Duration::from_hours(1));
        },
        AgentCommand::Serve { root } => {
            let stdin = std::io::stdin().lock();
            backup::agent::serve(root, stdin, std::io::stdout().lock())?;
        }
        AgentCommand::Clean { root } => backup::agent::clean(root)?,
        AgentCommand::Digest { root } => {
            let digests = backup::agent::digest(root)?;
            writeln!(
                std::io::stdout().lock(),
                "{}",
                serde_json::to_string(&digests)?
            )?;
        }
    }
    Ok(Outcome::Success)
}

fn print_verify(
    global: &GlobalArgs,
    ok: bool,
    check: &[String],
    damaged: &[(rustic_core::repofile::SnapshotFile, String)],
    restores: &[backup::TestRestore],
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if global.format == Format::Json {
        let json = serde_json::json!({
            "version": 1,
            "ok": ok,
            "repository_errors": check,
            "damaged_snapshots": damaged.iter().map(|(s, why)| serde_json::json!({"snapshot": s.id.to_hex().as_str(), "service": repo::tag_value(s, "service"), "why": why})).collect::<Vec<_>>(),
            "test_restores": restores,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        if check.is_empty() {
            writeln!(out, "repository: checked, no error")?;
        } else {
            writeln!(out, "repository: {} error(s):", check.len())?;
            for e in check {
                writeln!(out, "    {e}")?;
            }
        }
        for (s, why) in damaged {
            let snap = Snapshot::from_file(s);
            writeln!(
                out,
                "snapshot {} of {} ({}) can no longer be restored: {why}",
                snap.short_id, snap.service, snap.time
            )?;
        }
        for t in restores {
            if t.differences.is_empty() {
                writeln!(
                    out,
                    "{}: snapshot {} restored identically ({} entries, {} of dumps)",
                    t.service,
                    t.snapshot.get(..8).unwrap_or(&t.snapshot),
                    t.entries,
                    units::human_bytes(t.dump_bytes)
                )?;
            } else {
                writeln!(
                    out,
                    "{}: snapshot {} differs after restore:",
                    t.service,
                    t.snapshot.get(..8).unwrap_or(&t.snapshot)
                )?;
                for d in t.differences.iter().take(20) {
                    writeln!(out, "    {d}")?;
                }
            }
        }
    }
    Ok(())
}

/// The snapshots the keep policy no longer wants, service by service.
fn to_forget(
    snapshots: &[rustic_core::repofile::SnapshotFile],
    policy: &crate::manifest::Keep,
    verified: &Verified,
) -> Vec<rustic_core::repofile::SnapshotFile> {
    let mut forget = Vec::new();
    let services: BTreeSet<String> = snapshots
        .iter()
        .filter_map(|s| repo::tag_value(s, "service"))
        .collect();
    for service in services {
        let of: Vec<&rustic_core::repofile::SnapshotFile> = snapshots
            .iter()
            .filter(|s| repo::tag_value(s, "service").as_deref() == Some(&service))
            .collect();
        let stamps: Vec<backup::keep::Stamp> = of
            .iter()
            .map(|s| backup::keep::Stamp {
                id: s.id.to_hex().to_string(),
                time: chrono::DateTime::from_timestamp(s.time.timestamp().as_second(), 0)
                    .unwrap_or_default(),
            })
            .collect();
        let protected: BTreeSet<String> = verified
            .services
            .get(&service)
            .map(|v| v.snapshot.clone())
            .into_iter()
            .collect();
        let kept = backup::keep::keep(policy, &stamps, &protected);
        forget.extend(
            of.into_iter()
                .filter(|s| !kept.contains(s.id.to_hex().as_str()))
                .cloned(),
        );
    }
    forget
}

/// Which snapshot each service is restored from: the one named (its
/// service's), or each service's newest regular snapshot (safety
/// snapshots, taken by restores and upgrades, are not restored by
/// default: an upgrade's holds data in the old version's format).
fn restore_plan<'d>(
    desired: &'d DesiredState,
    snapshots: &[rustic_core::repofile::SnapshotFile],
    wanted: Option<&str>,
    names: &[String],
) -> Result<
    Vec<(
        &'d crate::render::state::ServiceBackup,
        rustic_core::repofile::SnapshotFile,
    )>,
    BackupError,
> {
    if let Some(id) = wanted {
        let snap = snapshots
            .iter()
            .rev()
            .find(|s| s.id.to_hex().starts_with(id))
            .cloned()
            .ok_or_else(|| BackupError::NoSnapshot(id.to_string()))?;
        let service = repo::tag_value(&snap, "service").unwrap_or_default();
        let chosen = backup::chosen(desired, &[service])?;
        return Ok(vec![(chosen[0], snap)]);
    }
    let regular: Vec<_> = snapshots
        .iter()
        .filter(|s| {
            !matches!(
                repo::tag_value(s, "reason").as_deref(),
                Some("safety" | "upgrade")
            )
        })
        .cloned()
        .collect();
    backup::chosen(desired, names)?
        .into_iter()
        .map(|s| Ok((s, backup::pick(&regular, &s.service, None)?)))
        .collect()
}

/// The age of each service's newest snapshot and last verified restore,
/// for `status` and `watch`: `Ok(None)` when no backup is configured, an
/// error when the repository cannot be read.
pub(super) fn ages(
    bundle: &super::Bundle,
    desired: &DesiredState,
) -> Result<Option<Vec<crate::watch::BackupAge>>, String> {
    if bundle.manifest.backup.is_none() {
        return Ok(None);
    }
    let snapshots =
        repository(bundle)
            .map_err(|e| e.to_string())
            .and_then(|(location, password)| {
                let _settle = Settle(&location);
                match repo::open(&location, &password, false) {
                    // Before the first backup every service is simply never
                    // backed up, which is what the ages say.
                    Err(repo::RepoError::NotYet(_)) => Ok(Vec::new()),
                    Err(e) => Err(e.to_string()),
                    Ok(repo) => repo::snapshots(&repo, &desired.domain).map_err(|e| e.to_string()),
                }
            })?;
    let verified = Verified::read(&state_dir(bundle));
    let now = chrono::Utc::now().timestamp();
    Ok(Some(
        desired
            .backups
            .iter()
            .map(|b| crate::watch::BackupAge {
                service: b.service.clone(),
                last_snapshot_age_seconds: snapshots
                    .iter()
                    .rev()
                    .find(|s| repo::tag_value(s, "service").as_deref() == Some(&b.service))
                    .map(|s| now - s.time.timestamp().as_second()),
                last_verified_restore_age_seconds: verified
                    .services
                    .get(&b.service)
                    .map(|v| now - v.at),
            })
            .collect(),
    ))
}

/// The backups part of `status --format json`.
pub(super) fn ages_json(
    ages: &Result<Option<Vec<crate::watch::BackupAge>>, String>,
) -> serde_json::Value {
    match ages {
        Ok(None) => serde_json::json!({ "configured": false }),
        Err(e) => serde_json::json!({ "configured": true, "error": e }),
        Ok(Some(services)) => serde_json::json!({ "configured": true, "services": services }),
    }
}

/// The backups part of `status`, as text.
pub(super) fn print_ages(
    out: &mut impl std::io::Write,
    ages: &Result<Option<Vec<crate::watch::BackupAge>>, String>,
) -> std::io::Result<()> {
    let services = match ages {
        Ok(None) => return writeln!(out, "backups: none configured (add a `backup:` section)"),
        Err(e) => return writeln!(out, "backups: {e}"),
        Ok(Some(services)) => services,
    };
    for s in services {
        let when = |age: Option<i64>| {
            age.map_or_else(|| "never".to_string(), |a| format!("{} ago", human_age(a)))
        };
        writeln!(
            out,
            "backup of {}: last snapshot {}, last verified restore {}",
            s.service,
            when(s.last_snapshot_age_seconds),
            when(s.last_verified_restore_age_seconds)
        )?;
    }
    Ok(())
}

/// Waits, when the command ends, for a remote repository's connections to
/// close ([`Location::settle`]), whichever way the command ends.
pub(super) struct Settle<'a>(pub(super) &'a Location);

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        self.0.settle();
    }
}
