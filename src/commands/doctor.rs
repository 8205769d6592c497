//! `voisin doctor`: everything a first deploy needs, checked on this
//! machine, each with what to do. Read-only: nothing is made or saved
//! (secrets a render would generate are forgotten, the DKIM key is not made).
//!
//! Each check gives `ok`, `warning` (worth knowing, does not stop a
//! deploy) or `problem` (a deploy, or mail, or backups would fail); the
//! exit code is 1 when any check is a problem, else 0.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::dns::partner_mx;
use crate::backup::repo;
use crate::cli::{DoctorArgs, Format, GlobalArgs};
use crate::dns::check::{self, Resolver, Status};
use crate::engine::{Engine, Target};
use crate::manifest::Manifest;
use crate::render::state::Port;
use crate::secrets::{Store, state_dir};
use crate::{Outcome, dns};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Ok,
    Warning,
    Problem,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Problem => "problem",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
struct Check {
    /// Which check: `engine`, `port`, `dns`, `ptr`, `clock`, `disk`,
    /// `backup`, `secrets`.
    #[allow(clippy::struct_field_names)]
    check: &'static str,
    status: Level,
    message: String,
    hint: Option<String>,
}

fn line(
    check: &'static str,
    status: Level,
    message: impl Into<String>,
    hint: Option<String>,
) -> Check {
    Check {
        check,
        status,
        message: message.into(),
        hint,
    }
}

/// Runs every check and prints the report.
pub fn run(global: &GlobalArgs, args: &DoctorArgs) -> anyhow::Result<Outcome> {
    let (path, manifest) = match super::schedule::load_manifest(global)? {
        Ok(loaded) => loaded,
        Err(outcome) => return Ok(outcome),
    };
    let catalog = match super::load_catalog(global)? {
        Ok(loaded) => loaded.catalog,
        Err(outcome) => return Ok(outcome),
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let state = state_dir(&path);
    let mut checks = Vec::new();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let engine = match Target::resolve(manifest.engine.as_ref(), &base) {
        Ok(target) => runtime.block_on(Engine::connect(&target, Arc::new(crate::progress::Silent))),
        Err(e) => Err(e),
    };
    let engine = match engine {
        Ok(engine) => {
            checks.push(line(
                "engine",
                Level::Ok,
                format!(
                    "the Docker engine at `{}` answers (API {}.{})",
                    engine.target(),
                    engine.api.0,
                    engine.api.1
                ),
                None,
            ));
            Some(engine)
        }
        Err(e) => {
            checks.push(line(
                "engine",
                Level::Problem,
                e.to_string(),
                e.hint().map(str::to_string),
            ));
            None
        }
    };

    checks.extend(secrets(&state));

    // The ports the rendered bundle publishes. A secrets file that cannot
    // be read was reported just above; ports do not depend on secrets.
    let mut store =
        Store::open(&state, global.identity.as_deref()).unwrap_or_else(|_| Store::empty(&state));
    match crate::render::render(&manifest, &catalog, &mut store) {
        Ok(desired) => {
            let ours = match &engine {
                Some(engine) => runtime
                    .block_on(engine.containers(&manifest.association.domain))
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| c.state.running)
                    .flat_map(|c| c.ports)
                    .collect(),
                None => Vec::new(),
            };
            let mut needed: Vec<&Port> = desired.containers.iter().flat_map(|c| &c.ports).collect();
            needed.sort_by_key(|p| (p.host, p.protocol.clone()));
            needed.dedup_by_key(|p| (p.host, p.protocol.clone()));
            for port in needed {
                checks.push(port_check(port, &ours));
            }
        }
        Err(e) => checks.push(line(
            "port",
            Level::Problem,
            format!("cannot work out the ports the services need: {e}"),
            Some("run `voisin render` to see the problem in full".into()),
        )),
    }

    checks.extend(dns_checks(&manifest, &store, args));
    checks.push(clock());
    checks.extend(disks(&manifest, &base, engine.as_ref(), &runtime));
    checks.push(backup(&manifest, &base));

    print(global, &checks)?;
    Ok(if checks.iter().any(|c| c.status == Level::Problem) {
        Outcome::Failed
    } else {
        Outcome::Success
    })
}

