//! `voisin schema`: the manifest's JSON Schema for editors and CI.

use std::io::Write as _;

use crate::Outcome;

/// Prints the schema.
pub fn run() -> anyhow::Result<Outcome> {
    let text = serde_json::to_string_pretty(&crate::manifest::schema())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(Outcome::Success)
}
