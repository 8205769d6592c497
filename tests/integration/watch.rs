//! `voisin watch` against the real engine: a bundle of the real one's
//! shape (proxy, mail, cloud on busybox images), an SMTP relay and a
//! webhook on loopback standing in for the outside ones, and a repository
//! that Debian's `restic` writes an old snapshot into.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use super::bundle::docker;
use super::images::busybox_image;
use super::support::{Run, Voisin, bundle_args, root};

/// What the stand-in relay and webhook received, in order.
type Inbox = Arc<Mutex<Vec<String>>>;

/// An SMTP relay on loopback that asks for a login and keeps each mail
/// (with the login line, to check the password went through).
fn smtp_relay() -> (u16, Inbox) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let port = listener.local_addr().expect("address").port();
    let inbox: Inbox = Arc::default();
    let keep = inbox.clone();
    std::thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            let mut write = socket.try_clone().expect("clones");
            let mut lines = BufReader::new(socket);
            let mut mail = String::new();
            let _ = write.write_all(b"220 relay ESMTP\r\n");
            let mut line = String::new();
            while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
                let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                let reply: &[u8] = match verb.as_str() {
                    "EHLO" => b"250-relay\r\n250 AUTH PLAIN\r\n",
                    "AUTH" => {
                        mail.push_str(&line);
                        b"235 ok\r\n"
                    }
                    "DATA" => {
                        let _ = write.write_all(b"354 go on\r\n");
                        let mut l = String::new();
                        while lines.read_line(&mut l).is_ok_and(|n| n > 0) && l.trim_end() != "." {
                            mail.push_str(&l);
                            l.clear();
                        }
                        keep.lock().expect("inbox").push(std::mem::take(&mut mail));
                        b"250 queued\r\n"
                    }
                    "QUIT" => {
                        let _ = write.write_all(b"221 bye\r\n");
                        break;
                    }
                    _ => {
                        mail.push_str(&line);
                        b"250 ok\r\n"
                    }
                };
                let _ = write.write_all(reply);
                line.clear();
            }
        }
    });
    (port, inbox)
}

/// A webhook on loopback that keeps each request's head and body.
fn webhook() -> (u16, Inbox) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let port = listener.local_addr().expect("address").port();
    let inbox: Inbox = Arc::default();
    let keep = inbox.clone();
    std::thread::spawn(move || {
        for mut socket in listener.incoming().flatten() {
            let mut reader = BufReader::new(socket.try_clone().expect("clones"));
            let mut head = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                head.push_str(&line);
                line.clear();
            }
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            keep.lock()
                .expect("inbox")
                .push(format!("{head}\n{}", String::from_utf8_lossy(&body)));
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (port, inbox)
}

/// A bundle with the test proxy, mail publishing its port on loopback,
/// and the test cloud; a local repository; alerts to the stand-ins.
struct Watched {
    dir: tempfile::TempDir,
    slug: String,
    domain: String,
}

impl Watched {
    fn new(slug: &str, smtp: u16, hook: u16, mail_port: u16) -> Self {
        busybox_image();
        let dir = tempfile::tempdir().expect("temp dir");
        let catalog = dir.path().join("catalog");
        let from = root().join("tests/catalogs/deploy");
        for sub in [
            "catalog",
            "templates/busy-cloud",
            "templates/busy-proxy",
            "templates/busy-mail",
        ] {
            std::fs::create_dir_all(catalog.join(sub)).expect("folders");
        }
        for file in [
            "catalog/busy-cloud.yaml",
            "catalog/busy-proxy.yaml",
            "templates/busy-cloud/index.html",
            "templates/busy-cloud/db.conf",
            "templates/busy-proxy/routes.txt",
            "templates/busy-mail/accounts.cf",
        ] {
            std::fs::copy(from.join(file), catalog.join(file)).expect("copies");
        }
        // Mail answers on a loopback port of the machine, as the real one
        // publishes 25, 587 and 993, and its volume is backed up.
        let mail = std::fs::read_to_string(from.join("catalog/busy-mail.yaml")).expect("entry");
        let mail = mail.replacen(
            "    volumes:\n      data: /var/mail\n",
            &format!("    volumes:\n      data: /var/mail\n    ports: [\"{mail_port}:587\"]\n"),
            1,
        ) + "backup:\n  volumes: [data]\n";
        std::fs::write(catalog.join("catalog/busy-mail.yaml"), mail).expect("writes");
        let domain = format!("{slug}.localhost");
        std::fs::write(dir.path().join("password"), "watch-test-password\n").expect("password");
        let manifest = format!(
            "association:\n  name: Test {slug}\n  domain: {domain}\n  contact: admin@{domain}\n\
             members:\n  - {{ id: alice, name: Alice, mailbox: alice@{domain}, contact: alice@example.net, roles: [admin] }}\n\
             services:\n  mail: {{ use: busy-mail, host: mail.{domain} }}\n  cloud: {{ use: busy-cloud, host: cloud.{domain} }}\n\
             proxy: {{ use: busy-proxy }}\n\
             backup:\n  repository: {repo}\n  password_file: password\n  keep: {{ within: 2d }}\n\
             operations:\n  limits: {{ snapshot_age: 2d, verified_age: 30d }}\n  alerts:\n    to: [alice]\n\
             \x20   smtp: {{ host: 127.0.0.1, port: {smtp}, security: none, username: voisin, from: alertes@{domain} }}\n\
             \x20   webhook: {{ url: \"http://127.0.0.1:{hook}/voisin\", format: ntfy }}\n",
            repo = dir.path().join("repo").display(),
        );
        std::fs::write(dir.path().join("voisin.yaml"), manifest).expect("manifest");
        let w = Self {
            dir,
            slug: slug.to_string(),
            domain,
        };
        let _ = w.voisin(&["down", "--volumes", "--yes"]);
        w
    }

    fn voisin(&self, args: &[&str]) -> Run {
        Voisin::new(bundle_args(self.dir.path(), args)).run()
    }

    fn set_secret(&self, name: &str, value: &str) {
        let set = Voisin::new(bundle_args(self.dir.path(), &["secrets", "set", name]))
            .stdin(value)
            .run();
        assert_eq!(set.code, 0, "{}", set.stderr);
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn watch(&self) -> (i32, serde_json::Value) {
        let run = self.voisin(&["watch", "--format", "json"]);
        let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
            panic!(
                "watch printed no JSON ({e}):\n{}\n{}",
                run.stdout, run.stderr
            )
        });
        (run.code, json)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.voisin(&["down", "--volumes", "--yes"]);
    }
}

