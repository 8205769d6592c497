//! `voisin upgrade [SERVICE]`: which services have a newer catalog entry,
//! the plan, then for each, under the association's lock: safety snapshot,
//! journal, switch, commit or roll back ([`crate::upgrade`]). Also
//! [`settle`], which `deploy` runs too: the end of an upgrade a killed run
//! left.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;

use rustic_core::repofile::SnapshotFile;

use crate::backup::repo::Repo;
use crate::cli::{Format, GlobalArgs, UpgradeArgs};
use crate::deploy::{self, lock, record};
use crate::engine::Engine;
use crate::progress::Reporter;
use crate::render::{self, DesiredState};
use crate::upgrade::{self, Pending, UpgradeError, journal};
use crate::{Outcome, backup};

use super::deploy::{Connected, connect};

/// `voisin upgrade`.
pub fn run(global: &GlobalArgs, args: &UpgradeArgs) -> anyhow::Result<Outcome> {
    let Connected {
        mut bundle,
        desired,
        engine,
        runtime,
        reporter,
    } = match connect(global)? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    let engine = Arc::new(engine);
    let record = runtime.block_on(record::read(&engine, &desired.association))?;
    let chosen = choose(&bundle, &desired, &record, args.service.as_deref())?;
    let mut out = std::io::stdout().lock();
    if chosen.is_empty() {
        if global.format == Format::Json {
            writeln!(out, "{}", serde_json::json!({"version": 1, "upgraded": []}))?;
        } else if !global.quiet {
            writeln!(
                out,
                "nothing to upgrade: every service runs its catalog's version"
            )?;
        }
        return Ok(Outcome::Success);
    }
    // The plan, refusing what cannot be done before anything is.
    let catalog_state = render::render(&bundle.manifest, &bundle.catalog, &mut bundle.secrets)?;
    let mut plan_text = String::new();
    for p in &chosen {
        let to = catalog_state
            .entries
            .iter()
            .find(|e| e.service == p.service)
            .ok_or_else(|| anyhow::anyhow!("`{}` is not in the rendered state", p.service))?;
        let path = upgrade::path_for(p, to)?;
        plan_text.push_str(&describe(&bundle, &record, p, path, &desired));
    }
    if global.format == Format::Text && !global.quiet {
        write!(out, "{plan_text}")?;
        out.flush()?;
    }
    if args.dry_run {
        return Ok(Outcome::Success);
    }
    if args.force_unlock {
        super::deploy::confirm_unlock(args.yes)?;
    }
    drop(out);
    let done = runtime.block_on(async {
        deploy::ensure_tool_image(&engine).await?;
        let note = |s: &str| reporter.note(s);
        let held = lock::acquire(
            &engine,
            &desired.association,
            &desired.domain,
            "upgrade",
            args.force_unlock,
            &note,
        )
        .await?;
        let result = async {
            backup::recover(&engine, &desired, &reporter, held.took_over.as_deref()).await?;
            Box::pin(settle(&mut bundle, &engine, &reporter)).await?;
            let mut done = Vec::new();
            for p in &chosen {
                if let Some(label) =
                    Box::pin(upgrade_one(&mut bundle, &engine, &reporter, &p.service)).await?
                {
                    done.push((p.service.clone(), label));
                }
            }
            Ok::<_, anyhow::Error>(done)
        }
        .await;
        held.release(&engine).await?;
        result
    })?;
    let mut out = std::io::stdout().lock();
    if global.format == Format::Json {
        let list: Vec<_> = done
            .iter()
            .map(|(s, to)| serde_json::json!({"service": s, "to": to}))
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"version": 1, "upgraded": list}))?
        )?;
    } else if !global.quiet {
        for (service, to) in &done {
            writeln!(out, "{service}: upgraded to {to}, healthy, checks passed")?;
        }
    }
    Ok(Outcome::Success)
}

