//! What the tests run against that no registry gives here: the test images
//! (busybox, and `PostgreSQL` built from Debian's packages), each built once
//! per test process, and an OpenSSH server on loopback for the `sftp:`
//! repositories. The tests below prove each works the way the backup tests
//! use it: a dump and a restore through `docker exec`, and `ssh`, `sftp` and
//! `restic` against the server.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::support::root;

/// The test image the busybox containers of the test catalogs run.
pub const BUSYBOX_IMAGE: &str = "voisin-test-busybox:1.0.0";

/// The test image of Debian 13's `PostgreSQL` 17 (the `.0` is ours,
/// for the catalog lint; the label `org.postgresql.version` has the
/// release). Keep in step with `tests/images/postgres/build.sh`.
pub const POSTGRES_IMAGE: &str = "voisin-test-postgres:17.0";

/// Builds `voisin-test-busybox:1.0.0` from Debian's static busybox, once.
pub fn busybox_image() -> &'static str {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *built {
        return BUSYBOX_IMAGE;
    }
    let have = Command::new("docker")
        .args(["image", "inspect", BUSYBOX_IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the docker CLI runs");
    if !have.success() {
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.exists(),
            "the deploy tests need Debian's busybox-static: `apt-get install busybox-static` (scripts/test does)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(busybox, dir.path().join("busybox")).expect("copies busybox");
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nLABEL voisin.test=busybox\n",
        )
        .expect("writes the Dockerfile");
        let out = Command::new("docker")
            .args(["build", "-q", "-t", BUSYBOX_IMAGE])
            .arg(dir.path())
            .output()
            .expect("docker build runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    *built = true;
    BUSYBOX_IMAGE
}

/// Builds `voisin-test-postgres:17.0` with `tests/images/postgres/build.sh`,
/// once per process: about a minute and a half the first time on a
/// machine (it fetches Debian's packages), then a label says the image is
/// current and the script returns at once.
pub fn postgres_image() -> &'static str {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *built {
        return POSTGRES_IMAGE;
    }
    let script = root().join("tests/images/postgres/build.sh");
    let out = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || stdout.trim() != POSTGRES_IMAGE {
        // The script's log, then the one line that says what failed.
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        panic!(
            "building the test PostgreSQL image failed ({}): run tests/images/postgres/build.sh to see why",
            out.status
        );
    }
    *built = true;
    POSTGRES_IMAGE
}

/// An OpenSSH server on 127.0.0.1, run as the current user with its own
/// host key, serving SFTP to one client key; everything lives in a
/// temporary folder. Stopped (with its sessions) when dropped.
///
/// Three ways in, for three kinds of client:
/// - `ssh -F CONFIG voisin-test-sftp` (and `sftp -F`): [`Sftpd::config`];
/// - programs that run plain `ssh` (the sftp service of `OpenDAL` through the
///   `openssh` crate, restic): [`Sftpd::env`] puts an `ssh` that reads the
///   config first on `PATH`, so the real `~/.ssh` is neither read nor
///   written;
/// - an explicit endpoint, user and key: [`Sftpd::opendal_options`].
pub struct Sftpd {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
    user: String,
}

impl Sftpd {
    /// The host alias the client config defines.
    pub const HOST: &'static str = "voisin-test-sftp";

    /// Starts the server on a free port with `tests/support/sftpd.sh`,
    /// which writes the keys and configs, and waits until it listens.
    pub fn start() -> Self {
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "the sftp tests need OpenSSH's server: `apt-get install openssh-server` (scripts/test does)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path();
        std::fs::create_dir(path.join("state")).expect("the control folder");
        let user = command_output(Command::new("id").arg("-un"));
        let script = root().join("tests/support/sftpd.sh");
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(path.join("sshd.log")).expect("sshd.log");
            let mut child = Command::new(&script)
                .arg(path)
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
            let listening = format!("Server listening on 127.0.0.1 port {port}");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                last = std::fs::read_to_string(path.join("sshd.log")).unwrap_or_default();
                if last.contains(&listening) {
                    return Self {
                        dir,
                        child,
                        port,
                        user,
                    };
                }
                let exited = child.try_wait().expect("waits for sshd").is_some();
                if exited || Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("sshd did not start on loopback:\n{last}");
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user clients log in as: the one running the tests.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The client's private key (ed25519, no passphrase).
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("id_ed25519")
    }