fn codes(json: &serde_json::Value) -> Vec<String> {
    json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["code"].as_str().unwrap_or(""),
                f["subject"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn count(inbox: &Inbox) -> usize {
    inbox.lock().expect("inbox").len()
}

fn last(inbox: &Inbox) -> String {
    inbox
        .lock()
        .expect("inbox")
        .last()
        .cloned()
        .unwrap_or_default()
}

/// A certificate for `host` that expires in `days`, as Traefik stores it.
fn acme_store(dir: &Path, host: &str, days: u32) -> PathBuf {
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", &days.to_string(), "-subj", &format!("/CN={host}")])
        .output()
        .expect("openssl runs (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let store = serde_json::json!({
        "letsencrypt": {
            "Account": null,
            "Certificates": [{
                "domain": { "main": host },
                "certificate": b64.encode(std::fs::read(&cert).expect("cert")),
                "key": b64.encode(std::fs::read(&key).expect("key")),
                "Store": "default",
            }],
        },
    });
    let path = dir.join("acme.json");
    std::fs::write(&path, store.to_string()).expect("writes the store");
    path
}

#[test]
fn a_stopped_container_is_told_once_by_both_channels_and_its_end_once() {
    let (smtp, mails) = smtp_relay();
    let (hook, posts) = webhook();
    let mail_port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("address").port()
    };
    let w = Watched::new("watchone", smtp, hook, mail_port);
    w.set_secret("alerts-smtp", "relay-password\n");
    let deploy = w.voisin(&["deploy"]);
    assert_eq!(deploy.code, 0, "{}\n{}", deploy.stdout, deploy.stderr);

    // The first pass tells what is already wrong: nothing backed up yet,
    // no certificate yet. Warnings only: exit 0.
    let (code, first) = w.watch();
    let found = codes(&first);
    assert_eq!(code, 0, "{first}");
    assert!(found.contains(&"backup-late:mail".to_string()), "{found:?}");
    assert!(
        found.contains(&format!("certificate-missing:cloud.{}", w.domain)),
        "{found:?}"
    );
    assert_eq!((count(&mails), count(&posts)), (1, 1));
    let mail = last(&mails);
    assert!(
        mail.contains("alice@example.net"),
        "the admin's outside address:\n{mail}"
    );
    let login = base64::engine::general_purpose::STANDARD.encode("\0voisin\0relay-password");
    assert!(
        mail.contains(&login),
        "the relay's password from the secrets:\n{mail}"
    );

    // Mail stopped by hand: one alert, by both channels, through the
    // outside relay although the association's own mail is down.
    docker(&["stop", "-t", "1", &format!("{}-mail-mail", w.slug)]);
    let (code, down) = w.watch();
    assert_eq!(code, 1, "critical: {down}");
    let found = codes(&down);
    assert!(
        found.contains(&format!("container-down:{}-mail-mail", w.slug)),
        "{found:?}"
    );
    assert!(
        found.contains(&format!("mail-port-closed:{mail_port}/tcp")),
        "{found:?}"
    );
    assert_eq!((count(&mails), count(&posts)), (2, 2));
    assert!(last(&mails).contains("[CRITICAL]"), "{}", last(&mails));
    let post = last(&posts);
    assert!(post.to_lowercase().contains("priority: urgent"), "{post}");
    assert!(post.contains(&format!("{}-mail-mail", w.slug)), "{post}");

    // Nothing new: nothing sent.
    let (_, _) = w.watch();
    assert_eq!((count(&mails), count(&posts)), (2, 2));

    // Started again: one "resolved".
    docker(&["start", &format!("{}-mail-mail", w.slug)]);
    let mut resolved = false;
    for _ in 0..30 {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let (code, json) = w.watch();
        if code == 0 && !codes(&json).iter().any(|c| c.starts_with("container-down")) {
            resolved = true;
            break;
        }
    }
    assert!(resolved, "the mail container never came back");
    assert_eq!((count(&mails), count(&posts)), (3, 3));
    assert!(last(&mails).contains("[RESOLVED]"), "{}", last(&mails));
    assert!(!last(&mails).contains("[CRITICAL]"), "{}", last(&mails));
    let (_, _) = w.watch();
    assert_eq!((count(&mails), count(&posts)), (3, 3), "no flood");

    // status shows the same findings and is a check: exit 0, no critical.
    let status = w.voisin(&["status", "--format", "json"]);
    assert_eq!(status.code, 0, "{}\n{}", status.stdout, status.stderr);
    let status = status.json();
    assert_eq!(status["critical"], false);
    assert!(codes(&status).contains(&"backup-late:mail".to_string()));

    // A scheduled verify that fails (no repository yet) is recorded, shows
    // in status, and is the watch's next alert.
    let verify = w.voisin(&["schedule", "run", "verify"]);
    assert_ne!(verify.code, 0, "{}", verify.stdout);
    let status = w.voisin(&["status"]);
    assert!(
        status.stdout.contains("scheduled verify: last started")
            && status
                .stdout
                .contains("FAILED (`voisin backup verify` exited"),
        "{}",
        status.stdout
    );
    let (_, json) = w.watch();
    assert!(
        codes(&json).contains(&"scheduled-run-failed:verify".to_string()),
        "{json}"
    );
    assert_eq!((count(&mails), count(&posts)), (4, 4));
    assert!(
        last(&mails).contains("scheduled verify"),
        "{}",
        last(&mails)
    );
}

