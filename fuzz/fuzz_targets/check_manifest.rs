//! Fuzzes the whole of `voisin check` on one text: YAML reading, the shape
//! check against the schema, the meaning check against the built-in catalog,
//! and the rendering of every diagnostic. Whatever the text, it must return
//! diagnostics, never panic, hang or exhaust memory.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use voisin::catalog::{Catalog, Source, load};

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| load(&Source::BuiltIn).expect("the built-in catalog loads").catalog)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let checked = voisin::manifest::check("fuzz.yaml", text, catalog());
    for diagnostic in &checked.diagnostics {
        let rendered = diagnostic.render();
        assert!(rendered.starts_with("error[") || rendered.starts_with("warning["));
    }
    // A manifest that checks clean has been read completely.
    if checked.is_valid() {
        assert!(checked.manifest.is_some());
    }
});
