#!/usr/bin/env bash
# `make run-cluster`: one deployment as several replicas, in mock mode, in the foreground —
# PostgreSQL (scripts/pg.sh, on loopback), one mock KMS, N replicas (an enclave and a proxy
# each, `--replica rI`, over the one database) and HAProxy in front of them with health
# checks on /v1/health. Clients use one URL (HAProxy's); each replica is also reachable on
# its own port. A replica's enclave or proxy that dies is started again (as systemd's
# Restart=always does), and the replica catches up and serves again. Ctrl-C stops
# everything. State lives in $STRONGROOM_DATA_DIR (default ./data-cluster).
#
# Environment: STRONGROOM_DATA_DIR, STRONGROOM_HTTP_ADDR (HAProxy, default 127.0.0.1:8080),
# STRONGROOM_REPLICAS (default 3), STRONGROOM_REPLICA_PORT (the first replica's proxy port,
# default 8081; the others follow), STRONGROOM_KMS_ADDR (default 127.0.0.1:4599),
# STRONGROOM_PG_PORT (default 54329), STRONGROOM_DATABASE_URL (use this PostgreSQL instead
# of starting one), STRONGROOM_PROFILE (release|debug), STRONGROOM_SKIP_BUILD.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${STRONGROOM_DATA_DIR:-"$root/data-cluster"}
http_addr=${STRONGROOM_HTTP_ADDR:-127.0.0.1:8080}
kms_addr=${STRONGROOM_KMS_ADDR:-127.0.0.1:4599}
replicas=${STRONGROOM_REPLICAS:-3}
first_port=${STRONGROOM_REPLICA_PORT:-8081}
pg_port=${STRONGROOM_PG_PORT:-54329}
profile=${STRONGROOM_PROFILE:-release}

bash "$root/scripts/test-env.sh" --system
if [ -z "${STRONGROOM_SKIP_BUILD:-}" ]; then
  flag=(); [ "$profile" = release ] && flag=(--release)
  echo "building ($profile)…" >&2
  cargo build "${flag[@]}" -p strongroom-enclave -p strongroom-mock-kms -p strongroom-proxy \
    -p strongroom-cli --features strongroom-enclave/mock >&2
fi
bin="${CARGO_TARGET_DIR:-$root/target}/$profile"
haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)

mkdir -p "$data"
data=$(cd "$data" && pwd)
logs="$data/logs"; mkdir -p "$logs"
# The mock enclave's measurements (one image: every replica has the same PCRs).
pcrs="$data/mock-pcrs.json"
if [ ! -f "$pcrs" ]; then
  p() { printf 'strongroom mock enclave PCR%s' "$1" | sha384sum | cut -d' ' -f1; }
  printf '{"0": "%s", "1": "%s", "2": "%s"}\n' "$(p 0)" "$(p 1)" "$(p 2)" > "$pcrs"
fi
policy="$data/kms-key-policy.json"
"$bin/strongroom" kms-policy --pcrs "$pcrs" \
  --role arn:aws:iam::111122223333:role/strongroom-parent \
  --admin-role arn:aws:iam::111122223333:role/strongroom-admin > "$policy"
"$bin/strongroom" dev init --dir "$data" >&2