#[test]
fn old_backups_and_a_certificate_close_to_expiry_are_warnings_and_undelivered_alerts_show_in_status()
 {
    // A relay and a webhook that nobody answers: both channels fail.
    let dead = |_| {
        let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("address").port()
    };
    let (smtp, hook, mail_port) = (dead(0), dead(1), dead(2));
    let w = Watched::new("watchtwo", smtp, hook, mail_port);
    let deploy = w.voisin(&["deploy"]);
    assert_eq!(deploy.code, 0, "{}\n{}", deploy.stdout, deploy.stderr);

    // A snapshot of mail ten days old, written by restic itself with
    // voisin's tags into a repository restic made.
    let restic = |args: &[&str]| {
        let out = std::process::Command::new("restic")
            .arg("-r")
            .arg(w.repo())
            .arg("--password-file")
            .arg(w.dir.path().join("password"))
            .args(args)
            .output()
            .expect("restic runs (scripts/test installs it)");
        assert!(
            out.status.success(),
            "restic {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    restic(&["init"]);
    let data = w.dir.path().join("old-mail");
    std::fs::create_dir_all(&data).expect("folder");
    std::fs::write(data.join("inbox"), "old mail").expect("file");
    let ten_days_ago = (chrono::Utc::now() - chrono::Duration::days(10))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    restic(&[
        "backup",
        "--time",
        &ten_days_ago,
        "--tag",
        &format!("voisin,association={},service=mail", w.domain),
        &data.display().to_string(),
    ]);

    // A certificate for the cloud's host that expires in 10 days.
    let store = acme_store(w.dir.path(), &format!("cloud.{}", w.domain), 10);
    docker(&[
        "cp",
        &store.display().to_string(),
        &format!("{}-proxy-proxy:/acme/acme.json", w.slug),
    ]);

    let (code, json) = w.watch();
    assert_eq!(code, 1, "no alert could be delivered: {json}");
    let findings = json["findings"].as_array().expect("findings");
    let find = |key: &str| {
        findings
            .iter()
            .find(|f| {
                format!(
                    "{}:{}",
                    f["code"].as_str().unwrap_or(""),
                    f["subject"].as_str().unwrap_or("")
                ) == key
            })
            .unwrap_or_else(|| panic!("no {key} in {json}"))
    };
    let late = find("backup-late:mail");
    assert_eq!(late["severity"], "warning");
    assert!(
        late["message"]
            .as_str()
            .unwrap_or("")
            .contains("10 days old"),
        "{late}"
    );
    let cert = find(&format!("certificate-expiring:cloud.{}", w.domain));
    assert_eq!(cert["severity"], "warning");
    for channel in json["alert"]["channels"].as_array().expect("channels") {
        assert_eq!(channel["delivered"], false, "{channel}");
    }

    // Every channel failed: status says so.
    let status = w.voisin(&["status"]);
    assert!(
        status.stdout.contains("alerts: NOT DELIVERED"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("certificate of cloud."),
        "{}",
        status.stdout
    );
}
