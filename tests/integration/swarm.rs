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
