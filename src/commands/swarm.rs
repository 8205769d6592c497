//! `plan`, `deploy`, `status` and `down` when the manifest's engine is a
//! swarm (`engine.swarm`): the same commands, on swarm services.

use std::io::Write as _;
use std::time::Instant;

use super::deploy::{Connected, confirm_unlock};
use crate::cli::{DeployArgs, DownArgs, Format, GlobalArgs};
use crate::deploy::swarm::{self, Swarm};
use crate::deploy::{self, lock};
use crate::plan::swarm::SwarmPlan;
use crate::{Outcome, plan};

/// The manifest's swarm section, when it has one.
pub(super) fn section(c: &Connected) -> Option<crate::manifest::Swarm> {
    c.bundle
        .manifest
        .engine
        .as_ref()
        .and_then(|e| e.swarm.clone())
}

/// The folder the manifest is in, which relative paths start from.
pub(super) fn base(c: &Connected) -> std::path::PathBuf {
    c.bundle
        .path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}

/// Every engine call of the run: the manager's and the nodes'.
fn calls(swarm: &Swarm) -> (u64, u64) {
    swarm
        .nodes
        .iter()
        .filter_map(|(_, e)| e.as_ref())
        .map(|e| e.calls())
        .fold(swarm.manager.calls(), |(r, w), (r2, w2)| (r + r2, w + w2))
}

/// `voisin plan` on a swarm.
pub(super) fn plan(
    global: &GlobalArgs,
    c: Connected,
    section: &crate::manifest::Swarm,
) -> anyhow::Result<Outcome> {
    let base = base(&c);
    let Connected {
        desired,
        engine,
        runtime,
        reporter,
        ..
    } = c;
    let p = runtime.block_on(async {
        let swarm = swarm::connect(engine, section, &base, &reporter).await?;
        let observed = Box::pin(swarm::observe(&swarm, &desired)).await?;
        let builds = swarm::builds(&swarm, &desired).await?;
        swarm::plan(&desired, &swarm, &observed, &builds).map(|p| (p, builds))
    })?;
    print_plan(global, &p.0, &p.1)?;
    Ok(Outcome::Success)
}