    /// A known-hosts file with the server's key, as `[127.0.0.1]:PORT`,
    /// `[localhost]:PORT` and the alias.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// The client config for `ssh -F` and `sftp -F`: host `voisin-test-sftp`
    /// and `127.0.0.1` go to the server with the key, checking its host key
    /// strictly against [`Sftpd::known_hosts`].
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    /// An empty folder for repositories, on the server's side (the same
    /// file system: the server runs here).
    pub fn folder(&self, name: &str) -> PathBuf {
        let folder = self.dir.path().join("srv").join(name);
        std::fs::create_dir_all(&folder).expect("creates the folder");
        folder
    }

    /// The server's log (`-e`, `LogLevel VERBOSE`), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Environment for a process that runs plain `ssh` (voisin through
    /// `OpenDAL`, restic): `PATH` with an `ssh` first that adds `-F CONFIG`,
    /// and `XDG_STATE_HOME` in the temporary folder, where the `openssh`
    /// crate puts its control sockets (else `~/.local/state`).
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        let mut path = OsString::from(self.dir.path().join("bin"));
        if let Some(rest) = std::env::var_os("PATH") {
            path.push(":");
            path.push(rest);
        }
        vec![
            ("PATH", path),
            ("XDG_STATE_HOME", self.dir.path().join("state").into()),
        ]
    }

    /// The `restic` arguments for a repository in `folder` on this server:
    /// `-r sftp:voisin-test-sftp:FOLDER -o sftp.command=ssh -F CONFIG …`.
    pub fn restic_args(&self, folder: &Path) -> Vec<String> {
        vec![
            "-r".into(),
            format!("sftp:{}:{}", Self::HOST, folder.display()),
            "-o".into(),
            format!(
                "sftp.command=ssh -F {} {} -s sftp",
                self.config().display(),
                Self::HOST
            ),
        ]
    }

    /// The options of the sftp service of `OpenDAL` for a repository in
    /// `folder` (rustic's repository `opendal:sftp` with these options).
    /// `OpenDAL` has no port option (the port goes in the endpoint,
    /// `ssh://USER@HOST:PORT`) and no known-hosts file: with `strict`,
    /// `ssh` checks the user's `~/.ssh/known_hosts`, which knows nothing of
    /// this server unless the process has [`Sftpd::env`].
    pub fn opendal_options(&self, folder: &Path) -> Vec<(String, String)> {
        [
            (
                "endpoint",
                format!("ssh://{}@127.0.0.1:{}", self.user, self.port),
            ),
            ("user", self.user.clone()),
            ("key", self.key().display().to_string()),
            ("known_hosts_strategy", "strict".into()),
            ("root", folder.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl Drop for Sftpd {
    fn drop(&mut self) {
        // The sessions first: each is a child of the listener (the script
        // execs sshd), in a session of its own, and outlives it.
        let _ = Command::new("pkill")
            .args(["-TERM", "-P", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now (sshd may still lose it to another
/// process; `Sftpd::start` then tries another).
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("binds a free port")
        .port()
}

fn command_output(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn docker(args: &[&str]) -> String {
    command_output(Command::new("docker").args(args))
}

#[test]
fn the_test_postgres_image_dumps_and_restores_through_docker_exec() {
    let image = postgres_image();
    let name = format!("voisin-test-pg-{}", std::process::id());
    let secret = tempfile::tempdir().expect("temp dir");
    std::fs::write(secret.path().join("db_password"), "s3cret").expect("secret");
    let mount = format!(
        "{}:/run/secrets/db_password:ro",
        secret.path().join("db_password").display()
    );
    // As voisin runs it: every capability dropped but what the entrypoint
    // needs to hand PGDATA to postgres.
    let mut run: Vec<&str> = "run -d --cap-drop ALL --cap-add CHOWN --cap-add DAC_OVERRIDE \
         --cap-add FOWNER --cap-add SETUID --cap-add SETGID \
         --security-opt no-new-privileges:true -e POSTGRES_DB=cloud -e POSTGRES_USER=cloud \
         -e POSTGRES_PASSWORD_FILE=/run/secrets/db_password"
        .split_whitespace()
        .collect();
    run.extend(["--name", &name, "-v", &mount, image]);
    docker(&run);
    let container = Container(name);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Command::new("docker")
        .args(["exec", &container.0, "pg_isready", "-q", "-h", "127.0.0.1"])
        .status()
        .expect("docker exec runs")
        .success()
    {
        assert!(Instant::now() < deadline, "postgres never became ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    let psql = |sql: &str| {
        let out = as_postgres(
            &container.0,
            "psql -tAq -v ON_ERROR_STOP=1 -U cloud -d cloud -c",
        )
        .arg(sql)
        .output()
        .expect("psql runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    psql("CREATE TABLE t (id int PRIMARY KEY, name text)");
    psql("INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 500) g");
    let dump = as_postgres(&container.0, "pg_dump -Fc -U cloud cloud")
        .output()
        .expect("pg_dump runs");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert!(dump.stdout.starts_with(b"PGDMP"), "a custom-format dump");
    psql("DROP TABLE t");
    let mut restore = as_postgres(
        &container.0,
        "pg_restore --clean --if-exists -U cloud -d cloud",
    )
    .stdin(Stdio::piped())
    .spawn()
    .expect("pg_restore runs");
    restore
        .stdin
        .take()
        .expect("stdin")
        .write_all(&dump.stdout)
        .expect("feeds the dump");
    assert!(restore.wait().expect("pg_restore ends").success());
    assert_eq!(psql("SELECT count(*), sum(id) FROM t"), "500|125250");
    assert_eq!(
        docker(&[
            "exec",
            &container.0,
            "stat",
            "-c",
            "%u:%g %a",
            "/var/lib/postgresql/data"
        ]),
        "999:999 700"
    );
    let started = Instant::now();
    docker(&["stop", &container.0]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "docker stop took {:?}",
        started.elapsed()
    );
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.ExitCode}}", &container.0]),
        "0"
    );
}

/// `docker exec -i -u postgres CONTAINER COMMAND…`, as the catalog's dumps
/// and loads run.
fn as_postgres(container: &str, command: &str) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(["exec", "-i", "-u", "postgres", container])
        .args(command.split_whitespace());
    cmd
}

/// A container removed, with its anonymous volumes, when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.0])
            .output();
    }
}

#[test]
fn the_test_sftp_server_serves_ssh_sftp_and_restic() {
    let server = Sftpd::start();
    let config = server.config();
    let ssh = Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args([Sftpd::HOST, "echo", "hello"])
        .output()
        .expect("ssh runs");
    assert!(
        ssh.status.success(),
        "ssh: {}\n{}",
        String::from_utf8_lossy(&ssh.stderr),
        server.log()
    );
    assert_eq!(String::from_utf8_lossy(&ssh.stdout).trim(), "hello");

    let folder = server.folder("files");
    let mut sftp = Command::new("sftp")
        .arg("-F")
        .arg(&config)
        .args(["-b", "-", Sftpd::HOST])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("sftp runs");
    write!(
        sftp.stdin.take().expect("stdin"),
        "cd {}\nmkdir made\n",
        folder.display()
    )
    .expect("sftp commands");
    assert!(
        sftp.wait().expect("sftp ends").success(),
        "{}",
        server.log()
    );
    assert!(folder.join("made").is_dir());

    // restic, both ways: its own `ssh` command, and plain `ssh` on PATH.
    let repo = server.folder("restic");
    let files = folder.display().to_string();
    let run = |mut cmd: Command, args: &[&str]| {
        let out = cmd
            .args(["--no-cache"])
            .args(args)
            .env("RESTIC_PASSWORD", "test")
            .output()
            .expect("restic runs");
        assert!(
            out.status.success(),
            "restic {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.log()
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let own = |args: &[&str]| {
        let mut cmd = Command::new("restic");
        cmd.args(server.restic_args(&repo));
        run(cmd, args)
    };
    let plain = |args: &[&str]| {
        let mut cmd = Command::new("restic");
        cmd.arg("-r")
            .arg(format!("sftp:{}:{}", Sftpd::HOST, repo.display()))
            .envs(server.env());
        run(cmd, args)
    };
    own(&["init"]);
    own(&["backup", "--host", "test", &files]);
    plain(&["backup", "--host", "test", &files]);
    plain(&["check"]);
    let snapshots = own(&["snapshots", "--json"]);
    assert_eq!(
        snapshots.matches("\"hostname\":\"test\"").count(),
        2,
        "{snapshots}"
    );

    // What OpenDAL's sftp service is given.
    let options = server.opendal_options(&repo);
    assert!(options.contains(&(
        "endpoint".to_string(),
        format!("ssh://{}@127.0.0.1:{}", server.user(), server.port())
    )));
    assert!(server.known_hosts().exists() && server.key().exists());
}
