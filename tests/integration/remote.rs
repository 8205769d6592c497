//! A remote engine over TLS, as an association's server would expose it:
//! the machine's engine behind a TLS endpoint (Debian's stunnel) that
//! requires and verifies the client's certificate, with a CA, server and client certificates made by
//! openssl for the test.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::support::{Voisin, root};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA named `name`, and a certificate it signs for `cn` (with `ext`).
fn certificates(dir: &Path, ca: &str, leaf: &str, cn: &str, ext: &str) {
    if !dir.join(format!("{ca}.pem")).exists() {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={ca}"),
                "-keyout",
                &format!("{ca}-key.pem"),
                "-out",
                &format!("{ca}.pem"),
            ],
        );
    }
    std::fs::write(dir.join(format!("{leaf}.ext")), ext).expect("writes");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &format!("{leaf}-key.pem"),
            "-out",
            &format!("{leaf}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &format!("{leaf}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}-key.pem"),
            "-CAcreateserial",
            "-extfile",
            &format!("{leaf}.ext"),
            "-out",
            &format!("{leaf}.pem"),
        ],
    );
}

struct Endpoint(Child);

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binds")
        .local_addr()
        .expect("address")
        .port()
}

#[test]
fn a_remote_engine_is_reached_over_verified_tls_and_a_wrong_ca_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    certificates(
        d,
        "ca",
        "server",
        "localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    certificates(d, "ca", "client", "voisin", "extendedKeyUsage=clientAuth\n");
    certificates(
        d,
        "other-ca",
        "unused",
        "nobody",
        "extendedKeyUsage=clientAuth\n",
    );
    let port = free_port();
    std::fs::write(
        d.join("stunnel.conf"),
        format!(
            "foreground = yes\npid =\n[docker]\naccept = 127.0.0.1:{port}\nconnect = /var/run/docker.sock\n\
             cert = {0}/server.pem\nkey = {0}/server-key.pem\nCAfile = {0}/ca.pem\nverifyChain = yes\nrequireCert = yes\n",
            d.display()
        ),
    )
    .expect("writes");
    let endpoint = Endpoint(
        Command::new("stunnel")
            .arg(d.join("stunnel.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("stunnel runs (scripts/test installs stunnel4)"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the TLS endpoint did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let quickstart =
        std::fs::read_to_string(root().join("examples/quickstart.yaml")).expect("example");
    let manifest = |ca: &str| {
        format!(
            "{quickstart}\nengine:\n  host: tcp://localhost:{port}\n  tls:\n    ca: {ca}\n    cert: client.pem\n    key: client-key.pem\n"
        )
        .replace("domain: quickstart.localhost", "domain: remote.localhost")
    };
    std::fs::write(d.join("voisin.yaml"), manifest("ca.pem")).expect("writes");
    let run = Voisin::new(["plan", "--format", "json"])
        .in_dir(d)
        .env_remove("DOCKER_HOST")
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.json()["changes"],
        true,
        "the plan was made from the remote engine"
    );

    std::fs::write(d.join("voisin.yaml"), manifest("other-ca.pem")).expect("writes");
    let refused = Voisin::new(["plan"])
        .in_dir(d)
        .env_remove("DOCKER_HOST")
        .run();
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("refused voisin's TLS connection"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("hint: check `engine.tls`"),
        "{}",
        refused.stderr
    );
    drop(endpoint);
}