/// The secrets file must be readable by its owner only, in a folder only
/// its owner can enter.
fn secrets(state: &Path) -> Vec<Check> {
    let file = state.join("secrets.yaml");
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| m.permissions().mode() & 0o777)
    };
    let mut out = Vec::new();
    let Some(file_mode) = mode(&file) else {
        return vec![line(
            "secrets",
            Level::Ok,
            format!(
                "no secrets yet: `{}` is made with mode 0600 at the first render",
                file.display()
            ),
            None,
        )];
    };
    if let Some(dir_mode) = mode(state)
        && dir_mode & 0o077 != 0
    {
        out.push(line(
            "secrets",
            Level::Problem,
            format!(
                "the folder `{}` has mode {dir_mode:o}: other users can look into it",
                state.display()
            ),
            Some(format!("run `chmod 700 {}`", state.display())),
        ));
    }
    if file_mode & 0o077 != 0 {
        out.push(line(
            "secrets",
            Level::Problem,
            format!(
                "`{}` has mode {file_mode:o}: other users can read the association's passwords and keys",
                file.display()
            ),
            Some(format!(
                "run `chmod 600 {}`, then change the secrets others may have read",
                file.display()
            )),
        ));
    }
    if out.is_empty() {
        out.push(line(
            "secrets",
            Level::Ok,
            format!("`{}` is private (mode {file_mode:o})", file.display()),
            None,
        ));
    }
    out
}

