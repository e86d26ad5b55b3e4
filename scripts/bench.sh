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
# BENCH_ARGS="--replicas N ..." runs the signing benchmark three times in one run: against
# one enclave over SQLite (`make run`), one replica over PostgreSQL and N replicas over
# PostgreSQL (`make run-cluster`, the clients spread over the replicas), each next to the
# crypto floor measured in that run, and prints them side by side. Server CPU is the whole
# machine's less the benchmark's: PostgreSQL's counts.
#
# BENCH_ARGS="boot-replay --records N" (default 100000) runs no stack: it times, in process,
# a restarted enclave replaying N signing decisions after its snapshot, against a boot with
# none. BENCH_ARGS="audit-chain ..." likewise runs without the stack, and so does
# BENCH_ARGS="threshold ..." (2-of-3 FROST and CGGMP24 among three in-process session
# engines; --primes FILE skips the safe-prime generation, --frost/--ecdsa/--presigned N).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release -p strongroom-enclave -p strongroom-mock-kms -p strongroom-proxy \
  -p strongroom-cli -p strongroom-bench --features strongroom-enclave/mock
case "${1:-}" in
  boot-replay|audit-chain|threshold) exec target/release/strongroom-bench "$@" ;;
esac
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
replicas=""
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --replicas) replicas=${2:?--replicas N}; shift 2 ;;
    --replicas=*) replicas=${1#*=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
data=""; run_pid=""
cleanup() {
  [ -n "$run_pid" ] && { kill -TERM "$run_pid" 2>/dev/null || true; wait "$run_pid" 2>/dev/null || true; }
  [ -n "$data" ] && rm -rf "$data"
  run_pid=""; data=""
}
trap cleanup EXIT INT TERM

# One enclave over SQLite, as `make run` starts it; extra arguments go to the benchmark.
bench_single() {
  data=$(mktemp -d "${TMPDIR:-/tmp}/strongroom-bench.XXXXXX")
  local http="127.0.0.1:$(port)" kms="127.0.0.1:$(port)"
  STRONGROOM_SKIP_BUILD=1 STRONGROOM_PROFILE=release STRONGROOM_DATA_DIR="$data" \
    STRONGROOM_HTTP_ADDR="$http" STRONGROOM_KMS_ADDR="$kms" RUST_LOG=warn \
    bash scripts/run.sh > "$data/run.log" 2>&1 &
  # TERM, not INT: a background job of a non-interactive shell starts with SIGINT
  # ignored, and bash cannot trap a signal ignored on entry, so run.sh would never hear
  # an INT.
  run_pid=$!
  for _ in $(seq 1 300); do
    target/release/strongroom --url "http://$http" health >/dev/null 2>&1 && break
    sleep 0.1
  done
  target/release/strongroom --url "http://$http" health >/dev/null || { cat "$data/run.log"; exit 1; }
  # The enclave's and the proxy's memory over the run, unless the caller chose what to
  # watch. run.sh starts both with this scratch directory in their arguments (the
  # enclave's socket), which no other process on the machine has; the binary's name keeps
  # out the tee and subshells around them.
  local watch=() name pattern pid
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
  local rc=0
  target/release/strongroom-bench --url "http://$http" --principal-key "$data/dev/principal.key" \
    ${watch[@]+"${watch[@]}"} "$@" || rc=$?
  cleanup
  return "$rc"
}

# N replicas over PostgreSQL, as `make run-cluster` starts them; the clients spread over
# the replicas' own URLs (client i to replica i mod N).
bench_cluster() {
  local n=$1; shift
  data=$(mktemp -d "${TMPDIR:-/tmp}/strongroom-bench.XXXXXX")
  # As root, PostgreSQL runs as the postgres user, which must reach its directory in here.
  chmod 0755 "$data"
  local first=$(( 20000 + RANDOM % 10000 )) i urls=()
  STRONGROOM_SKIP_BUILD=1 STRONGROOM_PROFILE=release STRONGROOM_DATA_DIR="$data" \
    STRONGROOM_HTTP_ADDR="127.0.0.1:$(port)" STRONGROOM_KMS_ADDR="127.0.0.1:$(port)" \
    STRONGROOM_REPLICAS="$n" STRONGROOM_REPLICA_PORT="$first" \
    STRONGROOM_PG_PORT=$(( first + 20 )) RUST_LOG=warn \
    bash scripts/run-cluster.sh > "$data/run.log" 2>&1 &
  run_pid=$!
  for i in $(seq 0 $(( n - 1 ))); do urls+=("http://127.0.0.1:$(( first + i ))"); done
  for _ in $(seq 1 600); do
    grep -q "cluster listening" "$data/run.log" 2>/dev/null && break
    kill -0 "$run_pid" 2>/dev/null || { cat "$data/run.log"; exit 1; }
    sleep 0.1
  done
  for u in "${urls[@]}"; do
    target/release/strongroom --url "$u" health >/dev/null || { cat "$data/run.log"; exit 1; }
  done
  local rc=0
  target/release/strongroom-bench --url "$(IFS=,; echo "${urls[*]}")" \
    --principal-key "$data/dev/principal.key" "$@" || rc=$?
  cleanup
  return "$rc"
}

if [ -z "$replicas" ]; then
  bench_single ${args[@]+"${args[@]}"}
  exit
fi
out=$(mktemp -d "${TMPDIR:-/tmp}/strongroom-bench-out.XXXXXX")
echo "== one enclave over SQLite ==" >&2
# A run that fails (an error seen) still writes its figures; the table says which failed,
# and so does the exit status.
status=0
bench_single ${args[@]+"${args[@]}"} --json "$out/sqlite.json" || status=1
echo "== one replica over PostgreSQL ==" >&2
bench_cluster 1 ${args[@]+"${args[@]}"} --json "$out/pg1.json" || status=1
echo "== $replicas replicas over PostgreSQL ==" >&2
bench_cluster "$replicas" ${args[@]+"${args[@]}"} --json "$out/pgN.json" || status=1
python3 - "$out" "$replicas" <<'PY'
import json, sys
out, n = sys.argv[1], sys.argv[2]
rows = [("1 enclave, SQLite", "sqlite"), ("1 replica, PostgreSQL", "pg1"), (n + " replicas, PostgreSQL", "pgN")]
print()
print(f"{'':24} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'server µs/req':>14} {'÷ floor':>8} {'floor µs':>9} {'errors':>7}")
for label, name in rows:
    try:
        r = json.load(open(f"{out}/{name}.json"))
    except OSError:
        print(f"{label:24} (no figures: the run did not finish)")
        continue
    f = r["full_stack"]
    lat = f.get("latency") or {}
    cpu = (f.get("cpu_per_request") or {}).get("server_us")
    floor = r["baseline"]["crypto_floor"]["mean_us"]
    ratio = r["ratios"].get("server_cpu_vs_crypto_floor")
    fmt = lambda v, spec: format(v, spec) if v is not None else "-"
    print(f"{label:24} {f['throughput_rps']:9.0f} {fmt(lat.get('p50_us', 0) / 1000, '8.2f')} "
          f"{fmt(lat.get('p99_us', 0) / 1000, '8.2f')} {fmt(cpu, '14.0f')} {fmt(ratio, '7.1f')}x "
          f"{floor:9.1f} {f['errors']:7d}")
print(f"\n(reports: {out}/*.json)")
PY
exit "$status"
