//! The deterministic cluster harness: a replicated view service of `vs_nodes` Raft nodes, each
//! with a simulated disk, N replica servers and M client sessions, driven by virtual time and
//! one seeded random generator, so that a seed replays a whole run exactly. Scenario tests drive
//! it directly; `run` drives it with random workloads and faults.
//!
//! The simulated disk of a view-service node (Q5): the ops of a `Persist` land in a page cache
//! at once; a sync completes after 1-10 ms drawn from the seed and only then is the node told
//! `persisted`. The "OS" writes the page cache back after [`WRITEBACK_MS`]. A crash keeps what
//! is on disk and in the page cache (the kernel survives a process crash); a power loss keeps
//! only what was synced or written back. A restart builds the node from what was kept.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;

use tandem_kv::slots::key_slot;
use tandem_kv::{Command, Reply};
use tandem_protocol::consensus::{
    DiskOp, DiskState, NodeConfig, NodeEvent, Persist, ViewServiceNode,
};
use tandem_protocol::locator::MAX_UNANSWERED;
use tandem_protocol::message::{
    Endpoint, MembersRefusal, Message, Op, SlotsChange, Transmit, ViewReply,
};
use tandem_protocol::replica::Replica;
use tandem_protocol::rng::SplitMix64;
use tandem_protocol::shard::ClusterMap;
use tandem_protocol::{
    Clerk, ClerkConfig, ClientId, Completion, ConfigNum, Failure, GroupId, Incarnation, Now,
    OpIndex, Outcome, ReplicaConfig, RoleKind, Seq, ServerId, ShardState, View, ViewChangeCause,
    ViewEvent, ViewNum, ViewService, ViewServiceConfig, VsAddr,
};

use crate::history::{HistoryOp, Invariants};
use crate::ledger::{Execution, Ledger};
use crate::net::{NetConfig, Network, NodeId};

/// Wall clocks start here (Unix ms, late 2023), so expiry times look like real ones.
const WALL_EPOCH_MS: u64 = 1_700_000_000_000;
/// View-service pauses remembered for the V3 invariant; far more than a run applies. Forgetting
/// one only makes the invariant stricter.
const MAX_REMEMBERED_PAUSES: usize = 1024;
/// The simulated OS writes a view-service node's page cache back to disk after this long.
pub const WRITEBACK_MS: u64 = 1000;
/// A sync takes 1 to this many ms (drawn from the seed).
const SYNC_MAX_MS: u64 = 10;
/// How long `Cluster::new` lets the view-service nodes elect a leader before servers start.
const BOOTSTRAP_MAX_MS: u64 = 10_000;

/// How to build a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The one seed everything derives from.
    pub seed: u64,
    /// Replica groups (S): group 0's servers are named s1, s2, ..., group g's (g > 0) g{g}s1,
    /// g{g}s2, ... With one group (the default) a run is exactly what it was before sharding.
    pub groups: usize,
    /// Replica servers of each group. They start pinging in order, group by group, the first
    /// of each group first.
    pub servers: usize,
    /// Client sessions.
    pub clients: usize,
    /// View-service Raft nodes (named vs1, vs2, ...): 1, 3 or 5.
    pub vs_nodes: usize,
    /// View service settings.
    pub view_service: ViewServiceConfig,
    /// Replica settings.
    pub replica: ReplicaConfig,
    /// Coordinator settings.
    pub clerk: ClerkConfig,
    /// Each server's wall clock is off by up to this much (either way).
    pub clock_skew_max_ms: u64,
    /// Network behaviour.
    pub net: NetConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            seed: 1,
            groups: 1,
            servers: 3,
            clients: 3,
            vs_nodes: 3,
            view_service: ViewServiceConfig::default(),
            replica: ReplicaConfig::default(),
            clerk: ClerkConfig::default(),
            clock_skew_max_ms: 0,
            net: NetConfig::default(),
        }
    }
}

/// Chooses what clients do: called when a session is idle and asks for work.
pub trait Workload {
    /// The next request of `client`, or `None` to stay idle for now.
    fn next(&mut self, client: usize, rng: &mut SplitMix64) -> Option<Vec<Command>>;
    /// Pause between a completion and the next request.
    fn think_ms(&mut self, rng: &mut SplitMix64) -> u64;
}

enum EventKind {
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: Message,
    },
    Timer {
        node: NodeId,
    },
    Submit {
        client: usize,
    },
    /// A view-service node's sync of persist request `id` completes (if the node was not
    /// crashed since: `epoch`).
    SyncDone {
        vs: usize,
        epoch: u64,
        id: u64,
    },
    /// A hostile peer's message: `from` is a real server, but not one the receiver may take it
    /// from (checked again at delivery, see `deliver_hostile`).
    Hostile {
        from: usize,
        to: NodeId,
        msg: Message,
    },
}

struct Event {
    at_ms: u64,
    seq: u64,
    kind: EventKind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_ms, self.seq).cmp(&(other.at_ms, other.seq))
    }
}

struct ServerSlot {
    id: ServerId,
    group: GroupId,
    replica: Option<Replica>,
    skew_ms: i64,
    paused_until_ms: u64,
    timer_at_ms: Option<u64>,
    /// The last moment the server was disrupted in a way that can legitimately make the view
    /// service declare it dead: started, crashed, restarted, paused (until the pause ends), or
    /// a message between it and the view service lost or delayed beyond the network's normal
    /// delay. The "no healthy server is declared dead" invariant (V3) measures from here.
    disrupted_at_ms: u64,
    /// The end of its history when the execution checker last looked (S4).
    seen: OpIndex,
    /// Requests it ordered as primary (with their index), not known committed yet.
    pending: Vec<(OpIndex, Execution)>,
}

/// One view-service node, its disk and its harness state.
struct VsSlot {
    addr: VsAddr,
    node: Option<ViewServiceNode>,
    /// What survives a power loss: synced or written back.
    durable: DiskState,
    /// Written, not yet synced nor written back: `(written_at_ms, persist id, op)`, in order.
    cache: VecDeque<(u64, u64, DiskOp)>,
    /// When the last requested sync completes (syncs complete in order).
    last_sync_at_ms: u64,
    /// Bumped on every crash: sync completions of an earlier life are void.
    epoch: u64,
    timer_at_ms: Option<u64>,
    paused_until_ms: u64,
    /// When this node was paused, as `(from_ms, until_ms)`, oldest first (bounded).
    pauses: VecDeque<(u64, u64)>,
    /// Since when this node decides (Q4), while it does.
    leading_since_ms: Option<u64>,
    /// For each group, the last view this node applied and whether it applied its
    /// acknowledgement (per-node V6 on the applied log); `None` after a snapshot install
    /// (unknown).
    applied_view: Option<BTreeMap<GroupId, (ViewNum, bool)>>,
    /// Restarts so far (mixed into the node's seed).
    lives: u64,
}

struct ClientSlot {
    clerk: Clerk,
    timer_at_ms: Option<u64>,
    /// History index of the outstanding request.
    outstanding: Option<usize>,
    completions: VecDeque<(Seq, Outcome)>,
    /// Waiting for a `Submit` event.
    submit_pending: bool,
}

