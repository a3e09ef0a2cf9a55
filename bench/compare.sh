#!/usr/bin/env bash
# tandem vs Redis on this machine, in one invocation, with the same load generator.
#
#   bench/compare.sh            # full run (about 2 minutes)
#   bench/compare.sh --short    # a few seconds: what CI runs so that this script cannot rot
#
# Starts, on loopback:
#   - Redis standalone (persistence off), and Redis master + async replica (persistence off);
#   - two tandem clusters as separate processes (view service, primary, backup, coordinator):
#     one with --insecure (plain TCP inside), one with peer TLS (certificates from
#     `tandem certs create`), to show what mutual TLS between the processes costs.
# Then runs the workloads below with `tandem bench` against each, and prints throughput, p50
# latency and the ratio tandem/Redis next to issue 5's target. It is a benchmark, not a test:
# it never fails on speed. Workloads (100-byte values, 100k keys, 50 connections unless noted):
#   set        SET, no pipelining          tandem vs Redis standalone SET          target >= 0.6
#   set-wait   SET (+WAIT 1 0 for Redis)   tandem SET vs Redis SET+WAIT 1 (replica) target >= 1.0
#   set-p16    SET, pipeline 16            tandem vs Redis SET with async replica  target >= 0.5
#   get        GET, no pipelining          tandem vs Redis standalone GET          target >= 0.6
#   get-p16    GET, pipeline 16            tandem vs Redis standalone GET          target >= 0.6
#   one-conn   SET, 1 connection (p50)     tandem vs Redis SET+WAIT 1              target p50 <= 2x
# redis-benchmark (SET and GET, -P 1 and -P 16) is run against both as a second opinion.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
short=0
[ "${1:-}" = "--short" ] && short=1
n=200000; np=1000000; n1=20000
if [ $short = 1 ]; then n=5000; np=20000; n1=1000; fi

command -v redis-server >/dev/null || { echo "redis-server is needed: apt-get install -y redis-server" >&2; exit 2; }
tandem="$root/target/release/tandem"
[ -x "$tandem" ] || cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin tandem

source "$root/bench/lib.sh"

redis_alone=$(free_port); redis_master=$(free_port); redis_replica=$(free_port)
for port in $redis_alone $redis_master; do
  redis-server --port "$port" --save '' --appendonly no --dir "$work" --logfile "$work/redis-$port.log" &
  pids+=($!)
done
redis-server --port "$redis_replica" --save '' --appendonly no --dir "$work" --logfile "$work/redis-$redis_replica.log" \
  --replicaof 127.0.0.1 "$redis_master" &
pids+=($!)
for port in $redis_alone $redis_master $redis_replica; do wait_port "$port"; done
for attempt in $(seq 400); do
  redis-cli -p "$redis_master" info replication | grep -q "connected_slaves:1" && break
  [ "$attempt" = 400 ] && { echo "the Redis replica never connected" >&2; exit 1; }
  sleep 0.05
done

vs=$(free_port); s1=$(free_port); s2=$(free_port); coord=$(free_port)
"$tandem" viewserver --listen "127.0.0.1:$vs" 2>"$work/vs.log" & pids+=($!)
wait_port "$vs"
"$tandem" server --listen "127.0.0.1:$s1" --viewserver "127.0.0.1:$vs" 2>"$work/s1.log" & pids+=($!)
"$tandem" server --listen "127.0.0.1:$s2" --viewserver "127.0.0.1:$vs" 2>"$work/s2.log" & pids+=($!)
"$tandem" coordinator --listen "127.0.0.1:$coord" --viewserver "127.0.0.1:$vs" 2>"$work/coord.log" & pids+=($!)
wait_port "$coord"
wait_view "127.0.0.1:$vs" 'g["acked"] and g["primary"] and g["backups"]'

# The same cluster on certificates (peer TLS).
tvs=$(free_port); ts1=$(free_port); ts2=$(free_port); tcoord=$(free_port)
certs="$work/certs"
"$tandem" certs create --out "$certs" --days 2 \
  --nodes "vs=viewservice@127.0.0.1:$tvs,s1=server@127.0.0.1:$ts1,s2=server@127.0.0.1:$ts2,c=coordinator,ops=admin" >/dev/null
tls() { echo --cluster-ca "$certs/ca.pem" --cluster-cert "$certs/$1.pem" --cluster-key "$certs/$1.key"; }
# shellcheck disable=SC2046
env -u TANDEM_INSECURE "$tandem" viewserver --listen "127.0.0.1:$tvs" $(tls vs) 2>"$work/tvs.log" & pids+=($!)
wait_port "$tvs"
# shellcheck disable=SC2046
env -u TANDEM_INSECURE "$tandem" server --listen "127.0.0.1:$ts1" --viewserver "127.0.0.1:$tvs" $(tls s1) 2>"$work/ts1.log" & pids+=($!)
# shellcheck disable=SC2046
env -u TANDEM_INSECURE "$tandem" server --listen "127.0.0.1:$ts2" --viewserver "127.0.0.1:$tvs" $(tls s2) 2>"$work/ts2.log" & pids+=($!)
# shellcheck disable=SC2046
env -u TANDEM_INSECURE "$tandem" coordinator --listen "127.0.0.1:$tcoord" --viewserver "127.0.0.1:$tvs" $(tls c) 2>"$work/tcoord.log" & pids+=($!)
wait_port "$tcoord"
read -r -a status_flags <<<"$(tls ops)"
(unset TANDEM_INSECURE; wait_view "127.0.0.1:$tvs" 'g["acked"] and g["primary"] and g["backups"]')
status_flags=()