/// Whether a port is free on the address it is published on, or already
/// published by this bundle's own running containers.
fn port_check(port: &Port, ours: &[Port]) -> Check {
    let ip: IpAddr = port
        .host_ip
        .as_deref()
        .and_then(|ip| ip.parse().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let at = SocketAddr::new(ip, port.host);
    let shown = format!("{}/{} on {}", port.host, port.protocol, ip);
    let bound = if port.protocol == "udp" {
        UdpSocket::bind(at).map(drop)
    } else {
        TcpListener::bind(at).map(drop)
    };
    match bound {
        Ok(()) => line("port", Level::Ok, format!("port {shown} is free"), None),
        Err(_)
            if ours
                .iter()
                .any(|o| o.host == port.host && o.protocol == port.protocol) =>
        {
            line(
                "port",
                Level::Ok,
                format!("port {shown} is held by this association's own containers"),
                None,
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => line(
            "port",
            Level::Warning,
            format!("cannot tell whether port {shown} is free: binding it needs root"),
            Some(
                "run `voisin doctor` as root (or as the user the engine publishes ports for)"
                    .into(),
            ),
        ),
        Err(e) => line(
            "port",
            Level::Problem,
            format!("port {shown} is taken by another program: {e}"),
            Some(format!(
                "find it with `ss -lntup 'sport = :{}'` and stop it, or move it to another port",
                port.host
            )),
        ),
    }
}

/// DNS records, the partner's backup mail server, and the reverse name of
/// the public addresses.
#[allow(clippy::too_many_lines)]
fn dns_checks(manifest: &Manifest, store: &Store, args: &DoctorArgs) -> Vec<Check> {
    let dkim = store
        .get(dns::DKIM_SECRET)
        .and_then(crate::secrets::generate::dkim_public_record);
    let records = dns::records(manifest, dkim.as_deref());
    let mut out = Vec::new();
    if records.records.is_empty() {
        out.push(line(
            "dns",
            Level::Ok,
            "no DNS record is needed (no public address or no public host)",
            None,
        ));
        return out;
    }
    let resolver = match args.resolver {
        Some(server) => Resolver::server(server),
        None => match Resolver::system() {
            Ok(r) => r,
            Err(e) => {
                out.push(line(
                    "dns",
                    Level::Warning,
                    format!("cannot check DNS: {e}"),
                    None,
                ));
                return out;
            }
        },
    };
    let findings = match check::compare(&records.records, &resolver) {
        Ok(f) => f,
        Err(e) => {
            out.push(line(
                "dns",
                Level::Warning,
                format!("cannot check DNS: {e}"),
                Some("check the machine's network and `/etc/resolv.conf`, or name a server with `--resolver IP:PORT`".into()),
            ));
            return out;
        }
    };
    let mut in_place = 0;
    for f in &findings {
        let r = &f.record;
        let what = format!("`{}.` {} {}", r.name, r.kind(), r.value.presentation());
        let fill =
            "add it in the registrar's DNS panel, then check with `voisin dns --check`".to_string();
        match &f.status {
            Status::Matches => in_place += 1,
            Status::Missing => out.push(line(
                "dns",
                Level::Problem,
                format!("missing: {what}"),
                Some(fill),
            )),
            Status::Different { hint } => out.push(line(
                "dns",
                Level::Problem,
                format!("different: {what} (DNS has {})", f.found.join(", ")),
                Some(hint.clone().unwrap_or_else(|| {
                    "change it in the registrar's DNS panel; `voisin dns --check` says how".into()
                })),
            )),
            Status::Unknown { reason } => out.push(line(
                "dns",
                Level::Warning,
                format!("no answer for {what}: {reason}"),
                Some("ask again in a moment".into()),
            )),
        }
    }
    if in_place > 0 {
        out.push(line(
            "dns",
            Level::Ok,
            format!("{in_place} of {} records in place", findings.len()),
            None,
        ));
    }
    match partner_mx(manifest, &resolver) {
        Ok(Some(p)) if p.addresses.is_empty() => out.push(line(
            "dns",
            Level::Problem,
            format!(
                "the partner's backup mail server `{}` has no address in DNS",
                p.host
            ),
            Some(p.hint()),
        )),
        Ok(Some(p)) => out.push(line(
            "dns",
            Level::Ok,
            format!("the partner's backup mail server `{}` resolves", p.host),
            None,
        )),
        Ok(None) => {}
        Err(e) => out.push(line(
            "dns",
            Level::Warning,
            format!("cannot check the partner's mail server: {e}"),
            None,
        )),
    }
    if let Some(mail) = dns::mail_host(manifest) {
        out.extend(ptr_checks(manifest, mail, &resolver));
    }
    out
}

/// Receivers distrust mail from an address whose reverse name is missing or
/// is not the mail server's.
fn ptr_checks(manifest: &Manifest, mail: &str, resolver: &Resolver) -> Vec<Check> {
    let addresses = manifest.association.public_address.iter().flat_map(|a| {
        [a.ipv4.as_deref(), a.ipv6.as_deref()]
            .into_iter()
            .flatten()
            .filter_map(|t| t.parse::<IpAddr>().ok())
    });
    let mut out = Vec::new();
    for ip in addresses {
        let hint = format!(
            "ask the hosting provider to set the reverse DNS (PTR) of {ip} to `{mail}` (usually in its control panel)"
        );
        match resolver.reverse(ip) {
            Ok(names) if names.iter().any(|n| n.eq_ignore_ascii_case(mail)) => out.push(line(
                "ptr",
                Level::Ok,
                format!("the reverse name of {ip} is `{mail}`"),
                None,
            )),
            Ok(names) if names.is_empty() => out.push(line(
                "ptr",
                Level::Warning,
                format!("{ip} has no reverse name: receivers may refuse its mail"),
                Some(hint),
            )),
            Ok(names) => out.push(line(
                "ptr",
                Level::Warning,
                format!(
                    "the reverse name of {ip} is `{}`, not `{mail}`",
                    names.join("`, `")
                ),
                Some(hint),
            )),
            Err(e) => out.push(line(
                "ptr",
                Level::Warning,
                format!("cannot tell the reverse name of {ip}: {e}"),
                None,
            )),
        }
    }
    out
}

/// The clock, as systemd-timesyncd (or chrony, ntpd) says through
/// `timedatectl`; voisin sends no NTP packet of its own.
fn clock() -> Check {
    let answer = std::process::Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .stdin(std::process::Stdio::null())
        .output();
    match answer {
        Ok(out) if out.status.success() => match String::from_utf8_lossy(&out.stdout).trim() {
            "yes" => line("clock", Level::Ok, "the clock is synchronised (NTP)", None),
            _ => line(
                "clock",
                Level::Problem,
                "the clock is not synchronised: certificates and mail signatures depend on it",
                Some("turn time synchronisation on: `timedatectl set-ntp true` (or install `systemd-timesyncd` or `chrony`)".into()),
            ),
        },
        _ => line(
            "clock",
            Level::Warning,
            "cannot tell whether the clock is synchronised (`timedatectl` does not answer here)",
            Some("check that an NTP client (`systemd-timesyncd`, `chrony`) runs on this machine".into()),
        ),
    }
}

/// Free space on the engine's disk and the repository's, against
/// `operations.limits.disk_free`.
fn disks(
    manifest: &Manifest,
    base: &Path,
    engine: Option<&Engine>,
    runtime: &tokio::runtime::Runtime,
) -> Vec<Check> {
    let limits = manifest.operations.clone().unwrap_or_default().limits;
    let Ok(minimum) = crate::units::parse_free_space(&limits.disk_free) else {
        return Vec::new();
    };
    let mut places: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(engine) = engine
        && let Ok(Some(root)) = runtime.block_on(engine.data_root())
    {
        places.push(("the Docker engine's data", PathBuf::from(root)));
    }
    if let Some(backup) = &manifest.backup
        && let Ok(location) = repo::Location::parse(&backup.repository, base)
        && location.is_local()
    {
        places.push(("the backup repository", base.join(&backup.repository)));
    }
    places
        .into_iter()
        .map(|(what, path)| {
            match crate::watch::Disk::of(what, &path) {
                Ok(disk) => {
                    let free = crate::units::human_bytes(disk.available);
                    if minimum.short(disk.available, disk.total) {
                        line(
                            "disk",
                            Level::Warning,
                            format!(
                                "{what} (`{}`) has {free} free, below `operations.limits.disk_free` ({})",
                                path.display(),
                                limits.disk_free
                            ),
                            Some("free some space (`docker image prune`, old files), or give the machine a larger disk".into()),
                        )
                    } else {
                        line("disk", Level::Ok, format!("{what} (`{}`) has {free} free", path.display()), None)
                    }
                }
                Err(e) => line(
                    "disk",
                    Level::Warning,
                    format!("cannot tell the free space of {what} (`{}`): {e}", path.display()),
                    None,
                ),
            }
        })
        .collect()
}

/// The repository opens with its password.
fn backup(manifest: &Manifest, base: &Path) -> Check {
    let Some(backup) = &manifest.backup else {
        return line(
            "backup",
            Level::Warning,
            "no backups: the manifest has no `backup` section",
            Some(
                "add `backup:` with `repository`, `password_file` and `keep` (see docs/backup.md)"
                    .into(),
            ),
        );
    };
    let failed = |e: repo::RepoError| line("backup", Level::Problem, e.to_string(), e.hint());
    let location = match repo::Location::parse(&backup.repository, base) {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let password = match repo::password(backup, base) {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let opened = repo::open(&location, &password, false);
    location.settle();
    match opened {
        Ok(_) => line(
            "backup",
            Level::Ok,
            format!(
                "the backup repository `{}` opens with its password",
                location.shown
            ),
            None,
        ),
        // No repository yet at a local path: the first backup makes it.
        Err(repo::RepoError::Rustic { message, .. })
            if location.is_local() && message.contains("no repository there yet") =>
        {
            line(
                "backup",
                Level::Warning,
                format!("there is no backup repository at `{}` yet", location.shown),
                Some("the first `voisin backup` makes it".into()),
            )
        }
        Err(e) => failed(e),
    }
}

fn print(global: &GlobalArgs, checks: &[Check]) -> anyhow::Result<()> {
    let count = |l: Level| checks.iter().filter(|c| c.status == l).count();
    let mut out = std::io::stdout().lock();
    if global.format == Format::Json {
        let json = serde_json::json!({
            "version": 1,
            "ready": count(Level::Problem) == 0,
            "counts": { "ok": count(Level::Ok), "warning": count(Level::Warning), "problem": count(Level::Problem) },
            "checks": checks,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    }
    for c in checks {
        if global.quiet && c.status == Level::Ok {
            continue;
        }
        writeln!(out, "{:<8} {}: {}", c.status.word(), c.check, c.message)?;
        if let Some(hint) = &c.hint {
            writeln!(out, "         hint: {hint}")?;
        }
    }
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("1 {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    writeln!(
        out,
        "{} ok, {}, {}",
        count(Level::Ok),
        plural(count(Level::Warning), "warning"),
        plural(count(Level::Problem), "problem")
    )?;
    Ok(())
}
