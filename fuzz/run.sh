#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 20), on the stable toolchain
# (RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly-only flags). Needs `cargo install
# cargo-fuzz`. A crash leaves its input in fuzz/artifacts/TARGET/; copy it to
# fuzz/regressions/TARGET/ so that `cargo test` replays it for good
# (crates/sim/tests/fuzz_cores.rs, crates/resp/tests/fuzz_parse.rs,
# crates/runtime/tests/fuzz_wire.rs).
set -euo pipefail
seconds="${1:-20}"
cd "$(dirname "$0")"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2
    exit 2
fi
export RUSTC_BOOTSTRAP=1
targets=(resp_request wire_frame replica_handle view_service_handle)
cargo fuzz build -O
failed=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    # Seed the corpus with the regressions, so that what once crashed is tried first.
    if [ -d "regressions/$target" ]; then
        cp -n regressions/"$target"/* "corpus/$target/" 2>/dev/null || true
    fi
    echo "fuzz/run.sh: $target for ${seconds}s"
    if ! cargo fuzz run -O "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1; then
        failed+=("$target")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz/run.sh: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
