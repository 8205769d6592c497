//! Every file in `examples/` is what a newcomer starts from: each must be
//! valid, and each points editors at the committed schema.

use std::fs;

use crate::support::{Voisin, root};

fn examples() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root().join("examples"))
        .expect("examples/")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            format!(
                "examples/{}",
                p.file_name().expect("name").to_string_lossy()
            )
        })
        .collect();
    names.sort();
    names
}

#[test]
fn every_example_is_valid_without_warnings() {
    let names = examples();
    assert!(names.len() >= 3, "{names:?}");
    for name in names {
        let run = Voisin::new(["check", "--format", "json", name.as_str()]).run();
        assert_eq!(run.code, 0, "{name}: {}", run.stdout);
        assert_eq!(run.json()["diagnostics"], serde_json::json!([]), "{name}");
    }
}

#[test]
fn every_example_points_at_the_committed_schema() {
    for name in examples() {
        let text = fs::read_to_string(root().join(&name)).expect("readable");
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schema/voisin.schema.json\n"),
            "{name} does not start with the schema line"
        );
    }
}
