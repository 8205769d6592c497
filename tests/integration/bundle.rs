//! Deploying a bundle of the real one's shape on the machine's engine: a
//! proxy, mail, and a cloud (database, cache, app, background container)
//! on busybox images the test builds, beside the real lending board: seven
//! containers. Each test has its own association (domain, ports), so they
//! run side by side.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::deploy::labelled;
use super::images::busybox_image;
use super::support::{Run, Voisin, bundle_args, root};

/// One association on the engine, with its manifest and catalog in a
/// temporary folder; taken down (volumes too) when dropped.
struct Bundle {
    dir: tempfile::TempDir,
    domain: String,
    slug: String,
    /// Behind the `local` proxy, the first loopback port; else the whole
    /// bundle behind the test proxy, with mail.
    port: Option<u16>,
}

impl Bundle {
    /// The seven containers, behind the test proxy.
    fn new(slug: &str) -> Self {
        Self::with(slug, None, |entry| entry)
    }

    /// The board and the cloud only, on loopback ports from `port`.
    fn local(slug: &str, port: u16) -> Self {
        Self::with(slug, Some(port), |entry| entry)
    }

    /// A bundle whose test cloud entry is edited first.
    fn with(slug: &str, port: Option<u16>, edit: impl Fn(String) -> String) -> Self {
        busybox_image();
        let dir = tempfile::tempdir().expect("temp dir");
        let catalog = dir.path().join("catalog");
        for sub in [
            "catalog",
            "templates/voisin-board",
            "templates/busy-cloud",
            "templates/busy-proxy",
            "templates/busy-mail",
        ] {
            std::fs::create_dir_all(catalog.join(sub)).expect("catalog folders");
        }
        for (from, to) in [
            (
                root().join("catalog/voisin-board.yaml"),
                "catalog/voisin-board.yaml",
            ),
            (root().join("catalog/local.yaml"), "catalog/local.yaml"),
            (
                root().join("templates/voisin-board/members.json"),
                "templates/voisin-board/members.json",
            ),
            (
                root().join("tests/catalogs/deploy/catalog/busy-cloud.yaml"),
                "catalog/busy-cloud.yaml",
            ),
            (
                root().join("tests/catalogs/deploy/templates/busy-cloud/index.html"),
                "templates/busy-cloud/index.html",
            ),
            (
                root().join("tests/catalogs/deploy/templates/busy-cloud/db.conf"),
                "templates/busy-cloud/db.conf",
            ),
            (
                root().join("tests/catalogs/deploy/catalog/busy-proxy.yaml"),
                "catalog/busy-proxy.yaml",
            ),
            (
                root().join("tests/catalogs/deploy/templates/busy-proxy/routes.txt"),
                "templates/busy-proxy/routes.txt",
            ),
            (
                root().join("tests/catalogs/deploy/catalog/busy-mail.yaml"),
                "catalog/busy-mail.yaml",
            ),
            (
                root().join("tests/catalogs/deploy/templates/busy-mail/accounts.cf"),
                "templates/busy-mail/accounts.cf",
            ),
        ] {
            std::fs::copy(&from, catalog.join(to))
                .unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        }
        let entry = catalog.join("catalog/busy-cloud.yaml");
        let text = std::fs::read_to_string(&entry).expect("the test entry");
        std::fs::write(&entry, edit(text)).expect("writes the test entry");
        let bundle = Self {
            dir,
            domain: format!("{slug}.localhost"),
            slug: slug.to_string(),
            port,
        };
        bundle.write("hello", true);
        let _ = bundle.voisin(&["down", "--volumes", "--yes"]);
        bundle
    }

    fn write(&self, greeting: &str, healthy: bool) {
        let domain = &self.domain;
        let mut manifest = format!(
            "association:\n  name: Test {slug}\n  domain: {domain}\n  contact: admin@{domain}\n\
             members:\n  - id: alice\n    name: Alice\n    mailbox: alice@{domain}\n    roles: [admin]\n  - id: bob\n    name: Bob\n    contact: bob@example.net\n\
             services:\n  board:\n    use: voisin-board\n    host: pret.{domain}\n  cloud:\n    use: busy-cloud\n    host: cloud.{domain}\n    settings:\n      greeting: {greeting}\n      healthy: {healthy}\n",
            slug = self.slug,
        );
        let tail = match self.port {
            Some(port) => format!("proxy:\n  use: local\n  settings:\n    port: {port}\n"),
            None => format!(
                "  mail:\n    use: busy-mail\n    host: mail.{domain}\nproxy:\n  use: busy-proxy\n"
            ),
        };
        manifest.push_str(&tail);
        std::fs::write(self.manifest(), manifest).expect("writes the manifest");
    }

