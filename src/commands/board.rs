//! `voisin board …`: runs the lending board, snapshots its database, or
//! fills one for a benchmark. The board itself lives in `crate::board`.

use crate::Outcome;
use crate::board::{self, Config};
use crate::cli::BoardCommand;

/// Runs a `board` subcommand.
pub fn run(cmd: &BoardCommand) -> anyhow::Result<Outcome> {
    match cmd {
        BoardCommand::Serve(args) => {
            let config = Config::resolve(args)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(board::serve(config))?;
        }
        BoardCommand::Backup(args) => board::backup::run(&args.database, &args.out)?,
        BoardCommand::Seed(args) => {
            let categories = board::config::parse_categories(&args.categories);
            anyhow::ensure!(!categories.is_empty(), "give at least one category");
            board::seed::seed(&args.database, args.offers, &categories)?;
        }
    }
    Ok(Outcome::Success)
}
