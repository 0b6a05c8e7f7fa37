#!/usr/bin/env bash
# Scaling out: two memberdesk instances behind PgBouncer in transaction pooling
# mode, on one fresh database, with fewer PostgreSQL connections than the
# instances open to PgBouncer, so every statement may run on any server
# connection. Both instances start at the same moment on a database that does
# not exist yet (creation and migrations race through the pooler), then
# scale_out.py drives the member story across them and a concurrent workload.
#
# PgBouncer: 1.21 or later is needed for prepared statements in transaction
# mode (`max_prepared_statements`). Debian 12 ships 1.18, so unless a recent
# `pgbouncer` is on PATH this builds Debian 13's 1.24.1 from Debian's source
# archive (checksum pinned; ~10 s; kept under the target folder for next time).
#
# Usage: bash scale_out.sh   (needs a built debug binary and PostgreSQL on
# 127.0.0.1:5432 that trusts local connections)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="$(realpath -m "${CARGO_TARGET_DIR:-$here/../../target}")"
bin="$target/debug/memberdesk"
base="${MEMBERDESK_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="memberdesk_scale_out_$$"
# shellcheck source=server.sh
source "$here/server.sh"

pgb_version=1.24.1
pgb_sha256=da72a3aba13072876d055a3e58dd4aba4a5de4ed6148e73033185245598fd3e0
pgbouncer=""
if command -v pgbouncer >/dev/null; then
  v=$(pgbouncer --version | head -1 | grep -o '[0-9]\+\.[0-9]\+' | head -1)
  if [ "$(printf '%s\n1.21\n' "$v" | sort -V | head -1)" = "1.21" ]; then pgbouncer=$(command -v pgbouncer); fi
fi
if [ -z "$pgbouncer" ]; then
  pgbouncer="$target/pgbouncer-$pgb_version/bin/pgbouncer"
  if [ ! -x "$pgbouncer" ]; then
    echo "building PgBouncer $pgb_version from Debian's source archive"
    dpkg -s libevent-dev libc-ares-dev >/dev/null 2>&1 ||
      apt-get install -y -qq libevent-dev libc-ares-dev >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq libevent-dev libc-ares-dev >/dev/null; }
    src="$target/pgbouncer-src"
    rm -rf "$src" && mkdir -p "$src"
    curl -fsSL -o "$src/orig.tar.gz" \
      "http://deb.debian.org/debian/pool/main/p/pgbouncer/pgbouncer_${pgb_version}.orig.tar.gz"
    echo "$pgb_sha256  $src/orig.tar.gz" | sha256sum -c --quiet
    tar -xzf "$src/orig.tar.gz" -C "$src"
    (cd "$src/pgbouncer-$pgb_version" &&
      ./configure -q --prefix="$target/pgbouncer-$pgb_version" --without-openssl >/dev/null &&
      make -s -j2 >/dev/null 2>&1 && make -s install >/dev/null)
    rm -rf "$src"
  fi
fi

# PgBouncer refuses to run as root: run it as the database's system user then.
run_dir=$(mktemp -d)
pgb_port=$(free_port)
server_pool=2
cat >"$run_dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=5432 connect_query='SET statement_timeout = 30000'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgb_port
unix_socket_dir =
auth_type = trust
auth_file = $run_dir/userlist.txt
admin_users = postgres
pool_mode = transaction
max_prepared_statements = 200
default_pool_size = $server_pool
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
logfile = $run_dir/pgbouncer.log
pidfile = $run_dir/pgbouncer.pid
EOF
printf '"postgres" ""\n' >"$run_dir/userlist.txt"
as_user=()
if [ "$(id -u)" = 0 ]; then
  chown -R postgres "$run_dir"
  as_user=(-u postgres)
fi

cleanup() {
  stop_servers
  [ -f "$run_dir/pgbouncer.pid" ] && kill "$(cat "$run_dir/pgbouncer.pid")" 2>/dev/null || true
  psql "$base" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$run_dir"
}
trap cleanup EXIT
"$pgbouncer" -d "${as_user[@]}" "$run_dir/pgbouncer.ini"
for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p "$pgb_port" && break; sleep 0.1; done

# The deployment README.md describes: the instances reach PostgreSQL only
# through PgBouncer, which sets the statement timeout on its connections.
export DATABASE_URL="postgres://postgres@127.0.0.1:$pgb_port/$db"
# Left at its default, the timeout goes as a startup option that PgBouncer
# refuses: memberdesk must stop with one line saying what to change.
if out=$("$bin" migrate 2>&1); then
  echo "error: migrate through PgBouncer with a startup timeout should have been refused" >&2; exit 1
fi
grep -q "set MEMBERDESK_STATEMENT_TIMEOUT_SECONDS=0" <<<"$out" ||
  { echo "error: the refusal does not say what to change: $out" >&2; exit 1; }
export MEMBERDESK_STATEMENT_TIMEOUT_SECONDS=0
ports=()
for name in a b; do
  port=$(free_port)
  ports+=("$port")
  start_server "$port" "$target/scale-out-$name.log"
done
for port in "${ports[@]}"; do
  wait_ready "$port" "$target/scale-out-*.log"
done
"$bin" seed-demo >/dev/null

python3 "$here/scale_out.py" "http://127.0.0.1:${ports[0]}/graphql" "http://127.0.0.1:${ports[1]}/graphql"

# Multiplexing really happened: the instances hold more connections to
# PgBouncer than PgBouncer holds to PostgreSQL.
admin() { psql -h 127.0.0.1 -p "$pgb_port" -U postgres -d pgbouncer -Atc "$1"; }
clients=$(admin "SHOW CLIENTS" | grep -c "|$db|" || true)
servers_used=$(admin "SHOW SERVERS" | grep -c "|$db|" || true)
echo "behind PgBouncer: $clients client connections from the two instances shared $servers_used server connections"
[ "$clients" -gt "$servers_used" ] && [ "$servers_used" -le "$server_pool" ] ||
  { echo "error: expected more client than server connections (at most $server_pool)" >&2; exit 1; }
