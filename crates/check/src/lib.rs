//! A linearizability checker: given a sequential specification (a [`Model`]) and a history of
//! concurrent operations, decides whether some total order of the operations, consistent with
//! their real-time order, explains every output that was observed.
//!
//! The search is Wing & Gong's, with Lowe's memoization of visited configurations (as in
//! Porcupine): operations are linearized one at a time in depth-first order, and a configuration
//! (set of linearized operations, model state) is never explored twice. Operations whose outcome
//! is unknown (`ret == None`) are optional: they may take effect at any point after their call,
//! or never. Two sound reductions keep the search small: reads that fit are placed at once (see
//! [`Model::is_read_only`]), and a configuration is skipped when one with the same completed
//! operations and state but fewer ambiguous operations placed was already seen.
//!
//! # Layout
//! - `lib.rs`: the public contract: [`Model`], [`Operation`], [`Budget`], [`Verdict`],
//!   [`Counterexample`], [`check`] and [`check_partitioned`].
//! - `search.rs`: the iterative depth-first search over an event list.
//! - `bitset.rs`: the set of linearized operations and its compact, canonical cache key.
//!
//! **Architecture Invariant**: no recursion proportional to the history's length, and every
//! search is bounded by [`Budget::max_steps`]; the checker never runs forever.

mod bitset;
mod search;

use std::fmt::{self, Debug, Write as _};
use std::hash::Hash;

/// A sequential specification of the object whose history is checked.
///
/// Both step functions must be pure: the same arguments always give the same answer. The
/// search relies on it when it memoizes configurations.
pub trait Model {
    /// The object's state. Equal states must behave identically in every later step.
    type State: Clone + Eq + Hash + Debug;
    /// What a client asked for.
    type Input: Clone + Debug;
    /// What a client was told.
    type Output: Clone + Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Apply `input` to `state`. Some(new_state) if `output` is a possible result of it, None if
    /// not.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;

    /// The state reached when the operation took effect but its output was never seen (used for
    /// ambiguous operations). Returns the possible new states (usually one).
    fn step_unobserved(&self, state: &Self::State, input: &Self::Input) -> Vec<Self::State>;

    /// Whether `input` never changes the state: for every state, `step` returns either `None`
    /// or the same state, and `step_unobserved` returns just the same state.
    ///
    /// Optional: the default, `false`, is always correct. Answering `true` for reads lets the
    /// search place a read as soon as its output fits the current state instead of trying it at
    /// every position, which shrinks the search for read-heavy histories by orders of magnitude.
    /// A wrong `true` can only make the checker reject a linearizable history, never accept a
    /// non-linearizable one.
    fn is_read_only(&self, input: &Self::Input) -> bool {
        let _ = input;
        false
    }
}

/// One operation of a history, as a client saw it.
///
/// `call` and `ret` are timestamps in any monotone unit (simulated microseconds, say); intervals
/// are closed, so an operation returning at `t` and one called at `t` are concurrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client that issued the operation (informational; the checker does not use it).
    pub client: u64,
    /// What the client asked for.
    pub input: I,
    /// When the client issued the operation.
    pub call: u64,
    /// When the client got an answer, and the answer; `None` if the outcome is unknown (timed
    /// out, client crashed): the operation may have taken effect at any point after `call`, or
    /// never.
    pub ret: Option<(u64, O)>,
}

impl<I, O> Operation<I, O> {
    /// Whether the operation's outcome is unknown (`ret == None`).
    pub fn is_ambiguous(&self) -> bool {
        self.ret.is_none()
    }
}

/// How much work one check may do before giving up with [`Verdict::Unknown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The most model steps (calls of [`Model::step`] or [`Model::step_unobserved`]) to try.
    pub max_steps: u64,
}

impl Budget {
    /// The default bound: ample for tens of thousands of operations of a simple model.
    pub const DEFAULT_MAX_STEPS: u64 = 10_000_000;
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_steps: Self::DEFAULT_MAX_STEPS,
        }
    }
}

/// The answer of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the operations consistent with real time explains every observed output.
    Linearizable,
    /// No such order exists; the counterexample shows how far the search got.
    NotLinearizable(Counterexample),
    /// The budget ran out before the search could decide.
    Unknown,
}

impl Verdict {
    /// Whether the verdict is [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// Evidence that a history is not linearizable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counterexample {
    /// Indices into the history of the longest linearizable prefix found, in linearization
    /// order (ambiguous operations included when the prefix used them).
    pub longest_prefix: Vec<usize>,
    /// Indices into the history, ascending, of the completed operations that could have come
    /// next after `longest_prefix` but could not be placed there.
    pub stuck_at: Vec<usize>,
}

impl Counterexample {
    /// How many operations of the prefix [`Counterexample::describe`] shows.
    pub const DESCRIBED_PREFIX_OPS: usize = 8;

    /// A human-readable account: the tail of the longest prefix, then the stuck operations.
    pub fn describe<I: Debug, O: Debug>(&self, history: &[Operation<I, O>]) -> String {
        let mut text = String::new();
        let prefix = &self.longest_prefix;
        let shown = prefix.len().saturating_sub(Self::DESCRIBED_PREFIX_OPS);
        let _ = writeln!(
            text,
            "longest linearizable prefix: {} ops (last {} shown)",
            prefix.len(),
            prefix.len() - shown
        );
        for &index in &prefix[shown..] {
            let _ = writeln!(text, "  #{index} {}", OperationDisplay(&history[index]));
        }
        let _ = writeln!(text, "no way to place next any of:");
        for &index in &self.stuck_at {
            let _ = writeln!(text, "  #{index} {}", OperationDisplay(&history[index]));
        }
        text
    }
}

/// Renders one operation on one line.
struct OperationDisplay<'a, I, O>(&'a Operation<I, O>);

impl<I: Debug, O: Debug> fmt::Display for OperationDisplay<'_, I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = self.0;
        write!(f, "client {} {:?} called {}", op.client, op.input, op.call)?;
        match &op.ret {
            Some((time, output)) => write!(f, " returned {time}: {output:?}"),
            None => write!(f, " never returned"),
        }
    }
}

/// Checks whether `history` is linearizable with respect to `model`.
///
/// The history may be in any order; indices in a [`Counterexample`] refer to it as given.
///
/// # Panics
/// If an operation returns before it was called (a bug in whoever recorded the history).
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    budget: Budget,
) -> Verdict {
    search::Search::new(model, history).run(budget)
}

/// Checks independent partitions of a history (for example one per key), each with its own
/// `budget`.
///
/// The first partition found not linearizable decides; its counterexample's indices refer to
/// the concatenation of all partitions in order (`partitions.concat()`). Otherwise the answer is
/// [`Verdict::Unknown`] if any partition was undecided, else [`Verdict::Linearizable`].
pub fn check_partitioned<M: Model>(
    model: &M,
    partitions: &[Vec<Operation<M::Input, M::Output>>],
    budget: Budget,
) -> Verdict {
    let mut offset = 0;
    let mut undecided = false;
    for partition in partitions {
        match check(model, partition, budget) {
            Verdict::Linearizable => {}
            Verdict::Unknown => undecided = true,
            Verdict::NotLinearizable(mut counterexample) => {
                let shift =
                    |indices: &mut Vec<usize>| indices.iter_mut().for_each(|i| *i += offset);
                shift(&mut counterexample.longest_prefix);
                shift(&mut counterexample.stuck_at);
                return Verdict::NotLinearizable(counterexample);
            }
        }
        offset += partition.len();
    }
    if undecided {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    }
}
