//! `voisin render` and the secrets behind it: exact, repeatable output,
//! hardened containers, secrets that never leak, and credentials that work.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::support::{Voisin, root};

/// A copy of an example in a temporary folder, so `.voisin/` lands there.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn of(example: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::copy(root().join(example), dir.path().join("voisin.yaml")).expect("copy the example");
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn voisin<I, S>(&self, args: I) -> Voisin
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Voisin::new(args).in_dir(self.path())
    }

    pub fn rendered(&self) -> PathBuf {
        self.path().join(".voisin/rendered")
    }

    /// Every secret voisin keeps for this manifest, by name.
    pub fn secrets(&self) -> BTreeMap<String, String> {
        #[derive(serde::Deserialize)]
        struct File {
            values: BTreeMap<String, String>,
        }
        let text =
            fs::read_to_string(self.path().join(".voisin/secrets.yaml")).expect("secrets file");
        serde_saphyr::from_str::<File>(&text)
            .expect("secrets parse")
            .values
    }
}

/// Every file under `dir`, relative path → bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).expect("readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path
                    .strip_prefix(base)
                    .expect("inside")
                    .display()
                    .to_string();
                out.insert(rel, fs::read(&path).expect("file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The rendered tree as one text, each secret replaced by its name.
fn snapshot_text(ws: &Workspace) -> String {
    let mut secrets: Vec<(String, String)> = ws.secrets().into_iter().collect();
    // Longest first, so that no secret is cut by a shorter one inside it.
    secrets.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    let mut text = String::new();
    for (path, bytes) in tree(&ws.rendered()) {
        let mode = fs::metadata(ws.rendered().join(&path))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        let _ = writeln!(text, "=== {path} ({mode:o})");
        text.push_str(&String::from_utf8(bytes).expect("UTF-8"));
        text.push('\n');
    }
    for (name, value) in &secrets {
        text = text.replace(value.trim_end(), &format!("[secret {name}]"));
    }
    text
}

fn assert_render_snapshot(example: &str, name: &str) {
    let ws = Workspace::of(example);
    let run = ws.voisin(["render", "--compose"]).run();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(
        r#""secret_sha256": "[0-9a-f]{64}""#,
        r#""secret_sha256": "[sha256]""#,
    );
    settings.add_filter(r"voisin\.spec(\W+)[0-9a-f]{64}", "voisin.spec$1[spec hash]");
    settings.bind(|| insta::assert_snapshot!(name, snapshot_text(&ws)));
}

#[test]
fn renders_the_full_association_exactly() {
    assert_render_snapshot("examples/full-association.yaml", "render_full_association");
}

#[test]
fn renders_the_board_only_example_exactly() {
    assert_render_snapshot("examples/board-only.yaml", "render_board_only");
}

#[test]
fn renders_the_mail_only_example_exactly() {
    assert_render_snapshot("examples/mail-only.yaml", "render_mail_only");
}

#[test]
fn two_renders_are_byte_identical() {
    let ws = Workspace::of("examples/full-association.yaml");
    assert_eq!(
        ws.voisin(["render", "--compose", "--out", "a"]).run().code,
        0
    );
    assert_eq!(
        ws.voisin(["render", "--compose", "--out", "b"]).run().code,
        0
    );
    let a = tree(&ws.path().join("a"));
    assert!(a.len() > 10, "{} files", a.len());
    assert_eq!(a, tree(&ws.path().join("b")));
    // Rendering again over a previous render replaces it with the same bytes.
    assert_eq!(
        ws.voisin(["render", "--compose", "--out", "a"]).run().code,
        0
    );
    assert_eq!(a, tree(&ws.path().join("a")));
}

#[test]
fn secrets_are_private_files_that_stay_stable() {
    let ws = Workspace::of("examples/full-association.yaml");
    assert_eq!(ws.voisin(["render"]).run().code, 0);
    let mode = |p: &Path| fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&ws.path().join(".voisin")), 0o700);
    assert_eq!(mode(&ws.path().join(".voisin/secrets.yaml")), 0o600);
    let accounts = ws
        .rendered()
        .join("files/amis-quartier-mail-mail/tmp/docker-mailserver/postfix-accounts.cf");
    assert_eq!(mode(&accounts), 0o600, "files holding secrets are 0600");
    let virtual_ = ws
        .rendered()
        .join("files/amis-quartier-mail-mail/tmp/docker-mailserver/postfix-virtual.cf");
    assert_eq!(mode(&virtual_), 0o644);

    let first = ws.secrets();
    assert!(first.len() >= 15, "{first:?}");
    for (name, value) in &first {
        if name.ends_with(".password") || name.ends_with("_password") {
            assert_eq!(value.len(), 43, "{name} carries 256 bits");
        }
    }
    assert_eq!(ws.voisin(["render"]).run().code, 0);
    assert_eq!(ws.secrets(), first, "secrets are generated once");
}

