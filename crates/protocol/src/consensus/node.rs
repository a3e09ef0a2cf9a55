//! One node of the replicated view service: raft-rs's `RawNode` with the view table as its
//! state machine, driven by the core contract like every other core (crate documentation).
//!
//! Extra inputs and outputs, beyond `handle`/`handle_timeout`/`poll_transmit`/`poll_timeout`:
//! - [`ViewServiceNode::poll_persist`]: writes the driver must make durable (and sync) before it
//!   calls [`ViewServiceNode::persisted`]. Raft messages that promise something about this
//!   node's disk (votes, append acknowledgements) wait for it (Q5).
//! - [`ViewServiceNode::poll_event`]: what happened (a decision applied, a role change, a
//!   commit latency), for logs and metrics.
//!
//! Rules (docs/PROTOCOL.md):
//! - Q1: the view table is the Raft state machine; only the leader runs the decision logic.
//! - Q2: a node that does not lead answers pings and view queries with the leader it knows.
//! - Q3: a decision is applied, answered and pushed only once committed; a group has at most
//!   one decision in the log uncommitted; the leader decides only after applying every entry of
//!   earlier terms.
//! - Q4: a new leader gives every member a full detection period from its election.
//! - Q5: votes and log entries are acted upon only once durable; membership changes go
//!   through the log one at a time.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfState, Entry, EntryType, Message as RaftMessage, Snapshot,
};
use raft::{RawNode, StateRole};
use serde::{Deserialize, Serialize};

use super::disk::{DiskOp, DiskState, Persist};
use super::storage::LogStore;
use crate::bug::Bug;
use crate::config::{ConfigError, ViewServiceConfig, check};
use crate::ids::VsAddr;
use crate::message::{
    Endpoint, MemberChange, MemberStatus, MembersRefusal, Message, NodeStatus, Status, Transmit,
};
use crate::rng::SplitMix64;
use crate::time::Now;
use crate::view_service::{TableError, ViewEvent, ViewService, ViewTable};

/// Most outputs queued before the oldest are dropped (drivers drain after every input).
const MAX_QUEUED: usize = 65_536;
/// Largest Raft message this node accepts or builds an append of (entries are small).
const MAX_RAFT_MESSAGE_BYTES: u64 = 4 << 20;

/// A node's settings.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Raft id, non-zero, unique in the group.
    pub id: u64,
    /// This node's own address, as the others and the servers reach it.
    pub addr: VsAddr,
    /// The initial membership, this node included, used only when the data directory is
    /// empty. A node whose id is not listed starts empty and waits to be added (Q5).
    pub peers: BTreeMap<u64, VsAddr>,
    /// Raft tick.
    pub tick_ms: u64,
    /// Ticks without a leader before a follower campaigns (randomized up to twice this).
    pub election_ticks: usize,
    /// Ticks between the leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// Applied entries between snapshots (log compaction).
    pub snapshot_every: u64,
    /// Seeds this node's election jitter (the simulator sets it; the runtime draws it).
    pub seed: u64,
    /// The decision logic's settings.
    pub view_service: ViewServiceConfig,
}

impl NodeConfig {
    /// A single node: `id` 1 at `addr`, its own whole membership.
    pub fn single(addr: VsAddr) -> NodeConfig {
        NodeConfig {
            id: 1,
            peers: BTreeMap::from([(1, addr.clone())]),
            addr,
            tick_ms: 50,
            election_ticks: 6,
            heartbeat_ticks: 1,
            snapshot_every: 1024,
            seed: 1,
            view_service: ViewServiceConfig::default(),
        }
    }

    /// Rejects values that would make the node unusable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check("id", self.id, 1, u64::MAX)?;
        check("peers", self.peers.len() as u64, 0, 64)?;
        for id in self.peers.keys() {
            check("peers (id)", *id, 1, u64::MAX)?;
        }
        check("raft-tick-ms", self.tick_ms, 1, 10_000)?;
        check("election-ticks", self.election_ticks as u64, 2, 1000)?;
        check(
            "heartbeat-ticks",
            self.heartbeat_ticks as u64,
            1,
            self.election_ticks as u64 - 1,
        )?;
        check("snapshot-every", self.snapshot_every, 16, 10_000_000)?;
        self.view_service.validate()
    }
}

/// The state machine as a snapshot carries it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SnapshotData {
    table: ViewTable,
    members: BTreeMap<u64, VsAddr>,
}

/// The stored state cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A setting is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The stored Raft state does not decode or is inconsistent.
    #[error("stored raft state: {0}")]
    Stored(String),
    /// raft-rs refused the configuration or state.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
}

