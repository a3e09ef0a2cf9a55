//! The depth-first search for a linearization, kept iterative with an explicit stack.
//!
//! Completed operations live in a doubly linked list of call and return events, sorted by time
//! with calls first at equal times (intervals are closed). At any point of the search the
//! candidates to linearize next are the completed operations whose call event precedes the
//! first remaining return event, and the ambiguous operations called no later than that
//! return. Linearizing a completed operation unlinks its two events; backtracking relinks
//! them in reverse order, which restores the list exactly.
//!
//! Ambiguous operations never return, so they never block the search: it succeeds as soon as
//! every completed operation is linearized, whatever ambiguous ones are left ("never happened").
//! They are tried before the completed candidates of a configuration, as early as possible:
//! once placed, an operation stops being a candidate, so few stay pending, and one that never
//! really happened is usually harmless early (a later write overwrites it). Trying them last
//! instead lets every ambiguous operation not yet needed pile up as a pending candidate, to be
//! retried at every dead end of the search; measured, that is tens of times slower.
//!
//! Two reductions keep the search small, both sound (they never hide a linearization):
//! - Read-only operations (see [`Model::is_read_only`]) whose output fits the current state are
//!   placed at once, as the only child: a read that fits now can be moved to now in any
//!   linearization, because it changes nothing and everything that must precede it already did.
//! - Dominance: configuration (completed set, ambiguous set A, state) is skipped when one with
//!   the same completed set and state and an ambiguous set included in A was seen. Every way to
//!   finish from the former also finishes from the latter, which has more optional operations
//!   left, so exploring the former again would find nothing new. (The latter may still be
//!   waiting to be explored, as a sibling recorded ahead of time: see `ambiguous_children`.
//!   That is sound too, since it will be explored unless the search succeeds first.)

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::bitset::{BitSet, WindowKey, is_subset};
use crate::{Budget, Counterexample, Model, Operation, Verdict};

/// "No entry" in the event list's links.
const NIL: usize = usize::MAX;

/// One event of a completed operation in the linked list.
#[derive(Clone, Copy, Debug)]
struct Event {
    /// Which completed operation (index into `Search::completed`); `NIL` for the list head.
    op: usize,
    is_call: bool,
    time: u64,
    prev: usize,
    next: usize,
}

/// A completed operation, numbered in call order.
#[derive(Clone, Copy, Debug)]
struct Completed {
    history_index: usize,
    call: u64,
    ret: u64,
    call_event: usize,
    return_event: usize,
}

/// An ambiguous operation, numbered in call order.
#[derive(Clone, Copy, Debug)]
struct Ambiguous {
    history_index: usize,
    call: u64,
}

/// Where to continue enumerating the children of the current configuration.
enum Cursor<S> {
    /// A configuration just entered: look for a read to place first.
    Start,
    /// Nothing left to try.
    Done,
    /// At this event of the list: a completed candidate's call, or the first return (then
    /// there is nothing left to try).
    Event(usize),
    /// No read fits: next, the ambiguous candidates (called no later than `bound`, the first
    /// remaining return), then the completed ones.
    AmbiguousFrom { bound: u64 },
    /// Ambiguous children already recorded in the cache, still to explore (popped from the
    /// back): pairs of ambiguous operation and the state it leads to. The completed
    /// candidates come after them.
    Ambiguous(Vec<(usize, S)>),
}

/// The operation linearized to reach a configuration from its parent.
enum Choice<S> {
    Completed(usize),
    /// Keeps the parent's ambiguous children still to explore after this one.
    Ambiguous {
        index: usize,
        rest: Vec<(usize, S)>,
    },
}

/// One level of the depth-first stack.
struct Frame<S> {
    choice: Choice<S>,
    /// The parent had no other child worth trying (a read that fit was placed).
    forced: bool,
    /// The parent's model state.
    previous: S,
}

/// What looking for the next child of a configuration found.
enum Next<S> {
    Child {
        choice: Choice<S>,
        state: S,
        forced: bool,
    },
    Exhausted,
    OutOfBudget,
}

/// The configurations seen: for each (completed set, state), the minimal ambiguous sets (as
/// trimmed words) it was seen with.
type Cache<S> = HashMap<(WindowKey, S), Vec<Box<[u64]>>>;

/// The longest prefix seen so far, maintained in amortized constant time per push.
#[derive(Default)]
struct Progress {
    /// History indices on the stack, in linearization order.
    current: Vec<usize>,
    best: Vec<usize>,
    /// `current[..agree] == best[..agree]`.
    agree: usize,
}

