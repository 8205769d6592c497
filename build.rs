//! Links the light `voisin` executable as a fixed-address one, and reads
//! the built-in catalog's entries (`catalog/*.yaml`) at build time and
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
    link_light_executable();
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("built_in_catalog.json");
    let embedded = read_entries().map_or_else(
        || "null".to_string(),
        |entries| serde_json::to_string(&entries).expect("JSON values serialise"),
    );
    std::fs::write(&out, embedded).expect("OUT_DIR is writable");
}

/// `voisin` (which runs `check`, `render` and the other file commands) is
/// linked at a fixed address rather than position-independent. The loader
/// then has no relocations to apply to it (37,000 of them, and the pages of
/// `.data.rel.ro` they dirty): on a cloud VM where a page fault costs
/// several microseconds, that halved `check`'s start-up (issue 11,
/// `docs/benchmarks.md`). It gives up address randomisation of its code,
/// which matters for programs that read untrusted network input; `voisin`
/// reads the admin's own files and hands every engine, network and backup
/// command to `voisin-full`, which stays position-independent.
fn link_light_executable() {
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if linux {
        println!("cargo::rustc-link-arg-bin=voisin=-no-pie");
    }
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
