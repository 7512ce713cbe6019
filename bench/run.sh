#!/usr/bin/env bash
# Load bench of restoregate's device-code path, on loopback, with one load generator (wrk):
#
#   A. the sandbox provider's device authorization endpoint
#        POST /sandbox/abc.onmicrosoft.com/oauth2/v2.0/devicecode   (HTTPS, SQLite write per call)
#   B. npm oidc-provider's device authorization endpoint, the reference point
#        POST /device/auth                                          (HTTPS, same certificate)
#   C. restoregate's broker, end to end
#        POST /v5/RestoreSessions/{id}/organization/restoreDeviceCode
#        (HTTPS, bearer token looked up in the database, discovery (cached), an outbound HTTPS
#        call to the sandbox authority = A, a sealed row + an event written, follower started)
#
# and compares A with B (sandbox vs oidc-provider) and C with A (the broker's overhead over the
# authority call alone). For each: requests per second, p50 and p99 latency, peak RSS of the
# server process (VmHWM, reset before each measured run), server CPU per request.
#
#   bash bench/run.sh                 (from anywhere; needs wrk, node 20, curl, python3, cargo)
#
# Prints a Markdown report and writes it to bench/results.md. Takes about 4 minutes after the
# build (which is bounded by BENCH_BUILD_TIMEOUT). Knobs (environment):
#   BENCH_THREADS=2 BENCH_CONNECTIONS=32 BENCH_DURATION=20 BENCH_WARMUP=5   wrk -t -c -d, warm-up s
#   BENCH_ROUNDS=2        rounds of A, B, C (interleaved); the report keeps each target's round
#                         with the most requests per second, and lists every round
#   BENCH_UNLOADED=8      seconds of the supplementary one-connection runs (0: skip them)
#   BENCH_BUILD_TIMEOUT=360  seconds allowed to `cargo build --release` (a cargo lock wait counts)
#   BENCH_BIN=PATH        bench this restoregate binary instead of building target/release/restoregate
#   BENCH_KEEP=1          keep the temporary data directory and logs
#   BENCH_PERF=1          afterwards, profile restoregate with perf under the sandbox and the broker
#                         loads into bench/perf-sandbox.txt and bench/perf-broker.txt (needs perf)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-32}
DURATION=${BENCH_DURATION:-20}
WARMUP=${BENCH_WARMUP:-5}
ROUNDS=${BENCH_ROUNDS:-2}
UNLOADED=${BENCH_UNLOADED:-8}
BUILD_TIMEOUT=${BENCH_BUILD_TIMEOUT:-360}
TENANT=abc.onmicrosoft.com
APP=6f3b0d2e-1c4a-4e59-9a7e-2b8f5d9c1a01
ADMIN_PASSWORD=bench-admin-$RANDOM$RANDOM
SANDBOX_PASSWORD=bench-sandbox-$RANDOM$RANDOM
START=$SECONDS