impl Progress {
    fn push(&mut self, history_index: usize) {
        let position = self.current.len();
        self.current.push(history_index);
        if self.agree == position && self.best.get(position) == Some(&history_index) {
            self.agree += 1;
        }
        if self.current.len() > self.best.len() {
            self.best.truncate(self.agree);
            self.best.extend_from_slice(&self.current[self.agree..]);
            self.agree = self.current.len();
        }
    }

    fn pop(&mut self) {
        self.current.pop();
        self.agree = self.agree.min(self.current.len());
    }
}

/// One check of one history.
pub(crate) struct Search<'a, M: Model> {
    model: &'a M,
    history: &'a [Operation<M::Input, M::Output>],
    completed: Vec<Completed>,
    ambiguous: Vec<Ambiguous>,
    /// The event list; the last element is the head sentinel.
    events: Vec<Event>,
    head: usize,
    linearized_completed: BitSet,
    linearized_ambiguous: BitSet,
    cache: Cache<M::State>,
    steps: u64,
    max_steps: u64,
    progress: Progress,
}

impl<'a, M: Model> Search<'a, M> {
    pub(crate) fn new(model: &'a M, history: &'a [Operation<M::Input, M::Output>]) -> Self {
        let (completed, ambiguous) = split(history);
        let mut search = Search {
            model,
            history,
            linearized_completed: BitSet::new(completed.len()),
            linearized_ambiguous: BitSet::new(ambiguous.len()),
            completed,
            ambiguous,
            events: Vec::new(),
            head: NIL,
            cache: HashMap::new(),
            steps: 0,
            max_steps: 0,
            progress: Progress::default(),
        };
        search.build_events();
        search
    }

    /// Sorts the completed operations' events and links them behind a head sentinel.
    fn build_events(&mut self) {
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(self.completed.len() * 2);
        for (op, completed) in self.completed.iter().enumerate() {
            // `false` sorts first: calls precede returns at equal times (closed intervals).
            order.push((completed.call, false, op));
            order.push((completed.ret, true, op));
        }
        order.sort_unstable();
        let count = order.len();
        self.head = count;
        for (position, &(time, is_return, op)) in order.iter().enumerate() {
            let prev = if position == 0 {
                self.head
            } else {
                position - 1
            };
            let next = if position + 1 == count {
                NIL
            } else {
                position + 1
            };
            self.events.push(Event {
                op,
                is_call: !is_return,
                time,
                prev,
                next,
            });
            if is_return {
                self.completed[op].return_event = position;
            } else {
                self.completed[op].call_event = position;
            }
        }
        let first = if count == 0 { NIL } else { 0 };
        self.events.push(Event {
            op: NIL,
            is_call: false,
            time: 0,
            prev: NIL,
            next: first,
        });
    }

    pub(crate) fn run(mut self, budget: Budget) -> Verdict {
        self.max_steps = budget.max_steps;
        let mut state = self.model.init();
        let mut stack: Vec<Frame<M::State>> = Vec::new();
        let mut cursor = Cursor::Start;
        loop {
            if self.events[self.head].next == NIL {
                // Every completed operation is placed; unplaced ambiguous ones never happened.
                return Verdict::Linearizable;
            }
            match self.next_child(&state, cursor) {
                Next::OutOfBudget => return Verdict::Unknown,
                Next::Child {
                    choice,
                    state: child_state,
                    forced,
                } => {
                    self.apply(&choice);
                    let previous = std::mem::replace(&mut state, child_state);
                    stack.push(Frame {
                        choice,
                        forced,
                        previous,
                    });
                    cursor = Cursor::Start;
                }
                Next::Exhausted => {
                    let Some(frame) = stack.pop() else {
                        return Verdict::NotLinearizable(self.counterexample());
                    };
                    self.undo(&frame.choice);
                    state = frame.previous;
                    cursor = match frame.choice {
                        _ if frame.forced => Cursor::Done,
                        Choice::Completed(op) => {
                            Cursor::Event(self.events[self.completed[op].call_event].next)
                        }
                        Choice::Ambiguous { rest, .. } => Cursor::Ambiguous(rest),
                    };
                }
            }
        }
    }