#[test]
fn mail_accounts_verify_with_the_members_passwords() {
    use sha_crypt::PasswordVerifier as _;
    let ws = Workspace::of("examples/full-association.yaml");
    assert_eq!(ws.voisin(["render"]).run().code, 0);
    let secrets = ws.secrets();
    let accounts = fs::read_to_string(
        ws.rendered()
            .join("files/amis-quartier-mail-mail/tmp/docker-mailserver/postfix-accounts.cf"),
    )
    .expect("accounts");
    let mut verified = Vec::new();
    for line in accounts.lines() {
        let (address, hash) = line
            .split_once("|{SHA512-CRYPT}")
            .expect("ADDRESS|{SHA512-CRYPT}HASH");
        let local = address.split('@').next().expect("local part");
        let password = secrets
            .get(&format!("member.{local}.password"))
            .or_else(|| secrets.get(&format!("{local}.smtp_password")))
            .unwrap_or_else(|| panic!("a password for {address}"));
        sha_crypt::ShaCrypt::SHA512
            .verify_password(password.as_bytes(), hash)
            .unwrap_or_else(|e| panic!("{address}: {e}"));
        assert!(
            sha_crypt::ShaCrypt::SHA512
                .verify_password(b"not the password", hash)
                .is_err()
        );
        verified.push(address.to_string());
    }
    assert_eq!(
        verified,
        [
            "alice@amis-quartier.org",
            "chloe@amis-quartier.org",
            "david@amis-quartier.org",
            "board@amis-quartier.org",
            "cloud@amis-quartier.org"
        ],
        "every mailbox and every service that sends mail has an account; bob has no mailbox"
    );
}

#[test]
fn board_members_file_verifies_with_argon2() {
    use argon2::PasswordVerifier as _;
    let ws = Workspace::of("examples/full-association.yaml");
    assert_eq!(ws.voisin(["render"]).run().code, 0);
    let secrets = ws.secrets();
    let text = fs::read_to_string(
        ws.rendered()
            .join("files/amis-quartier-board-board/etc/voisin-board/members.json"),
    )
    .expect("members file");
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let members = json["members"].as_array().expect("a list");
    assert_eq!(members.len(), 4);
    assert_eq!(
        members[1]["email"], "bob@example.net",
        "members without a mailbox use their contact"
    );
    assert_eq!(members[0]["admin"], true);
    for member in members {
        let id = member["id"].as_str().expect("id");
        let hash = argon2::PasswordHash::new(member["password_hash"].as_str().expect("hash"))
            .expect("PHC string");
        let password = &secrets[&format!("member.{id}.password")];
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .expect("verifies");
    }
}

