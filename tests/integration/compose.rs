//! The exported compose bundle on the real engine, under Debian's
//! `docker-compose`: the `voisin-files` service puts every rendered file in
//! place with the owner and mode its container expects, and each container,
//! running as its own user, reads its files.
//!
//! No registry is reachable, so the images are replaced by one the test
//! builds from Debian's `busybox-static` (`FROM scratch`), holding the
//! images' users: root, www-data (uid 33, Nextcloud's PHP) and uid 1000 (the
//! board). Each container's command becomes "read my files, then wait", its
//! health check `true`, and published ports go (they would collide with the
//! machine's). Everything else is the bundle as exported: the files
//! service and its script, volumes, users, capabilities, read-only roots,
//! networks and start order.
//!
//! The same image runs the mail server's start-up wrapper as rendered, to
//! show that it waits for the certificate instead of letting
//! docker-mailserver fail.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::Digest as _;

use crate::render::Workspace;

/// Runs a command, returning its output; panics when it cannot start.
fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (scripts/test installs it)"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Removes the project's containers, networks and volumes, and the test
/// image, even when the test fails.
struct Cleanup {
    dir: PathBuf,
    project: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .args([
                "-p",
                &self.project,
                "-f",
                "compose.yaml",
                "down",
                "-v",
                "-t",
                "1",
            ])
            .current_dir(&self.dir)
            .output();
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

/// Builds the test image: busybox and the images' users.
fn build_image(tag: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox is missing: install Debian's busybox-static (scripts/test does)"
    );
    fs::copy(busybox, dir.path().join("busybox")).expect("copy busybox");
    fs::write(
        dir.path().join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         www-data:x:33:33:www-data:/var/www:/bin/sh\n\
         board:x:1000:1000:board:/data:/bin/sh\n",
    )
    .expect("passwd");
    fs::write(
        dir.path().join("group"),
        "root:x:0:\nwww-data:x:33:\nboard:x:1000:\n",
    )
    .expect("group");
    fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\n\
         COPY busybox /bin/busybox\n\
         COPY passwd group /etc/\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN [\"/bin/busybox\", \"mkdir\", \"-p\", \"/tmp\", \"/run\", \"/data\", \"/var/www\", \"/root\"]\n\
         RUN [\"/bin/busybox\", \"chmod\", \"1777\", \"/tmp\"]\n",
    )
    .expect("Dockerfile");
    let out = run(Command::new("docker")
        .args(["build", "-q", "-t", tag, "."])
        .current_dir(dir.path()));
    assert!(out.status.success(), "docker build: {}", text(&out.stderr));
}

/// A domain of its own for this run, whose edge subnet (derived from the
/// domain) no network on the engine uses yet.
fn unused_domain() -> String {
    let out = run(Command::new("sh").args([
        "-c",
        "docker network inspect $(docker network ls -q) --format '{{range .IPAM.Config}}{{.Subnet}} {{end}}'",
    ]));
    let used = text(&out.stdout);
    let base = std::process::id();
    (0u32..10_000)
        .map(|n| format!("vc{base}x{n}.example"))
        .find(|domain| {
            let digest = sha2::Sha256::digest(domain.as_bytes());
            !used.contains(&format!("10.213.{}.0/24", digest[0]))
        })
        .expect("a free subnet")
}

