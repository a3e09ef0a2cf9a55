//! Random fault schedules. Each run draws a sequence of fault episodes from its seed; an
//! episode starts a fault and schedules its end.

use tandem_protocol::GroupId;
use tandem_protocol::message::SlotsChange;

use crate::cluster::Cluster;
use crate::net::NodeId;

/// One fault, or the end of one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Crash a server (it loses its memory).
    Crash(usize),
    /// Crash whoever is primary of the group now.
    CrashPrimary(GroupId),
    /// Crash the primary as soon as it is copying its state to a new backup.
    CrashPrimaryDuringTransfer,
    /// Start a crashed server again, empty.
    Restart(usize),
    /// Start every crashed server again.
    RestartAll,
    /// Freeze a server for a while.
    Pause(usize, u64),
    /// Freeze the group's primary, longer than failure detection, right after it acknowledged
    /// a view.
    PausePrimaryAfterAck(GroupId, u64),
    /// Freeze the view service (SIGSTOP): the servers stay healthy and must not be failed over
    /// for its silence (V3).
    PauseViewService(u64),
    /// Isolate the primary together with some clients (the Redis Sentinel split-brain shape).
    IsolatePrimaryWithClients(GroupId, usize),
    /// Cut a server from the view service only; clients and peers still reach it.
    CutFromViewService(usize),
    /// Cut one direction of one link.
    CutOneWay(NodeId, NodeId),
    /// Split the servers into two sides.
    SplitServers(u64),
    /// Cut or restore the link between two nodes (repeated: a flapping link).
    Flap(NodeId, NodeId, bool),
    /// Slow every message to and from a node (a lagging backup).
    Slow(usize, u64),
    /// Lossy, duplicating network.
    Degrade {
        /// Messages lost, per thousand.
        drop_per_mille: u64,
        /// Messages duplicated, per thousand.
        duplicate_per_mille: u64,
        /// Largest delay (a wider spread reorders more).
        delay_max_ms: u64,
    },
    /// A hostile peer: this many messages per thousand between servers and the view service
    /// are followed by a mutated copy sent as from another real server (P9-P11, V11).
    Hostile(u64),
    /// Undo every network fault.
    HealNetwork,
    /// Crash a view-service node (`None`: the leader); with `power_loss` its page cache is
    /// lost too (Q5).
    CrashVs(Option<usize>, bool),
    /// Power loss of `count` view-service nodes at once (the leader among them) right after
    /// the next view is committed: whatever was synced must survive (Q5).
    PowerLossAfterViewChange(usize),
    /// Crash the view-service leader and the group's primary together (Q4: the new leader must
    /// give every member a full detection period).
    CrashLeaderAndPrimary(GroupId),
    /// Start a crashed view-service node again from its disk.
    RestartVs(usize),
    /// Start every crashed view-service node again.
    RestartAllVs,
    /// Freeze one view-service node (`None`: the leader) for a while (a stalled leader resumed
    /// must not act as leader once deposed).
    PauseVs(Option<usize>, u64),
    /// Split the view-service nodes into two sides.
    SplitVs(u64),
    /// Isolate the view-service leader together with the servers in the bit set (the primary
    /// when `with_primary`) from everyone else: an isolated leader must reveal nothing the
    /// majority decides differently (Q3).
    IsolateLeaderWithServers(u64, bool),
    /// Cut a server from the view-service leader only.
    CutFromLeader(usize),
    /// The operator moves slots to a group (S3); refused while a move is in progress.
    MoveSlots {
        /// Inclusive slot ranges.
        ranges: Vec<(u16, u16)>,
        /// The group taking them.
        to: GroupId,
    },
    /// Crash the primary of the group giving up `slot` (`giver`) or of the one taking it,
    /// if the slot is moving now (S5-S8: the other servers of the group carry the move on).
    CrashMovePrimary {
        /// A slot of the move.
        slot: u16,
        /// The giver's primary, else the taker's.
        giver: bool,
    },
}

