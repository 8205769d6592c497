#!/usr/bin/env bash
# Benchmark of the lending board's browse page: 5,000 offers, wrk with 200
# connections for 30 s on loopback; prints wrk's latency distribution and
# the server's resident memory (current and peak) from /proc.
#
#   bench/board.sh                 # the figures in docs/benchmarks.md
#   DURATION=10s bench/board.sh    # a quicker run
#
# Needs wrk and curl (Debian: `apt-get install wrk curl`). Traffic stays on
# 127.0.0.1; the server and its database are removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

OFFERS=${OFFERS:-5000}
CONNECTIONS=${CONNECTIONS:-200}
DURATION=${DURATION:-30s}
THREADS=${THREADS:-2}
PORT=${PORT:-18080}
URL="http://127.0.0.1:$PORT"

cargo build --release --locked --quiet
bin=target/release/voisin
work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" board seed --database "$work/board.sqlite" --offers "$OFFERS" \
  --categories books,films,tools,games,services

"$bin" board serve --listen "127.0.0.1:$PORT" --database "$work/board.sqlite" \
  --public-url "$URL" --categories books,films,tools,games,services \
  2>"$work/server.log" &
server=$!
for _ in $(seq 1 50); do curl -fs "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$URL/healthz" >/dev/null

# Sign in as the seeded member like a browser would: CSRF cookie, then form.
jar="$work/cookies"
curl -fs -c "$jar" "$URL/signin" >/dev/null
csrf=$(awk '$6 == "voisin_csrf" { print $7 }' "$jar")
curl -fs -b "$jar" -c "$jar" -o /dev/null \
  --data-urlencode "csrf=$csrf" --data-urlencode login=seed --data-urlencode password=seed \
  "$URL/signin"
session=$(awk '$6 == "voisin_session" { print $7 }' "$jar")
[ -n "$session" ] || { echo "sign-in failed" >&2; exit 1; }
cookie="voisin_session=$session"

# The page under test must list offers, not a sign-in form.
curl -fs -H "Cookie: $cookie" "$URL/offers" | grep -q 'class="card"'

echo "== rss before: $(grep VmRSS /proc/$server/status | awk '{print $2, $3}')"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Cookie: $cookie" "$URL/offers"
echo "== rss after:  $(grep VmRSS /proc/$server/status | awk '{print $2, $3}')"
echo "== rss peak:   $(grep VmHWM /proc/$server/status | awk '{print $2, $3}')"
