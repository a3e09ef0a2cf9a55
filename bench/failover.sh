#!/usr/bin/env bash
# Failover, tandem vs Redis + Sentinel, in one invocation: kill under a steady write load again
# and again, and report the client-visible unavailability window, failed requests, view changes
# and lost writes.
#
#   bench/failover.sh                        # kill the primary, 10 kills each (about 2 minutes)
#   bench/failover.sh --short                # 2 kills each: what CI runs so that this script cannot rot
#   bench/failover.sh --kill vs-leader       # tandem: kill the view-service leader instead
#   bench/failover.sh --kill vs-leader+primary
#
# Runs `tandem bench-failover --target both --kill MODE` (a tandem cluster with a three-node view
# service, then Redis master + 2 replicas + 3 Sentinels from the installed
# redis-server/redis-sentinel, whose master is always what is killed) and prints one row per
# target. tandem must lose 0 acknowledged writes (the script fails otherwise); Redis replicates
# asynchronously, so its lost writes are reported, not judged. Without redis-sentinel it runs
# tandem only.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
kills=10
kill=primary
while [ $# -gt 0 ]; do
  case "$1" in
    --short) kills=2 ;;
    --kill) kill="${2:?--kill needs primary, vs-leader or vs-leader+primary}"; shift ;;
    *) echo "usage: $0 [--short] [--kill primary|vs-leader|vs-leader+primary]" >&2; exit 2 ;;
  esac
  shift
done
tandem="${CARGO_TARGET_DIR:-$root/target}/release/tandem"
# Always build: a stale binary may lack the options used below (a no-op when up to date).
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin tandem

target=both
if ! command -v redis-server >/dev/null || ! command -v redis-sentinel >/dev/null; then
  echo "note: redis-server/redis-sentinel not installed (apt-get install -y redis-server redis-sentinel): tandem only"
  target=tandem
fi

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
rc=0
"$tandem" bench-failover --target "$target" --kill "$kill" --kills "$kills" --json >"$out" || rc=$?
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print(f"{'target':<16} {'killed':<18} {'kills':>5} {'p50 ms':>8} {'max ms':>8} {'acked':>10} "
      f"{'failed':>7} {'views':>6} {'lost':>6}")
for r in rows:
    views = '-' if r['view_changes'] is None else r['view_changes']
    print(f"{r['target']:<16} {r['kill']:<18} {r['kills']:>5} {r['window_p50_ms']:>8.0f} "
          f"{r['window_max_ms']:>8.0f} {r['acknowledged']:>10} {r['client_errors']:>7} {views:>6} "
          f"{r['lost']:>6}")
for r in rows:
    extra = f", extra failovers {r['extra_failovers']}" if r['target'] == 'redis-sentinel' else ''
    print(f"  {r['target']} windows (ms): {' '.join(f'{w:.0f}' for w in r['windows_ms'])}{extra}")
PY
exit $rc
