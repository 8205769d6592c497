#!/usr/bin/env bash
# Benchmark of `voisin deploy` against docker-compose on the same bundle
# (docs/benchmarks.md): the seven-container test bundle of the deploy tests
# (busybox proxy, mail, cloud database, cache, app and cron, and the real
# lending board), cold and with nothing to change. docker-compose runs the
# compose file that `voisin render --compose` exports for that bundle.
# Needs hyperfine, docker-compose, busybox-static and a Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."
runs_cold=${RUNS_COLD:-5}
runs_noop=${RUNS_NOOP:-30}
cargo build --release --locked -q
voisin=$PWD/target/release/voisin

# The test image, as the tests build it.
if ! docker image inspect voisin-test-busybox:1.0.0 >/dev/null 2>&1; then
  ctx=$(mktemp -d)
  cp /bin/busybox "$ctx/busybox"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nLABEL voisin.test=busybox\n' > "$ctx/Dockerfile"
  docker build -q -t voisin-test-busybox:1.0.0 "$ctx" >/dev/null
  rm -rf "$ctx"
fi

# The exported compose file copies rendered files with a `busybox:1.37.0`
# one-shot service; no registry answers here, so a stand-in is built from
# the same static busybox (with its applets installed).
if ! docker image inspect busybox:1.37.0 >/dev/null 2>&1; then
  ctx=$(mktemp -d)
  cp /bin/busybox "$ctx/busybox"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n' > "$ctx/Dockerfile"
  docker build -q -t busybox:1.37.0 "$ctx" >/dev/null
  rm -rf "$ctx"
fi

work=$(mktemp -d)
cat_dir=$work/catalog
mkdir -p "$cat_dir/catalog" "$cat_dir/templates"
cp catalog/voisin-board.yaml catalog/local.yaml "$cat_dir/catalog/"
cp -r templates/voisin-board "$cat_dir/templates/"
cp tests/catalogs/deploy/catalog/*.yaml "$cat_dir/catalog/"
cp -r tests/catalogs/deploy/templates/* "$cat_dir/templates/"
cat > "$work/voisin.yaml" <<'YAML'
association:
  name: Bench
  domain: bench.localhost
  contact: admin@bench.localhost
members:
  - id: alice
    name: Alice
    mailbox: alice@bench.localhost
    roles: [admin]
  - id: bob
    name: Bob
    contact: bob@example.net
services:
  board:
    use: voisin-board
    host: pret.bench.localhost
  cloud:
    use: busy-cloud
    host: cloud.bench.localhost
  mail:
    use: busy-mail
    host: mail.bench.localhost
proxy:
  use: busy-proxy
YAML
v() { "$voisin" -q --progress never -f "$work/voisin.yaml" --catalog "$cat_dir" "$@"; }
compose() { docker-compose -p voisinbench -f "$work/out/compose.yaml" "$@"; }
cleanup() {
  compose down -v >/dev/null 2>&1 || true
  v down --volumes --yes >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Build the board's image once (both sides then find it), and export.
v deploy
v render --compose --out "$work/out"
v down --volumes --yes

export -f v compose
export voisin work cat_dir
hyperfine --shell bash --runs "$runs_cold" --export-json target/bench-deploy-cold.json \
  --prepare "v down --volumes --yes; compose down -v >/dev/null 2>&1 || true" \
  --command-name 'voisin deploy (cold, 7 containers)' "v deploy" \
  --prepare "v down --volumes --yes; compose down -v >/dev/null 2>&1 || true" \
  --command-name 'docker-compose up -d (cold, same bundle)' "compose up -d >/dev/null 2>&1"
compose down -v >/dev/null 2>&1 || true

v deploy
# The engine's own floor for this bundle's shape (bench/engine-floor.py).
python3 bench/engine-floor.py topology bench.localhost > "$work/topology.json"
writes=$("$voisin" -f "$work/voisin.yaml" --catalog "$cat_dir" deploy --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["engine_calls"]["writes"])')
hyperfine -N --warmup 3 --runs "$runs_noop" --export-json target/bench-deploy-noop.json \
  --command-name 'voisin deploy (nothing to change)' \
  "$voisin -q --progress never -f $work/voisin.yaml --catalog $cat_dir deploy"
v down --volumes --yes
python3 bench/engine-floor.py run "$work/topology.json" "$runs_cold" > target/bench-deploy-floor.json
compose up -d >/dev/null 2>&1
hyperfine --warmup 1 --runs 10 --export-json target/bench-deploy-compose-noop.json \
  --command-name 'docker-compose up -d (nothing to change)' \
  "docker-compose -p voisinbench -f $work/out/compose.yaml up -d"

python3 - "$writes" <<'PY'
import json, sys
cold = {r["command"]: r for r in json.load(open("target/bench-deploy-cold.json"))["results"]}
for name in ("target/bench-deploy-cold.json", "target/bench-deploy-noop.json", "target/bench-deploy-compose-noop.json"):
    for r in json.load(open(name))["results"]:
        print(f'{r["command"]}: median {r["median"]*1000:.0f} ms, mean {r["mean"]*1000:.0f} ms ± {r["stddev"]*1000:.0f}')
v, c = [r["median"] for r in cold.values()]
print(f"cold deploy voisin/compose: {v/c:.2f}")
floor = json.load(open("target/bench-deploy-floor.json"))
print(f'engine floor ({floor["networks"]} networks, {floor["containers"]} containers, {floor["attachments"]} attachments, no health awaited): '
      f'median {floor["median_seconds"]*1000:.0f} ms, min {floor["min_seconds"]*1000:.0f} ms; floor/compose: {floor["median_seconds"]/c:.2f}')
print(f"mutating engine calls of a deploy with nothing to change: {sys.argv[1]}")
PY
