#!/usr/bin/env bash
# Interoperability test: restoregate's whole device-code flow against npm oidc-provider, an
# independent, certified RFC 8628 authorization server, started on loopback, with the person's
# approval done on oidc-provider's own pages (real form posts with a cookie jar).
#
#   bash tests/interop/oidc_provider.sh        (from the repository root, after cargo build and
#                                                scripts/test-deps.sh; scripts/test.sh does both)
#
# Checks: discovery under {authority}/{tenant}/v2.0, device authorization with Graph's .default
# scope and offline_access, polling without `interval` in the answer, a sign-in approved on the
# pages ends in a "Sign-in" event with status Success naming the account, /v5/DeviceCode/check
# says authenticated, and a sign-in cancelled on the consent page ends in a Warning event that
# says declined. Bounded: every wait has a deadline; the whole test takes well under 3 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/tests/interop
BIN=$ROOT/target/debug/restoregate
TENANT=abc.onmicrosoft.com
CLIENT_ID=11111111-2222-3333-4444-555555555555
LOGIN=megan
TEST_START=$SECONDS

say() { printf '[oidc-provider interop %3ds] %s\n' "$((SECONDS - TEST_START))" "$*"; }
fail() {
  printf '[oidc-provider interop] FAILED: %s\n' "$*" >&2
  exit 1
}

[ -x "$BIN" ] || fail "$BIN is missing: run cargo build first"
command -v node >/dev/null || fail "node is not installed"
command -v curl >/dev/null || fail "curl is not installed"
command -v python3 >/dev/null || fail "python3 is not installed"
[ -d "$HERE/node_modules/oidc-provider" ] ||
  fail "npm package oidc-provider is missing: run scripts/test-deps.sh (npm ci in tests/interop)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/restoregate-oidc-interop.XXXXXX")
OP_PID=
RG_PID=
cleanup() {
  local rc=$?
  for pid in $RG_PID $OP_PID; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $RG_PID $OP_PID; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ]; then
    echo "---- oidc-provider log (last 60 lines) ----" >&2
    tail -n 60 "$WORK/op.log" >&2 2>/dev/null || true
    echo "---- restoregate log (last 60 lines) ----" >&2
    tail -n 60 "$WORK/rg.log" >&2 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# JSON field of a file or stdin: json FIELD [FILE]; FIELD is a Python expression on `d`.
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[2]) if len(sys.argv)>2 else sys.stdin); v=eval(sys.argv[1]); print(v if isinstance(v,str) else json.dumps(v))' "$@"; }

# ---- the authorization server -------------------------------------------------------------------
say "starting oidc-provider (tenant $TENANT, client $CLIENT_ID)"
OIDC_TENANT=$TENANT OIDC_CLIENT_ID=$CLIENT_ID node "$HERE/oidc-provider/server.mjs" >"$WORK/op.out" 2>"$WORK/op.log" &
OP_PID=$!
deadline=$((SECONDS + 20))
until [ -s "$WORK/op.out" ]; do
  kill -0 "$OP_PID" 2>/dev/null || fail "oidc-provider exited at start"
  [ "$SECONDS" -lt "$deadline" ] || fail "oidc-provider did not say its port within 20 s"
  sleep 0.1
done
OP_PORT=$(json 'd["port"]' "$WORK/op.out")
OP_AUTHORITY=$(json 'd["authority"]' "$WORK/op.out")
OP_ISSUER=$(json 'd["issuer"]' "$WORK/op.out")
say "oidc-provider listens: issuer $OP_ISSUER"
curl -fsS --max-time 5 "$OP_AUTHORITY/$TENANT/v2.0/.well-known/openid-configuration" >"$WORK/discovery.json" ||
  fail "oidc-provider's discovery document is not at $OP_AUTHORITY/$TENANT/v2.0/.well-known/openid-configuration"
[ "$(json 'd["issuer"]' "$WORK/discovery.json")" = "$OP_ISSUER" ] || fail "oidc-provider's discovery names another issuer"

