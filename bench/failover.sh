#!/usr/bin/env bash
# Failover, tandem vs Redis + Sentinel, in one invocation: kill the primary under a steady write
# load again and again, and report the client-visible unavailability window and lost writes.
#
#   bench/failover.sh            # 10 kills each (about 2 minutes)
#   bench/failover.sh --short    # 2 kills each: what CI runs so that this script cannot rot
#
# Runs `tandem bench-failover --target both` (tandem cluster, then Redis master + 2 replicas +
# 3 Sentinels from the installed redis-server/redis-sentinel) and prints one row per target.
# tandem must lose 0 acknowledged writes (the script fails otherwise); Redis replicates
# asynchronously, so its lost writes are reported, not judged. Without redis-sentinel it runs
# tandem only.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
kills=10
[ "${1:-}" = "--short" ] && kills=2
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
"$tandem" bench-failover --target "$target" --kills "$kills" --json >"$out" || rc=$?
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print(f"{'target':<16} {'kills':>5} {'p50 ms':>8} {'max ms':>8} {'acked':>10} {'lost':>8}")
for r in rows:
    print(f"{r['target']:<16} {r['kills']:>5} {r['window_p50_ms']:>8.0f} {r['window_max_ms']:>8.0f} "
          f"{r['acknowledged']:>10} {r['lost']:>8}")
for r in rows:
    extra = f", extra failovers {r['extra_failovers']}" if r['target'] == 'redis-sentinel' else ''
    print(f"  {r['target']} windows (ms): {' '.join(f'{w:.0f}' for w in r['windows_ms'])}{extra}")
PY
exit $rc