say() { printf '[bench %3ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
fail() {
  printf '[bench] FAILED: %s\n' "$*" >&2
  exit 1
}

for tool in wrk node curl python3 cargo timeout getconf; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (wrk: apt-get install wrk)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/restoregate-bench.XXXXXX")
DATA=$WORK/data
RG_PID=
OP_PID=
cleanup() {
  local rc=$?
  for pid in $RG_PID $OP_PID; do kill "$pid" 2>/dev/null || true; done
  for pid in $RG_PID $OP_PID; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ]; then
    echo "---- restoregate log (last 40 lines) ----" >&2
    grep -v 'Illegal SNI extension' "$WORK/rg.log" 2>/dev/null | tail -n 40 >&2 || true
    echo "---- oidc-provider log (last 20 lines) ----" >&2
    tail -n 20 "$WORK/op.log" >&2 2>/dev/null || true
  fi
  if [ "${BENCH_KEEP:-}" = 1 ]; then
    echo "[bench] kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }

# ---- 1. Build ---------------------------------------------------------------------------------
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
  say "using the given binary $BIN (no build)"
else
  say "cargo build --release (at most ${BUILD_TIMEOUT}s; waits for the cargo lock if another build holds it)"
  (cd "$ROOT" && timeout "$BUILD_TIMEOUT" cargo build --release --bin restoregate) >"$WORK/build.log" 2>&1 ||
    { tail -n 30 "$WORK/build.log" >&2; fail "cargo build --release failed or took over ${BUILD_TIMEOUT}s"; }
  BIN=$ROOT/target/release/restoregate
fi
[ -x "$BIN" ] || fail "$BIN is missing after the build"

if [ ! -d "$BENCH/node_modules/oidc-provider" ]; then
  say "npm ci in bench/ (oidc-provider)"
  (cd "$BENCH" && timeout 300 npm ci --no-audit --no-fund) >"$WORK/npm.log" 2>&1 ||
    { tail -n 30 "$WORK/npm.log" >&2; fail "npm ci in bench/ failed"; }
fi
OP_VERSION=$(node -p "require('$BENCH/node_modules/oidc-provider/package.json').version")

# ---- 2. restoregate ---------------------------------------------------------------------------
RG_PORT=$(free_port)
B=https://127.0.0.1:$RG_PORT
CERT=$DATA/tls-cert.pem
KEY=$DATA/tls-key.pem
# Nothing from the caller's environment configures this server but what is set here.
for v in $(compgen -e | grep '^RESTOREGATE_' || true); do unset "$v"; done
# The per-user limits on restoreDeviceCode (60 a minute, 100 pending) are off: the bench measures
# the path itself, and one user asking thousands of codes a second is what they exist to refuse.
start_rg() {
  RESTOREGATE_ADMIN_PASSWORD=$ADMIN_PASSWORD RESTOREGATE_SANDBOX_PASSWORD=$SANDBOX_PASSWORD RESTOREGATE_LOG=warn \
    RESTOREGATE_DEVICE_CODES_PER_USER_PER_MINUTE=0 RESTOREGATE_PENDING_SIGN_INS_PER_USER=0 \
    "$BIN" --data-dir "$DATA" --listen "127.0.0.1:$RG_PORT" >>"$WORK/rg.log" 2>&1 &
  RG_PID=$!
  local deadline=$((SECONDS + 60))
  until [ -s "$CERT" ] && curl -fsS --max-time 2 --cacert "$CERT" "$B/health" >/dev/null 2>&1; do
    kill -0 "$RG_PID" 2>/dev/null || fail "restoregate exited during start"
    [ "$SECONDS" -lt "$deadline" ] || fail "restoregate did not answer /health within 60s"
    sleep 0.2
  done
}
# A broker run leaves the sign-in follower's poll budget booked ahead by the codes of the stopped
# session; a new process (same data directory, database and token) starts every round alike.
restart_rg() {
  kill "$RG_PID" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$RG_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$RG_PID" 2>/dev/null || true
  wait "$RG_PID" 2>/dev/null || true
  start_rg
}
say "starting restoregate on $B (data dir $DATA)"
start_rg
CURL=(curl -sS --max-time 15 --cacert "$CERT")

TOKEN=$("${CURL[@]}" "$B/v5/Token" -d grant_type=password -d username=admin \
  --data-urlencode "password=$ADMIN_PASSWORD" | json_field access_token) || fail "no token from /v5/Token"
AUTH=(-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json')
ORG=$("${CURL[@]}" "$B/v5/Organizations" "${AUTH[@]}" -d '{"type": "Office365", "region": "Worldwide",
  "exchangeOnlineSettings": {"useApplicationOnlyAuth": true, "officeOrganizationName": "'$TENANT'",
  "applicationId": "'$APP'"}}' | json_field id) || fail "cannot add organization $TENANT"
# Every code restoreDeviceCode issues is followed: the server polls the authority's token endpoint
# for it (at most RESTOREGATE_AUTHORITY_POLLS_PER_SECOND, default 200, per authority) until it
# expires (15 min). That is real work of the broker and stays in during its runs; but so that it
# does not weigh on the runs after, each broker run has a restore session of its own, stopped
# afterwards (which stops following its codes).
SESSION=
BROKER_URL=
new_session() {
  SESSION=$("${CURL[@]}" "$B/v5/Organizations/$ORG/Action" "${AUTH[@]}" -d '{"explore": {"type": "vex"}}' |
    json_field id) || fail "cannot start a restore session"
  BROKER_URL=$B/v5/RestoreSessions/$SESSION/organization/restoreDeviceCode
}
stop_session() {
  local status
  status=$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$B/v5/RestoreSessions/$SESSION/Action" "${AUTH[@]}" -d '{"stop": null}') || true
  [ "$status" = 200 ] || fail "stopping restore session $SESSION answered HTTP $status"
  sleep 1 # polls already in flight come back
}
new_session
say "organization $ORG, restore session $SESSION"

# The three targets: name, URL, body, content type, bearer token, server pid (set below).
SANDBOX_URL=$B/sandbox/$TENANT/oauth2/v2.0/devicecode
SANDBOX_BODY="client_id=$APP&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default%20offline_access"
BROKER_BODY='{"targetApplicationId": "'$APP'", "targetOrganizationName": "'$TENANT'", "targetRegion": "Worldwide"}'

expect_200() { # name url body content-type [curl options...]
  local name=$1 url=$2 body=$3 ct=$4
  shift 4
  local status
  status=$("${CURL[@]}" -o "$WORK/probe.json" -w '%{http_code}' "$url" -H "Content-Type: $ct" "$@" --data-binary "$body") || true
  [ "$status" = 200 ] || fail "$name answered HTTP $status: $(head -c 400 "$WORK/probe.json" 2>/dev/null)"
}
expect_200 "the sandbox devicecode endpoint" "$SANDBOX_URL" "$SANDBOX_BODY" application/x-www-form-urlencoded
expect_200 "restoreDeviceCode" "$BROKER_URL" "$BROKER_BODY" application/json -H "Authorization: Bearer $TOKEN"
stop_session

# ---- 3. oidc-provider (HTTPS with restoregate's certificate; plain HTTP only if that fails) ----
start_oidc() { # tls|plain
  OP_PORT=$(free_port)
  if [ "$1" = tls ]; then
    BENCH_TLS_CERT=$CERT BENCH_TLS_KEY=$KEY BENCH_PORT=$OP_PORT BENCH_CLIENT_ID=$APP NODE_ENV=production \
      node "$BENCH/oidc-provider-bench.mjs" >"$WORK/op.out" 2>"$WORK/op.log" &
  else
    BENCH_PORT=$OP_PORT BENCH_CLIENT_ID=$APP NODE_ENV=production \
      node "$BENCH/oidc-provider-bench.mjs" >"$WORK/op.out" 2>"$WORK/op.log" &
  fi
  OP_PID=$!
  local deadline=$((SECONDS + 30))
  until [ -s "$WORK/op.out" ]; do
    kill -0 "$OP_PID" 2>/dev/null || return 1
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
  OP_ISSUER=$(json_field issuer <"$WORK/op.out")
}
OP_SCHEME=HTTPS
if ! start_oidc tls; then
  say "oidc-provider did not start over HTTPS; falling back to plain HTTP"
  kill "$OP_PID" 2>/dev/null || true
  OP_SCHEME=HTTP
  start_oidc plain || fail "oidc-provider did not start"
fi
OIDC_URL=$OP_ISSUER/device/auth
OIDC_BODY="client_id=$APP&scope=openid%20offline_access"
say "oidc-provider $OP_VERSION at $OP_ISSUER ($OP_SCHEME)"
OP_CURL=("${CURL[@]}")
[ "$OP_SCHEME" = HTTPS ] || OP_CURL=(curl -sS --max-time 15)
status=$("${OP_CURL[@]}" -o "$WORK/probe.json" -w '%{http_code}' "$OIDC_URL" --data-binary "$OIDC_BODY") || true
[ "$status" = 200 ] || fail "oidc-provider's /device/auth answered HTTP $status: $(head -c 400 "$WORK/probe.json")"

# ---- 4. Measure -------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }          # utime + stime, all threads
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
mkdir -p "$WORK/wrk"

bench() { # key url body content-type bearer pid threads conns duration warmup round
  local key=$1 url=$2 body=$3 ct=$4 bearer=$5 pid=$6 t=$7 c=$8 d=$9 w=${10} round=${11}
  local out=$WORK/wrk/$key.$round
  export WRK_BODY=$body WRK_CONTENT_TYPE=$ct WRK_BEARER=$bearer
  if [ "$w" -gt 0 ]; then
    WRK_REPORT= timeout $((w + 30)) wrk -t"$t" -c"$c" -d"${w}s" -s "$BENCH/wrk/post.lua" "$url" >"$out.warmup" 2>&1 ||
      fail "wrk warm-up of $key failed: $(tail -n 5 "$out.warmup")"
  fi
  local reset=yes
  echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || reset=no
  local load cpu0 cpu1
  load=$(cut -d' ' -f1 /proc/loadavg)
  cpu0=$(cpu_ticks "$pid")
  WRK_REPORT=$out.json timeout $((d + 30)) wrk -t"$t" -c"$c" -d"${d}s" --latency -s "$BENCH/wrk/post.lua" "$url" >"$out.txt" 2>&1 ||
    fail "wrk run of $key failed: $(tail -n 5 "$out.txt")"
  cpu1=$(cpu_ticks "$pid")
  [ -s "$out.json" ] || fail "wrk wrote no report for $key: $(tail -n 5 "$out.txt")"
  python3 - "$out.json" "$key" "$round" "$(hwm_kb "$pid")" "$reset" "$((cpu1 - cpu0))" "$CLK_TCK" "$load" "$t" "$c" "$d" >>"$RESULTS" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
r.update(key=sys.argv[2], round=int(sys.argv[3]), hwm_kb=int(sys.argv[4]), hwm_reset=sys.argv[5] == "yes",
         cpu_s=int(sys.argv[6]) / int(sys.argv[7]), load1=float(sys.argv[8]),
         threads=int(sys.argv[9]), connections=int(sys.argv[10]), duration=int(sys.argv[11]))
print(json.dumps(r))
EOF
  say "$(python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]; print("%-8s round %s: %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  RSS %4.0f MiB  errors %d" % (r["key"], r["round"], r["rps"], r["p50_us"]/1e3, r["p99_us"]/1e3, r["hwm_kb"]/1024, r["non_2xx_3xx"]+r["errors_connect"]+r["errors_read"]+r["errors_write"]+r["errors_timeout"]))' "$RESULTS")"
}

# The server's CPU with no request for 3 s right after a broker run, while it follows the codes
# that run issued (and before their session is stopped).
follower_cost() { # key round
  local c0 c1
  c0=$(cpu_ticks "$RG_PID")
  sleep 3
  c1=$(cpu_ticks "$RG_PID")
  python3 -c 'import json,sys; print(json.dumps({"key": sys.argv[1], "round": int(sys.argv[2]), "idle_cpu_share": (int(sys.argv[4]) - int(sys.argv[3])) / int(sys.argv[5]) / 3}))' \
    "$1" "$2" "$c0" "$c1" "$CLK_TCK" >>"$WORK/follower.jsonl"
}

say "measuring: wrk -t$THREADS -c$CONNS -d${DURATION}s --latency, ${WARMUP}s warm-up before each, $ROUNDS round(s)"
for round in $(seq "$ROUNDS"); do
  bench sandbox "$SANDBOX_URL" "$SANDBOX_BODY" application/x-www-form-urlencoded "" "$RG_PID" "$THREADS" "$CONNS" "$DURATION" "$WARMUP" "$round"
  bench oidc "$OIDC_URL" "$OIDC_BODY" application/x-www-form-urlencoded "" "$OP_PID" "$THREADS" "$CONNS" "$DURATION" "$WARMUP" "$round"
  new_session
  bench broker "$BROKER_URL" "$BROKER_BODY" application/json "$TOKEN" "$RG_PID" "$THREADS" "$CONNS" "$DURATION" "$WARMUP" "$round"
  follower_cost broker "$round"
  stop_session
  restart_rg
done
if [ "$UNLOADED" -gt 0 ]; then
  say "supplementary: one connection (wrk -t1 -c1 -d${UNLOADED}s), the service time without queueing"
  bench sandbox-c1 "$SANDBOX_URL" "$SANDBOX_BODY" application/x-www-form-urlencoded "" "$RG_PID" 1 1 "$UNLOADED" 1 1
  bench oidc-c1 "$OIDC_URL" "$OIDC_BODY" application/x-www-form-urlencoded "" "$OP_PID" 1 1 "$UNLOADED" 1 1
  new_session
  bench broker-c1 "$BROKER_URL" "$BROKER_BODY" application/json "$TOKEN" "$RG_PID" 1 1 "$UNLOADED" 1 1
  stop_session
  restart_rg
fi
kill -0 "$RG_PID" 2>/dev/null || fail "restoregate died during the bench"
# wrk sends the IP address as SNI, which rustls logs once per connection: not a problem.
sed 's/\x1b\[[0-9;]*m//g' "$WORK/rg.log" | grep -E ' (ERROR|WARN) ' | grep -v 'Illegal SNI extension' |
  tail -n 5 >"$WORK/rg-warnings.txt" || true

# ---- 4b. Optional profile (BENCH_PERF=1): after the measurements, not part of the figures -----
ctxt_switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n + 0}'; }
if [ "${BENCH_PERF:-0}" = 1 ]; then
  command -v perf >/dev/null || fail "BENCH_PERF=1 needs perf (apt-get install linux-perf)"
  for key in sandbox broker; do
    if [ "$key" = sandbox ]; then
      export WRK_BODY=$SANDBOX_BODY WRK_CONTENT_TYPE=application/x-www-form-urlencoded WRK_BEARER= url=$SANDBOX_URL
    else
      new_session
      export WRK_BODY=$BROKER_BODY WRK_CONTENT_TYPE=application/json WRK_BEARER=$TOKEN url=$BROKER_URL
    fi
    say "perf: profiling restoregate under the $key load (12 s)"
    WRK_REPORT=$WORK/perf.$key.json timeout 60 wrk -t"$THREADS" -c"$CONNS" -d14s -s "$BENCH/wrk/post.lua" "$url" >"$WORK/perf.$key.wrk" 2>&1 &
    wrk_pid=$!
    sleep 1
    cs0=$(ctxt_switches "$RG_PID")
    opens0=$(awk '/^Tcp:/ {n++; if (n == 2) print $6}' /proc/net/snmp)
    (sleep 6; ss -Htn state established "( sport = :$RG_PORT )" | wc -l >"$WORK/perf.$key.conns") &
    timeout 60 perf record -F 499 -p "$RG_PID" -o "$WORK/perf.$key.data" -- sleep 12 >"$WORK/perf.$key.log" 2>&1 || true
    cs1=$(ctxt_switches "$RG_PID")
    opens1=$(awk '/^Tcp:/ {n++; if (n == 2) print $6}' /proc/net/snmp)
    wait "$wrk_pid" || true
    {
      echo "# perf profile of restoregate under the $key load (wrk -t$THREADS -c$CONNS), $(date -u '+%Y-%m-%d %H:%M UTC')"
      echo "# $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.0f req/s during the profiled run" % r["rps"])' "$WORK/perf.$key.json" 2>/dev/null || echo '? req/s')"
      echo "# context switches of restoregate's threads during 12 s: $((cs1 - cs0))"
      echo "# TCP connections opened on the machine during 12 s (wrk's were open before): $((opens1 - opens0))"
      echo "# connections established to restoregate's port mid-run (wrk's $CONNS + outbound to the authority): $(cat "$WORK/perf.$key.conns" 2>/dev/null || echo '?')"
      echo
      echo "## by thread name"
      perf report -i "$WORK/perf.$key.data" --no-children --sort comm --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 15 || true
      echo
      echo "## by shared object"
      perf report -i "$WORK/perf.$key.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 15 || true
      echo
      echo "## top symbols"
      perf report -i "$WORK/perf.$key.data" --no-children --sort dso,sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 60 || true
    } >"$BENCH/perf-$key.txt"
    [ "$key" = sandbox ] || stop_session
    say "perf: wrote bench/perf-$key.txt"
  done
