#!/usr/bin/env bash
# Benchmark of `voisin check` against its peer, `docker-compose config -q`,
# on the same bundle (docs/benchmarks.md). Needs hyperfine and docker-compose.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
hyperfine --warmup 20 --runs 200 -N --export-json target/bench-check.json \
  --command-name 'voisin check (full example)' \
  './target/release/voisin check -q examples/full-association.yaml' \
  --command-name 'docker-compose config -q (same bundle)' \
  'docker-compose -f bench/full-association.compose.yaml config -q'
python3 - <<'PY'
import json
for r in json.load(open("target/bench-check.json"))["results"]:
    print(f'{r["command"]}: median {r["median"]*1000:.2f} ms, mean {r["mean"]*1000:.2f} ms ± {r["stddev"]*1000:.2f}')
PY