# ---- restoregate ---------------------------------------------------------------------------------
ADMIN_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
DATA=$WORK/data
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
for attempt in 1 2 3; do
  RG_PORT=$(free_port)
  say "starting restoregate on 127.0.0.1:$RG_PORT (authority of Worldwide: $OP_AUTHORITY, sandbox off)"
  RESTOREGATE_ADMIN_PASSWORD=$ADMIN_PASSWORD \
    RESTOREGATE_REGIONS__WORLDWIDE__AUTHORITY=$OP_AUTHORITY \
    RESTOREGATE_SANDBOX=false NO_COLOR=1 \
    RESTOREGATE_LOG=${RESTOREGATE_LOG:-info} \
    "$BIN" --data-dir "$DATA" --listen "127.0.0.1:$RG_PORT" >"$WORK/rg.log" 2>&1 &
  RG_PID=$!
  RG=https://127.0.0.1:$RG_PORT
  deadline=$((SECONDS + 30))
  healthy=
  while [ "$SECONDS" -lt "$deadline" ]; do
    if ! kill -0 "$RG_PID" 2>/dev/null; then
      break
    fi
    if [ -s "$DATA/tls-cert.pem" ] &&
      curl -fsS --max-time 2 --cacert "$DATA/tls-cert.pem" "$RG/health" >"$WORK/health.json" 2>/dev/null; then
      healthy=1
      break
    fi
    sleep 0.2
  done
  [ -n "$healthy" ] && break
  if kill -0 "$RG_PID" 2>/dev/null; then
    fail "restoregate did not answer $RG/health within 30 s"
  fi
  wait "$RG_PID" 2>/dev/null || true
  RG_PID=
  grep -q 'cannot listen' "$WORK/rg.log" || fail "restoregate exited at start: $(tail -n 5 "$WORK/rg.log")"
  say "port $RG_PORT was taken meanwhile; trying another"
  [ "$attempt" -lt 3 ] || fail "restoregate could not listen on a free port three times"
done
say "restoregate is healthy: $(cat "$WORK/health.json")"

# HTTPS to restoregate, trusting its own generated certificate (issued for 127.0.0.1).
# api METHOD PATH [JSON] -> body in $WORK/body, status in $STATUS.
TOKEN=
api() {
  local method=$1 path=$2 data=${3:-}
  local args=(-sS --max-time 15 --cacert "$DATA/tls-cert.pem" -o "$WORK/body" -w '%{http_code}' -X "$method")
  [ -n "$TOKEN" ] && args+=(-H "Authorization: Bearer $TOKEN")
  [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data "$data")
  STATUS=$(curl "${args[@]}" "$RG$path") || fail "$method $path: no answer from restoregate"
}
expect() { # expect STATUS WHAT
  [ "$STATUS" = "$1" ] || fail "$2: expected HTTP $1, got $STATUS: $(head -c 600 "$WORK/body")"
}

STATUS=$(curl -sS --max-time 15 --cacert "$DATA/tls-cert.pem" -o "$WORK/body" -w '%{http_code}' \
  --data-urlencode grant_type=password --data-urlencode username=admin \
  --data-urlencode "password=$ADMIN_PASSWORD" "$RG/v5/Token") || fail "POST /v5/Token: no answer"
expect 200 "POST /v5/Token (admin)"
TOKEN=$(json 'd["access_token"]' "$WORK/body")
say "signed in to restoregate as admin"

api POST /v5/Organizations "$(
  cat <<EOF
{"type": "Office365", "region": "Worldwide",
 "exchangeOnlineSettings": {"useApplicationOnlyAuth": true, "officeOrganizationName": "$TENANT",
                            "applicationId": "$CLIENT_ID"}}
EOF
)"
expect 201 "POST /v5/Organizations ($TENANT)"
ORG_ID=$(json 'd["id"]' "$WORK/body")
say "organization $TENANT added: $ORG_ID"