    fn manifest(&self) -> PathBuf {
        self.dir.path().join("voisin.yaml")
    }

    fn args(&self, args: &[&str]) -> Vec<String> {
        bundle_args(self.dir.path(), args)
    }

    fn voisin(&self, args: &[&str]) -> Run {
        Voisin::new(self.args(args)).run()
    }

    /// A command for a `voisin` process the test controls (kills).
    fn process(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("voisin"));
        cmd.args(self.args(args))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn deploy(&self) -> serde_json::Value {
        let run = self.voisin(&["deploy", "--format", "json"]);
        assert_eq!(
            run.code, 0,
            "deploy failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        run.json()
    }

    fn plan(&self) -> serde_json::Value {
        let run = self.voisin(&["plan", "--format", "json"]);
        assert_eq!(run.code, 0, "plan failed:\n{}", run.stderr);
        run.json()
    }

    fn name(&self, container: &str) -> String {
        format!("{}-{container}", self.slug)
    }

    fn id(&self, container: &str) -> String {
        docker(&["inspect", "-f", "{{.Id}}", &self.name(container)])
    }

    fn exec(&self, container: &str, args: &[&str]) -> String {
        let name = self.name(container);
        let mut all = vec!["exec", name.as_str(), "/bin/busybox"];
        all.extend_from_slice(args);
        docker(&all)
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = self.voisin(&["down", "--volumes", "--yes"]);
    }
}

/// Runs the docker CLI and insists that it succeeds; its trimmed output.
pub(super) fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The containers the plan would touch, with what it would do.
fn changes(plan: &serde_json::Value) -> Vec<(String, String)> {
    plan["plan"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter(|c| c["action"] != "keep")
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
// One story, from the first deploy to a change: long, and better read whole.
#[allow(clippy::too_many_lines)]
fn a_bundle_deploys_healthy_with_its_files_and_changes_only_what_a_setting_reaches() {
    let b = Bundle::new("bundle-a");
    let first = b.deploy();
    assert_eq!(first["summary"]["created"], 7, "{first:#}");
    assert_eq!(first["summary"]["steps_run"], 2, "a folder per member");

    // Files have their rendered bytes, owners and modes, through a
    // writable root and through a read-only one.
    assert_eq!(
        b.exec("cloud-app", &["cat", "/srv/www/index.html"]),
        "<h1>hello</h1>"
    );
    assert_eq!(
        b.exec(
            "cloud-app",
            &["stat", "-c", "%u:%g %a", "/srv/www/index.html"]
        ),
        "33:33 640"
    );
    assert_eq!(
        b.exec(
            "cloud-app",
            &["stat", "-c", "%u:%g %a", "/run/secrets/db_password"]
        ),
        "33:33 400"
    );
    assert_eq!(
        b.exec("cloud-db", &["stat", "-c", "%u:%g %a", "/etc/db/db.conf"]),
        "70:70 600"
    );
    assert_eq!(
        b.exec("cloud-db", &["cat", "/etc/db/db.conf"]),
        "listen 5432\nowner Test bundle-a"
    );
    assert!(b.exec("cloud-app", &["ls", "/srv/files"]).contains("alice"));
    assert_eq!(
        b.exec(
            "mail-mail",
            &["stat", "-c", "%u:%g %a", "/etc/mail/accounts.cf"]
        ),
        "0:0 600"
    );
    assert!(
        b.exec("mail-mail", &["cat", "/etc/mail/accounts.cf"])
            .starts_with("alice@bundle-a.localhost|{SHA512-CRYPT}$6$")
    );
    assert!(
        b.exec("proxy-proxy", &["cat", "/etc/proxy/routes.txt"])
            .contains("cloud.bundle-a.localhost http://bundle-a-cloud-app:8000")
    );
    // The proxy reaches the app over the edge network, by name.
    assert_eq!(
        b.exec(
            "proxy-proxy",
            &["wget", "-q", "-O", "-", "http://bundle-a-cloud-app:8000/"]
        ),
        "<h1>hello</h1>"
    );

    // Nothing changed: not one mutating call.
    let again = b.deploy();
    assert_eq!(again["engine_calls"]["writes"], 0, "{again:#}");

    // A setting only the app reads replaces the app, and nothing else.
    let (db, cron, board, mail) = (
        b.id("cloud-db"),
        b.id("cloud-cron"),
        b.id("board-board"),
        b.id("mail-mail"),
    );
    let app = b.id("cloud-app");
    b.write("bonjour", true);
    let plan = b.plan();
    assert_eq!(
        changes(&plan),
        [(b.name("cloud-app"), "replace".to_string())],
        "{plan:#}"
    );
    let reasons = plan["plan"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["action"] == "replace")
        .expect("the app")["reasons"]
        .to_string();
    assert!(
        reasons.contains("environment `GREETING` changed"),
        "{reasons}"
    );
    assert!(
        reasons.contains("file `/srv/www/index.html` changed"),
        "{reasons}"
    );
    let third = b.deploy();
    assert_eq!(third["summary"]["replaced"], 1, "{third:#}");
    assert_ne!(b.id("cloud-app"), app);
    assert_eq!(
        (
            b.id("cloud-db"),
            b.id("cloud-cron"),
            b.id("board-board"),
            b.id("mail-mail")
        ),
        (db, cron, board, mail)
    );
    assert_eq!(
        b.exec("cloud-app", &["cat", "/srv/www/index.html"]),
        "<h1>bonjour</h1>"
    );
    assert!(
        labelled(&b.domain)
            .iter()
            .all(|n| !n.contains("-voisin-old") && !n.contains("-voisin-next"))
    );
}

#[test]
fn drift_made_by_hand_shows_in_the_plan_and_the_next_deploy_repairs_it() {
    let b = Bundle::new("bundle-b");
    b.deploy();
    docker(&["stop", "-t", "1", &b.name("cloud-cron")]);
    docker(&["rm", "-f", &b.name("cloud-db")]);
    let plan = b.plan();
    let mut found = changes(&plan);
    found.sort();
    assert_eq!(
        found,
        [
            (b.name("cloud-cron"), "start".to_string()),
            (b.name("cloud-db"), "create".to_string())
        ],
        "{plan:#}"
    );
    b.deploy();
    assert!(changes(&b.plan()).is_empty());
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &b.name("cloud-cron")]),
        "true"
    );
}

