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
pub mod lang;
pub mod manifest;
pub mod names;
pub mod plan;
pub mod progress;
pub mod render;
pub mod secrets;
pub mod units;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

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

/// Runs voisin with the process's arguments and returns its exit status.
pub fn run() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout with status 0, and
            // usage errors to stderr with status 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let outcome = match commands::dispatch(&cli) {
        Ok(outcome) => outcome,
        Err(err) => report(&err),
    };
    ExitCode::from(outcome.code())
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
