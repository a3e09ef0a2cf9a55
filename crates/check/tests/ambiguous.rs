//! Operations whose outcome is unknown (`ret == None`): optional, effective at most once, and
//! never before their call.

mod common;

use std::time::{Duration, Instant};

use common::{Register, RegisterInput, read, write, write_timed_out};
use tandem_check::{Budget, Model, Operation, Verdict, check};

fn verdict(history: &[Operation<RegisterInput, u64>]) -> Verdict {
    check(&Register, history, Budget::default())
}

#[test]
fn timed_out_write_whose_value_is_later_read_is_linearizable() {
    let history = [
        write_timed_out(0, 5, 0),
        read(1, 0, 10, 20),
        read(1, 5, 1_000, 1_010),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn timed_out_write_never_read_is_linearizable() {
    let history = [
        write_timed_out(0, 5, 0),
        read(1, 0, 10, 20),
        read(1, 0, 1_000, 1_010),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn read_of_a_value_whose_write_was_called_after_the_read_returned_is_not_linearizable() {
    let history = [read(1, 5, 0, 10), write_timed_out(0, 5, 11)];
    assert!(matches!(verdict(&history), Verdict::NotLinearizable(_)));
    let completed_write = [read(1, 5, 0, 10), write(0, 5, 11, 12)];
    assert!(matches!(
        verdict(&completed_write),
        Verdict::NotLinearizable(_)
    ));
}

#[test]
fn timed_out_write_called_when_the_read_returns_may_precede_it() {
    let history = [read(1, 5, 0, 10), write_timed_out(0, 5, 10)];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn timed_out_write_takes_effect_at_most_once() {
    // 5 is seen, overwritten by 6, then seen again: only a second write of 5 could explain it.
    let history = [
        write_timed_out(0, 5, 0),
        read(1, 5, 10, 20),
        write(1, 6, 30, 40),
        read(1, 6, 50, 60),
        read(1, 5, 70, 80),
    ];
    let Verdict::NotLinearizable(counterexample) = verdict(&history) else {
        panic!("a single timed-out write cannot take effect twice");
    };
    assert_eq!(counterexample.longest_prefix, vec![0, 1, 2, 3]);
    assert_eq!(counterexample.stuck_at, vec![4]);
}

#[test]
fn timed_out_write_may_take_effect_after_later_operations() {
    // The timed-out write of 5 lands after the completed write of 6 and its read.
    let history = [
        write_timed_out(0, 5, 0),
        write(1, 6, 10, 20),
        read(1, 6, 30, 40),
        read(1, 5, 50, 60),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn many_timed_out_writes_never_read_stay_cheap() {
    let mut history = Vec::new();
    for i in 0..2_000u64 {
        let t = i * 100;
        if i % 10 == 0 {
            history.push(write_timed_out(i % 7, 1_000_000 + i, t));
        } else {
            history.push(write(i % 7, i, t, t + 50));
            history.push(read(7, i, t + 60, t + 70));
        }
    }
    let started = Instant::now();
    assert_eq!(verdict(&history), Verdict::Linearizable);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn timed_out_write_read_long_after_its_call_stays_cheap() {
    // The write hangs for a long time before taking effect; hundreds of operations run first.
    let mut history = vec![write_timed_out(0, 5, 0)];
    for i in 1..1_000u64 {
        history.push(write(1, i + 10, i * 100, i * 100 + 50));
        history.push(read(2, i + 10, i * 100 + 60, i * 100 + 70));
    }
    history.push(read(2, 5, 200_000, 200_010));
    let started = Instant::now();
    assert_eq!(verdict(&history), Verdict::Linearizable);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

/// A counter whose unobserved increment may have been applied once or twice (a client library
/// that retried once without knowing whether the first attempt landed).
struct RetriedCounter;

impl Model for RetriedCounter {
    type State = u64;
    type Input = ();
    /// The value after the increment.
    type Output = u64;

    fn init(&self) -> u64 {
        0
    }

    fn step(&self, state: &u64, _input: &(), output: &u64) -> Option<u64> {
        (*output == state + 1).then_some(state + 1)
    }

    fn step_unobserved(&self, state: &u64, _input: &()) -> Vec<u64> {
        vec![state + 1, state + 2]
    }
}

#[test]
fn every_possible_unobserved_effect_is_tried() {
    let lost = Operation {
        client: 0,
        input: (),
        call: 0,
        ret: None,
    };
    let incr = |output: u64| Operation {
        client: 1,
        input: (),
        call: 10,
        ret: Some((20, output)),
    };
    for (output, linearizable) in [(1, true), (2, true), (3, true), (4, false)] {
        let history = [lost.clone(), incr(output)];
        let verdict = check(&RetriedCounter, &history, Budget::default());
        assert_eq!(
            verdict.is_linearizable(),
            linearizable,
            "increment returned {output}"
        );
    }
}