/// What happened inside the node, for logs and metrics.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeEvent {
    /// A committed decision was applied to the view table.
    Applied(ViewEvent),
    /// A committed decision did not fit the table and was skipped on every node (never happens
    /// unless a leader broke a rule).
    Rejected(TableError),
    /// This node's role, term or known leader changed.
    RoleChanged {
        /// "leader", "candidate", "precandidate" or "follower".
        role: &'static str,
        /// The term.
        term: u64,
        /// The leader's id (0: unknown).
        leader: u64,
    },
    /// One of this leader's proposals was applied this long after it was proposed.
    Committed {
        /// Propose-to-apply latency on this node's monotonic clock.
        latency_ms: u64,
    },
    /// The membership changed (a committed add or remove).
    MembersChanged,
    /// This node found that its log lost entries it had acknowledged (its disk did not keep
    /// what it synced, Q5) and stopped: it ignores every input from now on. The driver stops
    /// the process with this message; the operator wipes the node's data and adds it back.
    Failed(String),
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Times this node started an election (became candidate).
    pub elections: u64,
    /// Times this node became leader.
    pub became_leader: u64,
    /// Decisions and membership changes proposed.
    pub proposals: u64,
    /// Proposals raft refused (not leader any more, a change already in progress).
    pub proposals_dropped: u64,
    /// Committed decisions rejected by the table.
    pub rejected: u64,
    /// Raft messages that did not decode or were not for this node.
    pub bad_messages: u64,
    /// Snapshots built here.
    pub snapshots: u64,
}

/// A request made durable and the raft work waiting for it.
#[derive(Debug)]
struct Inflight {
    /// The persist request, `None` when this ready wrote nothing but must keep its place.
    persist_id: Option<u64>,
    /// The raft ready, `None` for a snapshot of our own.
    ready: Option<u64>,
    /// Messages that may leave only once it is durable.
    held: Vec<RaftMessage>,
}

/// One view-service node.
pub struct ViewServiceNode {
    config: NodeConfig,
    raw: RawNode<LogStore>,
    vs: ViewService,
    members: BTreeMap<u64, VsAddr>,
    applied: u64,
    /// Set on election: the leader decides once it applied this index (its first entry).
    lead_from_index: Option<u64>,
    observed: (u64, StateRole, u64),
    rng: SplitMix64,
    next_tick_ms: Option<u64>,
    last_contact_ms: BTreeMap<u64, u64>,
    /// Addresses of nodes that are not (yet) members, from the messages they sent.
    learned: BTreeMap<u64, VsAddr>,
    outbox: VecDeque<Transmit>,
    persists: VecDeque<Persist>,
    inflight: VecDeque<Inflight>,
    next_persist_id: u64,
    events: VecDeque<NodeEvent>,
    /// This leader's proposals: log index and when proposed.
    proposed_at: VecDeque<(u64, u64)>,
    stats: NodeStats,
    /// Why this node stopped, if it did (see `NodeEvent::Failed`).
    failed: Option<String>,
}

impl std::fmt::Debug for ViewServiceNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewServiceNode")
            .field("id", &self.config.id)
            .field("applied", &self.applied)
            .finish_non_exhaustive()
    }
}

fn role_name(role: StateRole) -> &'static str {
    match role {
        StateRole::Leader => "leader",
        StateRole::Candidate => "candidate",
        StateRole::PreCandidate => "precandidate",
        StateRole::Follower => "follower",
    }
}

fn encode<M: protobuf::Message>(m: &M) -> Bytes {
    Bytes::from(m.write_to_bytes().expect("protobuf encodes what it built"))
}

