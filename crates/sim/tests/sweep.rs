//! The simulator proves the protocol, and proves it can catch bugs: every planted bug is found
//! within 1,000 seeds, the same seed replays to the same digest, and a short sweep of the real
//! protocol passes.

use tandem_protocol::{Bug, Bugs};
use tandem_sim::run::{RunOptions, run_seed};

/// Shorter runs keep the test suite fast; `tandem sim` defaults to 60 simulated seconds.
const DURATION_MS: u64 = 20_000;

fn options(seed: u64, bugs: Bugs) -> RunOptions {
    RunOptions {
        seed,
        duration_ms: DURATION_MS,
        bugs,
        verbose: false,
    }
}

#[test]
fn same_seed_gives_same_digest() {
    for seed in [1, 7, 42] {
        let a = run_seed(&options(seed, Bugs::NONE));
        let b = run_seed(&options(seed, Bugs::NONE));
        assert_eq!(a.digest, b.digest, "seed {seed}");
        assert_eq!(a.operations, b.operations);
        assert_eq!(a.violations, b.violations);
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let a = run_seed(&options(1, Bugs::NONE));
    let b = run_seed(&options(2, Bugs::NONE));
    assert_ne!(a.digest, b.digest);
}

#[test]
fn short_sweep_of_the_real_protocol_passes() {
    for seed in 1..=40 {
        let report = run_seed(&options(seed, Bugs::NONE));
        assert!(report.passed(), "seed {seed}: {:?}", report.violations);
        assert!(
            report.completed > 100,
            "seed {seed} did real work: {report:?}"
        );
    }
}

#[test]
fn every_planted_bug_is_caught_within_1000_seeds() {
    let mut found = Vec::new();
    for bug in Bug::ALL {
        let caught = (1..=1000).find(|seed| !run_seed(&options(*seed, Bugs::only(bug))).passed());
        let seed = caught.unwrap_or_else(|| panic!("{bug} was not caught within 1000 seeds"));
        found.push(format!("{bug}: seed {seed}"));
    }
    println!("{}", found.join("\n"));
}
