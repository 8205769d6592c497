//! `voisin init`, driven as a script drives it (no terminal): the manifest
//! it writes passes `check`, its modeline names the schema written beside
//! it, and an existing manifest is never overwritten.

use std::fs;

use crate::support::Voisin;

fn init_in(dir: &std::path::Path, extra: &[&str]) -> crate::support::Run {
    Voisin::new([
        "init",
        "--name",
        "Les Locataires du 12",
        "--domain",
        "locataires12.example.org",
    ])
    .in_dir(dir)
    .args(extra)
    .run()
}

#[test]
fn init_with_every_flag_writes_a_manifest_check_passes_without_a_word() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = init_in(
        dir.path(),
        &[
            "--admin-name",
            "Loïc Perrin",
            "--admin-email",
            "loic.perrin@free.fr",
            "--ipv4",
            "203.0.113.12",
            "--locale",
            "fr",
            "--timezone",
            "Europe/Paris",
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let text = fs::read_to_string(dir.path().join("voisin.yaml")).expect("written");
    assert!(
        text.starts_with("# yaml-language-server: $schema=./voisin.schema.json\n"),
        "{text}"
    );
    assert!(text.contains("  - id: loic-perrin\n"), "{text}");
    assert!(text.contains("# "), "the manifest is commented");
    let check = Voisin::new(["check", "--format", "json"])
        .in_dir(dir.path())
        .run();
    assert_eq!(check.code, 0, "{}", check.stdout);
    assert_eq!(check.json()["diagnostics"], serde_json::json!([]));

    // The schema beside it accepts the file, as an editor would.
    let schema: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(dir.path().join("voisin.schema.json")).expect("schema written"),
    )
    .expect("JSON");
    let value: serde_json::Value = serde_saphyr::from_str(&text).expect("YAML");
    let validator = jsonschema::validator_for(&schema).expect("compiles");
    assert!(validator.is_valid(&value), "{value}");
}

#[test]
fn init_with_only_a_name_and_a_domain_asks_nothing_and_passes_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = init_in(dir.path(), &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let check = Voisin::new(["check"]).in_dir(dir.path()).run();
    assert_eq!(check.code, 0, "{}", check.stdout);
    for only in [
        &["--services", "board", "--admin-email", "a@example.net"][..],
        &["--services", "cloud,mail"][..],
    ] {
        let other = tempfile::tempdir().expect("temp dir");
        let run = init_in(other.path(), only);
        assert_eq!(run.code, 0, "{only:?}: {}", run.stderr);
        let check = Voisin::new(["check"]).in_dir(other.path()).run();
        assert_eq!(check.code, 0, "{only:?}: {}", check.stdout);
    }
}

#[test]
fn init_never_overwrites_a_manifest() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("voisin.yaml"), "# mine\n").expect("write");
    let run = init_in(dir.path(), &[]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert_eq!(
        fs::read_to_string(dir.path().join("voisin.yaml")).expect("kept"),
        "# mine\n"
    );
    assert!(!dir.path().join("voisin.schema.json").exists());
}

#[test]
fn init_without_a_terminal_names_the_flags_it_needs_and_refuses_bad_values() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = Voisin::new(["init", "--domain", "amis.example.org"])
        .in_dir(dir.path())
        .run();
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("needs `--name`"), "{}", run.stderr);
    let bad = Voisin::new(["init", "--name", "Amis", "--domain", "Amis.Org"])
        .in_dir(dir.path())
        .run();
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("`--domain Amis.Org` cannot be used"),
        "{}",
        bad.stderr
    );
    let no_mail = Voisin::new([
        "init",
        "--name",
        "Amis",
        "--domain",
        "amis.example.org",
        "--services",
        "board",
    ])
    .in_dir(dir.path())
    .run();
    assert_eq!(no_mail.code, 2);
    assert!(
        no_mail.stderr.contains("--admin-email"),
        "{}",
        no_mail.stderr
    );
    assert!(!dir.path().join("voisin.yaml").exists());
}
