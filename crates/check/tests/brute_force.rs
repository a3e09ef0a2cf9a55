//! The checker agrees with an exhaustive search over every order on thousands of small random
//! histories, with and without read-only hints, with and without timed-out operations.

mod common;

use common::{NoHints, Register, RegisterInput, Rng};
use tandem_check::{Budget, Model, Operation, Verdict, check};

/// Whether some order of the operations, consistent with real time, explains every output;
/// tries every order, with no memoization and no reductions.
fn linearizable_by_enumeration<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
) -> bool {
    let mut placed = vec![false; history.len()];
    explore(model, history, &mut placed, &model.init())
}

fn explore<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    placed: &mut [bool],
    state: &M::State,
) -> bool {
    let done = history
        .iter()
        .zip(placed.iter())
        .all(|(op, &p)| p || op.ret.is_none());
    if done {
        return true;
    }
    for i in 0..history.len() {
        let must_wait = history.iter().enumerate().any(|(j, other)| {
            !placed[j]
                && other
                    .ret
                    .as_ref()
                    .is_some_and(|(ret, _)| *ret < history[i].call)
        });
        if placed[i] || must_wait {
            continue;
        }
        let next_states = match &history[i].ret {
            Some((_, output)) => model
                .step(state, &history[i].input, output)
                .into_iter()
                .collect(),
            None => model.step_unobserved(state, &history[i].input),
        };
        for next in next_states {
            placed[i] = true;
            let found = explore(model, history, placed, &next);
            placed[i] = false;
            if found {
                return true;
            }
        }
    }
    false
}

/// Random intervals over a short time span, so that ties and overlaps are frequent.
fn random_interval(rng: &mut Rng) -> (u64, u64) {
    let call = rng.between(0, 12);
    (call, call + rng.between(0, 6))
}

fn random_register_history(rng: &mut Rng) -> Vec<Operation<RegisterInput, u64>> {
    let ops = rng.between(1, 7);
    (0..ops)
        .map(|client| {
            let (call, ret) = random_interval(rng);
            // Few values, so that the same value may be written twice.
            let input = if rng.between(0, 1) == 0 {
                RegisterInput::Write(rng.between(1, 3))
            } else {
                RegisterInput::Read
            };
            let timed_out = rng.between(0, 4) == 0;
            let ret = (!timed_out).then(|| (ret, rng.between(0, 3)));
            Operation {
                client,
                input,
                call,
                ret,
            }
        })
        .collect()
}

fn assert_agrees<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>], case: usize) {
    let expected = linearizable_by_enumeration(model, history);
    let verdict = check(model, history, Budget::default());
    assert_ne!(verdict, Verdict::Unknown, "case {case}");
    assert_eq!(
        verdict.is_linearizable(),
        expected,
        "case {case}: {history:#?}\n{verdict:?}"
    );
}

#[test]
fn register_verdicts_match_enumeration() {
    let mut rng = Rng::new(7);
    let mut linearizable = 0;
    for case in 0..4_000 {
        let history = random_register_history(&mut rng);
        assert_agrees(&Register, &history, case);
        assert_agrees(&NoHints(Register), &history, case);
        linearizable += usize::from(linearizable_by_enumeration(&Register, &history));
    }
    // Both verdicts must be well represented for the comparison to mean anything.
    assert!(
        (800..3_200).contains(&linearizable),
        "{linearizable} of 4000 linearizable"
    );
}

/// A list that operations append to and read whole; an ambiguous append may have landed
/// once or (a retried request) twice.
#[derive(Clone, Copy, Debug)]
struct RetriedLog;

#[derive(Clone, Debug)]
enum LogInput {
    Append(u64),
    Read,
}

impl Model for RetriedLog {
    type State = Vec<u64>;
    type Input = LogInput;
    type Output = Vec<u64>;

    fn init(&self) -> Vec<u64> {
        Vec::new()
    }

    fn step(&self, state: &Vec<u64>, input: &LogInput, output: &Vec<u64>) -> Option<Vec<u64>> {
        match input {
            LogInput::Append(value) => Some([state.as_slice(), &[*value]].concat()),
            LogInput::Read => (state == output).then(|| state.clone()),
        }
    }

    fn step_unobserved(&self, state: &Vec<u64>, input: &LogInput) -> Vec<Vec<u64>> {
        match input {
            LogInput::Append(value) => vec![
                [state.as_slice(), &[*value]].concat(),
                [state.as_slice(), &[*value, *value]].concat(),
            ],
            LogInput::Read => vec![state.clone()],
        }
    }

    fn is_read_only(&self, input: &LogInput) -> bool {
        matches!(input, LogInput::Read)
    }
}

/// Appends of distinct values; reads see a random subsequence-ish of them, often right.
fn random_log_history(rng: &mut Rng) -> Vec<Operation<LogInput, Vec<u64>>> {
    let ops = rng.between(1, 6);
    let mut appended = Vec::new();
    (0..ops)
        .map(|client| {
            let (call, ret) = random_interval(rng);
            let timed_out = rng.between(0, 3) == 0;
            if rng.between(0, 1) == 0 {
                appended.push(client + 1);
                let ret = (!timed_out).then(|| (ret, Vec::new()));
                Operation {
                    client,
                    input: LogInput::Append(client + 1),
                    call,
                    ret,
                }
            } else {
                let mut seen: Vec<u64> = appended
                    .iter()
                    .copied()
                    .filter(|_| rng.between(0, 3) != 0)
                    .collect();
                if rng.between(0, 5) == 0
                    && let Some(&last) = seen.last()
                {
                    seen.push(last);
                }
                let ret = (!timed_out).then_some((ret, seen));
                Operation {
                    client,
                    input: LogInput::Read,
                    call,
                    ret,
                }
            }
        })
        .collect()
}

#[test]
fn append_log_verdicts_match_enumeration() {
    let mut rng = Rng::new(11);
    let mut linearizable = 0;
    for case in 0..4_000 {
        let history = random_log_history(&mut rng);
        assert_agrees(&RetriedLog, &history, case);
        assert_agrees(&NoHints(RetriedLog), &history, case);
        linearizable += usize::from(linearizable_by_enumeration(&RetriedLog, &history));
    }
    assert!(
        (800..3_200).contains(&linearizable),
        "{linearizable} of 4000 linearizable"
    );
}
