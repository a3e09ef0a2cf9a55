#!/usr/bin/env bash
# Soak: a healthy cluster on a saturated machine must never change its view (V3, Q4).
#
#   bench/soak.sh                       # 10 minutes
#   bench/soak.sh --short               # 60 s: what CI runs
#   bench/soak.sh --duration SECONDS    # any length, at least 30 s
#   bench/soak.sh --pause-every SECONDS # SIGSTOP the view-service leader for 1 s this often (0: never)
#
# Starts a view service of three Raft nodes (target: two backups, so every server's liveness
# shows in the view), three servers and a coordinator, then for the whole duration:
#   - `tandem bench`: 4 connections, 50% GET, no pipelining (closed loop, so a modest rate);
#   - `stress-ng --cpu-load 100` with twice as many busy workers as cores (4 on the project's
#     2-core machine), for a load average of 4 and more;
#   - SIGSTOP of the view-service leader for 1 s every 30 s (15 s with --short), the last one at
#     least 10 s before the end so that its consequences are seen: longer than an election
#     timeout, so each pause also changes the leader (which must change no view: Q4).
# No server is killed, so every view change is spurious. Reports them (with the view service's
# reasons), the client throughput and p99, and the 1-minute load average seen. Exits 1 if any
# view changed, a role process died or the cluster did not form; 2 on bad options or without
# stress-ng.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
duration=600
pause_every=30
pause_secs=1
stress_workers=$((2 * $(nproc)))
while [ $# -gt 0 ]; do
  case "$1" in
    --short) duration=60; pause_every=15 ;;
    --duration) duration="${2:?--duration needs SECONDS}"; shift ;;
    --pause-every) pause_every="${2:?--pause-every needs SECONDS}"; shift ;;
    *) echo "usage: $0 [--short] [--duration SECONDS] [--pause-every SECONDS]" >&2; exit 2 ;;
  esac
  shift
done
case "$duration$pause_every" in *[!0-9]*) echo "durations are whole seconds" >&2; exit 2 ;; esac
[ "$duration" -ge 30 ] || { echo "--duration must be at least 30 s" >&2; exit 2; }
command -v stress-ng >/dev/null || { echo "stress-ng is needed: apt-get install -y stress-ng" >&2; exit 2; }

tandem="${CARGO_TARGET_DIR:-$root/target}/release/tandem"
# Always build: a stale binary may lack the options used below (a no-op when up to date).
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin tandem

source "$root/bench/lib.sh"
vs_pids=(); pauser_pid=""
# A stopped node would never see the SIGTERM of the cleanup: stop pausing, wake the nodes first.
trap '[ -n "$pauser_pid" ] && kill "$pauser_pid" 2>/dev/null; for p in "${vs_pids[@]}"; do kill -CONT "$p" 2>/dev/null; done; cleanup' EXIT

vs_addrs=(); coord=$(free_port)
for i in 1 2 3; do vs_addrs+=("127.0.0.1:$(free_port)"); done
vs=$(IFS=,; echo "${vs_addrs[*]}")
peers="1=${vs_addrs[0]},2=${vs_addrs[1]},3=${vs_addrs[2]}"
roles=()
for i in 1 2 3; do
  "$tandem" viewserver --id "$i" --listen "${vs_addrs[$((i - 1))]}" --peers "$peers" \
    --data-dir "$work/vs$i" --backups 2 2>"$work/vs$i.log" & pids+=($!); vs_pids+=($!)
  roles+=("view-service node $i:$!")
done
for a in "${vs_addrs[@]}"; do wait_port "${a##*:}"; done
for i in 0 1 2; do
  port=$(free_port)
  "$tandem" server --listen "127.0.0.1:$port" --viewserver "$vs" 2>"$work/s$i.log" & pids+=($!)
  roles+=("server $i:$!")
done
"$tandem" coordinator --listen "127.0.0.1:$coord" --viewserver "$vs" 2>"$work/coord.log" & pids+=($!)
roles+=("coordinator:$!")
wait_port "$coord"
wait_view "$vs" 'g["acked"] and len(g["backups"]) == 2'
viewnum() { "$tandem" status --viewserver "$vs" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["groups"][0]["viewnum"])'; }
first_view=$(viewnum)

stress-ng --cpu "$stress_workers" --cpu-load 100 --timeout "${duration}s" --quiet & pids+=($!)
"$tandem" bench --addr "127.0.0.1:$coord" --no-progress --json -c 4 --read-ratio 0.5 --keyspace 10000 \
  --duration-secs "$duration" >"$work/bench.json" &
bench_pid=$!; pids+=($bench_pid)
while sleep 1; do cut -d' ' -f1 /proc/loadavg; done >"$work/load.txt" &
pids+=($!)
# The schedule of pauses is the experiment: sleeping for it is not waiting for luck.
(
  start=$(date +%s); at=$pause_every
  while [ "$pause_every" -gt 0 ] && [ $((at + pause_secs + 10)) -le "$duration" ]; do
    delay=$((start + at - $(date +%s)))
    [ "$delay" -le 0 ] || sleep "$delay"
    leader=$("$tandem" status --viewserver "$vs" --json \
      | python3 -c 'import json,sys; print(next((n["id"] for n in json.load(sys.stdin)["nodes"] if n["role"] == "leader"), 0))')
    if [ "$leader" -ge 1 ] && [ "$leader" -le 3 ]; then
      victim=${vs_pids[$((leader - 1))]}
      kill -STOP "$victim"; sleep "$pause_secs"; kill -CONT "$victim"
      echo "$(($(date +%s) - start - pause_secs))"
    fi
    at=$((at + pause_every))
  done
) >"$work/pauses.txt" &
pauser_pid=$!

rc=0
wait "$bench_pid" || { echo "tandem bench failed" >&2; rc=2; }
wait "$pauser_pid" || true
pauser_pid=""
for role in "${roles[@]}"; do
  kill -0 "${role##*:}" 2>/dev/null || { echo "the ${role%:*} process died during the soak" >&2; rc=1; }
done
last_view=$(viewnum)
"$tandem" status --viewserver "$vs" --history --json >"$work/history.json"

python3 - "$work" "$duration" "$stress_workers" "$first_view" "$last_view" <<'PY' || rc=1
import json, os, sys
work, duration, workers, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
pauses = open(os.path.join(work, "pauses.txt")).read().split()
loads = [float(x) for x in open(os.path.join(work, "load.txt")).read().split()]
b = json.load(open(os.path.join(work, "bench.json")))
paused = (f"leader SIGSTOPped for 1 s at {', '.join(p + ' s' for p in pauses)}" if pauses
          else "never paused")
print(f"soak {duration} s: view service of 3 Raft nodes, 3 servers (primary + 2 backups), coordinator; "
      f"stress-ng {workers} CPU workers; view service {paused}")
if loads:
    print(f"load average (1 min): max {max(loads):.1f}, mean {sum(loads)/len(loads):.1f}, "
          f"at the end {loads[-1]:.1f}")
print(f"clients (4 connections, 50% GET): {b['ops_per_sec']:.0f} ops/s, p50 {b['p50_us']} us, "
      f"p99 {b['p99_us']} us, max {b['max_us']} us, errors {b['errors']}")
spurious = last - first
print(f"spurious view changes (no server was killed): {spurious} (view {first} -> {last})")
history = json.load(open(os.path.join(work, "history.json")))["groups"][0]["history"]
for h in reversed(history):
    if h["viewnum"] > first:
        print(f"  view {h['viewnum']}, {h['ago_ms'] / 1000:.1f} s before the end: {h['reason']}")
sys.exit(1 if spurious else 0)
PY
exit $rc
