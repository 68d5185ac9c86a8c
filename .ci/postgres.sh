#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the postgres-marked tests and print its URL.
# Usage: eval "$(.ci/postgres.sh start)"  ...  .ci/postgres.sh stop
# Installs Debian's postgresql if no server binaries are found. Runs the server as the `postgres`
# user when invoked as root (PostgreSQL refuses to run as root).
set -euo pipefail
PGDATA_DIR="${HWNAS_PGDATA:-/tmp/hwnas-ci-pgdata}"
PORT="${HWNAS_PGPORT:-54329}"

bin_dir() {
  if command -v initdb >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v initdb)")"; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-start}" in
  start)
    BIN="$(bin_dir)"
    if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
      echo "installing Debian's postgresql" >&2
      apt-get install -y -q postgresql >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
      BIN="$(bin_dir)"
    fi
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then useradd --system postgres; fi
    as_owner "$BIN/pg_ctl" -D "$PGDATA_DIR" stop -m fast >/dev/null 2>&1 || true
    rm -rf "$PGDATA_DIR"; mkdir -p "$PGDATA_DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$PGDATA_DIR"
    as_owner "$BIN/initdb" -D "$PGDATA_DIR" -U hwnas --auth=trust >/dev/null
    as_owner "$BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w \
      -o "-h 127.0.0.1 -p $PORT -k $PGDATA_DIR -c max_connections=100" start >/dev/null
    as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U hwnas hwnas_test
    echo "export HWNAS_TEST_POSTGRES_URL=postgresql://hwnas@127.0.0.1:$PORT/hwnas_test"
    ;;
  stop)
    BIN="$(bin_dir)"
    as_owner "$BIN/pg_ctl" -D "$PGDATA_DIR" stop -m fast >/dev/null 2>&1 || true
    rm -rf "$PGDATA_DIR"
    ;;
esac