fi

# ---- 5. Report --------------------------------------------------------------------------------
RUSTC=$(rustc --version 2>/dev/null || echo unknown)
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(cd "$ROOT" && { git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo ", with uncommitted changes"; } || true)
export BENCH_MACHINE="$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
export BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
export BENCH_VERSIONS="restoregate $COMMIT$DIRTY (release build, $RUSTC); oidc-provider $OP_VERSION on node $(node --version); $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
export BENCH_OP_SCHEME=$OP_SCHEME BENCH_CONFIG="wrk -t$THREADS -c$CONNS -d${DURATION}s --latency after a ${WARMUP}s warm-up; $ROUNDS round(s) of A, B, C in turn"
export BENCH_RG_WARNINGS="$(cat "$WORK/rg-warnings.txt")"
touch "$WORK/follower.jsonl"
python3 - "$RESULTS" "$WORK/follower.jsonl" >"$WORK/results.md" <<'EOF'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
follower = [json.loads(l) for l in open(sys.argv[2])]
env = os.environ
def best(key):
    rs = [r for r in rows if r["key"] == key]
    if not rs:
        return None
    b = dict(max(rs, key=lambda r: r["rps"]))
    b["hwm_kb"] = max(r["hwm_kb"] for r in rs)
    b["rounds"] = rs
    return b
