#!/usr/bin/env bash
# Outside checks with real tools against a real memberdesk (demo data, fresh
# database): the graphql-http package's server audits (every MUST, SHOULD and
# MAY of GraphQL over HTTP) and the playground in headless Chromium with no
# internet access, the schema in graphql-js, the README's story as written,
# the member story through Python's gql client, and two instances behind
# PgBouncer (scale_out.sh).
# Needs Python 3 with pip, Node.js 18+, Chromium and PgBouncer (installed from
# Debian's packages and source archive when missing) and a built debug binary
# (`cargo test` builds it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="${CARGO_TARGET_DIR:-$here/../../target}"
bin="$target/debug/memberdesk"
db="memberdesk_ecosystem_$$"
base="${MEMBERDESK_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export DATABASE_URL="${base%/*}/$db"
# shellcheck source=server.sh
source "$here/server.sh"
port=$(free_port)

if ! command -v chromium >/dev/null; then
  echo "installing Chromium (Debian package) for the playground test"
  apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
fi
(cd "$here" && npm ci --no-audit --no-fund --silent)
python3 -m pip install -q --disable-pip-version-check -r "$here/requirements.txt" 2>/dev/null

# Two instances on one outbox, each event once and in order per user, then a
# receiver down for a real minute: most of its time is waiting, so it runs
# beside the checks below (its own servers, ports and database) and is
# awaited last.
scale_log="$target/webhooks_scale_out.log"
python3 "$here/webhooks_scale_out.py" "$bin" >"$scale_log" 2>&1 &
scale_pid=$!

start_server "$port" "$here/server.log" --demo
cleanup() {
  kill "$scale_pid" 2>/dev/null || true
  stop_servers
  psql "$base" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
wait_ready "$port" "$here/server.log"

node "$here/graphql-http-audit.mjs" "http://127.0.0.1:$port/graphql"
node "$here/schema-check.mjs" "$here/../../schema.graphql"
node "$here/playground.mjs" "http://127.0.0.1:$port" "$target/playground.png"
# The admin console's four stories, on a demo server and database of its own.
node "$here/console.mjs" "$bin" "$target/console"
# The README's story, from README.md itself, on untouched demo data (it
# deactivates and restores alice, deletes bob and erases carol).
python3 "$here/readme_story.py" "http://127.0.0.1:$port/graphql" "$bin"
# Last: it anonymizes a demo user.
python3 "$here/client_story.py" "http://127.0.0.1:$port/graphql"
# SCIM provisioning: scim2-tester and the Okta/Entra stories (own database).
bash "$here/scim.sh"
# Webhooks verified by PyPI's standardwebhooks (its own server and database).
python3 "$here/webhooks_receiver.py" "$bin"
# Two more instances behind PgBouncer in transaction pooling mode.
bash "$here/scale_out.sh"
# The webhook check started first.
if wait "$scale_pid"; then
  cat "$scale_log"
else
  cat "$scale_log"
  echo "error: webhooks_scale_out.py failed (log above)" >&2
  exit 1
fi
