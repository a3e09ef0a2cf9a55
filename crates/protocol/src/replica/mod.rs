//! The replica (server) core: rules P1-P8.
//!
//! It is driven like every core (see the crate documentation): [`Replica::handle`] every
//! message received, [`Replica::handle_timeout`] when [`Replica::poll_timeout`] is due (calling
//! it early is harmless), and after a batch of inputs drain [`Replica::poll_transmit`] until it
//! returns `None`. Forwards to backups are built there, so every operation that arrived in the
//! batch travels in one frame (group commit).
//!
//! # Roles
//! The replica acts only in the view it last heard from the view service (P1). As primary it
//! orders operations, applies them, forwards them to every backup and answers a request only when
//! every counted backup holds its operation (P2, P4). As backup it applies forwarded entries that
//! extend its history, and only from the primary of its own view (P3).

mod backup;
mod moves;
mod primary;
mod shard;
mod state;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use tandem_kv::{Command, EvictionPolicy, Reply};

pub use shard::{Incoming, Outgoing, ShardState};
pub use state::{RecentLog, ReplicatedState};

use crate::bug::Bug;
use crate::config::ReplicaConfig;
use crate::ids::{ClientId, GroupId, Incarnation, LogPos, OpIndex, Seq, ServerId, ViewNum, VsAddr};
use crate::locator::{DEFAULT_VIEW_SERVICE, Locator};
use crate::message::{
    Endpoint, ForwardReply, ForwardResult, LogEntry, Message, Op, Ping, Request, RequestError,
    Response, TransferReply, Transmit, ViewReply,
};
use crate::rng::SplitMix64;
use crate::shard::ClusterMap;
use crate::time::Now;
use crate::view::View;
use primary::{
    Outbound, OutgoingTransfer, PrimaryState, Progress, ReplyCheck, TransferStep, Waiters, Waiting,
};

/// The role a replica plays in the view it knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleKind {
    /// In no view (V9), or no view yet.
    Idle,
    /// Backup of the known view.
    Backup,
    /// Primary of the known view.
    Primary,
}

#[derive(Debug)]
enum Role {
    Idle,
    Backup,
    Primary(Box<PrimaryState>),
}

/// Counters for operators and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStats {
    /// Entries applied (as primary or backup).
    pub applied: u64,
    /// Forward frames sent.
    pub forwards_sent: u64,
    /// Entries carried by those frames.
    pub forwarded_entries: u64,
    /// State transfers started as primary.
    pub transfers_started: u64,
    /// State transfers completed as primary.
    pub transfers_completed: u64,
    /// State transfers put off because one started to the same backup less than a retransmit
    /// interval before (P10).
    pub transfers_deferred: u64,
    /// View-service replies ignored: not from a view-service node this server knows, or for a
    /// view no correct view service makes (P11).
    pub views_refused: u64,
    /// Requests refused because this server is not primary (P1).
    pub wrong_server: u64,
    /// Forwards rejected as backup (P3).
    pub forwards_rejected: u64,
    /// Messages from peers ignored because no correct peer sends them (a forward whose entries
    /// do not follow one another, a transfer installed at another position than its
    /// snapshot...). A peer's bytes never panic a server: they are checked and counted here.
    pub protocol_errors: u64,
    /// Keys this server evicted as primary to get under `maxmemory` (L12).
    pub evicted_keys: u64,
    /// Requests refused because a slot they touch is not served here (S4).
    pub slot_refused: u64,
    /// Slot chunks sent as the giver's primary (S5), resends included.
    pub slot_chunks_sent: u64,
    /// Of those, the chunks sent while the slots were still served (S9): the rest were sent
    /// while they were frozen.
    pub slot_chunks_precopied: u64,
    /// How long the slots of the last move out were frozen, in ms: from when this primary saw
    /// the freeze committed to the taker's `installed` (S10). A primary that took over during
    /// the freeze counts from its own start.
    pub slot_freeze_ms_last: u64,
    /// The longest such freeze seen by this server.
    pub slot_freeze_ms_max: u64,
    /// Slot chunks and replies ignored: not from the server our map names, not about a move
    /// we are making, or not as primary (S7).
    pub slot_messages_refused: u64,
}