#[test]
fn a_replacement_that_never_becomes_healthy_leaves_the_old_one_serving() {
    let b = Bundle::new("bundle-c");
    b.deploy();
    let app = b.id("cloud-app");
    b.write("broken", false);
    let run = b.voisin(&["deploy"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("did not become healthy"),
        "{}",
        run.stderr
    );
    assert_eq!(b.id("cloud-app"), app, "the old app is back");
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &b.name("cloud-app")]),
        "true"
    );
    assert_eq!(
        b.exec("cloud-app", &["cat", "/srv/www/index.html"]),
        "<h1>hello</h1>"
    );
    assert!(
        labelled(&b.domain)
            .iter()
            .all(|n| !n.contains("-voisin-old") && !n.contains("-voisin-next"))
    );
}

#[test]
fn two_deploys_started_together_one_runs_and_the_other_is_refused_with_the_holder() {
    let b = Bundle::new("bundle-d");
    let first = b.process(&["deploy"]).spawn().expect("starts");
    let second = b.process(&["deploy"]).spawn().expect("starts");
    let outputs = [
        first.wait_with_output().expect("ends"),
        second.wait_with_output().expect("ends"),
    ];
    let refused: Vec<String> = outputs
        .iter()
        .filter(|o| !o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stderr).to_string())
        .collect();
    assert_eq!(refused.len(), 1, "exactly one is refused: {refused:?}");
    assert!(refused[0].contains("holds the lock"), "{}", refused[0]);
    assert!(
        refused[0].contains("`voisin deploy` by"),
        "the holder is named: {}",
        refused[0]
    );
    assert!(changes(&b.plan()).is_empty(), "the one that ran converged");
}

