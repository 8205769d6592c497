//! `voisin status`, `voisin logs` and `voisin down`: looking at and taking
//! down what a deploy made.

use std::io::Write as _;

use futures_util::StreamExt as _;

use super::deploy::{Connected, connect};
use crate::cli::{DownArgs, Format, GlobalArgs, LogsArgs};
use crate::deploy::lock;
use crate::engine::create::KIND_LABEL;
use crate::{Outcome, UsageError};

/// `voisin status`.
pub fn status(global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let c = match connect(global)? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    if let Some(section) = super::swarm::section(&c) {
        return super::swarm::status(global, c, &section);
    }
    let Connected {
        bundle,
        desired,
        engine,
        runtime,
        ..
    } = c;
    let observed = runtime.block_on(engine.containers(&desired.domain))?;
    // The watch's checks, live; restarts are the watch's to compare.
    let watched =
        crate::watch::incidents::WatchState::read(&crate::secrets::state_dir(&bundle.path));
    let local = bundle
        .manifest
        .engine
        .as_ref()
        .is_none_or(|e| e.host.starts_with("unix://"));
    let look = super::watch::look(
        &bundle,
        &desired,
        &runtime,
        Ok((&engine, local)),
        &watched.restarts,
    );
    let backups = &look.backups;
    let runs = crate::schedule::last_runs(&crate::secrets::state_dir(&bundle.path));
    let now = chrono::Utc::now();
    let rows = container_rows(&desired, &observed, now);
    let critical = look
        .findings
        .iter()
        .any(|f| f.severity == crate::watch::Severity::Critical);
    let mut out = std::io::stdout().lock();
    match global.format {
        Format::Json => {
            let json = serde_json::json!({
                "version": 1,
                "containers": rows,
                "urls": desired.urls,
                "backups": super::backup::ages_json(backups),
                "findings": look.findings,
                "critical": critical,
                "watch": {
                    "last_pass": watched.last_pass,
                    "undelivered": watched.undelivered,
                },
                "schedule": runs,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        Format::Text => {
            writeln!(
                out,
                "{:<10} {:<10} {:<10} {:<10} {:<28} {:>9} {:>8}",
                "SERVICE", "CONTAINER", "STATE", "HEALTH", "IMAGE", "UP", "RESTARTS"
            )?;
            for r in &rows {
                let text = |k: &str| r[k].as_str().unwrap_or("-").to_string();
                writeln!(
                    out,
                    "{:<10} {:<10} {:<10} {:<10} {:<28} {:>9} {:>8}",
                    text("service"),
                    text("container"),
                    text("state"),
                    text("health"),
                    text("image"),
                    r["uptime_seconds"]
                        .as_i64()
                        .map_or_else(|| "-".into(), duration),
                    r["restarts"]
                )?;
            }
            for (role, url) in &desired.urls {
                writeln!(out, "{role}: {url}")?;
            }
            super::backup::print_ages(&mut out, backups)?;
            print_runs(&mut out, &runs, now)?;
            super::watch::print_findings(&mut out, &look.findings)?;
            if let Some(u) = &watched.undelivered {
                writeln!(
                    out,
                    "alerts: NOT DELIVERED {} ago: {}",
                    crate::watch::human_age(now.timestamp() - u.at),
                    u.errors.join("; ")
                )?;
            }
        }
    }
    // Non-zero when anything is critical, so monitoring can run it as a check.
    Ok(if critical {
        Outcome::Failed
    } else {
        Outcome::Success
    })
}

/// The scheduled jobs' last runs, one line each.
fn print_runs(
    out: &mut impl std::io::Write,
    runs: &std::collections::BTreeMap<String, crate::schedule::LastRun>,
    now: chrono::DateTime<chrono::Utc>,
) -> std::io::Result<()> {
    if runs.is_empty() {
        return writeln!(
            out,
            "schedule: no scheduled run yet (`voisin schedule install`)"
        );
    }
    for (job, run) in runs {
        let ago = chrono::DateTime::parse_from_rfc3339(&run.started).map_or_else(
            |_| run.started.clone(),
            |t| {
                format!(
                    "{} ago",
                    crate::watch::human_age((now - t.with_timezone(&chrono::Utc)).num_seconds())
                )
            },
        );
        let how = match (run.exit_code, &run.ended) {
            (Some(0), _) => "ok".to_string(),
            (Some(code), _) => format!(
                "FAILED (`voisin {}` exited {code})",
                run.failed.as_deref().unwrap_or(job)
            ),
            (None, None) => "running, or killed".to_string(),
            (None, Some(_)) => "ended without a code".to_string(),
        };
        writeln!(out, "scheduled {job}: last started {ago}, {how}")?;
    }
    Ok(())
}

/// One row per container the bundle should run: state, health, image,
/// uptime and restarts.
fn container_rows(
    desired: &crate::render::DesiredState,
    observed: &[crate::engine::ObservedContainer],
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    for spec in &desired.containers {
        let o = observed.iter().find(|c| c.name == spec.name);
        let (state, health, image, up, restarts) = match o {
            None => ("missing".to_string(), None, spec.image.clone(), None, 0),
            Some(c) => {
                let up = chrono::DateTime::parse_from_rfc3339(&c.state.started_at)
                    .ok()
                    .filter(|_| c.state.running)
                    .map(|t| (now - t.with_timezone(&chrono::Utc)).num_seconds().max(0));
                (
                    c.state.status.clone(),
                    c.state.health.clone(),
                    c.image.clone(),
                    up,
                    c.state.restarts,
                )
            }
        };
        rows.push(serde_json::json!({
            "service": spec.service,
            "container": spec.container,
            "name": spec.name,
            "state": state,
            "health": health,
            "image": image,
            "uptime_seconds": up,
            "restarts": restarts,
        }));
    }
    rows
}

fn duration(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// `voisin logs SERVICE [CONTAINER]`.
pub fn logs(global: &GlobalArgs, args: &LogsArgs) -> anyhow::Result<Outcome> {
    let c = match connect(global)? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    // On a swarm each container is a service, whose copies may be on any
    // node: the manager gathers their logs.
    let swarm = super::swarm::section(&c).is_some();
    let Connected {
        desired,
        engine,
        runtime,
        ..
    } = c;
    let of_service: Vec<_> = desired
        .containers
        .iter()
        .filter(|c| c.service == args.service)
        .collect();
    if of_service.is_empty() {
        let services: std::collections::BTreeSet<&str> = desired
            .containers
            .iter()
            .map(|c| c.service.as_str())
            .collect();
        return Err(UsageError::new(
            format!("the manifest has no service `{}`", args.service),
            Some(format!(
                "services: {}",
                services
                    .into_iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        )
        .into());
    }
    let chosen: Vec<_> = match &args.container {
        None => of_service,
        Some(name) => {
            let found: Vec<_> = of_service
                .iter()
                .filter(|c| &c.container == name)
                .copied()
                .collect();
            if found.is_empty() {
                return Err(UsageError::new(
                    format!("the `{}` service has no container `{name}`", args.service),
                    Some(format!(
                        "its containers: {}",
                        of_service
                            .iter()
                            .map(|c| format!("`{}`", c.container))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                )
                .into());
            }
            found
        }
    };
    let since = match &args.since {
        None => None,
        Some(text) => {
            let d = crate::units::parse_duration(text).map_err(|e| {
                UsageError::new(format!("`--since {text}`: {}", e.message), Some(e.hint))
            })?;
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            Some(chrono::Utc::now().timestamp() - secs)
        }
    };
    let prefix = chosen.len() > 1;
    let streams = chosen.iter().map(|c| {
        let label = c.container.clone();
        let lines = if swarm {
            engine
                .service_logs(&c.name, args.follow, args.tail, since)
                .boxed()
        } else {
            engine.logs(&c.name, args.follow, args.tail, since).boxed()
        };
        lines.map(move |line| (label.clone(), line)).boxed()
    });
    runtime.block_on(async {
        let mut merged = futures_util::stream::select_all(streams);
        let mut out = std::io::stdout();
        while let Some((label, line)) = merged.next().await {
            let line = line?;
            let mut w = out.lock();
            if prefix {
                write!(w, "{label} | ")?;
            }
            w.write_all(&line.bytes)?;
            w.flush()?;
            drop(w);
            out = std::io::stdout();
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(Outcome::Success)
}

/// `voisin down [--volumes]`.
pub fn down(global: &GlobalArgs, args: &DownArgs) -> anyhow::Result<Outcome> {
    let c = match connect(global)? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    if args.volumes && !args.yes {
        confirm_volumes(&c.desired.domain)?;
    }
    if let Some(section) = super::swarm::section(&c) {
        return super::swarm::down(global, args, c, &section);
    }
    let Connected {
        desired,
        engine,
        runtime,
        reporter,
        ..
    } = c;
    if args.force_unlock {
        super::deploy::confirm_unlock(args.yes)?;
    }
    runtime.block_on(async {
        let containers = engine.containers(&desired.domain).await?;
        let networks = engine.networks(&desired.domain).await?;
        let volumes = engine.volumes(&desired.domain).await?;
        if containers.is_empty() && networks.is_empty() && (!args.volumes || volumes.is_empty()) {
            reporter.note("nothing to take down");
            return Ok::<_, anyhow::Error>(());
        }
        crate::deploy::ensure_tool_image(&engine).await?;
        let note = |s: &str| reporter.note(s);
        let held = lock::acquire(
            &engine,
            &desired.association,
            &desired.domain,
            "down",
            args.force_unlock,
            &note,
        )
        .await?;
        let lock_name = lock::name(&desired.association);
        let result = async {
            let removals = containers
                .iter()
                .filter(|c| c.name != lock_name)
                .map(|c| async {
                    engine.remove(&c.name).await?;
                    reporter.done(&c.name, &format!("container {} removed", c.name));
                    Ok::<_, anyhow::Error>(())
                });
            for r in futures_util::future::join_all(removals).await {
                r?;
            }
            for n in &networks {
                engine.remove_network(&n.name).await?;
                reporter.done(&n.name, &format!("network {} removed", n.name));
            }
            for v in &volumes {
                let files = v.labels.get(KIND_LABEL).is_some_and(|k| k == "files");
                // Rendered files are made again by the next deploy; data only on request.
                if files || args.volumes {
                    engine.remove_volume(&v.name).await?;
                    reporter.done(&v.name, &format!("volume {} removed", v.name));
                }
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        held.release(&engine).await?;
        result
    })?;
    if !global.quiet && !args.volumes {
        let kept: Vec<&str> = desired.volumes.iter().map(|v| v.name.as_str()).collect();
        if !kept.is_empty() {
            writeln!(
                std::io::stdout().lock(),
                "kept the data volumes: {} (remove them with `voisin down --volumes`)",
                kept.join(", ")
            )?;
        }
    }
    Ok(Outcome::Success)
}

/// Asks to type the association's domain before removing its data.
fn confirm_volumes(domain: &str) -> anyhow::Result<()> {
    super::confirm(
        &format!("this removes every member's data for good; type `{domain}` to go on: "),
        domain,
        "`--volumes` removes every member's data and needs a confirmation",
        "add `--yes` when that is what you want",
        "not confirmed; nothing was removed",
    )
}
