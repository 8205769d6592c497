//! voisin: one manifest describes an association's mail, cloud storage and
//! lending board; voisin checks it, renders every container's configuration
//! from its catalog, deploys it to a Docker engine, and backs it up.
//!
//! The code follows the data: [`document`] reads what people write,
//! [`manifest`] and [`catalog`] give it types and check it, and
//! [`commands`] orchestrate one subcommand each. [`run`] is the one place
//! where outcomes become exit codes.

pub mod backup;
pub mod board;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod deploy;
pub mod diagnostic;
pub mod dns;
pub mod document;
pub mod engine;
pub mod full;
pub mod lang;
pub mod manifest;
pub mod names;
pub mod plan;
pub mod progress;
pub mod render;
pub mod schedule;
pub mod secrets;
pub mod units;
pub mod upgrade;
pub mod watch;

use std::ffi::OsString;
use std::io::Write as _;
use std::process::ExitCode;

use clap::{Args as _, FromArgMatches as _, Parser as _};

/// How a command ended, when it ran to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything was done, everything was valid.
    Success,
    /// The work failed or the input is invalid; the command has said why.
    Failed,
    /// The command was used wrongly or the environment is not fit
    /// (a file that cannot be read, an engine that does not answer).
    Unusable,
    /// Interrupted by Ctrl-C, after putting back what it had changed.
    Interrupted,
}

impl Outcome {
    /// The exit status for this outcome: 0, 1 or 2.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failed => 1,
            Self::Unusable => 2,
            Self::Interrupted => 130,
        }
    }
}

/// An error that means the command was used wrongly or the environment is
/// not fit, as opposed to the work failing: exits 2.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
}

impl UsageError {
    /// A usage error with a hint.
    pub fn new(message: impl Into<String>, hint: Option<String>) -> Self {
        Self {
            message: message.into(),
            hint,
        }
    }
}

/// Runs the `voisin` executable with the process's arguments and returns
/// its exit status. It parses every command line (so help and errors are
/// the whole tree's) and runs the commands that only read and write files;
/// any other one replaces this process with `voisin-full` ([`full`]).
pub fn run() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match parse_command_line(args.clone()) {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    let outcome = match commands::dispatch_here(&cli) {
        Some(Ok(outcome)) => outcome,
        Some(Err(err)) => report(&err),
        None => report(&full::exec(&args)),
    };
    ExitCode::from(outcome.code())
}

/// Runs the `voisin-full` executable: every command, for `voisin` (which
/// hands it the command lines it does not run itself), for the images
/// built from it (the board's, the backup agent's), and for `cargo run`.
pub fn run_full() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    // clap names the program after the first argument: `voisin` passes its
    // own; started by its own name (`cargo run`), it still says `voisin`.
    if let Some(first) = args.first_mut()
        && std::path::Path::new(first).file_name() == Some(std::ffi::OsStr::new(full::NAME))
    {
        *first = OsString::from("voisin");
    }
    let cli = match parse_command_line(args) {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    let outcome = match commands::dispatch(&cli) {
        Ok(outcome) => outcome,
        Err(err) => report(&err),
    };
    ExitCode::from(outcome.code())
}

/// Prints what clap stopped at and gives its status: help and version go
/// to standard output with status 0, usage errors to standard error with 2.
fn clap_exit(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    ExitCode::from(if e.use_stderr() { 2 } else { 0 })
}

/// Parses the command line.
///
/// Building clap's whole tree (every subcommand with every option) was a
/// fifth of a `check`'s run, which must stay within 2 ms (issue 11). So a
/// line that names `check` is first parsed against a tree that holds
/// `check` alone, with the same argument types; a line that does not parse
/// there (help, version, a mistake, any other command) is parsed by the
/// full tree, so every message is the one the full tree gives.
fn parse_command_line(args: Vec<OsString>) -> Result<cli::Cli, clap::Error> {
    if args.iter().skip(1).any(|a| a == "check")
        && let Some(cli) = parse_check_alone(&args)
    {
        return Ok(cli);
    }
    cli::Cli::try_parse_from(args)
}

/// The command line parsed against a tree holding only `check`, when it
/// parses there without error.
fn parse_check_alone(args: &[OsString]) -> Option<cli::Cli> {
    let command = cli::GlobalArgs::augment_args(clap::Command::new("voisin"))
        .subcommand(cli::CheckArgs::augment_args(clap::Command::new("check")))
        .subcommand_required(true);
    let matches = command.try_get_matches_from(args).ok()?;
    cli::Cli::from_arg_matches(&matches).ok()
}

