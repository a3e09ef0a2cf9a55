//! Several replica groups with slots moving between them (rules S1-S8): the simulator runs
//! sharded clusters under moves and faults, catches each planted bug of slot moves, and a clean
//! sweep passes.

use tandem_protocol::message::SlotsChange;
use tandem_protocol::{Bug, Bugs, GroupId};
use tandem_sim::run::{RunOptions, run_seed};
use tandem_sim::workload::{self, RandomWorkload};
use tandem_sim::{Cluster, ClusterConfig};

/// Shorter runs keep the suite fast; `tandem sim --groups N` runs 60 simulated seconds.
const DURATION_MS: u64 = 20_000;

fn options(seed: u64, groups: usize, bugs: Bugs) -> RunOptions {
    RunOptions {
        duration_ms: DURATION_MS,
        groups,
        bugs,
        ..RunOptions::new(seed)
    }
}

/// S3-S6 end to end, without faults: after a rebalance over three groups every group executes
/// requests, a move of a workload slot completes, clients follow it (they are sent away with
/// `WrongGroup` or wait on `SlotMoving`, and retry), and every checker passes.
#[test]
fn s3_s6_three_groups_rebalance_and_move_while_clients_run() {
    let mut c = Cluster::new(ClusterConfig {
        seed: 5,
        groups: 3,
        servers: 3,
        clients: 4,
        ..ClusterConfig::default()
    });
    let groups = c.groups();
    assert!(c.run_until(10_000, |c| groups.iter().all(|g| c.group_view_acked(*g))));
    let tags = workload::spread_tags(workload::SHARDED_TAGS);
    c.set_watched_slots(
        tags.iter()
            .map(|t| tandem_kv::slots::key_slot(t.as_bytes()))
            .collect(),
    );
    let rebalanced =
        |c: &mut Cluster| matches!(c.change_slots(SlotsChange::Rebalance), Some(Ok(_)));
    let until = c.now_ms() + 10_000;
    while !rebalanced(&mut c) {
        assert!(c.now_ms() < until, "the rebalance was never taken");
        c.run_for(100);
    }
    assert!(c.run_until(c.now_ms() + 10_000, Cluster::configs_settled));
    c.set_workload(Some(Box::new(RandomWorkload::sharded(10, tags.clone()))));
    c.run_for(2000);

    // Move the first tag's slot from group 0 to group 2 under load.
    let slot = tandem_kv::slots::key_slot(tags[0].as_bytes());
    let map = c.cluster_map().expect("a map");
    assert_eq!(map.config.owner(slot), Some(GroupId(0)));
    let moved = c.change_slots(SlotsChange::Move {
        ranges: vec![(slot, slot)],
        to: GroupId(2),
    });
    assert!(matches!(moved, Some(Ok(_))), "{moved:?}");
    assert!(c.run_until(c.now_ms() + 10_000, Cluster::configs_settled));
    c.run_for(2000);
    c.set_workload(None);
    assert!(c.run_until(c.now_ms() + 10_000, |c| {
        (0..c.client_count()).all(|i| c.client_idle(i))
    }));
    assert_eq!(
        c.cluster_map().expect("a map").config.owner(slot),
        Some(GroupId(2))
    );
    assert!(c.violations().is_empty(), "{:?}", c.violations());
    assert!(c.ledger().check().is_empty(), "{:?}", c.ledger().check());
    let ledger = c.ledger();
    for g in &groups {
        assert!(
            ledger.executions().iter().any(|e| e.group == *g),
            "group {g} executed nothing"
        );
    }
    assert!(
        ledger
            .executions()
            .iter()
            .any(|e| e.slot == slot && e.group == GroupId(2)),
        "the taker executed on the moved slot"
    );
    let redirected: u64 = (0..c.client_count())
        .map(|i| c.clerk(i).stats().wrong_group)
        .sum();
    assert!(redirected > 0, "no client was ever sent to the new owner");
}

/// Each planted bug of slot moves is caught within 1,000 seeds of three groups (found within
/// the first few, so this takes seconds), and the real protocol passes that same seed.
#[test]
fn s4_s6_every_planted_move_bug_is_caught_within_1000_seeds() {
    let mut found = Vec::new();
    for bug in [
        Bug::ServeAfterHandoff,
        Bug::ServeBeforeInstall,
        Bug::MoveStateOnlyOnPrimary,
        Bug::PreCopyWithoutDelta,
    ] {
        let caught = (1..=1000)
            .map(|seed| run_seed(&options(seed, 3, Bugs::only(bug))))
            .find(|report| !report.passed());
        let report = caught.unwrap_or_else(|| panic!("{bug} was not caught within 1000 seeds"));
        let clean = run_seed(&options(report.seed, 3, Bugs::NONE));
        assert!(
            clean.passed(),
            "seed {}: {:?}",
            report.seed,
            clean.violations
        );
        found.push(format!(
            "{bug}: seed {}: {}",
            report.seed,
            report.violations.first().expect("a violation")
        ));
    }
    println!("{}", found.join("\n"));
}

/// A clean sweep of two and three groups under moves and every fault passes (the CLI runs more:
/// `tandem sim --groups 3 --seeds N`).
#[test]
fn s_short_sweep_of_two_and_three_groups_passes() {
    for groups in [2, 3] {
        for seed in 1..=8 {
            let report = run_seed(&options(seed, groups, Bugs::NONE));
            assert!(
                report.passed(),
                "{groups} groups, seed {seed}: {:?}",
                report.violations
            );
            assert!(report.configs >= 2, "seed {seed}: no rebalance: {report:?}");
            assert!(
                report.executions_per_group.iter().all(|n| *n > 0),
                "seed {seed}: a group executed nothing: {report:?}"
            );
        }
    }
}

/// The same seed of a sharded run replays exactly.
#[test]
fn s_sharded_seed_replays_to_the_same_digest() {
    let a = run_seed(&options(3, 3, Bugs::NONE));
    let b = run_seed(&options(3, 3, Bugs::NONE));
    assert_eq!((a.digest, a.operations), (b.digest, b.operations));
}
