//! Splitting a client's batch over the groups of a sharded keyspace (S1), for coordinators and
//! the embedded client: the [`Clerk`](crate::Clerk) sends one request to one group; a [`Plan`]
//! says which requests to send for a pipeline and how to put the replies back together.
//!
//! A batch becomes a list of *parts*, each a command touching one slot (or none, sent to a named
//! group), in the batch's order:
//! - a command whose keys share a slot is one part, routed by that slot;
//! - `MGET`, `EXISTS`, `DEL` and `MSET` whose keys span slots become one part per slot, merged
//!   back (MGET values in argument order, counts summed, `MSET` OK once every part is). Only
//!   each part is atomic: an `MSET` across groups is not (as with Redis Cluster proxies);
//! - any other command whose keys span slots is answered `-CROSSSLOT` without being sent;
//! - keyspace-wide commands go to every group: `DBSIZE` summed, `KEYS` concatenated,
//!   `FLUSHALL`/`FLUSHDB` everywhere, `RANDOMKEY` from a group that has keys; `SCAN` walks the
//!   groups one after the other, its cursor naming the group ([`scan_cursor`]);
//! - ACL writes (`ACL SETUSER`, `ACL DELUSER`, `CONFIG SET requirepass`) go to every group in
//!   group order, because each group checks its own replicated ACL table (A1, A6); other
//!   commands without keys (AUTH, ACL reads) go to the first group.
//!
//! The caller runs the parts in order, each *run* of consecutive parts for one group as one
//! request ([`Plan::run_at`], computed with the newest map when the run starts, so a move between
//! two runs is followed), then [`Plan::merge`]s the replies.

use std::collections::BTreeMap;
use std::ops::Range;

use bytes::Bytes;
use tandem_kv::slots::key_slot;
use tandem_kv::{Command, Reply};

use crate::clerk::owner_of;
use crate::ids::GroupId;
use crate::shard::ClusterMap;

/// Redis's answer to a multi-key command whose keys are in several slots (S1).
pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";
/// The answer for a part that did not complete in time (C3); the coordinator's text.
pub const TRYAGAIN: &str = "TRYAGAIN no primary for this key";
/// Bits of a SCAN cursor that hold the position inside one group (the rest: the group + 1).
const SCAN_POSITION_BITS: u32 = 54;
/// Low bits of a group's own cursor dropped to fit [`SCAN_POSITION_BITS`]: a resumed scan
/// starts a little earlier (a few keys again, never one skipped).
const SCAN_DROPPED_BITS: u32 = 9;
/// Groups a SCAN cursor can name: ids `0..SCAN_MAX_GROUPS`.
pub const SCAN_MAX_GROUPS: u32 = (1 << (64 - SCAN_POSITION_BITS)) - 1;

/// Where a part goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartTarget {
    /// To the owner of its keys' slot.
    Keys,
    /// To this group (a command without keys).
    Group(GroupId),
}

/// One command of a split batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// The command (touching at most one slot).
    pub cmd: Command,
    /// Where it goes.
    pub target: PartTarget,
}

/// How the replies of one command's parts become its reply.
#[derive(Clone, Debug, PartialEq)]
enum Merge {
    /// One part: its reply.
    Single,
    /// No part: answered without the cluster.
    Ready(Reply),
    /// MGET: part `i` holds the values at `positions[i]` of the `total` keys.
    Values {
        positions: Vec<Vec<usize>>,
        total: usize,
    },
    /// DEL, EXISTS, DBSIZE: the integers added.
    Sum,
    /// MSET, FLUSHALL, FLUSHDB: the first error, else the first reply.
    AllOk,
    /// KEYS: the arrays concatenated.
    Concat,
    /// RANDOMKEY: one of the keys the groups chose, picked with this value.
    AnyKey(u64),
    /// SCAN of `group`, followed by `next` (if any) once it is done.
    Scan {
        group: GroupId,
        next: Option<GroupId>,
    },
    /// ACL writes: every group's reply must be there; the first one is the answer.
    Everywhere,
}

/// A batch split into parts, and how to merge their replies back (see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    parts: Vec<Part>,
    /// Per command of the batch: its merge and its parts.
    commands: Vec<(Merge, Range<usize>)>,
}

