//! `voisin check`: every file of the corpus under `tests/manifests/` states,
//! at its end, exactly what `check` must report about it (line, column,
//! severity, code, message and hint), and the binary must report exactly
//! that, in that order.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::support::{Voisin, root};

/// One expected diagnostic, as written in a corpus file.
#[derive(Debug, PartialEq)]
struct Expected {
    head: String,
    hint: Option<String>,
}

fn expectations(text: &str) -> Vec<Expected> {
    let mut found: Vec<Expected> = Vec::new();
    for line in text.lines() {
        if let Some(head) = line.strip_prefix("# expect: ") {
            found.push(Expected {
                head: head.to_string(),
                hint: None,
            });
        } else if let Some(hint) = line.strip_prefix("# hint: ") {
            found
                .last_mut()
                .expect("a hint follows an expect line")
                .hint = Some(hint.to_string());
        }
    }
    found
}

/// The catalog a corpus file asks for with a `# catalog: DIR` line, for
/// problems the built-in catalog cannot produce.
fn catalog_of(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("# catalog: "))
}

fn reported(file: &Path) -> (i32, Vec<Expected>) {
    let text = fs::read_to_string(root().join(file)).expect("readable");
    let mut voisin = Voisin::new(["check", "--format", "json"]);
    if let Some(dir) = catalog_of(&text) {
        voisin = voisin.arg("--catalog").arg(dir);
    }
    let run = voisin.arg(file).run();
    let report = run.json();
    let diagnostics = report["diagnostics"]
        .as_array()
        .expect("a diagnostics list");
    let found = diagnostics
        .iter()
        .map(|d| {
            assert_eq!(
                d["file"].as_str(),
                Some(file.to_str().expect("UTF-8 path")),
                "diagnostic of another file"
            );
            Expected {
                head: format!(
                    "{}:{} {} {}: {}",
                    d["line"],
                    d["column"],
                    d["severity"].as_str().expect("severity"),
                    d["code"].as_str().expect("code"),
                    d["message"].as_str().expect("message"),
                ),
                hint: d["hint"].as_str().map(str::to_string),
            }
        })
        .collect();
    (run.code, found)
}

