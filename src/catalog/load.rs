//! Reading a catalog: the one built into the binary, or a directory laid
//! out like voisin's own source (`catalog/NAME.yaml`, `templates/NAME/…`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};

use super::{Catalog, Entry, entry_schema};
use crate::diagnostic::Diagnostic;
use crate::document::{Document, Path as DocPath, Target};

static BUILT_IN_ENTRIES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/catalog");
static BUILT_IN_TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// Where a catalog comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The catalog built into the binary.
    BuiltIn,
    /// A directory holding `catalog/` and `templates/`.
    Dir(PathBuf),
}

/// Why a catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory is missing or unreadable: an environment problem.
    #[error("cannot read the catalog in `{dir}`: {reason}")]
    Unreadable {
        /// The directory given.
        dir: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Entries are invalid; each problem is located.
    #[error("the catalog has {} problem(s)", .0.len())]
    Invalid(Vec<Diagnostic>),
}

/// A catalog with the documents its entries were read from, so that lint
/// findings can point into them.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The catalog.
    pub catalog: Catalog,
    /// Each entry's document, by entry name.
    pub documents: BTreeMap<String, Document>,
}

/// The built-in entries, parsed at build time (see `build.rs`): JSON by
/// file stem, or `null` when the build could not read one of them.
const BUILT_IN_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/built_in_catalog.json"));

/// Loads a catalog, reporting every invalid entry at once.
///
/// The built-in catalog comes from its form parsed at build time, without
/// the documents that the lint points into: it was checked and linted by
/// the tests (`built_in_fast_form_is_the_checked_catalog`), so a run need
/// not do it again. [`load_checked`] reads it the long way.
pub fn load(source: &Source) -> Result<Loaded, LoadError> {
    if *source == Source::BuiltIn
        && let Some(catalog) = built_in_parsed()
    {
        return Ok(Loaded {
            catalog,
            documents: BTreeMap::new(),
        });
    }
    load_checked(source)
}

/// The built-in catalog from its build-time form, when that form is there
/// and reads into entries.
fn built_in_parsed() -> Option<Catalog> {
    let entries: BTreeMap<String, Entry> =
        serde_json::from_str::<Option<_>>(BUILT_IN_JSON).ok()??;
    let (origin, _, templates) = built_in_templates_only();
    Some(Catalog {
        origin,
        templates: templates.iter().map(|(name, _)| name.clone()).collect(),
        template_sources: templates.into_iter().collect(),
        entries,
    })
}

fn built_in_templates_only() -> (String, Files, Sources) {
    let mut templates = Vec::new();
    collect_embedded(&BUILT_IN_TEMPLATES, &mut templates);
    ("the built-in catalog".to_string(), Vec::new(), templates)
}

/// Loads a catalog from its YAML, every entry shape-checked with positions,
/// reporting every invalid entry at once.
pub fn load_checked(source: &Source) -> Result<Loaded, LoadError> {
    let (origin, files, templates) = match source {
        Source::BuiltIn => built_in(),
        Source::Dir(dir) => from_dir(dir)?,
    };
    let schema = entry_schema();
    let mut catalog = Catalog {
        origin,
        templates: templates.iter().map(|(name, _)| name.clone()).collect(),
        template_sources: templates.into_iter().collect(),
        ..Catalog::default()
    };
    let mut documents = BTreeMap::new();
    let mut problems = Vec::new();
    for (shown, stem, text) in files {
        let document = match Document::parse(shown, text) {
            Ok(d) => d,
            Err(d) => {
                problems.push(*d);
                continue;
            }
        };
        let read = document.read::<Entry>(&schema);
        let entry = match read.value {
            Some(e) if read.diagnostics.is_empty() => e,
            _ => {
                problems.extend(read.diagnostics);
                continue;
            }
        };
        if entry.name != stem {
            problems.push(
                document.diag(
                    Diagnostic::error(
                        "entry-name",
                        format!(
                            "the entry is named `{}` but its file is `{stem}.yaml`",
                            entry.name
                        ),
                    )
                    .with_hint(format!(
                        "rename the file to `{}.yaml` or the entry to `{stem}`",
                        entry.name
                    )),
                    &DocPath::from("name"),
                    Target::Value,
                ),
            );
            continue;
        }
        documents.insert(entry.name.clone(), document);
        catalog.entries.insert(entry.name.clone(), entry);
    }
    if problems.is_empty() {
        Ok(Loaded { catalog, documents })
    } else {
        Err(LoadError::Invalid(problems))
    }
}

