#!/usr/bin/env bash
# MSAL for Python completes a device-code sign-in against restoregate's sandbox identity provider,
# approved in headless Chromium; see msal_sandbox.py. Run from anywhere; needs .venv with
# tests/interop/requirements.txt (scripts/test-deps.sh) and /usr/bin/chromium.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .venv/bin/python ]; then
  echo "msal_sandbox: .venv is missing: run scripts/test-deps.sh first" >&2
  exit 1
fi
if [ -z "${RESTOREGATE_BIN:-}" ]; then
  cargo build --locked --quiet
fi
exec timeout -k 10 150 .venv/bin/python tests/interop/msal_sandbox.py "$@"
