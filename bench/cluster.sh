#!/usr/bin/env bash
# Sharded tandem against Redis on this machine, in one invocation (issue 13's benchmarks).
#
#   bench/cluster.sh              # full run
#   bench/cluster.sh --short      # a few seconds per part, to check the script works
#   KEYS=10000000 bench/cluster.sh   # the move part with 10M keys of 100 bytes (1 GB of values)
#   PARTS="1 3" bench/cluster.sh     # only some of the parts below (default: 1 2 3)
#   TANDEM=/tmp/tandem-old bench/cluster.sh   # another build of tandem (before/after comparisons)
#
# 1. Direct path: one tandem group (primary + backup) serving clients on the servers' own ports
#    (`--client-listen`), loaded with `tandem bench` at the primary's client port, against Redis
#    standalone (SET, GET) and Redis master + replica with `WAIT 1 0` after each SET. 50
#    connections, no pipelining, 100-byte values. Targets: SET >= 0.8x Redis, >= 1.5x
#    Redis SET+WAIT; GET >= 0.8x Redis.
# 2. Three tandem groups of two servers against a Redis Cluster of three masters with one
#    replica each (`redis-server --cluster-enabled yes`, `redis-cli --cluster create`), both
#    loaded by `redis-benchmark --cluster -t set,get` (50 connections, P1 and P16).
# 3. A move: KEYS keys (default 1,000,000) in group 0 of a two-group cluster, half the slots
#    moved to group 1 with `tandem slots move` while 10 clients keep reading and writing through
#    a coordinator. Reports the move's duration and rate (value bytes moved / time from the
#    command to both groups reporting the configuration), and the clients' p99 during it.
#    The giver serves the slots while it pre-copies them (S9) and freezes them only to send the
#    keys written meanwhile (S10): the longest freeze is read from the servers' metrics
#    (`tandem_server_slot_freeze_ms_max`).
# It is a benchmark, not a test: it never fails on speed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
short=0
[ "${1:-}" = "--short" ] && short=1
n=200000; np=1000000; keys="${KEYS:-1000000}"
if [ $short = 1 ]; then n=5000; np=20000; keys="${KEYS:-20000}"; fi

command -v redis-server >/dev/null || { echo "redis-server is needed: apt-get install -y redis-server" >&2; exit 2; }
command -v redis-benchmark >/dev/null || { echo "redis-benchmark is needed: apt-get install -y redis-tools" >&2; exit 2; }
parts=" ${PARTS:-1 2 3} "
tandem="${TANDEM:-$root/target/release/tandem}"
[ -x "$tandem" ] || cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin tandem

source "$root/bench/lib.sh"