/// A run: consecutive parts for one group, sent as one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// The parts (indexes into [`Plan::parts`]).
    pub parts: Range<usize>,
    /// The group; `None` when a slot has no owner in the map (the clerk waits for a newer one).
    pub group: Option<GroupId>,
    /// True if some part has no keys: send it with [`Clerk::submit_to`](crate::Clerk::submit_to)
    /// (the group is named), else with `submit_as` (routed by its keys).
    pub named: bool,
}

impl Plan {
    /// Splits `cmds`. `groups` are the groups to reach for keyspace-wide commands and ACL
    /// writes (every group with a view, ascending; not empty); `random` picks RANDOMKEY's group.
    pub fn new(cmds: Vec<Command>, groups: &[GroupId], random: u64) -> Plan {
        assert!(!groups.is_empty(), "at least one group");
        let mut plan = Plan {
            parts: Vec::with_capacity(cmds.len()),
            commands: Vec::with_capacity(cmds.len()),
        };
        for cmd in cmds {
            let start = plan.parts.len();
            let merge = plan.split(cmd, groups, random);
            plan.commands.push((merge, start..plan.parts.len()));
        }
        plan
    }

    /// A plan without splitting: every command one part routed by its keys. For a batch known
    /// to touch one group (no map, or a single group).
    pub fn whole(cmds: Vec<Command>) -> Plan {
        let commands = (0..cmds.len()).map(|i| (Merge::Single, i..i + 1)).collect();
        let parts = cmds
            .into_iter()
            .map(|cmd| Part {
                cmd,
                target: PartTarget::Keys,
            })
            .collect();
        Plan { parts, commands }
    }

    /// The group `cmds` can be sent to as they are, as one request: when no command needs
    /// splitting (each has its keys in one slot, or is a keyless command for the first group)
    /// and all go to one group under `map`. The common case, with or without sharding; the
    /// caller skips the plan (and its copies) for it.
    pub fn single_group(
        cmds: &[Command],
        map: Option<&ClusterMap>,
        home: GroupId,
        groups: &[GroupId],
    ) -> Option<GroupId> {
        let mut found = None;
        for cmd in cmds {
            let group = match cmd.slot() {
                Err(_) => return None,
                Ok(Some(slot)) => owner_of(map, home, slot)?,
                Ok(None) if sent_to_first_group(cmd) => *groups.first()?,
                Ok(None) => return None,
            };
            match found {
                None => found = Some(group),
                Some(g) if g == group => {}
                Some(_) => return None,
            }
        }
        found
    }

    /// The parts, in the order to run them.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The run starting at part `start`: the longest stretch of parts for the same group under
    /// `map` (see [`owner_of`] for `home`).
    pub fn run_at(&self, start: usize, map: Option<&ClusterMap>, home: GroupId) -> Run {
        let group_of = |part: &Part| match part.target {
            PartTarget::Group(group) => Some(group),
            PartTarget::Keys => match part.cmd.keys().first() {
                Some(key) => owner_of(map, home, key_slot(key)),
                None => Some(home),
            },
        };
        let group = group_of(&self.parts[start]);
        let mut end = start + 1;
        while end < self.parts.len() && group.is_some() && group_of(&self.parts[end]) == group {
            end += 1;
        }
        let named = self.parts[start..end]
            .iter()
            .any(|p| matches!(p.target, PartTarget::Group(_)));
        Run {
            parts: start..end,
            group,
            named,
        }
    }

    /// The replies of the batch, one per command, from one reply per part (`None`: the part did
    /// not complete; its command is answered `-TRYAGAIN`).
    pub fn merge(&self, replies: Vec<Option<Reply>>) -> Vec<Reply> {
        debug_assert_eq!(replies.len(), self.parts.len());
        self.commands
            .iter()
            .map(|(merge, range)| merge_one(merge, &replies[range.clone()]))
            .collect()
    }

    fn push(&mut self, cmd: Command, target: PartTarget) {
        self.parts.push(Part { cmd, target });
    }

    fn everywhere(&mut self, cmd: &Command, groups: &[GroupId]) {
        for group in groups {
            self.push(cmd.clone(), PartTarget::Group(*group));
        }
    }

