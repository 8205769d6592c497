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
