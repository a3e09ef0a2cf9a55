//! The simulated network: per-message delay, loss, duplication and reordering, and partitions
//! (any set of directed links cut), all decided by the simulation's one random generator.

use std::collections::{BTreeMap, BTreeSet};

use tandem_protocol::rng::SplitMix64;

/// A node of the simulated cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeId {
    /// View-service node number `n` (address `vs{n+1}`).
    Vs(usize),
    /// Replica server number `n`.
    Server(usize),
    /// Client session number `n`.
    Client(usize),
}

/// Network behaviour, adjustable while a run goes on.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Smallest one-way delay.
    pub delay_min_ms: u64,
    /// Largest one-way delay (a spread reorders messages).
    pub delay_max_ms: u64,
    /// Messages lost, per thousand.
    pub drop_per_mille: u64,
    /// Messages delivered twice, per thousand.
    pub duplicate_per_mille: u64,
    /// Messages between servers and the view service followed by a hostile peer's mutated
    /// copy, per thousand (`Cluster::maybe_inject_hostile`).
    pub hostile_per_mille: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            delay_min_ms: 1,
            delay_max_ms: 3,
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            hostile_per_mille: 0,
        }
    }
}

/// Links and their state.
#[derive(Clone, Debug, Default)]
pub struct Network {
    /// Behaviour of every link that is not cut.
    pub config: NetConfig,
    cut: BTreeSet<(NodeId, NodeId)>,
    slow: BTreeMap<NodeId, u64>,
}

impl Network {
    /// Cuts `from -> to` only (an asymmetric partition).
    pub fn cut_one_way(&mut self, from: NodeId, to: NodeId) {
        self.cut.insert((from, to));
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    /// Restores both directions between `a` and `b`.
    pub fn heal_link(&mut self, a: NodeId, b: NodeId) {
        self.cut.remove(&(a, b));
        self.cut.remove(&(b, a));
    }

    /// Isolates `side` from every node not in it (both directions).
    pub fn partition(&mut self, side: &[NodeId], everyone: &[NodeId]) {
        for a in side {
            for b in everyone.iter().filter(|n| !side.contains(n)) {
                self.cut(*a, *b);
            }
        }
    }

    /// Adds `extra_ms` to every message to or from `node`.
    pub fn slow(&mut self, node: NodeId, extra_ms: u64) {
        self.slow.insert(node, extra_ms);
    }

    /// Restores every link and speed.
    pub fn heal_all(&mut self) {
        self.cut.clear();
        self.slow.clear();
    }

    /// Is `from -> to` cut?
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cut.contains(&(from, to))
    }

    /// Decides the fate of one message: the delays of its copies (none if lost).
    pub fn deliveries(&self, rng: &mut SplitMix64, from: NodeId, to: NodeId) -> Vec<u64> {
        if self.is_cut(from, to) || rng.chance(self.config.drop_per_mille, 1000) {
            return Vec::new();
        }
        let spread = self
            .config
            .delay_max_ms
            .saturating_sub(self.config.delay_min_ms)
            + 1;
        let extra =
            self.slow.get(&from).copied().unwrap_or(0) + self.slow.get(&to).copied().unwrap_or(0);
        let mut delays = vec![self.config.delay_min_ms + extra + rng.below(spread)];
        if rng.chance(self.config.duplicate_per_mille, 1000) {
            delays.push(self.config.delay_min_ms + extra + rng.below(spread));
        }
        delays
    }
}
