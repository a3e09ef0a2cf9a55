//! The sharded keyspace (S1-S3): which replica group owns each of the 16,384 hash slots, as a
//! numbered configuration kept in the view service's replicated table, and the cluster map that
//! servers and coordinators learn with their views.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tandem_kv::slots::SLOT_COUNT;

use crate::ids::{ConfigNum, GroupId, ServerId};
use crate::view::View;

/// Consecutive slots `start..=end` owned by one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRange {
    /// First slot.
    pub start: u16,
    /// Last slot (inclusive).
    pub end: u16,
    /// The owner.
    pub group: GroupId,
}

/// One configuration of the slot map (S2): sorted, non-overlapping ranges; a slot no range
/// covers is unassigned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardConfig {
    /// The configuration's number; each change makes the next one.
    pub num: ConfigNum,
    /// Who owns what.
    pub ranges: Vec<SlotRange>,
}

/// Slots of one group moving to another between two configurations (S3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotMove {
    /// The owner in the earlier configuration.
    pub from: GroupId,
    /// The owner in the later one.
    pub to: GroupId,
    /// The slots, as inclusive ranges in order.
    pub slots: Vec<(u16, u16)>,
}

impl ShardConfig {
    /// Builds a configuration from one owner per slot (`owners.len()` must be `SLOT_COUNT`).
    pub fn from_owners(num: ConfigNum, owners: &[Option<GroupId>]) -> ShardConfig {
        debug_assert_eq!(owners.len(), usize::from(SLOT_COUNT));
        let mut ranges: Vec<SlotRange> = Vec::new();
        for (slot, owner) in owners.iter().enumerate() {
            let slot = slot as u16;
            let Some(group) = *owner else { continue };
            match ranges.last_mut() {
                Some(last) if last.group == group && last.end + 1 == slot => last.end = slot,
                _ => ranges.push(SlotRange {
                    start: slot,
                    end: slot,
                    group,
                }),
            }
        }
        ShardConfig { num, ranges }
    }

    /// One owner per slot.
    pub fn owners(&self) -> Vec<Option<GroupId>> {
        let mut owners = vec![None; usize::from(SLOT_COUNT)];
        for range in &self.ranges {
            for slot in range.start..=range.end {
                owners[usize::from(slot)] = Some(range.group);
            }
        }
        owners
    }

    /// The owner of `slot`, if assigned.
    pub fn owner(&self, slot: u16) -> Option<GroupId> {
        let i = self.ranges.partition_point(|r| r.end < slot);
        self.ranges
            .get(i)
            .filter(|r| r.start <= slot)
            .map(|r| r.group)
    }

    /// The ranges `group` owns.
    pub fn slots_of(&self, group: GroupId) -> Vec<(u16, u16)> {
        self.ranges
            .iter()
            .filter(|r| r.group == group)
            .map(|r| (r.start, r.end))
            .collect()
    }

    /// True if every slot has an owner.
    pub fn covers_all(&self) -> bool {
        self.ranges
            .iter()
            .map(|r| u32::from(r.end - r.start) + 1)
            .sum::<u32>()
            == u32::from(SLOT_COUNT)
    }

    /// Sorted, non-overlapping, within `0..SLOT_COUNT`, with at most one range per slot: the
    /// view service only makes such configurations; anything else came from a peer that lies.
    pub fn is_well_formed(&self) -> bool {
        self.ranges.len() <= usize::from(SLOT_COUNT)
            && self
                .ranges
                .iter()
                .all(|r| r.start <= r.end && r.end < SLOT_COUNT)
            && self.ranges.windows(2).all(|w| w[0].end < w[1].start)
    }

    /// The slots whose owner changes from one assigned group to another between `self` and
    /// `next` (S3). Slots that were unassigned in `self` need no move: nobody held their keys.
    pub fn moves_to(&self, next: &ShardConfig) -> Vec<SlotMove> {
        let before = self.owners();
        let after = next.owners();
        let mut moves: BTreeMap<(GroupId, GroupId), Vec<(u16, u16)>> = BTreeMap::new();
        for slot in 0..SLOT_COUNT {
            let (Some(from), Some(to)) = (before[usize::from(slot)], after[usize::from(slot)])
            else {
                continue;
            };
            if from == to {
                continue;
            }
            let ranges = moves.entry((from, to)).or_default();
            match ranges.last_mut() {
                Some(last) if last.1 + 1 == slot => last.1 = slot,
                _ => ranges.push((slot, slot)),
            }
        }
        moves
            .into_iter()
            .map(|((from, to), slots)| SlotMove { from, to, slots })
            .collect()
    }
}

/// What one group looks like to the rest of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// Its current view (`None` before view 1).
    pub view: Option<View>,
    /// The Redis-protocol address each of its servers serves clients on (`--client-listen`),
    /// as the server announced it in its pings; absent for servers without one.
    pub client_addrs: BTreeMap<ServerId, String>,
    /// The last configuration the group has fully taken on (every move into or out of it done),
    /// as its primary reported it (S4).
    pub config_done: ConfigNum,
}