#[test]
fn every_container_is_hardened() {
    let ws = Workspace::of("examples/full-association.yaml");
    assert_eq!(ws.voisin(["render"]).run().code, 0);
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(ws.rendered().join("desired-state.json")).expect("state"))
            .expect("JSON");
    let containers = state["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 7);
    for c in containers {
        let name = c["name"].as_str().expect("name");
        // The mail server alone may gain privileges: Postfix's `postdrop`
        // is set-gid (catalog/docker-mailserver.yaml says where upstream
        // says so).
        let expected = if c["container"] == "mail" {
            serde_json::json!([])
        } else {
            serde_json::json!(["no-new-privileges:true"])
        };
        assert_eq!(c["security_opt"], expected, "{name}");
        assert_eq!(c["cap_drop"], serde_json::json!(["ALL"]), "{name}");
        assert!(c["memory_bytes"].as_u64().is_some_and(|m| m > 0), "{name}");
        assert!(c["pids_limit"].as_u64().is_some_and(|p| p > 0), "{name}");
        assert_eq!(c["restart"], "unless-stopped", "{name}");
        assert_eq!(c["log_max_size"], "10m", "{name}");
        for attachment in c["networks"].as_array().expect("networks") {
            let network = attachment["network"].as_str().expect("network");
            assert!(
                network.starts_with("amis-quartier-"),
                "{name} joins {network}: never the host network"
            );
        }
        let text = c.to_string();
        assert!(
            !text.contains("docker.sock"),
            "{name} must not reach the Docker socket"
        );
        assert!(
            c["labels"]["voisin.spec"]
                .as_str()
                .is_some_and(|h| h.len() == 64),
            "{name}"
        );
    }
    let read_only: Vec<&str> = containers
        .iter()
        .filter(|c| c["read_only"] == true)
        .map(|c| c["container"].as_str().expect("name"))
        .collect();
    assert_eq!(
        read_only,
        ["board", "redis", "traefik"],
        "read-only where the image allows"
    );
}

#[test]
fn the_exported_compose_file_passes_docker_compose() {
    let ws = Workspace::of("examples/full-association.yaml");
    assert_eq!(ws.voisin(["render", "--compose"]).run().code, 0);
    let out = std::process::Command::new("docker-compose")
        .args(["-f", "compose.yaml", "config", "-q"])
        .current_dir(ws.rendered())
        .output()
        .expect("docker-compose is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn refuses_to_write_over_a_folder_it_did_not_write() {
    let ws = Workspace::of("examples/board-only.yaml");
    fs::create_dir(ws.path().join("precious")).expect("dir");
    fs::write(ws.path().join("precious/notes.txt"), "keep me").expect("file");
    let run = ws.voisin(["render", "--out", "precious"]).run();
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("is not empty and was not written by `voisin render`"),
        "{}",
        run.stderr
    );
    assert_eq!(
        fs::read_to_string(ws.path().join("precious/notes.txt")).expect("kept"),
        "keep me"
    );
}

#[test]
fn an_invalid_manifest_renders_nothing() {
    let ws = Workspace::of("tests/manifests/invalid/misspelt-entry.yaml");
    let run = ws.voisin(["render"]).run();
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("error[unknown-entry]"),
        "{}",
        run.stderr
    );
    assert!(
        !ws.path().join(".voisin").exists(),
        "no secret is generated for an invalid manifest"
    );
}

#[test]
fn a_template_error_names_the_template_line_and_variable() {
    let ws = Workspace::of("examples/board-only.yaml");
    let catalog = root().join("tests/catalogs/template-error");
    let run = ws.voisin(["--catalog"]).arg(&catalog).arg("render").run();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("templates/voisin-board/board.conf"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("3:"), "{}", run.stderr);
    assert!(run.stderr.contains("service.hots"), "{}", run.stderr);
}

