//! Client sessions of the simulator.
//!
//! A single-group cluster drives the real [`Clerk`] exactly as before. A sharded cluster drives
//! a [`ShardSession`]: the same C1-C4 behaviour, but it routes each request by its slot (S1)
//! with the cluster map it asks the view service for (`GetCluster`, S2), and on `WrongGroup` /
//! `SlotMoving` refreshes the map and resends the same `(client, seq)` to the owner (S4, S8).
//! One session has one client id and one sequence counter across every group, so the
//! at-most-once records that travel with a slot (S8) answer its retries at the taker.

use std::collections::VecDeque;
use std::sync::Arc;

use tandem_kv::Command;
use tandem_kv::slots::slot_of_commands;
use tandem_protocol::locator::Locator;
use tandem_protocol::message::{Endpoint, Message, Request, RequestError, Response, Transmit};
use tandem_protocol::shard::ClusterMap;
use tandem_protocol::{
    Clerk, ClerkConfig, ClientId, Completion, GroupId, Now, Outcome, Seq, ServerId, VsAddr,
};

/// Servers a request's answer is accepted from: the last few it was sent to (C4).
const MAX_TARGETS_REMEMBERED: usize = 8;

/// Counters of a sharded session (for reports and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// `GetCluster` requests sent.
    pub map_queries: u64,
    /// Requests sent (first attempts and retries).
    pub sends: u64,
    /// `WrongGroup` answers (the map was stale).
    pub wrong_group: u64,
    /// `SlotMoving` answers (a move was in progress).
    pub slot_moving: u64,
    /// Other errors and silent attempts that led to a retry.
    pub retries: u64,
}

#[derive(Debug)]
struct InFlight {
    seq: Seq,
    cmds: Arc<Vec<Command>>,
    /// The request's one slot (`None`: keyless, sent to group 0).
    slot: Option<u16>,
    deadline_ms: u64,
    /// When to (re)send next.
    resend_at_ms: u64,
    attempts: u32,
    sent_to: Vec<ServerId>,
}

/// A client session that routes by slot (see the module documentation).
#[derive(Debug)]
pub struct ShardSession {
    id: ClientId,
    config: ClerkConfig,
    map: Option<Arc<ClusterMap>>,
    next_seq: Seq,
    inflight: Option<InFlight>,
    last_query_ms: Option<u64>,
    want_map: bool,
    locator: Locator,
    outbox: VecDeque<Transmit>,
    completions: VecDeque<Completion>,
    stats: SessionStats,
}

impl ShardSession {
    /// A new session asking the view-service nodes `addrs`.
    pub fn new(id: ClientId, config: ClerkConfig, addrs: Vec<VsAddr>) -> ShardSession {
        ShardSession {
            id,
            config,
            map: None,
            next_seq: Seq(1),
            inflight: None,
            last_query_ms: None,
            want_map: true,
            locator: Locator::new(addrs),
            outbox: VecDeque::new(),
            completions: VecDeque::new(),
            stats: SessionStats::default(),
        }
    }

    /// The map this session routes by.
    pub fn map(&self) -> Option<&Arc<ClusterMap>> {
        self.map.as_ref()
    }

    /// Counters.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// Starts a request. Its commands must touch one slot (the workload keeps them so); a
    /// request whose keys span slots is sent by its first key and refused by the server (S1).
    ///
    /// # Panics
    /// If a request is outstanding (P8: one at a time).
    pub fn submit(&mut self, now: Now, cmds: Arc<Vec<Command>>) -> Seq {
        assert!(self.inflight.is_none(), "one request at a time per session");
        let seq = self.next_seq;
        self.next_seq = seq.next();
        let slot = match slot_of_commands(&cmds) {
            Ok(slot) => slot,
            Err(_) => cmds
                .iter()
                .flat_map(|c| c.keys())
                .next()
                .map(|k| tandem_kv::slots::key_slot(k)),
        };
        self.inflight = Some(InFlight {
            seq,
            cmds,
            slot,
            deadline_ms: now.mono_ms + self.config.request_timeout_ms,
            resend_at_ms: now.mono_ms,
            attempts: 0,
            sent_to: Vec::new(),
        });
        self.drive(now);
        seq
    }