    /// Adds `cmd`'s parts; returns how to merge them.
    fn split(&mut self, cmd: Command, groups: &[GroupId], random: u64) -> Merge {
        use Command::*;
        if cmd.slot().is_ok() {
            // One slot or none.
            if !cmd.keys().is_empty() {
                self.push(cmd, PartTarget::Keys);
                return Merge::Single;
            }
        } else {
            return self.split_keys(cmd);
        }
        match cmd {
            DbSize => {
                self.everywhere(&cmd, groups);
                Merge::Sum
            }
            Keys { .. } => {
                self.everywhere(&cmd, groups);
                Merge::Concat
            }
            RandomKey => {
                self.everywhere(&cmd, groups);
                Merge::AnyKey(random)
            }
            FlushDb { .. } | FlushAll { .. } => {
                self.everywhere(&cmd, groups);
                Merge::AllOk
            }
            Scan {
                cursor,
                pattern,
                count,
                type_name,
            } => {
                let (group, inner) = decode_scan(cursor, groups);
                let Some(group) = group else {
                    return Merge::Ready(scan_reply(0, Vec::new()));
                };
                let next = groups.iter().copied().find(|g| *g > group);
                self.push(
                    Scan {
                        cursor: inner,
                        pattern,
                        count,
                        type_name,
                    },
                    PartTarget::Group(group),
                );
                Merge::Scan { group, next }
            }
            AclSetUser { .. }
            | AclDelUser { .. }
            | ConfigSetRequirepass { .. }
            | RequirepassIfUnset { .. } => {
                self.everywhere(&cmd, groups);
                Merge::Everywhere
            }
            other => {
                self.push(other, PartTarget::Group(groups[0]));
                Merge::Single
            }
        }
    }

    /// A command whose keys span slots: one part per slot for the commands that allow it,
    /// else CROSSSLOT (S1).
    fn split_keys(&mut self, cmd: Command) -> Merge {
        use Command::*;
        match cmd {
            MGet { keys } => {
                let total = keys.len();
                let mut positions = Vec::new();
                for (slot_keys, at) in by_slot(keys.into_iter().map(|k| (k, ()))) {
                    positions.push(at);
                    let keys = slot_keys.into_iter().map(|(k, ())| k).collect();
                    self.push(MGet { keys }, PartTarget::Keys);
                }
                Merge::Values { positions, total }
            }
            Del { keys } => {
                self.split_counted(keys, |keys| Del { keys });
                Merge::Sum
            }
            Exists { keys } => {
                self.split_counted(keys, |keys| Exists { keys });
                Merge::Sum
            }
            MSet { pairs } => {
                for (pairs, _) in by_slot(pairs.into_iter()) {
                    self.push(MSet { pairs }, PartTarget::Keys);
                }
                Merge::AllOk
            }
            _ => Merge::Ready(Reply::Error(CROSSSLOT.to_owned())),
        }
    }
}

/// A keyless command that goes to the first group alone (not keyspace-wide, not an ACL write).
fn sent_to_first_group(cmd: &Command) -> bool {
    use Command::*;
    !matches!(
        cmd,
        DbSize
            | Keys { .. }
            | RandomKey
            | FlushDb { .. }
            | FlushAll { .. }
            | Scan { .. }
            | AclSetUser { .. }
            | AclDelUser { .. }
            | ConfigSetRequirepass { .. }
            | RequirepassIfUnset { .. }
    )
}

impl Plan {
    /// One `make(keys)` part per slot of `keys`.
    fn split_counted(&mut self, keys: Vec<Bytes>, make: impl Fn(Vec<Bytes>) -> Command) {
        for (slot_keys, _) in by_slot(keys.into_iter().map(|k| (k, ()))) {
            let keys = slot_keys.into_iter().map(|(k, ())| k).collect();
            self.push(make(keys), PartTarget::Keys);
        }
    }
}

/// The items of one slot, and their positions among the command's arguments.
type SlotItems<T> = (Vec<(Bytes, T)>, Vec<usize>);

