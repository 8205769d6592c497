#!/usr/bin/env bash
# A Docker Swarm of several engines on this one machine, for the swarm tests
# (issue 13) and by hand: each node is its own `dockerd` (and the containerd
# it starts) with its own data root, in its own network namespace with its
# own address, hostname, mount namespace and cgroup. Must run as root.
#
# Usage: tests/support/swarm.sh COMMAND NAME [ARGS]
#   up NAME [NODES]      NODES engines (default 3), node 0 the manager, the
#                        others workers; waits until `docker node ls` shows
#                        them all Ready. Run again, it starts what is missing
#   down NAME            stops every engine and removes everything `up` made
#   kill NAME NODE       SIGKILLs everything of the node at once (engine,
#                        containerd, shims, containers): a machine lost
#   start NAME NODE      boots a killed node again (it rejoins by itself)
#   cut NAME NODE        sets the node's link down, in its namespace
#   heal NAME NODE       sets it up again
#   load NAME IMAGE...   `docker save` from this machine's engine, then
#                        `docker load` into every running node
#   env NAME NODE        prints DOCKER_HOST=unix:///…/docker.sock for the node
#   addr NAME NODE       prints the node's address (what swarm advertises)
#   ls                   prints the NAME of every swarm found on the machine
#                        (namespaces, cgroups or state left by a crash)
#
# NAME ([a-z0-9-], at most 20 characters) must be unique on the machine:
# network namespaces and cgroups are named after it. State (data roots,
# sockets, logs) goes to $VOISIN_SWARM_DIR/NAME (default /tmp/voisin-swarm).
# VOISIN_SWARM_HEARTBEAT (default 1s) is the dispatcher heartbeat given to
# `swarm init`: a node is marked down after about three missed beats.
# With VOISIN_SWARM_OWNER=PID, `up` also leaves a watcher that runs `down`
# once that process is gone: a test killed before its clean-up leaves no
# engines running.
#
# Layout, and why:
# - A "switch" namespace vs-NAME-sw holds a bridge; node I is namespace
#   vs-NAME-I, linked to the bridge by a veth pair (eth0 inside the node).
#   Nothing is added to the machine's own namespace: no bridge that Docker's
#   FORWARD policy (DROP) or br_netfilter would filter, no iptables rule.
#   The nodes have no default route, so no packet leaves the switch.
# - Addresses are 198.18.0.10+I/24 (RFC 2544's benchmarking range): outside
#   Docker's local pools (172.17-31/16, 192.168/16) and swarm's overlay pool
#   (10/8), so a node's address never clashes with what its engine makes.
#   Every swarm has the same subnet: their switches are not connected.
# - The engine runs in a mount namespace of its own (slave of the
#   machine's), with a fresh /sys for its network namespace, the cgroup
#   tree bound back, and a tmpfs on /run: its exec root, containerd and its
#   shims' sockets, iptables' lock live there and vanish with the node.
#   Its overlay mounts never show on the machine. Being killed is a reboot.
# - The engine and its containers share the cgroup voisin-swarm/NAME/I
#   (engine in .../engine, containers under .../ctr): `kill` freezes that
#   tree and SIGKILLs every process in it, so nothing survives or escapes.
# - Its own daemon.json, so /etc/docker/daemon.json (data root, storage
#   driver of the machine's engine) is not read; its own key.json.
# - Storage driver overlay2 on the state directory's file system (override
#   with VOISIN_SWARM_STORAGE_DRIVER): it starts and loads images fastest.
# - iptables stays on: each node's rules are in its own namespace.
set -euo pipefail

say() { printf 'swarm.sh: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 2
}

usage() {
  sed -n '/^# Usage:/,/^# NAME/p' "$0" | sed 's/^# \{0,1\}//' | head -n -1 >&2
  exit 2
}

base="${VOISIN_SWARM_DIR:-/tmp/voisin-swarm}"
# Engines and the watcher run this script again, from wherever.
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

