//! What the tests of several crates share, with no dependency of its own so that any crate,
//! the lowest included, can use it as a dev-dependency.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant, SystemTime};

/// Runs `one` on consecutive seeds for `TANDEM_FUZZ_SECS` seconds (default 10), starting at
/// `TANDEM_FUZZ_SEED` (default: from the clock); at least one seed runs. On a panic it names
/// the seed and the command that replays it alone: `replay` is the cargo arguments that select
/// the test binary (`-p tandem-resp --test fuzz_requests`), `test` the test's name.
pub fn fuzz_for(replay: &str, test: &str, mut one: impl FnMut(u64)) {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let budget = Duration::from_secs(env("TANDEM_FUZZ_SECS").unwrap_or(10));
    let first = env("TANDEM_FUZZ_SEED").unwrap_or_else(|| {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
        now.map_or(1, |d| d.as_nanos() as u64)
    });
    let deadline = Instant::now() + budget;
    let mut seed = first;
    let mut runs = 0u64;
    loop {
        if catch_unwind(AssertUnwindSafe(|| one(seed))).is_err() {
            panic!(
                "{test}: seed {seed} failed; replay it alone with TANDEM_FUZZ_SEED={seed} \
                 TANDEM_FUZZ_SECS=0 cargo test --release {replay} {test}"
            );
        }
        runs += 1;
        seed = seed.wrapping_add(1);
        if Instant::now() >= deadline {
            break;
        }
    }
    eprintln!("{test}: {runs} seeds, {first}..{seed}");
}