impl ViewServiceNode {
    /// A node over what its driver read from disk (`DiskState::default()` for an empty
    /// directory, or when it keeps nothing). An empty node listed in `peers` bootstraps the
    /// group; one not listed waits to be added.
    pub fn new(config: NodeConfig, disk: DiskState) -> Result<ViewServiceNode, NodeError> {
        config.validate()?;
        let mut persists = VecDeque::new();
        let (store, data, applied) = if disk.is_empty() {
            let mut store = LogStore::default();
            let mut data = SnapshotData {
                table: ViewTable::new(config.view_service.history_len),
                members: BTreeMap::new(),
            };
            if config.peers.contains_key(&config.id) {
                let cs = ConfState {
                    voters: config.peers.keys().copied().collect(),
                    ..ConfState::default()
                };
                store.set_conf_state(cs.clone());
                data.members = config.peers.clone();
                // Bootstrap: every initial member starts from the same snapshot at index 1, term
                // 1, holding the membership. A node added later has nothing at index 1, so the
                // leader sends it a snapshot (with the members) rather than the log from 1.
                let mut snapshot = Snapshot {
                    data: Bytes::from(postcard::to_allocvec(&data).expect("a snapshot serializes")),
                    ..Snapshot::default()
                };
                let meta = snapshot.mut_metadata();
                meta.index = 1;
                meta.term = 1;
                meta.set_conf_state(cs);
                store.apply_snapshot(snapshot.clone());
                persists.push_back(Persist {
                    id: 1,
                    ops: vec![
                        DiskOp::Snapshot {
                            index: 1,
                            term: 1,
                            snapshot: encode(&snapshot),
                        },
                        DiskOp::HardState {
                            term: 1,
                            vote: 0,
                            commit: 1,
                        },
                    ],
                    sync: true,
                });
                (store, data, 1)
            } else {
                (store, data, 0)
            }
        } else {
            let store = LogStore::recover(&disk).map_err(|e| NodeError::Stored(e.to_string()))?;
            let snapshot = store.latest_snapshot();
            let data = if snapshot.data.is_empty() {
                SnapshotData {
                    table: ViewTable::new(config.view_service.history_len),
                    members: BTreeMap::new(),
                }
            } else {
                postcard::from_bytes(&snapshot.data)
                    .map_err(|e| NodeError::Stored(format!("snapshot data: {e}")))?
            };
            let applied = snapshot.get_metadata().index;
            (store, data, applied)
        };
        let raft_config = raft::Config {
            id: config.id,
            election_tick: config.election_ticks,
            heartbeat_tick: config.heartbeat_ticks,
            min_election_tick: config.election_ticks,
            max_election_tick: config.election_ticks * 2,
            applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            ..raft::Config::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let single = store.conf_state().voters == [config.id];
        let raw = RawNode::new(&raft_config, store, &logger)?;
        let vs = ViewService::replicated(config.view_service.clone(), data.table);
        let next_persist_id = persists.len() as u64 + 1;
        let inflight = persists
            .iter()
            .map(|p| Inflight {
                persist_id: Some(p.id),
                ready: None,
                held: Vec::new(),
            })
            .collect();
        let mut node = ViewServiceNode {
            rng: SplitMix64::new(config.seed ^ config.id.rotate_left(17)),
            config,
            raw,
            vs,
            members: data.members,
            applied,
            lead_from_index: None,
            observed: (0, StateRole::Follower, 0),
            next_tick_ms: None,
            last_contact_ms: BTreeMap::new(),
            learned: BTreeMap::new(),
            outbox: VecDeque::new(),
            persists,
            inflight,
            next_persist_id,
            events: VecDeque::new(),
            proposed_at: VecDeque::new(),
            stats: NodeStats::default(),
            failed: None,
        };
        node.rearm_election();
        if single {
            // Alone in the group: no reason to wait an election timeout.
            node.raw.campaign()?;
        }
        Ok(node)
    }

    // ---- inputs ----

    /// Handles one message: Raft traffic from another node, a server's ping, a coordinator's
    /// view query, an operator's status query or membership change.
    pub fn handle(&mut self, now: Now, from: Endpoint, msg: Message) {
        if self.failed.is_some() {
            return;
        }
        match msg {
            Message::Raft(bytes) => self.on_raft(now, from, bytes),
            Message::GetStatus {} => {
                let status = self.status(now);
                self.send(from, Message::StatusReply(status));
            }
            Message::Ping(_) | Message::GetView { .. } | Message::GetCluster { .. } => {
                if self.vs.is_deciding() {
                    self.vs.handle(now, from, msg);
                    self.drain_view_service(now);
                } else {
                    let leader = self.leader_addr();
                    self.send(from, Message::NotLeader { leader });
                }
            }
            Message::ChangeMembers(change) => {
                let reply = if self.vs.is_deciding() {
                    self.propose_change(now, change)
                } else {
                    Err(MembersRefusal::NotLeader {
                        leader: self.leader_addr(),
                    })
                };
                self.send(from, Message::MembersReply(reply));
            }
            Message::ChangeSlots(_) => {
                if self.vs.is_deciding() {
                    // S3: checked against the applied table and proposed, like a view.
                    self.vs.handle(now, from, msg);
                    self.drain_view_service(now);
                } else {
                    let leader = self.leader_addr();
                    self.send(
                        from,
                        Message::SlotsReply(Err(MembersRefusal::NotLeader { leader })),
                    );
                }
            }
            Message::ClusterReply(_)
            | Message::SlotData(_)
            | Message::SlotDataReply(_)
            | Message::SlotsReply(_)
            | Message::PingReply(_)
            | Message::ViewReply(_)
            | Message::Request(_)
            | Message::Response(_)
            | Message::Forward(_)
            | Message::ForwardReply(_)
            | Message::Transfer(_)
            | Message::TransferReply(_)
            | Message::StatusReply(_)
            | Message::NotLeader { .. }
            | Message::MembersReply(_) => {}
        }
        self.process(now);
    }

    /// Timers: one Raft tick when due (a stall of this node never counts as more than one tick,
    /// like the view service's running clock, V3), and the view service's judgment (leader).
    pub fn handle_timeout(&mut self, now: Now) {
        if self.failed.is_some() {
            return;
        }
        let tick_due = self.next_tick_ms.is_none_or(|at| now.mono_ms >= at);
        if tick_due {
            self.next_tick_ms = Some(now.mono_ms + self.config.tick_ms);
            self.raw.tick();
            self.process(now);
        }
        if self.vs.is_deciding()
            && self.hears_quorum(now)
            && self.vs.poll_timeout().is_some_and(|at| now.mono_ms >= at)
        {
            self.vs.handle_timeout(now);
            self.drain_view_service(now);
            self.process(now);
        }
    }

    /// The driver made persist request `id` (and every earlier one) durable.
    pub fn persisted(&mut self, now: Now, id: u64) {
        if self.failed.is_some() {
            return;
        }
        while let Some(front) = self.inflight.front() {
            if front.persist_id.is_some_and(|p| p > id) {
                break;
            }
            let done = self.inflight.pop_front().expect("front exists");
            if let Some(number) = done.ready {
                self.raw.on_persist_ready(number);
                self.sync_applied();
            }
            self.send_raft(done.held);
        }
        self.process(now);
    }

    // ---- outputs ----

    /// When `handle_timeout` is due (monotonic ms).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        let tick = self.next_tick_ms.unwrap_or(0);
        // Out of touch with a quorum, the leader does not judge (Q4); the next tick rechecks.
        let judge = if self.vs.is_deciding() {
            let heard_until = self.quorum_heard_until_ms();
            self.vs.poll_timeout().filter(|at| *at < heard_until)
        } else {
            None
        };
        Some(judge.map_or(tick, |j| j.min(tick)))
    }

