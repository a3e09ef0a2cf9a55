//! Who executed what on which slot (S3-S6), for the checkers of a sharded run.
//!
//! The harness records every configuration the view service commits (with the moment some node
//! first applied it) and every client request a primary ordered that its group then committed
//! (with the moment it was ordered). From these, [`Ledger::check`] verifies that **at most one
//! group executes on a slot at a time**:
//!
//! A group serves a slot from the configuration in which it acquired it (the slot's owner
//! became that group) until it freezes it; the view service makes configuration n+1 only
//! once every involved group took on n (S3). So a group executing on a slot at moment t does
//! so under its *tenure*: the last configuration committed by t that gave it the slot (a later
//! acquisition committed by t means it froze the slot and installed it again since). When the
//! slot passes from group A to group B, B's tenure starts in a later configuration than A's,
//! and A froze the slot (S5) before B installed it (S6). Hence, over time, the tenures of the
//! executions on one slot never decrease, and two groups never execute under the same one. A
//! giver that still executes after its freeze (planted `serve-after-handoff`), a taker that
//! executes before its install (`serve-before-install`) or a new primary that forgot a freeze
//! (`move-state-only-on-primary`) breaks that order as soon as the other group executed too.

use std::collections::BTreeMap;

use tandem_protocol::{ClientId, ConfigNum, GroupId, Seq, ServerId, ShardConfig};

/// Replies included in a violation report, at most.
const MAX_REPORTED: usize = 20;

/// A moment of the run: virtual ms and the number of events processed (a total order).
pub type Moment = (u64, u64);

/// One request ordered by a primary and committed in its group.
#[derive(Clone, Debug)]
pub struct Execution {
    /// When it was ordered.
    pub at: Moment,
    /// The executing group.
    pub group: GroupId,
    /// The primary that ordered it.
    pub server: ServerId,
    /// A slot it touched.
    pub slot: u16,
    /// The request.
    pub client: ClientId,
    /// Its sequence number.
    pub seq: Seq,
    /// The group had never taken on a configuration (it serves every slot, as before
    /// sharding): counted as configuration 0.
    pub unsharded: bool,
}

/// Configurations and executions of a run.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Every committed configuration with the moment a node first applied it.
    configs: BTreeMap<ConfigNum, (ShardConfig, Moment)>,
    executions: Vec<Execution>,
}

impl Ledger {
    /// A node applied configuration `config` at `at`. Returns a violation if another
    /// configuration was applied under the same number (log matching for S2).
    pub fn config_applied(&mut self, config: &ShardConfig, at: Moment) -> Option<String> {
        match self.configs.get(&config.num) {
            Some((first, _)) if first != config => Some(format!(
                "S2: configuration {} applied as {:?} but first applied as {:?}",
                config.num, config.ranges, first.ranges
            )),
            Some(_) => None,
            None => {
                self.configs.insert(config.num, (config.clone(), at));
                None
            }
        }
    }

    /// Committed configuration `num`, if some node applied it.
    pub fn config(&self, num: ConfigNum) -> Option<&ShardConfig> {
        self.configs.get(&num).map(|(c, _)| c)
    }

    /// Every committed configuration so far, in order.
    pub fn configs(&self) -> impl Iterator<Item = &ShardConfig> {
        self.configs.values().map(|(c, _)| c)
    }

    /// Records a committed execution.
    pub fn executed(&mut self, execution: Execution) {
        self.executions.push(execution);
    }

    /// Executions recorded so far.
    pub fn executions(&self) -> &[Execution] {
        &self.executions
    }

    /// The tenure under which `group` executes on `slot` at `at`: the last configuration
    /// committed by then that gave it the slot; `None` if none did.
    fn tenure(&self, group: GroupId, slot: u16, at: Moment) -> Option<ConfigNum> {
        let mut previous = None;
        let mut tenure = None;
        for (num, (config, applied_at)) in &self.configs {
            if *applied_at > at {
                break;
            }
            let owner = config.owner(slot);
            if owner == Some(group) && previous != Some(group) {
                tenure = Some(*num);
            }
            previous = owner;
        }
        tenure
    }

    /// At most one group executes on a slot at a time (see the module documentation).
    pub fn check(&self) -> Vec<String> {
        let mut violations = Vec::new();
        let mut by_slot: BTreeMap<u16, Vec<(Moment, ConfigNum, &Execution)>> = BTreeMap::new();
        for e in &self.executions {
            let tenure = if e.unsharded {
                Some(ConfigNum(0))
            } else {
                self.tenure(e.group, e.slot, e.at)
            };
            match tenure {
                Some(tenure) => by_slot.entry(e.slot).or_default().push((e.at, tenure, e)),
                None => violations.push(format!(
                    "S4: group {} executed client {} seq {} on slot {} at {} ms, a slot no \
                     configuration committed by then gave it",
                    e.group, e.client.0, e.seq.0, e.slot, e.at.0
                )),
            }
        }
        for (slot, mut list) in by_slot {
            list.sort_by_key(|(at, _, _)| *at);
            let mut latest: Option<(ConfigNum, &Execution)> = None;
            for (_, tenure, e) in list {
                match latest {
                    Some((top, other))
                        if tenure < top || (tenure == top && other.group != e.group) =>
                    {
                        violations.push(format!(
                            "S5/S6: two groups executed on slot {slot}: group {} (server {}) ran \
                             client {} seq {} at {} ms under configuration {tenure}, after group \
                             {} (server {}) ran client {} seq {} at {} ms under configuration {top}",
                            e.group,
                            e.server,
                            e.client.0,
                            e.seq.0,
                            e.at.0,
                            other.group,
                            other.server,
                            other.client.0,
                            other.seq.0,
                            other.at.0
                        ));
                    }
                    Some((top, _)) if tenure <= top => {}
                    _ => latest = Some((tenure, e)),
                }
            }
        }
        violations.truncate(MAX_REPORTED);
        violations
    }
}
