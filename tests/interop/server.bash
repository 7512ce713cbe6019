# Sourced (not run: no .sh, so scripts/test.sh does not take it for a test) by the interop scripts that test restoregate's HTTP API (schemathesis.sh,
# v8_conformance.sh): starts target/debug/restoregate (or $RESTOREGATE_BIN) on a free loopback port
# with a temporary data directory, waits for /health, gets an admin bearer token and adds one
# organization, and stops the server on exit.
#
# After `start_restoregate NAME` these are set:
#   BASE      https://127.0.0.1:PORT
#   DATA      the temporary data directory (DATA/tls-cert.pem is the server's certificate)
#   TOKEN     an access token of the admin account
#   ORG_ID    the organization added for the test
#   SERVER_LOG the server's log file
# Runs from the repository root. Needs .venv (scripts/test-deps.sh) and curl.

ADMIN_PASSWORD="interop-admin-$RANDOM$RANDOM"
SANDBOX_PASSWORD="interop-sandbox-$RANDOM$RANDOM"
APP_ID="11111111-2222-3333-4444-555555555555"
TENANT="abc.onmicrosoft.com"
SERVER_PID=""
DATA=""
SERVER_LOG=""
_RG_NAME="interop"

_rg_stop() {
  local status=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.2
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$status" != 0 ] && [ -n "$SERVER_LOG" ] && [ -f "$SERVER_LOG" ]; then
    echo "$_RG_NAME: server log (tail):" >&2
    tail -n 30 "$SERVER_LOG" >&2 || true
  fi
  [ -n "$DATA" ] && rm -rf "$DATA"
  exit "$status"
}

_rg_free_port() {
  .venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

_rg_json() { # _rg_json KEY < json  → the value of a top-level property
  .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

rg_curl() {
  curl -sS --max-time 30 --cacert "$DATA/tls-cert.pem" "$@"
}

start_restoregate() {
  _RG_NAME="$1"
  local bin="${RESTOREGATE_BIN:-target/debug/restoregate}"
  if [ ! -x .venv/bin/python ]; then
    echo "$_RG_NAME: .venv is missing: run scripts/test-deps.sh first" >&2
    exit 1
  fi
  if [ ! -x "$bin" ]; then
    echo "$_RG_NAME: $bin is missing: run cargo build first" >&2
    exit 1
  fi
  trap _rg_stop EXIT
  trap 'exit 130' INT TERM
  DATA=$(mktemp -d -t restoregate-interop.XXXXXX)
  SERVER_LOG="$DATA/server.log"
  local attempt port deadline
  for attempt in 1 2 3; do # another process may take the port between probe and bind
    port=$(_rg_free_port)
    BASE="https://127.0.0.1:$port"
    RESTOREGATE_ADMIN_PASSWORD="$ADMIN_PASSWORD" RESTOREGATE_SANDBOX_PASSWORD="$SANDBOX_PASSWORD" \
      RESTOREGATE_LOG="${RESTOREGATE_LOG:-warn}" \
      "$bin" --listen "127.0.0.1:$port" --data-dir "$DATA" >>"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    deadline=$((SECONDS + 30))
    while [ $SECONDS -lt $deadline ]; do
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        break
      fi
      if [ -f "$DATA/tls-cert.pem" ] && curl -sf --max-time 2 --cacert "$DATA/tls-cert.pem" "$BASE/health" >/dev/null 2>&1; then
        break 2
      fi
      sleep 0.2
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "$_RG_NAME: the server did not answer /health within 30 s" >&2
      exit 1
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    if [ "$attempt" = 3 ]; then
      echo "$_RG_NAME: the server did not start" >&2
      exit 1
    fi
  done
  echo "$_RG_NAME: restoregate serves at $BASE (data in $DATA)"

  TOKEN=$(rg_curl "$BASE/v5/Token" -d grant_type=password -d username=admin \
    --data-urlencode "password=$ADMIN_PASSWORD" | _rg_json access_token)
  ORG_ID=$(rg_curl "$BASE/v5/Organizations" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"type": "Office365", "region": "Worldwide", "exchangeOnlineSettings": {"useApplicationOnlyAuth": true,
         "officeOrganizationName": "'"$TENANT"'", "applicationId": "'"$APP_ID"'"}}' | _rg_json id)
  echo "$_RG_NAME: admin token obtained; organization $ORG_ID added"
}
