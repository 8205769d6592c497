//! `voisin schedule install|remove|show`, and the hidden `schedule run JOB`
//! that the timers and cron lines run.
//!
//! Where things go: systemd units in `/etc/systemd/system` (root) or
//! `~/.config/systemd/user` (anyone else, or `--user`); where systemd does
//! not run (no `/run/systemd/system`), `/etc/cron.d/voisin-SLUG` (root) or a
//! block in the user's crontab. `--dir` (or `VOISIN_SCHEDULE_DIR`) writes
//! into a folder instead and asks neither `systemctl` nor `crontab`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;

use crate::cli::{
    Format, GlobalArgs, ScheduleCommand, ScheduleInstallArgs, ScheduleWhereArgs, Scheduler,
};
use crate::manifest::Manifest;
use crate::schedule::{self, Job, LastRun, Routine, cron, systemd};
use crate::{Outcome, UsageError};

/// Runs `voisin schedule …`.
pub fn run(global: &GlobalArgs, cmd: &ScheduleCommand) -> anyhow::Result<Outcome> {
    if let ScheduleCommand::Run { job } = cmd {
        return run_job(global, job);
    }
    let (path, manifest) = match load_manifest(global)? {
        Ok(loaded) => loaded,
        Err(outcome) => return Ok(outcome),
    };
    let exe = std::env::current_exe().context("cannot tell where the voisin executable is")?;
    let routine = schedule::routine(&manifest, &path, &exe)?;
    match cmd {
        ScheduleCommand::Install(args) => install(global, &routine, args),
        ScheduleCommand::Remove(args) => remove(global, &routine, args),
        ScheduleCommand::Show(args) => show(global, &routine, args),
        ScheduleCommand::Run { .. } => Ok(Outcome::Success),
    }
}

/// The manifest, checked, with its absolute path.
pub(super) fn load_manifest(
    global: &GlobalArgs,
) -> anyhow::Result<Result<(PathBuf, Manifest), Outcome>> {
    let (path, manifest, _) = match super::load_manifest(global)? {
        Ok(m) => m,
        Err(outcome) => return Ok(Err(outcome)),
    };
    let absolute = std::path::absolute(&path)
        .with_context(|| format!("cannot make `{}` an absolute path", path.display()))?;
    Ok(Ok((absolute, manifest)))
}

/// Where the routine lives, resolved from the flags and the machine.
struct Place {
    scheduler: Scheduler,
    /// A user's units or crontab, rather than the system's.
    user: bool,
    /// The folder written into.
    dir: PathBuf,
    /// Whether `systemctl` / `crontab` are asked (not with `--dir`).
    live: bool,
}

impl Place {
    fn resolve(args: &ScheduleWhereArgs) -> anyhow::Result<Self> {
        let scheduler = args
            .with
            .unwrap_or(if Path::new("/run/systemd/system").exists() {
                Scheduler::Systemd
            } else {
                Scheduler::Cron
            });
        let user = args.user || !nix::unistd::geteuid().is_root();
        let live = args.dir.is_none();
        let dir = match (&args.dir, scheduler, user) {
            (Some(dir), _, _) => dir.clone(),
            (None, Scheduler::Systemd, false) => PathBuf::from("/etc/systemd/system"),
            (None, Scheduler::Systemd, true) => config_home()?.join("systemd/user"),
            (None, Scheduler::Cron, false) => PathBuf::from("/etc/cron.d"),
            // The user's crontab is reached through `crontab`, not a folder.
            (None, Scheduler::Cron, true) => PathBuf::new(),
        };
        Ok(Self {
            scheduler,
            user,
            dir,
            live,
        })
    }

    /// The file the cron lines are in, unless they go through `crontab`.
    fn cron_file(&self, routine: &Routine) -> Option<PathBuf> {
        match (self.user, self.live) {
            (false, _) => Some(self.dir.join(format!("voisin-{}", routine.slug))),
            (true, false) => Some(self.dir.join("crontab")),
            (true, true) => None,
        }
    }

