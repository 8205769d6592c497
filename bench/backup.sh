#!/usr/bin/env bash
# Benchmark of `voisin backup` and `voisin restore` against restic on the
# same ~1 GB tree (docs/benchmarks.md): 3,000 mail-sized text files and
# 40 × 20 MB random files. voisin streams the tree out of a Docker volume
# through the engine's API; restic reads the same tree from disk. Both
# write a local repository on the same disk.
# Needs hyperfine, restic, curl, busybox-static, GNU time and a Docker engine;
# runs as root (it writes into the volume's folder on this machine).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
cargo build --release --locked -q
voisin=$PWD/target/release/voisin

if ! docker image inspect voisin-test-busybox:1.0.0 >/dev/null 2>&1; then
  ctx=$(mktemp -d)
  cp /bin/busybox "$ctx/busybox"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nLABEL voisin.test=busybox\n' > "$ctx/Dockerfile"
  docker build -q -t voisin-test-busybox:1.0.0 "$ctx" >/dev/null
  rm -rf "$ctx"
fi

work=$(mktemp -d /var/tmp/voisin-bench-backup.XXXX)
trap '"$voisin" -f "$work/voisin.yaml" --catalog "$work/catalog" down --volumes --yes >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
mkdir -p "$work/catalog/catalog"
cp bench/backup/bench-files.yaml "$work/catalog/catalog/"
cp catalog/local.yaml "$work/catalog/catalog/"
cat > "$work/voisin.yaml" <<YAML
association:
  name: Bench backup
  domain: benchbk.localhost
  contact: admin@benchbk.localhost
members:
  - id: alice
    name: Alice
    contact: alice@example.net
    roles: [admin]
services:
  cloud:
    use: bench-files
proxy:
  use: local
  settings:
    port: 18990
backup:
  repository: $work/voisin-repo
  password_file: $work/password
  keep: { last: 100 }
YAML
echo "bench password" > "$work/password"
chmod 600 "$work/password"
export RESTIC_PASSWORD="bench password"
v() { "$voisin" -f "$work/voisin.yaml" --catalog "$work/catalog" --progress never "$@"; }

v deploy >/dev/null
vol=$(docker volume inspect -f '{{.Mountpoint}}' benchbk-cloud-files)

# The tree, once in the volume and once on disk for restic.
python3 - "$vol" <<'PY'
import os, sys
root = sys.argv[1]
mail = os.path.join(root, "mail")
for i in range(3000):
    d = os.path.join(mail, f"box{i % 30}", "cur")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"{i}.eml"), "w") as f:
        f.write((f"Subject: message {i}\n\n" + "Bonjour, voici le compte rendu de la reunion.\n" * 80))
big = os.path.join(root, "files")
os.makedirs(big, exist_ok=True)
for i in range(40):
    with open(os.path.join(big, f"photo-{i}.bin"), "wb") as f:
        f.write(os.urandom(20 << 20))
PY
cp -a "$vol" "$work/tree"
du -sh "$work/tree"

echo "== first backup"
hyperfine --runs "$runs" --export-markdown "$work/first.md" \
  --prepare "rm -rf $work/voisin-repo $work/restic-repo; restic init -q -r $work/restic-repo >/dev/null" \
  -n "voisin backup (through the engine)" "$voisin -f $work/voisin.yaml --catalog $work/catalog --progress never backup" \
  -n "restic backup (from disk)" "restic -q -r $work/restic-repo backup $work/tree"

echo "== unchanged re-backup"
hyperfine --runs $((runs * 3)) --warmup 1 --export-markdown "$work/again.md" \
  -n "voisin backup (through the engine)" "$voisin -f $work/voisin.yaml --catalog $work/catalog --progress never backup" \
  -n "restic backup (from disk)" "restic -q -r $work/restic-repo backup $work/tree"

echo "== restore"
hyperfine --runs "$runs" --export-markdown "$work/restore.md" \
  --prepare "rm -rf $work/restic-out" \
  -n "voisin restore (into the volume)" "$voisin -f $work/voisin.yaml --catalog $work/catalog --progress never restore --yes cloud" \
  -n "restic restore (to disk)" "restic -q -r $work/restic-repo restore latest --target $work/restic-out"

echo "== peak memory (maximum resident set, kB)"
rm -rf "$work/voisin-repo"
/usr/bin/time -f "voisin first backup: %M kB" "$voisin" -f "$work/voisin.yaml" --catalog "$work/catalog" --progress never backup >/dev/null
/usr/bin/time -f "voisin restore: %M kB" "$voisin" -f "$work/voisin.yaml" --catalog "$work/catalog" --progress never restore --yes >/dev/null
rm -rf "$work/restic-repo" && restic init -q -r "$work/restic-repo" >/dev/null
/usr/bin/time -f "restic first backup: %M kB" restic -q -r "$work/restic-repo" backup "$work/tree" >/dev/null

# The engine's floor: restic itself, given the route voisin must take. It
# backs up the volume's tar as the engine sends it (`--stdin`), and restores
# by sending its `dump` of the snapshot into the volume through the engine:
# restic's own work (the same chunking, hashing, compression and encryption
# into the same format) plus the engine's, each byte read and written once.
echo "== the engine's floor"
floor=$work/floor
docker create --name voisin-bench-floor -v benchbk-cloud-files:/data voisin-test-busybox:1.0.0 /bin/busybox true >/dev/null
trap 'docker rm -f voisin-bench-floor >/dev/null 2>&1; "$voisin" -f "$work/voisin.yaml" --catalog "$work/catalog" down --volumes --yes >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
engine=(--unix-socket /var/run/docker.sock)
archive="http://localhost/containers/voisin-bench-floor/archive?path=/data"
hyperfine --runs "$runs" --export-markdown "$work/floor.md" \
  --prepare "rm -rf $floor-repo; restic init -q -r $floor-repo >/dev/null" \
  -n "restic backup (from disk)" "restic -q -r $floor-repo backup $work/tree" \
  --prepare "rm -rf $floor-repo; restic init -q -r $floor-repo >/dev/null" \
  -n "restic backup of the volume through the engine" \
  "curl -sf ${engine[*]} '$archive' | restic -q -r $floor-repo backup --stdin --stdin-filename volume.tar" \
  --prepare "rm -rf $work/restic-out" \
  -n "restic restore (to disk)" "restic -q -r $work/restic-repo restore latest --target $work/restic-out" \
  --prepare "true" \
  -n "restic restore into the volume through the engine" \
  "restic -q -r $work/restic-repo dump latest $work/tree | curl -sf ${engine[*]} -X PUT -T - -H 'Content-Type: application/x-tar' '$archive' >/dev/null"

cat "$work/first.md" "$work/again.md" "$work/restore.md" "$work/floor.md"
