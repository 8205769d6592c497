#!/usr/bin/env bash
# Benchmark of `voisin render` on the full example (secrets already
# generated, as on every run after the first), against docker-compose
# resolving the equivalent compose file (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp examples/full-association.yaml "$work/voisin.yaml"
./target/release/voisin -f "$work/voisin.yaml" render -q --compose --out "$work/out"
hyperfine --warmup 20 --runs 200 -N --export-json target/bench-render.json \
  --command-name 'voisin render (full example)' \
  "./target/release/voisin -f $work/voisin.yaml render -q --out $work/out" \
  --command-name 'voisin render --compose (full example)' \
  "./target/release/voisin -f $work/voisin.yaml render -q --compose --out $work/out" \
  --command-name 'docker-compose config (the same bundle, exported)' \
  "docker-compose -f $work/out/compose.yaml config"
python3 - <<'PY'
import json
for r in json.load(open("target/bench-render.json"))["results"]:
    print(f'{r["command"]}: median {r["median"]*1000:.2f} ms, mean {r["mean"]*1000:.2f} ms ± {r["stddev"]*1000:.2f}')
PY
