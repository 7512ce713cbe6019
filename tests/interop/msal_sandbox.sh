#!/usr/bin/env bash
# MSAL for Python completes a device-code sign-in against restoregate's sandbox identity provider,
# approved in headless Chromium; see msal_sandbox.py. Runs from the repository root; needs .venv
# with tests/interop/requirements.txt (scripts/test-deps.sh) and /usr/bin/chromium.
# RESTOREGATE_BIN=path skips the build and tests that binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .venv/bin/python ]; then
  echo "msal_sandbox: .venv is missing: run scripts/test-deps.sh first" >&2
  exit 1
fi
if [ -z "${RESTOREGATE_BIN:-}" ]; then
  # scripts/test.sh has built already (and fails on a broken build); when run alone, build here,
  # but a tree that does not compile mid-edit still lets the last binary be tested, said loudly.
  if ! cargo build --locked --quiet; then
    if [ -x target/debug/restoregate ]; then
      echo "msal_sandbox: WARNING: cargo build failed; testing the existing target/debug/restoregate" >&2
    else
      exit 1
    fi
  fi
fi
exec timeout -k 10 150 .venv/bin/python tests/interop/msal_sandbox.py "$@"