    /// Handles a `ClusterReply` or `NotLeader` from a view-service node, or a `Response` from a
    /// server the request went to (C4); anything else is ignored.
    pub fn handle(&mut self, now: Now, from: Endpoint, msg: Message) {
        match (from, msg) {
            (Endpoint::ViewService(node), Message::ClusterReply(map)) => {
                self.locator.answered(&node);
                self.on_map(now, map);
            }
            (Endpoint::ViewService(node), Message::NotLeader { leader }) => {
                let named = leader.is_some();
                self.locator.redirected(&node, leader);
                self.want_map = true;
                if named {
                    self.last_query_ms = None;
                }
            }
            (Endpoint::Server(server), Message::Response(response))
                if self
                    .inflight
                    .as_ref()
                    .is_some_and(|i| i.sent_to.contains(&server)) =>
            {
                self.on_response(now, response);
            }
            _ => {}
        }
        self.drive(now);
    }

    /// Timers (C1, C3); harmless if early.
    pub fn handle_timeout(&mut self, now: Now) {
        self.drive(now);
    }

    /// When `handle_timeout` is due; `None` while idle.
    pub fn poll_timeout(&self) -> Option<u64> {
        let inflight = self.inflight.as_ref()?;
        let mut at = inflight.deadline_ms.min(inflight.resend_at_ms);
        if self.want_map {
            at = at.min(self.next_query_ms());
        }
        Some(at)
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next finished request.
    pub fn poll_completion(&mut self) -> Option<Completion> {
        self.completions.pop_front()
    }

    /// No request outstanding.
    pub fn is_idle(&self) -> bool {
        self.inflight.is_none()
    }

    fn next_query_ms(&self) -> u64 {
        self.last_query_ms
            .map_or(0, |t| t + self.config.ping_interval_ms)
    }

    /// Where the request goes now: the owner of its slot and that group's primary.
    fn target(&self, slot: Option<u16>) -> Option<(GroupId, ServerId)> {
        let map = self.map.as_ref()?;
        let (group, view) = match slot {
            Some(slot) => map.route(slot)?,
            None => {
                let group = GroupId(0);
                (group, map.groups.get(&group)?.view.as_ref())
            }
        };
        Some((group, view?.primary.clone()))
    }

    fn on_map(&mut self, now: Now, map: Arc<ClusterMap>) {
        if !map.config.is_well_formed() {
            return;
        }
        if self.map.as_ref().is_some_and(|m| m.epoch >= map.epoch) {
            return;
        }
        let slot = self.inflight.as_ref().map(|i| i.slot);
        let before = slot.and_then(|s| self.target(s));
        self.map = Some(map);
        self.want_map = false;
        if let Some(slot) = slot
            && self.target(slot) != before
            && let Some(inflight) = &mut self.inflight
        {
            // A new owner or primary: resend right away.
            inflight.resend_at_ms = now.mono_ms;
        }
    }

    fn on_response(&mut self, now: Now, response: Response) {
        let Some(inflight) = &mut self.inflight else {
            return;
        };
        if response.seq != inflight.seq || response.client != self.id {
            return;
        }
        match response.result {
            Ok(replies) => {
                let seq = inflight.seq;
                self.inflight = None;
                self.completions.push_back(Completion {
                    seq,
                    outcome: Outcome::Replies(replies),
                });
            }
            Err(error) => {
                let pause = match error {
                    RequestError::Busy => (self.config.ping_interval_ms / 10).max(1),
                    RequestError::WrongGroup { .. } => {
                        self.stats.wrong_group += 1;
                        (self.config.ping_interval_ms / 10).max(1)
                    }
                    RequestError::SlotMoving { .. } => {
                        self.stats.slot_moving += 1;
                        (self.config.ping_interval_ms / 2).max(1)
                    }
                    _ => {
                        self.stats.retries += 1;
                        self.config.ping_interval_ms
                    }
                };
                inflight.resend_at_ms = now.mono_ms + pause;
                self.want_map = true;
            }
        }
    }

    fn drive(&mut self, now: Now) {
        let Some(inflight) = &self.inflight else {
            self.want_map = false;
            return;
        };
        if now.mono_ms >= inflight.deadline_ms {
            let seq = inflight.seq;
            self.inflight = None;
            self.want_map = false;
            self.completions.push_back(Completion {
                seq,
                outcome: Outcome::TimedOut,
            });
            return;
        }
        if now.mono_ms >= inflight.resend_at_ms {
            let slot = inflight.slot;
            let attempted = inflight.attempts > 0;
            let target = self.target(slot);
            let inflight = self.inflight.as_mut().expect("checked above");
            if attempted {
                self.want_map = true;
            }
            match target {
                Some((group, primary)) => {
                    if !inflight.sent_to.contains(&primary) {
                        if inflight.sent_to.len() >= MAX_TARGETS_REMEMBERED {
                            inflight.sent_to.remove(0);
                        }
                        inflight.sent_to.push(primary.clone());
                    }
                    self.outbox.push_back(Transmit {
                        to: Endpoint::Server(primary),
                        msg: Message::Request(Request {
                            group,
                            client: self.id,
                            seq: inflight.seq,
                            cmds: inflight.cmds.clone(),
                            user: None,
                        }),
                    });
                    self.stats.sends += 1;
                    inflight.attempts += 1;
                    inflight.resend_at_ms = now.mono_ms + self.config.attempt_timeout_ms;
                }
                None => {
                    self.want_map = true;
                    inflight.resend_at_ms = now.mono_ms + self.config.ping_interval_ms;
                }
            }
        }
        // C1: at most one map query per ping interval.
        if self.want_map && now.mono_ms >= self.next_query_ms() {
            let epoch = self.map.as_ref().map_or(0, |m| m.epoch);
            self.outbox.push_back(Transmit {
                to: self.locator.target(),
                msg: Message::GetCluster { epoch },
            });
            self.stats.map_queries += 1;
            self.locator.sent();
            self.last_query_ms = Some(now.mono_ms);
            self.want_map = false;
        }
    }
}

/// A simulated client session: the real clerk (one group) or a routing session (sharded).
#[derive(Debug)]
pub enum Session {
    /// One group: the production clerk, unchanged.
    Clerk(Clerk),
    /// Several groups: routes by slot.
    Shard(ShardSession),
}

impl Session {
    /// The session id.
    pub fn id(&self) -> ClientId {
        match self {
            Session::Clerk(c) => c.id(),
            Session::Shard(s) => s.id,
        }
    }