/// `items` keyed by key, grouped by slot in the order slots first appear, each with the
/// argument positions of its items.
fn by_slot<T>(items: impl Iterator<Item = (Bytes, T)>) -> Vec<SlotItems<T>> {
    let mut order: BTreeMap<u16, usize> = BTreeMap::new();
    let mut groups: Vec<SlotItems<T>> = Vec::new();
    for (position, (key, value)) in items.enumerate() {
        let slot = key_slot(&key);
        let index = *order.entry(slot).or_insert_with(|| {
            groups.push((Vec::new(), Vec::new()));
            groups.len() - 1
        });
        groups[index].0.push((key, value));
        groups[index].1.push(position);
    }
    groups
}

fn tryagain() -> Reply {
    Reply::Error(TRYAGAIN.to_owned())
}

fn merge_one(merge: &Merge, replies: &[Option<Reply>]) -> Reply {
    if let Merge::Ready(reply) = merge {
        return reply.clone();
    }
    let Some(replies) = replies.iter().cloned().collect::<Option<Vec<Reply>>>() else {
        return tryagain();
    };
    if let Some(error) = replies.iter().find(|r| r.is_error()) {
        return error.clone();
    }
    match merge {
        Merge::Ready(_) => unreachable!("answered above"),
        Merge::Single | Merge::AllOk | Merge::Everywhere => {
            replies.into_iter().next().unwrap_or(Reply::Nil)
        }
        Merge::Sum => Reply::Integer(
            replies
                .iter()
                .map(|r| match r {
                    Reply::Integer(n) => *n,
                    _ => 0,
                })
                .fold(0i64, i64::saturating_add),
        ),
        Merge::Values { positions, total } => {
            let mut values = vec![Reply::Nil; *total];
            for (reply, at) in replies.into_iter().zip(positions) {
                let Reply::Array(part) = reply else { continue };
                for (value, i) in part.into_iter().zip(at) {
                    values[*i] = value;
                }
            }
            Reply::Array(values)
        }
        Merge::Concat => Reply::Array(
            replies
                .into_iter()
                .flat_map(|r| match r {
                    Reply::Array(keys) => keys,
                    _ => Vec::new(),
                })
                .collect(),
        ),
        Merge::AnyKey(random) => {
            let keys: Vec<Reply> = replies
                .into_iter()
                .filter(|r| !matches!(r, Reply::Nil))
                .collect();
            if keys.is_empty() {
                Reply::Nil
            } else {
                keys[(*random % keys.len() as u64) as usize].clone()
            }
        }
        Merge::Scan { group, next } => {
            let Some(Reply::Array(mut page)) = replies.into_iter().next() else {
                return Reply::Error("ERR unexpected SCAN reply".to_owned());
            };
            let keys = if page.len() == 2 { page.pop() } else { None };
            let inner = page
                .first()
                .and_then(|c| match c {
                    Reply::Bulk(text) => std::str::from_utf8(text).ok()?.parse::<u64>().ok(),
                    _ => None,
                })
                .unwrap_or(0);
            let cursor = scan_cursor(*group, inner, *next);
            let keys = match keys {
                Some(Reply::Array(keys)) => keys,
                _ => Vec::new(),
            };
            scan_reply(cursor, keys)
        }
    }
}

fn scan_reply(cursor: u64, keys: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(cursor.to_string())),
        Reply::Array(keys),
    ])
}

/// The cursor a coordinator gives back for SCAN: 0 when every group is done; else the group
/// (its id + 1, in the top 10 bits) and the position in it (the group's own cursor without its
/// low 9 bits: resuming there returns a few keys again, as Redis's SCAN may, and skips none).
/// `inner` is the cursor `group` answered (0: done), `next` the group after it.
pub fn scan_cursor(group: GroupId, inner: u64, next: Option<GroupId>) -> u64 {
    let (group, position) = if inner == 0 {
        match next {
            Some(next) => (next, 0),
            None => return 0,
        }
    } else {
        let position = (inner >> SCAN_DROPPED_BITS).min((1 << SCAN_POSITION_BITS) - 1);
        (group, position)
    };
    (u64::from(group.0 + 1) << SCAN_POSITION_BITS) | position
}

