#!/usr/bin/env bash
# Runs the graphql-http package's server audits (every MUST, SHOULD and MAY of
# the GraphQL-over-HTTP spec) against a real memberdesk on a fresh database.
# Needs Node.js 18+ and a built debug binary (`cargo test` builds it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
bin="${CARGO_TARGET_DIR:-$root/target}/debug/memberdesk"
db="memberdesk_audit_$$"
base="${MEMBERDESK_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export DATABASE_URL="${base%/*}/$db"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

(cd "$here" && npm ci --no-audit --no-fund --silent)
"$bin" serve --bind "127.0.0.1:$port" >"$here/server.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  psql "$base" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.2
done
node "$here/graphql-http-audit.mjs" "http://127.0.0.1:$port/graphql"
