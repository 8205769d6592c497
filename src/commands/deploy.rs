//! `voisin plan` and `voisin deploy`: render, look at the engine, compare,
//! and (for deploy) carry out the difference under the association's lock.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;

use crate::cli::{DeployArgs, Format, GlobalArgs};
use crate::deploy::{self, lock};
use crate::engine::{Engine, Target};
use crate::progress::Reporter;
use crate::render::DesiredState;
use crate::{Outcome, plan, render};

/// A manifest rendered and an engine connected: what plan, deploy, status,
/// logs and down start from.
pub(super) struct Connected {
    pub bundle: super::Bundle,
    pub desired: DesiredState,
    pub engine: Engine,
    pub runtime: tokio::runtime::Runtime,
    pub reporter: Arc<dyn Reporter>,
}

/// Loads, renders (saving any new secret) and connects.
pub(super) fn connect(global: &GlobalArgs) -> anyhow::Result<Result<Connected, Outcome>> {
    let mut bundle = match super::load_bundle(global)? {
        Ok(b) => b,
        Err(outcome) => return Ok(Err(outcome)),
    };
    let mut desired = render::render(&bundle.manifest, &bundle.catalog, &mut bundle.secrets)?;
    bundle.secrets.save()?;
    let base = bundle
        .path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let target = Target::resolve(bundle.manifest.engine.as_ref(), &base)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let reporter: Arc<dyn Reporter> = Arc::new(super::progress::Cli::new(global));
    let engine = runtime.block_on(Engine::connect(&target, reporter.clone()))?;
    // A service whose entry moved to a new version stays on the deployed
    // one for every command but `upgrade`.
    let record = runtime.block_on(deploy::record::read(&engine, &desired.association))?;
    let (catalog, waiting) = crate::upgrade::effective_catalog(&bundle.catalog, &record);
    if !waiting.is_empty() {
        desired = render::render(&bundle.manifest, &catalog, &mut bundle.secrets)?;
        for p in &waiting {
            reporter.note(&format!(
                "`{}` stays on {}: the catalog has {}; run `voisin upgrade {}` to move it",
                p.service,
                p.from_label(),
                p.to_label(),
                p.service
            ));
        }
    }
    Ok(Ok(Connected {
        bundle,
        desired,
        engine,
        runtime,
        reporter,
    }))
}

