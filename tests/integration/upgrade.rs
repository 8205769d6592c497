//! `voisin upgrade` against the machine's engine, with the versions of the
//! test entry `busy-notes` in `tests/catalogs/upgrade/`: version 1 writes
//! notes into its volume; version 2 migrates them (upper case, format 2);
//! two broken versions 2 (one whose health never passes after it changed
//! the notes as it started, one whose migration fails half-way after
//! rewriting them); version 3, which upgrades only from 2. Each test has
//! its own association and repository, and compares the volume's files
//! (content hashes, modes, owners) before and after.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::backup::{Dice, tree_digest};
use super::bundle::docker;
use super::images::busybox_image;
use super::support::{Run, Voisin, bundle_args, root};

/// An association running `busy-notes` alone; taken down when dropped.
struct Site {
    dir: tempfile::TempDir,
    slug: String,
}

impl Site {
    fn new(slug: &str) -> Self {
        busybox_image();
        let dir = tempfile::tempdir().expect("temp dir");
        let catalog = dir.path().join("catalog");
        std::fs::create_dir_all(catalog.join("catalog")).expect("catalog folder");
        std::fs::create_dir_all(catalog.join("templates")).expect("templates folder");
        std::fs::copy(
            root().join("catalog/local.yaml"),
            catalog.join("catalog/local.yaml"),
        )
        .expect("copies `local`");
        let domain = format!("{slug}.localhost");
        let manifest = format!(
            "association:\n  name: Test {slug}\n  domain: {domain}\n  contact: admin@{domain}\n\
             members:\n  - id: alice\n    name: Alice\n    contact: alice@example.net\n    roles: [admin]\n\
             services:\n  notes:\n    use: busy-notes\n\
             proxy:\n  use: local\n\
             backup:\n  repository: {}\n  password_file: backup-password\n  keep: {{ last: 50 }}\n",
            dir.path().join("repo").display()
        );
        std::fs::write(dir.path().join("voisin.yaml"), manifest).expect("writes the manifest");
        let pw = dir.path().join("backup-password");
        std::fs::write(&pw, "an upgrade test's repository password\n").expect("password");
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let site = Self {
            dir,
            slug: slug.to_string(),
        };
        let _ = site.voisin(&["down", "--volumes", "--yes"]);
        site
    }

    /// Puts `version` (a folder of `tests/catalogs/upgrade/`) in the catalog.
    fn catalog(&self, version: &str) {
        std::fs::copy(
            root().join(format!(
                "tests/catalogs/upgrade/{version}/catalog/busy-notes.yaml"
            )),
            self.dir.path().join("catalog/catalog/busy-notes.yaml"),
        )
        .expect("copies the entry");
    }

    fn args(&self, args: &[&str]) -> Vec<String> {
        bundle_args(self.dir.path(), args)
    }

    fn voisin(&self, args: &[&str]) -> Run {
        Voisin::new(self.args(args)).run()
    }

