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
fn lint_rejects_unpinned_and_series_tags_literal_secrets_bad_templates_and_dangling_names() {
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
            "file-path 26:15 containers.app.files[0].path",
            "missing-template 27:19 containers.app.files[1].template",
            "bad-template 29:19 containers.app.files[2].template",
            "unknown-reference 31:18 containers.app.depends_on[0]",
            "unpinned-image 34:12 containers.worker.image",
            "unpinned-image 37:12 containers.proxy.image",
            "unknown-reference 39:22 containers.proxy.secret_owners.tls_cert",
            "bad-owner 39:50 containers.proxy.secret_owners.tls_key",
            "release-parts 43:20 containers.store.release_parts",
            "unknown-reference 47:18 backup.dumps[0].container",
            "unknown-reference 50:13 backup.volumes[0]",
            "unknown-reference 52:16 upstream[0].container",
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

#[test]
fn lint_refuses_a_minor_only_tag_and_says_why() {
    let run = Voisin::new([
        "--catalog",
        "tests/catalogs/lint-failures",
        "check",
        "tests/manifests/valid/text-that-looks-like-booleans.yaml",
    ])
    .run();
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "error[unpinned-image]: the image `example/proxy:v3.7` is tagged `v3.7`, a series that moves to each new release"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("hint: pin a release tag, like `traefik:v3.7.9`"),
        "{}",
        run.stdout
    );
}

#[test]
fn catalog_docs_list_every_upstream_contract_of_the_built_in_entries() {
    let loaded = voisin::catalog::load(&voisin::catalog::Source::BuiltIn).expect("built-in");
    for entry in loaded.catalog.entries.values() {
        for name in entry.containers.keys() {
            assert!(
                entry
                    .upstream
                    .iter()
                    .any(|c| c.container.as_deref() == Some(name.as_str())),
                "{}: the container `{name}` lists no upstream contract",
                entry.name
            );
        }
    }
    let wanted = voisin::catalog::upstream::markdown(&loaded.catalog);
    let path = crate::support::root().join("docs/catalog.md");
    if std::env::var_os("VOISIN_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &wanted).expect("write docs/catalog.md");
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == wanted,
        "docs/catalog.md is not what the entries say: run \
         `VOISIN_UPDATE_DOCS=1 cargo test --test integration catalog_docs` and read the diff"
    );
    for needle in [
        "| mail | `ghcr.io/docker-mailserver/docker-mailserver` | `15.1.0` |",
        "| db | `postgres` | `18.1` |",
        "docker-mailserver/docker-mailserver@v15.1.0:compose.yaml",
    ] {
        assert!(have.contains(needle), "{needle}");
    }
}

#[test]
fn shows_what_an_entry_relies_on_upstream_with_sources() {
    let run = Voisin::new(["catalog", "show", "nextcloud", "--upstream"]).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .starts_with("nextcloud 34.0.3 (cloud): what it relies on in the upstream images\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("\ndb: postgres:18.1\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("    source: nextcloud/docker@4de1eed:34/apache/config/smtp.config.php\n"),
        "{}",
        run.stdout
    );
    let json = Voisin::new([
        "catalog",
        "show",
        "docker-mailserver",
        "--upstream",
        "--format",
        "json",
    ])
    .run()
    .json();
    assert_eq!(
        json["images"]["mail"],
        "ghcr.io/docker-mailserver/docker-mailserver:15.1.0"
    );
    let contracts = json["upstream"].as_array().expect("a list");
    assert!(contracts.iter().any(|c| {
        c["what"]
            .as_str()
            .is_some_and(|w| w.contains("dms-healthcheck"))
    }));
    assert!(
        contracts
            .iter()
            .all(|c| c["source"].as_str().is_some_and(|s| !s.is_empty()))
    );
}
