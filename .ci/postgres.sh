#!/usr/bin/env bash
# A throwaway PostgreSQL server for the test suite and the benchmarks, on a free loopback port.
#
#   url=$(.ci/postgres.sh start DIR)   # initdb in DIR, start, print a SQLAlchemy URL (role and database foodclf)
#   .ci/postgres.sh stop DIR           # stop it and delete DIR
#
# As root (CI), the server runs as the `postgres` user, since PostgreSQL refuses to run as root.
# Durability is off (fsync, full-page writes): the cluster is thrown away after the run.
set -euo pipefail
command=${1:?usage: postgres.sh start|stop DIR}
dir=${2:?usage: postgres.sh start|stop DIR}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] && command -v pg_config >/dev/null 2>&1; then bindir=$(pg_config --bindir); fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "postgres.sh: no PostgreSQL server found (Debian: apt-get install postgresql)" >&2
  exit 1
fi

as_server() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $command in
start)
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
  as_server "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  options="-k $dir -c listen_addresses=127.0.0.1 -p $port -c fsync=off -c synchronous_commit=off"
  # No autovacuum: a worker connected to a test's fresh database would block dropping it.
  options="$options -c full_page_writes=off -c max_connections=200 -c autovacuum=off"
  as_server "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "$options" start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  psql=("$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -q -v ON_ERROR_STOP=1)
  # pg_signal_backend: the tests drop each test's database WITH (FORCE), ending any session left on it.
  "${psql[@]}" -c "CREATE ROLE foodclf LOGIN CREATEDB" -c "GRANT pg_signal_backend TO foodclf" \
    -c "CREATE DATABASE foodclf OWNER foodclf" >/dev/null
  echo "postgresql+psycopg://foodclf@127.0.0.1:$port/foodclf"
  ;;
stop)
  if [ -d "$dir/data" ]; then as_server "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null || true; fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: postgres.sh start|stop DIR" >&2
  exit 2
  ;;
esac
