//! `voisin completions SHELL` and `voisin man`: both generated from the clap
//! definitions in [`crate::cli`], so they can never disagree with `--help`.
//!
//! Both are rendered into memory first and written in one go: the
//! generators panic when the reader goes away mid-write (`| head`), and a
//! buffer turns that into an ordinary write error.

use std::io::Write as _;
use std::path::Path;

use clap::CommandFactory as _;

use crate::Outcome;
use crate::cli::Cli;

/// Prints the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<Outcome> {
    let mut command = Cli::command();
    let mut buffer = Vec::new();
    clap_complete::generate(shell, &mut command, "voisin", &mut buffer);
    write_stdout(&buffer)
}

/// Prints the main manual page, or writes every page into `out`.
pub fn man(out: Option<&Path>) -> anyhow::Result<Outcome> {
    let command = Cli::command();
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).map_err(|e| {
            crate::UsageError::new(
                format!("cannot create `{}`: {e}", dir.display()),
                Some("name a folder you can write to".into()),
            )
        })?;
        clap_mangen::generate_to(command, dir)?;
        return Ok(Outcome::Success);
    }
    let mut buffer = Vec::new();
    clap_mangen::Man::new(command).render(&mut buffer)?;
    write_stdout(&buffer)
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<Outcome> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        // A reader that stopped early (`| head`) is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Outcome::Success),
        other => other.map(|()| Outcome::Success).map_err(Into::into),
    }
}
