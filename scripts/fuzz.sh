#!/usr/bin/env bash
# Runs every cargo-fuzz target for FUZZ_SECONDS seconds each (default 60) and prints each
# run's executions and findings. Stable toolchain: `-s none` (AddressSanitizer needs nightly).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cd "$root/fuzz"
targets=$(cargo fuzz list)
mkdir -p logs
status=0
for t in $targets; do
  mkdir -p "corpus/$t"
  if [ -d "seeds/$t" ]; then cp -n "seeds/$t"/* "corpus/$t/" 2>/dev/null || true; fi
  log="logs/$t.log"
  if cargo fuzz run -s none "$t" "corpus/$t" -- -max_total_time="$seconds" >"$log" 2>&1; then
    execs=$(grep -oE '^Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || echo "?")
    echo "fuzz $t: ${seconds}s, $execs executions, no findings"
  else
    status=1
    echo "fuzz $t: FAILED — see fuzz/$log and fuzz/artifacts/$t"
    grep -E 'panicked|SUMMARY|ERROR' "$log" | head -5 || true
  fi
done
exit $status
