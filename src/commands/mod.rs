//! One module per subcommand: each turns parsed arguments into work and
//! prints its result. No engine types and no rendering logic live here.

mod backup;
mod board;
mod catalog;
mod check;
mod deploy;
mod dns;
mod doctor;
mod engine;
mod help;
mod init;
mod members;
mod progress;
mod render;
mod schedule;
mod schema;
mod secrets;
mod swarm;
mod upgrade;
mod watch;

use std::path::PathBuf;

use crate::Outcome;
use std::io::Write as _;

use crate::catalog::Source;
use crate::catalog::load::{LoadError, Loaded};
use crate::cli::{Cli, Command, GlobalArgs};

/// Runs the subcommand the command line names, when it is one the `voisin`
/// executable holds: those that read and write files only. `None` for the
/// others (the engine, the backups, the board, the alerts), which
/// `voisin-full` runs. The linker keeps in `voisin` only what this match
/// reaches (and the dependencies' constructors, `full` says which), so
/// that `check` starts without loading the rest (issue 11).
pub fn dispatch_here(cli: &Cli) -> Option<anyhow::Result<Outcome>> {
    let global = &cli.global;
    Some(match &cli.command {
        Command::Init(args) => init::run(global, args),
        Command::Check(args) => check::run(global, args),
        Command::Schema => schema::run(global),
        Command::Catalog(cmd) => catalog::run(global, cmd),
        Command::Dns(args) => dns::run(global, args),
        Command::Render(args) => render::run(global, args),
        // `schedule run` starts `voisin` again for each of its commands,
        // and the timers name this executable: both stay here.
        Command::Schedule(cmd) => schedule::run(global, cmd),
        Command::Secrets(cmd) => secrets::run(global, cmd),
        Command::Members(cmd) => members::run(global, cmd),
        Command::Completions { shell } => help::completions(*shell),
        Command::Man { out } => help::man(out.as_deref()),
        Command::Board(_)
        | Command::Plan
        | Command::Deploy(_)
        | Command::Status
        | Command::Logs(_)
        | Command::Watch
        | Command::Down(_)
        | Command::Backup(_)
        | Command::Restore(_)
        | Command::Upgrade(_)
        | Command::Agent(_)
        | Command::Doctor(_) => return None,
    })
}

/// Runs the subcommand the command line names: every one (`voisin-full`).
pub fn dispatch(cli: &Cli) -> anyhow::Result<Outcome> {
    let global = &cli.global;
    match &cli.command {
        Command::Init(args) => init::run(global, args),
        Command::Check(args) => check::run(global, args),
        Command::Schema => schema::run(global),
        Command::Catalog(cmd) => catalog::run(global, cmd),
        Command::Board(cmd) => board::run(cmd),
        Command::Dns(args) => dns::run(global, args),
        Command::Render(args) => render::run(global, args),
        Command::Plan => deploy::plan(global),
        Command::Deploy(args) => deploy::deploy(global, args),
        Command::Status => engine::status(global),
        Command::Logs(args) => engine::logs(global, args),
        Command::Watch => watch::watch(global),
        Command::Down(args) => engine::down(global, args),
        Command::Backup(args) => backup::backup(global, args),
        Command::Restore(args) => backup::restore(global, args),
        Command::Upgrade(args) => upgrade::run(global, args),
        Command::Agent(cmd) => backup::agent(cmd),
        Command::Schedule(cmd) => schedule::run(global, cmd),
        Command::Doctor(args) => doctor::run(global, args),
        Command::Secrets(cmd) => secrets::run(global, cmd),
        Command::Members(cmd) => members::run(global, cmd),
        Command::Completions { shell } => help::completions(*shell),
        Command::Man { out } => help::man(out.as_deref()),
    }
}

/// The catalog the command line asks for.
fn catalog_source(global: &GlobalArgs) -> Source {
    global
        .catalog
        .as_ref()
        .map_or(Source::BuiltIn, |dir| Source::Dir(dir.clone()))
}

