//! `voisin schema`: the manifest's JSON Schema for editors and CI, with
//! each role's entries and settings from the catalog in use.

use std::io::Write as _;

use crate::Outcome;
use crate::cli::GlobalArgs;

/// Prints the schema.
pub fn run(global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let loaded = match super::load_catalog(global)? {
        Ok(loaded) => loaded,
        Err(outcome) => return Ok(outcome),
    };
    let text =
        serde_json::to_string_pretty(&crate::manifest::schema::for_editors(&loaded.catalog))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(Outcome::Success)
}
