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
# shellcheck source=server.sh
source "$here/server.sh"
port=$(free_port)

"$bin" seed-demo >/dev/null
provision=auth.view_user,auth.add_user,auth.change_user,auth.view_group,auth.add_group,auth.change_group,auth.delete_group
okta=$("$bin" scim-token create --name okta --permissions "$provision" 2>/dev/null)
entra=$("$bin" scim-token create --name entra --permissions "$provision" 2>/dev/null)
tester=$("$bin" scim-token create --name conformance --permissions "$provision,auth.delete_user" 2>/dev/null)

MEMBERDESK_SCIM_DELETE=anonymize start_server "$port" "$here/scim-server.log"
cleanup() {
  stop_servers
  psql "$base" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
wait_ready "$port" "$here/scim-server.log"

python3 "$here/scim_conformance.py" "http://127.0.0.1:$port/scim/v2" "$tester"
python3 "$here/scim_deprovisioning.py" "http://127.0.0.1:$port/graphql" "http://127.0.0.1:$port/scim/v2" "$okta" "$entra"