pub fn corpus(kind: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(root().join("tests/manifests").join(kind))
        .expect("the corpus exists")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            p.strip_prefix(root())
                .expect("inside the repository")
                .to_path_buf()
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_invalid_manifest_reports_exactly_its_expected_diagnostics() {
    let files = corpus("invalid");
    assert!(
        files.len() >= 40,
        "the invalid corpus has {} files",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let expected = expectations(&fs::read_to_string(root().join(file)).expect("readable"));
        assert!(
            !expected.is_empty(),
            "{} states no expectation",
            file.display()
        );
        let (code, found) = reported(file);
        if code != 1 {
            failures.push(format!("{}: exit {code}, expected 1", file.display()));
        }
        if found != expected {
            failures.push(format!(
                "{}:\n  expected {expected:#?}\n  found {found:#?}",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn valid_manifests_pass_with_only_their_expected_warnings() {
    for file in corpus("valid") {
        let expected = expectations(&fs::read_to_string(root().join(&file)).expect("readable"));
        let (code, found) = reported(&file);
        assert_eq!(code, 0, "{} should be valid", file.display());
        assert_eq!(found, expected, "{}", file.display());
    }
}

#[test]
fn text_output_shows_the_line_with_a_marker_and_the_hint() {
    let run = Voisin::new(["check", "tests/manifests/invalid/misspelt-entry.yaml"]).run();
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        "error[unknown-entry]: the catalog has no entry named `nextclod`\n \
         --> tests/manifests/invalid/misspelt-entry.yaml:6:17\n  \
         |\n\
         6 |   cloud: { use: nextclod, host: cloud.amis.org }\n  \
         |                 ^^^^^^^^\n  \
         = hint: did you mean `nextcloud`?\n\
         \n\
         tests/manifests/invalid/misspelt-entry.yaml: 1 error, 0 warnings\n"
    );
}

#[test]
fn all_files_are_reported_in_one_run() {
    let run = Voisin::new([
        "check",
        "--format",
        "json",
        "tests/manifests/invalid/misspelt-entry.yaml",
        "examples/full-association.yaml",
        "tests/manifests/invalid/duplicate-member-ids.yaml",
    ])
    .run();
    assert_eq!(run.code, 1);
    let report = run.json();
    assert_eq!(report["version"], 1);
    assert_eq!(report["valid"], false);
    assert_eq!(report["errors"], 2);
    let files: Vec<(&str, bool)> = report["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            (
                f["file"].as_str().expect("file"),
                f["valid"].as_bool().expect("valid"),
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            ("tests/manifests/invalid/misspelt-entry.yaml", false),
            ("examples/full-association.yaml", true),
            ("tests/manifests/invalid/duplicate-member-ids.yaml", false),
        ]
    );
    let json_diag = &report["diagnostics"][1];
    for key in [
        "file", "line", "column", "severity", "code", "message", "hint", "path",
    ] {
        assert!(json_diag.get(key).is_some(), "diagnostics carry `{key}`");
    }
    assert_eq!(json_diag["path"], "members[1].id");
}

#[test]
fn reads_voisin_yaml_by_default_and_the_file_flag_otherwise() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = Voisin::new(["check"]).in_dir(dir.path()).run();
    assert_eq!(
        missing.code, 2,
        "a missing manifest is an environment error"
    );
    assert!(
        missing.stdout.contains("cannot read `voisin.yaml`"),
        "{}",
        missing.stdout
    );

    fs::copy(
        root().join("examples/board-only.yaml"),
        dir.path().join("voisin.yaml"),
    )
    .expect("copy");
    assert_eq!(Voisin::new(["check"]).in_dir(dir.path()).run().code, 0);

    fs::copy(
        root().join("tests/manifests/invalid/misspelt-entry.yaml"),
        dir.path().join("other.yaml"),
    )
    .expect("copy");
    let flagged = Voisin::new(["-f", "other.yaml", "check"])
        .in_dir(dir.path())
        .run();
    assert_eq!(flagged.code, 1);
    assert!(
        flagged.stdout.contains("other.yaml:6:17"),
        "{}",
        flagged.stdout
    );
}

#[test]
fn quiet_prints_only_errors() {
    let run = Voisin::new([
        "check",
        "-q",
        "examples/board-only.yaml",
        "tests/manifests/valid/keep-by-counts-only.yaml",
    ])
    .run();
    assert_eq!(run.code, 0);
    assert!(!run.stdout.contains("warning["), "{}", run.stdout);
    assert!(!run.stdout.contains("valid"), "{}", run.stdout);
}

#[test]
fn usage_errors_exit_two() {
    assert_eq!(Voisin::new(["check", "--format", "xml"]).run().code, 2);
    assert_eq!(Voisin::new(["no-such-command"]).run().code, 2);
}

#[test]
fn a_long_line_is_cut_around_the_marker() {
    let run = Voisin::new(["check", "tests/manifests/invalid/long-line.yaml"]).run();
    assert_eq!(run.code, 1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let shown = lines
        .iter()
        .find(|l| l.starts_with("2 | "))
        .expect("the source line");
    assert!(shown.starts_with("2 | …"), "{}", run.stdout);
    assert!(shown.chars().count() < 120, "{}", run.stdout);
    let marker = lines
        .iter()
        .skip_while(|l| !l.starts_with("2 | "))
        .nth(1)
        .expect("the marker line");
    let at = marker.find('^').expect("a marker");
    let under: String = shown.chars().skip(at).take(4).collect();
    assert_eq!(under, "5 Go", "{}", run.stdout);
}

#[test]
fn thirty_thousand_members_are_read_without_blaming_aliases() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = String::from(
        "association:\n  name: FAI associatif\n  domain: fai.example.org\n  contact: bureau@fai.example.org\nmembers:\n",
    );
    for i in 0..30_000 {
        writeln!(
            text,
            "  - id: m{i}\n    name: Membre numéro {i} de l'association\n    contact: membre.{i}@example.net\n    quota: 2 GB"
        )
        .expect("a String takes any write");
    }
    assert!(text.len() > 3_000_000, "{} bytes", text.len());
    let file = dir.path().join("voisin.yaml");
    fs::write(&file, &text).expect("write");
    let run = Voisin::new(["check", "-q"]).arg(&file).run();
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(!run.stdout.contains("alias"), "{}", run.stdout);
}

#[test]
fn codes_outside_the_corpus_are_reported_too() {
    // `unreadable-file`: a file that cannot be read, exit 2, still reported.
    let run = Voisin::new([
        "check",
        "--format",
        "json",
        "tests/manifests/no-such-file.yaml",
    ])
    .run();
    assert_eq!(run.code, 2);
    assert_eq!(run.json()["diagnostics"][0]["code"], "unreadable-file");
    // `entry-name`: a catalog entry whose `name` is not its file's name.
    let dir = tempfile::tempdir().expect("temp dir");
    fs::create_dir_all(dir.path().join("catalog")).expect("catalog dir");
    fs::create_dir_all(dir.path().join("templates")).expect("templates dir");
    let entry = fs::read_to_string(root().join("tests/catalogs/corpus/catalog/notes.yaml"))
        .expect("readable");
    fs::write(dir.path().join("catalog/carnet.yaml"), entry).expect("write");
    let run = Voisin::new(["check", "--format", "json", "--catalog"])
        .arg(dir.path())
        .arg("examples/board-only.yaml")
        .run();
    assert_eq!(run.code, 1, "{}", run.stdout);
    let codes: Vec<String> = run.json()["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| d["code"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(codes.contains(&"entry-name".to_string()), "{codes:?}");
}

#[test]
fn every_documented_code_has_a_corpus_case_or_a_test() {
    let doc = fs::read_to_string(root().join("docs/json-output.md")).expect("docs");
    let section = doc
        .split("## Codes")
        .nth(1)
        .and_then(|s| s.split("\n# ").next())
        .expect("a Codes section");
    let mut corpus = String::new();
    for kind in ["invalid", "valid"] {
        for file in super::check::corpus(kind) {
            corpus.push_str(&fs::read_to_string(root().join(file)).expect("readable"));
        }
    }
    let catalog_tests = fs::read_to_string(root().join("tests/integration/catalog.rs"))
        .expect("catalog tests")
        + &fs::read_to_string(root().join("tests/integration/check.rs")).expect("check tests");
    let mut missing = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let codes_cell = line.split('|').nth(1).unwrap_or_default();
        for code in codes_cell.split('`').skip(1).step_by(2) {
            let in_corpus = corpus.contains(&format!(" {code}: "));
            let in_tests = catalog_tests.contains(&format!("\"{code}\""))
                || catalog_tests.contains(&format!("\"{code} "));
            if !in_corpus && !in_tests && code != "internal" {
                missing.push(code.to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "documented codes nothing shows: {missing:?}"
    );
}

#[test]
fn every_message_and_hint_of_the_corpus_has_its_french() {
    let mut untranslated = Vec::new();
    for kind in ["invalid", "valid"] {
        for file in corpus(kind) {
            let text = fs::read_to_string(root().join(&file)).expect("readable");
            for e in expectations(&text) {
                let message = e
                    .head
                    .split_once(": ")
                    .map(|(_, m)| m.to_string())
                    .unwrap_or_default();
                for english in std::iter::once(message).chain(e.hint) {
                    match voisin::lang::french(&english) {
                        Some((_, true)) => {}
                        Some((partly, false)) => {
                            untranslated.push(format!("{english}\n    → {partly}"));
                        }
                        None => untranslated.push(english),
                    }
                }
            }
        }
    }
    untranslated.sort();
    untranslated.dedup();
    assert!(
        untranslated.is_empty(),
        "no French for:\n{}",
        untranslated.join("\n")
    );
}

#[test]
fn a_french_manifest_is_reported_in_french_with_the_same_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text =
        fs::read_to_string(root().join("tests/manifests/invalid/many-problems-at-once.yaml"))
            .expect("readable")
            .replace("locale: de", "locale: fr");
    let file = dir.path().join("voisin.yaml");
    fs::write(&file, text).expect("write");
    let english = Voisin::new(["check", "--format", "json", "--lang", "en"])
        .arg(&file)
        .run()
        .json();
    // `LANG=C` names no language: the manifest's `locale: fr` decides.
    let french = Voisin::new(["check", "--format", "json"])
        .arg(&file)
        .env("LANG", "C.UTF-8")
        .run();
    let french = french.json();
    let codes = |r: &serde_json::Value| -> Vec<String> {
        r["diagnostics"]
            .as_array()
            .expect("list")
            .iter()
            .map(|d| d["code"].to_string())
            .collect()
    };
    assert_eq!(codes(&english), codes(&french));
    assert_ne!(
        english["diagnostics"][0]["message"],
        french["diagnostics"][0]["message"]
    );
    let fr = Voisin::new(["check", "--lang", "fr"]).arg(&file).run();
    assert!(
        fr.stdout
            .contains("erreur[unknown-key]: clé inconnue `domian` dans `association`"),
        "{}",
        fr.stdout
    );
    assert!(
        fr.stdout
            .contains("= conseil : vouliez-vous dire `domain` ?"),
        "{}",
        fr.stdout
    );
    assert!(fr.stdout.contains("erreurs"), "{}", fr.stdout);
    // `LANG` naming English wins over the manifest; `--lang` over `LANG`.
    let lang_en = Voisin::new(["check", "-f", "examples/full-association.yaml"])
        .env("LANG", "en_GB.UTF-8")
        .run();
    assert!(lang_en.stdout.contains(": valid"), "{}", lang_en.stdout);
    let flag_fr = Voisin::new(["check", "--lang", "fr", "examples/full-association.yaml"])
        .env("LANG", "en_GB.UTF-8")
        .run();
    assert!(flag_fr.stdout.contains(": valide"), "{}", flag_fr.stdout);
}