#[test]
fn the_encrypted_copy_renders_the_same_bundle() {
    let ws = Workspace::of("examples/full-association.yaml");
    let identity = age::x25519::Identity::generate();
    let key_file = ws.path().join("key.txt");
    fs::write(
        &key_file,
        format!(
            "{}\n",
            age::secrecy::ExposeSecret::expose_secret(&identity.to_string())
        ),
    )
    .expect("key");
    let encrypt = ws
        .voisin(["secrets", "encrypt", "--recipient"])
        .arg(identity.to_public().to_string())
        .run();
    assert_eq!(encrypt.code, 0, "{}", encrypt.stderr);
    assert_eq!(ws.voisin(["render", "--out", "before"]).run().code, 0);

    fs::remove_file(ws.path().join(".voisin/secrets.yaml")).expect("remove the plain secrets");
    let without = ws.voisin(["render", "--out", "after"]).run();
    assert_eq!(without.code, 2);
    assert!(without.stderr.contains("--identity"), "{}", without.stderr);

    let with = ws
        .voisin(["render", "--out", "after", "--identity"])
        .arg(&key_file)
        .run();
    assert_eq!(with.code, 0, "{}", with.stderr);
    assert_eq!(
        tree(&ws.path().join("before")),
        tree(&ws.path().join("after"))
    );
}

#[test]
fn credentials_print_one_members_password_and_no_other_secret() {
    let ws = Workspace::of("examples/full-association.yaml");
    let run = ws.voisin(["members", "credentials", "chloe"]).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let secrets = ws.secrets();
    assert!(run.stdout.contains(&secrets["member.chloe.password"]));
    assert!(
        run.stdout
            .contains("mailbox:          chloe@amis-quartier.org"),
        "{}",
        run.stdout
    );
    for (name, value) in &secrets {
        if name != "member.chloe.password" {
            assert!(
                !run.stdout.contains(value.trim_end()),
                "credentials leak {name}"
            );
        }
    }
    let unknown = ws.voisin(["members", "credentials", "chloé"]).run();
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("did you mean `chloe`?"),
        "{}",
        unknown.stderr
    );
}

/// Every command, in every format and verbosity, and on failure: none may
/// print a secret (beyond the one member's own credentials), and neither may
/// the files meant to be read by people.
#[test]
fn no_command_ever_prints_a_secret() {
    let ws = Workspace::of("examples/full-association.yaml");
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    let runs: Vec<Vec<String>> = [
        vec!["-v", "render"],
        vec!["render", "--format", "json"],
        vec!["render", "--compose"],
        vec!["check"],
        vec!["check", "--format", "json"],
        vec!["-vv", "check", "voisin.yaml"],
        vec!["catalog", "list"],
        vec!["catalog", "show", "docker-mailserver", "--format", "json"],
        vec!["schema"],
        vec!["secrets", "encrypt", "--recipient", recipient.as_str()],
        vec!["secrets", "encrypt", "--recipient", "not-a-key"],
        vec!["members", "credentials", "bob", "--format", "json"],
        vec!["members", "credentials", "nobody"],
        vec!["render", "--out", "voisin.yaml"],
        vec!["dns"],
        vec!["dns", "--format", "json"],
        vec!["dns", "--check", "--resolver", "127.0.0.1:1"],
    ]
    .into_iter()
    .map(|args| args.into_iter().map(str::to_string).collect())
    .collect();
    let mut outputs = Vec::new();
    for args in &runs {
        let run = ws.voisin(args).run();
        outputs.push((args.join(" "), format!("{}{}", run.stdout, run.stderr)));
    }
    for file in ["desired-state.json", "compose.yaml"] {
        outputs.push((
            file.to_string(),
            fs::read_to_string(ws.rendered().join(file)).expect("written"),
        ));
    }
    outputs.push((
        "secrets.yaml.age".into(),
        fs::read_to_string(ws.path().join(".voisin/secrets.yaml.age")).expect("written"),
    ));
    let secrets = ws.secrets();
    assert!(secrets.len() >= 15);
    for (what, text) in &outputs {
        for (name, value) in &secrets {
            let allowed =
                what.starts_with("members credentials bob") && name == "member.bob.password";
            assert!(
                allowed || !text.contains(value.trim_end()),
                "`{what}` shows the secret {name}"
            );
        }
    }
}

