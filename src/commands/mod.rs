//! One module per subcommand: each turns parsed arguments into work and
//! prints its result. No engine types and no rendering logic live here.

mod board;
mod catalog;
mod check;
mod schema;

use std::path::PathBuf;

use crate::Outcome;
use crate::catalog::Source;
use crate::cli::{Cli, Command, GlobalArgs};

/// Runs the subcommand the command line names.
pub fn dispatch(cli: &Cli) -> anyhow::Result<Outcome> {
    let global = &cli.global;
    match &cli.command {
        Command::Check(args) => check::run(global, args),
        Command::Schema => schema::run(),
        Command::Catalog(cmd) => catalog::run(global, cmd),
        Command::Board(cmd) => board::run(cmd),
    }
}

/// The catalog the command line asks for.
fn catalog_source(global: &GlobalArgs) -> Source {
    global
        .catalog
        .as_ref()
        .map_or(Source::BuiltIn, |dir| Source::Dir(dir.clone()))
}

/// The manifest the command line names.
fn manifest_path(global: &GlobalArgs) -> PathBuf {
    global
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from("voisin.yaml"))
}
