//! Large generated histories: a linearizable one is checked fast, and a single corrupted read
//! in it is caught.

mod common;

use std::time::{Duration, Instant};

use common::{Register, RegisterInput, Workload, atomic_register_history};
use tandem_check::{Budget, Operation, Verdict, check};

type History = Vec<Operation<RegisterInput, u64>>;

const OPS: usize = 20_000;
const CLIENTS: u64 = 10;
/// "Fast" as a count, not a clock: the checker must decide within this many model steps (200
/// per operation, well under the default budget). A wall-clock limit failed on a loaded
/// machine; steps are the same everywhere.
const STEP_BUDGET: Budget = Budget {
    max_steps: 200 * OPS as u64,
};

/// A register workload; `timeouts_per_mille` of the operations time out, and with
/// `timeouts_may_be_lost` half of those never take effect.
fn workload(seed: u64, timeouts_per_mille: u64, timeouts_may_be_lost: bool) -> Workload {
    Workload {
        seed,
        clients: CLIENTS,
        ops: OPS,
        timeouts_per_mille,
        timeouts_may_be_lost,
    }
}

fn timed_check(history: &History) -> (Verdict, Duration) {
    let started = Instant::now();
    let verdict = check(&Register, history, STEP_BUDGET);
    (verdict, started.elapsed())
}

/// Concurrency sanity: the generated histories really do overlap.
fn max_concurrency(history: &History) -> usize {
    let mut events: Vec<(u64, i32)> = Vec::new();
    for op in history {
        events.push((op.call, 1));
        events.push((op.ret.as_ref().map_or(u64::MAX, |(t, _)| *t) + 1, -1));
    }
    events.sort_unstable();
    let mut open = 0i32;
    let mut max = 0;
    for (_, delta) in events {
        open += delta;
        max = max.max(open);
    }
    usize::try_from(max).expect("non-negative")
}

#[test]
fn large_linearizable_register_history_checks_fast() {
    for seed in 1..=3 {
        let history = atomic_register_history(&workload(seed, 0, false));
        assert!(max_concurrency(&history) >= 8, "workload should overlap");
        let (verdict, elapsed) = timed_check(&history);
        eprintln!("seed {seed}: {OPS} ops, {CLIENTS} clients: {verdict:?} in {elapsed:?}");
        assert_eq!(verdict, Verdict::Linearizable, "seed {seed}");
    }
}

#[test]
fn large_linearizable_history_with_timeouts_checks_fast() {
    for (seed, lost) in [(1, false), (2, false), (3, true), (4, true)] {
        // 3% of operations time out: all took effect, or half of them never did.
        let history = atomic_register_history(&workload(seed, 30, lost));
        let (verdict, elapsed) = timed_check(&history);
        eprintln!("seed {seed}, 3% timeouts (lost: {lost}): {verdict:?} in {elapsed:?}");
        assert_eq!(verdict, Verdict::Linearizable, "seed {seed}");
    }
}

/// Index of a completed read near `position`.
fn read_near(history: &History, position: usize) -> usize {
    (position..history.len())
        .find(|&i| history[i].input == RegisterInput::Read && history[i].ret.is_some())
        .expect("a read after position")
}

/// A value that the read at `index` cannot see: written by a completed write that a later
/// completed write strictly follows, both before the read was called.
fn overwritten_value(history: &History, index: usize) -> u64 {
    let read_call = history[index].call;
    let returned_before = |op: &Operation<RegisterInput, u64>, time: u64| {
        op.ret.as_ref().is_some_and(|(ret, _)| *ret < time)
    };
    let writes: Vec<&Operation<RegisterInput, u64>> = history
        .iter()
        .filter(|op| matches!(op.input, RegisterInput::Write(_)) && returned_before(op, read_call))
        .collect();
    for old in &writes {
        let old_ret = old.ret.as_ref().expect("completed").0;
        if writes.iter().any(|newer| newer.call > old_ret) {
            let RegisterInput::Write(value) = old.input else {
                unreachable!()
            };
            return value;
        }
    }
    panic!("no overwritten value before read {index}");
}

fn corrupt(history: &History, index: usize, value: u64) -> History {
    let mut corrupted = history.clone();
    corrupted[index].ret.as_mut().expect("completed read").1 = value;
    corrupted
}

#[test]
fn large_history_with_one_stale_read_is_caught() {
    for (seed, position) in [(1, OPS / 2), (2, OPS - 100), (3, 50)] {
        let history = atomic_register_history(&workload(seed, 0, false));
        assert_stale_read_caught(&history, seed, position);
    }
}

#[test]
fn history_with_timeouts_and_one_stale_read_is_caught() {
    // Proving a history wrong means exploring every interleaving before the bad read, and each
    // pending timed-out write multiplies those; keep the bad read early enough to stay fast.
    let history = atomic_register_history(&workload(6, 1, true));
    assert!(history.iter().any(|op| op.ret.is_none()));
    assert_stale_read_caught(&history, 6, 2_000);
}

fn assert_stale_read_caught(history: &History, seed: u64, position: usize) {
    let index = read_near(history, position);
    let corrupted = corrupt(history, index, overwritten_value(history, index));
    let (verdict, elapsed) = timed_check(&corrupted);
    eprintln!("seed {seed}, stale read #{index}: caught in {elapsed:?}");
    let Verdict::NotLinearizable(counterexample) = verdict else {
        panic!("seed {seed}: stale read #{index} not caught: {verdict:?}");
    };
    assert!(
        counterexample.stuck_at.contains(&index),
        "{counterexample:?}"
    );
}

#[test]
fn large_history_with_one_read_of_an_unwritten_value_is_caught() {
    for (seed, position) in [(4, OPS / 2), (5, OPS - 100)] {
        let history = atomic_register_history(&workload(seed, 0, false));
        let index = read_near(&history, position);
        let corrupted = corrupt(&history, index, u64::MAX);
        let (verdict, elapsed) = timed_check(&corrupted);
        eprintln!("seed {seed}, unwritten value at #{index}: caught in {elapsed:?}");
        let Verdict::NotLinearizable(counterexample) = verdict else {
            panic!("seed {seed}: read #{index} of an unwritten value not caught: {verdict:?}");
        };
        assert!(
            counterexample.stuck_at.contains(&index),
            "{counterexample:?}"
        );
    }
}