api POST "/v5/Organizations/$ORG_ID/Action" '{"explore": {"datetime": "2021-03-15T14:30:00Z", "type": "vex", "showDeleted": true, "showAllVersions": true}}'
expect 201 "POST /v5/Organizations/{id}/Action explore"
SESSION_ID=$(json 'd["id"]' "$WORK/body")
say "restore session started: $SESSION_ID"

# device_code: asks restoregate for a device code; sets USER_CODE and VERIFICATION_URL.
device_code() {
  api POST "/v5/RestoreSessions/$SESSION_ID/organization/restoreDeviceCode" '{}'
  expect 200 "POST restoreDeviceCode"
  USER_CODE=$(json 'd["userCode"]' "$WORK/body")
  VERIFICATION_URL=$(json 'd["verificationUrl"]' "$WORK/body")
  local expires message
  expires=$(json 'd["expiresIn"]' "$WORK/body")
  message=$(json 'd["message"]' "$WORK/body")
  case "$VERIFICATION_URL" in
    "$OP_ISSUER"/*) ;;
    *) fail "verificationUrl $VERIFICATION_URL is not oidc-provider's page (under $OP_ISSUER)" ;;
  esac
  python3 -c 'import sys; e=int(sys.argv[1]); sys.exit(0 if 500 <= e <= 600 else 1)' "$expires" ||
    fail "expiresIn is $expires; oidc-provider's code lives 600 s"
  case "$message" in
    *"$USER_CODE"*) ;;
    *) fail "the message does not give the user code: $message" ;;
  esac
  say "device code: userCode $USER_CODE at $VERIFICATION_URL (expiresIn $expires)"
}

# wait_sign_in STATUS: waits (60 s) for a "Sign-in" event with that status; prints its message.
wait_sign_in() {
  local want=$1 deadline=$((SECONDS + 60)) found
  while :; do
    api GET "/v5/RestoreSessions/$SESSION_ID/Events?limit=1000"
    expect 200 "GET /v5/RestoreSessions/{id}/Events"
    found=$(python3 -c '
import json, sys
events = json.load(open(sys.argv[1]))["results"]
for e in events:
    if e.get("title") == "Sign-in" and e.get("status") == sys.argv[2]:
        print(e.get("message", ""))
        break
else:
    others = [e for e in events if e.get("title") == "Sign-in" and e.get("status") != sys.argv[2]
              and e.get("id") not in sys.argv[3].split()]
    if others:
        print("UNEXPECTED:" + json.dumps(others[-1]))
' "$WORK/body" "$want" "${SEEN_EVENTS:-}")
    if [ -n "$found" ]; then
      case "$found" in UNEXPECTED:*) fail "the sign-in ended otherwise than $want: ${found#UNEXPECTED:}" ;; esac
      SIGN_IN_MESSAGE=$found
      SEEN_EVENTS=$(json '" ".join(e["id"] for e in d["results"] if e.get("title") == "Sign-in")' "$WORK/body")
      return 0
    fi
    [ "$SECONDS" -lt "$deadline" ] ||
      fail "no Sign-in event with status $want within 60 s; events: $(json '[(e["title"], e["status"], e["message"]) for e in d["results"]]' "$WORK/body")"
    sleep 1
  done
}

check_code() { # check_code USER_CODE true|false
  api POST /v5/DeviceCode/check "{\"userCode\": \"$1\"}"
  expect 200 "POST /v5/DeviceCode/check"
  [ "$(json 'd["authenticated"]' "$WORK/body")" = "$2" ] ||
    fail "DeviceCode/check for $1: expected authenticated $2, got $(cat "$WORK/body")"
}

# token_requests: how many token requests oidc-provider has answered so far.
token_requests() { grep -c '"method":"POST","path":"[^"]*/token"' "$WORK/op.log" || true; }
# wait_pending_poll BEFORE: waits (20 s) until restoregate has polled since then and been told
# authorization_pending (HTTP 400), so that the approval comes while the code is being followed.
wait_pending_poll() {
  local before=$1 deadline=$((SECONDS + 20))
  until [ "$(token_requests)" -gt "$before" ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "restoregate did not poll oidc-provider's token endpoint within 20 s"
    sleep 0.2
  done
  grep '"method":"POST","path":"[^"]*/token"' "$WORK/op.log" | tail -n 1 | grep -q '"status":400' ||
    fail "oidc-provider's first answer to a poll was not authorization_pending: $(tail -n 3 "$WORK/op.log")"
  say "restoregate polled and was told authorization_pending"
}

# ---- 1. approved on oidc-provider's pages ------------------------------------------------------
POLLS_BEFORE=$(token_requests)
device_code
check_code "$USER_CODE" false
wait_pending_poll "$POLLS_BEFORE"
say "the person approves at $VERIFICATION_URL"
node "$HERE/oidc-provider/approve.mjs" "$VERIFICATION_URL" "$USER_CODE" "$LOGIN" approve ||
  fail "approval on oidc-provider's pages failed"
wait_sign_in Success
say "event Sign-in / Success: $SIGN_IN_MESSAGE"
case "$SIGN_IN_MESSAGE" in
  *"$LOGIN@$TENANT"*) ;;
  *) fail "the Sign-in event does not name the account $LOGIN@$TENANT: $SIGN_IN_MESSAGE" ;;
