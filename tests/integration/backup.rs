//! Backups and restores against the machine's engine: the lending board
//! (its `SQLite` dump through the real board image) beside a cloud with a
//! real `PostgreSQL` (built from Debian's packages) and a files volume.
//! Each test has its own association, repository and ports.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::bundle::docker;
use super::deploy::{cookie, curl};
use super::images::{Sftpd, busybox_image, postgres_image};
use super::support::{Run, Voisin, bundle_args, root};

const PASSWORD: &str = "a long and private repository password";

/// An association with the board and the `PostgreSQL` cloud behind the
/// loopback proxy, a repository in its folder; taken down when dropped.
struct Site {
    dir: tempfile::TempDir,
    slug: String,
    port: u16,
    env: Vec<(&'static str, std::ffi::OsString)>,
}

impl Site {
    fn new(slug: &str, port: u16) -> Self {
        Self::with_repository(slug, port, "repo", Vec::new())
    }

    fn with_repository(
        slug: &str,
        port: u16,
        repository: &str,
        env: Vec<(&'static str, std::ffi::OsString)>,
    ) -> Self {
        busybox_image();
        postgres_image();
        let dir = tempfile::tempdir().expect("temp dir");
        let catalog = dir.path().join("catalog");
        for (from, to) in [
            ("catalog/voisin-board.yaml", "catalog/voisin-board.yaml"),
            ("catalog/local.yaml", "catalog/local.yaml"),
            (
                "templates/voisin-board/members.json",
                "templates/voisin-board/members.json",
            ),
            (
                "tests/catalogs/backup/catalog/pg-cloud.yaml",
                "catalog/pg-cloud.yaml",
            ),
            (
                "tests/catalogs/backup/templates/pg-cloud/index.html",
                "templates/pg-cloud/index.html",
            ),
        ] {
            let to = catalog.join(to);
            std::fs::create_dir_all(to.parent().expect("a folder")).expect("catalog folders");
            std::fs::copy(root().join(from), &to).unwrap_or_else(|e| panic!("{from}: {e}"));
        }
        let domain = format!("{slug}.localhost");
        // `check` wants an absolute path: one that does not depend on where
        // voisin runs.
        let repository = if repository == "repo" {
            dir.path().join("repo").display().to_string()
        } else {
            repository.to_string()
        };
        let manifest = format!(
            "association:\n  name: Test {slug}\n  domain: {domain}\n  contact: admin@{domain}\n\
             members:\n  - id: alice\n    name: Alice\n    contact: alice@example.net\n    roles: [admin]\n  - id: bob\n    name: Bob\n    contact: bob@example.net\n\
             services:\n  board:\n    use: voisin-board\n    host: pret.{domain}\n  cloud:\n    use: pg-cloud\n    host: cloud.{domain}\n\
             proxy:\n  use: local\n  settings:\n    port: {port}\n\
             backup:\n  repository: {repository}\n  password_file: backup-password\n  keep: {{ last: 50 }}\n"
        );
        std::fs::write(dir.path().join("voisin.yaml"), manifest).expect("writes the manifest");
        let pw = dir.path().join("backup-password");
        std::fs::write(&pw, format!("{PASSWORD}\n")).expect("writes the password");
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let site = Self {
            dir,
            slug: slug.to_string(),
            port,
            env,
        };
        let _ = site.voisin(&["down", "--volumes", "--yes"]);
        site
    }

    fn args(&self, args: &[&str]) -> Vec<String> {
        bundle_args(self.dir.path(), args)
    }

    fn voisin(&self, args: &[&str]) -> Run {
        let mut v = Voisin::new(self.args(args));
        for (k, val) in &self.env {
            v = v.env(k, val);
        }
        v.run()
    }

    /// Runs voisin and insists that it succeeds.
    fn ok(&self, args: &[&str]) -> Run {
        let run = self.voisin(args);
        assert_eq!(
            run.code, 0,
            "voisin {args:?} failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        run
    }

    /// A `voisin` process the test controls (kills).
    fn process(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("voisin"));
        cmd.args(self.args(args))
            .env("LANG", "en_US.UTF-8")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    fn container(&self, name: &str) -> String {
        format!("{}-{name}", self.slug)
    }

    /// Where a volume's files are on this machine.
    fn volume(&self, name: &str) -> PathBuf {
        PathBuf::from(docker(&[
            "volume",
            "inspect",
            "-f",
            "{{.Mountpoint}}",
            &self.container(name),
        ]))
    }

    fn psql(&self, sql: &str) -> String {
        docker(&[
            "exec",
            "-u",
            "postgres",
            &self.container("cloud-db"),
            "psql",
            "-U",
            "cloud",
            "-d",
            "cloud",
            "-tAq",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn restic(&self, args: &[&str]) -> std::process::Output {
        Command::new("restic")
            .arg("-r")
            .arg(self.repo())
            // restic caches whole tree packs: a copy read while a test had
            // damaged one would stay damaged after the test put it back.
            .arg("--no-cache")
            .args(args)
            .env("RESTIC_PASSWORD", PASSWORD)
            .output()
            .expect("restic runs (scripts/test installs it)")
    }

    /// The association's snapshots as `voisin backup list` gives them.
    fn snapshots(&self) -> Vec<serde_json::Value> {
        self.ok(&["backup", "list", "--format", "json"]).json()["snapshots"]
            .as_array()
            .expect("snapshots")
            .clone()
    }

    /// Signs alice in on the board with a fresh cookie jar, which it gives.
    fn sign_in(&self) -> PathBuf {
        let jar = self
            .dir
            .path()
            .join(format!("cookies-{}", std::process::id()));
        let _ = std::fs::remove_file(&jar);
        let url = format!("http://127.0.0.1:{}", self.port);
        let password = self.ok(&["members", "credentials", "alice"]);
        let password = password
            .stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("initial password:"))
            .expect("a password line")
            .trim()
            .to_string();
        let (code, _) = curl(&jar, &[&format!("{url}/signin")]);
        assert_eq!(code, 200);
        let csrf = cookie(&jar, "voisin_csrf");
        let (code, _) = curl(
            &jar,
            &[
                "--data-urlencode",
                "login=alice",
                "--data-urlencode",
                &format!("password={password}"),
                "--data-urlencode",
                &format!("csrf={csrf}"),
                &format!("{url}/signin"),
            ],
        );
        assert_eq!(code, 303, "alice signs in");
        jar
    }

    /// Offers `title` on the board, as alice.
    fn offer(&self, title: &str) {
        let jar = self.sign_in();
        let csrf = cookie(&jar, "voisin_csrf");
        let (code, _) = curl(
            &jar,
            &[
                "-F",
                &format!("csrf={csrf}"),
                "-F",
                "kind=item",
                "-F",
                "category=tools",
                "-F",
                &format!("title={title}"),
                "-F",
                "description=Ask me",
                &format!("http://127.0.0.1:{}/offers", self.port),
            ],
        );
        assert_eq!(code, 303, "the offer is created");
    }

    /// The board's offers, as alice sees them once signed in.
    fn offers_page(&self) -> String {
        let jar = self.sign_in();
        let (code, page) = curl(&jar, &[&format!("http://127.0.0.1:{}/offers", self.port)]);
        assert_eq!(code, 200);
        page
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self.voisin(&["down", "--volumes", "--yes"]);
    }
}

fn random_file(path: &Path, size: u64) {
    let mut urandom = std::fs::File::open("/dev/urandom").expect("urandom");
    let mut out = std::fs::File::create(path).expect("creates the file");
    std::io::copy(&mut (&mut urandom).take(size), &mut out).expect("writes");
}

/// The fixture the issue names: owners 33, 70 and 999; modes 0600 and
/// 4755; symbolic links; hard links; UTF-8 names; an empty folder; an
/// extended attribute; and one large file of `big` bytes.
fn fill(dir: &Path, big: u64) {
    use std::os::unix::fs::{chown, symlink};
    let mail = dir.join("mail/alice/cur");
    std::fs::create_dir_all(&mail).expect("folders");
    for i in 0..50 {
        std::fs::write(
            mail.join(format!("{i}.eml")),
            format!("Subject: {i}\n\nbody {i}\n").repeat(40),
        )
        .expect("a mail");
    }
    chown(dir.join("mail"), Some(33), Some(33)).expect("chown");
    let secret = dir.join("secret.conf");
    std::fs::write(&secret, "password = hunter2\n").expect("writes");
    chown(&secret, Some(33), Some(33)).expect("chown");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let db = dir.join("db");
    std::fs::create_dir(&db).expect("a folder");
    std::fs::write(db.join("pg_hba.conf"), "local all all trust\n").expect("writes");
    chown(&db, Some(999), Some(999)).expect("chown");
    chown(db.join("pg_hba.conf"), Some(999), Some(999)).expect("chown");
    let redis = dir.join("redis.rdb");
    std::fs::write(&redis, b"REDIS0009").expect("writes");
    chown(&redis, Some(70), Some(70)).expect("chown");
    let tool = dir.join("bin-tool");
    std::fs::write(&tool, b"#!/bin/sh\necho hi\n").expect("writes");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    symlink("secret.conf", dir.join("link-to-secret")).expect("a symlink");
    symlink("/nowhere/at/all", dir.join("dangling")).expect("a symlink");
    std::fs::write(dir.join("original"), b"shared by two names\n").expect("writes");
    std::fs::hard_link(dir.join("original"), dir.join("second-name")).expect("a hard link");
    let utf8 = dir.join("café/Ünïcødé 📚 prêt.txt");
    std::fs::create_dir_all(utf8.parent().expect("parent")).expect("folders");
    std::fs::write(&utf8, "des livres à prêter\n").expect("writes");
    std::fs::create_dir(dir.join("empty")).expect("an empty folder");
    // Longer than a tar header's 100 bytes, with an attribute: both travel
    // in one PAX record.
    let long = dir.join(
        "a-rather-long-folder-name-for-archive-headers/and-another-long-folder-name-inside/a-file-with-a-long-name.txt",
    );
    std::fs::create_dir_all(long.parent().expect("parent")).expect("folders");
    std::fs::write(&long, "far down\n").expect("writes");
    xattr::set(&long, "user.voisin.depth", b"deep").expect("an extended attribute");
    xattr::set(dir.join("original"), "user.voisin.note", b"kept").expect("an extended attribute");
    random_file(&dir.join("big.bin"), big);
}

/// Everything that must survive a restore, entry by entry: kind, mode,
/// owner, content hash or link target, extended attributes, and which
/// names share an inode.
pub(super) fn tree_digest(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    walk(dir, dir, &mut out, &mut inodes);
    out
}

fn walk(
    base: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, String>,
    inodes: &mut BTreeMap<u64, String>,
) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("reads a folder")
        .map(|e| e.expect("an entry").path())
        .collect();
    names.sort();
    for path in names {
        let rel = path
            .strip_prefix(base)
            .expect("inside")
            .display()
            .to_string();
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        let what = if meta.file_type().is_symlink() {
            format!(
                "-> {}",
                std::fs::read_link(&path).expect("a target").display()
            )
        } else if meta.is_dir() {
            "dir".to_string()
        } else {
            let mut hasher = Sha256::new();
            hasher.update(std::fs::read(&path).expect("reads"));
            let hash = hasher.finalize().iter().fold(String::new(), |mut h, b| {
                use std::fmt::Write as _;
                let _ = write!(h, "{b:02x}");
                h
            });
            let link = if meta.nlink() > 1 {
                let first = inodes.entry(meta.ino()).or_insert_with(|| rel.clone());
                format!(" same-inode-as {first}")
            } else {
                String::new()
            };
            format!("{hash}{link}")
        };
        let xattrs: Vec<String> = xattr::list(&path)
            .map(|names| {
                names
                    .map(|n| {
                        let v = xattr::get(&path, &n).ok().flatten().unwrap_or_default();
                        format!("{}={}", n.to_string_lossy(), String::from_utf8_lossy(&v))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            rel,
            format!(
                "{:o} {}:{} {what} {}",
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid(),
                xattrs.join(",")
            ),
        );
        if meta.is_dir() {
            walk(base, &path, out, inodes);
        }
    }
}

fn wipe(dir: &Path) {
    for e in std::fs::read_dir(dir).expect("reads") {
        let p = e.expect("entry").path();
        if std::fs::symlink_metadata(&p).expect("meta").is_dir() {
            std::fs::remove_dir_all(&p).expect("removes");
        } else {
            std::fs::remove_file(&p).expect("removes");
        }
    }
}

const ROWS: &str = "CREATE TABLE loans (id int PRIMARY KEY, what text); \
                    INSERT INTO loans SELECT g, 'item ' || g FROM generate_series(1, 1000) g;";

#[test]
fn a_round_trip_brings_back_every_file_owner_mode_link_and_row() {
    let site = Site::new("bk-round", 18310);
    site.ok(&["deploy"]);
    let files = site.volume("cloud-files");
    fill(&files, 200 << 20);
    site.psql(ROWS);
    let before = tree_digest(&files);

    let backup = site.ok(&["backup"]);
    assert!(
        backup.stdout.contains("cloud: snapshot"),
        "{}",
        backup.stdout
    );
    assert!(
        backup.stdout.contains("board: snapshot"),
        "{}",
        backup.stdout
    );
    assert!(
        !files.join(".maintenance").exists(),
        "maintenance mode is off again"
    );

    // Everything lost: the files and the table.
    wipe(&files);
    site.psql("DROP TABLE loans;");
    let restored = site.ok(&["restore", "--yes"]);
    assert!(
        restored.stdout.contains("cloud: restored from snapshot"),
        "{}",
        restored.stdout
    );

    let after = tree_digest(&files);
    for (path, was) in &before {
        assert_eq!(after.get(path), Some(was), "{path} after the restore");
    }
    assert_eq!(after.len(), before.len(), "nothing more, nothing less");
    assert_eq!(
        site.psql("SELECT count(*), sum(id) FROM loans"),
        "1000|500500"
    );

    // restic itself reads what voisin wrote.
    let check = site.restic(&["check", "--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let target = site.dir.path().join("restic-restore");
    let latest_cloud = site
        .snapshots()
        .iter()
        .rev()
        .find(|s| s["service"] == "cloud" && s["reason"] == "backup")
        .map(|s| s["id"].as_str().expect("an id").to_string())
        .expect("a snapshot of the cloud");
    let out = site.restic(&[
        "restore",
        &latest_cloud,
        "--target",
        target.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by_restic = tree_digest(&target.join("volumes/files"));
    for (path, was) in &before {
        assert_eq!(
            by_restic.get(path),
            Some(was),
            "{path} as restic restores it"
        );
    }

    // And voisin proves it by restoring into throwaway volumes.
    let verify = site.ok(&["backup", "verify"]);
    assert!(
        verify.stdout.contains("cloud: snapshot"),
        "{}",
        verify.stdout
    );
    assert!(
        verify.stdout.contains("restored identically"),
        "{}",
        verify.stdout
    );
    let list = site.ok(&["backup", "list"]);
    assert!(list.stdout.contains("verified"), "{}", list.stdout);
    let status = site.ok(&["status"]);
    assert!(
        status.stdout.contains("backup of cloud: last snapshot")
            && !status.stdout.contains("last verified restore never"),
        "{}",
        status.stdout
    );
}

/// A small xorshift: trials at random moments, repeatable from the seed
/// the test prints.
pub(super) struct Dice(u64);

impl Dice {
    pub(super) fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() ^ u64::from(d.subsec_nanos()) << 20)
            | 1;
        eprintln!("seed {seed}");
        Self(seed)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n as u64).unwrap_or(0)
    }
}

fn restic_snapshots(site: &Site) -> Vec<serde_json::Value> {
    let out = site.restic(&["snapshots", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("restic's JSON")
}

#[test]
fn killing_backup_at_random_moments_leaves_no_partial_snapshot_and_the_next_command_settles() {
    let site = Site::new("bk-kill", 18320);
    site.ok(&["deploy"]);
    let files = site.volume("cloud-files");
    fill(&files, 20 << 20);
    site.psql(ROWS);
    site.ok(&["backup"]);
    let mut dice = Dice::new();
    // Each trial adds data, so that every backup has something to write;
    // every snapshot taken in a trial must hold that trial's files.
    let mut epochs: Vec<(i64, BTreeMap<String, String>)> = Vec::new();
    for trial in 0..20 {
        random_file(&files.join(format!("trial-{trial}.bin")), 3 << 20);
        let since = chrono::Utc::now().timestamp_millis();
        epochs.push((since, tree_digest(&files)));
        let mut child = site.process(&["backup"]).spawn().expect("voisin starts");
        std::thread::sleep(Duration::from_millis(dice.below(3000) as u64));
        let _ = child.kill();
        let _ = child.wait();

        // The next command (a deploy with nothing to change) settles what
        // the killed one left: maintenance mode off, the helper gone.
        site.ok(&["deploy"]);
        assert!(
            !files.join(".maintenance").exists(),
            "trial {trial}: maintenance mode is still on"
        );
        let helpers = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("name={}-voisin-backup", site.slug),
        ]);
        assert_eq!(helpers, "", "trial {trial}: a helper is left");
        for s in site.snapshots() {
            assert_ne!(s["reason"], "incomplete", "trial {trial}");
        }
        // And a backup after it works.
        site.ok(&["backup", "cloud"]);
    }
    // No snapshot restic sees is a half-written one; the repository checks.
    for s in restic_snapshots(&site) {
        let tags: Vec<&str> = s["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .filter_map(|t| t.as_str())
            .collect();
        assert!(!tags.contains(&"voisin-incomplete"), "{s}");
    }
    let check = site.restic(&["check", "--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Every cloud snapshot restores identically to the files of its trial.
    let target = site.dir.path().join("restores");
    for s in site.snapshots().iter().filter(|s| s["service"] == "cloud") {
        let taken = chrono::DateTime::parse_from_rfc3339(s["time"].as_str().expect("a time"))
            .expect("RFC 3339")
            .timestamp_millis();
        let Some((_, expected)) = epochs.iter().rev().find(|(since, _)| *since <= taken) else {
            continue; // the first snapshot, before the trials
        };
        let id = s["id"].as_str().expect("an id");
        let dest = target.join(id);
        let out = site.restic(&[
            "restore",
            id,
            "--target",
            dest.to_str().expect("utf-8"),
            "--include",
            "/volumes",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut got = tree_digest(&dest.join("volumes/files"));
        got.remove(".maintenance");
        let mut expected = expected.clone();
        expected.remove(".maintenance");
        assert_eq!(&got, &expected, "snapshot {id}");
        std::fs::remove_dir_all(&dest).expect("cleans up");
    }
}

/// Every pack file of the repository with where its blobs end (the
/// header follows them).
fn packs(repo: &Path) -> Vec<(PathBuf, usize)> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(repo.join("data")).expect("data folder") {
        for pack in std::fs::read_dir(sub.expect("entry").path()).expect("a folder") {
            let path = pack.expect("entry").path();
            let bytes = std::fs::read(&path).expect("reads a pack");
            let n = bytes.len();
            let header = u32::from_le_bytes(bytes[n - 4..].try_into().expect("4 bytes")) as usize;
            out.push((path, n - 4 - header));
        }
    }
    out.sort();
    out
}

#[test]
fn a_damaged_pack_is_named_by_verify_and_undamaged_snapshots_still_restore() {
    let site = Site::new("bk-damage", 18330);
    site.ok(&["deploy"]);
    let files = site.volume("cloud-files");
    fill(&files, 2 << 20);
    site.psql(ROWS);
    site.ok(&["backup"]);
    let first = tree_digest(&files);
    random_file(&files.join("later.bin"), 2 << 20);
    site.ok(&["backup", "cloud"]);
    let second = tree_digest(&files);
    let expected: BTreeMap<String, BTreeMap<String, String>> = site
        .snapshots()
        .iter()
        .filter(|s| s["service"] == "cloud")
        .zip([first, second])
        .map(|(s, d)| (s["id"].as_str().expect("id").to_string(), d))
        .collect();
    assert_eq!(expected.len(), 2);

    let mut dice = Dice::new();
    for trial in 0..30 {
        let all = packs(&site.repo());
        let (pack, blobs_end) = &all[dice.below(all.len())];
        let original = std::fs::read(pack).expect("reads the pack");
        let damage = ["flip", "truncate", "delete"][trial % 3];
        match damage {
            "flip" => {
                let mut bytes = original.clone();
                let at = dice.below(*blobs_end);
                bytes[at] ^= 0x5a;
                write_pack(pack, &bytes);
            }
            "truncate" => write_pack(pack, &original[..dice.below(*blobs_end)]),
            _ => std::fs::remove_file(pack).expect("deletes the pack"),
        }
        let verify = site.voisin(&["backup", "verify", "--format", "json"]);
        assert_ne!(
            verify.code, 0,
            "trial {trial} ({damage}): verify passed:\n{}",
            verify.stdout
        );
        assert!(
            verify.stdout.trim_start().starts_with('{'),
            "trial {trial} ({damage}): verify gave no report:\n{}",
            verify.stderr
        );
        let report = verify.json();
        let damaged: Vec<String> = report["damaged_snapshots"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|d| d["snapshot"].as_str().expect("an id").to_string())
            .collect();
        assert!(
            !damaged.is_empty()
                || !report["repository_errors"]
                    .as_array()
                    .expect("a list")
                    .is_empty(),
            "trial {trial} ({damage}): nothing named:\n{report:#}"
        );
        // What verify did not name still restores, identically.
        for (id, digest) in &expected {
            if damaged.contains(id) {
                continue;
            }
            let dest = site.dir.path().join(format!("undamaged-{trial}"));
            let out = site.restic(&[
                "restore",
                id,
                "--target",
                dest.to_str().expect("utf-8"),
                "--include",
                "/volumes",
            ]);
            assert!(
                out.status.success(),
                "trial {trial} ({damage}): {id} was not named but does not restore: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let mut got = tree_digest(&dest.join("volumes/files"));
            got.remove(".maintenance");
            let mut want = digest.clone();
            want.remove(".maintenance");
            assert_eq!(got, want, "trial {trial} ({damage}): {id}");
            std::fs::remove_dir_all(&dest).expect("cleans up");
        }
        write_pack(pack, &original);
    }
    site.ok(&["backup", "verify"]);
}

fn write_pack(path: &Path, bytes: &[u8]) {
    // restic makes packs read-only.
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    std::fs::write(path, bytes).expect("writes the pack");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
}

fn set_dump(site: &Site, command: &str) {
    let entry = site.dir.path().join("catalog/catalog/pg-cloud.yaml");
    let text = std::fs::read_to_string(&entry).expect("the entry");
    let start = text
        .find("      command: [pg_dump")
        .expect("the dump command");
    let end = start + text[start..].find('\n').expect("a line");
    let edited = format!("{}      command: {command}{}", &text[..start], &text[end..]);
    std::fs::write(&entry, edited).expect("writes the entry");
}

#[test]
fn a_dump_that_fails_or_is_killed_fails_the_backup_and_prune_then_removes_nothing() {
    let site = Site::new("bk-dump", 18340);
    site.ok(&["deploy"]);
    site.psql(ROWS);
    site.ok(&["backup"]);
    let before = site.snapshots();
    for (how, command) in [
        (
            "exits non-zero",
            "[pg_dump, -Fc, -U, cloud, no_such_database]",
        ),
        (
            "is killed",
            r#"[sh, -c, "pg_dump -Fc -U cloud cloud; kill -KILL $$"]"#,
        ),
    ] {
        set_dump(&site, command);
        let run = site.voisin(&["backup", "cloud"]);
        assert_eq!(
            run.code, 1,
            "a dump that {how}: {}\n{}",
            run.stdout, run.stderr
        );
        assert!(
            run.stderr.contains("cloud.pgdump"),
            "names the dump: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("no snapshot was kept"),
            "{}",
            run.stderr
        );
        assert_eq!(
            site.snapshots(),
            before,
            "a dump that {how} adds no snapshot"
        );
        assert!(
            !site.volume("cloud-files").join(".maintenance").exists(),
            "maintenance mode is off after a dump that {how}"
        );
        let prune = site.ok(&["backup", "prune"]);
        assert!(
            prune.stdout.contains("nothing to remove"),
            "{}",
            prune.stdout
        );
        assert_eq!(site.snapshots(), before, "prune after a dump that {how}");
    }
    let restic = restic_snapshots(&site);
    assert_eq!(
        restic.len(),
        before.len(),
        "restic sees no failed snapshot either"
    );
}

#[test]
fn after_losing_every_volume_a_deploy_and_a_restore_bring_the_offers_and_rows_back() {
    let site = Site::new("bk-disaster", 18350);
    site.ok(&["deploy"]);
    site.offer("A ladder that survived");
    site.psql(ROWS);
    site.ok(&["backup"]);

    site.ok(&["down", "--volumes", "--yes"]);
    site.ok(&["deploy"]);
    assert!(
        !site.offers_page().contains("A ladder that survived"),
        "the data is gone"
    );
    site.ok(&["restore", "--yes"]);
    assert!(site.offers_page().contains("A ladder that survived"));
    assert_eq!(site.psql("SELECT count(*) FROM loans"), "1000");
}

#[test]
fn restore_refuses_without_a_typed_confirmation_and_backup_before_a_deploy() {
    let site = Site::new("bk-confirm", 18360);
    let run = site.voisin(&["restore"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    let run = site.voisin(&["backup", "cloud"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("is not deployed here"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("voisin deploy"), "{}", run.stderr);
    assert_eq!(
        docker(&["volume", "ls", "-q", "--filter", "name=bk-confirm"]),
        "",
        "no volume was made by the refused backup"
    );
}

#[test]
fn a_repository_over_sftp_is_written_by_voisin_and_read_by_restic() {
    let sftpd = Sftpd::start();
    let folder = sftpd.folder("repo");
    let site = Site::with_repository(
        "bk-sftp",
        18370,
        &format!("sftp:{}:{}", Sftpd::HOST, folder.display()),
        sftpd.env(),
    );
    site.ok(&["deploy"]);
    site.psql(ROWS);
    site.ok(&["backup"]);
    site.psql("DELETE FROM loans;");
    site.ok(&["restore", "--yes", "cloud"]);
    assert_eq!(site.psql("SELECT count(*) FROM loans"), "1000");
    let out = Command::new("restic")
        .args(sftpd.restic_args(&folder))
        .args(["check"])
        .env("RESTIC_PASSWORD", PASSWORD)
        .output()
        .expect("restic runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