#[test]
fn a_render_that_changes_nothing_writes_nothing_and_stale_files_go() {
    let ws = Workspace::of("examples/full-association.yaml");
    assert_eq!(ws.voisin(["render", "--compose"]).run().code, 0);
    let virtual_ = ws
        .rendered()
        .join("files/amis-quartier-mail-mail/tmp/docker-mailserver/postfix-virtual.cf");
    let before = fs::metadata(&virtual_)
        .expect("written")
        .modified()
        .expect("mtime");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = ws.voisin(["render", "--compose"]).run();
    assert_eq!(again.code, 0);
    assert!(
        again.stdout.starts_with("nothing changed: "),
        "{}",
        again.stdout
    );
    assert_eq!(
        fs::metadata(&virtual_)
            .expect("kept")
            .modified()
            .expect("mtime"),
        before
    );

    // Without the mail service and without --compose, what belonged to them goes.
    let manifest = fs::read_to_string(ws.path().join("voisin.yaml")).expect("manifest");
    let start = manifest.find("  mail:\n").expect("mail section");
    let end = manifest.find("  cloud:\n").expect("cloud section");
    let without_mail = format!("{}{}", &manifest[..start], &manifest[end..]);
    fs::write(ws.path().join("voisin.yaml"), without_mail).expect("edit");
    let run = ws.voisin(["render"]).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!ws.rendered().join("files/amis-quartier-mail-mail").exists());
    assert!(!ws.rendered().join("compose.yaml").exists());
    assert!(
        ws.rendered()
            .join("files/amis-quartier-board-board")
            .exists()
    );
}

#[test]
fn aliases_deliver_to_mailboxes_and_forward_to_outside_addresses() {
    let ws = Workspace::of("tests/manifests/valid/alias-forwards-outside.yaml");
    let run = ws.voisin(["render"]).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (_, bytes) = tree(&ws.rendered())
        .into_iter()
        .find(|(p, _)| p.ends_with("postfix-virtual.cf"))
        .expect("postfix-virtual.cf is rendered");
    let virtual_ = String::from_utf8(bytes).expect("UTF-8");
    assert!(
        virtual_.contains(
            "bureau@locataires.example.org alice@locataires.example.org,tresorier.locataires@gmail.com"
        ),
        "{virtual_}"
    );
    assert!(
        virtual_.contains(
            "contact@locataires.example.org alice@locataires.example.org,loic.perrin@free.fr"
        ),
        "{virtual_}"
    );
}

#[test]
fn keygen_makes_a_private_identity_that_reads_back_the_encrypted_copy() {
    let ws = Workspace::of("examples/full-association.yaml");
    let key_file = ws.path().join("identity.txt");
    let keygen = ws.voisin(["secrets", "keygen"]).arg(&key_file).run();
    assert_eq!(keygen.code, 0, "{}", keygen.stderr);
    let mode = fs::metadata(&key_file)
        .expect("written")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let text = fs::read_to_string(&key_file).expect("readable");
    let secret_line = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .expect("a secret key line");
    assert!(
        !keygen.stdout.contains(secret_line) && !keygen.stderr.contains(secret_line),
        "the private key was printed"
    );
    let public = keygen
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .expect("the public key is printed")
        .to_string();
    assert!(text.contains(&format!("# public key: {public}")), "{text}");

    let encrypt = ws.voisin(["secrets", "encrypt", "-r", &public]).run();
    assert_eq!(encrypt.code, 0, "{}", encrypt.stderr);
    assert_eq!(ws.voisin(["render", "--out", "before"]).run().code, 0);
    fs::remove_file(ws.path().join(".voisin/secrets.yaml")).expect("remove the plain secrets");
    let with = ws
        .voisin(["render", "--out", "after", "--identity"])
        .arg(&key_file)
        .run();
    assert_eq!(with.code, 0, "{}", with.stderr);
    assert_eq!(
        tree(&ws.path().join("before")),
        tree(&ws.path().join("after"))
    );

    let again = ws.voisin(["secrets", "keygen"]).arg(&key_file).run();
    assert_eq!(again.code, 2, "{}", again.stdout);
    assert!(
        again
            .stderr
            .contains("hint: an identity may be the only key"),
        "{}",
        again.stderr
    );
    assert_eq!(
        fs::read_to_string(&key_file).expect("readable"),
        text,
        "overwritten"
    );
}

