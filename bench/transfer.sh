#!/usr/bin/env bash
# Memory per key and state transfer at scale, tandem vs Redis, in one invocation.
#
#   bench/transfer.sh [KEYS]        # default 1000000 keys of 100 bytes; 10000000 is about 1 GB
#
# 1. Loads KEYS keys (100-byte values) into Redis standalone and into a tandem primary that has
#    no backup yet, and compares resident memory (RSS) of the two processes.
# 2. Starts a second tandem server: it becomes the backup and receives the whole state (P6)
#    while a client keeps writing and reading; reports the transfer time and rate (value bytes /
#    time from the backup's start to the view being acknowledged) and the client's p99 during it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
keys="${1:-1000000}"
tandem="$root/target/release/tandem"
[ -x "$tandem" ] || cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin tandem
command -v redis-server >/dev/null || { echo "redis-server is needed: apt-get install -y redis-server" >&2; exit 2; }

source "$root/bench/lib.sh"
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
load() { "$tandem" bench --addr "127.0.0.1:$1" --no-progress --json -c 50 -P 64 --keyspace "$keys" --warmup -n 1 >/dev/null; }

redis=$(free_port)
redis-server --port "$redis" --save '' --appendonly no --dir "$work" --logfile "$work/redis.log" & pids+=($!); redis_pid=$!
vs=$(free_port); s1=$(free_port); s2=$(free_port); coord=$(free_port)
"$tandem" viewserver --listen "127.0.0.1:$vs" 2>"$work/vs.log" & pids+=($!)
wait_port "$vs"
"$tandem" server --listen "127.0.0.1:$s1" --viewserver "127.0.0.1:$vs" 2>"$work/s1.log" & pids+=($!); primary_pid=$!
"$tandem" coordinator --listen "127.0.0.1:$coord" --viewserver "127.0.0.1:$vs" 2>"$work/coord.log" & pids+=($!)
wait_port "$redis"; wait_port "$coord"

echo "loading $keys keys of 100 bytes into each..."
load "$redis"; load "$coord"
r=$(rss_kb "$redis_pid"); t=$(rss_kb "$primary_pid")
python3 -c "print(f'RSS: redis {$r/1024:.0f} MiB, tandem primary {$t/1024:.0f} MiB, ratio {$t/$r:.2f} (target <= 1.5)')"

echo "starting a backup: full state transfer under client load..."
# The client load must outlast the transfer: long enough for it at 25 MB/s, at least 5 s.
load_secs=$(( keys / 250000 + 5 ))
"$tandem" bench --addr "127.0.0.1:$coord" --no-progress --json -c 10 --read-ratio 0.5 --keyspace "$keys" --duration-secs "$load_secs" >"$work/during.json" &
load_pid=$!
start=$(date +%s.%N)
"$tandem" server --listen "127.0.0.1:$s2" --viewserver "127.0.0.1:$vs" 2>"$work/s2.log" & pids+=($!)
wait_view "127.0.0.1:$vs" "g['acked'] and g['backups'] == ['127.0.0.1:$s2']" 900
end=$(date +%s.%N)
wait "$load_pid"
python3 - "$start" "$end" "$keys" "$work/s1.log" <<'PY'
import re, sys
from datetime import datetime
start, end, keys = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
secs = end - start
mb = keys * 100 / 1e6
print(f"transfer: {keys} keys ({mb:.0f} MB of values) in {secs:.2f} s = {mb/secs:.0f} MB/s (target >= 200 MB/s),")
print("  from starting the backup process to the view's acknowledgement (joining, the view change and")
# The primary logs the first chunk sent and the backup's "installed": the copy itself.
stamps = {}
for line in open(sys.argv[4]):
    m = re.match(r"(\S+Z) .*event=\"?(transfer_start|transfer_finish)", line)
    if m:
        stamps.setdefault(m.group(2), datetime.fromisoformat(m.group(1).replace("Z", "+00:00")))
if len(stamps) == 2:
    copy = (stamps["transfer_finish"] - stamps["transfer_start"]).total_seconds()
    print(f"  the ack included); the copy itself (first chunk to installed, primary's log): {copy:.2f} s = {mb/copy:.0f} MB/s")
else:
    print("  the ack included)")
PY
python3 - "$work/during.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"client during transfer ({r['elapsed_secs']:.1f} s, 10 connections, 50% GET): {r['ops_per_sec']:.0f} ops/s, "
      f"p50 {r['p50_us']} us, p99 {r['p99_us']} us (target p99 < 50 ms), errors {r['errors']}")
PY