#[test]
fn the_exported_bundle_starts_under_docker_compose_and_each_container_reads_its_files() {
    let ws = Workspace::of("examples/full-association.yaml");
    let domain = unused_domain();
    let slug = domain.split('.').next().expect("a label").to_string();
    let manifest = fs::read_to_string(ws.path().join("voisin.yaml")).expect("manifest");
    fs::write(
        ws.path().join("voisin.yaml"),
        manifest.replace("amis-quartier.org", &domain),
    )
    .expect("manifest");
    let render = ws.voisin(["render", "--compose"]).run();
    assert_eq!(render.code, 0, "{}", render.stderr);
    let rendered = ws.rendered();
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(rendered.join("desired-state.json")).expect("state"))
            .expect("JSON");
    let containers = state["containers"].as_array().expect("containers").clone();

    let image = format!("voisin-test-compose:{slug}");
    let _cleanup = Cleanup {
        dir: rendered.clone(),
        project: slug.clone(),
        image: image.clone(),
    };
    build_image(&image);

    let exported: serde_json::Value = serde_saphyr::from_str(
        &fs::read_to_string(rendered.join("compose.yaml")).expect("compose.yaml"),
    )
    .expect("compose.yaml parses");
    let aliases = &exported["services"][format!("{slug}-mail-mail")]["networks"]
        [format!("{slug}-mail")]["aliases"];
    assert!(
        aliases
            .as_array()
            .is_some_and(|a| a.contains(&format!("mail.{domain}").into())),
        "the mail server answers to its public name on the mail network: {aliases}"
    );
    with_test_image(&rendered.join("compose.yaml"), &containers, &image);

    let up = run(Command::new("timeout")
        .args([
            "300",
            "docker-compose",
            "-p",
            &slug,
            "-f",
            "compose.yaml",
            "up",
            "-d",
        ])
        .current_dir(&rendered));
    if !up.status.success() {
        let logs = run(Command::new("docker-compose")
            .args([
                "-p",
                &slug,
                "-f",
                "compose.yaml",
                "logs",
                "--no-color",
                "--tail",
                "20",
            ])
            .current_dir(&rendered));
        let ps = run(Command::new("docker-compose")
            .args(["-p", &slug, "-f", "compose.yaml", "ps"])
            .current_dir(&rendered));
        panic!(
            "docker-compose up: {}{}\n{}\n{}{}",
            text(&up.stdout),
            text(&up.stderr),
            text(&ps.stdout),
            text(&logs.stdout),
            text(&logs.stderr)
        );
    }

    let checked = check_files(&slug, &rendered, &containers);
    mail_answers_to_its_public_name(&slug, &domain);
    for wanted in [
        "board:/etc/voisin-board/members.json",
        "board:/run/secrets/smtp_password",
        "app:/run/secrets/smtp_password",
        "cron:/run/secrets/smtp_password",
        "mail:/tmp/docker-mailserver/postfix-accounts.cf",
        "mail:/usr/local/lib/voisin/wait-for-certificate",
        "traefik:/etc/traefik/dynamic.yml",
    ] {
        assert!(
            checked.contains(wanted),
            "{wanted} was not checked: {checked:?}"
        );
    }
}

/// Rewrites the exported compose file for the test: the test image in
/// place of each image, commands that read the container's files and wait,
/// health checks that pass, no published ports.
fn with_test_image(compose_path: &Path, containers: &[serde_json::Value], image: &str) {
    let mut compose: serde_json::Value =
        serde_saphyr::from_str(&fs::read_to_string(compose_path).expect("compose.yaml"))
            .expect("compose.yaml parses");
    let services = compose["services"].as_object_mut().expect("services");
    assert!(
        services.contains_key("voisin-files"),
        "the bundle has the files service"
    );
    for (name, service) in services.iter_mut() {
        let service = service.as_object_mut().expect("a service");
        service.insert("image".into(), image.into());
        service.remove("ports");
        if name == "voisin-files" {
            continue;
        }
        let spec = containers
            .iter()
            .find(|c| c["name"] == name.as_str())
            .expect("a container of the desired state");
        // The files its own user reads (those of another, like the SMTP
        // password PHP reads as uid 33, are checked as that user below).
        let uid = spec["user"].as_str().map_or(0, |u| {
            u.split(':')
                .next()
                .and_then(|u| u.parse().ok())
                .expect("uid")
        });
        let paths: Vec<String> = spec["files"]
            .as_array()
            .expect("files")
            .iter()
            .filter(|f| f["uid"] == uid)
            .map(|f| format!("'{}'", f["path"].as_str().expect("path")))
            .collect();
        // `$$`: compose interpolates `$` everywhere in the file.
        let script = format!(
            "for f in {}; do cat \"$$f\" >/dev/null || {{ echo \"cannot read $$f\" >&2; exit 1; }}; done; \
             echo files-read; exec sleep 3600",
            paths.join(" ")
        );
        service.insert("entrypoint".into(), serde_json::json!(["sh", "-c", script]));
        service.remove("command");
        service.insert(
            "healthcheck".into(),
            serde_json::json!({ "test": ["CMD", "true"], "interval": "1s", "retries": 30 }),
        );
    }
    fs::write(
        compose_path,
        serde_saphyr::to_string(&compose).expect("compose.yaml"),
    )
    .expect("write compose.yaml");
}

