//! A read/write register: the basic verdicts and what a counterexample reports.

mod common;

use common::{Register, read, write};
use tandem_check::{Budget, Counterexample, Verdict, check, check_partitioned};

fn verdict(history: &[tandem_check::Operation<common::RegisterInput, u64>]) -> Verdict {
    check(&Register, history, Budget::default())
}

#[test]
fn empty_history_is_linearizable() {
    assert_eq!(verdict(&[]), Verdict::Linearizable);
}

#[test]
fn sequential_history_is_linearizable() {
    let history = [
        read(0, 0, 0, 1),
        write(0, 1, 2, 3),
        read(1, 1, 4, 5),
        write(1, 2, 6, 7),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn concurrent_write_and_read_may_take_effect_in_either_order() {
    let read_old = [write(0, 1, 0, 10), read(1, 0, 2, 8)];
    let read_new = [write(0, 1, 0, 10), read(1, 1, 2, 8)];
    assert_eq!(verdict(&read_old), Verdict::Linearizable);
    assert_eq!(verdict(&read_new), Verdict::Linearizable);
}

#[test]
fn read_of_a_value_never_written_is_not_linearizable() {
    let history = [write(0, 1, 0, 10), read(1, 7, 2, 8)];
    let Verdict::NotLinearizable(counterexample) = verdict(&history) else {
        panic!("a read of 7 cannot be explained");
    };
    assert!(counterexample.stuck_at.contains(&1), "{counterexample:?}");
}

#[test]
fn stale_read_after_a_completed_write_is_not_linearizable() {
    let history = [write(0, 1, 0, 10), read(1, 0, 11, 12)];
    let expected = Counterexample {
        longest_prefix: vec![0],
        stuck_at: vec![1],
    };
    assert_eq!(verdict(&history), Verdict::NotLinearizable(expected));
}

#[test]
fn intervals_are_closed_so_touching_operations_are_concurrent() {
    // The read is called at the instant the write returns: either may come first.
    let history = [write(0, 1, 0, 10), read(1, 0, 10, 12)];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn two_reads_seeing_new_then_old_is_not_linearizable() {
    // The write overlaps both reads, but the reads are ordered: once the new value is seen,
    // the old one may not come back.
    let history = [write(0, 1, 0, 100), read(1, 1, 10, 20), read(2, 0, 30, 40)];
    let Verdict::NotLinearizable(counterexample) = verdict(&history) else {
        panic!("new-then-old must be caught");
    };
    assert_eq!(counterexample.stuck_at, vec![2]);
    let text = counterexample.describe(&history);
    assert!(
        text.contains("#2 client 2 Read called 30 returned 40: 0"),
        "{text}"
    );
}

#[test]
fn old_then_new_reads_during_a_write_are_linearizable() {
    let history = [write(0, 1, 0, 100), read(1, 0, 10, 20), read(2, 1, 30, 40)];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn search_backtracks_past_a_wrong_first_guess() {
    // Writes of 1 and 2 overlap; a later read of 1 forces 2 before 1, though 1 is called first.
    let history = [
        write(0, 1, 0, 10),
        write(1, 2, 1, 10),
        read(2, 2, 3, 5),
        read(2, 1, 11, 12),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
    let inconsistent = [
        write(0, 1, 0, 10),
        write(1, 2, 1, 10),
        read(2, 1, 3, 5),
        read(2, 1, 11, 12),
        read(3, 2, 13, 14),
    ];
    assert!(matches!(
        verdict(&inconsistent),
        Verdict::NotLinearizable(_)
    ));
}

#[test]
fn exhausted_budget_gives_unknown() {
    let history = [write(0, 1, 0, 1), read(0, 1, 2, 3), read(0, 1, 4, 5)];
    assert_eq!(
        check(&Register, &history, Budget { max_steps: 2 }),
        Verdict::Unknown
    );
    assert_eq!(
        check(&Register, &history, Budget { max_steps: 3 }),
        Verdict::Linearizable
    );
}

#[test]
fn history_order_does_not_matter_and_indices_follow_the_input() {
    let history = [read(1, 0, 11, 12), write(0, 1, 0, 10)];
    let expected = Counterexample {
        longest_prefix: vec![1],
        stuck_at: vec![0],
    };
    assert_eq!(verdict(&history), Verdict::NotLinearizable(expected));
}

#[test]
fn partitioned_check_reports_the_first_failure_in_concatenated_indices() {
    let good = vec![write(0, 1, 0, 1), read(0, 1, 2, 3)];
    let bad = vec![write(0, 1, 0, 10), read(1, 0, 11, 12)];
    let partitions = [good.clone(), bad, good.clone()];
    let expected = Counterexample {
        longest_prefix: vec![2],
        stuck_at: vec![3],
    };
    assert_eq!(
        check_partitioned(&Register, &partitions, Budget::default()),
        Verdict::NotLinearizable(expected)
    );
    let all_good = [good.clone(), good];
    assert_eq!(
        check_partitioned(&Register, &all_good, Budget::default()),
        Verdict::Linearizable
    );
    assert_eq!(
        check_partitioned(&Register, &all_good, Budget { max_steps: 1 }),
        Verdict::Unknown
    );
}

#[test]
#[should_panic(expected = "before its call")]
fn operation_returning_before_its_call_is_rejected() {
    verdict(&[read(0, 0, 5, 4)]);
}
