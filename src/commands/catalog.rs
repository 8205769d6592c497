//! `voisin catalog list` and `voisin catalog show NAME`: what the catalog
//! offers, for people choosing a `use:` and for editors.

use std::io::Write as _;

use anyhow::Context as _;
use serde::Serialize;

use crate::catalog::Entry;
use crate::cli::{CatalogCommand, Format, GlobalArgs};
use crate::diagnostic::did_you_mean;
use crate::{Outcome, UsageError};

/// Runs `catalog list` or `catalog show`.
pub fn run(global: &GlobalArgs, command: &CatalogCommand) -> anyhow::Result<Outcome> {
    let loaded = match super::load_catalog(global)? {
        Ok(loaded) => loaded,
        Err(outcome) => return Ok(outcome),
    };
    let catalog = &loaded.catalog;
    let mut out = std::io::stdout().lock();
    match command {
        CatalogCommand::List => {
            let mut entries: Vec<&Entry> = catalog.entries.values().collect();
            entries.sort_by(|a, b| (&a.role, &a.name).cmp(&(&b.role, &b.name)));
            if global.format == Format::Json {
                #[derive(Serialize)]
                struct Row<'a> {
                    name: &'a str,
                    role: &'a str,
                    version: &'a str,
                    summary: &'a str,
                }
                let rows: Vec<Row<'_>> = entries
                    .iter()
                    .map(|e| Row {
                        name: &e.name,
                        role: &e.role,
                        version: &e.version,
                        summary: &e.summary,
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut out, &rows)?;
                writeln!(out)?;
            } else {
                let name_w = entries
                    .iter()
                    .map(|e| e.name.len())
                    .max()
                    .unwrap_or(4)
                    .max(5);
                let role_w = entries
                    .iter()
                    .map(|e| e.role.len())
                    .max()
                    .unwrap_or(4)
                    .max(4);
                let ver_w = entries
                    .iter()
                    .map(|e| e.version.len())
                    .max()
                    .unwrap_or(7)
                    .max(7);
                writeln!(
                    out,
                    "{:role_w$}  {:name_w$}  {:ver_w$}  SUMMARY",
                    "ROLE", "ENTRY", "VERSION"
                )?;
                for e in entries {
                    writeln!(
                        out,
                        "{:role_w$}  {:name_w$}  {:ver_w$}  {}",
                        e.role, e.name, e.version, e.summary
                    )?;
                }
            }
        }
        CatalogCommand::Show { name, upstream } => {
            let Some(entry) = catalog.get(name) else {
                let hint = did_you_mean(name, catalog.entries.keys().map(String::as_str))
                    .unwrap_or_else(|| "`voisin catalog list` shows every entry".to_string());
                return Err(UsageError::new(
                    format!("{} has no entry named `{name}`", catalog.origin),
                    Some(hint),
                )
                .into());
            };
            match (global.format, *upstream) {
                (Format::Json, false) => {
                    serde_json::to_writer_pretty(&mut out, entry).context("writing the entry")?;
                    writeln!(out)?;
                }
                (Format::Json, true) => {
                    let images: std::collections::BTreeMap<&str, &str> = entry
                        .containers
                        .iter()
                        .map(|(n, c)| (n.as_str(), c.image.as_str()))
                        .collect();
                    let json = serde_json::json!({
                        "name": entry.name,
                        "version": entry.version,
                        "images": images,
                        "upstream": entry.upstream,
                    });
                    serde_json::to_writer_pretty(&mut out, &json).context("writing the entry")?;
                    writeln!(out)?;
                }
                (Format::Text, true) => {
                    write!(out, "{}", crate::catalog::upstream::text(entry))?;
                }
                (Format::Text, false) => show(&mut out, entry)?,
            }
        }
    }
    Ok(Outcome::Success)
}

fn show(out: &mut impl std::io::Write, entry: &Entry) -> std::io::Result<()> {
    writeln!(out, "{} {} ({})", entry.name, entry.version, entry.role)?;
    writeln!(out, "  {}", entry.summary)?;
    writeln!(out)?;
    if entry.settings.is_empty() {
        writeln!(out, "settings: none")?;
    } else {
        writeln!(out, "settings:")?;
        for (name, setting) in &entry.settings {
            let default = setting.default.as_ref().map_or_else(
                || "required".to_string(),
                |d| match d {
                    serde_json::Value::String(s) => format!("default {s}"),
                    other => format!("default {other}"),
                },
            );
            writeln!(out, "  {name}: {} ({default})", setting.type_label())?;
            for line in setting.doc.lines() {
                writeln!(out, "      {line}")?;
            }
        }
    }
    writeln!(out)?;
    if entry.containers.is_empty() {
        writeln!(out, "containers: none")?;
    } else {
        writeln!(out, "containers:")?;
        for (name, container) in &entry.containers {
            writeln!(out, "  {name}: {}", container.image)?;
        }
    }
    if !entry.upstream.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "upstream: {} contracts with their sources (`voisin catalog show {} --upstream`)",
            entry.upstream.len(),
            entry.name
        )?;
    }
    Ok(())
}
