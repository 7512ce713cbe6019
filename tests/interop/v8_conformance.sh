#!/usr/bin/env bash
# The v8 operations' answers validate against the vendor's v8 OpenAPI document (a copy in
# tests/interop/reference/): see v8_conformance.py. Runs from the repository root after
# `cargo build` (scripts/test.sh); starts target/debug/restoregate (or $RESTOREGATE_BIN) itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
REFERENCE=tests/interop/reference/vb365-rest-v8-restore-subset.openapi.json
if [ ! -f "$REFERENCE" ]; then
  echo "v8_conformance: $REFERENCE is missing: copy it from shared/reference/ (../shared/reference/ beside the repository)" >&2
  exit 1
fi
source tests/interop/server.bash
start_restoregate v8_conformance
RG_BASE="$BASE" RG_CA="$DATA/tls-cert.pem" RG_TOKEN="$TOKEN" RG_ORG_ID="$ORG_ID" RG_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
  timeout -k 5 120 .venv/bin/python tests/interop/v8_conformance.py