/// Loads the catalog the command line asks for. When its entries are
/// invalid, prints their diagnostics and gives the outcome to return.
fn load_catalog(global: &GlobalArgs) -> anyhow::Result<Result<Loaded, Outcome>> {
    match crate::catalog::load(&catalog_source(global)) {
        Ok(loaded) => Ok(Ok(loaded)),
        Err(LoadError::Invalid(diagnostics)) => {
            let mut err = std::io::stderr().lock();
            for d in &diagnostics {
                writeln!(err, "{}", d.render())?;
            }
            Ok(Err(Outcome::Failed))
        }
        Err(e) => Err(e.into()),
    }
}

/// A valid manifest with its catalog and secrets, ready to render.
pub struct Bundle {
    /// Where the manifest is.
    pub path: PathBuf,
    /// The manifest.
    pub manifest: crate::manifest::Manifest,
    /// The catalog in use.
    pub catalog: crate::catalog::Catalog,
    /// The manifest's secrets.
    pub secrets: crate::secrets::Store,
}

/// Loads the manifest, checks it, and opens its secrets. An invalid
/// manifest is reported as `check` reports it, and gives the outcome to
/// return; nothing is rendered from it.
pub fn load_bundle(global: &GlobalArgs) -> anyhow::Result<Result<Bundle, Outcome>> {
    let (path, manifest, catalog) = match load_manifest(global)? {
        Ok(m) => m,
        Err(outcome) => return Ok(Err(outcome)),
    };
    let secrets = crate::secrets::Store::open(&crate::secrets::state_dir(&path), global.identity.as_deref())
        .map_err(|e| {
            let hint = match &e {
                crate::secrets::SecretsError::NeedIdentity { .. } => {
                    Some("give the age identity that can decrypt it: `--identity FILE` or `VOISIN_AGE_IDENTITY`".to_string())
                }
                _ => None,
            };
            anyhow::Error::new(crate::UsageError::new(e.to_string(), hint))
        })?;
    Ok(Ok(Bundle {
        path,
        manifest,
        catalog,
        secrets,
    }))
}

/// Loads the catalog and reads and checks the manifest with it; an
/// invalid manifest is reported as `check` reports it, and gives the
/// outcome to return. Commands that need no secrets (`schedule`,
/// `doctor`) stop here.
pub(super) fn load_manifest(
    global: &GlobalArgs,
) -> anyhow::Result<Result<(PathBuf, crate::manifest::Manifest, crate::catalog::Catalog), Outcome>>
{
    let loaded = match load_catalog(global)? {
        Ok(loaded) => loaded,
        Err(outcome) => return Ok(Err(outcome)),
    };
    let path = manifest_path(global);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        crate::UsageError::new(
            format!("cannot read the manifest `{}`: {e}", path.display()),
            Some("give the manifest with `-f FILE`, or run voisin where `voisin.yaml` is".into()),
        )
    })?;
    let checked = crate::manifest::check(&path.display().to_string(), &text, &loaded.catalog);
    let valid = checked.is_valid();
    let Some(manifest) = checked.manifest.filter(|_| valid) else {
        let mut out = std::io::stderr().lock();
        let lang = crate::lang::choose_here(global.lang, checked.locale.as_deref());
        for d in checked.diagnostics.iter().filter(|d| d.is_error()) {
            writeln!(out, "{}", crate::lang::translate(d, lang).render_in(lang))?;
        }
        writeln!(
            out,
            "{}: invalid; nothing was done (run `voisin check` for details)",
            path.display()
        )?;
        return Ok(Err(Outcome::Failed));
    };
    Ok(Ok((path, manifest, loaded.catalog)))
}

/// The manifest the command line names.
fn manifest_path(global: &GlobalArgs) -> PathBuf {
    global
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from("voisin.yaml"))
}

/// Asks the person at the terminal to type `expected` after `question`.
/// Without a terminal nobody can answer: refused with `why` and `hint`.
fn confirm(
    question: &str,
    expected: &str,
    why: &str,
    hint: &str,
    refused: &str,
) -> anyhow::Result<()> {
    use std::io::{BufRead as _, IsTerminal as _};
    if !std::io::stdin().is_terminal() {
        return Err(crate::UsageError::new(why, Some(hint.into())).into());
    }
    eprint!("{question}");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() == expected {
        Ok(())
    } else {
        Err(crate::UsageError::new(refused, None).into())
    }
}