esac
check_code "$USER_CODE" true
say "DeviceCode/check: authenticated true"
APPROVED_CODE=$USER_CODE

# ---- 2. declined on oidc-provider's consent page -------------------------------------------------
POLLS_BEFORE=$(token_requests)
device_code
wait_pending_poll "$POLLS_BEFORE"
say "the person signs in and cancels at $VERIFICATION_URL"
node "$HERE/oidc-provider/approve.mjs" "$VERIFICATION_URL" "$USER_CODE" "$LOGIN" deny ||
  fail "declining on oidc-provider's pages failed"
wait_sign_in Warning
say "event Sign-in / Warning: $SIGN_IN_MESSAGE"
case "$SIGN_IN_MESSAGE" in
  *[Dd]eclined*) ;;
  *) fail "the Warning event does not say declined: $SIGN_IN_MESSAGE" ;;
esac
check_code "$USER_CODE" false
check_code "$APPROVED_CODE" true
say "DeviceCode/check: declined code authenticated false, approved code still true"

# RFC 8628 3.5: oidc-provider sends no `interval`, so restoregate must keep 5 s between polls (one
# code was pending at a time, so consecutive token requests belong to one code or follow its end).
POLLS=$(python3 - "$WORK/op.log" <<'EOF'
import json, sys
from datetime import datetime
times = []
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == "http" and e.get("method") == "POST" and e.get("path", "").endswith("/token"):
        times.append(datetime.fromisoformat(e["t"].replace("Z", "+00:00")).timestamp())
gaps = [b - a for a, b in zip(times, times[1:])]
short = [round(g, 2) for g in gaps if g < 4.8]
print(f"{len(times)} token requests, shortest gap {min(gaps):.1f} s" if gaps else f"{len(times)} token requests")
sys.exit(1 if short or len(times) < 2 else 0)
EOF
) || fail "restoregate polled oidc-provider's token endpoint faster than every 5 s (or not at all): $POLLS"
say "polling: $POLLS"

# Secrets must not reach the logs: the admin password, nor oidc-provider's tokens.
! grep -qF "$ADMIN_PASSWORD" "$WORK/rg.log" "$WORK/op.log" || fail "the admin password appears in a server log"
! grep -qE 'eyJ[A-Za-z0-9_-]{20,}\.' "$WORK/rg.log" || fail "a JWT appears in restoregate's log"

say "PASSED: approved sign-in (Success, authenticated) and declined sign-in (Warning, declined)"