    fn systemctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = Command::new("systemctl");
        if self.user {
            cmd.arg("--user");
        }
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("cannot run `systemctl`")?;
        if !out.status.success() {
            return Err(UsageError::new(
                format!(
                    "`systemctl {}{}` failed: {}",
                    if self.user { "--user " } else { "" },
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                Some(
                    "check that systemd runs here (`systemctl status`), or use `--with cron`"
                        .into(),
                ),
            )
            .into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn config_home() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from)
        && dir.is_absolute()
    {
        return Ok(dir);
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".config"))
        .ok_or_else(|| {
            UsageError::new("`HOME` is not set, so user units have no place", None).into()
        })
}

/// The user's crontab, empty when they have none.
fn read_crontab() -> anyhow::Result<String> {
    let out = Command::new("crontab")
        .arg("-l")
        .stdin(Stdio::null())
        .output()
        .context("cannot run `crontab` (Debian's `cron` package)")?;
    // `crontab -l` fails when the user has no crontab yet.
    Ok(if out.status.success() {
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        String::new()
    })
}

fn write_crontab(text: &str) -> anyhow::Result<()> {
    let mut child = Command::new("crontab")
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run `crontab` (Debian's `cron` package)")?;
    child
        .stdin
        .take()
        .context("crontab's input")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(UsageError::new(
            format!("`crontab -` refused the new crontab: {}", String::from_utf8_lossy(&out.stderr).trim()),
            Some("this is a bug in voisin if the lines came from `schedule install`: please report it".into()),
        )
        .into());
    }
    Ok(())
}

/// Files in `dir` that voisin wrote for this routine's slug: (path, text).
fn our_files(dir: &Path, routine: &Routine) -> Vec<(PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(PathBuf, String)> = entries
        .filter_map(Result::ok)
        .filter(|e| systemd::is_ours(&routine.slug, &e.file_name().to_string_lossy()))
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            Some((e.path(), text))
        })
        .collect();
    files.sort();
    files
}

/// Refuses to replace what another manifest of the same short name installed.
fn refuse_other(path: &Path, text: &str, routine: &Routine) -> anyhow::Result<()> {
    match schedule::manifest_of(text) {
        Some(m) if m == routine.manifest => Ok(()),
        other => Err(UsageError::new(
            format!(
                "`{}` is already there, written for {}",
                path.display(),
                other.map_or_else(|| "something else than voisin".to_string(), |m| format!("the manifest `{}`", m.display()))
            ),
            Some(format!(
                "two associations named `{}` cannot share a machine's routine: remove it with `voisin -f OTHER schedule remove`, or move it away",
                routine.slug
            )),
        )
        .into()),
    }
}