fn print_plan(
    global: &GlobalArgs,
    p: &SwarmPlan,
    builds: &[plan::ImageChange],
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match global.format {
        Format::Json => {
            let json = serde_json::json!({
                "version": 1,
                "swarm": true,
                "changes": !p.is_empty() || !builds.is_empty(),
                "builds": builds,
                "plan": p,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        Format::Text => {
            for b in builds {
                writeln!(
                    out,
                    "  {:<8} image {} on the manager ({})",
                    "build",
                    b.name,
                    b.reason.as_deref().unwrap_or("")
                )?;
            }
            write!(out, "{}", plan::swarm::text(p))?;
        }
    }
    Ok(())
}

/// `voisin deploy` on a swarm.
pub(super) fn deploy(
    global: &GlobalArgs,
    args: &DeployArgs,
    c: Connected,
    section: &crate::manifest::Swarm,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let base = base(&c);
    let Connected {
        bundle,
        desired,
        engine,
        runtime,
        reporter,
    } = c;
    if args.force_unlock {
        confirm_unlock(args.yes)?;
    }
    let result = runtime.block_on(async {
        let swarm = swarm::connect(engine, section, &base, &reporter).await?;
        let record = deploy::record::read(&swarm.manager, &desired.association).await?;
        let (used, _) = crate::upgrade::effective_catalog(&bundle.catalog, &record);
        let deployed = crate::upgrade::deployed(&used, &desired);
        let observed = Box::pin(swarm::observe(&swarm, &desired)).await?;
        let builds = swarm::builds(&swarm, &desired).await?;
        let first = swarm::plan(&desired, &swarm, &observed, &builds)?;
        if first.is_empty() && builds.is_empty() && record.services == deployed {
            // Nothing to change: no lock, no write.
            return Ok::<_, anyhow::Error>((swarm, first, None));
        }
        deploy::ensure_tool_image(&swarm.manager).await?;
        let note = |s: &str| reporter.note(s);
        let held = lock::acquire(
            &swarm.manager,
            &desired.association,
            &desired.domain,
            "deploy",
            args.force_unlock,
            &note,
        )
        .await?;
        // Under the lock, look again: another admin may have deployed.
        let outcome = Box::pin(async {
            let observed = Box::pin(swarm::observe(&swarm, &desired)).await?;
            let builds = swarm::builds(&swarm, &desired).await?;
            let p = swarm::plan(&desired, &swarm, &observed, &builds)?;
            if !global.quiet && global.format == Format::Text && !p.is_empty() {
                let mut err = std::io::stderr().lock();
                writeln!(err, "plan:")?;
                write!(err, "{}", plan::swarm::text(&p))?;
            }
            let summary = Box::pin(swarm::apply(&swarm, &desired, &p, &builds, &reporter)).await?;
            crate::upgrade::record_deployed(&swarm.manager, &desired, deployed).await?;
            Ok::<_, anyhow::Error>((p, Some(summary)))
        })
        .await;
        held.release(&swarm.manager).await?;
        outcome.map(|(p, s)| (swarm, p, s))
    });
    let (swarm, p, summary) = result?;
    let (reads, writes) = calls(&swarm);
    let mut out = std::io::stdout().lock();
    match global.format {
        Format::Json => {
            let json = serde_json::json!({
                "version": 1,
                "swarm": true,
                "plan": p,
                "summary": summary.clone().unwrap_or_default(),
                "urls": desired.urls,
                "engine_calls": { "reads": reads, "writes": writes },
                "seconds": started.elapsed().as_secs_f64(),
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        Format::Text if !global.quiet => {
            match &summary {
                None => write!(out, "{}", plan::swarm::text(&p))?,
                Some(s) => writeln!(
                    out,
                    "deployed on the swarm in {:.1} s: {} created, {} updated, {} removed; {} steps run",
                    started.elapsed().as_secs_f64(),
                    s.created,
                    s.replaced,
                    s.removed,
                    s.steps_run
                )?,
            }
            for (role, url) in &desired.urls {
                writeln!(out, "{role}: {url}")?;
            }
        }
        Format::Text => {}
    }
    Ok(Outcome::Success)
}

/// `voisin status` on a swarm: the nodes, and each service's copies with
/// the node each runs on. Exits 1 when a service has no healthy copy.
pub(super) fn status(
    global: &GlobalArgs,
    c: Connected,
    section: &crate::manifest::Swarm,
) -> anyhow::Result<Outcome> {
    let base = base(&c);
    let Connected {
        bundle,
        desired,
        engine,
        runtime,
        reporter,
    } = c;
    let ages = super::backup::ages(&bundle, &desired);
    let (swarm, observed) = runtime.block_on(async {
        let swarm = swarm::connect(engine, section, &base, &reporter).await?;
        let observed = Box::pin(swarm::observe(&swarm, &desired)).await?;
        Ok::<_, anyhow::Error>((swarm, observed))
    })?;
    let node_name = |id: &Option<String>| {
        id.as_ref()
            .and_then(|id| observed.nodes.iter().find(|n| &n.id == id))
            .map_or_else(|| "-".to_string(), |n| n.hostname.clone())
    };
    let nodes: Vec<serde_json::Value> = observed
        .nodes
        .iter()
        .map(|n| {
            serde_json::json!({
                "node": n.hostname,
                "role": n.role,
                "state": n.state,
                "availability": n.availability,
                "engine_answers": swarm.node(&n.hostname).is_some(),
                "in_manifest": swarm.layout.nodes.contains(&n.hostname),
            })
        })
        .collect();
    let mut down = false;
    let mut services = Vec::new();
    for spec in &desired.containers {
        let found = observed.services.iter().find(|s| s.name == spec.name);
        let tasks: Vec<serde_json::Value> = found
            .map(|s| {
                observed
                    .tasks
                    .iter()
                    .filter(|t| t.service_id == s.id && t.desired == "running")
                    .map(|t| {
                        serde_json::json!({
                            "node": node_name(&t.node_id),
                            "state": t.state,
                            "since": t.since,
                            "error": t.error,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let healthy = tasks.iter().any(|t| t["state"] == "running");
        down |= !healthy;
        let pinned = observed.nodes.iter().find(|n| {
            n.labels
                .get(&plan::swarm::pin_label(&desired.association, &spec.service))
                .map(String::as_str)
                == Some(plan::swarm::PINNED)
        });
        services.push(serde_json::json!({
            "service": spec.service,
            "name": spec.name,
            "state": if found.is_none() { "missing" } else if healthy { "running" } else { "down" },
            "pinned": pinned.map(|n| n.hostname.clone()),
            "tasks": tasks,
        }));
    }
    let mut out = std::io::stdout().lock();
    match global.format {
        Format::Json => {
            let json = serde_json::json!({
                "version": 1,
                "swarm": true,
                "nodes": nodes,
                "services": services,
                "urls": desired.urls,
                "down": down,
                "backups": super::backup::ages_json(&ages),
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        Format::Text => {
            print_status(&mut out, &nodes, &services, &desired.urls)?;
            super::backup::print_ages(&mut out, &ages)?;
        }
    }
    Ok(if down {
        Outcome::Failed
    } else {
        Outcome::Success
    })
}

/// `status` as text: the machines, then the services and their copies.
fn print_status(
    out: &mut impl std::io::Write,
    nodes: &[serde_json::Value],
    services: &[serde_json::Value],
    urls: &std::collections::BTreeMap<String, String>,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<24} {:<8} {:<8} {:<8} ENGINE",
        "NODE", "ROLE", "STATE", "AVAIL"
    )?;
    for n in nodes {
        writeln!(
            out,
            "{:<24} {:<8} {:<8} {:<8} {}",
            n["node"].as_str().unwrap_or("-"),
            n["role"].as_str().unwrap_or("-"),
            n["state"].as_str().unwrap_or("-"),
            n["availability"].as_str().unwrap_or("-"),
            if n["engine_answers"] == true {
                "answers"
            } else {
                "does not answer"
            }
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<28} {:<8} {:<24} TASKS",
        "SERVICE", "STATE", "PINNED TO"
    )?;
    for s in services {
        let tasks: Vec<String> = s["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                format!(
                    "{} on {}",
                    t["state"].as_str().unwrap_or("-"),
                    t["node"].as_str().unwrap_or("-")
                )
            })
            .collect();
        writeln!(
            out,
            "{:<28} {:<8} {:<24} {}",
            s["name"].as_str().unwrap_or("-"),
            s["state"].as_str().unwrap_or("-"),
            s["pinned"].as_str().unwrap_or("any node"),
            if tasks.is_empty() {
                "-".into()
            } else {
                tasks.join(", ")
            }
        )?;
    }
    for (role, url) in urls {
        writeln!(out, "{role}: {url}")?;
    }
    Ok(())
}

/// `voisin down` on a swarm: services, configs, secrets and networks; with
/// `--volumes`, the volumes on every node whose engine answers.
pub(super) fn down(
    global: &GlobalArgs,
    args: &DownArgs,
    c: Connected,
    section: &crate::manifest::Swarm,
) -> anyhow::Result<Outcome> {
    let base = base(&c);
    let Connected {
        desired,
        engine,
        runtime,
        reporter,
        ..
    } = c;
    runtime.block_on(async {
        let swarm = swarm::connect(engine, section, &base, &reporter).await?;
        let m = &swarm.manager;
        let names = std::collections::HashMap::new();
        for s in m.services(&desired.domain, &names).await? {
            m.remove_service(&s.name).await?;
        }
        // A service's tasks take a moment to stop; their configs, secrets
        // and networks are in use until then.
        let deadline = Instant::now() + std::time::Duration::from_mins(1);
        loop {
            for f in m.swarm_files(&desired.domain).await? {
                m.remove_swarm_file(&f).await?;
            }
            for n in m.networks(&desired.domain).await? {
                let _ = m.remove_network(&n.name).await;
            }
            let left = m.swarm_files(&desired.domain).await?.len()
                + m.networks(&desired.domain).await?.len();
            if left == 0 || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        if args.volumes {
            for (_, engine) in &swarm.nodes {
                if let Some(engine) = engine {
                    for v in &desired.volumes {
                        engine.remove_volume(&v.name).await?;
                    }
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    if !global.quiet && global.format == Format::Text {
        println!("the association's services are gone from the swarm");
    }
    Ok(Outcome::Success)
}