/// The desired state `render` writes for a workspace.
fn desired_state(ws: &Workspace) -> serde_json::Value {
    let run = ws.voisin(["render"]).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_slice(&fs::read(ws.rendered().join("desired-state.json")).expect("state"))
        .expect("JSON")
}

/// One container of a desired state, by its name in the catalog entry.
fn container<'a>(state: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    state["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["container"] == name)
        .unwrap_or_else(|| panic!("no container `{name}`"))
}

fn file<'a>(container: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    container["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("no file `{path}` in {}", container["name"]))
}

#[test]
fn mail_mounts_the_acme_store_beside_the_folder_its_start_up_writes() {
    let state = desired_state(&Workspace::of("examples/full-association.yaml"));
    let mail = container(&state, "mail");
    for mount in mail["mounts"].as_array().expect("mounts") {
        let path = mount["path"].as_str().expect("path");
        assert!(
            !(mount["read_only"] == true && path.starts_with("/etc/letsencrypt")),
            "start-up writes /etc/letsencrypt/live/HOST/: nothing read-only over it ({path})"
        );
    }
    assert!(
        mail["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .any(|m| m["volume"] == "amis-quartier-proxy-acme"
                && m["path"] == "/var/lib/voisin/acme"
                && m["read_only"] == true),
        "{}",
        mail["mounts"]
    );
}

