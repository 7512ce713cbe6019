#!/usr/bin/env bash
# Fuzzes restoregate's input decoders with libFuzzer (cargo-fuzz; the crate is fuzz/, with its own
# target directory fuzz/target):
#   json_decode  parse_value, strip_trailing_commas, decode into the request bodies
#   form_decode  the form decoding of the token endpoint and the sandbox page, query_map
#   parse_date   parse_date
#   user_code    normalize_user_code
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Builds the targets, then runs each (all by default) for SECONDS (default 600), one after another,
# under `nice -n 19` so that other work on the machine keeps the CPU. On the stable toolchain there
# is no sanitizer (-s none). Corpora grow in fuzz/corpus/<target> (the committed seeds are its
# seed-* files), a crashing input lands in fuzz/artifacts/<target>/, each run's log in
# fuzz/logs/<target>.log. Exits non-zero when any target crashed, timed out or failed to run (the
# others still run). Replay a crash: cd fuzz && cargo fuzz run -s none TARGET artifacts/TARGET/crash-…
# FUZZ_ALLOW_YEARS_OUTSIDE_RFC3339=1 lets parse_date's known finding through (fuzz_targets/parse_date.rs).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs=${1:-600}
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2; }
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(json_decode form_decode parse_date user_code)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  nice -n 19 cargo install cargo-fuzz --locked
fi

echo "== building the fuzz targets (fuzz/target)"
nice -n 19 cargo fuzz build -s none

mkdir -p logs
failed=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== fuzz: $t for ${secs}s"
  # -timeout: an input taking over 10 s is reported as a failure (a hang, or quadratic time).
  if nice -n 19 cargo fuzz run -s none "$t" "corpus/$t" -- \
      -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"logs/$t.log" 2>&1; then
    status=ok
  else
    status="FAILED (exit $?; see fuzz/logs/$t.log and fuzz/artifacts/$t/)"
    failed+=("$t")
  fi
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "logs/$t.log" | tail -n 1 | grep -o '[0-9]*$' || true)
  took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "logs/$t.log" | tail -n 1 || true)
  corpus=$(find "corpus/$t" -type f | wc -l)
  echo "   $t: $status; executions: ${runs:-?}; ${took:-no 'Done' line}; corpus: $corpus inputs"
  grep -E '^(==[0-9]+== ERROR|thread .* panicked|SUMMARY|artifact_prefix|Test unit written)' "logs/$t.log" | head -n 10 || true
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]}"
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${secs}s each, no crash"