# bench PORT ARGS... -> "ops_per_sec p50_us"
bench() {
  local port=$1; shift
  "$tandem" bench --addr "127.0.0.1:$port" --no-progress --json "$@" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(int(r["ops_per_sec"]), r["p50_us"], r["errors"])'
}

# tandem = peer TLS off (--insecure); tls = the same cluster with peer TLS on; tls/off is the
# throughput kept with TLS (latency ratio for one-conn).
printf "%-10s %12s %10s %12s %10s %12s %10s %8s %8s %s\n" workload redis_ops/s p50_us tandem_ops/s p50_us tls_ops/s p50_us ratio tls/off target
row() { # name redis_result tandem_result tls_result target [latency]
  read -r rops rp50 rerr <<<"$2"; read -r tops tp50 terr <<<"$3"; read -r sops sp50 serr <<<"$4"
  if [ "${6:-}" = latency ]; then
    ratio=$(python3 -c "print(f'{$tp50/max($rp50,1):.2f}')"); tlsr=$(python3 -c "print(f'{$sp50/max($tp50,1):.2f}')")
  else
    ratio=$(python3 -c "print(f'{$tops/max($rops,1):.2f}')"); tlsr=$(python3 -c "print(f'{$sops/max($tops,1):.2f}')")
  fi
  printf "%-10s %12s %10s %12s %10s %12s %10s %8s %8s %s\n" "$1" "$rops" "$rp50" "$tops" "$tp50" "$sops" "$sp50" "$ratio" "$tlsr" "$5"
  if [ "$rerr" != 0 ] || [ "$terr" != 0 ] || [ "$serr" != 0 ]; then echo "  (errors: redis $rerr, tandem $terr, tls $serr)"; fi
}

bench "$redis_alone" -n "$n1" --keyspace 100000 --warmup -c 50 >/dev/null   # warm both keyspaces
bench "$coord" -n "$n1" --keyspace 100000 --warmup -c 50 >/dev/null
bench "$tcoord" -n "$n1" --keyspace 100000 --warmup -c 50 >/dev/null

row set      "$(bench "$redis_alone" -c 50 -n "$n")"                      "$(bench "$coord" -c 50 -n "$n")"       "$(bench "$tcoord" -c 50 -n "$n")"       ">= 0.6"
row set-wait "$(bench "$redis_master" -c 50 -n "$n" --wait-replicas 1)"   "$(bench "$coord" -c 50 -n "$n")"       "$(bench "$tcoord" -c 50 -n "$n")"       ">= 1.0"
row set-p16  "$(bench "$redis_master" -c 50 -P 16 -n "$np")"              "$(bench "$coord" -c 50 -P 16 -n "$np")" "$(bench "$tcoord" -c 50 -P 16 -n "$np")" ">= 0.5"
row get      "$(bench "$redis_alone" -c 50 -n "$n" --read-ratio 1)"       "$(bench "$coord" -c 50 -n "$n" --read-ratio 1)" "$(bench "$tcoord" -c 50 -n "$n" --read-ratio 1)" ">= 0.6"
row get-p16  "$(bench "$redis_alone" -c 50 -P 16 -n "$np" --read-ratio 1)" "$(bench "$coord" -c 50 -P 16 -n "$np" --read-ratio 1)" "$(bench "$tcoord" -c 50 -P 16 -n "$np" --read-ratio 1)" ">= 0.6"
row one-conn "$(bench "$redis_master" -c 1 -n "$n1" --wait-replicas 1)"   "$(bench "$coord" -c 1 -n "$n1")"       "$(bench "$tcoord" -c 1 -n "$n1")"       "p50 <= 2.0x" latency

if command -v redis-benchmark >/dev/null; then
  echo
  echo "redis-benchmark -c 50 -r 100000 -d 100 (requests/s), second opinion:"
  for target in "redis:$redis_alone" "redis+replica:$redis_master" "tandem:$coord"; do
    name=${target%%:*}; port=${target##*:}
    p1=$(redis-benchmark -p "$port" -t set,get -n "$n" -c 50 -r 100000 -d 100 -q | tr '\r' '\n' | grep "requests per second" | awk '{print $1, $2}' | tr '\n' ' ')
    p16=$(redis-benchmark -p "$port" -t set,get -n "$np" -c 50 -P 16 -r 100000 -d 100 -q | tr '\r' '\n' | grep "requests per second" | awk '{print $1, $2}' | tr '\n' ' ')
    printf "  %-14s P1: %s  P16: %s\n" "$name" "$p1" "$p16"
  done
fi
