#!/usr/bin/env bash
# `make bench`: builds release binaries, starts the whole system in mock mode on a scratch
# data directory, and runs the end-to-end signing benchmark against it (HTTP → proxy →
# Unix socket → enclave), next to raw secp256k1 signing and the enclave's crypto floor
# (stamp verify + sealed-key open + sign + answer signature) measured in the same run. Every request is
# stamped with the development principal key scripts/run.sh creates (strongroom dev init);
# the stamping runs in the bench's clients, on the same cores as the proxy and enclave.
# The benchmark key is not destroyed (that takes an admin quorum): the scratch data
# directory goes at the end instead.
# Arguments go to strongroom-bench (e.g. make bench BENCH_ARGS="--clients 16", or
# BENCH_ARGS="--payload transaction": 1-wei Sepolia transfers, capped at 4000 requests
# because each takes a velocity-ledger entry, 4096 per 24 h).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release -p strongroom-enclave -p strongroom-mock-kms -p strongroom-proxy \
  -p strongroom-cli -p strongroom-bench --features strongroom-enclave/mock
data=$(mktemp -d "${TMPDIR:-/tmp}/strongroom-bench.XXXXXX")
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http="127.0.0.1:$(port)"; kms="127.0.0.1:$(port)"
STRONGROOM_SKIP_BUILD=1 STRONGROOM_PROFILE=release STRONGROOM_DATA_DIR="$data" \
  STRONGROOM_HTTP_ADDR="$http" STRONGROOM_KMS_ADDR="$kms" RUST_LOG=warn \
  bash scripts/run.sh > "$data/run.log" 2>&1 &
run_pid=$!
# TERM, not INT: a background job of a non-interactive shell starts with SIGINT ignored,
# and bash cannot trap a signal ignored on entry, so run.sh would never hear an INT.
cleanup() { kill -TERM "$run_pid" 2>/dev/null || true; wait "$run_pid" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT INT TERM
for _ in $(seq 1 300); do
  target/release/strongroom --url "http://$http" health >/dev/null 2>&1 && break
  sleep 0.1
done
target/release/strongroom --url "http://$http" health >/dev/null || { cat "$data/run.log"; exit 1; }
target/release/strongroom-bench --url "http://$http" --principal-key "$data/dev/principal.key" "$@"
