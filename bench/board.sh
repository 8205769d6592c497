#!/usr/bin/env bash
# Benchmark of the lending board: 5,000 offers, then wrk with 200
# connections for 30 s on each of the front page, the offer list, an offer
# page, a word search and a photo (loopback, signed in). Prints each run's
# requests per second and latency percentiles, the server's resident
# memory after each run, and its peak (VmHWM) over all of them; then 200
# connections fetch a 5 MB photo for the memory figure alone.
#
#   bench/board.sh                 # the figures in docs/benchmarks.md
#   DURATION=10s bench/board.sh    # a quicker run
#   BIN=/tmp/voisin-before bench/board.sh   # another build, for a before/after
#
# Then the machine's floor: nginx serving the same photo from disk with
# sendfile (the best a server does here), under the same load.
#
# Needs wrk, curl and nginx (Debian: `apt-get install wrk curl nginx-light`).
# Traffic stays on 127.0.0.1; the servers and the database are removed at
# the end.
set -euo pipefail
cd "$(dirname "$0")/.."

OFFERS=${OFFERS:-5000}
CONNECTIONS=${CONNECTIONS:-200}
DURATION=${DURATION:-30s}
THREADS=${THREADS:-2}
PORT=${PORT:-18080}
PHOTO_KB=${PHOTO_KB:-150}
URL="http://127.0.0.1:$PORT"

if [ -n "${BIN:-}" ]; then
  bin=$BIN
else
  cargo build --release --locked --quiet
  bin=target/release/voisin
fi
work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  if [ -f "$work/nginx.pid" ]; then nginx -c "$work/nginx.conf" -s stop 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" board seed --database "$work/board.sqlite" --offers "$OFFERS" \
  --categories books,films,tools,games,services

# wrk is one client with 200 connections: let it hold them all.
"$bin" board serve --listen "127.0.0.1:$PORT" --database "$work/board.sqlite" \
  --public-url "$URL" --categories books,films,tools,games,services \
  --photo-max-size "6 MB" --max-connections-per-client 1000 \
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
csrf=$(awk '$6 == "voisin_csrf" { print $7 }' "$jar")
[ -n "$session" ] || { echo "sign-in failed" >&2; exit 1; }
cookie="voisin_session=$session"

# Publishes an offer with a photo of $1 KB of random bytes behind a PNG
# signature, through the real form (token first); prints its id.
publish() {
  { printf '\x89PNG\r\n\x1a\n'; head -c "$(($1 * 1024))" /dev/urandom; } >"$work/photo.png"
  curl -fs -b "$jar" -o /dev/null -w '%{redirect_url}' \
    -F "csrf=$csrf" -F kind=item -F category=tools -F "title=Perceuse $1 KB" \
    -F "photo=@$work/photo.png;type=image/png" "$URL/offers" |
    sed -E 's|.*/offers/([0-9]+).*|\1|'
}
offer=$(publish "$PHOTO_KB")
[ -n "$offer" ] || { echo "publishing the photo offer failed" >&2; exit 1; }

# Each page under test must be the real page, not a sign-in form. (Read
# whole before grep: `curl | grep -q` fails curl when grep stops early.)
shows() {
  curl -fs -H "Cookie: $cookie" -o "$work/page" "$URL$1"
  grep -q "$2" "$work/page" || { echo "GET $1 does not show $2" >&2; exit 1; }
}
shows / 'class="card"'
shows /offers 'class="card"'
shows "/offers/$offer" 'Perceuse'
shows "/offers?q=perceuse" 'class="card"'
curl -fs -H "Cookie: $cookie" -o /dev/null "$URL/photos/$offer"

rss() { awk -v k="$1:" '$1 == k { printf "%.1f MB", $2 / 1024 }' "/proc/$server/status"; }
echo "== load: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min), $(nproc) cores"
echo "== rss at start: $(rss VmRSS)"
run() {
  local name=$1 path=$2
  echo "== $name: GET $path"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Cookie: $cookie" "$URL$path" |
    grep -E 'Requests/sec|Non-2xx|Socket errors|^ +(50|75|90|99)%|Latency '
  echo "   rss after: $(rss VmRSS), peak so far: $(rss VmHWM), load: $(cut -d' ' -f1 /proc/loadavg)"
}
run "front page" "/"
run "offer list" "/offers"
run "offer page" "/offers/$offer"
run "search" "/offers?q=perceuse"
run "photo (${PHOTO_KB} KB)" "/photos/$offer"
echo "== peak rss over the five runs: $(rss VmHWM)"

# The machine's floor for 200 connections: nginx serving the very same
# photo from the page cache with sendfile, two workers, no log.
PEER_PORT=${PEER_PORT:-18081}
chmod 755 "$work"
mkdir -m 755 "$work/www"
curl -fs -H "Cookie: $cookie" -o "$work/www/photo" "$URL/photos/$offer"
chmod 644 "$work/www/photo"
cat >"$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  server { listen 127.0.0.1:$PEER_PORT; root $work/www; }
}
NGINX
nginx -c "$work/nginx.conf"
for _ in $(seq 1 50); do curl -fs -o /dev/null "http://127.0.0.1:$PEER_PORT/photo" && break; sleep 0.1; done
echo "== floor: nginx, the same photo (${PHOTO_KB} KB) from disk: GET /photo"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PEER_PORT/photo" |
  grep -E 'Requests/sec|Non-2xx|Socket errors|^ +(50|75|90|99)%|Latency '
nginx -c "$work/nginx.conf" -s stop

# wrk counts answers slower than 2 s as timeouts: 200 clients sharing some
# 400 MB/s take 2.5 s each for 5 MB, so this run is read for its memory and
# its throughput, not its latency.
big=$(publish 5120)
run "photo (5 MB), for memory" "/photos/$big"
echo "== peak rss over all runs: $(rss VmHWM)"
