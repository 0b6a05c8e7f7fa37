# Sourced by run.sh, scim.sh and scale_out.sh: starting memberdesk servers
# in the background, waiting until they answer, and stopping them. Expects
# `bin` (the memberdesk binary) to be set by the script that sources it.

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The pids of the servers started here, for stop_servers.
servers=()

# start_server PORT LOG [ARGS...]: runs `memberdesk serve --bind
# 127.0.0.1:PORT ARGS...` in the background, its output in LOG (variables
# set before the call reach it, e.g. MEMBERDESK_SCIM_DELETE=anonymize).
start_server() {
  local port=$1 log=$2
  shift 2
  "$bin" serve --bind "127.0.0.1:$port" "$@" >"$log" 2>&1 &
  servers+=("$!")
}

# wait_ready PORT LOG: waits up to 30 s for the server on PORT to be ready
# (`/readyz`); fails, pointing at LOG, if it never is.
wait_ready() {
  for _ in $(seq 1 150); do
    curl -fs "http://127.0.0.1:$1/readyz" >/dev/null && return 0
    sleep 0.2
  done
  echo "error: memberdesk on port $1 did not become ready; see $2" >&2
  return 1
}

# stop_servers: ends every server started here and waits for each.
stop_servers() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
}