def errors(r):
    return r["non_2xx_3xx"] + r["errors_connect"] + r["errors_read"] + r["errors_write"] + r["errors_timeout"]
def ms(us):
    return "%.2f ms" % (us / 1000)
def mib(kb):
    return "%.0f MiB" % (kb / 1024)
def cpu_per_req(r):
    return "%.0f µs" % (r["cpu_s"] * 1e6 / r["requests"]) if r["requests"] else "n/a"
A, B, C = best("sandbox"), best("oidc"), best("broker")
names = {
    "sandbox": "A. sandbox `POST /sandbox/{tenant}/oauth2/v2.0/devicecode` (HTTPS)",
    "oidc": f"B. oidc-provider `POST /device/auth` ({env['BENCH_OP_SCHEME']})",
    "broker": "C. restoregate `POST /v5/RestoreSessions/{id}/organization/restoreDeviceCode` (HTTPS, end to end)",
}
out = []
p = out.append
p("# restoregate device-code bench")
p("")
p(f"- Machine: {env['BENCH_MACHINE']}")
p(f"- Date: {env['BENCH_DATE']}")
p(f"- Software: {env['BENCH_VERSIONS']}")
p(f"- Load: {env['BENCH_CONFIG']}; the figures of each target are from its round with the most requests per second (every round is listed below); peak RSS is VmHWM of the server process, reset (`echo 5 > /proc/PID/clear_refs`) before each measured run, the largest over the rounds")
p("- wrk, both servers and other users of the machine share the same CPUs (see the load average of each run below); restoregate runs A and C in one process, so C's server CPU includes the sandbox authority's work that C calls")
p("- oidc-provider runs as one Node process (one core at most) with its default storage, an in-memory LRU (nothing written to disk); the sandbox commits a row to SQLite (WAL) per call, and its table grows over the rounds")
p("- Each broker run has its own restore session, stopped after the run, and restoregate is then restarted (same data directory) so that every round starts alike; during a broker run the server also follows (polls) the codes issued since its warm-up began, as it does in service")
p("")
p("| target | req/s | p50 | p99 | peak RSS | server CPU / req | errors |")
p("|---|---:|---:|---:|---:|---:|---:|")
for key, r in (("sandbox", A), ("oidc", B), ("broker", C)):
    p(f"| {names[key]} | {r['rps']:.0f} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | {mib(r['hwm_kb'])} | {cpu_per_req(r)} | {errors(r)} |")