#[test]
fn killing_deploy_at_any_moment_leaves_nothing_that_blocks_the_next() {
    let b = Bundle::new("bundle-e");
    b.deploy();
    docker(&[
        "exec",
        "-u",
        "0",
        &b.name("cloud-app"),
        "/bin/busybox",
        "sh",
        "-c",
        "echo kept > /srv/files/marker",
    ]);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.subsec_nanos());
    for trial in 0..20 {
        // Half the trials replace the app, half deploy from nothing but the data.
        if trial % 2 == 0 {
            b.write(if trial % 4 == 0 { "bonjour" } else { "hello" }, true);
        } else {
            for c in ["cloud-app", "cloud-cron", "cloud-db"] {
                let _ = Command::new("docker")
                    .args(["rm", "-f", &b.name(c)])
                    .output();
            }
        }
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let delay = Duration::from_millis(u64::from(seed % 2500));
        let mut child = b.process(&["deploy"]).spawn().expect("starts");
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let after = b.voisin(&["deploy"]);
        assert_eq!(
            after.code, 0,
            "trial {trial} (killed after {delay:?}):\n{}\n{}",
            after.stdout, after.stderr
        );
        assert!(changes(&b.plan()).is_empty(), "trial {trial}: converged");
        let left = labelled(&b.domain);
        assert!(
            left.iter().all(|n| !n.contains("-voisin-old")
                && !n.contains("-voisin-next")
                && !n.ends_with("-fill")),
            "trial {trial}: {left:?}"
        );
        assert_eq!(
            b.exec("cloud-app", &["cat", "/srv/files/marker"]),
            "kept",
            "trial {trial}"
        );
    }
}

/// No container, network or volume of the association is left.
fn nothing_left(b: &Bundle) {
    let left = labelled(&b.domain);
    assert!(
        left.iter()
            .all(|n| n.contains("-voisin-lock") || n.contains("-voisin-record")),
        "half-created objects left: {left:?}"
    );
}