/// Draws the next fault episode: actions with their delays from now.
pub fn next_episode(cluster: &mut Cluster) -> Vec<(u64, Action)> {
    let servers = cluster.server_count();
    let clients = cluster.client_count();
    let detect_ms = cluster.config().view_service.dead_after_ms();
    let vs_nodes = cluster.vs_count();
    let groups = cluster.group_count();
    let rng = cluster.rng();
    let server = rng.below(servers as u64) as usize;
    let length = 200 + rng.below(2500);
    let vs = rng.below(vs_nodes as u64) as usize;
    // Drawn only when there are several groups, so single-group seeds replay as before.
    let group = if groups > 1 {
        GroupId(rng.below(groups as u64) as u32)
    } else {
        GroupId(0)
    };
    if groups > 1 && rng.below(3) == 0 {
        return move_episode(rng, group, length);
    }
    if vs_nodes > 1 && rng.below(2) == 0 {
        return vs_episode(rng, vs_nodes, servers, vs, length, group);
    }
    if rng.below(8) == 0 {
        return vec![
            (0, Action::Hostile(50 + rng.below(450))),
            (length * 2, Action::HealNetwork),
        ];
    }
    match rng.below(14) {
        0 => vec![
            (0, Action::Crash(server)),
            (length, Action::Restart(server)),
        ],
        1 => vec![
            (0, Action::CrashPrimary(group)),
            (length, Action::RestartAll),
        ],
        // Rare: when it hits, the group is stuck for good by design (P7, V6).
        2 if rng.below(30) == 0 => {
            vec![
                (0, Action::CrashPrimaryDuringTransfer),
                (length + 1000, Action::RestartAll),
            ]
        }
        2 => vec![
            (0, Action::Crash(server)),
            (length, Action::Restart(server)),
        ],
        3 => vec![(0, Action::Pause(server, length))],
        4 => vec![(
            0,
            Action::PausePrimaryAfterAck(group, detect_ms + 100 + rng.below(900)),
        )],
        5 => vec![
            (
                0,
                Action::IsolatePrimaryWithClients(group, 1 + rng.below(clients as u64) as usize),
            ),
            (length, Action::HealNetwork),
        ],
        6 => vec![
            (0, Action::CutFromViewService(server)),
            (length, Action::HealNetwork),
        ],
        7 => {
            let other =
                NodeId::Server((server + 1 + rng.below(servers as u64 - 1) as usize) % servers);
            vec![
                (0, Action::CutOneWay(NodeId::Server(server), other)),
                (length, Action::HealNetwork),
            ]
        }
        8 => vec![
            (0, Action::SplitServers(rng.next_u64())),
            (length, Action::HealNetwork),
        ],
        9 => {
            let a = NodeId::Server(server);
            let b = if rng.below(2) == 0 {
                NodeId::Vs(rng.below(vs_nodes as u64) as usize)
            } else {
                NodeId::Server((server + 1) % servers)
            };
            let mut t = 0;
            let mut actions = Vec::new();
            for i in 0..10 {
                actions.push((t, Action::Flap(a, b, i % 2 == 0)));
                t += 30 + rng.below(200);
            }
            actions.push((t, Action::HealNetwork));
            actions
        }
        10 => vec![
            (0, Action::Slow(server, 5 + rng.below(40))),
            (length * 2, Action::HealNetwork),
        ],
        11 => vec![
            (
                0,
                Action::Degrade {
                    drop_per_mille: rng.below(200),
                    duplicate_per_mille: rng.below(100),
                    delay_max_ms: 3 + rng.below(30),
                },
            ),
            (length * 2, Action::HealNetwork),
        ],
        // From under the dead interval to several times it: the view service must never count
        // its own stall against the servers (V3).
        12 => vec![(0, Action::PauseViewService(300 + rng.below(2700)))],
        _ => vec![
            (0, Action::Crash(server)),
            (0, Action::Pause((server + 1) % servers, length)),
            (length, Action::Restart(server)),
        ],
    }
}

/// Draws a slot move (S3) of a range around a slot of the workload's keys to group `to`, alone
/// or with a crash of the giver's or the taker's primary while it goes on.
fn move_episode(
    rng: &mut tandem_protocol::rng::SplitMix64,
    to: GroupId,
    length: u64,
) -> Vec<(u64, Action)> {
    let slots: Vec<u16> = crate::workload::spread_tags(crate::workload::SHARDED_TAGS)
        .iter()
        .map(|t| tandem_kv::slots::key_slot(t.as_bytes()))
        .collect();
    let slot = slots[rng.below(slots.len() as u64) as usize];
    let width = rng.below(200) as u16;
    let last = tandem_kv::slots::SLOT_COUNT - 1;
    let ranges = vec![(
        slot.saturating_sub(width),
        slot.saturating_add(width).min(last),
    )];
    let moving = Action::MoveSlots { ranges, to };
    match rng.below(4) {
        0 | 1 => vec![(0, moving)],
        giver => vec![
            (0, moving),
            (
                1 + rng.below(300),
                Action::CrashMovePrimary {
                    slot,
                    giver: giver == 2,
                },
            ),
            (length + 1000, Action::RestartAll),
        ],
    }
}

