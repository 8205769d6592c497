//! The two executables: `voisin` runs the commands that read and write
//! files and hands every other one to `voisin-full`, found beside it; to
//! the person typing they are one program.

use std::process::Command;

use crate::support::{Voisin, root};

#[test]
fn a_command_handed_to_voisin_full_keeps_its_input_output_and_exit_status() {
    // `board hash-password` runs in voisin-full: it reads standard input.
    let run = Voisin::new(["board", "hash-password"])
        .stdin("change me now\n")
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("$argon2id$"), "{}", run.stdout);

    let empty = Voisin::new(["board", "hash-password"]).stdin("\n").run();
    assert_eq!(empty.code, 1, "{}", empty.stderr);
    assert_eq!(
        empty.stderr,
        "error: the password on standard input is empty\n"
    );
}

#[test]
fn voisin_full_started_by_its_own_name_speaks_as_voisin() {
    for args in [&["--help"][..], &["backup", "--help"], &["stauts"]] {
        let ours = Voisin::new(args).run();
        let full = Command::new(env!("CARGO_BIN_EXE_voisin-full"))
            .args(args)
            .env("LANG", "en_US.UTF-8")
            .output()
            .expect("voisin-full runs");
        assert_eq!(full.status.code(), Some(ours.code), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&full.stdout),
            ours.stdout,
            "{args:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&full.stderr),
            ours.stderr,
            "{args:?}"
        );
    }
}

#[test]
fn voisin_without_voisin_full_still_checks_and_says_what_to_install() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let alone = dir.path().join("voisin");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_voisin"), &alone).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_voisin"), &alone).expect("copies voisin");
    }
    let run = |args: &[&str]| {
        Command::new(&alone)
            .args(args)
            .current_dir(root())
            .env("LANG", "en_US.UTF-8")
            .output()
            .expect("voisin runs")
    };

    let check = run(&["check", "-q", "examples/quickstart.yaml"]);
    assert_eq!(check.status.code(), Some(0), "{check:?}");

    let status = run(&["status", "-f", "examples/quickstart.yaml"]);
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert_eq!(status.status.code(), Some(2), "{stderr}");
    let missing = dir.path().join("voisin-full");
    assert!(
        stderr.starts_with(&format!("error: `{}` is missing", missing.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: install both of voisin's executables: `cargo install --path .`"),
        "{stderr}"
    );
}
