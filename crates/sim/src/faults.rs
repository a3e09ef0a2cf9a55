//! Random fault schedules. Each run draws a sequence of fault episodes from its seed; an
//! episode starts a fault and schedules its end.

use crate::cluster::Cluster;
use crate::net::NodeId;

/// One fault, or the end of one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Crash a server (it loses its memory).
    Crash(usize),
    /// Crash whoever is primary now.
    CrashPrimary,
    /// Crash the primary as soon as it is copying its state to a new backup.
    CrashPrimaryDuringTransfer,
    /// Start a crashed server again, empty.
    Restart(usize),
    /// Start every crashed server again.
    RestartAll,
    /// Freeze a server for a while.
    Pause(usize, u64),
    /// Freeze the primary, longer than failure detection, right after it acknowledged a view.
    PausePrimaryAfterAck(u64),
    /// Freeze the view service (SIGSTOP): the servers stay healthy and must not be failed over
    /// for its silence (V3).
    PauseViewService(u64),
    /// Isolate the primary together with some clients (the Redis Sentinel split-brain shape).
    IsolatePrimaryWithClients(usize),
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
    /// Undo every network fault.
    HealNetwork,
}

/// Draws the next fault episode: actions with their delays from now.
pub fn next_episode(cluster: &mut Cluster) -> Vec<(u64, Action)> {
    let servers = cluster.server_count();
    let clients = cluster.client_count();
    let detect_ms = cluster.config().view_service.dead_after_ms();
    let rng = cluster.rng();
    let server = rng.below(servers as u64) as usize;
    let length = 200 + rng.below(2500);
    match rng.below(14) {
        0 => vec![
            (0, Action::Crash(server)),
            (length, Action::Restart(server)),
        ],
        1 => vec![(0, Action::CrashPrimary), (length, Action::RestartAll)],
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
            Action::PausePrimaryAfterAck(detect_ms + 100 + rng.below(900)),
        )],
        5 => vec![
            (
                0,
                Action::IsolatePrimaryWithClients(1 + rng.below(clients as u64) as usize),
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
                NodeId::ViewService
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

/// Every server up and the view acknowledged with its full complement of backups.
fn healthy(cluster: &Cluster) -> bool {
    let target = cluster.config().view_service.backups;
    (0..cluster.server_count()).all(|i| cluster.is_up(i))
        && cluster.view_acked()
        && cluster
            .view()
            .is_some_and(|v| v.backups.len() >= target.min(cluster.server_count() - 1))
}

fn primary_index(cluster: &Cluster) -> Option<usize> {
    cluster.view().map(|v| cluster.server_index(&v.primary))
}

/// Applies one action to the cluster. Some actions wait (in virtual time) for the moment they
/// aim at, bounded so that a run always moves on.
pub fn apply(cluster: &mut Cluster, action: &Action) {
    let everyone = cluster.nodes();
    if matches!(action, Action::Crash(_) | Action::CrashPrimary) && !healthy(cluster) {
        // Crashing a second holder of the state before the first was replaced only makes the
        // group stuck for good (R3: memory is lost); runs spend their time on richer faults.
        return;
    }
    match action {
        Action::Crash(i) => cluster.crash(*i),
        Action::CrashPrimary => {
            if let Some(p) = primary_index(cluster) {
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
        Action::PausePrimaryAfterAck(ms) => {
            let until = cluster.now_ms() + 2000;
            let viewnum = cluster.view().map(|v| v.num);
            // Wait for the next acknowledgement of a new view, or at least an acked view.
            cluster.run_until(until, |c| {
                c.view_acked() && c.view().map(|v| v.num) != viewnum
            });
            if cluster.view_acked()
                && let Some(p) = primary_index(cluster)
            {
                cluster.pause(p, *ms);
            }
        }
        Action::IsolatePrimaryWithClients(k) => {
            if let Some(p) = primary_index(cluster) {
                let mut side = vec![NodeId::Server(p)];
                side.extend((0..*k).map(NodeId::Client));
                cluster.net.partition(&side, &everyone);
            }
        }
        Action::CutFromViewService(i) => cluster.net.cut(NodeId::Server(*i), NodeId::ViewService),
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
        Action::HealNetwork => {
            let base = cluster.config().net.clone();
            cluster.net.heal_all();
            cluster.net.config = base;
        }
    }
}