#[allow(clippy::too_many_lines)]
fn install(
    global: &GlobalArgs,
    routine: &Routine,
    args: &ScheduleInstallArgs,
) -> anyhow::Result<Outcome> {
    let place = Place::resolve(&args.target)?;
    let mut out = std::io::stdout().lock();
    let mut notes: Vec<String> = routine
        .left_out
        .iter()
        .map(|(job, why)| format!("no {} job: {why}", job.name()))
        .collect();
    match place.scheduler {
        Scheduler::Systemd => {
            let files = systemd::units(routine);
            if args.dry_run {
                for (name, text) in &files {
                    writeln!(out, "# {}\n{text}", place.dir.join(name).display())?;
                }
                return Ok(Outcome::Success);
            }
            for (path, text) in our_files(&place.dir, routine) {
                refuse_other(&path, &text, routine)?;
            }
            std::fs::create_dir_all(&place.dir)
                .with_context(|| format!("cannot make the folder `{}`", place.dir.display()))?;
            // Jobs no longer in the routine (the backup section was removed).
            let stale: Vec<PathBuf> = our_files(&place.dir, routine)
                .into_iter()
                .map(|(p, _)| p)
                .filter(|p| {
                    !files
                        .iter()
                        .any(|(n, _)| p.file_name().is_some_and(|f| f == n.as_str()))
                })
                .collect();
            for path in &stale {
                if place.live && path.extension().is_some_and(|e| e == "timer") {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let _ = place.systemctl(&["disable", "--now", &name]);
                }
                std::fs::remove_file(path)
                    .with_context(|| format!("cannot remove `{}`", path.display()))?;
            }
            for (name, text) in &files {
                let path = place.dir.join(name);
                std::fs::write(&path, text)
                    .with_context(|| format!("cannot write `{}`", path.display()))?;
            }
            if place.live {
                place.systemctl(&["daemon-reload"])?;
                let timers: Vec<String> = files
                    .iter()
                    .filter(|(n, _)| Path::new(n).extension().is_some_and(|e| e == "timer"))
                    .map(|(n, _)| n.clone())
                    .collect();
                let mut enable = vec!["enable", "--now"];
                enable.extend(timers.iter().map(String::as_str));
                place.systemctl(&enable)?;
                if place.user {
                    notes.push(format!(
                        "user timers run only while {} is logged in, unless lingering is on: `loginctl enable-linger {}`",
                        user_name(),
                        user_name()
                    ));
                }
            }
        }
        Scheduler::Cron => {
            let system = cron::system_zone();
            let today = chrono::Utc::now()
                .with_timezone(
                    &routine
                        .timezone
                        .parse::<chrono_tz::Tz>()
                        .unwrap_or(chrono_tz::Tz::UTC),
                )
                .date_naive();
            let (block, converted) = cron::block(routine, !place.user, &system, today);
            if converted.shifts {
                notes.push(format!(
                    "cron runs in this machine's time zone ({system}), not the association's ({}): the times were converted for today's offsets, and move by an hour when daylight saving time changes in one zone and not the other; set the machine's zone with `timedatectl set-timezone {}`, or run `voisin schedule install` again after each change",
                    routine.timezone, routine.timezone
                ));
            }
            let file = place.cron_file(routine);
            if args.dry_run {
                if let Some(file) = &file {
                    writeln!(out, "# {}", file.display())?;
                } else {
                    writeln!(out, "# the crontab of {}", user_name())?;
                }
                write!(out, "{block}")?;
                print_notes(global, &notes)?;
                return Ok(Outcome::Success);
            }
            match (&file, place.user) {
                (Some(file), false) => {
                    if let Ok(text) = std::fs::read_to_string(file) {
                        refuse_other(file, &text, routine)?;
                    }
                    if let Some(dir) = file.parent() {
                        std::fs::create_dir_all(dir)?;
                    }
                    std::fs::write(file, &block)
                        .with_context(|| format!("cannot write `{}`", file.display()))?;
                    // cron ignores files in /etc/cron.d others may write.
                    std::fs::set_permissions(
                        file,
                        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(
                            0o644,
                        ),
                    )?;
                }
                (Some(file), true) => {
                    if let Some(dir) = file.parent() {
                        std::fs::create_dir_all(dir)?;
                    }
                    let old = std::fs::read_to_string(file).unwrap_or_default();
                    std::fs::write(file, cron::merge(&old, routine, Some(&block)))
                        .with_context(|| format!("cannot write `{}`", file.display()))?;
                }
                (None, _) => {
                    let old = read_crontab()?;
                    write_crontab(&cron::merge(&old, routine, Some(&block)))?;
                }
            }
        }
    }
    if !global.quiet {
        writeln!(
            out,
            "installed the routine of {} ({}):",
            routine.domain,
            describe_place(&place, routine)
        )?;
        for (job, when) in &routine.jobs {
            writeln!(
                out,
                "  {:<7} {}",
                job.name(),
                when.describe(&routine.timezone)
            )?;
        }
    }
    print_notes(global, &notes)?;
    Ok(Outcome::Success)
}

fn print_notes(global: &GlobalArgs, notes: &[String]) -> anyhow::Result<()> {
    if global.quiet {
        return Ok(());
    }
    let mut err = std::io::stderr().lock();
    for note in notes {
        writeln!(err, "note: {note}")?;
    }
    Ok(())
}

fn user_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| nix::unistd::geteuid().to_string())
}

fn describe_place(place: &Place, routine: &Routine) -> String {
    match (place.scheduler, place.cron_file(routine)) {
        (Scheduler::Systemd, _) => format!(
            "systemd {}units in `{}`",
            if place.user { "user " } else { "" },
            place.dir.display()
        ),
        (Scheduler::Cron, Some(file)) => format!("cron, `{}`", file.display()),
        (Scheduler::Cron, None) => format!("cron, the crontab of {}", user_name()),
    }
}