# Every swarm on the machine, whatever is left of it.
list() {
  {
    ip netns list 2>/dev/null | awk '{print $1}' | sed -n 's/^vs-\(.*\)-sw$/\1/p'
    find /sys/fs/cgroup/*/voisin-swarm -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null || true
    [ ! -d "$base" ] || ls "$base"
  } | { grep -E '^[a-z0-9][a-z0-9-]{0,19}$' || true; } | sort -u
}

[ "${1:-}" != ls ] || {
  list
  exit 0
}
[ $# -ge 2 ] || usage
cmd="$1"
name="$2"
shift 2
[[ "$name" =~ ^[a-z0-9][a-z0-9-]{0,19}$ ]] || die "NAME must be [a-z0-9-], at most 20 characters: \`$name\`"

dir="$base/$name"
heartbeat="${VOISIN_SWARM_HEARTBEAT:-1s}"
driver="${VOISIN_SWARM_STORAGE_DRIVER:-overlay2}"
switch="vs-$name-sw"
cgroup_rel="voisin-swarm/$name"

ns_of() { printf 'vs-%s-%s' "$name" "$1"; }
addr_of() { printf '198.18.0.%s' "$((10 + $1))"; }
sock_of() { printf '%s/%s/docker.sock' "$dir" "$1"; }
dockr() {
  local node="$1"
  shift
  docker -H "unix://$(sock_of "$node")" "$@"
}

prerequisites() {
  [ "$(id -u)" -eq 0 ] || die "must run as root: it makes network namespaces and starts engines"
  local pair tool pkg
  for pair in "ip iproute2" "nsenter util-linux" "unshare util-linux" \
    "dockerd docker.io" "containerd containerd" "runc runc" "docker docker.io"; do
    read -r tool pkg <<<"$pair"
    command -v "$tool" >/dev/null 2>&1 || die "\`$tool\` is missing: apt-get install $pkg"
  done
  [ -n "$(cgroup_mounts)" ] || die "no cgroup file system under /sys/fs/cgroup"
}

# The cgroup hierarchies mounted on this machine, one mount point a line.
cgroup_mounts() {
  awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts | grep '^/sys/fs/cgroup'
}

# Every process of node $1 (engine, containerd, shims, containers): the
# cgroup.procs of its subtree, in every hierarchy.
node_pids() {
  local mnt
  for mnt in $(cgroup_mounts); do
    [ ! -d "$mnt/$cgroup_rel/$1" ] ||
      find "$mnt/$cgroup_rel/$1" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  done | sort -un
}

alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

engine_answers() { dockr "$1" version >/dev/null 2>&1; }

wait_for() { # SECONDS WHAT COMMAND...: polls every 0.2 s
  local seconds="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what: not after ${seconds}s"
    sleep 0.2
  done
}

# The switch and node $1's namespace and link; whatever exists is kept.
plug() {
  local node="$1" ns
  ns="$(ns_of "$node")"
  if [ ! -e "/run/netns/$switch" ]; then
    ip netns add "$switch"
    ip -n "$switch" link add br0 type bridge
    ip -n "$switch" link set br0 up
  fi
  if [ ! -e "/run/netns/$ns" ]; then
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  fi
  if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
    ip -n "$switch" link del "n$node" 2>/dev/null || true
    ip -n "$switch" link add "n$node" type veth peer name eth0 netns "$ns"
    ip -n "$switch" link set "n$node" master br0 up
    ip -n "$ns" addr add "$(addr_of "$node")/24" dev eth0
    ip -n "$ns" link set eth0 up
  fi
}

# Boots node $1's engine in the background and waits until it answers.
boot() {
  local node="$1" ns state
  ns="$(ns_of "$node")"
  state="$dir/$node"
  if engine_answers "$node"; then return; fi
  mkdir -p "$state/data"
  cat >"$state/daemon.json" <<JSON
{
  "data-root": "$state/data",
  "exec-root": "/run/docker",
  "pidfile": "$state/dockerd.pid",
  "hosts": ["unix://$(sock_of "$node")"],
  "storage-driver": "$driver",
  "cgroup-parent": "/$cgroup_rel/$node/ctr",
  "deprecated-key-path": "$state/key.json",
  "log-level": "info"
}
JSON
  printf -- '--- boot %s\n' "$(date -u +%FT%TZ)" >>"$state/dockerd.log"
  # setsid and no inherited descriptors: the engine must outlive this
  # script, and a caller waiting on our output must not wait for it.
  setsid nsenter --net="/run/netns/$ns" -- \
    unshare --mount --uts --propagation slave -- \
    "$self" __engine "$name" "$node" </dev/null >>"$state/dockerd.log" 2>&1 &
  # Each of setsid, nsenter, unshare and the script execs the next: this
  # pid becomes the engine's.
  local launched=$! deadline=$((SECONDS + 60))
  until engine_answers "$node"; do
    if [ "$SECONDS" -ge "$deadline" ] || ! alive "$launched"; then
      tail -n 20 "$state/dockerd.log" >&2
      die "node $node's engine did not start: see $state/dockerd.log"
    fi
    sleep 0.2
  done
}

# Inside the node's new namespaces (see boot): makes the machine the
# engine should see, then becomes the engine.
engine() {
  local node="$1"
  hostname "$name-$node"
  mount -t tmpfs -o mode=0755 tmpfs /run
  # /sys must describe this network namespace (the engine reads its
  # interfaces there), but a new sysfs hides the cgroup tree: keep it aside
  # and bind it back.
  mkdir /run/cgroup
  mount --rbind /sys/fs/cgroup /run/cgroup
  mount -t sysfs sysfs /sys
  mount --rbind /run/cgroup /sys/fs/cgroup
  umount -l /run/cgroup
  rmdir /run/cgroup
  local mnt
  for mnt in $(cgroup_mounts); do
    # A new cpuset group has no cpus and refuses tasks: the engine stays
    # out of it (runc fills in the containers' own).
    [ ! -e "$mnt/cpuset.cpus" ] || continue
    mkdir -p "$mnt/$cgroup_rel/$node/engine"
    echo $$ >"$mnt/$cgroup_rel/$node/engine/cgroup.procs"
  done
  exec dockerd --config-file "$dir/$node/daemon.json"
}

# SIGKILLs every process of node $1 at once. With cgroup v1 the tree is
# frozen first, so that none forks or restarts another meanwhile, then
# thawed for the signals to land; a pure cgroup v2 has cgroup.kill. The
# v1 freezer wins on a hybrid machine: containers may not be in the
# unified tree there.
kill_node() {
  local node="$1" group="" how="" mnt pid
  for mnt in $(cgroup_mounts); do
    [ -d "$mnt/$cgroup_rel/$node" ] || continue
    if [ -e "$mnt/$cgroup_rel/$node/freezer.state" ]; then
      group="$mnt/$cgroup_rel/$node" how=freezer
    elif [ -z "$how" ] && [ -e "$mnt/$cgroup_rel/$node/cgroup.kill" ] && [ "$mnt" = /sys/fs/cgroup ]; then
      group="$mnt/$cgroup_rel/$node" how=kill
    fi
  done
  case "$how" in
    kill) echo 1 >"$group/cgroup.kill" ;;
    freezer)
      echo FROZEN >"$group/freezer.state"
      local tries=0
      until [ "$(cat "$group/freezer.state")" = FROZEN ] || [ $tries -ge 50 ]; do
        sleep 0.1
        tries=$((tries + 1))
      done
      for pid in $(node_pids "$node"); do kill -KILL "$pid" 2>/dev/null || true; done
      echo THAWED >"$group/freezer.state"
      ;;
  esac
  local deadline=$((SECONDS + 20))
  while [ -n "$(node_pids "$node")" ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "node $node: processes left after SIGKILL: $(node_pids "$node" | tr '\n' ' ')"
    for pid in $(node_pids "$node"); do kill -KILL "$pid" 2>/dev/null || true; done
    sleep 0.1
  done
}

nodes_of() {
  if [ -f "$dir/nodes" ]; then cat "$dir/nodes"; else
    # Its state lost (a crash, another VOISIN_SWARM_DIR): as many nodes as
    # namespaces or cgroups remain.
    {
      ip netns list 2>/dev/null | awk '{print $1}' | sed -n "s/^vs-$name-\([0-9]\+\)$/\1/p"
      find /sys/fs/cgroup/*/voisin-swarm/"$name" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null || true
    } | { grep -E '^[0-9]+$' || true; } | sort -n | tail -n 1 | awk '{print $1 + 1}'
  fi
}

