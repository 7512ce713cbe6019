#!/usr/bin/env bash
# Runs every test of restoregate: installs what the tests need (scripts/test-deps.sh), then the
# Rust unit and integration tests, then each interoperability test in tests/interop/*.sh against
# real peers (MSAL for Python, npm oidc-provider, headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
cargo build --locked
run_tests() {
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --no-fail-fast "$@"
  else
    cargo test --locked --no-fail-fast "$@"
  fi
}
# Every test, on the embedded SQLite store.
run_tests
# The integration suite again on PostgreSQL: the conformance suite of the second store. Each test
# server gets its own database rg_test_*; old ones are dropped first.
export RESTOREGATE_TEST_POSTGRES="${RESTOREGATE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
if command -v psql >/dev/null 2>&1; then
  psql "$RESTOREGATE_TEST_POSTGRES" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'rg\_test\_%'" |
    while read -r db; do psql "$RESTOREGATE_TEST_POSTGRES" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null; done
fi
run_tests --test api
unset RESTOREGATE_TEST_POSTGRES
for t in tests/interop/*.sh; do
  [ -e "$t" ] || continue
  echo "== interop: $t"
  bash "$t"
done
echo "all tests passed"
