//! `--help`, `voisin completions` and `voisin man`: all three come from the
//! same clap definitions, and a subcommand's own options stay together.

use std::io::Read as _;
use std::process::{Command, Stdio};

use crate::support::Voisin;

#[test]
fn subcommand_help_lists_its_own_options_before_the_global_ones() {
    let run = Voisin::new(["board", "serve", "--help"]).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (own, global) = run
        .stdout
        .split_once("Global options:")
        .expect("a heading for the global options");
    for flag in ["--database", "--smtp-host", "--members-file"] {
        assert!(own.contains(flag), "{flag} is not among the own options");
    }
    for flag in ["--format", "--progress", "--quiet", "--catalog"] {
        assert!(!own.contains(flag), "{flag} is mixed with the own options");
        assert!(global.contains(flag), "{flag} is missing");
    }
}

#[test]
fn completions_cover_every_subcommand_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = Voisin::new(["completions", shell]).run();
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        for word in ["check", "render", "keygen", "credentials"] {
            assert!(
                run.stdout.contains(word),
                "{shell} completion lacks `{word}`"
            );
        }
    }
    let unknown = Voisin::new(["completions", "tcsh"]).run();
    assert_eq!(unknown.code, 2);
}

#[test]
fn a_reader_that_stops_early_does_not_make_completions_panic() {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("voisin"))
        .args(["completions", "zsh"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("voisin starts");
    // Close the pipe at once, as `| head -c0` would.
    drop(child.stdout.take());
    let status = child.wait().expect("voisin ends");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("readable");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn the_manual_page_is_roff_naming_every_command() {
    let run = Voisin::new(["man"]).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(".TH voisin 1"), "{}", run.stdout);
    for word in ["check", "render", "secrets", "completions"] {
        assert!(run.stdout.contains(word), "the page lacks `{word}`");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let pages = Voisin::new(["man", "--out"]).arg(dir.path()).run();
    assert_eq!(pages.code, 0, "{}", pages.stderr);
    for page in ["voisin.1", "voisin-check.1", "voisin-secrets-keygen.1"] {
        assert!(dir.path().join(page).is_file(), "{page} is not written");
    }
}