/// Draws an episode of view-service faults.
fn vs_episode(
    rng: &mut tandem_protocol::rng::SplitMix64,
    vs_nodes: usize,
    servers: usize,
    vs: usize,
    length: u64,
    group: GroupId,
) -> Vec<(u64, Action)> {
    let majority = vs_nodes / 2 + 1;
    match rng.below(10) {
        0 => vec![
            (0, Action::CrashVs(None, rng.below(2) == 0)),
            (length, Action::RestartAllVs),
        ],
        1 => vec![
            (0, Action::CrashVs(Some(vs), rng.below(2) == 0)),
            (length, Action::RestartVs(vs)),
        ],
        2 => {
            let count = if rng.below(2) == 0 {
                majority
            } else {
                vs_nodes
            };
            vec![
                (0, Action::PowerLossAfterViewChange(count)),
                (3000 + rng.below(1000), Action::RestartAllVs),
            ]
        }
        3 => vec![
            (0, Action::CrashLeaderAndPrimary(group)),
            (length + 1000, Action::RestartAllVs),
            (length + 1000, Action::RestartAll),
        ],
        4 => {
            let target = if rng.below(3) == 0 { Some(vs) } else { None };
            vec![(0, Action::PauseVs(target, 100 + rng.below(2500)))]
        }
        5 => vec![
            (0, Action::SplitVs(rng.next_u64())),
            (length, Action::HealNetwork),
        ],
        6 | 7 => vec![
            (
                0,
                Action::IsolateLeaderWithServers(rng.below(1 << servers), rng.below(2) == 0),
            ),
            (length + 500, Action::HealNetwork),
        ],
        8 => vec![
            (0, Action::CutFromLeader(rng.below(servers as u64) as usize)),
            (length, Action::HealNetwork),
        ],
        _ => vec![
            (0, Action::CrashVs(None, rng.below(2) == 0)),
            (300 + rng.below(700), Action::CrashVs(None, false)),
            (length + 1000, Action::RestartAllVs),
        ],
    }
}

/// Every server of `group` up and its view acknowledged with its full complement of backups.
fn healthy(cluster: &Cluster, group: GroupId) -> bool {
    let target = cluster.config().view_service.backups;
    let servers = cluster.servers_of(group);
    let others = servers.len() - 1;
    servers.into_iter().all(|i| cluster.is_up(i))
        && cluster.group_view_acked(group)
        && cluster
            .group_view(group)
            .is_some_and(|v| v.backups.len() >= target.min(others))
}

fn primary_index(cluster: &Cluster, group: GroupId) -> Option<usize> {
    cluster
        .group_view(group)
        .map(|v| cluster.server_index(&v.primary))
}