    /// No request outstanding.
    pub fn is_idle(&self) -> bool {
        match self {
            Session::Clerk(c) => c.is_idle(),
            Session::Shard(s) => s.is_idle(),
        }
    }

    /// Starts a request.
    pub fn submit(&mut self, now: Now, cmds: Arc<Vec<Command>>) -> Seq {
        match self {
            Session::Clerk(c) => c.submit(now, cmds),
            Session::Shard(s) => s.submit(now, cmds),
        }
    }

    /// Handles a message addressed to the session.
    pub fn handle(&mut self, now: Now, from: Endpoint, msg: Message) {
        match self {
            Session::Clerk(c) => c.handle(now, from, msg),
            Session::Shard(s) => s.handle(now, from, msg),
        }
    }

    /// Timers.
    pub fn handle_timeout(&mut self, now: Now) {
        match self {
            Session::Clerk(c) => c.handle_timeout(now),
            Session::Shard(s) => s.handle_timeout(now),
        }
    }

    /// When `handle_timeout` is due.
    pub fn poll_timeout(&self) -> Option<u64> {
        match self {
            Session::Clerk(c) => c.poll_timeout(),
            Session::Shard(s) => s.poll_timeout(),
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self, now: Now) -> Option<Transmit> {
        match self {
            Session::Clerk(c) => c.poll_transmit(now),
            Session::Shard(s) => s.poll_transmit(),
        }
    }

    /// The next finished request.
    pub fn poll_completion(&mut self) -> Option<Completion> {
        match self {
            Session::Clerk(c) => c.poll_completion(),
            Session::Shard(s) => s.poll_completion(),
        }
    }
}