/// Why a peer's message was ignored: no correct peer sends it. Counted in
/// [`ReplicaStats::protocol_errors`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProtocolError {
    /// A forward's entries do not follow `prev` one index at a time (R1).
    #[error("forwarded entry {found} where {expected:?} should follow")]
    ForwardOutOfOrder {
        /// The index the entry should have.
        expected: Option<OpIndex>,
        /// The index it has.
        found: OpIndex,
    },
    /// A forward's view tags decrease, or exceed the forward's own view: only the primary of
    /// view `v` orders entries tagged `v`.
    #[error("forwarded position {found:?} cannot follow {before:?} in view {view}")]
    ForwardViewTag {
        /// The position before it.
        before: LogPos,
        /// The position carrying the bad tag.
        found: LogPos,
        /// The forward's view.
        view: ViewNum,
    },
    /// A transfer chunk numbered beyond any chunk a transfer can have.
    #[error("transfer chunk {chunk} out of range")]
    TransferChunkOutOfRange {
        /// The chunk number.
        chunk: u32,
    },
    /// A transfer's snapshot ends at a position tagged after the transfer's view (P6).
    #[error("snapshot ending at {snapshot:?} sent in view {view}")]
    SnapshotAfterItsView {
        /// Where the snapshot claims to end.
        snapshot: LogPos,
        /// The transfer's view.
        view: ViewNum,
    },
    /// A transfer reply acknowledges chunks that were never sent.
    #[error("transfer reply acknowledges up to chunk {chunk}, only {sent} were sent")]
    TransferChunkNeverSent {
        /// The chunk the backup claims to expect next.
        chunk: u32,
        /// How many were sent.
        sent: u32,
    },
    /// A streaming backup reports a history ending where no correct backup's can: after what
    /// was sent to it, or off our history (P10).
    #[error("backup reports its history ends at {last:?}, which it cannot hold")]
    ImpossiblePosition {
        /// The position it reports.
        last: LogPos,
    },
    /// A slot chunk holds a key of a slot that is not moving to us (S7).
    #[error("slot chunk holds key {key:?} of a slot not moving here")]
    KeyOutsideMovingSlots {
        /// The key.
        key: bytes::Bytes,
    },
    /// A backup reports a transfer installed at another position than its snapshot (P6).
    #[error("transfer installed at {installed:?}, its snapshot ends at {snapshot:?}")]
    TransferInstalledElsewhere {
        /// The position the backup reports.
        installed: LogPos,
        /// Where the snapshot ends.
        snapshot: LogPos,
    },
}

/// A state transfer being received (P6). Built aside and swapped in when complete.
#[derive(Debug)]
struct Receiving {
    id: u64,
    view: ViewNum,
    next_chunk: u32,
    state: ReplicatedState,
}

/// One replica server.
#[derive(Debug)]
pub struct Replica {
    me: ServerId,
    group: GroupId,
    incarnation: Incarnation,
    config: ReplicaConfig,
    view: Option<View>,
    /// The view number sent in pings: for a primary, the last view it acknowledges (V6).
    ping_viewnum: ViewNum,
    state: ReplicatedState,
    log: RecentLog,
    role: Role,
    receiving: Option<Receiving>,
    /// The last transfer installed, to answer a resent chunk of it.
    installed_transfer: Option<(u64, LogPos)>,
    rng: SplitMix64,
    next_ping_ms: u64,
    /// Which view-service node to ping (Q2).
    locator: Locator,
    /// Where this server serves Redis clients, announced in its pings (S2).
    client_addr: Option<String>,
    last_wall_ms: u64,
    /// The monotonic clock at the last input.
    last_mono_ms: u64,
    /// The newest cluster map the view service sent (S2).
    cluster: Option<Arc<ClusterMap>>,
    outbox: VecDeque<Transmit>,
    stats: ReplicaStats,
}

impl Replica {
    /// A fresh, empty server (R3: a restarted server is a new one, with a new incarnation).
    pub fn new(
        me: ServerId,
        group: GroupId,
        incarnation: Incarnation,
        config: ReplicaConfig,
    ) -> Replica {
        Replica {
            me,
            group,
            incarnation,
            config,
            view: None,
            ping_viewnum: ViewNum::NONE,
            state: ReplicatedState::default(),
            log: RecentLog::default(),
            role: Role::Idle,
            receiving: None,
            installed_transfer: None,
            rng: SplitMix64::new(incarnation.0),
            next_ping_ms: 0,
            locator: Locator::new(vec![VsAddr::new(DEFAULT_VIEW_SERVICE)]),
            client_addr: None,
            last_wall_ms: 0,
            last_mono_ms: 0,
            cluster: None,
            outbox: VecDeque::new(),
            stats: ReplicaStats::default(),
        }
    }

    /// This server's id.
    pub fn id(&self) -> &ServerId {
        &self.me
    }

    /// The view it acts in (P1).
    pub fn view(&self) -> Option<&View> {
        self.view.as_ref()
    }