p("")
rps_ratio = A["rps"] / B["rps"]
p99_ratio = A["p99_us"] / B["p99_us"]
broker_ratio = C["rps"] / A["rps"]
added_p50 = (C["p50_us"] - A["p50_us"]) / 1000
met = lambda ok: "**met**" if ok else "**not met**"
p("## Targets")
p("")
p(f"- Sandbox vs oidc-provider: **{rps_ratio:.2f}×** the requests per second (target ≥ 3×: {met(rps_ratio >= 3)}); "
  f"p99 {ms(A['p99_us'])} vs {ms(B['p99_us'])}, ratio **{p99_ratio:.2f}** (target ≤ 1, no worse: {met(A['p99_us'] <= B['p99_us'])}).")
p(f"- Broker vs authority alone: **{broker_ratio:.2f}×** the authority's requests per second (target ≥ 0.5: {met(broker_ratio >= 0.5)}); "
  f"added p50 **{added_p50:+.2f} ms** ({ms(C['p50_us'])} vs {ms(A['p50_us'])}; target < 1 ms: {met(added_p50 < 1)}).")
if follower:
    shares = ", ".join("%.0f%%" % (f["idle_cpu_share"] * 100) for f in follower)
    p(f"- Following the codes: with no request, in the 3 s right after each broker run (its codes still pending), restoregate used {shares} of one core "
      "polling the sandbox token endpoint at its poll budget. The same polling runs alongside the broker's requests during its runs.")