# slots_json VS PYTHON_EXPR: evaluates EXPR over `m`, the `tandem slots show --json` map.
slots_json() {
  "$tandem" slots show --viewserver "$1" --json 2>/dev/null | python3 -c "import json,sys; m=json.load(sys.stdin); print($2)"
}
# wait_slots VS PYTHON_CONDITION [SECONDS]: until the slot map satisfies the condition.
wait_slots() {
  for _ in $(seq $(( ${3:-60} * 20 ))); do
    [ "$(slots_json "$1" "bool($2)" 2>/dev/null)" = True ] && return 0
    sleep 0.05
  done
  echo "the slot map never satisfied: $2" >&2; exit 1
}
# tandem_group VS GROUP: starts two servers of GROUP with client ports (admin ports in `admins`).
admins=()
tandem_group() {
  for _ in 1 2; do
    local port client admin
    port=$(free_port); client=$(free_port); admin=$(free_port)
    "$tandem" server --listen "127.0.0.1:$port" --viewserver "$1" --group "$2" \
      --client-listen "127.0.0.1:$client" --admin "127.0.0.1:$admin" 2>"$work/server-$port.log" & pids+=($!)
    admins+=("$admin")
  done
}
# longest_freeze ADMIN_PORTS...: the largest tandem_server_slot_freeze_ms_max among them (S10).
longest_freeze() {
  python3 - "$@" <<'PY'
import sys, urllib.request
best = 0.0
for port in sys.argv[1:]:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        continue
    for line in text.splitlines():
        if line.startswith("tandem_server_slot_freeze_ms_max "):
            best = max(best, float(line.split()[1]))
print(f"{best:.0f}")
PY
}
# bench PORT ARGS... -> "ops_per_sec p50_us p99_us errors"
bench() {
  local port=$1; shift
  "$tandem" bench --addr "127.0.0.1:$port" --no-progress --json "$@" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(int(r["ops_per_sec"]), r["p50_us"], r["p99_us"], r["errors"])'
}
ratio() { python3 -c "print(f'{$1/max($2,1):.2f}')"; }
# cpu_ticks PID... -> clock ticks of CPU (user + system) the processes used so far
cpu_ticks() {
  local total=0 p fields
  for p in "$@"; do read -r -a fields <"/proc/$p/stat"; total=$((total + fields[13] + fields[14])); done
  echo "$total"
}
# bench_cpu PIDS PORT ARGS... -> "ops_per_sec cpu_us_per_op": throughput, and the CPU time the
# server processes PIDS (a quoted list) spent per request. On a machine shared with other
# work, throughput follows whoever else runs; CPU per request much less so.
bench_cpu() {
  local server_pids=$1 port=$2; shift 2
  local before after ops
  before=$(cpu_ticks $server_pids)
  read -r ops _ _ _ <<<"$(bench "$port" "$@")"
  after=$(cpu_ticks $server_pids)
  echo "$ops $(python3 -c "print(f'{($after - $before) / $(getconf CLK_TCK) * 1e6 / $n:.1f}')")"
}

if [[ $parts == *" 1 "* ]]; then
echo "== 1. direct path: one group, clients at the primary's own port"
redis_alone=$(free_port); redis_master=$(free_port); redis_replica=$(free_port)
redis-server --port "$redis_alone" --save '' --appendonly no --dir "$work" --logfile "$work/redis-$redis_alone.log" &
pids+=($!); alone_pid=$!
redis-server --port "$redis_master" --save '' --appendonly no --dir "$work" --logfile "$work/redis-$redis_master.log" &
pids+=($!); pair_pids=$!
redis-server --port "$redis_replica" --save '' --appendonly no --dir "$work" --logfile "$work/redis-$redis_replica.log" \
  --replicaof 127.0.0.1 "$redis_master" & pids+=($!); pair_pids="$pair_pids $!"
for port in $redis_alone $redis_master $redis_replica; do wait_port "$port"; done
for attempt in $(seq 400); do
  redis-cli -p "$redis_master" info replication | grep -q "slave0:.*state=online" && break
  [ "$attempt" = 400 ] && { echo "the Redis replica never connected" >&2; exit 1; }
  sleep 0.05