#[test]
fn a_port_taken_on_the_machine_is_named_and_nothing_is_left_half_created() {
    let b = Bundle::local("bundle-f", 18680);
    let _taken = std::net::TcpListener::bind(("127.0.0.1", 18681)).expect("binds the cloud's port");
    let run = b.voisin(&["deploy"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("error: port 18681 on this machine is already taken"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: stop the program that listens on port 18681"),
        "{}",
        run.stderr
    );
    nothing_left(&b);
}

#[test]
fn an_image_no_registry_has_is_named_with_how_to_load_it() {
    let b = Bundle::with("bundle-g", Some(18780), |e| {
        e.replace("voisin-test-busybox:1.0.0", "voisin-test-absent:1.0.0")
    });
    let run = b.voisin(&["deploy"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("error: cannot pull the image `voisin-test-absent:1.0.0`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("docker load -i image.tar"),
        "{}",
        run.stderr
    );
    nothing_left(&b);
}

#[test]
fn no_engine_a_stopped_engine_and_a_refused_socket_each_say_what_to_do() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = root().join("examples/quickstart.yaml");
    let absent = Voisin::new(["plan", "-f"])
        .arg(&manifest)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .run();
    assert_eq!(absent.code, 2, "{}", absent.stderr);
    assert!(
        absent
            .stderr
            .starts_with("error: no Docker engine answers at `unix:///nonexistent/docker.sock`"),
        "{}",
        absent.stderr
    );
    assert!(
        absent.stderr.contains("hint: start it"),
        "{}",
        absent.stderr
    );

    // A socket nobody listens on: an engine that stopped.
    let socket = dir.path().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("binds"));
    let stopped = Voisin::new(["plan", "-f"])
        .arg(&manifest)
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .run();
    assert_eq!(stopped.code, 2, "{}", stopped.stderr);
    assert!(
        stopped
            .stderr
            .starts_with("error: no Docker engine answers"),
        "{}",
        stopped.stderr
    );

    // Someone outside the `docker` group.
    let work = tempfile::tempdir().expect("temp dir");
    std::fs::copy(&manifest, work.path().join("voisin.yaml")).expect("copies");
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(assert_cmd::cargo::cargo_bin("voisin"))
        .args(["plan", "-f"])
        .arg(work.path().join("voisin.yaml"))
        .env("DOCKER_HOST", "unix:///var/run/docker.sock")
        .env("HOME", work.path())
        .current_dir(work.path())
        .output()
        .expect("setpriv runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: permission denied on the Docker socket `/var/run/docker.sock`"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: join the `docker` group"), "{stderr}");
}

#[test]
fn no_deploy_command_and_no_container_config_shows_a_secret() {
    #[derive(serde::Deserialize)]
    struct File {
        values: std::collections::BTreeMap<String, String>,
    }
    let b = Bundle::new("bundle-h");
    let mut outputs = Vec::new();
    for args in [
        vec!["-v", "deploy"],
        vec!["deploy", "--format", "json"],
        vec!["plan", "--format", "json"],
        vec!["-v", "plan"],
        vec!["status", "--format", "json"],
        vec!["logs", "board"],
        vec!["logs", "cloud", "app"],
    ] {
        let run = b.voisin(&args);
        outputs.push((args.join(" "), format!("{}{}", run.stdout, run.stderr)));
    }
    b.write("changed", false);
    let failed = b.voisin(&["-v", "deploy"]);
    assert_eq!(failed.code, 1);
    outputs.push((
        "a failing deploy".into(),
        format!("{}{}", failed.stdout, failed.stderr),
    ));
    // What anyone with access to the engine reads: no secret either.
    let names: Vec<String> = labelled(&b.domain)
        .into_iter()
        .filter_map(|l| l.strip_prefix("container ").map(str::to_string))
        .collect();
    for name in &names {
        outputs.push((format!("docker inspect {name}"), docker(&["inspect", name])));
    }
    let text = std::fs::read_to_string(b.dir.path().join(".voisin/secrets.yaml")).expect("secrets");
    let secrets: Vec<(String, String)> = serde_saphyr::from_str::<File>(&text)
        .expect("secrets parse")
        .values
        .into_iter()
        .map(|(k, v)| (k, v.trim_end().to_string()))
        .collect();
    assert!(secrets.len() >= 5, "{secrets:?}");
    for (what, out) in &outputs {
        for (name, value) in &secrets {
            assert!(
                !out.contains(value.as_str()),
                "`{what}` shows the secret {name}"
            );
        }
    }
}

#[test]
fn ctrl_c_puts_back_what_the_run_changed_and_exits_130() {
    let b = Bundle::new("bundle-i");
    b.deploy();
    let mut interrupted = 0;
    for trial in 0..6u64 {
        // A replacement of the app, interrupted part-way.
        let app = b.id("cloud-app");
        b.write(if trial % 2 == 0 { "bonjour" } else { "hello" }, true);
        let child = b.process(&["deploy"]).spawn().expect("starts");
        std::thread::sleep(Duration::from_millis(600 + 300 * trial));
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let out = child.wait_with_output().expect("ends");
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(130) => {
                interrupted += 1;
                assert!(
                    stderr.contains("interrupted; what this run changed was put back"),
                    "{stderr}"
                );
                assert_eq!(b.id("cloud-app"), app, "trial {trial}: the old app is back");
                assert_eq!(
                    docker(&["inspect", "-f", "{{.State.Running}}", &b.name("cloud-app")]),
                    "true"
                );
                let left = labelled(&b.domain);
                assert!(
                    left.iter()
                        .all(|n| !n.contains("-voisin-next") && !n.contains("-voisin-lock")),
                    "trial {trial}: {left:?}"
                );
            }
            // Finished before the signal, or signalled before the apply began.
            Some(0) | None => {}
            other => panic!("trial {trial}: exit {other:?}\n{stderr}"),
        }
        // Whatever happened, the next deploy converges.
        b.deploy();
        assert!(changes(&b.plan()).is_empty(), "trial {trial}");
    }
    assert!(interrupted > 0, "no trial was interrupted mid-deploy");
}

#[test]
fn a_failing_step_names_its_member_and_error_and_runs_again_next_time() {
    let b = Bundle::with("bundle-j", None, |e| {
        e.replace(
            r#"command: [/bin/busybox, mkdir, -p, "/srv/files/{{ member.id }}"]"#,
            r#"command: [/bin/busybox, sh, -c, "echo no room for {{ member.id }} >&2; test {{ member.id }} = alice"]"#,
        )
    });
    let run = b.voisin(&["deploy"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(
            "error: the step `give each member a folder` for member `bob` failed in `bundle-j-cloud-app` (exit code 1):\n    no room for bob"
        ),
        "{}",
        run.stderr
    );
    // The containers are healthy and stay.
    let status = b.voisin(&["status"]);
    assert_eq!(status.code, 0, "{}", status.stdout);
    // Only what failed runs again.
    let plan = b.plan();
    let steps: Vec<&str> = plan["plan"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["doc"].as_str())
        .collect();
    assert_eq!(steps, ["give each member a folder for member `bob`"]);
}