    /// Finds the next child of the current configuration, from `cursor` on, that is neither
    /// seen nor dominated, and records it in the cache.
    fn next_child(&mut self, state: &M::State, mut cursor: Cursor<M::State>) -> Next<M::State> {
        loop {
            cursor = match cursor {
                Cursor::Start => match self.fitting_read(state) {
                    Err(OutOfBudget) => return Next::OutOfBudget,
                    Ok(Some(op)) if self.first_visit(Bit::Completed(op), state) => {
                        let choice = Choice::Completed(op);
                        return Next::Child {
                            choice,
                            state: state.clone(),
                            forced: true,
                        };
                    }
                    // Placing the read was explored already, and everything else is no better.
                    Ok(Some(_)) => Cursor::Done,
                    Ok(None) => Cursor::AmbiguousFrom {
                        bound: self.first_return_time(),
                    },
                },
                Cursor::Done => return Next::Exhausted,
                Cursor::Event(position) => {
                    let event = self.events[position];
                    if !event.is_call {
                        // Only calls before the first return are candidates.
                        Cursor::Done
                    } else if self.is_read_only(self.completed[event.op].history_index) {
                        // `fitting_read` found that it does not fit this state.
                        Cursor::Event(event.next)
                    } else {
                        if self.spend_step().is_err() {
                            return Next::OutOfBudget;
                        }
                        if let Some(child) = self.step_completed(state, event.op)
                            && self.first_visit(Bit::Completed(event.op), &child)
                        {
                            let choice = Choice::Completed(event.op);
                            return Next::Child {
                                choice,
                                state: child,
                                forced: false,
                            };
                        }
                        Cursor::Event(event.next)
                    }
                }
                Cursor::AmbiguousFrom { bound } => match self.ambiguous_children(state, bound) {
                    Ok(children) => Cursor::Ambiguous(children),
                    Err(OutOfBudget) => return Next::OutOfBudget,
                },
                Cursor::Ambiguous(mut children) => {
                    let Some((index, child)) = children.pop() else {
                        cursor = Cursor::Event(self.events[self.head].next);
                        continue;
                    };
                    let choice = Choice::Ambiguous {
                        index,
                        rest: children,
                    };
                    return Next::Child {
                        choice,
                        state: child,
                        forced: false,
                    };
                }
            };
        }
    }

    /// Every new configuration one ambiguous operation away, recorded in the cache before any
    /// is explored; in reverse order of trial.
    ///
    /// Recording them all first matters: while exploring one of them, the search would
    /// otherwise reach a sibling's configuration through a longer chain of ambiguous
    /// operations (W1 then W2 instead of W2 alone), with a larger ambiguous set that dominance
    /// cannot prune, and go through every combination of the pending operations.
    fn ambiguous_children(
        &mut self,
        state: &M::State,
        bound: u64,
    ) -> Result<Vec<(usize, M::State)>, OutOfBudget> {
        let mut children = Vec::new();
        let mut from = 0;
        while let Some(index) = self.next_ambiguous_candidate(from, bound) {
            self.spend_step()?;
            let input = &self.history[self.ambiguous[index].history_index].input;
            for child in self.model.step_unobserved(state, input) {
                if self.first_visit(Bit::Ambiguous(index), &child) {
                    children.push((index, child));
                }
            }
            from = index + 1;
        }
        children.reverse();
        Ok(children)
    }

    /// The time of the first remaining return event.
    fn first_return_time(&self) -> u64 {
        let mut position = self.events[self.head].next;
        while self.events[position].is_call {
            position = self.events[position].next;
        }
        self.events[position].time
    }

    /// A read-only candidate whose output fits `state`, if any.
    fn fitting_read(&mut self, state: &M::State) -> Result<Option<usize>, OutOfBudget> {
        let mut position = self.events[self.head].next;
        while position != NIL && self.events[position].is_call {
            let op = self.events[position].op;
            if self.is_read_only(self.completed[op].history_index) {
                self.spend_step()?;
                if let Some(after) = self.step_completed(state, op) {
                    debug_assert!(after == *state, "a read-only operation changed the state");
                    return Ok(Some(op));
                }
            }
            position = self.events[position].next;
        }
        Ok(None)
    }

    fn is_read_only(&self, history_index: usize) -> bool {
        self.model.is_read_only(&self.history[history_index].input)
    }

    fn step_completed(&self, state: &M::State, op: usize) -> Option<M::State> {
        let operation = &self.history[self.completed[op].history_index];
        let (_, output) = operation
            .ret
            .as_ref()
            .expect("completed operations have returned");
        self.model.step(state, &operation.input, output)
    }

    /// The first ambiguous operation numbered `from` or later that is not linearized, was
    /// called no later than `bound`, and is not read-only (one that never returned and changes
    /// nothing need never be placed).
    fn next_ambiguous_candidate(&self, from: usize, bound: u64) -> Option<usize> {
        (from..self.ambiguous.len())
            .take_while(|&index| self.ambiguous[index].call <= bound)
            .filter(|&index| !self.linearized_ambiguous.contains(index))
            .find(|&index| !self.is_read_only(self.ambiguous[index].history_index))
    }

    /// Counts one model step; fails when the budget is spent.
    fn spend_step(&mut self) -> Result<(), OutOfBudget> {
        if self.steps >= self.max_steps {
            return Err(OutOfBudget);
        }
        self.steps += 1;
        Ok(())
    }