/// The simulated cluster.
pub struct Cluster {
    config: ClusterConfig,
    now_ms: u64,
    rng: SplitMix64,
    /// The network; tests cut and heal links through it.
    pub net: Network,
    queue: BinaryHeap<Reverse<Event>>,
    next_seq: u64,
    vs: Vec<VsSlot>,
    /// The committed history: for each group and view number, the `NewView` some node applied
    /// first, and the acknowledgements applied (agreement and log matching are checked against
    /// it).
    committed_views: BTreeMap<(GroupId, ViewNum), ViewEvent>,
    committed_acks: BTreeMap<GroupId, ViewNum>,
    servers: Vec<ServerSlot>,
    by_id: BTreeMap<ServerId, usize>,
    clients: Vec<ClientSlot>,
    workload: Option<Box<dyn Workload>>,
    history: Vec<HistoryOp>,
    invariants: Invariants,
    trace: u64,
    events_processed: u64,
    /// Hostile messages delivered (the hostile-peer fault).
    hostile_injected: u64,
    /// Messages each view-service-facing sender sent, for the "not flooded" check.
    vs_requests: BTreeMap<NodeId, u64>,
    /// Committed configurations and executions per slot (S3-S6).
    ledger: Ledger,
    /// The slots whose ownership the "agrees on its configuration" check compares (the
    /// workload's; empty: not checked).
    watched_slots: Vec<u16>,
    /// What the view service answered the operator (`change_slots`), oldest first (bounded).
    operator_replies: VecDeque<Message>,
    /// Servers and configurations already reported by the S3 check (once each).
    s3_reported: BTreeSet<(usize, ConfigNum)>,
}

/// The operator tool's endpoint (a change of the slot map is handed to the leader directly).
const OPERATOR: Endpoint = Endpoint::Client(ClientId(0));
/// Operator replies kept.
const MAX_OPERATOR_REPLIES: usize = 16;

