#!/usr/bin/env bash
# A PostgreSQL server of Strongroom's own in a directory, on a loopback port, for
# `make run-cluster` and the replica tests: scripts/pg.sh DIR start|stop|restart|url [PORT].
#   start    makes the cluster on first use (initdb: superuser `strongroom`, trust
#            authentication on loopback only), starts the server and creates the database
#            `strongroom`; prints nothing. PORT (default 54329) is kept in DIR/port.
#   stop     fast shutdown (connections closed; everything committed stays).
#   restart  stop, then start on the same port.
#   url      prints postgres://strongroom@127.0.0.1:PORT/strongroom.
#   psql SQL runs SQL on the database (tests: a hostile database's hand).
# initdb refuses to run as root: as root, the server runs as the `postgres` user (which
# Debian's postgresql package creates). The server programs are found in
# STRONGROOM_PG_BIN, else the newest /usr/lib/postgresql/*/bin.
set -euo pipefail
dir=${1:?usage: pg.sh DIR start|stop|restart|url [PORT]}
cmd=${2:?usage: pg.sh DIR start|stop|restart|url [PORT]}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ -n "${3:-}" ] && [ "$cmd" != psql ]; then echo "$3" > "$dir/port"; fi
[ -f "$dir/port" ] || echo 54329 > "$dir/port"
port=$(cat "$dir/port")
url="postgres://strongroom@127.0.0.1:$port/strongroom"

bin=${STRONGROOM_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
if [ ! -x "$bin/initdb" ]; then
  echo "pg.sh: PostgreSQL's server programs are not installed (run scripts/test-env.sh --system, or set STRONGROOM_PG_BIN)" >&2
  exit 1
fi
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "$dir"
  as_owner=(runuser -u postgres --)
  if ! runuser -u postgres -- test -x "$dir"; then
    echo "pg.sh: the postgres user cannot reach $dir (a parent directory is not searchable by it; chmod o+x it)" >&2
    exit 1
  fi
fi
pg() { "${as_owner[@]}" "$bin/$1" "${@:2}"; }

start() {
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    pg initdb -D "$dir/data" -U strongroom -A trust -E UTF8 --locale=C --no-instructions >/dev/null
  fi
  if ! pg pg_ctl -D "$dir/data" status >/dev/null 2>&1; then
    pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
  fi
  if ! pg psql -h 127.0.0.1 -p "$port" -U strongroom -d postgres -Atqc \
      "SELECT 1 FROM pg_database WHERE datname = 'strongroom'" 2>/dev/null | grep -q 1; then
    pg createdb -h 127.0.0.1 -p "$port" -U strongroom strongroom
  fi
}

stop() {
  if [ -f "$dir/data/PG_VERSION" ] && pg pg_ctl -D "$dir/data" status >/dev/null 2>&1; then
    pg pg_ctl -D "$dir/data" -m fast -w -t 60 stop >/dev/null
  fi
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  url) echo "$url" ;;
  psql) pg psql -h 127.0.0.1 -p "$port" -U strongroom -d strongroom -Atqc "${3:?pg.sh DIR psql SQL}" ;;
  *) echo "pg.sh: unknown command $cmd" >&2; exit 2 ;;
esac
