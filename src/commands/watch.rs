//! `voisin watch`: one pass of every check, alerts for what started, goes
//! on or ended since the last pass; and the findings `voisin status` shows.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::sync::Arc;

use anyhow::Context as _;

use crate::cli::{Format, GlobalArgs};
use crate::engine::{Engine, Target};
use crate::progress::Reporter;
use crate::render::DesiredState;
use crate::watch::incidents::{Changes, Undelivered, WatchState};
use crate::watch::{self, Disk, Finding, Policy, Severity, alert};
use crate::{Outcome, UsageError};

/// What one look found, and each container's restart count now.
pub(super) struct Look {
    /// Every finding, worst first.
    pub findings: Vec<Finding>,
    /// Restart counts, to compare at the next pass.
    pub restarts: BTreeMap<String, i64>,
    /// Each service's backup ages, or why they are unknown.
    pub backups: Result<Option<Vec<watch::BackupAge>>, String>,
}

/// Connects to the manifest's engine for a look; returns it and whether
/// it runs on this machine (its disk can be measured), or why not.
pub(super) fn engine_of(
    bundle: &super::Bundle,
    runtime: &tokio::runtime::Runtime,
    reporter: Arc<dyn Reporter>,
) -> Result<(Engine, bool), String> {
    let base = bundle
        .path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let target =
        Target::resolve(bundle.manifest.engine.as_ref(), &base).map_err(|e| e.to_string())?;
    let engine = runtime
        .block_on(Engine::connect(&target, reporter))
        .map_err(|e| e.to_string())?;
    Ok((engine, matches!(target, Target::Unix(_))))
}

/// Looks at everything the watch checks, through `engine` (with whether
/// it is local) or knowing why there is none. Nothing here fails the
/// look: a check that cannot run is itself a finding.
pub(super) fn look(
    bundle: &super::Bundle,
    desired: &DesiredState,
    runtime: &tokio::runtime::Runtime,
    engine: Result<(&Engine, bool), &str>,
    restarts_before: &BTreeMap<String, i64>,
) -> Look {
    let policy = Policy::of(bundle.manifest.operations.as_ref());
    let mut findings = Vec::new();
    let mut restarts = BTreeMap::new();
    let mut disks = Vec::new();
    let unreachable = |message: String| Finding {
        code: "engine-unreachable".into(),
        subject: "engine".into(),
        severity: Severity::Critical,
        message,
        hint: "run `voisin doctor`; every service may be down".into(),
    };
    match engine {
        Err(e) => findings.push(unreachable(e.to_string())),
        Ok((engine, local)) => {
            runtime.block_on(async {
                match engine.containers(&desired.domain).await {
                    Ok(observed) => {
                        restarts = observed
                            .iter()
                            .map(|c| (c.name.clone(), c.state.restarts))
                            .collect();
                        findings.extend(watch::containers(desired, &observed, restarts_before));
                    }
                    Err(e) => findings.push(unreachable(e.to_string())),
                }
                findings.extend(certificates(engine, desired, &policy).await);
                // The engine's disk can only be measured on its own machine.
                if local && let Ok(Some(root)) = engine.data_root().await {
                    disks.push(Disk::of("volumes", std::path::Path::new(&root)));
                }
            });
        }
    }
    let backups = super::backup::ages(bundle, desired);
    match &backups {
        Ok(Some(ages)) => findings.extend(watch::backups(ages, None, &policy)),
        Ok(None) => findings.push(Finding {
            code: "backup-not-configured".into(),
            subject: "repository".into(),
            severity: Severity::Warning,
            message: "nothing is backed up: the manifest has no `backup` section".into(),
            hint: "add one (see docs/backup.md); a copy on another machine is best".into(),
        }),
        Err(e) => findings.extend(watch::backups(&[], Some(e), &policy)),
    }
    if let Some(path) = bundle
        .manifest
        .backup
        .as_ref()
        .map(|b| std::path::Path::new(&b.repository))
        .filter(|p| p.is_absolute())
    {
        disks.push(Disk::of("repository", path));
    }
    findings.extend(watch::scheduled(&crate::schedule::last_runs(
        &crate::secrets::state_dir(&bundle.path),
    )));
    let disks: Vec<Disk> = disks.into_iter().filter_map(Result::ok).collect();
    findings.extend(watch::disks(&disks, &policy));
    // Knocked on all at once: a filtered port costs its timeout once.
    let ports = watch::mail_ports(desired);
    let answered = runtime.block_on(futures_util::future::join_all(
        ports.iter().map(|(_, address)| watch::answers(*address)),
    ));
    for ((container, address), answered) in ports.iter().zip(answered) {
        if !answered {
            findings.push(watch::port_closed(container, *address));
        }
    }
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.key().cmp(&b.key())));
    Look {
        findings,
        restarts,
        backups,
    }
}

