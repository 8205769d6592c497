//! `voisin schema`: the JSON Schema editors and CI read, and the committed
//! copy that examples point at.

use std::fs;

use crate::support::{Voisin, root};

#[test]
fn the_committed_schema_is_what_the_binary_prints() {
    let run = Voisin::new(["schema"]).run();
    assert_eq!(run.code, 0);
    let committed =
        fs::read_to_string(root().join("schema/voisin.schema.json")).expect("committed schema");
    assert!(
        run.stdout == committed,
        "schema/voisin.schema.json is stale: run `cargo run -- schema > schema/voisin.schema.json`"
    );
}

#[test]
fn the_schema_is_draft_07_and_rejects_unknown_keys() {
    let schema = Voisin::new(["schema"]).run().json();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], serde_json::json!(["association"]));
    let member = &schema["definitions"]["Member"];
    assert_eq!(member["additionalProperties"], false);
    assert!(
        member["properties"]["id"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("account name"))
    );
}

/// Reads a YAML file as plain JSON, as an editor's language server would.
fn as_json(path: &str) -> serde_json::Value {
    let text = fs::read_to_string(root().join(path)).expect("readable");
    let document = voisin::document::Document::parse(path, text).expect("valid YAML");
    voisin::document::shape::generic(&document.root)
}

#[test]
fn an_independent_validator_agrees_with_check_on_the_examples() {
    let schema = Voisin::new(["schema"]).run().json();
    let validator = jsonschema::draft7::new(&schema).expect("the schema compiles as draft-07");
    for example in [
        "examples/board-only.yaml",
        "examples/mail-only.yaml",
        "examples/full-association.yaml",
    ] {
        let errors: Vec<String> = validator
            .iter_errors(&as_json(example))
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{example}: {errors:?}");
    }
}

#[test]
fn editors_flag_misspelt_entries_settings_and_strict_booleans() {
    let schema = Voisin::new(["schema"]).run().json();
    let validator = jsonschema::draft7::new(&schema).expect("the schema compiles as draft-07");
    for invalid in [
        "tests/manifests/invalid/misspelt-entry.yaml",
        "tests/manifests/invalid/misspelt-setting.yaml",
        "tests/manifests/invalid/strict-boolean-setting.yaml",
        "tests/manifests/invalid/list-item-not-a-choice.yaml",
        "tests/manifests/invalid/misspelt-association-key.yaml",
    ] {
        assert!(
            !validator.is_valid(&as_json(invalid)),
            "{invalid} passes the editor schema"
        );
    }
}