done
vs1=$(free_port)
"$tandem" viewserver --listen "127.0.0.1:$vs1" 2>"$work/vs1.log" & pids+=($!)
wait_port "$vs1"
tandem_group "127.0.0.1:$vs1" 0
group_pids="${pids[*]: -2}"
wait_view "127.0.0.1:$vs1" 'g["acked"] and g["primary"] and g["backups"]'
wait_slots "127.0.0.1:$vs1" 'm["groups"][0]["config_done"] >= 1 and m["groups"][0]["client_addr"]'
direct=$(slots_json "127.0.0.1:$vs1" 'm["groups"][0]["client_addr"].rsplit(":", 1)[1]')
bench "$redis_alone" -n "$n" --keyspace 100000 --warmup -c 50 >/dev/null
bench "$direct" -n "$n" --keyspace 100000 --warmup -c 50 >/dev/null
# The CPU columns: the servers' CPU time per request (Redis: the one server, or master and
# replica for SET + WAIT; tandem: primary and backup).
row() { # NAME BASELINE TANDEM TARGET, each of BASELINE and TANDEM "ops_per_sec cpu_us_per_op"
  local r rc t tc; read -r r rc <<<"$2"; read -r t tc <<<"$3"
  printf "%-10s %14s %14s %8s %9s %9s %9s  %s\n" "$1" "$r" "$t" "$(ratio "$t" "$r")" "$rc" "$tc" "$(ratio "$rc" "$tc")" "$4"
}
printf "%-10s %14s %14s %8s %9s %9s %9s  %s\n" workload baseline_ops/s tandem_ops/s ratio base_cpu tandem_cpu cpu_ratio target
row set "$(bench_cpu "$alone_pid" "$redis_alone" -c 50 -n "$n")" "$(bench_cpu "$group_pids" "$direct" -c 50 -n "$n")" ">= 0.8 (Redis standalone)"
row set-wait "$(bench_cpu "$pair_pids" "$redis_master" -c 50 -n "$n" --wait-replicas 1)" "$(bench_cpu "$group_pids" "$direct" -c 50 -n "$n")" ">= 1.5 (Redis SET + WAIT 1 0)"
row get "$(bench_cpu "$alone_pid" "$redis_alone" -c 50 -n "$n" --read-ratio 1)" "$(bench_cpu "$group_pids" "$direct" -c 50 -n "$n" --read-ratio 1)" ">= 0.8 (Redis standalone)"
fi
if [[ $parts == *" 2 "* ]]; then
echo
echo "== 2. three groups of two servers vs a Redis Cluster of three masters with one replica each"
cluster_ports=()
for _ in 1 2 3 4 5 6; do
  # A cluster node also listens on port + 10000 (its cluster bus).
  port=$(free_port); while [ "$port" -gt 55000 ]; do port=$(free_port); done
  cluster_ports+=("127.0.0.1:$port")
  mkdir -p "$work/rc-$port"
  redis-server --port "$port" --cluster-enabled yes --cluster-config-file "$work/rc-$port/nodes.conf" \
    --save '' --appendonly no --dir "$work/rc-$port" --logfile "$work/rc-$port/redis.log" & pids+=($!)
