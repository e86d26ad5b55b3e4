#!/usr/bin/env bash
# `make run`: the whole system in mock mode, in the foreground — enclave (mock NSM, Unix
# socket), mock KMS (real KMS JSON protocol, key policy bound to the enclave's PCR0) and
# the parent proxy. State lives in $STRONGROOM_DATA_DIR (default ./data), so a restart finds
# the same keys. Development keys (three admins, threshold 2, and one principal) and the
# genesis document live in $STRONGROOM_DATA_DIR/dev; the CLI signs with dev/principal.key
# by default. Ctrl-C stops all three.
#
# Environment: STRONGROOM_DATA_DIR, STRONGROOM_HTTP_ADDR (proxy, default 127.0.0.1:8080),
# STRONGROOM_KMS_ADDR (mock KMS, default 127.0.0.1:4599), STRONGROOM_PROFILE (release|debug),
# STRONGROOM_POLICY_PCR0 (hex; default: the mock enclave's own PCR0 — set it to something
# else to watch KMS refuse the enclave).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${STRONGROOM_DATA_DIR:-"$root/data"}
http_addr=${STRONGROOM_HTTP_ADDR:-127.0.0.1:8080}
kms_addr=${STRONGROOM_KMS_ADDR:-127.0.0.1:4599}
profile=${STRONGROOM_PROFILE:-release}

if [ -z "${STRONGROOM_SKIP_BUILD:-}" ]; then
  flag=(); [ "$profile" = release ] && flag=(--release)
  echo "building ($profile)…" >&2
  cargo build "${flag[@]}" -p strongroom-enclave -p strongroom-mock-kms -p strongroom-proxy \
    -p strongroom-cli --features strongroom-enclave/mock >&2
fi
bin="${CARGO_TARGET_DIR:-$root/target}/$profile"

mkdir -p "$data"
data=$(cd "$data" && pwd)
# The mock enclave's measurements: fixed per data directory, like an image's PCRs.
pcrs="$data/mock-pcrs.json"
if [ ! -f "$pcrs" ]; then
  p() { printf 'strongroom mock enclave PCR%s' "$1" | sha384sum | cut -d' ' -f1; }
  printf '{"0": "%s", "1": "%s", "2": "%s"}\n' "$(p 0)" "$(p 1)" "$(p 2)" > "$pcrs"
fi
# The KMS key policy: `strongroom kms-policy` for these measurements (PCR0 replaced by
# STRONGROOM_POLICY_PCR0 if set, to watch KMS refuse), plus key administration. The mock
# KMS checks conditions, not principals; the ARNs are placeholders of the right shape.
policy_pcrs="$data/kms-policy-pcrs.json"
if [ -n "${STRONGROOM_POLICY_PCR0:-}" ]; then
  sed "s/\"0\": \"[0-9a-f]*\"/\"0\": \"$STRONGROOM_POLICY_PCR0\"/" "$pcrs" > "$policy_pcrs"
else
  cp "$pcrs" "$policy_pcrs"
fi
policy="$data/kms-key-policy.json"
"$bin/strongroom" kms-policy --pcrs "$policy_pcrs" \
  --role arn:aws:iam::111122223333:role/strongroom-parent \
  --admin-role arn:aws:iam::111122223333:role/strongroom-admin > "$policy"

# Development admins and principal, and the genesis document the first boot seals.
"$bin/strongroom" dev init --dir "$data" >&2

pids=()
logs="$data/logs"; mkdir -p "$logs"
stop() {
  trap - INT TERM EXIT
  echo >&2; echo "stopping…" >&2
  # The proxy first, and alone: at a clean stop it takes a snapshot from the enclave.
  local i
  for (( i=${#pids[@]}-1; i>=0; i-- )); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  echo "stopped" >&2
}
# Ctrl-C or TERM at any point (even while waiting for readiness) stops everything and exits.
trap stop EXIT
trap 'stop; exit 130' INT TERM

# Starts a program with its stderr in a log file, and waits for its "listening" line.
start() {
  local name=$1; shift
  local out="$logs/$name.out"
  : > "$out"
  "$@" > "$out" 2> >(tee -a "$logs/$name.log" >&2) &
  pids+=($!)
  for _ in $(seq 1 200); do
    grep -q listening "$out" && { cat "$out" >&2; return 0; }
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "$name exited; see $logs/$name.log" >&2; exit 1; }
    sleep 0.05
  done
  echo "$name did not start within 10 s; see $logs/$name.log" >&2; exit 1
}

sock="$data/enclave.sock"
start enclave "$bin/strongroom-enclave" --listen "unix:$sock" --nsm "mock:$data/mock-nsm" --mock-pcrs "$pcrs"
start mock-kms "$bin/strongroom-mock-kms" --listen "$kms_addr" --state "$data/mock-kms" \
  --attestation-root "$data/mock-nsm/root.pem" --init-key alias/strongroom --init-policy "$policy"
start proxy "$bin/strongroom-proxy" --listen "$http_addr" --enclave "unix:$sock" \
  --db "$data/strongroom.sqlite" --kms-endpoint "http://$kms_addr" --kms-key-id alias/strongroom \
  --genesis "$data/dev/genesis.json" --rpc-tokens "$data/dev/rpc-tokens"

url="http://$http_addr"
for _ in $(seq 1 100); do
  "$bin/strongroom" --url "$url" health >/dev/null 2>&1 && break
  sleep 0.1
done
if "$bin/strongroom" --url "$url" health >/dev/null 2>&1; then
  cat >&2 <<MSG

Strongroom (mock mode) is ready at $url — data in $data
Try (the CLI signs requests with $data/dev/principal.key):
  export STRONGROOM_URL=$url STRONGROOM_DATA_DIR=$data
  $bin/strongroom keys create --label treasury
  $bin/strongroom sign digest --key ID --digest 0x$(printf '%064d' 0)
  $bin/strongroom policy show
Ctrl-C stops the enclave, the mock KMS and the proxy.
MSG
else
  echo "the proxy is up but the enclave is not unsealed yet; see $logs/proxy.log ($url/v1/health)" >&2
fi
wait -n "${pids[@]}" || true
echo "a component exited; see $logs/" >&2