/// The services to upgrade: the one named, or every one with a newer entry.
fn choose(
    bundle: &super::Bundle,
    desired: &DesiredState,
    record: &record::Record,
    named: Option<&str>,
) -> anyhow::Result<Vec<Pending>> {
    let pending = upgrade::pending(&bundle.catalog, record);
    let Some(name) = named else {
        return Ok(pending);
    };
    if !desired.entries.iter().any(|e| e.service == name) {
        let known: Vec<&str> = desired.entries.iter().map(|e| e.service.as_str()).collect();
        return Err(crate::UsageError::new(
            format!("no service `{name}` in the manifest"),
            Some(format!("the services are: {}", known.join(", "))),
        )
        .into());
    }
    if !record.services.contains_key(name) {
        return Err(UpgradeError::Refused {
            message: format!("the deploy record does not say which version of `{name}` runs"),
            hint: "run `voisin deploy` once with the catalog it was deployed from: it records the versions".into(),
        }
        .into());
    }
    Ok(pending.into_iter().filter(|p| p.service == name).collect())
}

/// The plan of one service's upgrade, as text.
fn describe(
    bundle: &super::Bundle,
    record: &record::Record,
    p: &Pending,
    path: Option<&render::state::UpgradePath>,
    desired: &DesiredState,
) -> String {
    let mut text = format!("{}: {} → {}\n", p.service, p.from_label(), p.to_label());
    if let (Some(old), Some(new)) = (
        record.services.get(&p.service),
        bundle.catalog.get(&p.entry),
    ) {
        for (name, c) in &new.containers {
            match old.entry.containers.get(name) {
                Some(o) if o.image != c.image => {
                    let _ = writeln!(text, "  {name}: image {} → {}", o.image, c.image);
                }
                None => {
                    let _ = writeln!(text, "  {name}: new container, image {}", c.image);
                }
                _ => {}
            }
        }
    }
    if desired.backups.iter().any(|b| b.service == p.service) {
        text.push_str("  1. safety snapshot of its data (no snapshot, no upgrade)\n");
    } else {
        text.push_str("  1. no data to snapshot (its entry backs nothing up)\n");
    }
    text.push_str("  2. the new version's containers, awaited healthy\n");
    match path {
        Some(path) => {
            for s in &path.steps {
                let _ = writeln!(text, "  3. step: {} in {}", s.doc, s.container);
            }
            for s in &path.checks {
                let _ = writeln!(text, "  4. check: {} in {}", s.doc, s.container);
            }
        }
        None => text.push_str("  3. no upgrade step in its entry\n"),
    }
    text.push_str("  on failure: the old version and its data are put back\n");
    text
}

/// Renders the bundle with `catalog`.
fn render_with(
    bundle: &mut super::Bundle,
    catalog: &crate::catalog::Catalog,
) -> anyhow::Result<DesiredState> {
    Ok(render::render(
        &bundle.manifest,
        catalog,
        &mut bundle.secrets,
    )?)
}

/// Opens the manifest's repository, for an upgrade's safety snapshot.
async fn repository(
    bundle: &super::Bundle,
    service: &str,
    reporter: &Arc<dyn Reporter>,
) -> anyhow::Result<Arc<Repo>> {
    let (location, password) = super::backup::repository(bundle).map_err(|e| {
        if matches!(
            e,
            backup::BackupError::Repo(backup::repo::RepoError::NotConfigured)
        ) {
            anyhow::Error::new(UpgradeError::Refused {
                message: format!("`{service}` keeps data, and an upgrade takes a safety snapshot first: the manifest has no `backup:` section"),
                hint: "add a `backup:` section (see docs/backup.md), then run `voisin upgrade` again".into(),
            })
        } else {
            e.into()
        }
    })?;
    let _settle = super::backup::Settle(&location);
    Ok(super::backup::open(&location, &password, true, reporter).await?)
}

