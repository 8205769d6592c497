//! The catalog: what voisin can deploy. One YAML entry per service
//! (`catalog/NAME.yaml`) and the templates its configuration files are
//! rendered from (`templates/NAME/…`). The default catalog is built into the
//! binary; `--catalog DIR` reads another laid out the same way.

pub mod lint;
pub mod load;
pub mod setting;

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use load::{Source, load};
pub use setting::{Setting, SettingKind};

/// One deployable service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The name a manifest's `use:` gives; equal to the file's name.
    pub name: String,

    /// What the entry is for: `mail`, `cloud`, `board`, `proxy`, or a role
    /// of the association's own.
    pub role: String,

    /// One line saying what it is.
    pub summary: String,

    /// The version of the application it deploys.
    pub version: String,

    /// Whether a service using it needs a public `host:`.
    #[serde(default = "yes")]
    pub needs_host: bool,

    /// Settings a manifest may give under the service's `settings:`.
    #[serde(default)]
    pub settings: BTreeMap<String, Setting>,

    /// The containers it runs, by name.
    #[serde(default)]
    pub containers: BTreeMap<String, Container>,
}

fn yes() -> bool {
    true
}

/// A container of an entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// The image, pinned by tag (and digest where known): never `latest`.
    pub image: String,

    /// Environment variables. Secrets never appear here literally: they are
    /// given as files (`secrets:`) and named through `_FILE` variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,

    /// Secrets the container reads, by name; voisin generates each one.
    #[serde(default)]
    pub secrets: Vec<String>,

    /// Configuration files rendered from templates into the container.
    #[serde(default)]
    pub files: Vec<TemplateFile>,
}

/// A configuration file rendered from a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    /// The template, relative to `templates/ENTRY/`.
    pub template: String,
    /// Where the rendered file goes inside the container.
    pub path: String,
}

/// A loaded catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Entries by name.
    pub entries: BTreeMap<String, Entry>,
    /// Template files present, as `ENTRY/relative/path`.
    pub templates: BTreeSet<String>,
    /// Where it was read from, for messages.
    pub origin: String,
}

impl Catalog {
    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// The roles entries provide, sorted.
    pub fn roles(&self) -> BTreeSet<&str> {
        self.entries.values().map(|e| e.role.as_str()).collect()
    }

    /// Entries of one role.
    pub fn of_role<'a>(&'a self, role: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.values().filter(move |e| e.role == role)
    }
}

/// The JSON Schema of a catalog entry, used to check entry files.
pub fn entry_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    serde_json::to_value(generator.into_root_schema_for::<Entry>()).unwrap_or_default()
}