check_node() {
  local n
  n="$(nodes_of)"
  [[ "${1:-}" =~ ^[0-9]+$ ]] || die "NODE must be a number"
  [ -n "$n" ] && [ "$1" -lt "$n" ] || die "swarm \`$name\` has no node $1 (is it up?)"
}

all_ready() {
  local want="$1" ready
  ready="$(dockr 0 node ls --format '{{.Status}}' 2>/dev/null | grep -c '^Ready$' || true)"
  [ "$ready" -eq "$want" ]
}

up() {
  local nodes="${1:-3}" started=$SECONDS
  [[ "$nodes" =~ ^[1-9]$ ]] || die "NODES must be 1 to 9"
  if [ -f "$dir/nodes" ] && [ "$(cat "$dir/nodes")" != "$nodes" ]; then
    die "swarm \`$name\` is up with $(cat "$dir/nodes") nodes: \`down\` it first"
  fi
  mkdir -p "$dir"
  echo "$nodes" >"$dir/nodes"
  # A failed `up` leaves nothing behind (VOISIN_SWARM_KEEP=1 keeps it to
  # look at). Subshells do not inherit the trap.
  trap 'rc=$?; [ $rc -eq 0 ] || [ "${VOISIN_SWARM_KEEP:-}" = 1 ] || down; exit $rc' EXIT
  local node
  for ((node = 0; node < nodes; node++)); do plug "$node"; done
  # Engines boot side by side: most of `up` is their start.
  local pids=()
  for ((node = 0; node < nodes; node++)); do
    boot "$node" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  if [ "$(dockr 0 info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
    dockr 0 swarm init --advertise-addr "$(addr_of 0)" --listen-addr "$(addr_of 0):2377" \
      --dispatcher-heartbeat "$heartbeat" >/dev/null
  fi
  local token
  token="$(dockr 0 swarm join-token -q worker)"
  pids=()
  for ((node = 1; node < nodes; node++)); do
    if [ "$(dockr "$node" info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
      dockr "$node" swarm join --token "$token" --advertise-addr "$(addr_of "$node")" \
        --listen-addr "$(addr_of "$node"):2377" "$(addr_of 0):2377" >/dev/null &
      pids+=($!)
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  wait_for 60 "all $nodes nodes Ready" all_ready "$nodes"
  if [ -n "${VOISIN_SWARM_OWNER:-}" ] && [ ! -f "$dir/watcher.pid" ]; then
    local owner="$VOISIN_SWARM_OWNER"
    # Detached and with no inherited descriptors, like the engines.
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" down "$3"' \
      watcher "$owner" "$self" "$name" </dev/null >>"$dir/watcher.log" 2>&1 &
    echo $! >"$dir/watcher.pid"
  fi
  trap - EXIT
  say "swarm \`$name\` up: $nodes nodes in $((SECONDS - started))s, manager $(sock_of 0)"
}

down() {
  trap - EXIT
  local nodes node mnt
  # The watcher, unless it is the one taking the swarm down.
  local watcher
  watcher="$(cat "$dir/watcher.pid" 2>/dev/null || true)"
  if [ -n "$watcher" ] && [ "$watcher" != $$ ]; then kill "$watcher" 2>/dev/null || true; fi
  nodes="$(nodes_of)"
  for ((node = 0; node < ${nodes:-0}; node++)); do kill_node "$node"; done
  for ((node = 0; node < ${nodes:-0}; node++)); do
    ip netns del "$(ns_of "$node")" 2>/dev/null || true
  done
  ip netns del "$switch" 2>/dev/null || true
  # Deepest first: a cgroup goes only once it has no children.
  for mnt in $(cgroup_mounts); do
    if [ -d "$mnt/$cgroup_rel" ]; then
      find "$mnt/$cgroup_rel" -depth -type d -exec rmdir {} + 2>/dev/null || true
      rmdir "$mnt/voisin-swarm" 2>/dev/null || true # another swarm may still use it
    fi
  done
  # The engines' mounts were in their own namespaces; this is for an engine
  # started some other way.
  if [ -d "$dir" ]; then
    awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
      while read -r m; do umount -l "$m" || true; done
    rm -rf "$dir"
  fi
}

load() {
  [ $# -ge 1 ] || die "load needs at least one image"
  local nodes node tar started=$SECONDS
  nodes="$(nodes_of)"
  [ -n "$nodes" ] || die "swarm \`$name\` is not up"
  mkdir -p "$dir"
  tar="$(mktemp "$dir/images.XXXXXX.tar")"
  # This machine's engine: whatever `docker` reaches without our -H.
  docker save "$@" >"$tar" || {
    rm -f "$tar"
    die "docker save $* failed: are the images built on this machine's engine?"
  }
  local pids=()
  for ((node = 0; node < nodes; node++)); do
    if engine_answers "$node"; then
      dockr "$node" load -q -i "$tar" >/dev/null &
      pids+=($!)
    fi
  done
  local failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  rm -f "$tar"
  [ "$failed" -eq 0 ] || die "loading $* into a node failed"
  say "loaded $* into ${#pids[@]} nodes in $((SECONDS - started))s"
}

case "$cmd" in
  __engine) engine "$1" ;;
  up)
    prerequisites
    up "$@"
    ;;
  down)
    prerequisites
    down
    ;;
  kill)
    check_node "${1:-}"
    kill_node "$1"
    ;;
  start)
    prerequisites
    check_node "${1:-}"
    plug "$1"
    boot "$1"
    ;;
  cut)
    check_node "${1:-}"
    ip -n "$(ns_of "$1")" link set eth0 down
    ;;
  heal)
    check_node "${1:-}"
    ip -n "$(ns_of "$1")" link set eth0 up
    ;;
  load) load "$@" ;;
  env)
    check_node "${1:-}"
    echo "DOCKER_HOST=unix://$(sock_of "$1")"
    ;;
  addr)
    check_node "${1:-}"
    addr_of "$1"
    echo
    ;;
  *) usage ;;
esac