/// The group and that group's cursor a SCAN cursor names: 0 starts at the first group; a group
/// no longer known continues with the next one (`None`: none is left).
fn decode_scan(cursor: u64, groups: &[GroupId]) -> (Option<GroupId>, u64) {
    if cursor == 0 {
        return (groups.first().copied(), 0);
    }
    let tagged = (cursor >> SCAN_POSITION_BITS) as u32;
    let position = cursor & ((1 << SCAN_POSITION_BITS) - 1);
    let group = GroupId(tagged.saturating_sub(1));
    if groups.contains(&group) && tagged > 0 {
        (Some(group), position << SCAN_DROPPED_BITS)
    } else {
        (groups.iter().copied().find(|g| *g > group), 0)
    }
}

/// The groups a keyspace-wide command reaches under `map`: every group with a view, ascending;
/// `home` alone without a map or before any assignment (and never more than SCAN can name).
pub fn groups_of(map: Option<&ClusterMap>, home: GroupId) -> Vec<GroupId> {
    let groups: Vec<GroupId> = match map {
        Some(map) if map.config.num.0 > 0 => map
            .groups
            .iter()
            .filter(|(g, info)| info.view.is_some() && g.0 < SCAN_MAX_GROUPS)
            .map(|(g, _)| *g)
            .collect(),
        _ => Vec::new(),
    };
    if groups.is_empty() {
        vec![home]
    } else {
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(line: &str) -> Command {
        let args: Vec<Bytes> = line
            .split_whitespace()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        Command::parse(&args).expect("a valid command")
    }

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    const G: [GroupId; 3] = [GroupId(0), GroupId(1), GroupId(2)];

    #[test]
    fn s1_mget_is_split_by_slot_and_values_come_back_in_argument_order() {
        // {a} and {b} are different slots; a1 and a2 share one.
        let plan = Plan::new(vec![cmd("MGET {a}1 {b}1 {a}2")], &G, 0);
        assert_eq!(
            plan.parts()
                .iter()
                .map(|p| p.cmd.keys().len())
                .collect::<Vec<_>>(),
            vec![2, 1]
        );
        let replies = vec![
            Some(Reply::Array(vec![bulk("x"), Reply::Nil])),
            Some(Reply::Array(vec![bulk("y")])),
        ];
        assert_eq!(
            plan.merge(replies),
            vec![Reply::Array(vec![bulk("x"), bulk("y"), Reply::Nil])]
        );
    }

    #[test]
    fn s1_counts_are_summed_and_mset_is_ok_once_every_part_is() {
        let plan = Plan::new(
            vec![cmd("DEL {a}1 {b}1"), cmd("MSET {a}1 1 {b}2 2 {a}3 3")],
            &G,
            0,
        );
        assert_eq!(plan.parts().len(), 4);
        let ok = Some(Reply::ok());
        let merged = plan.merge(vec![
            Some(Reply::Integer(1)),
            Some(Reply::Integer(1)),
            ok.clone(),
            ok,
        ]);
        assert_eq!(merged, vec![Reply::Integer(2), Reply::ok()]);
        // A part that did not complete makes its command TRYAGAIN, not a partial count.
        let merged = plan.merge(vec![Some(Reply::Integer(1)), None, None, None]);
        assert_eq!(merged[0], Reply::Error(TRYAGAIN.to_owned()));
    }

    #[test]
    fn s1_keyspace_commands_reach_every_group_and_acl_writes_too() {
        let plan = Plan::new(
            vec![
                cmd("DBSIZE"),
                cmd("KEYS *"),
                cmd("ACL SETUSER u on"),
                cmd("ACL WHOAMI"),
            ],
            &G,
            0,
        );
        let targets: Vec<PartTarget> = plan.parts().iter().map(|p| p.target).collect();
        let everywhere = G.map(PartTarget::Group);
        assert_eq!(targets[0..3], everywhere);
        assert_eq!(targets[3..6], everywhere);
        assert_eq!(targets[6..9], everywhere);
        assert_eq!(targets[9..], [PartTarget::Group(G[0])]);
        let mut replies = vec![
            Some(Reply::Integer(2)),
            Some(Reply::Integer(0)),
            Some(Reply::Integer(5)),
        ];
        replies.extend([bulk("a"), bulk("b"), bulk("c")].map(|k| Some(Reply::Array(vec![k]))));
        replies.extend([Some(Reply::ok()), Some(Reply::ok()), Some(Reply::ok())]);
        replies.push(Some(bulk("default")));
        let merged = plan.merge(replies);
        assert_eq!(merged[0], Reply::Integer(7));
        assert_eq!(
            merged[1],
            Reply::Array(vec![bulk("a"), bulk("b"), bulk("c")])
        );
        assert_eq!(merged[2], Reply::ok());
        assert_eq!(merged[3], bulk("default"));
    }

    #[test]
    fn s1_scan_walks_the_groups_one_after_the_other() {
        let groups = [GroupId(0), GroupId(3)];
        let plan = Plan::new(vec![cmd("SCAN 0")], &groups, 0);
        assert_eq!(plan.parts()[0].target, PartTarget::Group(GroupId(0)));
        let page = |cursor: &str, key: &str| {
            Some(Reply::Array(vec![
                bulk(cursor),
                Reply::Array(vec![bulk(key)]),
            ]))
        };
        // Group 0 is not done: the cursor names it and a position at or before its own.
        let Reply::Array(first) = &plan.merge(vec![page("123456789", "k1")])[0] else {
            panic!("an array")
        };
        let Reply::Bulk(text) = &first[0] else {
            panic!("a cursor")
        };
        let cursor: u64 = std::str::from_utf8(text).unwrap().parse().unwrap();
        assert_ne!(cursor, 0);
        let plan = Plan::new(vec![cmd(&format!("SCAN {cursor}"))], &groups, 0);
        let Command::Scan { cursor: inner, .. } = plan.parts()[0].cmd else {
            panic!("a scan")
        };
        assert!(inner <= 123_456_789 && inner + 512 > 123_456_789);
        // Group 0 done: the next cursor starts group 3; group 3 done: 0.
        let next = scan_cursor(GroupId(0), 0, Some(GroupId(3)));
        let plan = Plan::new(vec![cmd(&format!("SCAN {next}"))], &groups, 0);
        assert_eq!(plan.parts()[0].target, PartTarget::Group(GroupId(3)));
        assert_eq!(
            plan.merge(vec![page("0", "k9")]),
            vec![Reply::Array(vec![
                bulk("0"),
                Reply::Array(vec![bulk("k9")])
            ])]
        );
    }

    #[test]
    fn s1_runs_are_consecutive_parts_of_one_group() {
        let mut owners = vec![Some(GroupId(0)); usize::from(tandem_kv::slots::SLOT_COUNT)];
        let b = key_slot(b"b");
        owners[usize::from(b)] = Some(GroupId(1));
        let map = ClusterMap {
            epoch: 1,
            config: crate::ShardConfig::from_owners(crate::ConfigNum(1), &owners),
            ..ClusterMap::default()
        };
        let plan = Plan::new(
            vec![cmd("SET a 1"), cmd("GET c"), cmd("GET b"), cmd("GET a")],
            &G[..2],
            0,
        );
        let run = plan.run_at(0, Some(&map), GroupId(0));
        assert_eq!(run.parts, 0..2);
        assert_eq!(run.group, Some(GroupId(0)));
        assert!(!run.named);
        assert_eq!(plan.run_at(2, Some(&map), GroupId(0)).parts, 2..3);
        assert_eq!(plan.run_at(3, Some(&map), GroupId(0)).parts, 3..4);
        // Without a map everything is one run for the home group.
        assert_eq!(plan.run_at(0, None, GroupId(0)).parts, 0..4);
        // Sent whole when one group serves it all; not when it must be split or fanned out.
        let cmds = |lines: &[&str]| lines.iter().map(|l| cmd(l)).collect::<Vec<_>>();
        let whole =
            |lines: &[&str]| Plan::single_group(&cmds(lines), Some(&map), GroupId(0), &G[..2]);
        assert_eq!(whole(&["SET a 1", "GET c", "AUTH x y"]), Some(GroupId(0)));
        assert_eq!(whole(&["GET b"]), Some(GroupId(1)));
        assert_eq!(whole(&["GET a", "GET b"]), None);
        assert_eq!(whole(&["MGET {a}1 {b}1"]), None);
        assert_eq!(whole(&["GET a", "DBSIZE"]), None);
        assert_eq!(whole(&["SCAN 0"]), None);
        assert_eq!(whole(&[]), None);
    }
}