/// `voisin plan`.
pub fn plan(global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let c = match connect(global)? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    if let Some(section) = super::swarm::section(&c) {
        return super::swarm::plan(global, c, &section);
    }
    let observed = c.runtime.block_on(deploy::observe(&c.engine, &c.desired))?;
    let p = plan::plan(&c.desired, &observed);
    let mut out = std::io::stdout().lock();
    match global.format {
        Format::Json => {
            let json = serde_json::json!({
                "version": 1,
                "changes": !p.is_empty(),
                "plan": p,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        Format::Text => write!(out, "{}", plan::text(&p))?,
    }
    Ok(Outcome::Success)
}

/// `voisin deploy`.
pub fn deploy(global: &GlobalArgs, args: &DeployArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let c = match connect(global)? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    if let Some(section) = super::swarm::section(&c) {
        return super::swarm::deploy(global, args, c, &section);
    }
    let Connected {
        mut bundle,
        desired,
        engine,
        runtime,
        reporter,
    } = c;
    let engine = Arc::new(engine);
    if args.force_unlock {
        confirm_unlock(args.yes)?;
    }
    let force = args.force_unlock;
    let result = runtime.block_on(async {
        let observed = deploy::observe(&engine, &desired).await?;
        let first = plan::plan(&desired, &observed);
        let owed = crate::backup::leftovers(&engine, &desired).await?;
        // What the record should say each service runs, and whether an
        // interrupted upgrade left its journal.
        let record = deploy::record::read(&engine, &desired.association).await?;
        let (used, _) = crate::upgrade::effective_catalog(&bundle.catalog, &record);
        let deployed = crate::upgrade::deployed(&used, &desired);
        let journal = crate::upgrade::journal::read(&engine, &desired.association).await?;
        if first.is_empty() && !owed && record.services == deployed && journal.is_none() {
            // Nothing to change: no lock, no write.
            return Ok::<_, anyhow::Error>((first, None));
        }
        deploy::ensure_tool_image(&engine).await?;
        let note = |s: &str| reporter.note(s);
        let held = lock::acquire(
            &engine,
            &desired.association,
            &desired.domain,
            "deploy",
            force,
            &note,
        )
        .await?;
        // Under the lock, look again: another admin may have deployed.
        let outcome = async {
            // An interrupted backup may have left maintenance mode on.
            crate::backup::recover(&engine, &desired, &reporter, held.took_over.as_deref()).await?;
            // An interrupted upgrade is rolled back (or, done, closed).
            Box::pin(super::upgrade::settle(&mut bundle, &engine, &reporter)).await?;
            let observed = deploy::observe(&engine, &desired).await?;
            let p = plan::plan(&desired, &observed);
            if !global.quiet && global.format == Format::Text && !p.is_empty() {
                let mut err = std::io::stderr().lock();
                writeln!(err, "plan:")?;
                write!(err, "{}", plan::text(&p))?;
            }
            let summary = if p.is_empty() {
                crate::upgrade::record_deployed(&engine, &desired, deployed).await?;
                None
            } else {
                Some(deploy::apply(&engine, &desired, &p, &reporter, Some(deployed)).await?)
            };
            Ok::<_, anyhow::Error>((p, summary))
        }
        .await;
        held.release(&engine).await?;
        outcome
    });
    let (p, summary) = result?;
    print_outcome(
        global,
        &bundle,
        &desired,
        &p,
        summary.as_ref(),
        engine.calls(),
        started,
    )?;
    Ok(Outcome::Success)
}

/// What a deploy says at the end: the summary (or the JSON report), where
/// each service is reached, and how the first admin signs in.
fn print_outcome(
    global: &GlobalArgs,
    bundle: &super::Bundle,
    desired: &DesiredState,
    p: &plan::Plan,
    summary: Option<&deploy::Summary>,
    (reads, writes): (u64, u64),
    started: Instant,
) -> anyhow::Result<()> {
    let elapsed = started.elapsed();
    let mut out = std::io::stdout().lock();
    match global.format {
        Format::Json => {
            let json = serde_json::json!({
                "version": 1,
                "plan": p,
                "summary": summary.cloned().unwrap_or_default(),
                "urls": desired.urls,
                "engine_calls": { "reads": reads, "writes": writes },
                "seconds": elapsed.as_secs_f64(),
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        Format::Text if !global.quiet => {
            match summary {
                None => write!(out, "{}", plan::text(p))?,
                Some(s) => writeln!(
                    out,
                    "deployed in {:.1} s: {} created, {} replaced, {} started, {} removed; {} steps run",
                    elapsed.as_secs_f64(),
                    s.created,
                    s.replaced,
                    s.started,
                    s.removed,
                    s.steps_run
                )?,
            }
            for (role, url) in &desired.urls {
                writeln!(out, "{role}: {url}")?;
            }
            if let Some(admin) = bundle
                .manifest
                .members
                .iter()
                .find(|m| m.roles.contains(&crate::manifest::Role::Admin))
                && desired.urls.contains_key("board")
            {
                writeln!(
                    out,
                    "sign in as `{}` with the password from `voisin -f {} members credentials {}`",
                    admin.id,
                    bundle.path.display(),
                    admin.id
                )?;
            }
        }
        Format::Text => {}
    }
    Ok(())
}

/// Asks before taking over another run's lock.
pub(super) fn confirm_unlock(yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    super::confirm(
        "take over the lock even if its run still works? type `yes`: ",
        "yes",
        "`--force-unlock` takes the lock from a run that may still be working",
        "make sure that run is gone, then add `--yes`",
        "not confirmed; the lock was left alone",
    )
}