    /// Its role in that view.
    pub fn role(&self) -> RoleKind {
        match self.role {
            Role::Idle => RoleKind::Idle,
            Role::Backup => RoleKind::Backup,
            Role::Primary(_) => RoleKind::Primary,
        }
    }

    /// The replicated state it holds.
    pub fn state(&self) -> &ReplicatedState {
        &self.state
    }

    /// The recent entries of its history (read by the simulator's checkers: which requests a
    /// primary ordered, and where).
    pub fn recent_log(&self) -> &RecentLog {
        &self.log
    }

    /// The view number its pings carry.
    pub fn ping_viewnum(&self) -> ViewNum {
        self.ping_viewnum
    }

    /// Counters.
    pub fn stats(&self) -> &ReplicaStats {
        &self.stats
    }

    /// As primary: index confirmed by every counted backup.
    pub fn commit_index(&self) -> Option<OpIndex> {
        match &self.role {
            Role::Primary(p) => Some(p.commit),
            _ => None,
        }
    }

    /// As primary: one line per backup describing its progress (for failure reports).
    pub fn progress_summary(&self) -> String {
        let Role::Primary(p) = &self.role else {
            return String::new();
        };
        let mut out = String::new();
        for (id, progress) in &p.backups {
            out.push_str(&format!("[{id} {progress}]"));
        }
        out
    }

    /// As primary: the backups still receiving a state transfer, with chunks acknowledged.
    pub fn transfers_in_progress(&self) -> Vec<(ServerId, u32)> {
        let Role::Primary(p) = &self.role else {
            return Vec::new();
        };
        p.backups
            .iter()
            .filter_map(|(id, progress)| {
                let transfer = progress.transfer()?;
                Some((id.clone(), transfer.acknowledged()))
            })
            .collect()
    }