#[test]
fn health_checks_are_those_of_the_pinned_image_tags() {
    let state = desired_state(&Workspace::of("examples/full-association.yaml"));
    let health = |name: &str| container(&state, name)["health"]["test"].clone();
    assert_eq!(
        health("mail"),
        serde_json::json!([
            "sh",
            "-c",
            "ss --listening --ipv4 --tcp | grep --silent ':smtp' || exit 1"
        ]),
        "docker-mailserver 15.1.0 has no dms-healthcheck"
    );
    assert_eq!(
        health("db"),
        serde_json::json!([
            "pg_isready",
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            "nextcloud",
            "-d",
            "nextcloud"
        ]),
        "over TCP: the init-time server listens on the socket only"
    );
    assert_eq!(health("redis"), serde_json::json!(["redis-cli", "ping"]));
    assert_eq!(
        health("traefik"),
        serde_json::json!(["traefik", "healthcheck", "--ping"])
    );
    assert_eq!(
        health("app"),
        serde_json::json!([
            "curl",
            "-fsS",
            "-o",
            "/dev/null",
            "http://localhost/status.php"
        ])
    );
    let images: Vec<&str> = state["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| c["image"].as_str().expect("image"))
        .collect();
    assert_eq!(
        images,
        [
            "voisin-board:0.1.0",
            "postgres:18.1",
            "redis:8.2.10-alpine",
            "nextcloud:34.0.3-apache",
            "nextcloud:34.0.3-apache",
            "ghcr.io/docker-mailserver/docker-mailserver:15.1.0",
            "traefik:v3.7.9",
        ]
    );
}

#[test]
fn mail_trusts_no_docker_network_and_runs_one_filter_of_each_kind() {
    let ws = Workspace::of("examples/full-association.yaml");
    let state = desired_state(&ws);
    let env = &container(&state, "mail")["env"];
    assert_eq!(env["PERMIT_DOCKER"], "none");
    assert!(
        env.get("ONE_DIR").is_none(),
        "15.1.0 no longer reads ONE_DIR"
    );
    assert_eq!(env["ENABLE_RSPAMD"], "1");
    for beside_rspamd in [
        "ENABLE_AMAVIS",
        "ENABLE_OPENDKIM",
        "ENABLE_OPENDMARC",
        "ENABLE_POLICYD_SPF",
    ] {
        assert_eq!(env[beside_rspamd], "0", "{beside_rspamd}");
    }

    // Without Rspamd, the separate milters sign and check, and Amavis
    // carries ClamAV.
    let manifest = fs::read_to_string(ws.path().join("voisin.yaml")).expect("manifest");
    fs::write(
        ws.path().join("voisin.yaml"),
        manifest.replace(
            "      max_message_size: 30 MB\n",
            "      max_message_size: 30 MB\n      spam_filter: false\n      antivirus: true\n",
        ),
    )
    .expect("edit");
    let state = desired_state(&ws);
    let env = &container(&state, "mail")["env"];
    assert_eq!(env["ENABLE_RSPAMD"], "0");
    for without_rspamd in [
        "ENABLE_AMAVIS",
        "ENABLE_CLAMAV",
        "ENABLE_OPENDKIM",
        "ENABLE_OPENDMARC",
        "ENABLE_POLICYD_SPF",
    ] {
        assert_eq!(env[without_rspamd], "1", "{without_rspamd}");
    }
    assert_eq!(env["PERMIT_DOCKER"], "none");
}

#[test]
fn clients_connect_to_the_mail_servers_public_name_which_it_answers_to() {
    let state = desired_state(&Workspace::of("examples/full-association.yaml"));
    let mail = container(&state, "mail");
    let aliases = &mail["networks"]
        .as_array()
        .expect("networks")
        .iter()
        .find(|n| n["network"] == "amis-quartier-mail")
        .expect("the mail network")["aliases"];
    assert!(
        aliases
            .as_array()
            .expect("aliases")
            .contains(&"mail.amis-quartier.org".into()),
        "{aliases}"
    );
    let board = container(&state, "board");
    assert_eq!(
        board["env"]["VOISIN_BOARD_SMTP_HOST"],
        "mail.amis-quartier.org"
    );
    assert_eq!(board["env"]["VOISIN_BOARD_SMTP_TLS"], "starttls");
    for cloud in ["app", "cron"] {
        let env = &container(&state, cloud)["env"];
        assert_eq!(env["SMTP_HOST"], "mail.amis-quartier.org", "{cloud}");
        assert_eq!(env["SMTP_PORT"], "587", "{cloud}");
    }
    for client in ["board", "app", "cron"] {
        assert!(
            container(&state, client)["networks"]
                .as_array()
                .expect("networks")
                .iter()
                .any(|n| n["network"] == "amis-quartier-mail"),
            "{client} reaches the mail network"
        );
    }
}

#[test]
fn nextclouds_php_can_read_the_smtp_password_and_only_that_secret() {
    let state = desired_state(&Workspace::of("examples/full-association.yaml"));
    for cloud in ["app", "cron"] {
        let secret = file(container(&state, cloud), "/run/secrets/smtp_password");
        assert_eq!(
            (secret["uid"].as_u64(), secret["gid"].as_u64()),
            (Some(33), Some(33))
        );
        assert_eq!(secret["mode"], "0400");
    }
    let app = container(&state, "app");
    for root_only in ["/run/secrets/db_password", "/run/secrets/admin_password"] {
        assert_eq!(
            file(app, root_only)["uid"],
            0,
            "{root_only}: read by the entrypoint as root"
        );
    }
    let board = file(container(&state, "board"), "/etc/voisin-board/members.json");
    assert_eq!(
        (board["uid"].as_u64(), board["mode"].as_str()),
        (Some(1000), Some("0400"))
    );
}

#[test]
fn background_jobs_have_the_apps_mail_redis_and_overwrite_settings() {
    let state = desired_state(&Workspace::of("examples/full-association.yaml"));
    let app = &container(&state, "app")["env"];
    let cron = &container(&state, "cron")["env"];
    for key in [
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_SECURE",
        "SMTP_NAME",
        "SMTP_PASSWORD_FILE",
        "MAIL_FROM_ADDRESS",
        "MAIL_DOMAIN",
        "REDIS_HOST",
        "OVERWRITEPROTOCOL",
        "OVERWRITECLIURL",
        "TRUSTED_PROXIES",
        "TZ",
    ] {
        assert!(app.get(key).is_some(), "{key}");
        assert_eq!(cron[key], app[key], "{key}");
    }
    assert_eq!(
        container(&state, "cron")["entrypoint"],
        serde_json::json!(["/cron.sh"])
    );
}

#[test]
fn the_cloud_host_may_frame_its_own_pages_and_the_others_may_not() {
    let ws = Workspace::of("examples/full-association.yaml");
    let state = desired_state(&ws);
    let dynamic = fs::read_to_string(
        ws.rendered()
            .join("files/amis-quartier-proxy-traefik/etc/traefik/dynamic.yml"),
    )
    .expect("dynamic.yml");
    let parsed: serde_json::Value = serde_saphyr::from_str(&dynamic).expect("YAML");
    let routers = &parsed["http"]["routers"];
    let middlewares = &parsed["http"]["middlewares"];
    let frames = |router: &str| {
        let name = routers[router]["middlewares"][0]
            .as_str()
            .expect("headers first");
        let headers = &middlewares[name]["headers"];
        if headers["frameDeny"] == true {
            assert!(headers.get("customFrameOptionsValue").is_none());
            "DENY".to_string()
        } else {
            headers["customFrameOptionsValue"]
                .as_str()
                .expect("a value")
                .to_string()
        }
    };
    assert_eq!(frames("cloud"), "SAMEORIGIN");
    assert_eq!(frames("board"), "DENY");
    assert_eq!(state["routes"][1]["same_origin_frames"], true);
}

#[test]
fn mail_alone_may_gain_privileges_with_upstreams_capability_set() {
    let state = desired_state(&Workspace::of("examples/full-association.yaml"));
    let mail = container(&state, "mail");
    assert_eq!(mail["security_opt"], serde_json::json!([]));
    assert_eq!(
        mail["cap_add"],
        serde_json::json!([
            "CHOWN",
            "DAC_OVERRIDE",
            "FOWNER",
            "KILL",
            "MKNOD",
            "NET_BIND_SERVICE",
            "SETGID",
            "SETUID",
            "SYS_CHROOT"
        ])
    );
    let entry = fs::read_to_string(root().join("catalog/docker-mailserver.yaml")).expect("entry");
    let at = entry.find("no_new_privileges: false").expect("the setting");
    let comment = &entry[entry[..at].rfind("security:").expect("security")..at];
    assert!(
        comment.contains("postdrop") && comment.contains("set-gid"),
        "the entry says why: {comment}"
    );
    assert!(
        container(&state, "app")["cap_add"]
            .as_array()
            .expect("caps")
            .contains(&"KILL".into()),
        "Apache signals its www-data children"
    );
}

#[test]
fn mail_waits_for_its_certificate_before_the_images_start_up() {
    let state = desired_state(&Workspace::of("examples/full-association.yaml"));
    let mail = container(&state, "mail");
    assert_eq!(
        mail["entrypoint"],
        serde_json::json!([
            "/usr/bin/dumb-init",
            "--",
            "/usr/local/lib/voisin/wait-for-certificate"
        ])
    );
    assert_eq!(
        mail["command"],
        serde_json::json!(["supervisord", "-c", "/etc/supervisor/supervisord.conf"])
    );
    let wrapper = file(mail, "/usr/local/lib/voisin/wait-for-certificate");
    assert_eq!(wrapper["mode"], "0755");
    let text = wrapper["content"]["text"].as_str().expect("text");
    assert!(text.contains("host=mail.amis-quartier.org\n"), "{text}");
    assert!(
        text.contains("store=/var/lib/voisin/acme/acme.json\n"),
        "{text}"
    );
}