/// Checks that each container runs after reading its files, and that each
/// file has its owner, mode and content for the user who reads it; returns
/// the `CONTAINER:PATH` of the files checked.
fn check_files(slug: &str, rendered: &Path, containers: &[serde_json::Value]) -> BTreeSet<String> {
    let files_log = run(Command::new("docker").args(["logs", &format!("{slug}-voisin-files")]));
    let mut checked = BTreeSet::new();
    for c in containers {
        let name = c["name"].as_str().expect("name");
        let running = run(Command::new("docker").args([
            "inspect",
            "-f",
            "{{.State.Running}} {{.State.ExitCode}}",
            name,
        ]));
        let logs = run(Command::new("docker").args(["logs", name]));
        assert_eq!(
            text(&running.stdout).trim(),
            "true 0",
            "{name} runs after reading its files: {}{}\nvoisin-files: {}",
            text(&logs.stdout),
            text(&logs.stderr),
            text(&files_log.stderr)
        );
        assert!(
            text(&logs.stdout).contains("files-read"),
            "{name}: {}",
            text(&logs.stderr)
        );
        for f in c["files"].as_array().expect("files") {
            let path = f["path"].as_str().expect("path");
            let (uid, gid) = (
                f["uid"].as_u64().expect("uid"),
                f["gid"].as_u64().expect("gid"),
            );
            // Who reads it: the container's user; else the file's owner
            // (Nextcloud's PHP reads the SMTP password as uid 33); else root.
            let as_user = c["user"]
                .as_str()
                .map_or_else(|| format!("{uid}:{gid}"), str::to_string);
            let mode = u32::from_str_radix(f["mode"].as_str().expect("mode"), 8).expect("octal");
            let stat = run(Command::new("docker")
                .args(["exec", "-u", &as_user, name, "stat", "-c", "%u:%g %a", path]));
            assert_eq!(
                text(&stat.stdout).trim(),
                format!("{uid}:{gid} {mode:o}"),
                "{name}:{path}: {}",
                text(&stat.stderr)
            );
            let cat = run(Command::new("docker").args(["exec", "-u", &as_user, name, "cat", path]));
            assert!(
                cat.status.success(),
                "{name}: uid {as_user} cannot read {path}: {}",
                text(&cat.stderr)
            );
            let expected = fs::read(rendered.join(voisin::render::compose::file_path(name, path)))
                .expect("the rendered file");
            assert!(
                cat.stdout == expected,
                "{name}:{path} differs from the rendered file"
            );
            checked.insert(format!(
                "{}:{path}",
                c["container"].as_str().expect("container")
            ));
        }
    }
    checked
}

/// Removes a container and an image, even when the test fails.
struct Remove {
    container: String,
    image: String,
}

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.container])
            .output();
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