done
for addr in "${cluster_ports[@]}"; do wait_port "${addr##*:}"; done
redis-cli --cluster create "${cluster_ports[@]}" --cluster-replicas 1 --cluster-yes >"$work/rc-create.log" 2>&1
rc_port=${cluster_ports[0]##*:}
for attempt in $(seq 400); do
  redis-cli -p "$rc_port" cluster info | grep -q 'cluster_state:ok' && break
  [ "$attempt" = 400 ] && { echo "the Redis Cluster never became ok" >&2; exit 1; }
  sleep 0.05
done
vs3=$(free_port)
"$tandem" viewserver --listen "127.0.0.1:$vs3" 2>"$work/vs3.log" & pids+=($!)
wait_port "$vs3"
for g in 0 1 2; do tandem_group "127.0.0.1:$vs3" "$g"; done
wait_slots "127.0.0.1:$vs3" 'len([g for g in m["groups"] if g["primary"] and g["client_addr"] and g["config_done"] == m["config"]]) == 3'
"$tandem" slots rebalance --viewserver "127.0.0.1:$vs3" >/dev/null
wait_slots "127.0.0.1:$vs3" 'not m["moving"] and all(g["slots"] > 0 and g["config_done"] == m["config"] for g in m["groups"])'
t_port=$(slots_json "127.0.0.1:$vs3" 'm["groups"][0]["client_addr"].rsplit(":", 1)[1]')
rb() { # PORT PIPELINE -> "set get" requests per second
  redis-benchmark --cluster -p "$1" -t set,get -n "$2" -c 50 -P "$3" -r 100000 -d 100 -q 2>/dev/null | tr '\r' '\n' |
    awk '/SET:/ {s=$2} /GET:/ {g=$2} END {print s, g}'
}
printf "%-10s %16s %16s %10s\n" workload redis-cluster/s tandem/s ratio
read -r rs rg <<<"$(rb "$rc_port" "$n" 1)"; read -r ts tg <<<"$(rb "$t_port" "$n" 1)"
printf "%-10s %16s %16s %10s\n" set "$rs" "$ts" "$(ratio "$ts" "$rs")"
printf "%-10s %16s %16s %10s\n" get "$rg" "$tg" "$(ratio "$tg" "$rg")"
read -r rs rg <<<"$(rb "$rc_port" "$np" 16)"; read -r ts tg <<<"$(rb "$t_port" "$np" 16)"
printf "%-10s %16s %16s %10s\n" set-p16 "$rs" "$ts" "$(ratio "$ts" "$rs")"
printf "%-10s %16s %16s %10s\n" get-p16 "$rg" "$tg" "$(ratio "$tg" "$rg")"
fi
if [[ $parts == *" 3 "* ]]; then
echo
echo "== 3. moving half the slots of $keys keys (100-byte values) under 10 clients"
vsm=$(free_port); coord=$(free_port)
admins=()
"$tandem" viewserver --listen "127.0.0.1:$vsm" 2>"$work/vsm.log" & pids+=($!)
wait_port "$vsm"
tandem_group "127.0.0.1:$vsm" 0
wait_slots "127.0.0.1:$vsm" 'm["groups"][0]["config_done"] >= 1 and m["groups"][0]["client_addr"]'
tandem_group "127.0.0.1:$vsm" 1
"$tandem" coordinator --listen "127.0.0.1:$coord" --viewserver "127.0.0.1:$vsm" 2>"$work/coord.log" & pids+=($!)
wait_port "$coord"
wait_slots "127.0.0.1:$vsm" 'len([g for g in m["groups"] if g["primary"] and g["config_done"] == m["config"]]) == 2'
g0=$(slots_json "127.0.0.1:$vsm" 'm["groups"][0]["client_addr"].rsplit(":", 1)[1]')
"$tandem" bench --addr "127.0.0.1:$g0" --no-progress --json -c 50 -P 64 --keyspace "$keys" --warmup -n 1 >/dev/null
load_secs=$(( keys / 200000 + 5 ))
"$tandem" bench --addr "127.0.0.1:$coord" --no-progress --json -c 10 --read-ratio 0.5 --keyspace "$keys" \
  --duration-secs "$load_secs" >"$work/during.json" &
load_pid=$!
sleep 1
start=$(date +%s.%N)
"$tandem" slots move --viewserver "127.0.0.1:$vsm" --slots 0-8191 --to 1 >/dev/null
wait_slots "127.0.0.1:$vsm" 'not m["moving"] and all(g["config_done"] == m["config"] for g in m["groups"])' 900
end=$(date +%s.%N)
wait "$load_pid"
freeze_ms=$(longest_freeze "${admins[@]}")
python3 - "$start" "$end" "$keys" "$work/during.json" "$freeze_ms" <<'PY'
import json, sys
start, end, keys = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
secs = end - start
mb = keys / 2 * 100 / 1e6
print(f"move: about {keys // 2} keys ({mb:.0f} MB of values) in {secs:.2f} s = {mb / secs:.0f} MB/s (target >= 200 MB/s),")
print("  from the command to both groups reporting the configuration (the slots are served while pre-copied, S9)")
print(f"longest freeze: {sys.argv[5]} ms (giver's primary: freeze committed -> taker's install, S10)")
r = json.load(open(sys.argv[4]))
print(f"clients during the move ({r['elapsed_secs']:.1f} s, 10 connections through a coordinator, 50% GET): "
      f"{r['ops_per_sec']:.0f} ops/s, p50 {r['p50_us']} us, p99 {r['p99_us']} us (target p99 < 50 ms), errors {r['errors']}")
PY
fi