/// Everything a server or coordinator needs to route a key (S2): the slot map and every
/// group's view and client addresses. `epoch` grows with every change, so a holder asks only
/// for a newer map.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMap {
    /// Grows with every change of the map.
    pub epoch: u64,
    /// The current configuration.
    pub config: ShardConfig,
    /// The configuration before it (number `config.num - 1`; empty before configuration 2): a
    /// group taking on `config` computes its moves from the two (S3, S5).
    pub previous: ShardConfig,
    /// Every group the view service knows.
    pub groups: BTreeMap<GroupId, GroupInfo>,
}

impl ClusterMap {
    /// The group to send a request on `slot` to (S11): its owner in the current configuration,
    /// except while the configuration moves the slot and neither its giver nor its taker has
    /// reported the configuration taken on (`config_done`): the giver then, which serves the
    /// slot while it pre-copies it (S9). Only availability depends on this: every group
    /// refuses what its own history does not let it serve (S4).
    pub fn serving(&self, slot: u16) -> Option<GroupId> {
        let owner = self.config.owner(slot)?;
        let consecutive = self.previous.num.0.checked_add(1) == Some(self.config.num.0);
        let giver = match self.previous.owner(slot) {
            Some(giver) if consecutive && giver != owner => giver,
            _ => return Some(owner),
        };
        let done = |group: GroupId| {
            self.groups
                .get(&group)
                .is_some_and(|info| info.config_done >= self.config.num)
        };
        Some(if done(giver) || done(owner) {
            owner
        } else {
            giver
        })
    }

    /// Who serves each slot now ([`ClusterMap::serving`]), as a configuration numbered like
    /// the map's: what `CLUSTER SLOTS`, `NODES` and `SHARDS` show, so a client that loads
    /// them during a move is sent where the slots are served (S11).
    pub fn serving_config(&self) -> ShardConfig {
        let owners: Vec<Option<GroupId>> = (0..SLOT_COUNT).map(|slot| self.serving(slot)).collect();
        ShardConfig::from_owners(self.config.num, &owners)
    }

    /// The group serving `slot` ([`ClusterMap::serving`]) and its view, if any.
    pub fn route(&self, slot: u16) -> Option<(GroupId, Option<&View>)> {
        let group = self.serving(slot)?;
        Some((group, self.groups.get(&group).and_then(|g| g.view.as_ref())))
    }

    /// The client address of the primary of the group serving `slot`, for `-MOVED`.
    pub fn primary_client_addr(&self, slot: u16) -> Option<&str> {
        let group = self.serving(slot)?;
        let info = self.groups.get(&group)?;
        let primary = &info.view.as_ref()?.primary;
        info.client_addrs.get(primary).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s2_owners_round_trip_through_ranges() {
        let mut owners = vec![Some(GroupId(0)); usize::from(SLOT_COUNT)];
        for o in &mut owners[100..200] {
            *o = Some(GroupId(1));
        }
        owners[16383] = None;
        let config = ShardConfig::from_owners(ConfigNum(3), &owners);
        assert!(config.is_well_formed());
        assert_eq!(config.ranges.len(), 3);
        assert_eq!(config.owners(), owners);
        assert_eq!(config.owner(0), Some(GroupId(0)));
        assert_eq!(config.owner(150), Some(GroupId(1)));
        assert_eq!(config.owner(200), Some(GroupId(0)));
        assert_eq!(config.owner(16383), None);
        assert!(!config.covers_all());
        assert_eq!(config.slots_of(GroupId(1)), vec![(100, 199)]);
    }

    #[test]
    fn s3_moves_name_only_reassigned_slots() {
        let all_zero = ShardConfig::from_owners(ConfigNum(1), &vec![Some(GroupId(0)); 16384]);
        let mut owners = all_zero.owners();
        for o in &mut owners[0..10] {
            *o = Some(GroupId(2));
        }
        owners[20] = None;
        let next = ShardConfig::from_owners(ConfigNum(2), &owners);
        assert_eq!(
            all_zero.moves_to(&next),
            vec![SlotMove {
                from: GroupId(0),
                to: GroupId(2),
                slots: vec![(0, 9)],
            }]
        );
        assert!(ShardConfig::default().moves_to(&all_zero).is_empty());
    }

    #[test]
    fn s2_malformed_configurations_are_named() {
        let overlapping = ShardConfig {
            num: ConfigNum(1),
            ranges: vec![
                SlotRange {
                    start: 0,
                    end: 10,
                    group: GroupId(0),
                },
                SlotRange {
                    start: 10,
                    end: 20,
                    group: GroupId(1),
                },
            ],
        };
        assert!(!overlapping.is_well_formed());
        let beyond = ShardConfig {
            num: ConfigNum(1),
            ranges: vec![SlotRange {
                start: 0,
                end: SLOT_COUNT,
                group: GroupId(0),
            }],
        };
        assert!(!beyond.is_well_formed());
    }
}
