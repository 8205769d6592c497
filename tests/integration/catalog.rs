//! The catalog: `catalog list`, `catalog show`, `--catalog DIR`, and the
//! lint rules every entry must pass.

use crate::support::Voisin;

#[test]
fn lists_every_built_in_entry_with_its_role() {
    let run = Voisin::new(["catalog", "list", "--format", "json"]).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let entries: Vec<(String, String)> = run
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            (
                e["role"].as_str().expect("role").into(),
                e["name"].as_str().expect("name").into(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("board".to_string(), "voisin-board".to_string()),
            ("cloud".into(), "nextcloud".into()),
            ("mail".into(), "docker-mailserver".into()),
            ("proxy".into(), "local".into()),
            ("proxy".into(), "traefik".into()),
        ]
    );
}

#[test]
fn shows_an_entry_with_setting_types_and_defaults() {
    let run = Voisin::new(["catalog", "show", "voisin-board"]).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("voisin-board 0.1.0 (board)\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("  loan_period: duration (default 21d)\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("  categories: list of text (default [\"books\",\"films\",\"tools\",\"games\",\"services\"])\n"), "{}", run.stdout);

    let json = Voisin::new(["catalog", "show", "nextcloud", "--format", "json"])
        .run()
        .json();
    assert_eq!(json["settings"]["apps"]["type"], "list");
    assert_eq!(json["containers"]["db"]["image"], "postgres:18.1");
}

#[test]
fn an_unknown_entry_is_a_usage_error_with_a_suggestion() {
    let run = Voisin::new(["catalog", "show", "nextclod"]).run();
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("has no entry named `nextclod`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: did you mean `nextcloud`?"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_built_in_catalog_passes_its_own_lint() {
    let run = Voisin::new([
        "check",
        "--format",
        "json",
        "examples/full-association.yaml",
    ])
    .run();
    let report = run.json();
    assert_eq!(
        report["diagnostics"],
        serde_json::json!([]),
        "{}",
        run.stdout
    );
}

#[test]
fn lint_rejects_unpinned_images_literal_secrets_bad_templates_and_dangling_names() {
    let run = Voisin::new([
        "--catalog",
        "tests/catalogs/lint-failures",
        "check",
        "--format",
        "json",
        "tests/manifests/valid/text-that-looks-like-booleans.yaml",
    ])
    .run();
    assert_eq!(run.code, 1, "{}", run.stdout);
    let found: Vec<String> = run.json()["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| {
            format!(
                "{} {}:{} {}",
                d["code"].as_str().unwrap_or_default(),
                d["line"],
                d["column"],
                d["path"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            "literal-secret 9:14 settings.admin_password.default",
            "setting-shape 11:3 settings.colour",
            "bad-default 16:14 settings.size.default",
            "unpinned-image 20:12 containers.app.image",
            "literal-secret 22:20 containers.app.env.DB_PASSWORD",
            "missing-template 27:19 containers.app.files[1].template",
            "bad-template 29:19 containers.app.files[2].template",
            "unknown-reference 31:18 containers.app.depends_on[0]",
            "unpinned-image 34:12 containers.worker.image",
            "unknown-reference 38:18 backup.dumps[0].container",
            "unknown-reference 41:13 backup.volumes[0]",
        ]
    );
}

#[test]
fn a_broken_entry_is_reported_with_its_file_and_line() {
    let run = Voisin::new([
        "--catalog",
        "tests/catalogs/broken-entry",
        "check",
        "examples/board-only.yaml",
    ])
    .run();
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .contains("tests/catalogs/broken-entry/catalog/mailer.yaml:3:1"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("unknown top-level key `sumary`"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("hint: did you mean `summary`?"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .ends_with("examples/board-only.yaml: not checked, the catalog has errors\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_missing_catalog_directory_is_an_environment_error() {
    let run = Voisin::new([
        "--catalog",
        "tests/no-such-catalog",
        "check",
        "examples/board-only.yaml",
    ])
    .run();
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("cannot read the catalog in `tests/no-such-catalog`"),
        "{}",
        run.stderr
    );
}