    /// The next message to send.
    #[must_use]
    pub fn poll_transmit(&mut self, _now: Now) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next write to make durable, then report with `persisted`.
    #[must_use]
    pub fn poll_persist(&mut self) -> Option<Persist> {
        self.persists.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    // ---- accessors ----

    /// Until when (monotonic ms) this node has heard from a quorum: a majority of the members,
    /// itself included, each sent it a Raft message within the last half detection period (or
    /// election timeout, if shorter). A leader judges servers' silence only until then (Q4): a
    /// leader cut off from the other nodes may well be cut off from the servers too, and what it
    /// would take for their silence is its own isolation; with half a detection period it stops
    /// before any server can look dead. Raft's quorum check deposes such a leader soon after.
    /// Pausing judgment is always safe: it only delays a failover.
    fn quorum_heard_until_ms(&self) -> u64 {
        let window = (self.config.election_ticks as u64 * self.config.tick_ms)
            .min(self.config.view_service.dead_after_ms() / 2);
        let mut heard: Vec<u64> = self
            .members
            .keys()
            .map(|id| {
                if *id == self.config.id {
                    u64::MAX
                } else {
                    self.last_contact_ms.get(id).map_or(0, |at| at + window)
                }
            })
            .collect();
        if heard.is_empty() {
            return u64::MAX;
        }
        // The time the majority-th most recent contact expires.
        heard.sort_unstable_by(|a, b| b.cmp(a));
        heard[heard.len() / 2]
    }

    fn hears_quorum(&self, now: Now) -> bool {
        self.quorum_heard_until_ms() > now.mono_ms
    }

    /// Why this node stopped, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Raft id.
    pub fn id(&self) -> u64 {
        self.config.id
    }

    /// Whether this node leads and has applied everything of earlier terms (it decides).
    pub fn is_leader(&self) -> bool {
        self.vs.is_deciding()
    }

    /// Current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The leader this node knows of (0: none).
    pub fn leader_id(&self) -> u64 {
        self.raw.raft.leader_id
    }

    /// The applied view table.
    pub fn table(&self) -> &ViewTable {
        self.vs.table()
    }

    /// The decision logic (liveness is known only on the leader).
    pub fn view_service(&self) -> &ViewService {
        &self.vs
    }

    /// The membership as applied.
    pub fn members(&self) -> &BTreeMap<u64, VsAddr> {
        &self.members
    }

    /// Highest applied index.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Counters.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// This node's part of a status.
    pub fn node_status(&self, now: Now) -> NodeStatus {
        let raft = &self.raw.raft;
        NodeStatus {
            id: self.config.id,
            addr: self.config.addr.to_string(),
            role: role_name(raft.state).to_owned(),
            term: raft.term,
            leader: raft.leader_id,
            commit: raft.raft_log.committed,
            applied: self.applied,
            last_index: raft.raft_log.last_index(),
            log_entries: self.raw.store().len() as u64,
            members: self
                .members
                .iter()
                .map(|(id, addr)| MemberStatus {
                    id: *id,
                    addr: addr.to_string(),
                    last_contact_ago_ms: if *id == self.config.id {
                        Some(0)
                    } else {
                        self.last_contact_ms
                            .get(id)
                            .map(|at| now.mono_ms.saturating_sub(*at))
                    },
                })
                .collect(),
        }
    }

    /// The status operators see: the applied table (with ping health on the leader) and this
    /// node's Raft state.
    pub fn status(&self, now: Now) -> Status {
        let mut status = self.vs.status(now);
        status.node = Some(self.node_status(now));
        status
    }

    // ---- internals ----

    fn leader_addr(&self) -> Option<VsAddr> {
        match self.raw.raft.leader_id {
            0 => None,
            id => self.members.get(&id).cloned(),
        }
    }

    fn send(&mut self, to: Endpoint, msg: Message) {
        self.outbox.push_back(Transmit { to, msg });
        while self.outbox.len() > MAX_QUEUED {
            self.outbox.pop_front();
        }
    }

    fn send_raft(&mut self, msgs: Vec<RaftMessage>) {
        for m in msgs {
            // Members by the applied membership; a node that joins knows nobody yet, so it
            // answers at the address the sender's messages came from.
            let addr = self
                .members
                .get(&m.to)
                .or_else(|| self.config.peers.get(&m.to))
                .or_else(|| self.learned.get(&m.to))
                .cloned();
            let Some(addr) = addr else {
                continue;
            };
            self.send(Endpoint::ViewService(addr), Message::Raft(encode(&m)));
        }
    }

    fn on_raft(&mut self, now: Now, from: Endpoint, bytes: Bytes) {
        if bytes.len() as u64 > MAX_RAFT_MESSAGE_BYTES + 4096 {
            self.stats.bad_messages += 1;
            return;
        }
        let Ok(m) = RaftMessage::parse_from_bytes(&bytes) else {
            self.stats.bad_messages += 1;
            return;
        };
        if m.to != self.config.id || m.from == 0 || m.from == self.config.id {
            self.stats.bad_messages += 1;
            return;
        }
        if !self.sender_matches(&from, m.from) || !self.plausible(&m) {
            self.stats.bad_messages += 1;
            return;
        }
        self.last_contact_ms.insert(m.from, now.mono_ms);
        if let Endpoint::ViewService(addr) = from
            && !self.members.contains_key(&m.from)
            && (self.learned.len() < 64 || self.learned.contains_key(&m.from))
        {
            self.learned.insert(m.from, addr);
        }
        if self.last_contact_ms.len() > 1024 {
            let members = &self.members;
            self.last_contact_ms
                .retain(|id, _| members.contains_key(id));
        }
        if let Some(why) = self.lost_acknowledged(&m) {
            self.fail(why);
            return;
        }
        // Errors are messages raft will not take (a stranger, a stale term): dropping them is
        // what a lost message would do.
        let _ = self.raw.step(m);
    }

    /// Q6: a Raft message claiming to come from member `raft_id` must come from that member's
    /// address (the transport binds `from` to the connection's identity). A node not (yet) a
    /// member is taken at its word: it may be a node being added (Q5).
    fn sender_matches(&self, from: &Endpoint, raft_id: u64) -> bool {
        let Endpoint::ViewService(addr) = from else {
            return false;
        };
        self.members
            .get(&raft_id)
            .is_none_or(|member| member == addr)
    }

    /// Q6: refuses what no correct node sends and raft-rs would panic on or be corrupted by:
    /// term 0 and terms and indexes near the end of the number range (raft-rs adds to them
    /// unchecked), an
    /// append whose entries do not follow its index one at a time with terms between its
    /// `log_term` and its term (raft-rs slices its log by their positions), and an append
    /// answer acknowledging entries past the end of our log (raft-rs would then send from
    /// there and panic slicing its log), raft-rs's local message types (it asserts on them),
    /// a leadership hand-over from anyone but our leader, and a snapshot whose state does not
    /// decode.
    fn plausible(&self, m: &RaftMessage) -> bool {
        use raft::eraftpb::MessageType;
        const ABSURD: u64 = 1 << 62;
        let snapshot = m.get_snapshot().get_metadata();
        // raft-rs takes a message with term 0 for a local one, and asserts when it answers it.
        if m.term == 0 {
            return false;
        }
        if [m.term, m.log_term, m.index, m.commit, m.reject_hint]
            .into_iter()
            .chain([snapshot.index, snapshot.term])
            .any(|n| n >= ABSURD)
        {
            return false;
        }
        match m.get_msg_type() {
            MessageType::MsgAppend => {
                // raft-rs answers term 0 for any index past its log, so `log_term` 0 would
                // "match" a position we do not have; only the empty log's index 0 has term 0.
                if m.log_term == 0 && m.index != 0 {
                    return false;
                }
                let mut before = (m.index, m.log_term);
                for e in m.entries.iter() {
                    if e.index != before.0 + 1 || e.term < before.1.max(1) || e.term > m.term {
                        return false;
                    }
                    before = (e.index, e.term);
                }
                true
            }
            MessageType::MsgAppendResponse => {
                m.reject || m.index <= self.raw.raft.raft_log.last_index()
            }
            // Only the leader hands leadership over (Q5); raft-rs would campaign for anyone.
            MessageType::MsgTimeoutNow => {
                m.from == self.raw.raft.leader_id && m.term == self.raw.raft.term
            }
            MessageType::MsgHeartbeat
            | MessageType::MsgHeartbeatResponse
            | MessageType::MsgRequestVote
            | MessageType::MsgRequestVoteResponse
            | MessageType::MsgRequestPreVote
            | MessageType::MsgRequestPreVoteResponse => true,
            // A snapshot whose state does not decode would be stored by raft-rs but never
            // applied here, leaving raft's log behind its storage (raft-rs then panics slicing
            // it at the next election).
            MessageType::MsgSnapshot => {
                let snapshot = m.get_snapshot();
                !snapshot.get_metadata().get_conf_state().voters.is_empty()
                    && postcard::from_bytes::<SnapshotData>(&snapshot.data).is_ok()
            }
            // Local inputs of raft-rs (it asserts on some coming with a term), and what this
            // service never sends between nodes: proposals are made on the leader only, and
            // neither read-index nor forwarded transfer requests are used.
            MessageType::MsgHup
            | MessageType::MsgBeat
            | MessageType::MsgPropose
            | MessageType::MsgUnreachable
            | MessageType::MsgSnapStatus
            | MessageType::MsgCheckQuorum
            | MessageType::MsgTransferLeader
            | MessageType::MsgReadIndex
            | MessageType::MsgReadIndexResp => false,
        }
    }

    /// Whether `m`, from the leader of our term, shows that this node lost log entries it had
    /// acknowledged: the leader says an index beyond our log is committed, or sends an entry
    /// that contradicts one we hold as committed. Only a disk that lost synced writes (or a
    /// peer that lies) gets here; raft-rs would panic on it.
    fn lost_acknowledged(&self, m: &RaftMessage) -> Option<String> {
        use raft::eraftpb::MessageType;
        let log = &self.raw.raft.raft_log;
        // A newer term's leader is followed first and then heard the same way.
        if m.term < self.raw.raft.term {
            return None;
        }
        match m.get_msg_type() {
            MessageType::MsgHeartbeat if m.commit > log.last_index() => Some(format!(
                "node {}: leader {} says index {} is committed but this node's log ends at {}: \
                 its disk lost entries it had acknowledged",
                self.config.id,
                m.from,
                m.commit,
                log.last_index()
            )),
            MessageType::MsgAppend => m
                .entries
                .iter()
                .filter(|e| e.index <= log.committed)
                .find(|e| log.term(e.index).is_ok_and(|t| t != 0 && t != e.term))
                .map(|e| {
                    format!(
                        "node {}: leader {} sends entry {} of term {} where this node committed \
                         another: its disk lost entries it had acknowledged",
                        self.config.id, m.from, e.index, e.term
                    )
                }),
            _ => None,
        }
    }

    fn fail(&mut self, why: String) {
        self.failed = Some(why.clone());
        self.outbox.clear();
        self.persists.clear();
        self.events.push_back(NodeEvent::Failed(why));
    }

    /// Moves the decision logic's outputs out: answers, pushes and proposals.
    fn drain_view_service(&mut self, now: Now) {
        while let Some(t) = self.vs.poll_transmit(now) {
            self.send(t.to, t.msg);
        }
        while let Some(event) = self.vs.poll_proposal() {
            let data = postcard::to_allocvec(&event).expect("a decision serializes");
            match self.raw.propose(Vec::new(), data) {
                Ok(()) => {
                    self.stats.proposals += 1;
                    let index = self.raw.raft.raft_log.last_index();
                    self.proposed_at.push_back((index, now.mono_ms));
                    while self.proposed_at.len() > MAX_QUEUED {
                        self.proposed_at.pop_front();
                    }
                }
                Err(_) => {
                    self.stats.proposals_dropped += 1;
                    // Not leading any more: `process` sees the role change and steps down.
                }
            }
        }
    }

    fn propose_change(&mut self, now: Now, change: MemberChange) -> Result<(), MembersRefusal> {
        let mut cc = ConfChange::default();
        match change {
            MemberChange::Add { id, addr } => {
                if id == 0 {
                    return Err(MembersRefusal::Invalid(
                        "node id 0 is not allowed".to_owned(),
                    ));
                }
                if self.members.contains_key(&id) {
                    return Err(MembersRefusal::Invalid(format!(
                        "node {id} is already a member"
                    )));
                }
                if addr.as_str().is_empty() || addr.as_str().len() > 256 {
                    return Err(MembersRefusal::Invalid(
                        "the address must be 1 to 256 bytes".to_owned(),
                    ));
                }
                cc.set_change_type(ConfChangeType::AddNode);
                cc.node_id = id;
                cc.context = Bytes::from(addr.as_str().as_bytes().to_vec());
            }
            MemberChange::Remove { id } => {
                if !self.members.contains_key(&id) {
                    return Err(MembersRefusal::Invalid(format!(
                        "node {id} is not a member"
                    )));
                }
                if self.members.len() == 1 {
                    return Err(MembersRefusal::Invalid(
                        "the last member cannot be removed".to_owned(),
                    ));
                }
                if id == self.config.id {
                    // A leader does not remove itself: it hands leadership to the most
                    // up-to-date other member, which then takes the request.
                    let target = self
                        .raw
                        .raft
                        .prs()
                        .iter()
                        .filter(|(pid, _)| **pid != id)
                        .max_by_key(|(pid, pr)| (pr.matched, std::cmp::Reverse(**pid)))
                        .map(|(pid, _)| *pid);
                    if let Some(target) = target {
                        self.raw.transfer_leader(target);
                        self.process(now);
                        return Err(MembersRefusal::HandingOver { to: target });
                    }
                    return Err(MembersRefusal::Invalid(
                        "no other member to hand leadership to".to_owned(),
                    ));
                }
                cc.set_change_type(ConfChangeType::RemoveNode);
                cc.node_id = id;
            }
        }
        let result = self.raw.propose_conf_change(Vec::new(), cc).map_err(|e| {
            MembersRefusal::Invalid(format!(
                "the change was refused: {e} (one change at a time)"
            ))
        });
        if result.is_ok() {
            self.stats.proposals += 1;
            let index = self.raw.raft.raft_log.last_index();
            self.proposed_at.push_back((index, now.mono_ms));
        }
        self.process(now);
        result
    }

    /// Handles every raft `Ready`: sends, persists, applies.
    fn process(&mut self, now: Now) {
        while self.raw.has_ready() {
            let mut rd = self.raw.ready();
            let msgs = rd.take_messages();
            self.send_raft(msgs);
            let mut ops = Vec::new();
            if !rd.snapshot().is_empty() {
                let snapshot = rd.snapshot().clone();
                self.install(&snapshot);
                ops.push(DiskOp::Snapshot {
                    index: snapshot.get_metadata().index,
                    term: snapshot.get_metadata().term,
                    snapshot: encode(&snapshot),
                });
                self.raw.mut_store().apply_snapshot(snapshot);
            }
            if !rd.entries().is_empty() {
                let entries = rd.entries();
                ops.push(DiskOp::Entries {
                    first_index: entries[0].index,
                    entries: entries.iter().map(encode).collect(),
                });
                let entries = entries.clone();
                self.raw.mut_store().append(&entries);
            }
            if let Some(hs) = rd.hs() {
                ops.push(DiskOp::HardState {
                    term: hs.term,
                    vote: hs.vote,
                    commit: hs.commit,
                });
                let hs = hs.clone();
                self.raw.mut_store().set_hard_state(hs);
            }
            let committed = rd.take_committed_entries();
            self.apply_entries(now, committed);
            let held = rd.take_persisted_messages();
            let number = rd.number();
            self.raw.advance_append_async(rd);
            self.sync_applied();
            let skip_sync = self.config.view_service.bugs.has(Bug::VsSkipsSync);
            if skip_sync {
                // Planted: acts as if durable at once, and never asks for a sync (Q5).
                if !ops.is_empty() {
                    self.queue_persist(ops, false);
                }
                self.raw.on_persist_ready(number);
                self.sync_applied();
                self.send_raft(held);
            } else if ops.is_empty() && self.inflight.is_empty() {
                self.raw.on_persist_ready(number);
                self.sync_applied();
                self.send_raft(held);
            } else {
                let persist_id = (!ops.is_empty()).then(|| self.queue_persist(ops, true));
                self.inflight.push_back(Inflight {
                    persist_id,
                    ready: Some(number),
                    held,
                });
            }
        }
        self.observe_role(now);
        self.maybe_snapshot();
    }

    /// Tells raft how far the state machine applied, within what raft allows: a snapshot
    /// installed is applied before it is durable, but raft hears of it only once it is.
    fn sync_applied(&mut self) {
        let log = &self.raw.raft.raft_log;
        let target = self.applied.min(log.persisted).min(log.committed);
        if target > log.applied {
            self.raw.advance_apply_to(target);
        }
    }

    fn queue_persist(&mut self, ops: Vec<DiskOp>, sync: bool) -> u64 {
        let id = self.next_persist_id;
        self.next_persist_id += 1;
        self.persists.push_back(Persist { id, ops, sync });
        id
    }

    fn install(&mut self, snapshot: &Snapshot) {
        let data: SnapshotData = match postcard::from_bytes(&snapshot.data) {
            Ok(data) => data,
            Err(_) => {
                // Built by a leader of this group with this code: a failure here is a bug, not
                // an input to survive. Count it and keep the old table rather than panic.
                self.stats.bad_messages += 1;
                return;
            }
        };
        self.vs.restore(data.table);
        self.members = data.members;
        self.applied = snapshot.get_metadata().index;
        self.events.push_back(NodeEvent::MembersChanged);
    }

    fn apply_entries(&mut self, now: Now, entries: Vec<Entry>) {
        for entry in entries {
            if entry.index <= self.applied {
                continue;
            }
            match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => {}
                EntryType::EntryNormal => match postcard::from_bytes::<ViewEvent>(&entry.data) {
                    Ok(event) => match self.vs.apply_committed(&event) {
                        Ok(()) => {}
                        Err(e) => {
                            self.stats.rejected += 1;
                            self.events.push_back(NodeEvent::Rejected(e));
                        }
                    },
                    Err(_) => self.stats.rejected += 1,
                },
                EntryType::EntryConfChange => {
                    if let Ok(cc) = ConfChange::parse_from_bytes(&entry.data) {
                        self.apply_conf_change(&cc);
                    }
                }
                EntryType::EntryConfChangeV2 => {}
            }
            self.applied = entry.index;
            while let Some(&(index, at)) = self.proposed_at.front() {
                if index > entry.index {
                    break;
                }
                self.proposed_at.pop_front();
                if index == entry.index {
                    self.events.push_back(NodeEvent::Committed {
                        latency_ms: now.mono_ms.saturating_sub(at),
                    });
                }
            }
        }
        while let Some(event) = self.vs.poll_event() {
            self.events.push_back(NodeEvent::Applied(event));
        }
        while self.events.len() > MAX_QUEUED {
            self.events.pop_front();
        }
        // Only the answers and pushes: this runs between raft-rs's `ready` and `advance`,
        // where proposing is not allowed (a committed decision proposes nothing by itself).
        while let Some(t) = self.vs.poll_transmit(now) {
            self.send(t.to, t.msg);
        }
    }

