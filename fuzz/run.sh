#!/usr/bin/env bash
# Fuzzes `voisin check` (parser, shape and meaning checks) for SECONDS
# (default 300), starting from the examples and the test corpus.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable toolchain
# RUSTC_BOOTSTRAP=1 lets it use the sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-300}
mkdir -p corpus/check_manifest
RUSTC_BOOTSTRAP=1 cargo fuzz run -O check_manifest \
  corpus/check_manifest ../examples ../tests/manifests/invalid ../tests/manifests/valid -- \
  -dict=manifest.dict -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=2048 -timeout=10
