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
            // Few blocking threads: each costs memory, and only writes and
            // argon2 use them.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .max_blocking_threads(16)
                .enable_all()
                .build()?;
            runtime.block_on(board::serve(config))?;
        }
        BoardCommand::Backup(args) => board::backup::run(&args.database, &args.out)?,
        BoardCommand::Restore(args) => board::backup::restore(&args.database, &args.input)?,
        BoardCommand::Healthcheck(args) => {
            if let Err(err) = board::health::check(args.listen) {
                eprintln!("error: the board is not healthy: {err:#}");
                return Ok(Outcome::Failed);
            }
        }
        BoardCommand::HashPassword => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(
                !password.is_empty(),
                "the password on standard input is empty"
            );
            println!("{}", board::hash_password(password)?);
        }
        BoardCommand::Seed(args) => {
            let categories = board::config::parse_categories(&args.categories);
            anyhow::ensure!(!categories.is_empty(), "give at least one category");
            board::seed::seed(&args.database, args.offers, &categories)?;
        }
    }
    Ok(Outcome::Success)
}