/// Prints an error that stopped a command, with its causes and hint, and
/// decides its outcome.
fn report(err: &anyhow::Error) -> Outcome {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {err}");
    for cause in err.chain().skip(1) {
        let _ = writeln!(stderr, "  caused by: {cause}");
    }
    let usage = err.chain().find_map(|e| e.downcast_ref::<UsageError>());
    let engine = err
        .chain()
        .find_map(|e| e.downcast_ref::<engine::EngineError>());
    let hint = usage
        .and_then(|u| u.hint.clone())
        .or_else(|| engine.and_then(|e| e.hint().map(str::to_string)))
        .or_else(|| {
            err.chain()
                .find_map(|e| e.downcast_ref::<deploy::DeployError>())
                .and_then(deploy::DeployError::hint)
        })
        .or_else(|| {
            err.chain()
                .find_map(|e| e.downcast_ref::<deploy::lock::LockError>())
                .and_then(deploy::lock::LockError::hint)
        })
        .or_else(|| {
            err.chain()
                .find_map(|e| e.downcast_ref::<upgrade::UpgradeError>())
                .and_then(upgrade::UpgradeError::hint)
        })
        .or_else(|| {
            err.chain()
                .find_map(|e| e.downcast_ref::<backup::BackupError>())
                .and_then(backup::BackupError::hint)
        })
        .or_else(|| {
            err.chain()
                .find_map(|e| e.downcast_ref::<backup::repo::RepoError>())
                .and_then(backup::repo::RepoError::hint)
        });
    if let Some(hint) = hint {
        let _ = writeln!(stderr, "  hint: {hint}");
    }
    if err.chain().any(|e| {
        matches!(e.downcast_ref(), Some(deploy::DeployError::Interrupted))
            || matches!(e.downcast_ref(), Some(backup::BackupError::Interrupted))
            || matches!(
                e.downcast_ref(),
                Some(upgrade::UpgradeError::Interrupted { .. })
            )
    }) {
        return Outcome::Interrupted;
    }
    let environment = usage.is_some()
        || matches!(engine, Some(engine::EngineError::Setup { .. }))
        || matches!(
            err.chain()
                .find_map(|e| e.downcast_ref::<deploy::DeployError>()),
            Some(deploy::DeployError::Engine(
                engine::EngineError::Setup { .. }
            ))
        )
        || matches!(
            err.chain()
                .find_map(|e| e.downcast_ref::<deploy::lock::LockError>()),
            Some(deploy::lock::LockError::Engine(
                engine::EngineError::Setup { .. }
            ))
        )
        || matches!(
            err.chain()
                .find_map(|e| e.downcast_ref::<backup::BackupError>()),
            Some(backup::BackupError::Repo(_) | backup::BackupError::UnknownService { .. })
        )
        || err.chain().any(|e| {
            e.is::<backup::repo::RepoError>()
                || e.is::<std::io::Error>()
                || matches!(
                    e.downcast_ref(),
                    Some(catalog::load::LoadError::Unreadable { .. })
                )
        });
    if environment {
        Outcome::Unusable
    } else {
        Outcome::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn check_alone_parses_as_the_full_tree_does() {
        for line in [
            "voisin check",
            "voisin check a.yaml b.yaml",
            "voisin -q check a.yaml",
            "voisin check -q --format json a.yaml",
            "voisin -f check check",
            "voisin --catalog dir --lang fr check -- -odd.yaml",
            "voisin -vv --progress never check",
            "voisin --identity id.txt check --format=json",
        ] {
            let alone = parse_check_alone(&args(line)).expect(line);
            let full = cli::Cli::try_parse_from(args(line)).expect(line);
            assert_eq!(format!("{alone:?}"), format!("{full:?}"), "{line}");
        }
    }

    #[test]
    fn lines_check_alone_cannot_parse_go_to_the_full_tree() {
        for line in [
            "voisin check --help",
            "voisin --help check",
            "voisin --version check",
            "voisin check --no-such-option",
            "voisin -q -v check",
            "voisin dns --check",
            "voisin render check",
            "voisin -f check",
            "voisin board serve --categories check",
        ] {
            assert!(parse_check_alone(&args(line)).is_none(), "{line}");
        }
        let cli = parse_command_line(args("voisin dns --check")).expect("parses");
        assert!(matches!(cli.command, cli::Command::Dns(_)));
    }
}
