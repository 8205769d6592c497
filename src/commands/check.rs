//! `voisin check`: validate manifests against the schema and the catalog,
//! offline, reporting every problem of every file in one run.

use std::io::Write as _;

use serde::Serialize;

use crate::Outcome;
use crate::catalog::{self, lint::lint, load::LoadError};
use crate::cli::{CheckArgs, Format, GlobalArgs, Lang};
use crate::diagnostic::{Diagnostic, Severity};
use crate::manifest;

/// Version of the JSON shape `check --format json` prints; raised only when
/// a field changes meaning or disappears.
const JSON_VERSION: u32 = 1;

/// Checks every file named, prints the report, and decides the outcome.
pub fn run(global: &GlobalArgs, args: &CheckArgs) -> anyhow::Result<Outcome> {
    let files = if args.files.is_empty() {
        vec![super::manifest_path(global)]
    } else {
        args.files.clone()
    };

    let mut report = Report::default();
    let mut unusable = false;
    let loaded = match catalog::load(&super::catalog_source(global)) {
        Ok(loaded) => Some(loaded),
        Err(LoadError::Invalid(diagnostics)) => {
            report.add_catalog(diagnostics);
            None
        }
        Err(e @ LoadError::Unreadable { .. }) => return Err(e.into()),
    };
    if let Some(loaded) = &loaded {
        report.add_catalog(lint(loaded));
    }

    if loaded.is_none() {
        report.unchecked = files.iter().map(|f| f.display().to_string()).collect();
    }
    if let Some(loaded) = &loaded {
        for path in &files {
            let shown = path.display().to_string();
            let (diagnostics, lang) = match std::fs::read_to_string(path) {
                Ok(text) => {
                    let checked = manifest::check(&shown, &text, &loaded.catalog);
                    let lang = crate::lang::choose_here(global.lang, checked.locale.as_deref());
                    (checked.diagnostics, lang)
                }
                Err(e) => {
                    // A file that cannot be read is a problem of the
                    // environment, not of the manifest: exit 2.
                    unusable = true;
                    (vec![
                        Diagnostic::error("unreadable-file", format!("cannot read `{shown}`: {e}"))
                            .with_hint("check the path; without a file name `check` reads `voisin.yaml`, or the file `-f` names"),
                    ], crate::lang::choose_here(global.lang, None))
                }
            };
            let diagnostics = diagnostics
                .iter()
                .map(|d| crate::lang::translate(d, lang))
                .collect();
            report.add_file(shown, diagnostics, lang);
        }
    }

    report.print(global)?;
    Ok(if unusable {
        Outcome::Unusable
    } else if report.errors() > 0 {
        Outcome::Failed
    } else {
        Outcome::Success
    })
}

#[derive(Default)]
struct Report {
    files: Vec<(String, Vec<Diagnostic>, Lang)>,
    catalog: Vec<Diagnostic>,
    /// Files not checked because the catalog itself is invalid.
    unchecked: Vec<String>,
}

/// One diagnostic as `check --format json` prints it.
#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    file: Option<&'a str>,
    line: Option<usize>,
    column: Option<usize>,
    severity: Severity,
    code: &'a str,
    message: &'a str,
    hint: Option<&'a str>,
    path: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonFile<'a> {
    file: &'a str,
    checked: bool,
    valid: bool,
    errors: usize,
    warnings: usize,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    version: u32,
    valid: bool,
    errors: usize,
    warnings: usize,
    files: Vec<JsonFile<'a>>,
    diagnostics: Vec<JsonDiagnostic<'a>>,
}

fn count(diagnostics: &[Diagnostic], severity: Severity) -> usize {
    diagnostics
        .iter()
        .filter(|d| d.severity == severity)
        .count()
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

impl Report {
    fn add_catalog(&mut self, diagnostics: Vec<Diagnostic>) {
        self.catalog.extend(diagnostics);
    }

    fn add_file(&mut self, file: String, diagnostics: Vec<Diagnostic>, lang: Lang) {
        self.files.push((file, diagnostics, lang));
    }

    fn all(&self) -> impl Iterator<Item = &Diagnostic> {
        self.catalog
            .iter()
            .chain(self.files.iter().flat_map(|(_, d, _)| d))
    }

    fn errors(&self) -> usize {
        self.all().filter(|d| d.is_error()).count()
    }

    fn warnings(&self) -> usize {
        self.all().filter(|d| !d.is_error()).count()
    }

    fn print(&self, global: &GlobalArgs) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        if global.format == Format::Json {
            let report = JsonReport {
                version: JSON_VERSION,
                valid: self.errors() == 0,
                errors: self.errors(),
                warnings: self.warnings(),
                files: self
                    .files
                    .iter()
                    .map(|(file, d, _)| JsonFile {
                        file,
                        checked: true,
                        valid: count(d, Severity::Error) == 0,
                        errors: count(d, Severity::Error),
                        warnings: count(d, Severity::Warning),
                    })
                    .chain(self.unchecked.iter().map(|file| JsonFile {
                        file,
                        checked: false,
                        valid: false,
                        errors: 0,
                        warnings: 0,
                    }))
                    .collect(),
                diagnostics: self
                    .all()
                    .map(|d| JsonDiagnostic {
                        file: d.location.as_ref().map(|l| l.file.as_str()),
                        line: d.location.as_ref().map(|l| l.line),
                        column: d.location.as_ref().map(|l| l.column),
                        severity: d.severity,
                        code: d.code,
                        message: &d.message,
                        hint: d.hint.as_deref(),
                        path: d.path.as_deref(),
                    })
                    .collect(),
            };
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
            return Ok(());
        }
        for d in &self.catalog {
            if global.quiet && !d.is_error() {
                continue;
            }
            writeln!(out, "{}", d.render())?;
        }
        for (_, diagnostics, lang) in &self.files {
            for d in diagnostics {
                if global.quiet && !d.is_error() {
                    continue;
                }
                writeln!(out, "{}", d.render_in(*lang))?;
            }
        }
        let catalog_errors = count(&self.catalog, Severity::Error);
        if catalog_errors > 0 || (!self.catalog.is_empty() && !global.quiet) {
            let e = catalog_errors;
            let w = count(&self.catalog, Severity::Warning);
            writeln!(
                out,
                "catalog: {}, {}",
                plural(e, "error"),
                plural(w, "warning")
            )?;
        }
        for file in &self.unchecked {
            writeln!(out, "{file}: not checked, the catalog has errors")?;
        }
        for (file, d, lang) in &self.files {
            let e = count(d, Severity::Error);
            let w = count(d, Severity::Warning);
            if global.quiet && e == 0 {
                continue;
            }
            if e == 0 && w == 0 {
                let valid = if *lang == Lang::Fr { "valide" } else { "valid" };
                writeln!(out, "{file}: {valid}")?;
            } else {
                writeln!(out, "{file}: {}", crate::lang::summary(*lang, e, w))?;
            }
        }
        Ok(())
    }
}