fn remove(
    global: &GlobalArgs,
    routine: &Routine,
    args: &ScheduleWhereArgs,
) -> anyhow::Result<Outcome> {
    let place = Place::resolve(args)?;
    let mut removed = Vec::new();
    match place.scheduler {
        Scheduler::Systemd => {
            let files: Vec<(PathBuf, String)> = our_files(&place.dir, routine)
                .into_iter()
                .filter(|(_, text)| {
                    schedule::manifest_of(text).as_deref() == Some(routine.manifest.as_path())
                })
                .collect();
            if place.live {
                // Timers first, so none starts a service being removed.
                for (path, _) in files
                    .iter()
                    .filter(|(p, _)| p.extension().is_some_and(|e| e == "timer"))
                {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    place.systemctl(&["disable", "--now", &name])?;
                }
                for (path, _) in files
                    .iter()
                    .filter(|(p, _)| p.extension().is_some_and(|e| e == "service"))
                {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    place.systemctl(&["stop", &name])?;
                }
            }
            for (path, _) in &files {
                std::fs::remove_file(path)
                    .with_context(|| format!("cannot remove `{}`", path.display()))?;
                removed.push(path.display().to_string());
            }
            if place.live && !files.is_empty() {
                place.systemctl(&["daemon-reload"])?;
                let _ = place.systemctl(&["reset-failed"]);
            }
        }
        Scheduler::Cron => match (place.cron_file(routine), place.user) {
            (Some(file), false) => {
                if let Ok(text) = std::fs::read_to_string(&file)
                    && schedule::manifest_of(&text).as_deref() == Some(routine.manifest.as_path())
                {
                    std::fs::remove_file(&file)
                        .with_context(|| format!("cannot remove `{}`", file.display()))?;
                    removed.push(file.display().to_string());
                }
            }
            (Some(file), true) => {
                if let Ok(old) = std::fs::read_to_string(&file) {
                    let new = cron::merge(&old, routine, None);
                    if new != old {
                        removed.push(format!("the lines of `{}`", file.display()));
                        if new.trim().is_empty() {
                            std::fs::remove_file(&file)?;
                        } else {
                            std::fs::write(&file, new)?;
                        }
                    }
                }
            }
            (None, _) => {
                let old = read_crontab()?;
                let new = cron::merge(&old, routine, None);
                if new != old {
                    removed.push(format!("the lines in the crontab of {}", user_name()));
                    write_crontab(&new)?;
                }
            }
        },
    }
    if !global.quiet {
        let mut out = std::io::stdout().lock();
        if removed.is_empty() {
            writeln!(
                out,
                "nothing of {} was installed ({})",
                routine.domain,
                describe_place(&place, routine)
            )?;
        }
        for r in &removed {
            writeln!(out, "removed {r}")?;
        }
    }
    Ok(Outcome::Success)
}

/// One job as `show` reports it.
#[derive(serde::Serialize)]
struct Shown {
    job: &'static str,
    installed: bool,
    schedule: Option<String>,
    last_run: Option<LastRun>,
    systemd: Option<serde_json::Value>,
}