/// Entry files as (name shown in messages, file stem, text).
type Files = Vec<(String, String, String)>;

/// Template files as (`ENTRY/PATH`, text).
type Sources = Vec<(String, String)>;

fn built_in() -> (String, Files, Sources) {
    let mut files = Vec::new();
    for file in BUILT_IN_ENTRIES.files() {
        let path = file.path();
        if path.extension().is_some_and(|e| e == "yaml")
            && let (Some(stem), Some(text)) = (path.file_stem(), file.contents_utf8())
        {
            files.push((
                format!("(built-in) catalog/{}", path.display()),
                stem.to_string_lossy().into_owned(),
                text.to_string(),
            ));
        }
    }
    files.sort();
    let mut templates = Vec::new();
    collect_embedded(&BUILT_IN_TEMPLATES, &mut templates);
    ("the built-in catalog".to_string(), files, templates)
}

fn collect_embedded(dir: &Dir<'_>, out: &mut Sources) {
    for file in dir.files() {
        out.push((
            file.path().to_string_lossy().into_owned(),
            file.contents_utf8().unwrap_or_default().to_string(),
        ));
    }
    for sub in dir.dirs() {
        collect_embedded(sub, out);
    }
}

fn from_dir(dir: &Path) -> Result<(String, Files, Sources), LoadError> {
    let unreadable = |reason: String| LoadError::Unreadable {
        dir: dir.to_path_buf(),
        reason,
    };
    let entries_dir = dir.join("catalog");
    let listing = std::fs::read_dir(&entries_dir)
        .map_err(|e| unreadable(format!("`{}`: {e}", entries_dir.display())))?;
    let mut files = Vec::new();
    for item in listing {
        let path = item.map_err(|e| unreadable(e.to_string()))?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| unreadable(format!("`{}`: {e}", path.display())))?;
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((path.display().to_string(), stem, text));
        }
    }
    files.sort();
    let mut templates = Vec::new();
    let templates_dir = dir.join("templates");
    if templates_dir.is_dir() {
        collect_dir(&templates_dir, &templates_dir, &mut templates)
            .map_err(|e| unreadable(e.to_string()))?;
    }
    Ok((
        format!("the catalog in `{}`", dir.display()),
        files,
        templates,
    ))
}

fn collect_dir(base: &Path, dir: &Path, out: &mut Sources) -> std::io::Result<()> {
    for item in std::fs::read_dir(dir)? {
        let path = item?.path();
        if path.is_dir() {
            collect_dir(base, &path, out)?;
        } else if let Ok(relative) = path.strip_prefix(base) {
            out.push((
                relative.to_string_lossy().into_owned(),
                std::fs::read_to_string(&path)?,
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_fast_form_is_the_checked_catalog() {
        let fast = built_in_parsed().expect("build.rs embedded the built-in entries");
        let checked = load_checked(&Source::BuiltIn).expect("the built-in catalog reads");
        assert_eq!(fast.entries, checked.catalog.entries);
        assert_eq!(fast.templates, checked.catalog.templates);
        assert_eq!(fast.template_sources, checked.catalog.template_sources);
        assert_eq!(fast.origin, checked.catalog.origin);
        // What a run of `check` no longer does for the built-in catalog.
        let findings = super::super::lint::lint(&checked);
        assert!(findings.is_empty(), "{findings:#?}");
    }
}
