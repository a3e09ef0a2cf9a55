//! Property tests: each core fed thousands of hostile messages (mutated copies of real traffic
//! and made-up ones, from senders among the real endpoints) from a seeded generator. No input
//! may panic a core or grow its state without bound (P9-P11, C4, V11-V13, Q6). The cargo-fuzz
//! targets in `fuzz/` run the same drivers (`tandem_sim::hostile`) from the fuzzer's bytes, and
//! every input they found that crashed is replayed here from `fuzz/regressions/`.

use tandem_protocol::Now;
use tandem_protocol::rng::SplitMix64;
use tandem_sim::hostile::{self, ByteSource};

const STEPS_PER_SEED: u64 = 2_000;

/// Seeds to run: `default`, or `TANDEM_FUZZ_SEEDS` for a longer hunt.
fn seeds(default: u64) -> std::ops::RangeInclusive<u64> {
    let count = std::env::var("TANDEM_FUZZ_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    1..=count
}

#[test]
fn p9_p10_p11_replicas_survive_hostile_peers() {
    for seed in seeds(20) {
        let (a, _b) = hostile::drive_replicas(&mut SplitMix64::new(seed), STEPS_PER_SEED);
        // Bounded: at most one transfer per backup of the (possibly forged) view.
        assert!(a.transfers_in_progress().len() <= tandem_protocol::view::MAX_BACKUPS);
    }
}

#[test]
fn v11_v12_v13_the_view_service_survives_hostile_peers_with_bounded_state() {
    for seed in seeds(20) {
        let vs = hostile::drive_standalone_view_service(&mut SplitMix64::new(seed), STEPS_PER_SEED);
        let status = vs.status(Now::at_ms(STEPS_PER_SEED * 10));
        assert!(status.groups.len() <= 16, "{}", status.groups.len());
        for g in &status.groups {
            let members = g.view.as_ref().map_or(0, |v| 1 + v.backups.len());
            assert!(g.servers.len() <= 4 + members, "{g:?}");
        }
    }
}

#[test]
fn q6_a_view_service_node_survives_hostile_peers() {
    for seed in seeds(40) {
        let replaced = hostile::drive_view_service_node(&mut SplitMix64::new(seed), STEPS_PER_SEED);
        assert!(replaced < STEPS_PER_SEED);
    }
}

#[test]
fn c4_a_clerk_survives_hostile_peers() {
    for seed in seeds(20) {
        let clerk = hostile::drive_clerk(&mut SplitMix64::new(seed), STEPS_PER_SEED);
        assert!(clerk.view().is_none_or(|v| v.is_well_formed()));
    }
}

/// Every input a cargo-fuzz target crashed on (`fuzz/regressions/TARGET/*`), replayed.
#[test]
fn fuzz_regressions_replay_without_panic() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    for target in ["replica_handle", "view_service_handle"] {
        let Ok(dir) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for file in dir.flatten() {
            let data = std::fs::read(file.path()).expect("readable regression input");
            match target {
                "replica_handle" => {
                    hostile::drive_replicas(&mut ByteSource::new(&data), 256);
                }
                _ => hostile::drive_view_service(&mut ByteSource::new(&data), 256),
            }
        }
    }
}
