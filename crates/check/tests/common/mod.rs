//! Models and history builders shared by the integration tests.

#![allow(dead_code)] // Each test binary uses a different subset.

use tandem_check::{Model, Operation};

/// A read/write register holding a `u64`, initially 0.
#[derive(Clone, Copy, Debug)]
pub struct Register;

/// A register operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterInput {
    Write(u64),
    Read,
}

impl Model for Register {
    type State = u64;
    type Input = RegisterInput;
    /// The value read; ignored for writes.
    type Output = u64;

    fn init(&self) -> u64 {
        0
    }

    fn step(&self, state: &u64, input: &RegisterInput, output: &u64) -> Option<u64> {
        match input {
            RegisterInput::Write(value) => Some(*value),
            RegisterInput::Read => (output == state).then_some(*state),
        }
    }

    fn step_unobserved(&self, state: &u64, input: &RegisterInput) -> Vec<u64> {
        match input {
            RegisterInput::Write(value) => vec![*value],
            RegisterInput::Read => vec![*state],
        }
    }

    fn is_read_only(&self, input: &RegisterInput) -> bool {
        *input == RegisterInput::Read
    }
}

/// `M` without its read-only hints: the search must reach the same verdicts without them.
#[derive(Clone, Copy, Debug)]
pub struct NoHints<M>(pub M);

impl<M: Model> Model for NoHints<M> {
    type State = M::State;
    type Input = M::Input;
    type Output = M::Output;

    fn init(&self) -> M::State {
        self.0.init()
    }

    fn step(&self, state: &M::State, input: &M::Input, output: &M::Output) -> Option<M::State> {
        self.0.step(state, input, output)
    }

    fn step_unobserved(&self, state: &M::State, input: &M::Input) -> Vec<M::State> {
        self.0.step_unobserved(state, input)
    }
}

/// A completed write.
pub fn write(client: u64, value: u64, call: u64, ret: u64) -> Operation<RegisterInput, u64> {
    Operation {
        client,
        input: RegisterInput::Write(value),
        call,
        ret: Some((ret, 0)),
    }
}

/// A write whose outcome is unknown.
pub fn write_timed_out(client: u64, value: u64, call: u64) -> Operation<RegisterInput, u64> {
    Operation {
        client,
        input: RegisterInput::Write(value),
        call,
        ret: None,
    }
}

/// A completed read that saw `value`.
pub fn read(client: u64, value: u64, call: u64, ret: u64) -> Operation<RegisterInput, u64> {
    Operation {
        client,
        input: RegisterInput::Read,
        call,
        ret: Some((ret, value)),
    }
}

/// SplitMix64: a tiny deterministic generator, so generated histories replay from a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }
}

/// The shape of a generated register history.
pub struct Workload {
    pub seed: u64,
    pub clients: u64,
    pub ops: usize,
    /// Out of 1000 operations, how many time out (their effect is applied, never seen).
    pub timeouts_per_mille: u64,
    /// Whether a timed-out operation may also never take effect (half of them).
    pub timeouts_may_be_lost: bool,
}

/// A history of an atomic register: each operation takes effect at a random instant inside its
/// interval, so the history is linearizable by construction. Writes use distinct values.
pub fn atomic_register_history(workload: &Workload) -> Vec<Operation<RegisterInput, u64>> {
    let mut rng = Rng::new(workload.seed);
    // (effect time, index) for each operation, then replay effects in that order.
    let mut history = Vec::with_capacity(workload.ops);
    let mut effects = Vec::with_capacity(workload.ops);
    let mut next_free_us = vec![0u64; workload.clients as usize];
    let mut next_value = 1;
    for index in 0..workload.ops {
        let client = rng.between(0, workload.clients - 1);
        let call = next_free_us[client as usize] + rng.between(0, 20);
        let ret = call + rng.between(1, 60);
        next_free_us[client as usize] = ret + 1;
        let input = if rng.between(0, 1) == 0 {
            next_value += 1;
            RegisterInput::Write(next_value)
        } else {
            RegisterInput::Read
        };
        let timed_out = rng.between(0, 999) < workload.timeouts_per_mille;
        let lost = timed_out && workload.timeouts_may_be_lost && rng.between(0, 1) == 0;
        if !lost {
            effects.push((rng.between(call, ret), index));
        }
        history.push(Operation {
            client,
            input,
            call,
            ret: (!timed_out).then_some((ret, 0)),
        });
    }
    effects.sort_unstable();
    let mut value = 0;
    for (_, index) in effects {
        let op = &mut history[index];
        match op.input {
            RegisterInput::Write(written) => value = written,
            RegisterInput::Read => {
                if let Some((_, seen)) = &mut op.ret {
                    *seen = value;
                }
            }
        }
    }
    history
}
