#!/usr/bin/env bash
# Benchmark of `voisin check` against its peer, `docker-compose config -q`,
# on the same bundle (docs/benchmarks.md), and of `check` on the quickstart
# example and of `voisin --version` (the start-up alone). Needs hyperfine
# and docker-compose.
#
#   bench/check.sh                          # the figures in docs/benchmarks.md
#   BIN=/tmp/voisin-before bench/check.sh   # another build, for a before/after
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${BIN:-}" ]; then
  bin=$BIN
else
  cargo build --release --locked -q
  bin=./target/release/voisin
fi
hyperfine --warmup 20 --runs 200 -N --export-json target/bench-check.json \
  --command-name 'voisin check (full example)' \
  "$bin check -q examples/full-association.yaml" \
  --command-name 'voisin check (quickstart example)' \
  "$bin check -q examples/quickstart.yaml" \
  --command-name 'voisin --version' \
  "$bin --version" \
  --command-name 'docker-compose config -q (same bundle)' \
  'docker-compose -f bench/full-association.compose.yaml config -q'
python3 - <<'PY'
import json
for r in json.load(open("target/bench-check.json"))["results"]:
    print(f'{r["command"]}: median {r["median"]*1000:.2f} ms, mean {r["mean"]*1000:.2f} ms ± {r["stddev"]*1000:.2f}, min {r["min"]*1000:.2f} ms')
PY
