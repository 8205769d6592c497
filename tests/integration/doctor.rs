//! `voisin doctor`: each problem made for real (a port taken by the test,
//! a record missing from a stub DNS server, a repository with the wrong
//! password, a secrets file others can read) gives its line and exit 1;
//! a clean machine gives exit 0.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use crate::dns::{StubDns, example, records, wire};
use crate::support::{Run, Voisin};

fn doctor(manifest: &Path) -> Voisin {
    // Ask a DNS server that is not there rather than the machine's: the
    // quickstart needs no record, and no packet may leave the machine.
    Voisin::new(["-f"]).arg(manifest).arg("doctor")
}

/// The quickstart on loopback port `port`, with a backup repository that
/// `restic` made, in a temporary folder.
fn quickstart(port: u16, password: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, manifest) = example("quickstart.yaml");
    let repo = dir.path().join("repo");
    let init = Command::new("restic")
        .args(["init", "--repo"])
        .arg(&repo)
        .env("RESTIC_PASSWORD", password)
        .output()
        .expect("restic runs (Debian's `restic` package)");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let pw = dir.path().join("password");
    std::fs::write(&pw, "the-right-password\n").expect("written");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let text = std::fs::read_to_string(&manifest).expect("the manifest");
    let text = text.replace("port: 8080", &format!("port: {port}"));
    std::fs::write(
        &manifest,
        format!(
            "{text}\nbackup:\n  repository: {}\n  password_file: password\n  keep: {{ within: 2d, daily: 7 }}\n",
            repo.display()
        ),
    )
    .expect("written");
    (dir, manifest)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a port")
        .local_addr()
        .expect("an address")
        .port()
}

fn lines_of(run: &Run, level: &str) -> Vec<String> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with(&format!("{level} ")))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_clean_machine_has_no_problem_and_exits_0() {
    let port = free_port();
    let (_dir, manifest) = quickstart(port, "the-right-password");
    let run = doctor(&manifest).env_remove("VOISIN_BACKUP_PASSWORD").run();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(lines_of(&run, "problem").is_empty(), "{}", run.stdout);
    // Only the clock may be a warning: this machine has no running systemd
    // to say whether NTP keeps it in time.
    for warning in lines_of(&run, "warning") {
        assert!(warning.starts_with("warning  clock:"), "{}", run.stdout);
    }
    for expected in [
        "ok       engine: the Docker engine at ",
        &format!("ok       port: port {port}/tcp on 127.0.0.1 is free"),
        "ok       backup: the backup repository ",
        "ok       secrets: no secrets yet",
        "ok       disk: the Docker engine's data",
    ] {
        assert!(
            run.stdout.contains(expected),
            "no `{expected}` in:\n{}",
            run.stdout
        );
    }
    let json = doctor(&manifest)
        .args(["--format", "json"])
        .env_remove("VOISIN_BACKUP_PASSWORD")
        .run();
    assert_eq!(json.code, 0);
    assert_eq!(json.json()["ready"], true);
}

#[test]
fn a_port_another_program_holds_is_a_problem() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().expect("an address").port();
    let (_dir, manifest) = quickstart(port, "the-right-password");
    let run = doctor(&manifest).env_remove("VOISIN_BACKUP_PASSWORD").run();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "problem  port: port {port}/tcp on 127.0.0.1 is taken by another program"
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("hint: find it with `ss -lntup 'sport = :{port}'`")),
        "{}",
        run.stdout
    );
    drop(taken);
}

#[test]
fn a_repository_the_password_does_not_open_is_a_problem() {
    let (_dir, manifest) = quickstart(free_port(), "another-password");
    let run = doctor(&manifest).env_remove("VOISIN_BACKUP_PASSWORD").run();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let problems = lines_of(&run, "problem");
    assert_eq!(problems.len(), 1, "{}", run.stdout);
    assert!(
        problems[0].starts_with("problem  backup: backup repository "),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("the-right-password") && !run.stderr.contains("the-right-password")
    );

    // No repository at all where the manifest says: a remote one nobody answers for.
    let text = std::fs::read_to_string(&manifest).expect("the manifest");
    let start = text.find("  repository: ").expect("a repository");
    let end = start + text[start..].find('\n').expect("a line");
    let text = format!(
        "{}  repository: sftp://nobody@127.0.0.1:1//srv/repo{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(&manifest, text).expect("written");
    let run = doctor(&manifest).env_remove("VOISIN_BACKUP_PASSWORD").run();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("problem  backup: "), "{}", run.stdout);
}

#[test]
fn a_secrets_file_others_can_read_is_a_problem_with_the_chmod_to_run() {
    let (dir, manifest) = quickstart(free_port(), "the-right-password");
    let render = Voisin::new(["-f"])
        .arg(&manifest)
        .arg("render")
        .arg("--out")
        .arg(dir.path().join("out"))
        .run();
    assert_eq!(render.code, 0, "{}", render.stderr);
    let state = dir.path().join(".voisin");
    let secrets = state.join("secrets.yaml");
    let clean = doctor(&manifest).env_remove("VOISIN_BACKUP_PASSWORD").run();
    assert_eq!(clean.code, 0, "{}", clean.stdout);
    assert!(
        clean.stdout.contains("ok       secrets: "),
        "{}",
        clean.stdout
    );

    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let run = doctor(&manifest).env_remove("VOISIN_BACKUP_PASSWORD").run();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "problem  secrets: `{}` has mode 644",
            secrets.display()
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("hint: run `chmod 600 {}`", secrets.display())),
        "{}",
        run.stdout
    );

    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let run = doctor(&manifest).env_remove("VOISIN_BACKUP_PASSWORD").run();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("hint: run `chmod 700 {}`", state.display())),
        "{}",
        run.stdout
    );
}

#[test]
fn a_record_missing_from_dns_is_a_problem() {
    let (_dir, manifest) = example("board-only.yaml");
    let text = std::fs::read_to_string(&manifest).expect("the manifest");
    let text = text.replacen(
        "\n  timezone:",
        "\n  public_address: { ipv4: 198.51.100.4 }\n  timezone:",
        1,
    );
    std::fs::write(&manifest, text).expect("written");
    let zone: Vec<_> = records(&manifest).iter().map(wire).collect();
    assert_eq!(zone.len(), 1);

    let empty = StubDns::serve(Vec::new());
    let run = doctor(&manifest)
        .arg("--resolver")
        .arg(empty.address.to_string())
        .run();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("problem  dns: missing: `pret.tilleuls.example.org.` A 198.51.100.4"),
        "{}",
        run.stdout
    );

    let full = StubDns::serve(zone);
    let run = doctor(&manifest)
        .arg("--resolver")
        .arg(full.address.to_string())
        .run();
    assert!(
        run.stdout.contains("ok       dns: 1 of 1 records in place"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("problem  dns"), "{}", run.stdout);
}