/// Applies one action to the cluster. Some actions wait (in virtual time) for the moment they
/// aim at, bounded so that a run always moves on.
pub fn apply(cluster: &mut Cluster, action: &Action) {
    let everyone = cluster.nodes();
    let crashing = match action {
        Action::Crash(i) => Some(cluster.server_group(*i)),
        Action::CrashPrimary(group) => Some(*group),
        _ => None,
    };
    if let Some(group) = crashing
        && !healthy(cluster, group)
    {
        // Crashing a second holder of the state before the first was replaced only makes the
        // group stuck for good (R3: memory is lost); runs spend their time on richer faults.
        return;
    }
    match action {
        Action::Crash(i) => cluster.crash(*i),
        Action::CrashPrimary(group) => {
            if let Some(p) = primary_index(cluster, *group) {
                cluster.crash(p);
            }
        }
        Action::CrashPrimaryDuringTransfer => {
            let until = cluster.now_ms() + 3000;
            let transferring = |c: &Cluster| {
                (0..c.server_count()).any(|i| {
                    c.server(i)
                        .is_some_and(|r| !r.transfers_in_progress().is_empty())
                })
            };
            if cluster.run_until(until, transferring) {
                let p = (0..cluster.server_count())
                    .find(|i| {
                        cluster
                            .server(*i)
                            .is_some_and(|r| !r.transfers_in_progress().is_empty())
                    })
                    .expect("a transferring primary");
                cluster.crash(p);
            }
        }
        Action::Restart(i) => {
            if !cluster.is_up(*i) {
                cluster.restart(*i);
            }
        }
        Action::RestartAll => {
            for i in 0..cluster.server_count() {
                if !cluster.is_up(i) {
                    cluster.restart(i);
                }
            }
        }
        Action::Pause(i, ms) => cluster.pause(*i, *ms),
        Action::PauseViewService(ms) => cluster.pause_view_service(*ms),
        Action::PausePrimaryAfterAck(group, ms) => {
            let group = *group;
            let until = cluster.now_ms() + 2000;
            let viewnum = cluster.group_view(group).map(|v| v.num);
            // Wait for the next acknowledgement of a new view, or at least an acked view.
            cluster.run_until(until, |c| {
                c.group_view_acked(group) && c.group_view(group).map(|v| v.num) != viewnum
            });
            if cluster.group_view_acked(group)
                && let Some(p) = primary_index(cluster, group)
            {
                cluster.pause(p, *ms);
            }
        }
        Action::IsolatePrimaryWithClients(group, k) => {
            if let Some(p) = primary_index(cluster, *group) {
                let mut side = vec![NodeId::Server(p)];
                side.extend((0..*k).map(NodeId::Client));
                cluster.net.partition(&side, &everyone);
            }
        }
        Action::CutFromViewService(i) => {
            for v in cluster.vs_nodes() {
                cluster.net.cut(NodeId::Server(*i), v);
            }
        }
        Action::CutFromLeader(i) => {
            if let Some(l) = cluster.leader() {
                cluster.net.cut(NodeId::Server(*i), NodeId::Vs(l));
            }
        }
        Action::CrashVs(target, power_loss) => {
            let up = (0..cluster.vs_count())
                .filter(|v| cluster.is_vs_up(*v))
                .count();
            // Keep a majority up (power losses of a majority are their own episode).
            if up.saturating_sub(1) * 2 > cluster.vs_count()
                && let Some(v) = target.or_else(|| cluster.leader())
            {
                cluster.crash_vs(v, *power_loss);
            }
        }
        Action::PowerLossAfterViewChange(count) => {
            let before = cluster.committed_views().len();
            let until = cluster.now_ms() + 3000;
            cluster.run_until(until, |c| c.committed_views().len() > before);
            let first = cluster.leader().unwrap_or(0);
            let n = cluster.vs_count();
            for k in 0..*count {
                cluster.crash_vs((first + k) % n, true);
            }
        }
        Action::CrashLeaderAndPrimary(group) => {
            if healthy(cluster, *group)
                && let (Some(l), Some(p)) = (cluster.leader(), primary_index(cluster, *group))
            {
                cluster.crash_vs(l, false);
                cluster.crash(p);
            }
        }
        Action::RestartVs(v) => cluster.restart_vs(*v),
        Action::RestartAllVs => {
            for v in 0..cluster.vs_count() {
                cluster.restart_vs(v);
            }
        }
        Action::PauseVs(target, ms) => {
            if let Some(v) = target.or_else(|| cluster.leader()) {
                cluster.pause_vs(v, *ms);
            }
        }
        Action::SplitVs(bits) => {
            let side: Vec<NodeId> = (0..cluster.vs_count())
                .filter(|i| bits >> i & 1 == 1)
                .map(NodeId::Vs)
                .collect();
            let all = cluster.vs_nodes();
            cluster.net.partition(&side, &all);
        }
        Action::IsolateLeaderWithServers(bits, with_primary) => {
            if let Some(l) = cluster.leader() {
                let mut side = vec![NodeId::Vs(l)];
                side.extend(
                    (0..cluster.server_count())
                        .filter(|i| bits >> i & 1 == 1)
                        .map(NodeId::Server),
                );
                if *with_primary && let Some(p) = primary_index(cluster, GroupId(0)) {
                    side.push(NodeId::Server(p));
                }
                side.sort();
                side.dedup();
                cluster.net.partition(&side, &everyone);
            }
        }
        Action::CutOneWay(a, b) => cluster.net.cut_one_way(*a, *b),
        Action::SplitServers(bits) => {
            let side: Vec<NodeId> = (0..cluster.server_count())
                .filter(|i| bits >> i & 1 == 1)
                .map(NodeId::Server)
                .collect();
            let servers: Vec<NodeId> = (0..cluster.server_count()).map(NodeId::Server).collect();
            cluster.net.partition(&side, &servers);
        }
        Action::Flap(a, b, cut) => {
            if *cut {
                cluster.net.cut(*a, *b);
            } else {
                cluster.net.heal_link(*a, *b);
            }
        }
        Action::Slow(i, ms) => cluster.net.slow(NodeId::Server(*i), *ms),
        Action::Degrade {
            drop_per_mille,
            duplicate_per_mille,
            delay_max_ms,
        } => {
            cluster.net.config.drop_per_mille = *drop_per_mille;
            cluster.net.config.duplicate_per_mille = *duplicate_per_mille;
            cluster.net.config.delay_max_ms = *delay_max_ms;
        }
        Action::Hostile(per_mille) => cluster.net.config.hostile_per_mille = *per_mille,
        Action::MoveSlots { ranges, to } => {
            let _ = cluster.change_slots(SlotsChange::Move {
                ranges: ranges.clone(),
                to: *to,
            });
        }
        Action::CrashMovePrimary { slot, giver } => {
            let Some(map) = cluster.cluster_map() else {
                return;
            };
            let (before, after) = (map.previous.owner(*slot), map.config.owner(*slot));
            let target = if *giver { before } else { after };
            if before != after
                && !cluster.configs_settled()
                && let Some(group) = target
                && healthy(cluster, group)
                && let Some(p) = primary_index(cluster, group)
            {
                cluster.crash(p);
            }
        }
        Action::HealNetwork => {
            let base = cluster.config().net.clone();
            cluster.net.heal_all();
            cluster.net.config = base;
        }
    }
}
