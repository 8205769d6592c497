//! A Docker Swarm of real engines on this machine, for the swarm tests
//! (issue 13): [`Swarm`] drives `tests/support/swarm.sh`, which starts each
//! node's `dockerd` in a network namespace of its own, behind a switch
//! namespace, so that nothing reaches the machine's own engine or network.
//! The smoke test below proves what the swarm tests will lean on: services
//! spread over the nodes, a lost node's task moves, a node comes back, a
//! cut link is seen and healed, and nothing is left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::images::busybox_image;
use super::support::root;

/// A swarm of engines, node 0 the manager, the others workers; taken down
/// (engines, namespaces, cgroups, data roots) when dropped, even when the
/// test failed. A test process killed before that (Ctrl-C, a CI timeout) is
/// noticed by the script's watcher, which takes the swarm down after it.
pub struct Swarm {
    name: String,
    nodes: usize,
    /// Whether `down` already ran.
    gone: bool,
}

impl Swarm {
    /// A swarm of three nodes (one manager, two workers), all Ready.
    /// `name` is made unique on the machine with the process id (network
    /// namespaces are named after it), so test runs side by side do not meet.
    pub fn up(name: &str) -> Self {
        Self::up_with(name, 3)
    }

    /// A swarm of `nodes` nodes (1 to 9), all Ready.
    pub fn up_with(name: &str, nodes: usize) -> Self {
        assert!(
            command_output(Command::new("id").arg("-u")) == "0",
            "the swarm tests make network namespaces and start engines: run them as root"
        );
        // The script allows 20 characters; the pid takes up to 7 of them.
        let prefix: String = name.chars().take(12).collect();
        let name = format!("{prefix}-{}", std::process::id());
        let swarm = Self {
            name,
            nodes,
            gone: false,
        };
        // On failure the script has taken down what it made; Drop runs
        // `down` again, which finds nothing and says nothing.
        script(&["up", &swarm.name.clone(), &nodes.to_string()]);
        swarm
    }

    /// The swarm's unique name (what `swarm.sh` is given).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many nodes it has.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The folder of the swarm's state: `NODE/data` (data root),
    /// `NODE/docker.sock`, `NODE/dockerd.log`. Where the script puts it
    /// (`$VOISIN_SWARM_DIR/NAME`, by default under `/tmp/voisin-swarm`):
    /// a known place, so that `swarm.sh down NAME` cleans up by hand too.
    pub fn dir(&self) -> PathBuf {
        std::env::var_os("VOISIN_SWARM_DIR")
            .map_or_else(|| PathBuf::from("/tmp/voisin-swarm"), PathBuf::from)
            .join(&self.name)
    }

    /// Node `node`'s engine, for voisin's `engine.host` or `DOCKER_HOST`:
    /// `unix:///…/NODE/docker.sock`.
    pub fn node_host(&self, node: usize) -> String {
        format!(
            "unix://{}",
            self.dir()
                .join(node.to_string())
                .join("docker.sock")
                .display()
        )
    }

    /// The node's hostname, as `docker node ls` shows it.
    pub fn hostname(&self, node: usize) -> String {
        format!("{}-{node}", self.name)
    }

    /// The node's address on the swarm's network.
    pub fn addr(&self, node: usize) -> String {
        script(&["addr", &self.name, &node.to_string()])
    }

    /// SIGKILLs everything of the node at once (engine, containerd, shims,
    /// containers): the machine is lost.
    pub fn kill(&self, node: usize) {
        script(&["kill", &self.name, &node.to_string()]);
    }

    /// Boots a killed node again and waits until its engine answers; it
    /// rejoins the swarm by itself.
    pub fn start(&self, node: usize) {
        script(&["start", &self.name, &node.to_string()]);
    }

    /// Sets the node's link down: its engine runs on, cut off from the others.
    pub fn cut(&self, node: usize) {
        script(&["cut", &self.name, &node.to_string()]);
    }

    /// Sets the node's link up again.
    pub fn heal(&self, node: usize) {
        script(&["heal", &self.name, &node.to_string()]);
    }

    /// Loads images from this machine's engine into every running node
    /// (no registry here: `docker save`, then `docker load` on each).
    pub fn load(&self, images: &[&str]) {
        let mut args = vec!["load", &self.name];
        args.extend_from_slice(images);
        script(&args);
    }