    fn apply_conf_change(&mut self, cc: &ConfChange) {
        let Ok(cs) = self.raw.apply_conf_change(cc) else {
            return;
        };
        match cc.get_change_type() {
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                if let Ok(addr) = std::str::from_utf8(&cc.context) {
                    self.members.insert(cc.node_id, VsAddr::new(addr));
                }
            }
            ConfChangeType::RemoveNode => {
                self.members.remove(&cc.node_id);
            }
        }
        self.raw.mut_store().set_conf_state(cs);
        self.events.push_back(NodeEvent::MembersChanged);
    }

    /// Follows role changes: re-draws the election jitter, and starts or stops the decision
    /// logic (Q3, Q4).
    fn observe_role(&mut self, now: Now) {
        let raft = &self.raw.raft;
        let observed = (raft.term, raft.state, raft.leader_id);
        if observed != self.observed {
            let (term, state, leader) = observed;
            let (old_term, old_state, _) = self.observed;
            self.observed = observed;
            if state != old_state || term != old_term {
                self.rearm_election();
            }
            if state == StateRole::Candidate && old_state != StateRole::Candidate {
                self.stats.elections += 1;
            }
            if state == StateRole::Leader && old_state != StateRole::Leader {
                self.stats.became_leader += 1;
                self.lead_from_index = Some(self.raw.raft.raft_log.last_index());
            }
            if state != StateRole::Leader {
                self.lead_from_index = None;
                self.vs.follow();
                self.proposed_at.clear();
            }
            self.events.push_back(NodeEvent::RoleChanged {
                role: role_name(state),
                term,
                leader,
            });
        }
        if let Some(index) = self.lead_from_index
            && self.applied >= index
            && !self.vs.is_deciding()
        {
            self.vs.lead(now);
            self.drain_view_service(now);
        }
    }

    /// Our own draw of the randomized election timeout (raft-rs draws one from the thread's
    /// generator; the simulator must replay it from its seed).
    fn rearm_election(&mut self) {
        let min = self.config.election_ticks as u64;
        let timeout = min + self.rng.below(min);
        self.raw
            .raft
            .set_randomized_election_timeout(timeout as usize);
    }

    /// Builds a snapshot of the applied table when raft needs one for a follower, or when the
    /// log grew by `snapshot_every` entries since the last one (compaction).
    fn maybe_snapshot(&mut self) {
        let store = self.raw.store();
        let snap_index = store.latest_snapshot().get_metadata().index;
        let wanted = store.snapshot_wanted() && self.applied > snap_index;
        if !wanted && self.applied < snap_index + self.config.snapshot_every {
            return;
        }
        let Ok(term) = raft::Storage::term(store, self.applied) else {
            return;
        };
        let data = SnapshotData {
            table: self.vs.table().clone(),
            members: self.members.clone(),
        };
        let mut snapshot = Snapshot {
            data: Bytes::from(postcard::to_allocvec(&data).expect("a snapshot serializes")),
            ..Snapshot::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = self.applied;
        meta.term = term;
        meta.set_conf_state(store.conf_state().clone());
        let keep = (self.config.snapshot_every / 4) as usize;
        let op = DiskOp::Snapshot {
            index: self.applied,
            term,
            snapshot: encode(&snapshot),
        };
        self.raw.mut_store().compact(snapshot, keep);
        self.stats.snapshots += 1;
        let id = self.queue_persist(vec![op], true);
        self.inflight.push_back(Inflight {
            persist_id: Some(id),
            ready: None,
            held: Vec::new(),
        });
    }
}
