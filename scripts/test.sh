#!/usr/bin/env bash
# Runs every test of restoregate: installs what the tests need (scripts/test-deps.sh), then the
# Rust unit and integration tests, then each interoperability test in tests/interop/*.sh against
# real peers (MSAL for Python, npm oidc-provider, headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
cargo build --locked
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
else
  cargo test --locked --no-fail-fast
fi
for t in tests/interop/*.sh; do
  [ -e "$t" ] || continue
  echo "== interop: $t"
  bash "$t"
done
echo "all tests passed"
