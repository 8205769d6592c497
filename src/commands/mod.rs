//! One module per subcommand: each turns parsed arguments into work and
//! prints its result. No engine types and no rendering logic live here.

mod catalog;
mod check;
mod dns;
mod schema;

use std::path::PathBuf;

use crate::Outcome;
use std::io::Write as _;

use crate::catalog::Source;
use crate::catalog::load::{LoadError, Loaded};
use crate::cli::{Cli, Command, GlobalArgs};

/// Runs the subcommand the command line names.
pub fn dispatch(cli: &Cli) -> anyhow::Result<Outcome> {
    let global = &cli.global;
    match &cli.command {
        Command::Check(args) => check::run(global, args),
        Command::Schema => schema::run(global),
        Command::Catalog(cmd) => catalog::run(global, cmd),
        Command::Dns(args) => dns::run(global, args),
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

/// The manifest the command line names.
fn manifest_path(global: &GlobalArgs) -> PathBuf {
    global
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from("voisin.yaml"))
}