    fn ok(&self, args: &[&str]) -> Run {
        let run = self.voisin(args);
        assert_eq!(
            run.code, 0,
            "voisin {args:?} failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        run
    }

    fn app(&self) -> String {
        format!("{}-notes-app", self.slug)
    }

    /// Where the notes volume's files are on this machine.
    fn data(&self) -> PathBuf {
        PathBuf::from(docker(&[
            "volume",
            "inspect",
            "-f",
            "{{.Mountpoint}}",
            &format!("{}-notes-data", self.slug),
        ]))
    }

    /// The version the running app container is, from its environment.
    fn running_version(&self) -> String {
        let state = docker(&["inspect", "-f", "{{.State.Running}}", &self.app()]);
        assert_eq!(state, "true", "the app container runs");
        let env = docker(&["inspect", "-f", "{{json .Config.Env}}", &self.app()]);
        let env: Vec<String> = serde_json::from_str(&env).expect("env");
        env.iter()
            .find_map(|e| e.strip_prefix("NOTES_VERSION=").map(str::to_string))
            .expect("NOTES_VERSION")
    }

    /// Version 1 deployed, with notes, a folder and a binary file written
    /// by hand: the association's data, as its digest.
    fn v1_with_data(&self) -> BTreeMap<String, String> {
        let _ = self.voisin(&["down", "--volumes", "--yes"]);
        self.catalog("v1");
        self.ok(&["deploy"]);
        docker(&[
            "exec",
            &self.app(),
            "/bin/busybox",
            "sh",
            "-c",
            "printf 'alpha\\nbeta\\ngamma\\n' > /data/notes.txt && mkdir -p /data/keep",
        ]);
        // The same bytes every time (a trial starts again from the same
        // data); owned by another user, which the container may not do
        // (every capability is dropped), as an app's files would be.
        let photo = self.data().join("keep/photo.bin");
        let mut x: u32 = 2_463_534_242;
        let bytes: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect();
        std::fs::write(&photo, bytes).expect("writes the photo");
        std::fs::set_permissions(&photo, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        std::os::unix::fs::chown(&photo, Some(33), Some(33)).expect("chown");
        assert_eq!(self.running_version(), "1");
        tree_digest(&self.data())
    }

    /// voisin's own leftovers: journal, containers kept aside, helpers.
    /// (A killed run's lock may stay until a run needs it: a lock whose
    /// process is gone from this machine is taken over then.)
    fn leftovers(&self) -> String {
        docker(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("label=voisin.association={}.localhost", self.slug),
        ])
        .lines()
        .filter(|n| {
            n.ends_with("-voisin-upgrade")
                || n.contains("-voisin-next")
                || n.contains("-voisin-old")
                || n.contains("-voisin-restore-")
                || n.contains("-voisin-backup-")
        })
        .collect::<Vec<_>>()
        .join(" ")
    }

    fn process(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("voisin"));
        cmd.args(self.args(args))
            .env("LANG", "en_US.UTF-8")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self.voisin(&["down", "--volumes", "--yes"]);
    }
}

/// The notes as version 2's migration leaves them.
fn migrated(before: &BTreeMap<String, String>, site: &Site) -> BTreeMap<String, String> {
    let after = tree_digest(&site.data());
    assert_eq!(
        std::fs::read_to_string(site.data().join("notes.txt")).expect("notes"),
        "ALPHA\nBETA\nGAMMA\n"
    );
    assert_eq!(
        std::fs::read_to_string(site.data().join("format")).expect("format"),
        "2\n"
    );
    assert_eq!(
        after.get("keep/photo.bin"),
        before.get("keep/photo.bin"),
        "files the migration does not touch are kept"
    );
    after
}