    /// Whether the configuration "current sets plus `bit`, in `state`" is neither seen nor
    /// dominated by a configuration seen; records it.
    fn first_visit(&mut self, bit: Bit, state: &M::State) -> bool {
        self.set_bit(bit, true);
        let completed = self.linearized_completed.key();
        let ambiguous = self.linearized_ambiguous.trimmed_words();
        self.set_bit(bit, false);
        match self.cache.entry((completed, state.clone())) {
            Entry::Vacant(vacant) => {
                vacant.insert(vec![ambiguous]);
                true
            }
            Entry::Occupied(mut occupied) => {
                let seen = occupied.get_mut();
                if seen.iter().any(|earlier| is_subset(earlier, &ambiguous)) {
                    return false;
                }
                // Keep only the minimal sets: the new one dominates its supersets.
                seen.retain(|earlier| !is_subset(&ambiguous, earlier));
                seen.push(ambiguous);
                true
            }
        }
    }

    fn set_bit(&mut self, bit: Bit, linearized: bool) {
        let (set, index) = match bit {
            Bit::Completed(op) => (&mut self.linearized_completed, op),
            Bit::Ambiguous(index) => (&mut self.linearized_ambiguous, index),
        };
        if linearized {
            set.insert(index)
        } else {
            set.remove(index)
        }
    }

    fn apply(&mut self, choice: &Choice<M::State>) {
        match choice {
            Choice::Completed(op) => {
                self.set_bit(Bit::Completed(*op), true);
                let completed = self.completed[*op];
                self.unlink(completed.call_event);
                self.unlink(completed.return_event);
                self.progress.push(completed.history_index);
            }
            Choice::Ambiguous { index, .. } => {
                self.set_bit(Bit::Ambiguous(*index), true);
                self.progress.push(self.ambiguous[*index].history_index);
            }
        }
    }

    fn undo(&mut self, choice: &Choice<M::State>) {
        self.progress.pop();
        match choice {
            Choice::Completed(op) => {
                self.set_bit(Bit::Completed(*op), false);
                let completed = self.completed[*op];
                // Reverse order of `apply`, so the links come back exactly.
                self.relink(completed.return_event);
                self.relink(completed.call_event);
            }
            Choice::Ambiguous { index, .. } => self.set_bit(Bit::Ambiguous(*index), false),
        }
    }

    fn unlink(&mut self, position: usize) {
        let Event { prev, next, .. } = self.events[position];
        self.events[prev].next = next;
        if next != NIL {
            self.events[next].prev = prev;
        }
    }

    fn relink(&mut self, position: usize) {
        let Event { prev, next, .. } = self.events[position];
        self.events[prev].next = position;
        if next != NIL {
            self.events[next].prev = position;
        }
    }

    /// The longest prefix found, and the completed operations that were candidates after it.
    fn counterexample(&self) -> Counterexample {
        let longest_prefix = self.progress.best.clone();
        let mut placed = vec![false; self.history.len()];
        longest_prefix
            .iter()
            .for_each(|&index| placed[index] = true);
        let remaining = || self.completed.iter().filter(|c| !placed[c.history_index]);
        let bound = remaining().map(|c| c.ret).min().unwrap_or(u64::MAX);
        let mut stuck_at: Vec<usize> = remaining()
            .filter(|c| c.call <= bound)
            .map(|c| c.history_index)
            .collect();
        stuck_at.sort_unstable();
        Counterexample {
            longest_prefix,
            stuck_at,
        }
    }
}

/// The budget ran out.
struct OutOfBudget;

/// Which set an operation's bit lives in.
#[derive(Clone, Copy)]
enum Bit {
    Completed(usize),
    Ambiguous(usize),
}

/// Splits the history into completed and ambiguous operations, each numbered in call order.
fn split<I, O>(history: &[Operation<I, O>]) -> (Vec<Completed>, Vec<Ambiguous>) {
    let mut completed = Vec::new();
    let mut ambiguous = Vec::new();
    for (history_index, operation) in history.iter().enumerate() {
        match &operation.ret {
            Some((ret, _)) => {
                assert!(
                    *ret >= operation.call,
                    "operation {history_index} returns at {ret}, before its call at {}",
                    operation.call
                );
                completed.push(Completed {
                    history_index,
                    call: operation.call,
                    ret: *ret,
                    call_event: NIL,
                    return_event: NIL,
                });
            }
            None => ambiguous.push(Ambiguous {
                history_index,
                call: operation.call,
            }),
        }
    }
    completed.sort_by_key(|c| (c.call, c.history_index));
    ambiguous.sort_by_key(|a| (a.call, a.history_index));
    (completed, ambiguous)
}