    /// `docker ARGS` against node `node`; its stdout, trimmed. Panics with
    /// stderr when it fails.
    pub fn docker(&self, node: usize, args: &[&str]) -> String {
        let out = self.docker_output(node, args);
        assert!(
            out.status.success(),
            "docker {args:?} on node {node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `docker ARGS` against node `node`, whatever it exits with.
    pub fn docker_output(&self, node: usize, args: &[&str]) -> Output {
        Command::new("docker")
            .args(["-H", &self.node_host(node)])
            .args(args)
            .output()
            .expect("the docker CLI runs")
    }

    /// The end of node `node`'s engine log, for failure messages.
    pub fn log(&self, node: usize) -> String {
        let log = std::fs::read_to_string(self.dir().join(node.to_string()).join("dockerd.log"))
            .unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Takes the swarm down now, and panics if the script fails (Drop only
    /// reports it).
    pub fn down(mut self) {
        script(&["down", &self.name.clone()]);
        self.gone = true;
    }
}

/// Runs `tests/support/swarm.sh ARGS`, on behalf of this process (its
/// watcher outlives us by one second at most); its stdout, trimmed.
fn script(args: &[&str]) -> String {
    let script = root().join("tests/support/swarm.sh");
    let out = Command::new(&script)
        .args(args)
        .env("VOISIN_SWARM_OWNER", std::process::id().to_string())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    assert!(
        out.status.success(),
        "swarm.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if self.gone {
            return;
        }
        let out = Command::new(root().join("tests/support/swarm.sh"))
            .args(["down", &self.name])
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "swarm.sh down {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("swarm.sh down {}: {e}", self.name),
        }
    }
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

/// Polls `done` every 100 ms until it holds; panics with `what` and the
/// last state `done` saw after `limit`.
fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> Result<(), String>) {
    let started = Instant::now();
    loop {
        match done() {
            Ok(()) => return,
            Err(last) => assert!(
                started.elapsed() < limit,
                "{what}: not after {limit:?}; last seen:\n{last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The nodes (hostnames) of the service's tasks that run and should, as
/// the manager sees them.
fn running_tasks(swarm: &Swarm, service: &str) -> Vec<String> {
    let out = swarm.docker_output(
        0,
        &[
            "service",
            "ps",
            service,
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.CurrentState}}",
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.split_whitespace().nth(1) == Some("Running"))
        .map(|line| {
            line.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// The node's status (`ready`, `down`, `unknown`) as the manager sees it.
fn node_status(swarm: &Swarm, node: usize) -> String {
    swarm.docker(
        0,
        &[
            "node",
            "inspect",
            "--format",
            "{{.Status.State}}",
            &swarm.hostname(node),
        ],
    )
}

fn status_is(swarm: &Swarm, node: usize, want: &str) -> Result<(), String> {
    let status = node_status(swarm, node);
    if status == want { Ok(()) } else { Err(status) }
}

/// What a swarm taken down could have left on the machine: its network
/// namespaces (and with them its veth pairs and bridge, which live only
/// there), processes, mounts, cgroups and state folder.
fn leftovers(name: &str, dir: &Path) -> Vec<String> {
    let mut left = Vec::new();
    let netns = command_output(Command::new("ip").args(["netns", "list"]));
    left.extend(
        netns
            .lines()
            .filter(|l| l.starts_with(&format!("vs-{name}-")))
            .map(|l| format!("network namespace {l}")),
    );
    // Engines name the folder; the watcher names the swarm.
    let dir_text = dir.display().to_string();
    for pattern in [dir_text.as_str(), &format!("swarm.sh {name}")] {
        let pgrep = Command::new("pgrep")
            .args(["-af", pattern])
            .output()
            .expect("pgrep runs");
        left.extend(
            String::from_utf8_lossy(&pgrep.stdout)
                .lines()
                .map(|l| format!("process {l}")),
        );
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("reads the mounts");
    left.extend(
        mounts
            .lines()
            .filter(|l| l.contains(&dir_text))
            .map(|l| format!("mount {l}")),
    );
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .expect("lists the cgroup hierarchies")
        .flatten()
    {
        let group = hierarchy.path().join("voisin-swarm").join(name);
        if group.exists() {
            left.push(format!("cgroup {}", group.display()));
        }
    }
    if dir.exists() {
        left.push(format!("folder {}", dir.display()));
    }
    left
}

/// Checks the manager sees every node Ready, node 0 leading, and that each
/// node is its own engine on its own address.
fn check_nodes(swarm: &Swarm) {
    let nodes = swarm.docker(
        0,
        &[
            "node",
            "ls",
            "--format",
            "{{.Hostname}} {{.Status}} {{.ManagerStatus}}",
        ],
    );
    let mut seen: Vec<&str> = nodes.lines().map(str::trim_end).collect();
    seen.sort_unstable();
    let expected: Vec<String> = (0..swarm.nodes())
        .map(|node| {
            let leader = if node == 0 { " Leader" } else { "" };
            format!("{} Ready{leader}", swarm.hostname(node))
        })
        .collect();
    assert_eq!(seen, expected, "{nodes}");
    for node in 0..swarm.nodes() {
        assert_eq!(
            swarm.docker(node, &["info", "--format", "{{.Name}} {{.Swarm.NodeAddr}}"]),
            format!("{} {}", swarm.hostname(node), swarm.addr(node))
        );
    }
}

/// Creates the service `web`, one busybox httpd per node, and waits until
/// each node's own engine runs one of its containers.
fn spread_service(swarm: &Swarm, image: &str) {
    let replicas = swarm.nodes().to_string();
    // No registry: the nodes run the image they have (`--no-resolve-image`).
    // A short restart delay, so that a moved task is not held 5 s.
    let mut create = vec!["service", "create", "--detach", "--name", "web"];
    create.extend([
        "--replicas",
        &replicas,
        "--no-resolve-image",
        "--restart-delay",
        "1s",
    ]);
    create.extend([image, "/bin/busybox", "httpd", "-f", "-p", "8080"]);
    swarm.docker(0, &create);
    wait_until(Duration::from_secs(30), "one task on each node", || {
        let mut on = running_tasks(swarm, "web");
        on.sort();
        on.dedup();
        if on.len() == swarm.nodes() {
            Ok(())
        } else {
            Err(format!("{on:?}"))
        }
    });
    for node in 0..swarm.nodes() {
        let filter = "label=com.docker.swarm.service.name=web";
        let ids = swarm.docker(node, &["ps", "-q", "--filter", filter]);
        assert_eq!(
            ids.lines().count(),
            1,
            "node {node}: {ids}\n{}",
            swarm.log(node)
        );
    }
}

/// Kills the node (engine, containers: the machine lost), waits until the
/// manager runs its task elsewhere, then boots it and waits until it is
/// Ready again. Returns both delays, from the kill and from the boot.
fn lose_node(swarm: &Swarm, node: usize) -> (Duration, Duration) {
    let lost = swarm.hostname(node);
    let killed = Instant::now();
    swarm.kill(node);
    assert!(
        !swarm.docker_output(node, &["version"]).status.success(),
        "the killed engine still answers"
    );
    wait_until(
        Duration::from_secs(30),
        "the lost task running elsewhere",
        || {
            let on = running_tasks(swarm, "web");
            if on.len() == swarm.nodes() && !on.contains(&lost) {
                Ok(())
            } else {
                Err(format!("{on:?}"))
            }
        },
    );
    let moved = killed.elapsed();
    assert_eq!(node_status(swarm, node), "down");

    let booted = Instant::now();
    swarm.start(node);
    wait_until(Duration::from_secs(30), "the restarted node Ready", || {
        status_is(swarm, node, "ready")
    });
    (moved, booted.elapsed())
}

/// Cuts the node's link: its engine runs on, the manager marks it down;
/// then heals it, and the manager finds it again. Returns both delays.
fn cut_node(swarm: &Swarm, node: usize) -> (Duration, Duration) {
    let cut = Instant::now();
    swarm.cut(node);
    wait_until(Duration::from_secs(20), "the cut node Down", || {
        status_is(swarm, node, "down")
    });
    let unreachable = cut.elapsed();
    assert!(
        swarm.docker_output(node, &["version"]).status.success(),
        "the cut node's engine stopped: the cut should only take its link\n{}",
        swarm.log(node)
    );
    let healed = Instant::now();
    swarm.heal(node);
    wait_until(Duration::from_secs(30), "the healed node Ready", || {
        status_is(swarm, node, "ready")
    });
    let back = healed.elapsed();
    wait_until(
        Duration::from_secs(30),
        "every task running after the cut",
        || {
            let on = running_tasks(swarm, "web");
            if on.len() == swarm.nodes() {
                Ok(())
            } else {
                Err(format!("{on:?}"))
            }
        },
    );
    (unreachable, back)
}

#[test]
fn a_swarm_of_three_engines_moves_a_lost_workers_task_and_survives_a_cut_link() {
    let image = busybox_image();
    let started = Instant::now();
    let swarm = Swarm::up("smoke");
    let up = started.elapsed();
    check_nodes(&swarm);

    let started = Instant::now();
    swarm.load(&[image]);
    let load = started.elapsed();
    for node in 0..swarm.nodes() {
        swarm.docker(node, &["image", "inspect", "--format", "{{.Id}}", image]);
    }

    spread_service(&swarm, image);
    let (moved, rejoined) = lose_node(&swarm, 1);
    let (unreachable, back) = cut_node(&swarm, 2);

    let name = swarm.name().to_string();
    let dir = swarm.dir();
    let started = Instant::now();
    swarm.down();
    let down = started.elapsed();
    let left = leftovers(&name, &dir);
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
    eprintln!(
        "swarm smoke: up {up:.1?}, image load into 3 nodes {load:.1?}, \
         task moved {moved:.1?} after the kill, worker Ready {rejoined:.1?} after its boot, \
         Down {unreachable:.1?} after the cut, Ready {back:.1?} after the heal, down {down:.1?}"
    );
}

/// A bundle deployed on a swarm: the test catalog's swarm entries (a
/// forwarding proxy that keeps no data, a cloud whose database keeps its
/// data) beside the real lending board, with the board pinned to node 1
/// by the manifest and the cloud pinned by voisin. Node 0, the manager,
/// only manages (drained), as a small association's swarm would have it
/// once it has machines to spare. Its networks are not encrypted: the
/// kernel here has no `IPsec` (ESP) in the nodes' namespaces, so encrypted
/// overlay networks carry nothing between them.
struct SwarmBundle {
    dir: tempfile::TempDir,
    domain: String,
}

impl SwarmBundle {
    fn new(swarm: &Swarm) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let catalog = dir.path().join("catalog");
        for sub in [
            "catalog",
            "templates/voisin-board",
            "templates/swarm-edge",
            "templates/swarm-cloud",
        ] {
            std::fs::create_dir_all(catalog.join(sub)).expect("catalog folders");
        }
        for (from, to) in [
            ("catalog/voisin-board.yaml", "catalog/voisin-board.yaml"),
            (
                "templates/voisin-board/members.json",
                "templates/voisin-board/members.json",
            ),
            (
                "tests/catalogs/swarm/catalog/swarm-edge.yaml",
                "catalog/swarm-edge.yaml",
            ),
            (
                "tests/catalogs/swarm/templates/swarm-edge/run",
                "templates/swarm-edge/run",
            ),
            (
                "tests/catalogs/swarm/catalog/swarm-cloud.yaml",
                "catalog/swarm-cloud.yaml",
            ),
            (
                "tests/catalogs/swarm/templates/swarm-cloud/index.html",
                "templates/swarm-cloud/index.html",
            ),
            (
                "tests/catalogs/swarm/templates/swarm-cloud/db.conf",
                "templates/swarm-cloud/db.conf",
            ),
        ] {
            std::fs::copy(root().join(from), catalog.join(to))
                .unwrap_or_else(|e| panic!("{from}: {e}"));
        }
        let bundle = Self {
            dir,
            domain: format!("{}.localhost", swarm.name()),
        };
        bundle.write(swarm, "hello", true);
        bundle
    }

    fn write(&self, swarm: &Swarm, greeting: &str, healthy: bool) {
        let domain = &self.domain;
        let manifest = format!(
            "association:\n  name: Swarm {name}\n  domain: {domain}\n  contact: admin@{domain}\n\
             members:\n  - id: alice\n    name: Alice\n    contact: alice@example.net\n    roles: [admin]\n\
             engine:\n  host: {manager}\n  swarm:\n    nodes:\n\
             \x20     {n1}:\n        host: {h1}\n        services: [board]\n\
             \x20     {n2}:\n        host: {h2}\n\
             \x20   encrypt: false\n\
             services:\n  board:\n    use: voisin-board\n    host: pret.{domain}\n\
             \x20 cloud:\n    use: swarm-cloud\n    host: cloud.{domain}\n    settings:\n      greeting: {greeting}\n      healthy: {healthy}\n\
             proxy:\n  use: swarm-edge\n\
             backup:\n  repository: {repository}\n  password_file: backup-password\n  keep: {{ last: 10 }}\n",
            name = swarm.name(),
            manager = swarm.node_host(0),
            n1 = swarm.hostname(1),
            h1 = swarm.node_host(1),
            n2 = swarm.hostname(2),
            h2 = swarm.node_host(2),
            repository = self.dir.path().join("repository").display(),
        );
        std::fs::write(self.dir.path().join("voisin.yaml"), manifest).expect("writes the manifest");
        let password = self.dir.path().join("backup-password");
        std::fs::write(&password, "a swarm's backup password\n").expect("writes the password");
        std::fs::set_permissions(
            &password,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod");
    }

    fn voisin(&self, args: &[&str]) -> super::support::Run {
        super::support::Voisin::new(super::support::bundle_args(self.dir.path(), args)).run()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let run = self.voisin(args);
        assert_eq!(
            run.code, 0,
            "{args:?} failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        run.json()
    }
}

impl Swarm {
    /// `curl` of `url` from node `from`'s network namespace (a machine of
    /// the swarm's network); the body, or why not.
    fn fetch(&self, from: usize, url: &str) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &format!("vs-{}-{from}", self.name)])
            .args(["curl", "-sS", "-m", "2", "-f", url])
            .output()
            .expect("ip netns exec runs");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// Copies an image from this machine's engine into node `node` only.
    fn load_into(&self, node: usize, image: &str) {
        let status = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "docker save {image} | docker -H {} load -q",
                    self.node_host(node)
                ),
            ])
            .status()
            .expect("sh runs");
        assert!(status.success(), "loading {image} into node {node}");
    }
}

/// A swarm of three engines whose manager only manages (drained), the
/// test image on the manager's engine only (voisin carries it to the
/// workers), and the swarm bundle written for it.
fn swarm_with_bundle(name: &str) -> (Swarm, SwarmBundle) {
    let image = busybox_image();
    let swarm = Swarm::up(name);
    swarm.load_into(0, image);
    let manager = swarm.hostname(0);
    swarm.docker(0, &["node", "update", "--availability", "drain", &manager]);
    let bundle = SwarmBundle::new(&swarm);
    (swarm, bundle)
}

/// Writes a mark into each of `volumes` (one name a line) on `node`.
fn mark_volumes(swarm: &Swarm, node: usize, volumes: &str) {
    for v in volumes.lines() {
        let mount = format!("{v}:/d");
        let write = "echo kept > /d/voisin-test-mark";
        swarm.docker(
            node,
            &[
                "run",
                "--rm",
                "-v",
                &mount,
                busybox_image(),
                "/bin/busybox",
                "sh",
                "-c",
                write,
            ],
        );
    }
}

/// Fails unless each of `volumes` on `node` still has its mark.
fn assert_marks_kept(swarm: &Swarm, node: usize, volumes: &str) {
    for v in volumes.lines() {
        let mount = format!("{v}:/d");
        let mark = swarm.docker(
            node,
            &[
                "run",
                "--rm",
                "-v",
                &mount,
                busybox_image(),
                "/bin/busybox",
                "cat",
                "/d/voisin-test-mark",
            ],
        );
        assert_eq!(mark, "kept", "{v} kept its data");
    }
}

/// The node each service of the bundle runs on (`service name → host
/// name`), from `voisin status --format json`.
fn placed(status: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    status["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let node = s["tasks"]
                .as_array()?
                .iter()
                .find(|t| t["state"] == "running")?["node"]
                .as_str()?
                .to_string();
            Some((s["name"].as_str()?.to_string(), node))
        })
        .collect()
}

#[test]
fn the_bundle_deploys_across_a_swarm_where_the_manifest_pins_it_and_a_second_deploy_changes_nothing()
 {
    let (swarm, bundle) = swarm_with_bundle("deploy");
    let image = busybox_image();

    let started = Instant::now();
    let first = bundle.json(&["deploy", "--format", "json"]);
    let cold = started.elapsed();
    assert_eq!(first["swarm"], true, "{first}");
    assert_eq!(first["summary"]["created"], 4, "{first}");

    let status = bundle.json(&["status", "--format", "json"]);
    assert_eq!(status["down"], false, "{status}");
    let on = placed(&status);
    let slug = on
        .keys()
        .find_map(|k| k.strip_suffix("-board-board"))
        .expect("the board runs")
        .to_string();
    let (n1, n2) = (swarm.hostname(1), swarm.hostname(2));
    assert_eq!(
        on[&format!("{slug}-board-board")],
        n1,
        "pinned by the manifest: {on:?}"
    );
    // voisin pinned the cloud, whose database keeps data, to the node with
    // fewer pinned services; its app goes with it.
    assert_eq!(on[&format!("{slug}-cloud-db")], n2, "{on:?}");
    assert_eq!(on[&format!("{slug}-cloud-app")], n2, "{on:?}");
    assert!(
        [&n1, &n2].contains(&&on[&format!("{slug}-proxy-proxy")]),
        "the proxy runs on a node of the manifest: {on:?}"
    );
    // The images reached the workers through voisin, not the test.
    for node in [1, 2] {
        swarm.docker(node, &["image", "inspect", "--format", "{{.Id}}", image]);
    }

    // The board answers through the proxy, on the node that runs it.
    let proxy_node = if on[&format!("{slug}-proxy-proxy")] == n1 {
        1
    } else {
        2
    };
    let board = format!("http://{}:8080/", swarm.addr(proxy_node));
    let cloud = format!("http://{}:8081/", swarm.addr(proxy_node));
    wait_until(
        Duration::from_secs(20),
        "the board through the proxy",
        || swarm.fetch(0, &board).map(|_| ()),
    );
    let page = swarm.fetch(0, &cloud).expect("the cloud through the proxy");
    assert!(page.contains("hello from Swarm"), "{page}");

    // Files are configs and secrets, with their owners and modes.
    let db = swarm.docker(
        2,
        &[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.swarm.service.name={slug}-cloud-db"),
        ],
    );
    let listing = swarm.docker(
        2,
        &[
            "exec",
            &db,
            "/bin/busybox",
            "stat",
            "-L",
            "-c",
            "%a %u:%g",
            "/etc/db/db.conf",
        ],
    );
    assert_eq!(listing, "600 70:70");
    let rows = swarm.docker(2, &["exec", &db, "/bin/busybox", "cat", "/var/lib/db/rows"]);
    assert_eq!(rows, "first-row", "the after-start step ran on the node");

    // A second deploy: nothing to change, and not one mutating call.
    let again = bundle.json(&["deploy", "--format", "json"]);
    assert_eq!(again["engine_calls"]["writes"], 0, "{again}");
    let plan = bundle.json(&["plan", "--format", "json"]);
    assert_eq!(plan["changes"], false, "{plan}");

    // Drift by hand shows in the plan with its reason, and deploy repairs it.
    swarm.docker(
        0,
        &[
            "service",
            "update",
            "--detach",
            "--env-add",
            "GREETING=by-hand",
            &format!("{slug}-cloud-app"),
        ],
    );
    let plan = bundle.json(&["plan", "--format", "json"]);
    let app = plan["plan"]["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == format!("{slug}-cloud-app")))
        .cloned()
        .unwrap_or_default();
    assert_eq!(app["action"], "replace", "{plan}");
    assert!(
        app["reasons"]
            .to_string()
            .contains("environment `GREETING` changed"),
        "{app}"
    );
    bundle.json(&["deploy", "--format", "json"]);
    assert_eq!(bundle.json(&["plan", "--format", "json"])["changes"], false);
    eprintln!("swarm deploy: cold {cold:.1?}");
}

/// Fetches `url` from node 0 every 100 ms until told to stop; returns
/// how many fetches were made and the failures, with their time.
fn probe(swarm: &Swarm, url: &str, stop: &std::sync::atomic::AtomicBool) -> (usize, Vec<String>) {
    let started = Instant::now();
    let mut tries = 0;
    let mut failures = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tries += 1;
        if let Err(e) = swarm.fetch(0, url) {
            failures.push(format!("{:.1?}: {e}", started.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (tries, failures)
}

/// Deploys with a changed setting while a probe fetches the page every
/// 100 ms; returns the deploy's run and the probe's count and failures.
fn deploy_probed(
    swarm: &Swarm,
    bundle: &SwarmBundle,
    url: &str,
) -> (super::support::Run, usize, Vec<String>) {
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let probing = s.spawn(|| probe(swarm, url, &stop));
        // The probe sees the service serve before the update starts.
        std::thread::sleep(Duration::from_millis(500));
        let run = bundle.voisin(&["deploy", "--format", "json"]);
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (tries, failures) = probing.join().expect("the probe ran");
        (run, tries, failures)
    })
}

#[test]
fn a_changed_setting_rolls_with_a_healthy_copy_serving_throughout_and_a_broken_one_rolls_back() {
    let (swarm, bundle) = swarm_with_bundle("roll");

    bundle.json(&["deploy", "--format", "json"]);
    let on = placed(&bundle.json(&["status", "--format", "json"]));
    let proxy_node = if on
        .iter()
        .any(|(k, v)| k.ends_with("-proxy-proxy") && *v == swarm.hostname(1))
    {
        1
    } else {
        2
    };
    let cloud = format!("http://{}:8081/", swarm.addr(proxy_node));
    wait_until(
        Duration::from_secs(20),
        "the cloud through the proxy",
        || swarm.fetch(0, &cloud).map(|_| ()),
    );

    // A new greeting: the app (no port, no volume) starts its new copy
    // first and stops the old one only once the new one is healthy.
    bundle.write(&swarm, "bonjour", true);
    let (run, tries, failures) = deploy_probed(&swarm, &bundle, &cloud);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let app = report["plan"]["services"]
        .as_array()
        .and_then(|s| {
            s.iter().find(|s| {
                s["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("-cloud-app"))
            })
        })
        .cloned()
        .unwrap_or_default();
    assert_eq!(app["action"], "replace", "{report}");
    assert_eq!(app["order"], "start-first", "{report}");
    assert!(
        failures.is_empty(),
        "{} of {tries} probes failed during the update:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let page = swarm.fetch(0, &cloud).expect("the cloud after the update");
    assert!(page.contains("bonjour"), "{page}");

    // A new copy that never becomes healthy: the swarm puts the previous
    // one back, which serves all along, and deploy exits 1 saying so.
    bundle.write(&swarm, "broken", false);
    let (run, tries, failures) = deploy_probed(&swarm, &bundle, &cloud);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("did not become healthy, so the swarm put the previous version back"),
        "{}",
        run.stderr
    );
    assert!(
        failures.is_empty(),
        "{} of {tries} probes failed during the failed update:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let page = swarm
        .fetch(0, &cloud)
        .expect("the cloud after the rollback");
    assert!(
        page.contains("bonjour"),
        "the previous version serves: {page}"
    );
    eprintln!("swarm rolling update: {tries} probes over the failed update, none failed");
}

#[test]
fn a_lost_worker_moves_its_stateless_service_and_its_pinned_ones_come_back_with_their_data() {
    let (swarm, bundle) = swarm_with_bundle("loss");

    bundle.json(&["deploy", "--format", "json"]);
    let on = placed(&bundle.json(&["status", "--format", "json"]));
    let proxy = on
        .keys()
        .find(|k| k.ends_with("-proxy-proxy"))
        .expect("the proxy runs")
        .clone();
    let (lost, other) = if on[&proxy] == swarm.hostname(1) {
        (1, 2)
    } else {
        (2, 1)
    };
    let pinned_there: Vec<String> = on
        .iter()
        .filter(|(k, v)| **v == swarm.hostname(lost) && **k != proxy)
        .map(|(k, _)| k.clone())
        .collect();
    assert!(
        !pinned_there.is_empty(),
        "a pinned service shares the proxy's node: {on:?}"
    );
    // A mark in every volume of the lost node: its data.
    let volumes = swarm.docker(
        lost,
        &["volume", "ls", "-q", "--filter", "label=voisin.association"],
    );
    assert!(
        !volumes.is_empty(),
        "the pinned services' volumes are on their node"
    );
    mark_volumes(&swarm, lost, &volumes);

    let killed = Instant::now();
    swarm.kill(lost);
    // Through the proxy, now on the other node, to the service pinned
    // there (the board is on node 1, the cloud on node 2).
    let port = if lost == 1 { 8081 } else { 8080 };
    let elsewhere = format!("http://{}:{port}/", swarm.addr(other));
    wait_until(
        Duration::from_mins(1),
        "the proxy serving from the other node",
        || swarm.fetch(0, &elsewhere).map(|_| ()),
    );
    let moved = killed.elapsed();
    let status = bundle.voisin(&["status", "--format", "json"]);
    assert_eq!(
        status.code, 1,
        "status exits 1 while a service is down:\n{}",
        status.stdout
    );
    let status = status.json();
    for name in &pinned_there {
        let s = status["services"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == name.as_str()))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            s["state"], "down",
            "{name} pinned to the lost node: {status}"
        );
        assert_eq!(s["pinned"], swarm.hostname(lost), "{status}");
    }
    let node = status["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node"] == swarm.hostname(lost)))
        .cloned()
        .unwrap_or_default();
    assert_eq!(node["state"], "down", "{status}");

    let booted = Instant::now();
    swarm.start(lost);
    wait_until(
        Duration::from_secs(90),
        "every service running again",
        || {
            let run = bundle.voisin(&["status", "--format", "json"]);
            if run.code == 0 {
                Ok(())
            } else {
                Err(run.stdout)
            }
        },
    );
    let back = booted.elapsed();
    assert_marks_kept(&swarm, lost, &volumes);
    // One copy of each pinned service, on its node: none started twice.
    let on = placed(&bundle.json(&["status", "--format", "json"]));
    for name in &pinned_there {
        assert_eq!(on[name], swarm.hostname(lost), "{on:?}");
    }
    eprintln!(
        "swarm node loss: the proxy served from another node {moved:.1?} after the kill; \
         every service healthy {back:.1?} after the node's boot"
    );
}

/// The container of `service`'s running copy on `node`.
fn task_container(swarm: &Swarm, node: usize, service: &str) -> String {
    swarm.docker(
        node,
        &[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
        ],
    )
}

/// What `sh -c script` prints, run as root in `container` on `node`.
fn sh_in(swarm: &Swarm, node: usize, container: &str, script: &str) -> String {
    swarm.docker(
        node,
        &[
            "exec",
            "-u",
            "0",
            container,
            "/bin/busybox",
            "sh",
            "-c",
            script,
        ],
    )
}

/// Fails if a node has a helper of `kind` (`backup`, `restore`) left.
fn assert_no_helper(swarm: &Swarm, kind: &str) {
    for n in 0..3 {
        let filter = format!("label=voisin.kind={kind}");
        let helpers = swarm.docker(n, &["ps", "-aq", "--filter", &filter]);
        assert_eq!(helpers, "", "node {n} has a {kind} helper left");
    }
}

#[test]
fn a_service_whose_volume_lives_on_a_worker_is_backed_up_and_restored_on_that_worker() {
    let (swarm, bundle) = swarm_with_bundle("backup");
    bundle.json(&["deploy", "--format", "json"]);
    let on = placed(&bundle.json(&["status", "--format", "json"]));
    let db_name = on
        .keys()
        .find(|k| k.ends_with("-cloud-db"))
        .expect("the cloud's database runs")
        .clone();
    let app_name = db_name.replace("-cloud-db", "-cloud-app");
    let node_of = |service: &str| {
        (1..3)
            .find(|&n| on[service] == swarm.hostname(n))
            .expect("on a worker")
    };
    let (node, app_node) = (node_of(&db_name), node_of(&app_name));
    let db = task_container(&swarm, node, &db_name);
    // A mark, and enough data that a restore takes a moment.
    sh_in(
        &swarm,
        node,
        &db,
        "echo kept > /var/lib/db/mark; head -c 30000000 /dev/urandom > /var/lib/db/bulk",
    );

    // Every service backed up where it runs: the board's dump on its node,
    // the cloud's volume and dump on the database's.
    let taken = bundle.json(&["backup", "--format", "json"]);
    let services = taken["services"].as_array().cloned().unwrap_or_default();
    for service in ["board", "cloud"] {
        let s = services
            .iter()
            .find(|s| s["service"] == service)
            .cloned()
            .unwrap_or_default();
        assert_eq!(s["ok"], true, "{service}: {taken}");
    }
    // `after` ran in the app's copy, on its node; no helper is left.
    let app = task_container(&swarm, app_node, &app_name);
    let mark = swarm.docker_output(
        app_node,
        &[
            "exec",
            &app,
            "/bin/busybox",
            "test",
            "-e",
            "/srv/www/backup-running",
        ],
    );
    assert!(!mark.status.success(), "the `after` step cleared the mark");
    assert_no_helper(&swarm, "backup");

    // The data changes; a restore puts the snapshot's back, on its node.
    sh_in(
        &swarm,
        node,
        &db,
        "echo lost > /var/lib/db/mark; echo changed > /var/lib/db/rows; echo stray > /var/lib/db/stray",
    );
    let restored = bundle.json(&["restore", "--yes", "cloud", "--format", "json"]);
    assert_eq!(restored["restored"][0]["service"], "cloud", "{restored}");
    let db_again = task_container(&swarm, node, &db_name);
    assert!(!db_again.is_empty(), "the database runs again on its node");
    assert_ne!(db_again, db, "the database was stopped for the restore");
    assert_eq!(
        sh_in(&swarm, node, &db_again, "cat /var/lib/db/mark"),
        "kept"
    );
    assert_eq!(
        sh_in(&swarm, node, &db_again, "cat /var/lib/db/rows"),
        "first-row"
    );
    assert_eq!(
        sh_in(
            &swarm,
            node,
            &db_again,
            "test -e /var/lib/db/stray && echo there || echo gone"
        ),
        "gone"
    );
    assert_eq!(
        sh_in(&swarm, node, &db_again, "cat /var/lib/db/rows.loaded"),
        "first-row",
        "the dump was loaded into the new copy"
    );
    assert_no_helper(&swarm, "restore");
    settled_after_restore(&bundle);
    a_killed_restore_is_settled_by_the_next_backup(&swarm, &bundle, &db_name);
}

/// A restore killed once it has stopped the database (scaled it to no
/// copies): the next backup starts the database again, then backs it up.
fn a_killed_restore_is_settled_by_the_next_backup(
    swarm: &Swarm,
    bundle: &SwarmBundle,
    db_name: &str,
) {
    let replicas = || {
        swarm.docker(
            0,
            &[
                "service",
                "inspect",
                "--format",
                "{{.Spec.Mode.Replicated.Replicas}}",
                db_name,
            ],
        )
    };
    let mut restore = Command::new(assert_cmd::cargo::cargo_bin("voisin"))
        .args(super::support::bundle_args(
            bundle.dir.path(),
            &["restore", "--yes", "cloud"],
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("voisin starts");
    wait_until(
        Duration::from_mins(1),
        "the restore stopping the database",
        || match replicas().as_str() {
            "0" => Ok(()),
            other => Err(format!("replicas {other}")),
        },
    );
    let _ = restore.kill();
    let _ = restore.wait();
    let run = bundle.voisin(&["backup", "cloud", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("was interrupted"), "{}", run.stderr);
    assert_eq!(replicas(), "1", "the database runs again");
}

/// After a restore of the cloud: its safety snapshot is in the repository,
/// every service serves, and the next deploy has only the new copies'
/// guarded steps to run.
fn settled_after_restore(bundle: &SwarmBundle) {
    // The safety snapshot taken first is there; the service serves again,
    // at one copy, so that a deploy has nothing to change.
    let list = bundle.json(&["backup", "list", "--format", "json"]);
    assert!(
        list["snapshots"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["service"] == "cloud" && s["reason"] == "safety"),
        "{list}"
    );
    let status = bundle.voisin(&["status", "--format", "json"]);
    assert_eq!(status.code, 0, "every service healthy:\n{}", status.stdout);
    let ages = status.json()["backups"]["services"].clone();
    assert!(
        ages.as_array()
            .into_iter()
            .flatten()
            .any(|s| s["service"] == "cloud" && s["last_snapshot_age_seconds"].is_i64()),
        "status shows the cloud's last snapshot: {ages}"
    );
    // The restored copies are new containers: the next deploy runs their
    // after-start steps again (guarded by `unless`), and only that.
    let plan = bundle.json(&["plan", "--format", "json"]);
    let steps = plan["plan"]["steps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        steps
            .iter()
            .all(|s| s["reason"] == "its container was recreated"),
        "{plan}"
    );
    let services = plan["plan"]["services"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(services.iter().all(|s| s["action"] == "keep"), "{plan}");
    bundle.json(&["deploy", "--format", "json"]);
    let plan = bundle.json(&["plan", "--format", "json"]);
    assert_eq!(plan["changes"], false, "{plan}");
}

/// How many copies of each service run, from `status --format json`.
fn copies(status: &serde_json::Value) -> std::collections::BTreeMap<String, usize> {
    status["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let running = s["tasks"]
                .as_array()?
                .iter()
                .filter(|t| t["state"] == "running")
                .count();
            Some((s["name"].as_str()?.to_string(), running))
        })
        .collect()
}

#[test]
fn a_worker_cut_off_for_thirty_seconds_comes_back_with_no_second_copy_and_no_data_lost() {
    let (swarm, bundle) = swarm_with_bundle("cut");
    let image = busybox_image();
    bundle.json(&["deploy", "--format", "json"]);
    let on = placed(&bundle.json(&["status", "--format", "json"]));
    let db = on
        .keys()
        .find(|k| k.ends_with("-cloud-db"))
        .expect("the database runs")
        .clone();
    let cut = if on[&db] == swarm.hostname(1) { 1 } else { 2 };
    let volumes = swarm.docker(
        cut,
        &["volume", "ls", "-q", "--filter", "label=voisin.association"],
    );
    mark_volumes(&swarm, cut, &volumes);

    swarm.cut(cut);
    wait_until(Duration::from_secs(20), "the cut node Down", || {
        status_is(&swarm, cut, "down")
    });
    std::thread::sleep(Duration::from_secs(30));
    swarm.heal(cut);
    let healed = Instant::now();
    wait_until(
        Duration::from_secs(90),
        "every service running once again",
        || {
            let run = bundle.voisin(&["status", "--format", "json"]);
            let counts = copies(&run.json());
            if run.code == 0 && counts.values().all(|n| *n == 1) {
                Ok(())
            } else {
                Err(format!("{counts:?}\n{}", run.stdout))
            }
        },
    );
    let converged = healed.elapsed();
    // The pinned services are where they were, once each, with their data.
    let after = placed(&bundle.json(&["status", "--format", "json"]));
    for (name, node) in &on {
        if *node == swarm.hostname(cut) && !name.ends_with("-proxy-proxy") {
            assert_eq!(&after[name], node, "{after:?}");
        }
    }
    assert_marks_kept(&swarm, cut, &volumes);
    let rows = swarm.docker(
        cut,
        &[
            "run",
            "--rm",
            "-v",
            &format!("{}-data:/d", db.trim_end_matches("-db")),
            image,
            "/bin/busybox",
            "cat",
            "/d/rows",
        ],
    );
    assert_eq!(rows, "first-row");
    // Every service as the manifest says; only an after-start step may
    // run again, in a copy the swarm started anew (its guard skips it).
    let plan = bundle.json(&["plan", "--format", "json"]);
    let services = plan["plan"]["services"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(services.iter().all(|s| s["action"] == "keep"), "{plan}");
    eprintln!("swarm partition: converged {converged:.1?} after the heal");
}