#[test]
fn upgrade_migrates_the_data_and_deploy_then_has_nothing_to_do() {
    let site = Site::new("up-ok");
    let before = site.v1_with_data();
    site.catalog("v2");
    // deploy does not change the version: it says to upgrade.
    let deploy = site.ok(&["deploy"]);
    assert!(
        deploy
            .stderr
            .contains("`notes` stays on busy-notes 1: the catalog has busy-notes 2; run `voisin upgrade notes`"),
        "{}",
        deploy.stderr
    );
    assert_eq!(site.running_version(), "1");
    assert_eq!(tree_digest(&site.data()), before);
    // The plan first, changing nothing.
    let dry = site.ok(&["upgrade", "--dry-run"]);
    assert!(
        dry.stdout.contains("notes: busy-notes 1 → busy-notes 2"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("step: rewrite the notes"),
        "{}",
        dry.stdout
    );
    assert_eq!(site.running_version(), "1");

    let started = Instant::now();
    let run = site.ok(&["upgrade", "notes"]);
    eprintln!("upgrade took {:.1} s", started.elapsed().as_secs_f64());
    assert!(
        run.stdout.contains("notes: upgraded to busy-notes 2"),
        "{}",
        run.stdout
    );
    assert_eq!(site.running_version(), "2");
    migrated(&before, &site);
    assert_eq!(site.leftovers(), "");
    // The safety snapshot is listed as such.
    let list = site.ok(&["backup", "list", "--format", "json"]).json();
    assert!(
        list["snapshots"]
            .as_array()
            .expect("snapshots")
            .iter()
            .any(|s| s["reason"] == "upgrade" && s["service"] == "notes"),
        "{list}"
    );
    // Done: nothing more to upgrade, and deploy makes no mutating call.
    let again = site.ok(&["upgrade"]);
    assert!(
        again.stdout.contains("nothing to upgrade"),
        "{}",
        again.stdout
    );
    let deploy = site.ok(&["deploy", "--format", "json"]).json();
    assert_eq!(deploy["engine_calls"]["writes"], 0, "{deploy}");
}

/// Upgrades to a broken version 2 and proves the service is back on
/// version 1 with exactly its data, the failure said with the logs.
fn rolled_back(site: &Site, broken: &str, said: &[&str]) {
    let before = site.v1_with_data();
    site.catalog(broken);
    let run = site.voisin(&["upgrade", "notes"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(
            "upgrading `notes` from busy-notes 1 to busy-notes 2 failed, and it was rolled back: busy-notes 1 runs again, with its data put back from the safety snapshot"
        ),
        "{}",
        run.stderr
    );
    for s in said {
        assert!(run.stderr.contains(s), "`{s}` is not said:\n{}", run.stderr);
    }
    assert_eq!(site.running_version(), "1");
    assert_eq!(tree_digest(&site.data()), before, "the data is as before");
    assert_eq!(site.leftovers(), "");
    // Still waiting for an upgrade, and deploy keeps it where it is.
    let deploy = site.ok(&["deploy", "--format", "json"]).json();
    assert_eq!(deploy["engine_calls"]["writes"], 0, "{deploy}");
}

#[test]
fn an_upgrade_whose_health_never_passes_comes_back_to_the_old_version_and_data() {
    let site = Site::new("up-sick");
    rolled_back(
        &site,
        "v2-unhealthy",
        &[
            "did not become healthy",
            // Its log, which says why.
            "notes 2: cannot read the notes database",
        ],
    );
}

#[test]
fn an_upgrade_whose_migration_fails_half_way_comes_back_to_the_old_version_and_data() {
    let site = Site::new("up-fail");
    rolled_back(
        &site,
        "v2-failing",
        &[
            "the step `rewrite the notes in the version 2 format` failed",
            "migration: table 2 of 3 failed",
            "log of `up-fail-notes-app`",
        ],
    );
}

#[test]
fn skipping_a_version_the_entry_cannot_skip_is_refused_and_changes_nothing() {
    let site = Site::new("up-skip");
    let before = site.v1_with_data();
    site.catalog("v3");
    let run = site.voisin(&["upgrade"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(
            "`notes` cannot go from busy-notes 1 to busy-notes 3 directly: busy-notes 3 upgrades only from version `2`"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: go through busy-notes 2 first"),
        "{}",
        run.stderr
    );
    assert_eq!(site.running_version(), "1");
    assert_eq!(tree_digest(&site.data()), before);
    assert!(
        !site.dir.path().join("repo").exists(),
        "refused before any snapshot"
    );
}

#[test]
fn upgrade_killed_at_random_moments_ends_on_one_version_with_its_data() {
    let site = Site::new("up-kill");
    // A first upgrade gives the migrated data to expect, and how long an
    // upgrade takes: the kills fall within it.
    let original = site.v1_with_data();
    site.catalog("v2");
    let started = Instant::now();
    site.ok(&["upgrade"]);
    let span = started.elapsed();
    let expected = migrated(&original, &site);
    let mut dice = Dice::new();
    let mut ends = BTreeMap::new();
    let mut on_v2 = true;
    for trial in 0..10 {
        if on_v2 {
            assert_eq!(
                site.v1_with_data(),
                original,
                "trial {trial}: the same data again"
            );
            site.catalog("v2");
        }
        let delay = dice.below(usize::try_from(span.as_millis()).unwrap_or(3000) + 200);
        let mut child = site.process(&["upgrade"]).spawn().expect("voisin starts");
        std::thread::sleep(Duration::from_millis(delay as u64));
        let _ = child.kill();
        let _ = child.wait();
        // Half the trials finish with `upgrade`, half with `deploy`, which
        // rolls an interrupted upgrade back.
        let next = if trial % 2 == 0 { "upgrade" } else { "deploy" };
        site.ok(&[next]);
        let version = site.running_version();
        let data = tree_digest(&site.data());
        match version.as_str() {
            "1" => assert_eq!(
                data, original,
                "trial {trial} ({delay} ms, then {next}): v1 with other data"
            ),
            "2" => assert_eq!(
                data, expected,
                "trial {trial} ({delay} ms, then {next}): v2 with other data"
            ),
            v => panic!("trial {trial}: version {v}"),
        }
        if next == "upgrade" {
            assert_eq!(
                version, "2",
                "trial {trial}: `upgrade` finishes the upgrade"
            );
        }
        assert_eq!(site.leftovers(), "", "trial {trial}");
        *ends.entry(format!("{next} → v{version}")).or_insert(0) += 1;
        on_v2 = version == "2";
    }
    eprintln!("trials ended: {ends:?}");
}