pids=()
stop() {
  trap - INT TERM EXIT
  echo >&2; echo "stopping…" >&2
  local i
  for (( i=${#pids[@]}-1; i>=0; i-- )); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  if [ -z "${STRONGROOM_DATABASE_URL:-}" ]; then
    bash "$root/scripts/pg.sh" "$data/pg" stop || true
  fi
  echo "stopped" >&2
}
trap stop EXIT
trap 'stop; exit 130' INT TERM

# Runs a program again whenever it exits, its output appended to logs/NAME.log, until TERM.
keep() {
  local name=$1; shift
  (
    child=
    trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM INT
    while :; do
      "$@" >>"$logs/$name.log" 2>&1 &
      child=$!
      wait "$child" && code=0 || code=$?
      echo "[run-cluster] $name exited ($code); starting it again in 1 s" >>"$logs/$name.log"
      sleep 1
    done
  ) &
  pids+=($!)
}

# Waits until `test` succeeds (10 s at most).
wait_until() {
  local what=$1; shift
  for _ in $(seq 1 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "$what did not come up within 10 s; see $logs/" >&2; exit 1
}

if [ -n "${STRONGROOM_DATABASE_URL:-}" ]; then
  database=$STRONGROOM_DATABASE_URL
else
  bash "$root/scripts/pg.sh" "$data/pg" start "$pg_port"
  database=$(bash "$root/scripts/pg.sh" "$data/pg" url)
fi
echo "database: ${database%%@*}@… (PostgreSQL)" >&2

keep mock-kms "$bin/strongroom-mock-kms" --listen "$kms_addr" --state "$data/mock-kms" \
  --attestation-root "$data/mock-nsm/root.pem" --init-key alias/strongroom --init-policy "$policy"

servers=""
for i in $(seq 1 "$replicas"); do
  name="r$i"
  port=$((first_port + i - 1))
  sock="$data/$name.sock"
  keep "$name-enclave" "$bin/strongroom-enclave" --listen "unix:$sock" --nsm "mock:$data/mock-nsm" \
    --mock-pcrs "$pcrs"
  wait_until "the enclave of $name" test -S "$sock"
  [ "$i" -eq 1 ] && wait_until "the mock KMS" bash -c "exec 3<>/dev/tcp/${kms_addr%:*}/${kms_addr#*:}"
  keep "$name-proxy" "$bin/strongroom-proxy" --listen "127.0.0.1:$port" --enclave "unix:$sock" \
    --database "$database" --replica "$name" --kms-endpoint "http://$kms_addr" \
    --kms-key-id alias/strongroom --genesis "$data/dev/genesis.json" \
    --rpc-tokens "$data/dev/rpc-tokens"
  # The first replica makes the deployment (first boot); the others join it.
  if [ "$i" -eq 1 ]; then
    for _ in $(seq 1 600); do
      "$bin/strongroom" --url "http://127.0.0.1:$port" health >/dev/null 2>&1 && break
      sleep 0.1
    done
  fi
  servers+="    server $name 127.0.0.1:$port check"$'\n'
done

# HAProxy: health checks on /v1/health; a session header (the client sends one per
# process) keeps one client on one replica, so the attestation it fetches names the
# identity that answered it; connection failures go to another replica.
cat > "$data/haproxy.cfg" <<CFG
global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    retries 2
    option redispatch
frontend strongroom
    bind $http_addr
    default_backend replicas
backend replicas
    balance hdr(X-Strongroom-Session)
    hash-type consistent
    option httpchk GET /v1/health
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
$servers
CFG
keep haproxy "$haproxy_bin" -f "$data/haproxy.cfg" -db

url="http://$http_addr"
for _ in $(seq 1 600); do
  ready=0
  for i in $(seq 1 "$replicas"); do
    "$bin/strongroom" --url "http://127.0.0.1:$((first_port + i - 1))" health >/dev/null 2>&1 \
      && ready=$((ready + 1))
  done
  [ "$ready" -eq "$replicas" ] && break
  sleep 0.1
done
if "$bin/strongroom" --url "$url" health >/dev/null 2>&1; then
  cat >&2 <<MSG

Strongroom (mock mode, $replicas replicas over PostgreSQL) is listening at $url (HAProxy);
replicas at http://127.0.0.1:$first_port… — data in $data
Try (the CLI signs requests with $data/dev/principal.key):
  export STRONGROOM_URL=$url STRONGROOM_DATA_DIR=$data
  $bin/strongroom keys create --label treasury
  $bin/strongroom sign digest --key ID --digest 0x$(printf '%064d' 0)
  curl -s http://127.0.0.1:$first_port/metrics | grep replica_
Ctrl-C stops everything.
cluster listening on $url
MSG
else
  echo "HAProxy is up but no replica is ready yet; see $logs/" >&2
fi
wait "${pids[@]}" || true
