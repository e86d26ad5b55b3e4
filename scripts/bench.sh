#!/usr/bin/env bash
# `make bench`: builds release binaries, starts the whole system in mock mode on a scratch
# data directory, and runs the end-to-end signing benchmark against it (HTTP → proxy →
# Unix socket → enclave), next to raw secp256k1 signing and the enclave's crypto floor
# (stamp verify + sealed-key open + sign + answer signature) measured in the same run. Every request is
# stamped with the development principal key scripts/run.sh creates (strongroom dev init);
# the stamping runs in the bench's clients, on the same cores as the proxy and enclave.
# The benchmark key is not destroyed (that takes an admin quorum): the scratch data
# directory goes at the end instead.
#
# Arguments go to strongroom-bench (make bench BENCH_ARGS="..."), for example:
#   --clients N            concurrent keep-alive clients (default 8)
#   --duration SECS        measured time (default 10); --warmup SECS before it (default 2)
#   --max-requests N       stop after N requests in all (default: no limit)
#   --payload transaction  1-wei Sepolia transfers instead of random digests
#   --segment N            server CPU per request of the first N and the last N measured
#                          requests, when the run completes 2·N (default 100000)
#   --watch NAME=PID       sample a process's resident memory (repeatable); by default this
#                          script watches the enclave and the proxy it started
#   --sample-every SECS    time between memory samples (default 30)
#   --half-load SECS       then SECS more, open loop at half the measured throughput, with
#                          its latency next to the peak's (default 0: none)
#   --json FILE            every figure as JSON too
# A long run, e.g.: BENCH_ARGS="--duration 600 --segment 100000 --half-load 60 --json r.json"
#
# BENCH_ARGS="boot-replay --records N" (default 100000) runs no stack: it times, in process,
# a restarted enclave replaying N signing decisions after its snapshot, against a boot with
# none. BENCH_ARGS="audit-chain ..." likewise runs without the stack.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release -p strongroom-enclave -p strongroom-mock-kms -p strongroom-proxy \
  -p strongroom-cli -p strongroom-bench --features strongroom-enclave/mock
case "${1:-}" in
  boot-replay|audit-chain) exec target/release/strongroom-bench "$@" ;;
esac
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

# The enclave's and the proxy's memory over the run, unless the caller chose what to watch.
# run.sh starts both with this scratch directory in their arguments (the enclave's socket),
# which no other process on the machine has; the binary's name keeps out the tee and
# subshells around them.
watch=()
case " $* " in
  *" --watch "*|*" --watch="*) ;;
  *)
    for name in enclave proxy; do
      case $name in
        enclave) pattern="strongroom-enclave --listen unix:$data/enclave.sock" ;;
        proxy) pattern="strongroom-proxy --listen $http --enclave unix:$data/enclave.sock" ;;
      esac
      if pid=$(pgrep -n -f -- "$pattern"); then
        watch+=(--watch "$name=$pid")
      else
        echo "bench: no $name process found; its memory is not sampled" >&2
      fi
    done
    ;;
esac
target/release/strongroom-bench --url "http://$http" --principal-key "$data/dev/principal.key" \
  ${watch[@]+"${watch[@]}"} "$@"