/// The certificate findings: the proxy's store read through the engine.
async fn certificates(engine: &Engine, desired: &DesiredState, policy: &Policy) -> Vec<Finding> {
    let Some(store) = &desired.certificates else {
        return Vec::new();
    };
    let hosts: Vec<String> = desired.routes.iter().map(|r| r.host.clone()).collect();
    if hosts.is_empty() {
        return Vec::new();
    }
    let unreadable = |why: String| {
        vec![Finding {
            code: "certificates-unreadable".into(),
            subject: store.container.clone(),
            severity: Severity::Warning,
            message: format!(
                "cannot read the certificates in `{}`: {why}",
                store.container
            ),
            hint: "see `voisin logs proxy`".into(),
        }]
    };
    let tar = match engine.download(&store.container, &store.path).await {
        // No store yet: the proxy has asked for no certificate so far.
        Ok(None) => return watch::certificates(&[], &hosts, now(), policy),
        Ok(Some(tar)) => tar,
        Err(e) if e.is_not_found() => return Vec::new(),
        Err(e) => return unreadable(e.to_string()),
    };
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut json = Vec::new();
    let read = archive.entries().and_then(|mut entries| {
        if let Some(entry) = entries.next() {
            entry?.read_to_end(&mut json)?;
        }
        Ok(())
    });
    if let Err(e) = read {
        return unreadable(e.to_string());
    }
    let parsed = match store.format {
        crate::catalog::CertificateFormat::TraefikAcme => watch::traefik_store(&json),
    };
    match parsed {
        Ok(certs) => watch::certificates(&certs, &hosts, now(), policy),
        Err(why) => unreadable(why),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `voisin watch`.
pub fn watch(global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let mut bundle = match super::load_bundle(global)? {
        Ok(b) => b,
        Err(outcome) => return Ok(outcome),
    };
    let desired = crate::render::render(&bundle.manifest, &bundle.catalog, &mut bundle.secrets)?;
    bundle.secrets.save()?;
    let dir = crate::secrets::state_dir(&bundle.path);
    std::fs::create_dir_all(&dir)?;
    // Two passes at once (the timer and an admin) would both tell the same
    // news: the second waits for the first.
    let lock_path = dir.join("watch.lock");
    let lock = std::fs::File::create(&lock_path)
        .and_then(|f| f.lock().map(|()| f))
        .with_context(|| format!("cannot lock `{}`", lock_path.display()))?;
    let mut state = WatchState::read(&dir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reporter: Arc<dyn Reporter> = Arc::new(super::progress::Cli::new(global));
    let engine = engine_of(&bundle, &runtime, reporter);
    let seen = look(
        &bundle,
        &desired,
        &runtime,
        engine
            .as_ref()
            .map(|(e, local)| (e, *local))
            .map_err(String::as_str),
        &state.restarts,
    );
    let policy = Policy::of(bundle.manifest.operations.as_ref());
    let remind = i64::try_from(policy.remind_every.as_secs()).unwrap_or(i64::MAX);
    let at = now();
    let changes = state.update(&seen.findings, at, remind);
    let sent = if changes.is_empty() {
        Vec::new()
    } else {
        runtime.block_on(tell(&bundle, &changes, at))
    };
    let delivered = sent.iter().any(|(_, r)| r.is_ok());
    let attempted = !sent.is_empty();
    if delivered || (!changes.is_empty() && !attempted) {
        // With no channel configured the journal is where alerts go: what
        // was printed there counts as told.
        state.told(&changes, at);
    } else if attempted {
        state.undelivered = Some(Undelivered {
            at,
            errors: sent
                .iter()
                .filter_map(|(_, r)| r.as_ref().err().cloned())
                .collect(),
        });
    }
    // A pass that could not see the containers keeps the last counts, so
    // a crash during an engine hiccup is still noticed afterwards.
    if !seen.restarts.is_empty() {
        state.restarts = seen.restarts;
    }
    state.write(&dir)?;
    drop(lock);

    report(
        global,
        &bundle.manifest.association.name,
        &seen.findings,
        &changes,
        &sent,
        at,
    )?;
    let critical = seen
        .findings
        .iter()
        .any(|f| f.severity == Severity::Critical);
    Ok(if critical || (attempted && !delivered) {
        Outcome::Failed
    } else {
        Outcome::Success
    })
}

/// Prints a pass: its findings, and the alert with each channel's outcome.
fn report(
    global: &GlobalArgs,
    association: &str,
    findings: &[Finding],
    changes: &Changes,
    sent: &[(&'static str, Result<(), String>)],
    at: i64,
) -> anyhow::Result<()> {
    let attempted = !sent.is_empty();
    let mut out = std::io::stdout().lock();
    match global.format {
        Format::Json => {
            let json = serde_json::json!({
                "version": 1,
                "findings": findings,
                "alert": (!changes.is_empty()).then(|| serde_json::json!({
                    "started": changes.started.len(),
                    "reminded": changes.reminded.len(),
                    "resolved": changes.resolved.len(),
                    "channels": sent.iter().map(|(name, r)| serde_json::json!({
                        "channel": name,
                        "delivered": r.is_ok(),
                        "error": r.as_ref().err(),
                    })).collect::<Vec<_>>(),
                })),
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        Format::Text => {
            print_findings(&mut out, findings)?;
            if !changes.is_empty() {
                let alert = alert::Alert::of(association, changes, at);
                writeln!(out, "alert: {}", alert.subject)?;
                if !attempted {
                    writeln!(
                        out,
                        "  (no alert channel: add `operations.alerts` to be told by mail or webhook)"
                    )?;
                }
                for (name, result) in sent {
                    match result {
                        Ok(()) => writeln!(out, "  sent by {name}")?,
                        Err(e) => writeln!(out, "  NOT sent by {name}: {e}")?,
                    }
                }
            }
        }
    }
    Ok(())
}

/// Sends the alert for `changes` through every channel of the manifest, at
/// once; returns each channel's name and outcome.
async fn tell(
    bundle: &super::Bundle,
    changes: &Changes,
    at: i64,
) -> Vec<(&'static str, Result<(), String>)> {
    let Some(alerts) = bundle
        .manifest
        .operations
        .as_ref()
        .and_then(|o| o.alerts.as_ref())
    else {
        return Vec::new();
    };
    let alert = alert::Alert::of(&bundle.manifest.association.name, changes, at);
    let to = crate::manifest::alert_recipients(&bundle.manifest, alerts);
    let password = bundle.secrets.get(alert::SMTP_SECRET);
    let mail = async {
        match &alerts.smtp {
            Some(relay) => Some(
                alert::mail(relay, password, &to, &alert)
                    .await
                    .map_err(|e| e.to_string()),
            ),
            None => None,
        }
    };
    let hook = async {
        match &alerts.webhook {
            Some(hook) => Some(alert::post(hook, &alert).await.map_err(|e| e.to_string())),
            None => None,
        }
    };
    let (mail, hook) = tokio::join!(mail, hook);
    let mut out = Vec::new();
    out.extend(mail.map(|r| ("mail", r)));
    out.extend(hook.map(|r| ("webhook", r)));
    out
}

/// The findings as lines: severity, what, what to do.
pub(super) fn print_findings(
    out: &mut impl std::io::Write,
    findings: &[Finding],
) -> std::io::Result<()> {
    if findings.is_empty() {
        return writeln!(out, "watch: all well");
    }
    for f in findings {
        writeln!(out, "{:<8} {} [{}]", f.severity.word(), f.message, f.code)?;
        writeln!(out, "         what to do: {}", f.hint)?;
    }
    Ok(())
}

/// `voisin secrets set NAME`: a secret given by someone else (an outside
/// relay's password), read from standard input so it never shows in the
/// shell's history or the process list.
pub fn set_secret(global: &GlobalArgs, name: &str) -> anyhow::Result<Outcome> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(UsageError::new(
            format!("`{name}` is not a secret name"),
            Some(format!("like `{}`", alert::SMTP_SECRET)),
        )
        .into());
    }
    let mut bundle = match super::load_bundle(global)? {
        Ok(b) => b,
        Err(outcome) => return Ok(outcome),
    };
    let mut value = String::new();
    std::io::stdin().read_to_string(&mut value)?;
    let value = value.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(UsageError::new(
            "no value on standard input",
            Some(format!(
                "type it after `voisin secrets set {name}` and end with Ctrl-D, or pipe it in"
            )),
        )
        .into());
    }
    let replaced = bundle.secrets.get(name).is_some();
    bundle.secrets.set(name, crate::secrets::Secret::new(value));
    bundle.secrets.save()?;
    if !global.quiet {
        writeln!(
            std::io::stdout().lock(),
            "{} the secret `{name}` in {}",
            if replaced { "replaced" } else { "saved" },
            bundle.secrets.path().display()
        )?;
    }
    Ok(Outcome::Success)
}