    /// The next outgoing message. Builds pending forwards and transfer chunks first.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Now) -> Option<Transmit> {
        if self.outbox.is_empty() {
            self.flush(now);
        }
        self.outbox.pop_front()
    }

    /// When [`Replica::handle_timeout`] must be called next (monotonic ms). A replica always
    /// has a timer armed (its next ping: V2).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut at = self.next_ping_ms;
        if let Role::Primary(p) = &self.role {
            at = at.min(p.next_expiry_ms);
            if let Some(deadline_ms) = p.waiting.next_deadline() {
                at = at.min(deadline_ms);
            }
            for progress in p.backups.values() {
                if let Some(wake_ms) = progress.next_wake_ms(self.config.retransmit_ms) {
                    at = at.min(wake_ms);
                }
            }
            for (to, send) in &p.sends {
                if let Some(wake_ms) = send.next_wake_ms(self.config.retransmit_ms) {
                    at = at.min(wake_ms);
                }
                if self.state.shard.precopy.contains_key(to) {
                    // S10: a pre-copy that stalls ends then.
                    at = at.min(send.precopy_deadline_ms(self.config.retransmit_ms));
                }
            }
            if !p.dropping.is_empty() {
                // S6: the next batch of a drop is due at once (one per round).
                at = at.min(self.last_mono_ms);
            }
        }
        Some(at)
    }

    /// Timers: pings (V2), retransmissions, confirmation deadlines (P4), expiry (P5). Calling it
    /// early is harmless.
    pub fn handle_timeout(&mut self, now: Now) {
        self.last_wall_ms = now.wall_ms;
        self.last_mono_ms = now.mono_ms;
        if now.mono_ms >= self.next_ping_ms {
            self.send_ping(now);
        }
        if matches!(self.role, Role::Primary(_)) {
            self.expire_waiting(now);
            self.sweep_expired(now);
            self.retransmit(now);
            self.advance_precopies(now);
            self.advance_drops(now);
        }
    }

    /// Handles one message.
    pub fn handle(&mut self, now: Now, from: Endpoint, msg: Message) {
        self.last_wall_ms = now.wall_ms;
        self.last_mono_ms = now.mono_ms;
        match msg {
            Message::PingReply(mut reply) => {
                // P11: views come only from view-service nodes (the transport proved that the
                // sender holds a view-service certificate: I3, I4). The address it names need
                // not be one we dialled: a proxy, a NAT or a DNS name may stand in between.
                match &from {
                    Endpoint::ViewService(node) => {
                        self.locator.answered(node);
                        let cluster = reply.cluster.take();
                        self.on_view(now, reply);
                        if let Some(map) = cluster {
                            self.on_cluster_map(now, map);
                        }
                    }
                    _ => self.stats.views_refused += 1,
                }
            }
            Message::NotLeader { leader } => {
                if let Endpoint::ViewService(node) = &from {
                    let moves = self.locator.moves();
                    let named = leader.is_some();
                    self.locator.redirected(node, leader);
                    if named && self.locator.moves() != moves {
                        // Ping the leader named now, not a ping interval later: a new leader's
                        // grace period (Q4) is running. ("No leader known" waits for the next
                        // ping, so an election does not turn pings into a storm.)
                        self.next_ping_ms = now.mono_ms;
                    }
                }
            }
            Message::Request(req) => self.on_request(now, from, req),
            Message::Forward(fwd) => self.on_forward(now, from, fwd),
            Message::ForwardReply(reply) => self.on_forward_reply(now, from, reply),
            Message::Transfer(t) => self.on_transfer(now, from, t),
            Message::TransferReply(reply) => self.on_transfer_reply(now, from, reply),
            Message::SlotData(data) => self.on_slot_data(now, from, data),
            Message::SlotDataReply(reply) => self.on_slot_data_reply(now, from, reply),
            // Not addressed to a server: ignore rather than trust the sender.
            Message::Ping(_)
            | Message::GetView { .. }
            | Message::ViewReply(_)
            | Message::Response(_)
            | Message::GetStatus {}
            | Message::StatusReply(_)
            | Message::Raft(_)
            | Message::ChangeMembers(_)
            | Message::MembersReply(_)
            | Message::GetCluster { .. }
            | Message::ClusterReply(_)
            | Message::ChangeSlots(_)
            | Message::SlotsReply(_) => {}
        }
    }

    fn send(&mut self, to: Endpoint, msg: Message) {
        self.outbox.push_back(Transmit { to, msg });
    }

    /// The view-service nodes to ping (Q2). Until this is called the server pings one node
    /// named [`DEFAULT_VIEW_SERVICE`] (what the unit tests use).
    ///
    /// # Panics
    /// If `addrs` is empty.
    pub fn set_view_services(&mut self, addrs: Vec<VsAddr>) {
        self.locator = Locator::new(addrs);
    }

    /// Where this server serves Redis clients (`--client-listen`): announced in every ping,
    /// so the cluster map can name it (S2).
    pub fn set_client_addr(&mut self, addr: Option<String>) {
        self.client_addr = addr;
    }

    /// The transport could not reach `addr`. If it is the view-service node this server pings,
    /// the next ping goes to the next node of the list (Q2); not sooner, so that a list of dead
    /// nodes is not cycled through in a tight loop.
    pub fn view_service_unreachable(&mut self, addr: &str) {
        self.locator.unreachable(&VsAddr::new(addr));
    }

    /// Which view-service node this server pings now, and how often it changed (Q2).
    pub fn locator(&self) -> &Locator {
        &self.locator
    }

    fn send_ping(&mut self, now: Now) {
        let ping = Ping {
            group: self.group,
            server: self.me.clone(),
            viewnum: self.ping_viewnum,
            incarnation: self.incarnation,
            client_addr: self.client_addr.clone(),
            config_done: self.config_done(),
            cluster_epoch: self.cluster.as_ref().map_or(0, |c| c.epoch),
        };
        self.locator.sent();
        self.send(self.locator.target(), Message::Ping(ping));
        self.next_ping_ms = now.mono_ms + self.config.ping_interval_ms;
    }

    // ---- views (P1) ----

    fn on_view(&mut self, now: Now, reply: ViewReply) {
        if reply.group != self.group {
            return;
        }
        let Some(view) = reply.view else { return };
        if !view.is_well_formed() {
            // P11: no view service makes it (V1); acting in it could forward to ourselves.
            self.stats.views_refused += 1;
            return;
        }
        let current = self.view.as_ref().map_or(ViewNum::NONE, |v| v.num);
        if view.num <= current {
            return; // View numbers only grow.
        }
        let old = self.view.replace(view.clone());
        self.receiving = None;
        // V4: a view that lists us with another incarnation was made for our previous life; we
        // restarted since and hold none of its state. We must never act as its primary. Acting
        // as its backup is safe (the primary finds our history empty and sends the whole state;
        // the view service never promotes a restarted member) and lets the primary acknowledge
        // the view, so that the view service can move on.
        let same_life = reply.member_incarnation == Some(self.incarnation);
        if same_life && view.primary == self.me {
            self.become_primary(now, old.as_ref(), &view);
        } else {
            self.step_down(if view.is_backup(&self.me) {
                Role::Backup
            } else {
                Role::Idle
            });
            self.ping_viewnum = view.num;
        }
    }

    fn become_primary(&mut self, now: Now, old: Option<&View>, view: &View) {
        let continuing = |b: &ServerId| old.is_some_and(|o| o.contains(b));
        let mut primary = match std::mem::replace(&mut self.role, Role::Idle) {
            Role::Primary(p) => p,
            _ => Box::new(PrimaryState {
                backups: BTreeMap::new(),
                commit: OpIndex::ZERO,
                waiting: Waiters::default(),
                next_expiry_ms: now.mono_ms,
                sends: BTreeMap::new(),
                notified: std::collections::BTreeSet::new(),
                dropping: BTreeMap::new(),
            }),
        };
        // Every backup is probed again in the new view: one that restarted and rejoined must not
        // be trusted for what its predecessor confirmed.
        primary.backups = view
            .backups
            .iter()
            .map(|b| (b.clone(), Progress::probing(continuing(b))))
            .collect();
        self.role = Role::Primary(primary);
        self.receiving = None;
        self.after_progress(now);
        // S5: a promoted backup carries on the move its predecessor was making.
        self.maybe_take_on(now);
    }

    fn step_down(&mut self, role: Role) {
        if let Role::Primary(mut p) = std::mem::replace(&mut self.role, role) {
            let viewnum = self.view.as_ref().map_or(ViewNum::NONE, |v| v.num);
            for (client, seq) in p.waiting.take_all() {
                self.respond(client, seq, Err(RequestError::WrongServer(viewnum)));
            }
        }
    }

    // ---- coordinator requests (P1, P2, P8) ----

    fn respond(
        &mut self,
        client: ClientId,
        seq: Seq,
        result: Result<Arc<Vec<Reply>>, RequestError>,
    ) {
        self.send(
            Endpoint::Client(client),
            Message::Response(Response {
                client,
                seq,
                result,
            }),
        );
    }

    fn on_request(&mut self, now: Now, from: Endpoint, req: Request) {
        let viewnum = self.view.as_ref().map_or(ViewNum::NONE, |v| v.num);
        let Endpoint::Client(client) = from else {
            return;
        };
        if client != req.client {
            return;
        }
        if req.group != self.group {
            self.respond(client, req.seq, Err(RequestError::WrongServer(viewnum)));
            return;
        }
        if !matches!(self.role, Role::Primary(_)) {
            if matches!(self.role, Role::Backup)
                && self.config.bugs.has(Bug::BackupAcceptsClientWrites)
            {
                let replies = self.execute_unreplicated(now, &req);
                self.respond(client, req.seq, Ok(replies));
                return;
            }
            // P1: only the primary of the view accepts coordinator requests.
            self.stats.wrong_server += 1;
            self.respond(client, req.seq, Err(RequestError::WrongServer(viewnum)));
            return;
        }
        if !self.config.bugs.has(Bug::NoDuplicateDetection)
            && let Some(record) = self.state.clients.get(&client)
        {
            if req.seq < record.seq {
                self.respond(client, req.seq, Err(RequestError::Stale));
                return;
            }
            if req.seq == record.seq && record.replies.is_some() {
                // P8: a retry. Answer with the saved reply once it is confirmed.
                let index = record.index;
                self.wait_for(now, client, req.seq, index);
                return;
            }
            if req.seq == record.seq && req.cmds.iter().any(|c| c.is_write()) {
                // Only reads are kept without replies: a write reusing their id is not a retry.
                self.respond(client, req.seq, Err(RequestError::Stale));
                return;
            }
            // A retried read applied here as a backup, without its replies: run it again.
        }
        if let Some(error) = self.slot_refusal(&req.cmds) {
            // S4: not ordered, like a request to a server that is not primary.
            self.stats.slot_refused += 1;
            self.respond(client, req.seq, Err(error));
            return;
        }
        let Role::Primary(p) = &self.role else {
            unreachable!()
        };
        let pending_ops = p
            .commit
            .checked_distance_to(self.state.last.index)
            .expect("P2: the commit point never passes our history's end");
        if usize::try_from(pending_ops).unwrap_or(usize::MAX) >= self.config.max_pending_ops {
            self.respond(client, req.seq, Err(RequestError::Busy));
            return;
        }
        if self.config.bugs.has(Bug::PrimaryServesLocalReads)
            && req.cmds.iter().all(|c| !c.is_write())
        {
            let replies = self.execute_unreplicated(now, &req);
            self.respond(client, req.seq, Ok(replies));
            return;
        }
        self.evict_for(now, &req.cmds);
        let seq = req.seq;
        let (index, replies) = self.order(
            now,
            Op::Client {
                client,
                seq,
                cmds: req.cmds,
                user: req.user,
            },
        );
        if self.config.bugs.has(Bug::ReplyBeforeBackupAck) {
            self.respond(client, seq, Ok(replies));
            return;
        }
        self.wait_for(now, client, seq, index);
    }

    /// Executes a request on a copy of the state (only reachable through planted bugs).
    fn execute_unreplicated(&mut self, now: Now, req: &Request) -> Arc<Vec<Reply>> {
        let mut scratch = self.state.clone();
        let entry = LogEntry {
            pos: LogPos {
                index: scratch.last.index.next(),
                view: scratch.last.view,
            },
            now_ms: now.wall_ms.max(scratch.clock_ms),
            random: self.rng.next_u64(),
            limits: self.config.limits(),
            op: Op::Client {
                client: req.client,
                seq: req.seq,
                cmds: req.cmds.clone(),
                user: req.user.clone(),
            },
        };
        let replies = scratch.apply_as_primary(&entry, self.config.bugs);
        if req.cmds.iter().any(|c| c.is_write()) {
            // The bug: the write really happens here, outside the history.
            self.state.store = scratch.store;
        }
        replies
    }

    /// Answers a confirmed request with the replies saved in the at-most-once table (P8).
    fn respond_saved(&mut self, client: ClientId, seq: Seq) {
        let replies = self
            .state
            .clients
            .get(&client)
            .and_then(|r| r.replies.clone())
            .unwrap_or_default();
        self.respond(client, seq, Ok(replies));
    }

    fn wait_for(&mut self, now: Now, client: ClientId, seq: Seq, index: OpIndex) {
        let Role::Primary(p) = &mut self.role else {
            return;
        };
        if index <= p.commit {
            self.respond_saved(client, seq);
            return;
        }
        let deadline_ms = now.mono_ms + self.config.confirm_timeout_ms;
        p.waiting.insert(
            client,
            Waiting {
                seq,
                index,
                deadline_ms,
            },
        );
    }

    /// P2, P5: the primary orders an operation, decides its time and randomness, and applies it.
    fn order(&mut self, now: Now, op: Op) -> (OpIndex, Arc<Vec<Reply>>) {
        let viewnum = self.view.as_ref().expect("primary has a view").num;
        let entry = LogEntry {
            pos: LogPos {
                index: self.state.last.index.next(),
                view: viewnum,
            },
            now_ms: now.wall_ms.max(self.state.clock_ms),
            random: self.rng.next_u64(),
            limits: self.config.limits(),
            op,
        };
        let replies = self.state.apply_as_primary(&entry, self.config.bugs);
        self.stats.applied += 1;
        let index = entry.pos.index;
        self.log.push(without_read_arguments(entry));
        self.after_progress(now);
        (index, replies)
    }

    /// L12: before a request that may grow memory while `used_memory` is above `maxmemory`,
    /// the primary picks victims under its eviction policy and orders their deletion, so the
    /// request then runs under the limit (or, with nothing to evict, answers OOM, L11).
    fn evict_for(&mut self, now: Now, cmds: &[Command]) {
        const MAX_EVICTED_PER_REQUEST: usize = 1024;
        let limits = self.config.limits();
        let used = self.state.store.used_memory();
        if limits.policy == EvictionPolicy::NoEviction
            || !limits.over_memory(used)
            || !cmds.iter().any(Command::is_denyoom)
        {
            return;
        }
        let need = used - usize::try_from(limits.maxmemory_bytes).unwrap_or(usize::MAX);
        let owns = |key: &[u8]| self.state.shard.owns_key(key);
        let keys = self.state.store.eviction_victims_where(
            limits.policy,
            self.rng.next_u64(),
            need,
            MAX_EVICTED_PER_REQUEST,
            &owns,
        );
        if !keys.is_empty() {
            self.stats.evicted_keys += keys.len() as u64;
            self.order(now, Op::Evict { keys });
        }
    }

    /// P4: a request whose operation was not confirmed in time gets an error; the coordinator
    /// re-asks the view service and retries with the same id.
    fn expire_waiting(&mut self, now: Now) {
        let Role::Primary(p) = &mut self.role else {
            return;
        };
        let expired = p.waiting.take_expired(now.mono_ms);
        for (client, seq) in expired {
            self.respond(client, seq, Err(RequestError::BackupUnconfirmed));
        }
    }

    /// P5: the primary finds expired keys with its own clock and replicates their deletion.
    fn sweep_expired(&mut self, now: Now) {
        let Role::Primary(p) = &mut self.role else {
            return;
        };
        if now.mono_ms < p.next_expiry_ms {
            return;
        }
        p.next_expiry_ms = now.mono_ms + self.config.expiry_interval_ms;
        let at_ms = now.wall_ms.max(self.state.clock_ms);
        let owns = |key: &[u8]| self.state.shard.owns_key(key);
        let keys = self
            .state
            .store
            .expired_keys_where(at_ms, self.config.expiry_batch, &owns);
        if !keys.is_empty() {
            self.order(now, Op::Expire { keys });
        }
        let (idle_ms, max) = (self.config.client_idle_forget_ms, self.config.max_clients);
        if let Some(idle_before_ms) = self.state.forget_horizon(at_ms, idle_ms, max) {
            self.order(now, Op::ForgetClients { idle_before_ms });
        }
    }

    // ---- replication bookkeeping (primary side) ----

    /// Recomputes the commit point, answers confirmed requests, admits synced backups to the
    /// quorum, acknowledges the view when every backup is synced, and trims the log.
    fn after_progress(&mut self, now: Now) {
        let last = self.state.last.index;
        let Role::Primary(p) = &mut self.role else {
            return;
        };
        p.advance_commit(last);
        let done = p.waiting.take_through(p.commit);
        let view = self.view.as_ref().expect("primary has a view").num;
        let ack = self.ping_viewnum != view && p.all_synced();
        let keep_after = p.log_needed_after(last);
        for (client, seq) in done {
            self.respond_saved(client, seq);
        }
        if ack {
            // V6, P6: every backup holds the full state: acknowledge the view now.
            self.ping_viewnum = view;
            self.send_ping(now);
        }
        self.log.trim_through(keep_after);
        let bound = self.config.max_log_entries.max(self.config.max_pending_ops);
        self.log.trim_to_len(bound);
        self.notify_installed();
    }

    fn on_forward_reply(&mut self, now: Now, from: Endpoint, reply: ForwardReply) {
        let Endpoint::Server(backup) = from else {
            return;
        };
        let viewnum = self.view.as_ref().map_or(ViewNum::NONE, |v| v.num);
        let last_index = self.state.last.index;
        let Role::Primary(p) = &mut self.role else {
            return;
        };
        // P9: only a backup of our current view.
        let Some(progress) = p.backups.get_mut(&backup) else {
            return;
        };
        let (last, on_reply): (LogPos, fn(&mut Progress, OpIndex, u64)) = match reply.result {
            ForwardResult::Reject => {
                self.stats.forwards_rejected += 1;
                if reply.view > viewnum {
                    // P4: a backup knows a newer view: we may be deposed. Stop answering success
                    // for what it has not confirmed, and re-check our view right away.
                    self.next_ping_ms = now.mono_ms;
                    let unconfirmed = p.waiting.take_all();
                    for (client, seq) in unconfirmed {
                        self.respond(client, seq, Err(RequestError::BackupUnconfirmed));
                    }
                }
                // A backup still in an older view catches up at its next ping; we retransmit.
                return;
            }
            ForwardResult::Ack { last } => (last, Progress::on_ack),
            ForwardResult::Gap { last } => (last, Progress::on_gap),
        };
        if reply.view != viewnum {
            // P9: a backup accepts forwards only in the view they carry, so a position reported
            // in another view answers a forward of an earlier view (or a life of the backup
            // before a restart): it says nothing about what it holds now.
            return;
        }
        match progress.check_reply(last, self.log.contains(last), last_index) {
            ReplyCheck::Take => on_reply(progress, last.index, now.mono_ms),
            ReplyCheck::Late => return,
            // Its history is not a prefix of ours (or older than our log): copy the whole
            // state (P6).
            ReplyCheck::Diverged => self.start_transfer(now, &backup),
            ReplyCheck::Impossible => {
                // P10: never a reason for a full copy.
                self.ignore_protocol_error(ProtocolError::ImpossiblePosition { last });
                return;
            }
        }
        self.after_progress(now);
    }

    fn on_transfer_reply(&mut self, now: Now, from: Endpoint, reply: TransferReply) {
        let Endpoint::Server(backup) = from else {
            return;
        };
        let viewnum = self.view.as_ref().map_or(ViewNum::NONE, |v| v.num);
        let Role::Primary(p) = &mut self.role else {
            return;
        };
        // P9: only a backup of our current view, about a transfer we started in it (the id).
        let Some(progress) = p.backups.get_mut(&backup) else {
            return;
        };
        if reply.view != viewnum {
            return; // Stale, or a refusal by a backup in another view: retransmission repairs.
        }
        match progress.on_transfer_reply(&reply, now.mono_ms) {
            Ok(TransferStep::Ignored | TransferStep::Acknowledged) => {}
            Ok(TransferStep::LostBeginning) => self.start_transfer(now, &backup),
            Ok(TransferStep::Installed) => {
                self.stats.transfers_completed += 1;
                self.after_progress(now);
            }
            Err(error) => self.ignore_protocol_error(error),
        }
    }

    /// P6: starts copying our whole state to `backup`: the one place a transfer begins, when
    /// its history is not a prefix of ours, when our log no longer reaches back to it, or when
    /// it lost the beginning of the previous transfer. Operations ordered meanwhile stream
    /// after the snapshot's position once it is installed.
    fn start_transfer(&mut self, now: Now, backup: &ServerId) {
        let Role::Primary(p) = &mut self.role else {
            return;
        };
        let Some(progress) = p.backups.get_mut(backup) else {
            return;
        };
        if !progress.may_start_transfer(now.mono_ms, self.config.retransmit_ms) {
            // P10: one transfer per retransmit interval at most; whatever asked for this one
            // (a probe's answer, a lost beginning, a log that no longer reaches back) asks again.
            self.stats.transfers_deferred += 1;
            return;
        }
        let transfer = OutgoingTransfer::new(self.rng.next_u64(), self.state.clone());
        progress.start_transfer(transfer, now.mono_ms);
        self.stats.transfers_started += 1;
    }

    /// Resends what a backup has not confirmed in time.
    fn retransmit(&mut self, now: Now) {
        let Role::Primary(p) = &mut self.role else {
            return;
        };
        for progress in p.backups.values_mut() {
            progress.retransmit_if_due(now.mono_ms, self.config.retransmit_ms);
        }
        for send in p.sends.values_mut() {
            send.retransmit_if_due(now.mono_ms, self.config.retransmit_ms);
        }
    }

    /// Builds forwards, probes and transfer chunks for every backup.
    fn flush(&mut self, now: Now) {
        let Some(view) = self.view.as_ref().map(|v| v.num) else {
            return;
        };
        self.flush_slot_data();
        let Role::Primary(p) = &mut self.role else {
            return;
        };
        let outbound = Outbound {
            view,
            last: self.state.last,
            log: &self.log,
            config: &self.config,
        };
        let mut fell_behind = Vec::new();
        let mut messages = Vec::new();
        for (backup, progress) in p.backups.iter_mut() {
            if progress
                .poll(&outbound, now.mono_ms, &mut messages)
                .is_err()
            {
                fell_behind.push(backup.clone());
            }
            for msg in messages.drain(..) {
                if let Message::Forward(forward) = &msg
                    && !forward.entries.is_empty()
                {
                    self.stats.forwards_sent += 1;
                    self.stats.forwarded_entries += forward.entries.len() as u64;
                }
                let to = Endpoint::Server(backup.clone());
                self.outbox.push_back(Transmit { to, msg });
            }
        }
        // The log no longer reaches back to what these backups hold (they fell further behind
        // than max_log_entries): copy the whole state again rather than wait forever. Their
        // chunks go at the next flush.
        for backup in fell_behind {
            self.start_transfer(now, &backup);
        }
    }

    /// Applies a forwarded or transferred entry as backup and records it in the recent log.
    fn apply_as_backup(&mut self, entry: &LogEntry) {
        self.state
            .apply_as_backup(entry, self.config.bugs, self.last_wall_ms);
        self.stats.applied += 1;
        self.log.push(entry.clone());
        self.log
            .trim_to_len(self.config.max_inflight_ops as usize * 2);
    }

    /// A peer sent what no correct peer sends: the message is dropped, as if lost, and
    /// counted. Never a panic: a peer's bytes must not stop a server.
    fn ignore_protocol_error(&mut self, error: ProtocolError) {
        // The reason documents the call site (and the unit tests match on it); operators see
        // the count.
        let _ = error;
        self.stats.protocol_errors += 1;
    }

    fn reply_forward(&mut self, to: Endpoint, result: ForwardResult) {
        let view = self.view.as_ref().map_or(ViewNum::NONE, |v| v.num);
        self.send(to, Message::ForwardReply(ForwardReply { view, result }));
    }
}

/// A read-only request as the history keeps it (L17): without its commands. A backup does not
/// execute reads (P4: it only confirms their place in the history) and treats an empty batch
/// as the read-only batch it is, so the arguments of a read (a million keys of an EXISTS)
/// are neither kept in the log nor forwarded.
fn without_read_arguments(entry: LogEntry) -> LogEntry {
    match &entry.op {
        Op::Client {
            client,
            seq,
            cmds,
            user,
        } if !cmds.is_empty() && cmds.iter().all(|cmd| !cmd.is_write()) => LogEntry {
            op: Op::Client {
                client: *client,
                seq: *seq,
                cmds: Arc::new(Vec::new()),
                user: user.clone(),
            },
            ..entry
        },
        _ => entry,
    }
}
