#!/usr/bin/env bash
# Runs every cargo-fuzz target for FUZZ_SECONDS seconds each (default 60) and prints each
# run's executions and findings. Stable toolchain: `-s none` (AddressSanitizer needs nightly).
# Two fuzz workspaces: fuzz/ (the main workspace's decoders) and eif-build/measure/fuzz/
# (strongroom-eif's image layout check, kept apart with AWS's EIF crate).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
target_dir=${CARGO_TARGET_DIR:-$root/target}

# A small valid image as the layout fuzzer's seed, so it starts past the magic and header.
eif_seed() {
  local seeds=$1 tool="$target_dir/debug/strongroom-eif" tmp
  [ -x "$tool" ] || (cd "$root" && make -s eif-tool >/dev/null)
  tmp=$(mktemp -d)
  head -c 4096 /dev/zero > "$tmp/kernel"
  printf 'init' > "$tmp/init.cpio"
  printf 'app' > "$tmp/app.cpio"
  "$tool" build --kernel "$tmp/kernel" --cmdline "console=ttyS0" --ramdisk "$tmp/init.cpio" \
    --ramdisk "$tmp/app.cpio" --output "$seeds/seed.eif" >/dev/null
  rm -rf "$tmp"
}

status=0
for dir in "$root/fuzz" "$root/eif-build/measure/fuzz"; do
  cd "$dir"
  mkdir -p logs
  for t in $(cargo fuzz list); do
    mkdir -p "corpus/$t"
    if [ -d "seeds/$t" ]; then cp -n "seeds/$t"/* "corpus/$t/" 2>/dev/null || true; fi
    if [ "$t" = eif_layout ] && [ ! -f "corpus/$t/seed.eif" ]; then eif_seed "corpus/$t"; fi
    log="logs/$t.log"
    rel=${dir#"$root"/}
    if cargo fuzz run -s none "$t" "corpus/$t" -- -max_total_time="$seconds" >"$log" 2>&1; then
      execs=$(grep -oE '^Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || echo "?")
      echo "fuzz $t: ${seconds}s, $execs executions, no findings"
    else
      status=1
      echo "fuzz $t: FAILED — see $rel/$log and $rel/artifacts/$t"
      grep -E 'panicked|SUMMARY|ERROR' "$log" | head -5 || true
    fi
  done
done
exit $status