fn show(
    global: &GlobalArgs,
    routine: &Routine,
    args: &ScheduleWhereArgs,
) -> anyhow::Result<Outcome> {
    let place = Place::resolve(args)?;
    let runs = schedule::last_runs(&crate::secrets::state_dir(&routine.manifest));
    let mut shown = Vec::new();
    match place.scheduler {
        Scheduler::Systemd => {
            let files = our_files(&place.dir, routine);
            for job in Job::ALL {
                let timer = format!("{}.timer", systemd::unit_name(&routine.slug, job));
                let text = files
                    .iter()
                    .find(|(p, _)| p.file_name().is_some_and(|f| f == timer.as_str()))
                    .map(|(_, t)| t.clone());
                let systemd = if place.live && text.is_some() {
                    systemd_state(&place, &routine.slug, job)
                } else {
                    None
                };
                shown.push(Shown {
                    job: job.name(),
                    installed: text.is_some(),
                    schedule: text.as_deref().and_then(systemd::timer_schedule),
                    last_run: runs.get(job.name()).cloned(),
                    systemd,
                });
            }
        }
        Scheduler::Cron => {
            let text = match place.cron_file(routine) {
                Some(file) => std::fs::read_to_string(file).unwrap_or_default(),
                None => read_crontab()?,
            };
            let block = our_cron_block(&text, routine);
            for job in Job::ALL {
                let tag = format!("logger -t {}", systemd::unit_name(&routine.slug, job));
                let line = block.iter().find(|l| l.ends_with(&tag));
                shown.push(Shown {
                    job: job.name(),
                    installed: line.is_some(),
                    schedule: line
                        .map(|l| l.split_whitespace().take(5).collect::<Vec<_>>().join(" ")),
                    last_run: runs.get(job.name()).cloned(),
                    systemd: None,
                });
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if global.format == Format::Json {
        let json = serde_json::json!({
            "version": 1,
            "scheduler": match place.scheduler { Scheduler::Systemd => "systemd", Scheduler::Cron => "cron" },
            "place": describe_place(&place, routine),
            "jobs": shown,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(Outcome::Success);
    }
    writeln!(
        out,
        "routine of {} ({}):",
        routine.domain,
        describe_place(&place, routine)
    )?;
    for s in &shown {
        let schedule = if s.installed {
            s.schedule.clone().unwrap_or_default()
        } else {
            "not installed".to_string()
        };
        writeln!(out, "  {:<7} {schedule}", s.job)?;
        match (&s.last_run, &s.systemd) {
            (Some(run), _) => writeln!(out, "          last run: {}", describe_run(run))?,
            (None, Some(state)) => writeln!(out, "          systemd: {state}")?,
            (None, None) => writeln!(out, "          last run: never")?,
        }
    }
    Ok(Outcome::Success)
}

/// The lines of the block voisin wrote for this manifest in a cron text.
fn our_cron_block(text: &str, routine: &Routine) -> Vec<String> {
    let start = routine.marker();
    let end = cron::end_marker(routine);
    text.lines()
        .skip_while(|l| *l != start)
        .take_while(|l| *l != end)
        .map(str::to_string)
        .collect()
}

fn describe_run(run: &LastRun) -> String {
    match (&run.ended, run.exit_code) {
        (Some(ended), Some(0)) => format!("started {}, ended {ended}, succeeded", run.started),
        (Some(ended), Some(code)) => format!(
            "started {}, ended {ended}, failed (exit code {code}{})",
            run.started,
            run.failed
                .as_deref()
                .map(|c| format!(", in `voisin {c}`"))
                .unwrap_or_default()
        ),
        _ => format!("started {}, still running or killed", run.started),
    }
}

/// What systemd says of a job: when its timer last fired, how its service ended.
fn systemd_state(place: &Place, slug: &str, job: Job) -> Option<serde_json::Value> {
    let name = systemd::unit_name(slug, job);
    let timer = place
        .systemctl(&[
            "show",
            "-p",
            "LastTriggerUSec,NextElapseUSecRealtime",
            &format!("{name}.timer"),
        ])
        .ok()?;
    let service = place
        .systemctl(&[
            "show",
            "-p",
            "Result,ExecMainStatus",
            &format!("{name}.service"),
        ])
        .ok()?;
    let map: serde_json::Map<String, serde_json::Value> = timer
        .lines()
        .chain(service.lines())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect();
    Some(serde_json::Value::Object(map))
}

/// `voisin schedule run JOB`: the job's commands in turn, each as its own
/// voisin process with nobody at the keyboard, under the job's locks, with
/// its start and end recorded.
fn run_job(global: &GlobalArgs, name: &str) -> anyhow::Result<Outcome> {
    let job = Job::parse(name).ok_or_else(|| {
        UsageError::new(
            format!("`{name}` is not a job of the routine"),
            Some("the jobs are `backup`, `verify` and `watch`".into()),
        )
    })?;
    let manifest = std::path::absolute(super::manifest_path(global))?;
    let state = crate::secrets::state_dir(&manifest);
    std::fs::create_dir_all(&state)
        .with_context(|| format!("cannot make `{}`", state.display()))?;
    let open = |file: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(state.join(file))
            .with_context(|| format!("cannot open the lock `{}`", state.join(file).display()))
    };
    // The same job still running (a watch slower than its period, a
    // backup longer than a day): this run is skipped, not queued.
    let own = open(&format!("schedule-{}.lock", job.name()))?;
    if own.try_lock().is_err() {
        eprintln!(
            "voisin schedule: the previous `{}` job of `{}` still runs; skipped this one",
            job.name(),
            manifest.display()
        );
        return Ok(Outcome::Success);
    }
    // The backup and the verify wait for each other rather than fail on
    // the engine lock the other holds.
    let shared = if job.uses_repository() {
        let lock = open("schedule-repository.lock")?;
        lock.lock()?;
        Some(lock)
    } else {
        None
    };
    let mut run = LastRun {
        started: schedule::runs::now(),
        ended: None,
        exit_code: None,
        failed: None,
    };
    schedule::runs::record(&state, job.name(), &run)
        .with_context(|| format!("cannot record the run in `{}`", state.display()))?;
    let exe = std::env::current_exe().context("cannot tell where the voisin executable is")?;
    let mut code = 0;
    for command in job.commands() {
        let mut cmd = Command::new(&exe);
        cmd.arg("-f").arg(&manifest).args(["--progress", "never"]);
        if let Some(catalog) = &global.catalog {
            cmd.arg("--catalog").arg(catalog);
        }
        if let Some(identity) = &global.identity {
            cmd.arg("--identity").arg(identity);
        }
        let status = cmd
            .args(*command)
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("cannot run `{}`", exe.display()))?;
        code = status.code().unwrap_or(1);
        if code != 0 {
            run.failed = Some(command.join(" "));
            break;
        }
    }
    run.ended = Some(schedule::runs::now());
    run.exit_code = Some(code);
    schedule::runs::record(&state, job.name(), &run)
        .with_context(|| format!("cannot record the run in `{}`", state.display()))?;
    drop(shared);
    drop(own);
    Ok(match code {
        0 => Outcome::Success,
        2 => Outcome::Unusable,
        130 => Outcome::Interrupted,
        _ => Outcome::Failed,
    })
}