/// Upgrades one service, under the lock. `None` when it no longer needs it
/// (an interrupted run had finished it).
// The steps of one upgrade (snapshot, journal, switch, commit or roll
// back) read best in order, in one place.
#[allow(clippy::too_many_lines)]
async fn upgrade_one(
    bundle: &mut super::Bundle,
    engine: &Arc<Engine>,
    reporter: &Arc<dyn Reporter>,
    service: &str,
) -> anyhow::Result<Option<String>> {
    let slug = render::slug(&bundle.manifest.association.domain);
    let record = record::read(engine, &slug).await?;
    let Some(p) = upgrade::pending(&bundle.catalog, &record)
        .into_iter()
        .find(|p| p.service == service)
    else {
        reporter.note(&format!("`{service}` already runs its catalog's version"));
        return Ok(None);
    };
    let (current, waiting) = upgrade::effective_catalog(&bundle.catalog, &record);
    let old_catalog = upgrade::pinned_catalog(&current, &record, [service]);
    let new_catalog = upgrade::pinned_catalog(
        &bundle.catalog,
        &record,
        waiting
            .iter()
            .map(|w| w.service.as_str())
            .filter(|s| *s != service),
    );
    let old = render_with(bundle, &old_catalog)?;
    let new = render_with(bundle, &new_catalog)?;
    let to = new
        .entries
        .iter()
        .find(|e| e.service == service)
        .ok_or_else(|| anyhow::anyhow!("`{service}` is not in the rendered state"))?;
    let path = upgrade::path_for(&p, to)?.cloned();
    // Rolling back means converging to `old`: it must be what runs now.
    let observed = deploy::observe(engine, &old).await?;
    let now = crate::plan::plan(&old, &observed);
    if !now.is_empty() {
        let changes = crate::plan::text(&now);
        let first: Vec<&str> = changes.lines().take(3).collect();
        return Err(UpgradeError::NotConverged {
            changes: first.join("; "),
        }
        .into());
    }
    // 1. The safety snapshot.
    let snapshot = safety_snapshot(bundle, engine, reporter, &old, service).await?;
    // 2. The journal: from here on, the next run finishes what this one starts.
    let records = upgrade::deployed(&new_catalog, &new);
    let to_hash = records
        .get(service)
        .map(journal::entry_hash)
        .unwrap_or_default();
    let j = journal::Journal {
        service: service.to_string(),
        from: p.from_label(),
        to: p.to_label(),
        to_hash,
        snapshot: snapshot.as_ref().map(|(_, s)| s.id.to_hex().to_string()),
        started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    journal::write(engine, &slug, &new.domain, &j).await?;
    // 3. The new version.
    reporter.note(&format!("upgrading `{service}` to {}", p.to_label()));
    let outcome = tokio::select! {
        r = upgrade::switch(engine, &new, path.as_ref(), reporter) => r.map_err(Some),
        _ = tokio::signal::ctrl_c() => Err(None),
    };
    let data = match &snapshot {
        Some((_, s)) => format!(
            ", with its data put back from the safety snapshot {}",
            &s.id.to_hex()[..8]
        ),
        None => String::new(),
    };
    match outcome {
        Ok(()) => {
            // 4. The commit point: the record holds the new entry.
            upgrade::record_deployed(engine, &new, records).await?;
            journal::remove(engine, &slug).await?;
            Ok(Some(p.to_label()))
        }
        Err(failure) => {
            // The end of the new containers' logs, before they are replaced;
            // a health failure already carries its container's.
            let logs = match &failure {
                Some(UpgradeError::Deploy(deploy::DeployError::Unhealthy(_))) | None => {
                    String::new()
                }
                Some(_) => upgrade::logs_of(engine, &new, service).await,
            };
            let cause = failure
                .as_ref()
                .map_or_else(|| "interrupted".to_string(), ToString::to_string);
            let back = upgrade::rollback(
                engine,
                &old,
                service,
                snapshot.as_ref().map(|(r, s)| (r, s)),
                reporter,
            )
            .await;
            if let Err(e) = back {
                return Err(UpgradeError::RollbackFailed {
                    service: service.to_string(),
                    from: p.from_label(),
                    cause,
                    rollback: e.to_string(),
                    snapshot: j.snapshot.clone(),
                }
                .into());
            }
            journal::remove(engine, &slug).await?;
            Err(match failure {
                None => UpgradeError::Interrupted {
                    service: service.to_string(),
                    from: p.from_label(),
                    data,
                },
                Some(_) => UpgradeError::RolledBack {
                    service: service.to_string(),
                    change: format!("from {} to {}", p.from_label(), p.to_label()),
                    back: format!("{} runs again{data}", p.from_label()),
                    cause,
                    logs,
                },
            }
            .into())
        }
    }
}

/// The safety snapshot of `service` before it is upgraded, with the
/// repository opened again so that a rollback can read it; `None` for a
/// service whose entry backs nothing up.
async fn safety_snapshot(
    bundle: &super::Bundle,
    engine: &Arc<Engine>,
    reporter: &Arc<dyn Reporter>,
    old: &DesiredState,
    service: &str,
) -> anyhow::Result<Option<(Arc<Repo>, SnapshotFile)>> {
    let Some(b) = old.backups.iter().find(|b| b.service == service) else {
        return Ok(None);
    };
    let repo = repository(bundle, service, reporter).await?;
    reporter.note(&format!("safety snapshot of `{service}` before upgrading"));
    let taken = backup::backup_service(
        &backup::Places::one(engine),
        old,
        b,
        &repo,
        "upgrade",
        reporter,
    )
    .await
    .map_err(|cause| UpgradeError::Snapshot {
        service: service.to_string(),
        cause: Box::new(cause),
    })?;
    reporter.note(&format!(
        "safety snapshot {} taken",
        taken.snapshot.short_id
    ));
    // Opened again: the index read before the backup does not know the
    // snapshot's new blobs, which a rollback reads.
    drop(repo);
    let repo = repository(bundle, service, reporter).await?;
    let file = find_snapshot(&repo, &old.domain, &taken.snapshot.id).await?;
    Ok(Some((repo, file)))
}

/// The snapshot file of an id.
async fn find_snapshot(repo: &Arc<Repo>, domain: &str, id: &str) -> anyhow::Result<SnapshotFile> {
    backup::snapshots_of(repo, domain)
        .await?
        .into_iter()
        .find(|s| s.id.to_hex().starts_with(id))
        .ok_or_else(|| backup::BackupError::NoSnapshot(id.to_string()).into())
}

/// Finishes an upgrade that a killed run left (its journal): when the
/// record already holds the new entry, only the journal is left to
/// remove; otherwise the service is rolled back to the recorded entry,
/// with the data of the safety snapshot. Run under the lock by `upgrade`
/// and `deploy`.
pub(super) async fn settle(
    bundle: &mut super::Bundle,
    engine: &Arc<Engine>,
    reporter: &Arc<dyn Reporter>,
) -> anyhow::Result<()> {
    let slug = render::slug(&bundle.manifest.association.domain);
    let Some(j) = journal::read(engine, &slug).await? else {
        return Ok(());
    };
    let record = record::read(engine, &slug).await?;
    if record
        .services
        .get(&j.service)
        .is_some_and(|d| journal::entry_hash(d) == j.to_hash)
    {
        reporter.note(&format!(
            "an earlier upgrade of `{}` to {} had finished; removing its journal",
            j.service, j.to
        ));
        journal::remove(engine, &slug).await?;
        return Ok(());
    }
    reporter.note(&format!(
        "an upgrade of `{}` from {} to {} was interrupted: putting {} back",
        j.service, j.from, j.to, j.from
    ));
    let (current, _) = upgrade::effective_catalog(&bundle.catalog, &record);
    let old_catalog = upgrade::pinned_catalog(&current, &record, [j.service.as_str()]);
    let old = render_with(bundle, &old_catalog)?;
    let snapshot = match &j.snapshot {
        None => None,
        Some(id) => {
            let repo = repository(bundle, &j.service, reporter).await?;
            let file = find_snapshot(&repo, &old.domain, id).await?;
            Some((repo, file))
        }
    };
    upgrade::rollback(
        engine,
        &old,
        &j.service,
        snapshot.as_ref().map(|(r, s)| (r, s)),
        reporter,
    )
    .await
    .map_err(|e| UpgradeError::RollbackFailed {
        service: j.service.clone(),
        from: j.from.clone(),
        cause: "interrupted".into(),
        rollback: e.to_string(),
        snapshot: j.snapshot.clone(),
    })?;
    journal::remove(engine, &slug).await?;
    reporter.note(&format!("`{}` runs {} again", j.service, j.from));
    Ok(())
}