/// The mail server's start-up wrapper, run as rendered: it waits, saying
/// so, while the proxy's store lacks the certificate, then links the store
/// where docker-mailserver reads it and runs the image's command.
/// docker-mailserver's `acme_extract.py` (Python, not in the test image) is
/// stood in for by a script that prints a certificate when the store names
/// the host, as the real one does.
#[test]
fn mail_waits_for_its_certificate_then_starts() {
    let ws = Workspace::of("examples/mail-only.yaml");
    let render = ws.voisin(["render"]).run();
    assert_eq!(render.code, 0, "{}", render.stderr);
    let wrapper = ws
        .rendered()
        .join("files/chorale-canal-mail-mail/usr/local/lib/voisin/wait-for-certificate");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("store");
    fs::create_dir(&store).expect("store");
    let extract = dir.path().join("acme_extract.py");
    fs::write(
        &extract,
        "#!/bin/sh\n# stands in for docker-mailserver's acme_extract.py FILE FQDN --cert\n\
         grep -q \"\\\"main\\\": \\\"$2\\\"\" \"$1\" && echo LS0tCERT\n",
    )
    .expect("stand-in");
    fs::set_permissions(&extract, fs::Permissions::from_mode(0o755)).expect("executable");
    let run_id = format!("voisin-test-wait-{}", std::process::id());
    let _remove = Remove {
        container: run_id.clone(),
        image: run_id.clone(),
    };
    build_image(&run_id);
    let mount = |from: &Path, to: &str, mode: &str| format!("{}:{to}:{mode}", from.display());
    let started = run(Command::new("docker").args([
        "run",
        "-d",
        "--name",
        &run_id,
        "-v",
        &mount(&wrapper, "/usr/local/lib/voisin/wait-for-certificate", "ro"),
        "-v",
        &mount(&extract, "/usr/local/bin/acme_extract.py", "ro"),
        "-v",
        &mount(&store, "/var/lib/voisin/acme", "ro"),
        "-e",
        "PATH=/usr/local/bin:/bin",
        &run_id,
        "sh",
        "/usr/local/lib/voisin/wait-for-certificate",
        "sh",
        "-c",
        "echo mail-started; readlink /etc/letsencrypt/acme.json; exec sleep 60",
    ]));
    assert!(started.status.success(), "{}", text(&started.stderr));
    let logs = || {
        let out = run(Command::new("docker").args(["logs", &run_id]));
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    };
    let wait_for = |what: &str| {
        for _ in 0..100 {
            if logs().contains(what) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("no `{what}` in the log:\n{}", logs());
    };
    wait_for("voisin: mail waits for the certificate of mail.chorale-canal.example.org");
    // A store without this host's certificate is not enough.
    fs::write(
        store.join("acme.json"),
        r#"{"letsencrypt": {"Certificates": [{"domain": {"main": "cloud.chorale-canal.example.org"}}]}}"#,
    )
    .expect("store");
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert!(!logs().contains("mail-started"), "{}", logs());
    fs::write(
        store.join("acme.json"),
        r#"{"letsencrypt": {"Certificates": [{"domain": {"main": "mail.chorale-canal.example.org"}}]}}"#,
    )
    .expect("store");
    wait_for("mail-started");
    assert!(
        logs().contains("mail-started\n/var/lib/voisin/acme/acme.json\n"),
        "{}",
        logs()
    );
}

/// The board and Nextcloud find the mail server by its public name (the
/// name its certificate is for) through Docker's DNS on the mail network;
/// the database, which is not on that network, does not. (This engine also
/// answers to a container's host name, which the mail server's is, so the
/// lookup alone cannot tell the bundle's alias from it: the exported file
/// is checked for the alias before the test rewrites it.)
fn mail_answers_to_its_public_name(slug: &str, domain: &str) {
    let mail = format!("{slug}-mail-mail");
    let host = format!("mail.{domain}");
    let address = run(Command::new("docker").args([
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{slug}-mail\").IPAddress}}}}"),
        &mail,
    ]));
    let address = text(&address.stdout).trim().to_string();
    assert!(
        !address.is_empty(),
        "the mail server has an address on {slug}-mail"
    );
    for client in ["board-board", "cloud-app", "cloud-cron"] {
        let name = format!("{slug}-{client}");
        let lookup = run(Command::new("docker").args(["exec", &name, "nslookup", &host]));
        let answer = text(&lookup.stdout);
        assert!(
            answer.contains(&format!("Address: {address}")),
            "{name} looks up {host}: {answer}{}",
            text(&lookup.stderr)
        );
    }
    let db = format!("{slug}-cloud-db");
    let lookup = run(Command::new("docker").args(["exec", &db, "nslookup", &host]));
    assert!(
        !text(&lookup.stdout).contains(&address),
        "{db} is not on the mail network: {}",
        text(&lookup.stdout)
    );
}
