#!/usr/bin/env bash
# SCIM 2.0 provisioning against clients nobody here wrote, on its own fresh
# database (the demo data of run.sh's server stays untouched for the README
# story): scim2-tester's RFC conformance checks, then the Okta-style and
# Entra-style deprovisioning stories through scim2-client. The server runs
# with MEMBERDESK_SCIM_DELETE=anonymize because scim2-tester expects a
# deleted user to be gone (the default, deactivate, keeps them as inactive).
#
# Usage: bash scim.sh   (needs a built debug binary, the Python packages of
# requirements.txt and PostgreSQL on 127.0.0.1:5432 trusting local connections)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="$(realpath -m "${CARGO_TARGET_DIR:-$here/../../target}")"
bin="$target/debug/memberdesk"
base="${MEMBERDESK_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="memberdesk_scim_$$"
export DATABASE_URL="${base%/*}/$db"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

"$bin" seed-demo >/dev/null
provision=auth.view_user,auth.add_user,auth.change_user,auth.view_group,auth.add_group,auth.change_group,auth.delete_group
okta=$("$bin" scim-token create --name okta --permissions "$provision" 2>/dev/null)
entra=$("$bin" scim-token create --name entra --permissions "$provision" 2>/dev/null)
tester=$("$bin" scim-token create --name conformance --permissions "$provision,auth.delete_user" 2>/dev/null)

MEMBERDESK_SCIM_DELETE=anonymize "$bin" serve --bind "127.0.0.1:$port" >"$here/scim-server.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  psql "$base" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 150); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.2
done

python3 "$here/scim_conformance.py" "http://127.0.0.1:$port/scim/v2" "$tester"
python3 "$here/scim_deprovisioning.py" "http://127.0.0.1:$port/graphql" "http://127.0.0.1:$port/scim/v2" "$okta" "$entra"