fn fnv(hash: u64, value: u64) -> u64 {
    let mut h = hash;
    for byte in value.to_le_bytes() {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

impl Cluster {
    /// Builds the cluster. Servers are created but have not pinged yet; call `run_for`.
    pub fn new(config: ClusterConfig) -> Cluster {
        let mut rng = SplitMix64::new(config.seed);
        let mut net = Network::default();
        net.config = config.net.clone();
        let mut servers = Vec::new();
        let mut by_id = BTreeMap::new();
        for i in 0..config.groups.max(1) * config.servers {
            let group = GroupId((i / config.servers.max(1)) as u32);
            let id = server_name(group, i % config.servers.max(1));
            let skew_ms = if config.clock_skew_max_ms == 0 {
                0
            } else {
                rng.below(2 * config.clock_skew_max_ms + 1) as i64 - config.clock_skew_max_ms as i64
            };
            let mut replica = Replica::new(
                id.clone(),
                group,
                Incarnation(rng.next_u64()),
                config.replica.clone(),
            );
            replica.set_view_services(vs_addrs(config.vs_nodes));
            by_id.insert(id.clone(), i);
            servers.push(ServerSlot {
                id,
                group,
                replica: Some(replica),
                skew_ms,
                paused_until_ms: 0,
                timer_at_ms: None,
                disrupted_at_ms: 0,
                seen: OpIndex(0),
                pending: Vec::new(),
            });
        }
        let clients = (0..config.clients)
            .map(|i| ClientSlot {
                clerk: {
                    // The production clerk routes by slot over the cluster map (S1, S4, S8).
                    let mut clerk =
                        Clerk::new(ClientId(i as u64 + 1), GroupId(0), config.clerk.clone());
                    clerk.set_view_services(vs_addrs(config.vs_nodes));
                    clerk
                },
                timer_at_ms: None,
                outstanding: None,
                completions: VecDeque::new(),
                submit_pending: false,
            })
            .collect();
        let vs = vs_addrs(config.vs_nodes)
            .into_iter()
            .map(|addr| VsSlot {
                addr,
                node: None,
                durable: DiskState::default(),
                cache: VecDeque::new(),
                last_sync_at_ms: 0,
                epoch: 0,
                timer_at_ms: None,
                paused_until_ms: 0,
                pauses: VecDeque::new(),
                leading_since_ms: None,
                applied_view: None,
                lives: 0,
            })
            .collect();
        let mut cluster = Cluster {
            config,
            now_ms: 0,
            rng,
            net,
            queue: BinaryHeap::new(),
            next_seq: 0,
            vs,
            committed_views: BTreeMap::new(),
            committed_acks: BTreeMap::new(),
            servers,
            by_id,
            clients,
            workload: None,
            history: Vec::new(),
            invariants: Invariants::default(),
            trace: 0xcbf2_9ce4_8422_2325,
            events_processed: 0,
            hostile_injected: 0,
            vs_requests: BTreeMap::new(),
            ledger: Ledger::default(),
            watched_slots: Vec::new(),
            operator_replies: VecDeque::new(),
            s3_reported: BTreeSet::new(),
        };
        // The view-service nodes start from empty disks and elect a leader first (bounded);
        // then servers start one ping interval apart so that s1 is the first primary (V5).
        for i in 0..cluster.vs.len() {
            cluster.start_vs(i);
        }
        cluster.run_until(BOOTSTRAP_MAX_MS, |c| c.leader().is_some());
        let start = cluster.now_ms;
        for i in 0..cluster.servers.len() {
            let at = start + i as u64 * cluster.config.replica.ping_interval_ms / 2;
            cluster.servers[i].disrupted_at_ms = at;
            cluster.arm_timer(NodeId::Server(i), at);
        }
        cluster
    }

    /// Builds view-service node `i` from what its disk kept, and starts driving it.
    fn start_vs(&mut self, i: usize) {
        let n = self.vs.len();
        let addrs = vs_addrs(n);
        let seed = fnv(fnv(self.config.seed, i as u64), self.vs[i].lives);
        let mut config = NodeConfig::single(addrs[i].clone());
        config.id = i as u64 + 1;
        config.peers = addrs
            .iter()
            .enumerate()
            .map(|(j, a)| (j as u64 + 1, a.clone()))
            .collect();
        config.seed = seed;
        config.view_service = self.config.view_service.clone();
        let disk = self.vs[i].durable.clone();
        let node = match ViewServiceNode::new(config, disk) {
            Ok(node) => node,
            Err(e) => {
                self.invariants
                    .violate(format!("Q5: vs{} cannot start from its disk: {e}", i + 1));
                return;
            }
        };
        let slot = &mut self.vs[i];
        slot.applied_view = Some(
            node.table()
                .groups()
                .filter_map(|(id, g)| g.view.as_ref().map(|v| (id, (v.num, g.acked))))
                .collect(),
        );
        slot.node = Some(node);
        slot.lives += 1;
        slot.leading_since_ms = None;
        slot.timer_at_ms = None;
        slot.paused_until_ms = 0;
        let now = self.now_ms;
        self.after_vs(i);
        self.arm_timer(NodeId::Vs(i), now);
    }

    // ---- observation ----

    /// Current virtual time.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Number of view-service nodes.
    pub fn vs_count(&self) -> usize {
        self.vs.len()
    }

    /// View-service node `i` (0-based, address `vs{i+1}`), if it is up.
    pub fn vs_node(&self, i: usize) -> Option<&ViewServiceNode> {
        self.vs[i].node.as_ref()
    }

    /// The address of view-service node `i`.
    pub fn vs_addr(&self, i: usize) -> VsAddr {
        self.vs[i].addr.clone()
    }

    /// The view-service node that decides now: up, not paused, leading and ready (Q1). When
    /// a deposed leader has not noticed yet, the one with the highest term.
    pub fn leader(&self) -> Option<usize> {
        (0..self.vs.len())
            .filter(|i| self.vs[*i].paused_until_ms <= self.now_ms)
            .filter_map(|i| self.vs[i].node.as_ref().map(|n| (i, n)))
            .filter(|(_, n)| n.is_leader())
            .max_by_key(|(i, n)| (n.term(), std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
    }

    /// The node whose table is the most advanced: the leader, else the up node that applied
    /// the most.
    fn table_node(&self) -> Option<&ViewServiceNode> {
        if let Some(l) = self.leader() {
            return self.vs[l].node.as_ref();
        }
        self.vs
            .iter()
            .filter_map(|s| s.node.as_ref())
            .max_by_key(|n| n.applied())
    }

    /// The leader's decision logic (`None` while no node leads).
    pub fn view_service(&self) -> Option<&ViewService> {
        self.leader()
            .and_then(|l| self.vs[l].node.as_ref())
            .map(|n| n.view_service())
    }

    /// The current committed view of group 0, as the most advanced node applied it.
    pub fn view(&self) -> Option<View> {
        self.group_view(GroupId(0))
    }

    /// The current committed view of `group`, as the most advanced node applied it.
    pub fn group_view(&self, group: GroupId) -> Option<View> {
        self.table_node()
            .and_then(|n| n.table().group(group))
            .and_then(|g| g.view.clone())
    }

    /// Why group 0 cannot make progress by the rules, if it cannot (see
    /// `ViewService::stuck_reason`; asked of the leader, `None` without one).
    pub fn stuck_reason(&self) -> Option<String> {
        self.group_stuck_reason(GroupId(0))
    }

    /// Why `group` cannot make progress by the rules, if it cannot.
    pub fn group_stuck_reason(&self, group: GroupId) -> Option<String> {
        self.view_service()
            .and_then(|vs| vs.stuck_reason(group, self.now()))
    }

    /// Is group 0's current view acknowledged by its primary (committed)?
    pub fn view_acked(&self) -> bool {
        self.group_view_acked(GroupId(0))
    }

    /// Is `group`'s current view acknowledged by its primary (committed)?
    pub fn group_view_acked(&self, group: GroupId) -> bool {
        self.table_node()
            .and_then(|n| n.table().group(group))
            .is_some_and(|g| g.acked)
    }

    /// Every committed view of group 0 so far, by number.
    pub fn committed_views(&self) -> Vec<View> {
        self.committed_views
            .iter()
            .filter(|((g, _), _)| *g == GroupId(0))
            .filter_map(|(_, e)| match e {
                ViewEvent::NewView { view, .. } => Some(view.clone()),
                _ => None,
            })
            .collect()
    }

    /// Number of replica groups.
    pub fn group_count(&self) -> usize {
        self.config.groups.max(1)
    }

    /// Committed configurations and executions per slot (S3-S6).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The slots the "took on configuration n" check compares (the workload's).
    pub fn set_watched_slots(&mut self, slots: Vec<u16>) {
        self.watched_slots = slots;
    }

    /// The cluster map of the most advanced view-service table.
    pub fn cluster_map(&self) -> Option<Arc<ClusterMap>> {
        self.table_node().map(|n| n.table().cluster_map())
    }

    /// True when every group with a view has taken on the current configuration (S3, S4):
    /// no move is in progress.
    pub fn configs_settled(&self) -> bool {
        let Some(node) = self.table_node() else {
            return false;
        };
        let table = node.table();
        let current = table.shard_config().num;
        table
            .groups()
            .filter(|(_, g)| g.view.is_some())
            .all(|(g, _)| table.config_done(g) >= current)
    }

    /// The operator asks the view-service leader to change the slot map (S3): the message is
    /// handed to the leader directly. Returns its answer if it gave one at once (`None`: no
    /// leader, or no answer yet).
    pub fn change_slots(
        &mut self,
        change: SlotsChange,
    ) -> Option<Result<ConfigNum, MembersRefusal>> {
        let l = self.leader()?;
        let now = self.now();
        self.operator_replies.clear();
        self.vs[l].node.as_mut().expect("a leader is up").handle(
            now,
            OPERATOR,
            Message::ChangeSlots(change),
        );
        self.after_vs(l);
        self.operator_replies.iter().rev().find_map(|m| match m {
            Message::SlotsReply(reply) => Some(reply.clone()),
            _ => None,
        })
    }

    /// Every group, in order.
    pub fn groups(&self) -> Vec<GroupId> {
        (0..self.group_count() as u32).map(GroupId).collect()
    }

    /// The group of server `i`.
    pub fn server_group(&self, i: usize) -> GroupId {
        self.servers[i].group
    }

    /// The indices of `group`'s servers.
    pub fn servers_of(&self, group: GroupId) -> std::ops::Range<usize> {
        let n = self.config.servers.max(1);
        let g = group.0 as usize;
        g * n..(g + 1) * n
    }

    /// Server `i` (0-based), if it is up.
    pub fn server(&self, i: usize) -> Option<&Replica> {
        self.servers[i].replica.as_ref()
    }

    /// The id of server `i`.
    pub fn server_id(&self, i: usize) -> ServerId {
        self.servers[i].id.clone()
    }

    /// The index of the server with `id`.
    pub fn server_index(&self, id: &ServerId) -> usize {
        self.by_id[id]
    }

    /// Number of servers.
    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// Number of client sessions.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Client session `i`.
    pub fn clerk(&self, i: usize) -> &Clerk {
        &self.clients[i].clerk
    }

    /// Every operation issued so far.
    pub fn history(&self) -> &[HistoryOp] {
        &self.history
    }

    /// Invariant violations seen so far.
    pub fn violations(&self) -> &[String] {
        &self.invariants.violations
    }

    /// A digest of everything that happened: equal for equal seeds.
    pub fn trace_digest(&self) -> u64 {
        self.trace
    }

    /// Hostile messages delivered so far (the hostile-peer fault).
    pub fn hostile_injected(&self) -> u64 {
        self.hostile_injected
    }

    /// Events processed so far.
    pub fn events_processed(&self) -> u64 {
        self.events_processed
    }

    /// Requests that client `i` sent to the view service.
    pub fn view_service_requests(&self, node: NodeId) -> u64 {
        self.vs_requests.get(&node).copied().unwrap_or(0)
    }

    /// The random generator (fault schedules draw from the same one).
    pub fn rng(&mut self) -> &mut SplitMix64 {
        &mut self.rng
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Every node, for partitions.
    pub fn nodes(&self) -> Vec<NodeId> {
        let mut nodes = self.vs_nodes();
        nodes.extend((0..self.servers.len()).map(NodeId::Server));
        nodes.extend((0..self.clients.len()).map(NodeId::Client));
        nodes
    }

    /// Every view-service node.
    pub fn vs_nodes(&self) -> Vec<NodeId> {
        (0..self.vs.len()).map(NodeId::Vs).collect()
    }

    // ---- faults ----

    /// Crashes view-service node `i` (the process dies; the kernel survives, so the page cache
    /// reaches the disk). With `power_loss`, the machine dies too: only what was synced or
    /// already written back survives (Q5).
    pub fn crash_vs(&mut self, i: usize, power_loss: bool) {
        let now = self.now_ms;
        let slot = &mut self.vs[i];
        if slot.node.is_none() {
            return;
        }
        slot.node = None;
        slot.epoch += 1;
        slot.timer_at_ms = None;
        slot.leading_since_ms = None;
        slot.last_sync_at_ms = 0;
        let mut kept = Vec::new();
        while let Some((written_ms, _, op)) = slot.cache.pop_front() {
            if !power_loss || written_ms + WRITEBACK_MS <= now {
                kept.push(op);
            }
        }
        for op in kept {
            apply_op(&mut self.vs[i].durable, &op, &mut self.invariants, i);
        }
    }

    /// Starts crashed view-service node `i` again from its disk.
    pub fn restart_vs(&mut self, i: usize) {
        if self.vs[i].node.is_none() {
            self.start_vs(i);
        }
    }

    /// Is view-service node `i` up?
    pub fn is_vs_up(&self, i: usize) -> bool {
        self.vs[i].node.is_some()
    }

    /// Freezes view-service node `i` for `duration_ms` (like SIGSTOP): messages to it, its
    /// timers and the completions of its syncs wait.
    pub fn pause_vs(&mut self, i: usize, duration_ms: u64) {
        let now = self.now_ms;
        let until_ms = now + duration_ms;
        let slot = &mut self.vs[i];
        match slot.pauses.back_mut() {
            Some((_, end_ms)) if *end_ms >= now => *end_ms = (*end_ms).max(until_ms),
            _ => slot.pauses.push_back((now, until_ms)),
        }
        while slot.pauses.len() > MAX_REMEMBERED_PAUSES {
            slot.pauses.pop_front();
        }
        slot.paused_until_ms = slot.paused_until_ms.max(until_ms);
    }

    /// Is view-service node `i` paused now?
    pub fn is_vs_paused(&self, i: usize) -> bool {
        self.vs[i].paused_until_ms > self.now_ms
    }

    /// Crashes server `i`: it stops and loses its memory (R3).
    pub fn crash(&mut self, i: usize) {
        self.servers[i].replica = None;
        self.servers[i].pending.clear();
        self.servers[i].timer_at_ms = None;
        self.disrupted(i, self.now_ms);
    }

    /// Starts server `i` again as a new, empty server with a new incarnation (R3, V4).
    pub fn restart(&mut self, i: usize) {
        let incarnation = Incarnation(self.rng.next_u64());
        self.invariants.server_restarted(&self.servers[i].id);
        let addrs = vs_addrs(self.vs.len());
        let slot = &mut self.servers[i];
        let mut replica = Replica::new(
            slot.id.clone(),
            slot.group,
            incarnation,
            self.config.replica.clone(),
        );
        replica.set_view_services(addrs);
        slot.replica = Some(replica);
        slot.paused_until_ms = 0;
        slot.timer_at_ms = None;
        slot.seen = OpIndex(0);
        slot.pending.clear();
        let now = self.now_ms;
        self.disrupted(i, now);
        self.arm_timer(NodeId::Server(i), now);
    }

    /// Is server `i` up?
    pub fn is_up(&self, i: usize) -> bool {
        self.servers[i].replica.is_some()
    }

    /// Freezes server `i` for `duration_ms` (like SIGSTOP): messages and timers wait.
    pub fn pause(&mut self, i: usize, duration_ms: u64) {
        let until_ms = self.now_ms + duration_ms;
        self.servers[i].paused_until_ms = until_ms;
        self.disrupted(i, until_ms);
    }

    /// Freezes every view-service node for `duration_ms` (like SIGSTOP on all of them): no
    /// election can happen meanwhile. The servers stay healthy; the view service must not count
    /// its own stall against them (V3).
    pub fn pause_view_service(&mut self, duration_ms: u64) {
        for i in 0..self.vs.len() {
            self.pause_vs(i, duration_ms);
        }
    }

    /// How long view-service node `vs` was paused between `from_ms` and `to_ms`.
    fn vs_paused_ms(&self, vs: usize, from_ms: u64, to_ms: u64) -> u64 {
        self.vs[vs]
            .pauses
            .iter()
            .map(|(start_ms, end_ms)| {
                (*end_ms)
                    .min(to_ms)
                    .saturating_sub((*start_ms).max(from_ms))
            })
            .sum()
    }

    /// Records that server `i` was disrupted until `until_ms`.
    fn disrupted(&mut self, i: usize, until_ms: u64) {
        let slot = &mut self.servers[i];
        slot.disrupted_at_ms = slot.disrupted_at_ms.max(until_ms);
    }

    /// Replaces the workload that keeps clients busy (None: clients only do what tests submit).
    pub fn set_workload(&mut self, workload: Option<Box<dyn Workload>>) {
        self.workload = workload;
        if self.workload.is_some() {
            for c in 0..self.clients.len() {
                self.kick_client(c);
            }
        }
    }

    // ---- clients ----

    /// Submits a request on client `c` (which must be idle); returns its history index.
    pub fn submit(&mut self, c: usize, cmds: Vec<Command>) -> usize {
        let cmds = Arc::new(cmds);
        let now = self.now();
        let seq = self.clients[c].clerk.submit(now, cmds.clone());
        let index = self.history.len();
        self.history.push(HistoryOp {
            client: c,
            seq,
            cmds,
            call_ms: self.now_ms,
            ret: None,
            done: false,
        });
        self.clients[c].outstanding = Some(index);
        self.after_client(c);
        index
    }

    /// Parses and submits one Redis command line, e.g. `"SET a 1"`.
    pub fn submit_str(&mut self, c: usize, line: &str) -> usize {
        let args: Vec<bytes::Bytes> = line
            .split_whitespace()
            .map(|w| bytes::Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        let cmd = Command::parse(&args).unwrap_or_else(|e| panic!("bad command {line:?}: {e:?}"));
        self.submit(c, vec![cmd])
    }

    /// Is client `c` idle?
    pub fn client_idle(&self, c: usize) -> bool {
        self.clients[c].clerk.is_idle()
    }

    /// The outcome of history operation `index`, once finished: replies, or `None` if timed out.
    pub fn result(&self, index: usize) -> Option<Option<Arc<Vec<Reply>>>> {
        let op = &self.history[index];
        op.done.then(|| op.ret.as_ref().map(|(_, r)| r.clone()))
    }

    /// Runs until operation `index` finished or `deadline_ms` of virtual time passed; returns
    /// the replies (None on timeout or deadline).
    pub fn wait(&mut self, index: usize, deadline_ms: u64) -> Option<Arc<Vec<Reply>>> {
        let until = self.now_ms + deadline_ms;
        self.run_until(until, |c| c.history[index].done);
        self.result(index).flatten()
    }

    /// Submits one command line on client `c` and waits up to `deadline_ms` for its reply.
    pub fn call(&mut self, c: usize, line: &str, deadline_ms: u64) -> Option<Reply> {
        let index = self.submit_str(c, line);
        self.wait(index, deadline_ms).map(|r| r[0].clone())
    }

    // ---- running ----

    /// Runs for `duration_ms` of virtual time.
    pub fn run_for(&mut self, duration_ms: u64) {
        let until = self.now_ms + duration_ms;
        self.run_until(until, |_| false);
    }

    /// Runs until `done` holds (checked after every event) or virtual time reaches `until_ms`.
    /// Returns whether `done` held.
    pub fn run_until(&mut self, until_ms: u64, mut done: impl FnMut(&Cluster) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            match self.queue.peek() {
                Some(Reverse(e)) if e.at_ms <= until_ms => {}
                _ => {
                    self.now_ms = self.now_ms.max(until_ms);
                    return done(self);
                }
            }
            let Reverse(event) = self.queue.pop().expect("peeked");
            self.now_ms = event.at_ms;
            self.process(event);
        }
    }

    fn now(&self) -> Now {
        Now {
            mono_ms: self.now_ms,
            wall_ms: WALL_EPOCH_MS + self.now_ms,
        }
    }

    fn server_now(&self, i: usize) -> Now {
        let wall = (WALL_EPOCH_MS + self.now_ms) as i64 + self.servers[i].skew_ms;
        Now {
            mono_ms: self.now_ms,
            wall_ms: wall as u64,
        }
    }

    fn schedule(&mut self, delay_ms: u64, kind: EventKind) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Reverse(Event {
            at_ms: self.now_ms + delay_ms,
            seq,
            kind,
        }));
    }

    fn schedule_at(&mut self, at_ms: u64, kind: EventKind) {
        let delay = at_ms.saturating_sub(self.now_ms);
        self.schedule(delay, kind);
    }

    fn arm_timer(&mut self, node: NodeId, at_ms: u64) {
        let at_ms = at_ms.max(self.now_ms);
        let slot = match node {
            NodeId::Server(i) => &mut self.servers[i].timer_at_ms,
            NodeId::Client(c) => &mut self.clients[c].timer_at_ms,
            NodeId::Vs(i) => &mut self.vs[i].timer_at_ms,
        };
        if slot.is_some_and(|t| t <= at_ms) {
            return;
        }
        *slot = Some(at_ms);
        self.schedule_at(at_ms, EventKind::Timer { node });
    }

    fn endpoint(&self, node: NodeId) -> Endpoint {
        match node {
            NodeId::Vs(i) => Endpoint::ViewService(self.vs[i].addr.clone()),
            NodeId::Server(i) => Endpoint::Server(self.servers[i].id.clone()),
            NodeId::Client(c) => Endpoint::Client(self.clients[c].clerk.id()),
        }
    }

    fn node(&self, endpoint: &Endpoint) -> Option<NodeId> {
        match endpoint {
            Endpoint::ViewService(addr) => {
                self.vs.iter().position(|s| s.addr == *addr).map(NodeId::Vs)
            }
            Endpoint::Server(id) => self.by_id.get(id).map(|i| NodeId::Server(*i)),
            Endpoint::Client(id) => {
                let c = id.0.checked_sub(1)? as usize;
                (c < self.clients.len()).then_some(NodeId::Client(c))
            }
        }
    }

    fn send(&mut self, from: NodeId, transmit: Transmit) {
        if transmit.to == OPERATOR {
            if self.operator_replies.len() >= MAX_OPERATOR_REPLIES {
                self.operator_replies.pop_front();
            }
            self.operator_replies.push_back(transmit.msg);
            return;
        }
        let Some(to) = self.node(&transmit.to) else {
            return;
        };
        self.maybe_inject_hostile(to, &transmit.msg);
        if matches!(to, NodeId::Vs(_)) && !matches!(from, NodeId::Vs(_)) {
            *self.vs_requests.entry(from).or_default() += 1;
        }
        let delays = self.net.deliveries(&mut self.rng, from, to);
        self.observe_view_service_link(from, to, &delays);
        for delay in delays {
            self.schedule(
                delay,
                EventKind::Deliver {
                    from,
                    to,
                    msg: transmit.msg.clone(),
                },
            );
        }
    }

    /// The hostile-peer fault: with `net.hostile_per_mille`, a mutated copy of a message between
    /// servers and the view service (changed views, positions, transfer ids, entries duplicated
    /// or reordered: `hostile::Mutator`) is also sent, as from another real server. The
    /// transport binds a sender's identity to its connection (peer TLS), so a server can only
    /// lie as itself: the copy is delivered only from a server the receiver must not take it
    /// from (P9-P11, V11), and the invariants must hold.
    fn maybe_inject_hostile(&mut self, to: NodeId, msg: &Message) {
        let per_mille = self.net.config.hostile_per_mille;
        if per_mille == 0 || self.rng.below(1000) >= per_mille {
            return;
        }
        if !matches!(
            msg,
            Message::Forward(_)
                | Message::ForwardReply(_)
                | Message::Transfer(_)
                | Message::TransferReply(_)
                | Message::Ping(_)
                | Message::PingReply(_)
                | Message::SlotData(_)
                | Message::SlotDataReply(_)
        ) || matches!(to, NodeId::Client(_))
        {
            return;
        }
        let groups = self.groups();
        let mutator = crate::hostile::Mutator::new(
            self.servers.iter().map(|s| s.id.clone()).collect(),
            self.vs.iter().map(|v| v.addr.clone()).collect(),
            groups.clone(),
        );
        let (_, mut mutated) = mutator.mutate(&mut self.rng, msg);
        if let Message::Ping(ping) = &mut mutated {
            // The simulated cluster and its checkers know its own groups; V12's bound on
            // made-up groups has its own tests. A ping names its server's own group: a real
            // server claiming another group would be a liar about itself, which no check can
            // tell from a misconfigured server (the copy may go out as from that server).
            ping.group = match self.by_id.get(&ping.server) {
                Some(&i) => self.servers[i].group,
                None => GroupId(ping.group.0 % groups.len() as u32),
            };
        }
        let from = self.rng.below(self.servers.len() as u64) as usize;
        let delay = 1 + self.rng.below(self.net.config.delay_max_ms.max(1));
        self.schedule(
            delay,
            EventKind::Hostile {
                from,
                to,
                msg: mutated,
            },
        );
    }

    /// Delivers a hostile message if `from` is not a server the receiver may take it from: not
    /// a member of the receiver's view (a server), or not the server the ping names or not
    /// outside the view service's current view of the group (a view-service node).
    fn deliver_hostile(&mut self, from: usize, to: NodeId, msg: Message) {
        let impostor = self.servers[from].id.clone();
        let allowed = match to {
            // S7: chunks and their answers are taken only from a group the configuration pairs
            // with the receiver's in a move; a server of such a group lying is beyond any check.
            NodeId::Server(i)
                if matches!(msg, Message::SlotData(_) | Message::SlotDataReply(_)) =>
            {
                self.servers[i].replica.is_some()
                    && !self
                        .move_partners(self.servers[i].group)
                        .contains(&self.servers[from].group)
            }
            NodeId::Server(i) => self.servers[i]
                .replica
                .as_ref()
                .is_some_and(|r| r.view().is_none_or(|v| !v.contains(&impostor))),
            NodeId::Vs(v) => match &msg {
                // Its own ping, with made-up numbers, only while it is in no view (a member's
                // false acknowledgement is a lie about its own state, which no check can see).
                Message::Ping(ping) => {
                    ping.server != impostor
                        || self.vs[v].node.as_ref().is_some_and(|n| {
                            n.table()
                                .group(ping.group)
                                .and_then(|g| g.view.as_ref())
                                .is_none_or(|view| !view.contains(&impostor))
                        })
                }
                _ => true,
            },
            NodeId::Client(_) => false,
        };
        if allowed {
            let at_ms = self.now_ms;
            self.hostile_injected += 1;
            self.deliver(at_ms, NodeId::Server(from), to, msg);
        }
    }

    /// The groups that give slots to `group` or take slots from it in the current
    /// configuration (S3): only their servers may send it chunks and answers (S7). Every
    /// group has taken on the configuration before (S3), so nobody else may.
    fn move_partners(&self, group: GroupId) -> BTreeSet<GroupId> {
        let mut partners = BTreeSet::new();
        let Some(map) = self.cluster_map() else {
            return partners;
        };
        for m in map.previous.moves_to(&map.config) {
            if m.from == group {
                partners.insert(m.to);
            }
            if m.to == group {
                partners.insert(m.from);
            }
        }
        partners
    }

    /// Observes the network where it matters for V3: a message between a server and the view
    /// service that is lost (a cut in either direction, a partition, a flapping link, a lossy
    /// network) or slower than the network's normal delay (a slowed node, a degraded network)
    /// disrupts that server. Watching every message here catches whatever a fault or a test does
    /// to the links, without each of them having to report it.
    fn observe_view_service_link(&mut self, from: NodeId, to: NodeId, delays: &[u64]) {
        let server = match (from, to) {
            (NodeId::Server(i), NodeId::Vs(_)) | (NodeId::Vs(_), NodeId::Server(i)) => i,
            _ => return,
        };
        let normal_delay_ms = self.config.net.delay_max_ms;
        let slowest_ms = delays.iter().copied().max();
        match slowest_ms {
            None => self.disrupted(server, self.now_ms),
            Some(delay_ms) if delay_ms > normal_delay_ms => {
                self.disrupted(server, self.now_ms + delay_ms);
            }
            Some(_) => {}
        }
    }

    fn trace_event(&mut self, tag: u64, node: NodeId, extra: u64) {
        let node_code = match node {
            NodeId::Vs(i) => 3000 + i as u64,
            NodeId::Server(i) => 1000 + i as u64,
            NodeId::Client(c) => 2000 + c as u64,
        };
        self.trace = fnv(
            fnv(fnv(fnv(self.trace, self.now_ms), tag), node_code),
            extra,
        );
    }

    fn process(&mut self, event: Event) {
        self.events_processed += 1;
        match event.kind {
            EventKind::Deliver { from, to, msg } => self.deliver(event.at_ms, from, to, msg),
            EventKind::Timer { node } => self.timer(node, event.at_ms),
            EventKind::Submit { client } => self.workload_submit(client),
            EventKind::SyncDone { vs, epoch, id } => self.sync_done(event.at_ms, vs, epoch, id),
            EventKind::Hostile { from, to, msg } => self.deliver_hostile(from, to, msg),
        }
    }

    fn deliver(&mut self, at_ms: u64, from: NodeId, to: NodeId, msg: Message) {
        match to {
            NodeId::Vs(v) => {
                let paused_until = self.vs[v].paused_until_ms;
                if paused_until > at_ms {
                    self.schedule_at(paused_until, EventKind::Deliver { from, to, msg });
                    return;
                }
                if self.vs[v].node.is_none() {
                    return;
                }
                self.trace_event(1, to, 0);
                let from_endpoint = self.endpoint(from);
                let now = self.now();
                self.vs[v]
                    .node
                    .as_mut()
                    .expect("up")
                    .handle(now, from_endpoint, msg);
                self.after_vs(v);
            }
            NodeId::Server(i) => {
                let paused_until = self.servers[i].paused_until_ms;
                if paused_until > at_ms {
                    self.schedule_at(paused_until, EventKind::Deliver { from, to, msg });
                    return;
                }
                if self.servers[i].replica.is_none() {
                    return;
                }
                self.check_offered_view(to, from, &msg);
                self.check_offered_map(to, from, &msg);
                let from_endpoint = self.endpoint(from);
                let now = self.server_now(i);
                self.servers[i]
                    .replica
                    .as_mut()
                    .expect("up")
                    .handle(now, from_endpoint, msg);
                self.after_server(i);
            }
            NodeId::Client(c) => {
                self.check_offered_view(to, from, &msg);
                self.check_offered_map(to, from, &msg);
                let from_endpoint = self.endpoint(from);
                let now = self.now();
                self.clients[c].clerk.handle(now, from_endpoint, msg);
                self.after_client(c);
            }
        }
    }

    fn timer(&mut self, node: NodeId, at_ms: u64) {
        match node {
            NodeId::Vs(v) => {
                if self.vs[v].timer_at_ms != Some(at_ms) {
                    return; // Superseded.
                }
                self.vs[v].timer_at_ms = None;
                let paused_until = self.vs[v].paused_until_ms;
                if paused_until > at_ms {
                    self.arm_timer(node, paused_until);
                    return;
                }
                let now = self.now();
                let Some(vs) = self.vs[v].node.as_mut() else {
                    return;
                };
                vs.handle_timeout(now);
                self.after_vs(v);
            }
            NodeId::Server(i) => {
                if self.servers[i].timer_at_ms != Some(at_ms) {
                    return; // Superseded.
                }
                self.servers[i].timer_at_ms = None;
                let paused_until = self.servers[i].paused_until_ms;
                if paused_until > at_ms {
                    self.arm_timer(node, paused_until);
                    return;
                }
                let now = self.server_now(i);
                let Some(replica) = self.servers[i].replica.as_mut() else {
                    return;
                };
                replica.handle_timeout(now);
                self.after_server(i);
            }
            NodeId::Client(c) => {
                if self.clients[c].timer_at_ms != Some(at_ms) {
                    return;
                }
                self.clients[c].timer_at_ms = None;
                let now = self.now();
                self.clients[c].clerk.handle_timeout(now);
                self.after_client(c);
            }
        }
    }

    fn after_server(&mut self, i: usize) {
        let answers = self.after_server_capturing(i, None);
        debug_assert!(answers.is_empty());
    }

    /// Drains server `i`'s outputs and arms its timer. Messages addressed to `capture` are
    /// returned instead of sent (test helpers ask a server something directly).
    fn after_server_capturing(&mut self, i: usize, capture: Option<&Endpoint>) -> Vec<Message> {
        let now = self.server_now(i);
        let mut out = Vec::new();
        let replica = self.servers[i].replica.as_mut().expect("up");
        while let Some(t) = replica.poll_transmit(now) {
            out.push(t);
        }
        let next = replica.poll_timeout();
        let viewnum = replica.view().map_or(ViewNum::NONE, |v| v.num);
        let last = replica.state().last;
        let id = self.servers[i].id.clone();
        self.invariants.server_view(&id, viewnum);
        self.trace_event(2, NodeId::Server(i), last.index.0 ^ (viewnum.0 << 40));
        let mut captured = Vec::new();
        for t in out {
            if let Message::Response(r) = &t.msg
                && r.result.is_ok()
            {
                self.invariants
                    .answered(self.servers[i].group, &id, viewnum);
            }
            if capture == Some(&t.to) {
                captured.push(t.msg);
            } else {
                self.send(NodeId::Server(i), t);
            }
        }
        self.watch_executions(i);
        if let Some(next) = next {
            self.arm_timer(NodeId::Server(i), next.max(self.now_ms + 1));
        }
        captured
    }

    /// The execution checker (S4-S6), after every step of server `i`: the requests it ordered
    /// as primary since the last look are checked against its own shard state (a group
    /// executes only slots it serves: not frozen before the entry, not still arriving), and
    /// recorded in the ledger once committed. Then its shard state, once it has taken on a
    /// configuration completely, must match that committed configuration on the watched slots.
    fn watch_executions(&mut self, i: usize) {
        let now = (self.now_ms, self.events_processed);
        let ledger = &mut self.ledger;
        let watched = &self.watched_slots;
        let s3_reported = &mut self.s3_reported;
        let ServerSlot {
            id,
            group,
            replica,
            seen,
            pending,
            ..
        } = &mut self.servers[i];
        let group = *group;
        let Some(replica) = replica.as_ref() else {
            return;
        };
        let state = replica.state();
        let last = state.last.index;
        let shard = &state.shard;
        let mut found = Vec::new();
        if replica.role() == RoleKind::Primary {
            let log = replica.recent_log();
            let from = (*seen).max(log.base().index);
            if last > from {
                for entry in log.after(from, usize::MAX) {
                    let Op::Client {
                        client, seq, cmds, ..
                    } = &entry.op
                    else {
                        continue;
                    };
                    let mut slots: Vec<u16> = cmds
                        .iter()
                        .flat_map(|c| c.keys())
                        .map(|k| key_slot(k))
                        .collect();
                    slots.sort_unstable();
                    slots.dedup();
                    for slot in slots {
                        if !served_at(shard, slot, entry.pos.index) {
                            found.push(format!(
                                "S4: {id} (primary of group {group}) executed client {} seq {} \
                                 on slot {slot} at index {}, which its group did not serve there \
                                 (frozen: {}, arriving: {}, taken on: {}, target: {})",
                                client.0,
                                seq.0,
                                entry.pos.index,
                                shard.frozen.contains(slot),
                                shard.arriving.contains(slot),
                                shard.taken_on,
                                shard.target,
                            ));
                        }
                        let execution = Execution {
                            at: now,
                            group,
                            server: id.clone(),
                            slot,
                            client: *client,
                            seq: *seq,
                            unsharded: !shard.sharded,
                        };
                        pending.push((entry.pos.index, execution));
                    }
                }
            }
            if let Some(commit) = replica.commit_index() {
                let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(pending)
                    .into_iter()
                    .partition(|(index, _)| *index <= commit);
                *pending = waiting;
                for (_, e) in done {
                    ledger.executed(e);
                }
            }
        } else {
            pending.clear();
        }
        // S3: a group that took on configuration n completely serves exactly what n gives it.
        if shard.sharded
            && shard.target == shard.taken_on
            && !shard.moving()
            && let Some(config) = ledger.config(shard.taken_on)
            && !s3_reported.contains(&(i, shard.taken_on))
        {
            for &slot in watched {
                let ours = config.owner(slot) == Some(group);
                if shard.served.contains(slot) != ours {
                    s3_reported.insert((i, shard.taken_on));
                    found.push(format!(
                        "S3: {id} of group {group} took on configuration {} {} slot {slot}, \
                         which that configuration gives to {:?}",
                        shard.taken_on,
                        if ours { "without serving" } else { "serving" },
                        config.owner(slot)
                    ));
                }
            }
        }
        *seen = last;
        for violation in found {
            self.invariants.violate(violation);
        }
    }

    fn after_client(&mut self, c: usize) {
        let mut out = Vec::new();
        let mut done: Vec<Completion> = Vec::new();
        let now = self.now();
        let slot = &mut self.clients[c];
        while let Some(t) = slot.clerk.poll_transmit(now) {
            out.push(t);
        }
        while let Some(completion) = slot.clerk.poll_completion() {
            done.push(completion);
        }
        let next = slot.clerk.poll_timeout();
        for t in out {
            self.send(NodeId::Client(c), t);
        }
        for completion in done {
            self.trace_event(3, NodeId::Client(c), completion.seq.0);
            if let Some(index) = self.clients[c].outstanding.take() {
                let op = &mut self.history[index];
                debug_assert_eq!(op.seq, completion.seq);
                op.done = true;
                if let Outcome::Replies(replies) = &completion.outcome {
                    op.ret = Some((self.now_ms, replies.clone()));
                }
            }
            self.clients[c]
                .completions
                .push_back((completion.seq, completion.outcome));
            self.kick_client(c);
        }
        if let Some(next) = next {
            self.arm_timer(NodeId::Client(c), next.max(self.now_ms + 1));
        }
    }

    fn kick_client(&mut self, c: usize) {
        if self.clients[c].submit_pending || !self.clients[c].clerk.is_idle() {
            return;
        }
        let Some(workload) = self.workload.as_mut() else {
            return;
        };
        let think = workload.think_ms(&mut self.rng);
        self.clients[c].submit_pending = true;
        self.schedule(think, EventKind::Submit { client: c });
    }

    fn workload_submit(&mut self, c: usize) {
        self.clients[c].submit_pending = false;
        if !self.clients[c].clerk.is_idle() {
            return;
        }
        let Some(workload) = self.workload.as_mut() else {
            return;
        };
        match workload.next(c, &mut self.rng) {
            Some(cmds) => {
                self.submit(c, cmds);
            }
            None => self.kick_client(c),
        }
    }

    /// Drives view-service node `v` after an input: its writes go to the simulated disk (a sync
    /// completes later, then `persisted`), its messages to the network, its events to the
    /// checkers; then its timer is re-armed.
    fn after_vs(&mut self, v: usize) {
        let now = self.now();
        loop {
            let Some(node) = self.vs[v].node.as_mut() else {
                return;
            };
            let mut persists: Vec<Persist> = Vec::new();
            while let Some(p) = node.poll_persist() {
                persists.push(p);
            }
            let mut out = Vec::new();
            while let Some(t) = node.poll_transmit(now) {
                out.push(t);
            }
            let mut events = Vec::new();
            while let Some(e) = node.poll_event() {
                events.push(e);
            }
            if persists.is_empty() && out.is_empty() && events.is_empty() {
                break;
            }
            for event in events {
                self.vs_event(v, event);
            }
            for t in out {
                self.send(NodeId::Vs(v), t);
            }
            for p in persists {
                let slot = &mut self.vs[v];
                for op in p.ops {
                    slot.cache.push_back((self.now_ms, p.id, op));
                }
                if p.sync {
                    let delay = 1 + self.rng.below(SYNC_MAX_MS);
                    let slot = &mut self.vs[v];
                    let at = (self.now_ms + delay).max(slot.last_sync_at_ms);
                    slot.last_sync_at_ms = at;
                    let epoch = slot.epoch;
                    self.schedule_at(
                        at,
                        EventKind::SyncDone {
                            vs: v,
                            epoch,
                            id: p.id,
                        },
                    );
                } else {
                    // A write without a sync returns at once (only `vs-skips-sync` asks this).
                    self.vs[v].node.as_mut().expect("up").persisted(now, p.id);
                }
            }
        }
        let node = self.vs[v].node.as_ref().expect("up");
        let leading = node.is_leader();
        let next = node.poll_timeout();
        let term = node.term();
        let slot = &mut self.vs[v];
        match (leading, slot.leading_since_ms) {
            (true, None) => {
                slot.leading_since_ms = Some(self.now_ms);
                self.trace_event(5, NodeId::Vs(v), term);
            }
            (false, Some(_)) => slot.leading_since_ms = None,
            _ => {}
        }
        if let Some(next) = next {
            self.arm_timer(NodeId::Vs(v), next.max(self.now_ms + 1));
        }
    }

    /// A sync of view-service node `v` completed: everything written up to persist request
    /// `id` is on disk; the node hears of it (unless it crashed since, or waits while paused).
    fn sync_done(&mut self, at_ms: u64, v: usize, epoch: u64, id: u64) {
        if self.vs[v].epoch != epoch || self.vs[v].node.is_none() {
            return;
        }
        let paused_until = self.vs[v].paused_until_ms;
        if paused_until > at_ms {
            self.schedule_at(paused_until, EventKind::SyncDone { vs: v, epoch, id });
            return;
        }
        let mut synced = Vec::new();
        while self.vs[v].cache.front().is_some_and(|(_, p, _)| *p <= id) {
            synced.push(self.vs[v].cache.pop_front().expect("front").2);
        }
        for op in synced {
            apply_op(&mut self.vs[v].durable, &op, &mut self.invariants, v);
        }
        let now = self.now();
        self.vs[v].node.as_mut().expect("up").persisted(now, id);
        self.after_vs(v);
    }

    /// Checks one event of view-service node `v` against the committed history.
    fn vs_event(&mut self, v: usize, event: NodeEvent) {
        match event {
            NodeEvent::Applied(event) => self.vs_applied(v, event),
            NodeEvent::Rejected(e) => self.invariants.violate(format!(
                "Q3: vs{} rejected a committed decision: {e}",
                v + 1
            )),
            NodeEvent::RoleChanged { term, leader, .. } => {
                self.trace_event(6, NodeId::Vs(v), term ^ (leader << 32));
            }
            NodeEvent::MembersChanged => self.vs[v].applied_view = None,
            NodeEvent::Committed { .. } => {}
            NodeEvent::Failed(why) => self.invariants.violate(format!("Q5: {why}")),
        }
    }

    /// A node applied a committed decision: log matching (every node applies the same decision
    /// for a view number), V6 on that node's applied sequence and on the committed history,
    /// V3 and Q4 on the deciding leader's declarations.
    fn vs_applied(&mut self, v: usize, event: ViewEvent) {
        let name = format!("vs{}", v + 1);
        match &event {
            ViewEvent::NewView {
                group,
                view,
                causes,
                at_ms,
                ..
            } => {
                // V6 on this node's applied sequence: a NewView(N+1) only after Acked(N).
                // A group missing from the map is unknown (after a snapshot install): checked
                // from its next view on.
                let applied = self.vs[v].applied_view.get_or_insert_default();
                if let Some(&(num, acked)) = applied.get(group)
                    && num != ViewNum::NONE
                    && !(view.num == num.next() && acked)
                {
                    self.invariants.violate(format!(
                        "V6: {name} applied view {} of group {group} after view {num} \
                         (acknowledged: {acked})",
                        view.num
                    ));
                }
                applied.insert(*group, (view.num, false));
                match self.committed_views.get(&(*group, view.num)) {
                    Some(first) if *first != event => {
                        // Compared whole: the same view decided twice (another time, another
                        // cause) is still two different log entries for one number.
                        self.invariants.violate(format!(
                            "log matching: {name} applied view {} as {event:?} but it was \
                             committed as {first:?}",
                            view.num,
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.committed_views
                            .insert((*group, view.num), event.clone());
                        self.trace_event(4, NodeId::Vs(v), view.num.0);
                        self.invariants.view_event(&event);
                    }
                }
                // The deciding leader: this node, if it decided it in its current leadership.
                if let Some(since_ms) = self.vs[v].leading_since_ms
                    && *at_ms >= since_ms
                {
                    for cause in causes {
                        self.check_declared_dead(cause, v, since_ms, *at_ms);
                    }
                }
            }
            ViewEvent::Acked { group, viewnum } => {
                if let Some((num, acked)) = self.vs[v]
                    .applied_view
                    .as_mut()
                    .and_then(|a| a.get_mut(group))
                    && *num == *viewnum
                {
                    *acked = true;
                }
                if self.committed_acks.get(group) < Some(viewnum) {
                    self.committed_acks.insert(*group, *viewnum);
                    self.invariants.view_event(&event);
                }
            }
            ViewEvent::Slots { config } => {
                let at = (self.now_ms, self.events_processed);
                if let Some(violation) = self.ledger.config_applied(config, at) {
                    self.invariants.violate(format!("{name}: {violation}"));
                }
                self.trace_event(7, NodeId::Vs(v), config.num.0);
            }
            ViewEvent::ClientAddr { .. } | ViewEvent::ConfigDone { .. } => {}
        }
    }

    /// Agreement on the cluster map (S2, Q3): a map a view-service node reveals holds the
    /// committed configuration of its number (and the one before as `previous`) and, for
    /// every group, the committed view of that number.
    fn check_offered_map(&mut self, to: NodeId, from: NodeId, msg: &Message) {
        if !matches!(from, NodeId::Vs(_)) {
            return;
        }
        let map = match msg {
            Message::ClusterReply(map)
            | Message::PingReply(ViewReply {
                cluster: Some(map), ..
            }) => map.clone(),
            _ => return,
        };
        let mut wrong = Vec::new();
        for (config, what) in [(&map.config, "config"), (&map.previous, "previous")] {
            if config.num == ConfigNum(0) {
                continue;
            }
            if let Some(committed) = self.ledger.config(config.num)
                && committed != config
            {
                wrong.push(format!(
                    "its {what} {} is {:?}, committed as {:?}",
                    config.num, config.ranges, committed.ranges
                ));
            }
        }
        for (group, info) in &map.groups {
            let Some(view) = &info.view else { continue };
            if let Some(ViewEvent::NewView {
                view: committed, ..
            }) = self.committed_views.get(&(*group, view.num))
                && committed != view
            {
                wrong.push(format!(
                    "group {group}'s view {} is {view:?}, committed as {committed:?}",
                    view.num
                ));
            }
        }
        for what in wrong {
            self.invariants.violate(format!(
                "S2: {to:?} received a cluster map (epoch {}) from {from:?}: {what}",
                map.epoch
            ));
        }
    }

    /// Agreement (Q3): a view a server or a coordinator receives from a view-service node is
    /// the view the committed history holds for that number.
    fn check_offered_view(&mut self, to: NodeId, from: NodeId, msg: &Message) {
        if !matches!(from, NodeId::Vs(_)) {
            return;
        }
        let (Message::PingReply(ViewReply {
            group,
            view: Some(view),
            ..
        })
        | Message::ViewReply(ViewReply {
            group,
            view: Some(view),
            ..
        })) = msg
        else {
            return;
        };
        let committed = match self.committed_views.get(&(*group, view.num)) {
            Some(ViewEvent::NewView { view, .. }) => Some(view),
            _ => None,
        };
        if committed != Some(view) {
            let what = format!(
                "Q3: {to:?} received view {} = {view:?} from {from:?}, but the committed view {} is {committed:?}",
                view.num, view.num
            );
            self.invariants.violate(what);
        }
    }

    /// Q4 and V3 on a declaration of death by view-service node `vs`, leader since
    /// `since_ms`, decided at `at_ms`.
    ///
    /// Q4: a new leader gives every member a full detection period from its election, so no
    /// member is declared silent sooner than that after it (whatever the member did).
    ///
    /// V3: the view service declares a server dead only for silence while it was running. A
    /// server that was up, unpaused and connected to the view service (both directions, at the
    /// normal delay) for the whole detection window of the leader's running time, counted from
    /// the later of its last disruption and the leader's election, was never silent: declaring
    /// it dead is a violation. The window allows for finding the new leader (Q2: a server moves
    /// on from an unanswering node after a few pings, possibly through every node).
    fn check_declared_dead(
        &mut self,
        cause: &ViewChangeCause,
        vs: usize,
        since_ms: u64,
        at_ms: u64,
    ) {
        if !matches!(
            cause.failure(),
            Some(Failure::MissedPings { .. } | Failure::NeverPinged)
        ) {
            return;
        }
        let dead_after_ms = self.config.view_service.dead_after_ms();
        if at_ms.saturating_sub(since_ms) < dead_after_ms {
            self.invariants.violate(format!(
                "Q4: vs{} declared {} silent ({cause}) {} ms after it started leading, \
                 before a full detection period of {dead_after_ms} ms",
                vs + 1,
                cause.server(),
                at_ms.saturating_sub(since_ms)
            ));
        }
        let Some(&i) = self.by_id.get(cause.server()) else {
            return;
        };
        let slot = &self.servers[i];
        // After an election, a server may need to try every node before it finds the leader.
        let locate_ms = (u64::from(MAX_UNANSWERED) + 1)
            * self.config.replica.ping_interval_ms
            * self.vs.len() as u64;
        let from_ms = slot.disrupted_at_ms.max(since_ms + locate_ms).min(at_ms);
        let healthy_for_ms = (slot.replica.is_some() && slot.paused_until_ms <= self.now_ms)
            .then(|| at_ms.saturating_sub(from_ms) - self.vs_paused_ms(vs, from_ms, at_ms));
        let config = &self.config.view_service;
        // Detection takes dead_after_ms; a ping may be in flight for one interval plus the
        // network's delay, and the view service may judge up to a ping interval late.
        let window_ms =
            config.dead_after_ms() + 2 * config.ping_interval_ms + self.config.net.delay_max_ms;
        self.invariants
            .declared_dead(cause, at_ms, healthy_for_ms, window_ms);
    }
}

/// Whether a group whose shard state is `shard` (after the entry at `index` and maybe a few
/// more of the same step) served `slot` at `index`: served now, or frozen by a later entry.
fn served_at(shard: &ShardState, slot: u16, index: OpIndex) -> bool {
    if !shard.sharded || shard.served.contains(slot) {
        return true;
    }
    shard
        .outgoing
        .values()
        .any(|out| out.frozen_at > index && out.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
}

/// The name of server `i` (0-based) of `group`: s1, s2, ... in group 0 (the names of a
/// single-group cluster), g1s1, g1s2, ... in group 1, and so on.
pub fn server_name(group: GroupId, i: usize) -> ServerId {
    if group == GroupId(0) {
        ServerId::new(format!("s{}", i + 1))
    } else {
        ServerId::new(format!("g{}s{}", group.0, i + 1))
    }
}

/// The addresses of `n` view-service nodes: vs1, vs2, ...
pub fn vs_addrs(n: usize) -> Vec<VsAddr> {
    (1..=n).map(|i| VsAddr::new(format!("vs{i}"))).collect()
}

/// Applies one op to a simulated disk; an op the disk cannot take is a violation (the node
/// asked for an impossible write).
fn apply_op(disk: &mut DiskState, op: &DiskOp, invariants: &mut Invariants, vs: usize) {
    if let Err(e) = disk.apply(op) {
        invariants.violate(format!(
            "Q5: vs{} wrote an op its disk refused: {e}",
            vs + 1
        ));
    }
}

// ---- test helpers ----
//
// Kept apart from the driving code above: scenario tests use these to ask one chosen server
// something directly, which the clerks never do on their own.
impl Cluster {
    /// Test helper: hands `msg` to server `server` at once, as if client session `client` had
    /// sent it (no network delay, loss or partition), and returns what the server sent back to
    /// that client in response. Everything else it sent travels through the network as usual,
    /// and answers are checked by the same invariants as answers that travel.
    ///
    /// A crashed server answers nothing. The server must not be paused (send through the
    /// network to model that).
    pub fn deliver_from_client(
        &mut self,
        client: usize,
        server: usize,
        msg: Message,
    ) -> Vec<Message> {
        assert!(
            self.servers[server].paused_until_ms <= self.now_ms,
            "deliver_from_client to paused server {server}"
        );
        let from = self.endpoint(NodeId::Client(client));
        let now = self.server_now(server);
        let Some(replica) = self.servers[server].replica.as_mut() else {
            return Vec::new();
        };
        replica.handle(now, from.clone(), msg);
        self.after_server_capturing(server, Some(&from))
    }
}
