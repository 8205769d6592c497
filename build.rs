//! Reads the built-in catalog's entries (`catalog/*.yaml`) at build time and
//! embeds them as JSON, so that `voisin check` does not parse and
//! shape-check them on every run (most of its time, before).
//!
//! Only the parsing moves here: what the entries mean is still checked by
//! the full reader and the lint, in the tests (`catalog::load` tests compare
//! both forms). An entry this script cannot read makes it embed nothing, and
//! voisin then reads the YAML itself at run time and reports the problem
//! with its line and column, as for any catalog.

use std::collections::BTreeMap;
use std::path::Path;

fn main() {
    println!("cargo::rerun-if-changed=catalog");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("built_in_catalog.json");
    let embedded = read_entries().map_or_else(
        || "null".to_string(),
        |entries| serde_json::to_string(&entries).expect("JSON values serialise"),
    );
    std::fs::write(&out, embedded).expect("OUT_DIR is writable");
}

/// Every entry as a JSON value, by file stem; `None` when one cannot be read.
fn read_entries() -> Option<BTreeMap<String, serde_json::Value>> {
    let mut entries = BTreeMap::new();
    for item in std::fs::read_dir("catalog").ok()? {
        let path = item.ok()?.path();
        println!("cargo::rerun-if-changed={}", path.display());
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).ok()?;
        let value: serde_json::Value = serde_saphyr::from_str(&text).ok()?;
        let stem = path.file_stem()?.to_string_lossy().into_owned();
        entries.insert(stem, value);
    }
    Some(entries)
}
