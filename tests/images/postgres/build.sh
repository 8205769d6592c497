#!/usr/bin/env bash
# Builds `voisin-test-postgres:17.0`, a PostgreSQL server image that behaves
# like the official `postgres` image where voisin's catalog relies on it,
# from Debian's packages: no registry needed. `mmdebstrap` makes the root
# file system of Debian stable with `postgresql` and streams it as a tar
# into `docker import`.
#
# Cached: the image carries a label with the hash of this script and the
# entrypoint; when the engine has the image with that label, this returns
# at once. A changed script or entrypoint builds again.
#
# Usage: tests/images/postgres/build.sh   (prints the image's name)
# Needs: mmdebstrap (scripts/test installs it), Debian's package mirror,
# root (or mmdebstrap's unshare mode: uidmap and user namespaces).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# Debian 13's PostgreSQL. The tag has a minor number because the catalog
# lint wants `MAJOR.MINOR` for postgres; the `.0` is ours, the real release
# is in the label `org.postgresql.version`.
suite=trixie
major=17
image="voisin-test-postgres:$major.0"
mirror="${VOISIN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

inputs="sha256:$(cat "$here/build.sh" "$here/entrypoint.sh" | sha256sum | cut -d' ' -f1)"
have() {
  docker image inspect -f '{{ index .Config.Labels "voisin.test.inputs" }}' "$image" 2>/dev/null || true
}
if [ "$(have)" = "$inputs" ]; then
  echo "$image"
  exit 0
fi

# One build at a time on this machine: test processes and benchmarks may
# ask together.
exec 9>"${TMPDIR:-/tmp}/voisin-test-postgres.lock"
flock 9
if [ "$(have)" = "$inputs" ]; then
  echo "$image"
  exit 0
fi

say() { printf 'tests/images/postgres/build.sh: %s\n' "$*" >&2; }
command -v mmdebstrap >/dev/null || {
  say "needs mmdebstrap: \`apt-get install mmdebstrap\` (scripts/test does)"
  exit 2
}

# Nothing the server reads: documentation, manuals, translations, locale
# sources (C.UTF-8 is built into the C library), and LLVM with its solver,
# which only PostgreSQL's JIT loads (without them the server runs without
# JIT, as `SELECT pg_jit_available()` says).
excludes=(
  "/usr/share/doc/*" "/usr/share/man/*" "/usr/share/info/*" "/usr/share/locale/*"
  "/usr/share/lintian/*" "/usr/share/perl5/Debconf/*.pod" "/usr/share/i18n/*"
  "/usr/lib/*/libLLVM*" "/usr/lib/*/libz3.so*"
  "/usr/lib/postgresql/$major/lib/llvmjit*"
  "/usr/lib/postgresql/$major/lib/bitcode/*"
)
dpkgopts=()
for path in "${excludes[@]}"; do
  dpkgopts+=(--dpkgopt="path-exclude=$path")
done
# Keep copyright files: the packages' licences ask for them.
dpkgopts+=(--dpkgopt="path-include=/usr/share/doc/*/copyright")

old="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
say "building $image from Debian $suite (a few minutes; cached afterwards)"
started=$SECONDS
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
# uid and gid 999, as in the official image (docker-library/postgres,
# Dockerfile: `groupadd -r postgres --gid=999`, `useradd -r ... --uid=999`):
# volumes written by one open in the other. Made before postgresql-common's
# postinst, whose `adduser --system postgres` then keeps it.
log="$build/log"
failed() {
  tail -n 40 "$log" >&2
  say "failed: the last lines of its log are above"
  exit 1
}
mmdebstrap --variant=essential \
  --include="postgresql-$major" \
  "${dpkgopts[@]}" \
  --essential-hook='echo "postgres:x:999:" >>"$1/etc/group"' \
  --essential-hook='echo "postgres:x:999:999:PostgreSQL administrator:/var/lib/postgresql:/bin/bash" >>"$1/etc/passwd"' \
  --customize-hook='rm -rf "$1/etc/postgresql/'"$major"'" "$1/var/lib/postgresql/'"$major"'"' \
  --customize-hook='mkdir -p "$1/var/lib/postgresql/data" "$1/docker-entrypoint-initdb.d"' \
  --customize-hook='chroot "$1" chown postgres:postgres /var/lib/postgresql /var/lib/postgresql/data' \
  --customize-hook='chmod 0700 "$1/var/lib/postgresql/data"' \
  --customize-hook="upload $here/entrypoint.sh /usr/local/bin/docker-entrypoint.sh" \
  --customize-hook='chmod 0755 "$1/usr/local/bin/docker-entrypoint.sh"' \
  --customize-hook='chroot "$1" dpkg-query -W -f "\${Version}" postgresql-'"$major"' >"$1/.pg-version"' \
  --customize-hook='copy-out /.pg-version '"$build" \
  --customize-hook='rm -f "$1/.pg-version"; rm -rf "$1"/var/cache/* "$1"/var/log/* "$1"/var/lib/apt/lists/*' \
  "$suite" "$build/rootfs.tar" "$mirror" >"$log" 2>&1 || failed
version="$(cat "$build/.pg-version")"

# `docker import` takes no STOPSIGNAL: the imported root becomes the base
# of a Dockerfile (the classic builder, which reads an image id in FROM).
base="$(docker import "$build/rootfs.tar")"
DOCKER_BUILDKIT=0 docker build -t "$image" - >"$log" 2>&1 <<DOCKERFILE || failed
FROM $base
ENV PATH=/usr/lib/postgresql/$major/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    LANG=C.UTF-8 \\
    PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
EXPOSE 5432
# The socket's directory, for a server started as postgres, not root; the
# root file system's /run comes out of mmdebstrap empty.
RUN install -d -o postgres -g postgres -m 3777 /run/postgresql
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
LABEL voisin.test=postgres \\
      org.postgresql.version="$version" \\
      voisin.test.inputs="$inputs"
DOCKERFILE
# The image this one replaces, with its imported base: nothing else uses them.
if [ -n "$old" ]; then
  docker rmi "$old" >/dev/null 2>&1 || true
fi
say "built $image (PostgreSQL $version) in $((SECONDS - started)) s"
echo "$image"