if any(errors(r) for r in rows):
    p("- **Some runs had errors** (non-2xx answers or socket errors): see the rounds below; those figures are not comparable.")
c1 = {k: best(k + "-c1") for k in ("sandbox", "oidc", "broker")}
if all(c1.values()):
    p("")
    p("## Supplementary: one connection (no queueing)")
    p("")
    p("With 32 connections every server is saturated and p50 is mostly queueing (≈ connections ÷ req/s). "
      "One connection (`wrk -t1 -c1`) shows each request's service time; the broker's added p50 here is its own work per call "
      "(bearer lookup, session and organization reads, the outbound HTTPS call, the sealed write) on top of the authority's.")
    p("")
    p("| target | req/s | p50 | p99 | server CPU / req |")
    p("|---|---:|---:|---:|---:|")
    for key in ("sandbox", "oidc", "broker"):
        r = c1[key]
        p(f"| {names[key].split(' ', 1)[0]} {key} | {r['rps']:.0f} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | {cpu_per_req(r)} |")
    p("")
    p(f"- Added p50 at one connection: **{(c1['broker']['p50_us'] - c1['sandbox']['p50_us']) / 1000:+.2f} ms**; "
      f"sandbox vs oidc-provider p50 at one connection: {ms(c1['sandbox']['p50_us'])} vs {ms(c1['oidc']['p50_us'])}.")
p("")
p("## Every run")
p("")
p("| run | round | req/s | p50 | p90 | p99 | max | peak RSS | server CPU / req | errors | load avg (1 min) before |")
p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    p(f"| {r['key']} (-t{r['threads']} -c{r['connections']} -d{r['duration']}s) | {r['round']} | {r['rps']:.0f} | {ms(r['p50_us'])} | {ms(r['p90_us'])} | "
      f"{ms(r['p99_us'])} | {ms(r['max_us'])} | {mib(r['hwm_kb'])}{'' if r['hwm_reset'] else ' (not reset)'} | {cpu_per_req(r)} | {errors(r)} | {r['load1']:.2f} |")
if env.get("BENCH_RG_WARNINGS"):
    p("")
    p("restoregate logged warnings or errors during the run (last lines):")
    p("")
    p("```")
    p(env["BENCH_RG_WARNINGS"])
    p("```")
print("\n".join(out))
EOF
cp "$WORK/results.md" "$BENCH/results.md"
echo
cat "$BENCH/results.md"
echo
say "done in $((SECONDS - START))s; written to bench/results.md"
