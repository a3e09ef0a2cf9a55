//! An append-only list: ambiguous appends appear at most once, in one place, or not at all.

mod common;

use tandem_check::{Budget, Model, Operation, Verdict, check};

/// A list of `u64`s, initially empty.
struct AppendLog;

#[derive(Clone, Debug)]
enum LogInput {
    Append(u64),
    Read,
}

impl Model for AppendLog {
    type State = Vec<u64>;
    type Input = LogInput;
    /// The whole list for reads; ignored for appends.
    type Output = Vec<u64>;

    fn init(&self) -> Vec<u64> {
        Vec::new()
    }

    fn step(&self, state: &Vec<u64>, input: &LogInput, output: &Vec<u64>) -> Option<Vec<u64>> {
        match input {
            LogInput::Append(_) => self.step_unobserved(state, input).pop(),
            LogInput::Read => (output == state).then(|| state.clone()),
        }
    }

    fn step_unobserved(&self, state: &Vec<u64>, input: &LogInput) -> Vec<Vec<u64>> {
        let mut next = state.clone();
        if let LogInput::Append(value) = input {
            next.push(*value);
        }
        vec![next]
    }

    fn is_read_only(&self, input: &LogInput) -> bool {
        matches!(input, LogInput::Read)
    }
}

fn append(client: u64, value: u64, call: u64, ret: u64) -> Operation<LogInput, Vec<u64>> {
    Operation {
        client,
        input: LogInput::Append(value),
        call,
        ret: Some((ret, Vec::new())),
    }
}

fn append_timed_out(client: u64, value: u64, call: u64) -> Operation<LogInput, Vec<u64>> {
    Operation {
        client,
        input: LogInput::Append(value),
        call,
        ret: None,
    }
}

fn read(client: u64, seen: &[u64], call: u64, ret: u64) -> Operation<LogInput, Vec<u64>> {
    Operation {
        client,
        input: LogInput::Read,
        call,
        ret: Some((ret, seen.to_vec())),
    }
}

fn verdict(history: &[Operation<LogInput, Vec<u64>>]) -> Verdict {
    check(&AppendLog, history, Budget::default())
}

#[test]
fn timed_out_append_may_appear_once() {
    let history = [
        append_timed_out(0, 9, 0),
        append(1, 1, 10, 20),
        read(1, &[9, 1], 30, 40),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn timed_out_append_may_be_missing() {
    let history = [
        append_timed_out(0, 9, 0),
        append(1, 1, 10, 20),
        read(1, &[1], 30, 40),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn timed_out_append_never_appears_twice() {
    let history = [append_timed_out(0, 9, 0), read(1, &[9, 9], 30, 40)];
    assert!(matches!(verdict(&history), Verdict::NotLinearizable(_)));
}

#[test]
fn timed_out_append_lands_between_completed_appends() {
    let history = [
        append(1, 1, 0, 10),
        append_timed_out(0, 9, 5),
        append(1, 2, 20, 30),
        read(2, &[1, 9, 2], 40, 50),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn timed_out_append_cannot_land_before_a_read_that_missed_it_then_after_one_that_saw_it() {
    let history = [
        append_timed_out(0, 9, 0),
        read(1, &[9], 10, 20),
        append(1, 2, 30, 40),
        read(1, &[2], 50, 60),
    ];
    assert!(matches!(verdict(&history), Verdict::NotLinearizable(_)));
}

#[test]
fn timed_out_append_cannot_land_before_its_call() {
    let history = [
        append(1, 1, 0, 10),
        append(1, 2, 20, 30),
        append_timed_out(0, 9, 35),
        read(2, &[1, 9, 2], 40, 50),
    ];
    assert!(matches!(verdict(&history), Verdict::NotLinearizable(_)));
}

#[test]
fn concurrent_timed_out_appends_may_land_in_any_order_or_not_at_all() {
    let history = [
        append_timed_out(0, 7, 0),
        append_timed_out(1, 8, 0),
        append_timed_out(2, 9, 0),
        read(3, &[9, 7], 10, 20),
        read(3, &[9, 7, 8], 30, 40),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
    let reordered = [
        append_timed_out(0, 7, 0),
        append_timed_out(1, 8, 0),
        read(3, &[8], 10, 20),
        read(3, &[7, 8], 30, 40),
    ];
    assert!(matches!(verdict(&reordered), Verdict::NotLinearizable(_)));
}
