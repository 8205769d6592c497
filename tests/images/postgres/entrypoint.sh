#!/bin/sh
# The test PostgreSQL image's entrypoint: what voisin's catalog relies on
# in the official image's docker-entrypoint.sh (docker-library/postgres),
# and nothing more. On the first start with an empty PGDATA it runs initdb
# as `postgres`, with POSTGRES_USER as the superuser and its password from
# POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (read before dropping root,
# so the secret may stay root's), creates POSTGRES_DB, and runs
# /docker-entrypoint-initdb.d/*.sql and *.sh. Then it execs postgres, which
# gets the stop signal itself (SIGINT: a fast shutdown).
set -eu

if [ "${1#-}" != "$1" ]; then
  set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
  exec "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ "$(id -u)" = 0 ]; then
  # A volume may arrive owned by root: PGDATA must be postgres's, 0700.
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    POSTGRES_PASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"
    export POSTGRES_PASSWORD
    unset POSTGRES_PASSWORD_FILE
  fi
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    POSTGRES_PASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"
  fi
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "entrypoint: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE" >&2
    exit 1
  fi
  user="${POSTGRES_USER:-postgres}"
  db="${POSTGRES_DB:-$user}"
  # Trust on the local socket (docker exec, pg_dump); a password over TCP.
  printf '%s\n' "$POSTGRES_PASSWORD" |
    initdb --username="$user" --pwfile=/dev/stdin \
      --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  # A server on the socket only while the database is made, as upstream
  # does: a health check over TCP does not pass until the real one runs.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >&2
  if [ "$db" != postgres ]; then
    # Through standard input: psql does not interpolate `-c` commands.
    echo 'CREATE DATABASE :"db";' |
      psql -v ON_ERROR_STOP=1 -q -U "$user" -d postgres -v db="$db"
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sql) psql -v ON_ERROR_STOP=1 -q -U "$user" -d "$db" -f "$f" ;;
      *.sh) . "$f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "entrypoint: database \`$db\` of \`$user\` initialised" >&2
fi

unset POSTGRES_PASSWORD
exec "$@"
