//! The coordinator core (rules C1, C3, S1, S4, S8): one client session that caches the cluster
//! map and the views, sends each request to the primary of the group owning its keys' slots,
//! and retries with the same `(client, seq)` until it gets replies or its deadline passes.
//!
//! It is driven like every core (see the crate documentation): [`Clerk::handle`] every
//! `ViewReply`, `ClusterReply`, `NotLeader` and `Response` addressed to it,
//! [`Clerk::handle_timeout`] when [`Clerk::poll_timeout`] is due, then drain
//! [`Clerk::poll_transmit`] and [`Clerk::poll_completion`]. Its extra inputs: [`Clerk::submit`]
//! (or [`Clerk::submit_as`], [`Clerk::submit_to`]) a batch of commands when [`Clerk::is_idle`]
//! (one request at a time: P8), and [`Clerk::server_unreachable`] when the transport gives up on
//! a server.
//!
//! **Routing (S1, S4).** A request must touch one group: the caller splits a pipeline or a
//! multi-key command whose keys are owned by several groups. The clerk routes it by its keys'
//! slots through the newest [`ClusterMap`] it holds (keyless requests go to the group named at
//! submission, by default the clerk's home group). A session has ONE client id and ONE sequence
//! counter across every group: when slots move, the giver's at-most-once records travel to the
//! taker (S8), so a retry keeps its `(client, seq)` wherever it goes and is answered, not run
//! again. `WrongGroup` and `SlotMoving` refusals make the clerk ask for a newer map and resend.
//!
//! The clerk asks the view service only `GetCluster` (the map carries every group's view); it
//! still takes a `ViewReply` (a coordinator hub hands its sessions the view it cached). **Until
//! the map assigns slots** (configuration 0, or no map yet) the clerk behaves as before
//! sharding: everything goes to its home group.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use tandem_kv::slots::key_slot;
use tandem_kv::{Command, Reply};

use crate::config::ClerkConfig;
use crate::ids::{ClientId, GroupId, Seq, ServerId, VsAddr};
use crate::locator::{DEFAULT_VIEW_SERVICE, Locator};
use crate::message::{Endpoint, Message, Request, RequestError, Response, Transmit, ViewReply};
use crate::shard::ClusterMap;
use crate::time::Now;
use crate::view::View;

/// How a request ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The primary executed it and every backup confirmed it.
    Replies(Arc<Vec<Reply>>),
    /// No answer before the deadline (C3). It may or may not have taken effect.
    TimedOut,
    /// Not executed: its keys are owned by more than one group in the clerk's newest map (slots
    /// moved since the caller split it), and no attempt can have run it (every one was refused).
    /// The caller splits it again (S1) and submits the parts.
    CrossGroup,
}

/// A finished request.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// Its sequence number.
    pub seq: Seq,
    /// Its outcome.
    pub outcome: Outcome,
}

/// Where a request goes, given a map (S1, S4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Every key is owned by this group (a request without keys: the group named for it).
    Group(GroupId),
    /// Its keys are owned by several groups: the caller must split it.
    CrossGroup,
    /// A key's slot has no owner in the map: wait for a newer one.
    Unassigned,
}

/// The group to send `slot` to: the group serving it in the map once the map assigns slots
/// (configuration 1 on; during a move its giver until the move is reported done, S11);
/// `home` without a map or before the first assignment (one group serves everything, as before
/// sharding). `None`: the map leaves the slot unassigned.
pub fn owner_of(map: Option<&ClusterMap>, home: GroupId, slot: u16) -> Option<GroupId> {
    match map {
        Some(map) if map.config.num.0 > 0 => map.serving(slot),
        _ => Some(home),
    }
}

/// Where a request whose keys hash to `slots` goes: the one group owning them all (and equal to
/// `named` if a group is named); without keys, `named`, else `home`.
pub fn route(
    map: Option<&ClusterMap>,
    home: GroupId,
    named: Option<GroupId>,
    slots: &[u16],
) -> Route {
    let mut found = named;
    for &slot in slots {
        let Some(owner) = owner_of(map, home, slot) else {
            return Route::Unassigned;
        };
        match found {
            None => found = Some(owner),
            Some(group) if group == owner => {}
            Some(_) => return Route::CrossGroup,
        }
    }
    Route::Group(found.unwrap_or(home))
}

/// The distinct slots of the keys of `cmds`, sorted.
pub fn slots_of(cmds: &[Command]) -> Vec<u16> {
    let mut slots: Vec<u16> = cmds
        .iter()
        .flat_map(|c| c.keys())
        .map(|k| key_slot(k))
        .collect();
    slots.sort_unstable();
    slots.dedup();
    slots
}

#[derive(Debug)]
struct InFlight {
    seq: Seq,
    cmds: Arc<Vec<Command>>,
    user: Option<Arc<str>>,
    /// The distinct slots of its keys (S1).
    slots: Vec<u16>,
    /// The group named at submission, for a request without keys.
    named: Option<GroupId>,
    deadline_ms: u64,
    /// When to (re)send next.
    resend_at_ms: Option<u64>,
    /// Sends so far.
    attempts: u32,
    /// The servers this request was sent to, most recent last (at most
    /// [`MAX_TARGETS_REMEMBERED`]): only they may answer it (C4).
    sent_to: Vec<ServerId>,
    /// The group and server of the last attempt.
    last: Option<(GroupId, ServerId)>,
    /// The last attempt has not been answered yet.
    awaiting: bool,
    /// Some attempt may have been executed: it went unanswered, or a backup did not confirm
    /// it. Such a request is never given back as [`Outcome::CrossGroup`] (its parts sent again
    /// under new sequence numbers could run twice); it keeps going to the group it went to.
    uncertain: bool,
    /// The group that last refused it as *wrong group*: a giver that froze the slot (S11).
    refused_by: Option<GroupId>,
}

/// Where the next attempt goes.
enum Destination {
    Send(GroupId, ServerId),
    CrossGroup,
    /// No route or no primary known yet: ask the view service and wait.
    Wait,
}

/// Servers a request's answer is accepted from: the last few it was sent to (a late answer from
/// a previous primary is still a true one).
const MAX_TARGETS_REMEMBERED: usize = 8;

/// Statistics for operators and the "view service is not flooded" check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClerkStats {
    /// `GetCluster` queries sent to the view service.
    pub view_queries: u64,
    /// Requests sent (first attempts and retries).
    pub sends: u64,
    /// Errors and timeouts that led to a retry.
    pub retries: u64,
    /// `WrongGroup` and `SlotMoving` refusals (S4).
    pub wrong_group: u64,
    /// Answers refused: a response from a server the request was not sent to, a view reply
    /// or cluster map from a node that is not a known view-service node, or an ill-formed view
    /// or map (C4).
    pub refused: u64,
}

/// One coordinator session.
#[derive(Debug)]
pub struct Clerk {
    id: ClientId,
    /// Where requests go without a map, and keyless ones by default.
    home: GroupId,
    config: ClerkConfig,
    /// The newest view of every group known, from `ViewReply`s and maps.
    views: BTreeMap<GroupId, View>,
    /// The newest cluster map (S2); `None` until the view service sent one.
    map: Option<Arc<ClusterMap>>,
    next_seq: Seq,
    inflight: Option<InFlight>,
    /// When we last asked the view service, and whether we want to ask again.
    last_query_ms: Option<u64>,
    want_query: bool,
    /// Which view-service node to ask (Q2).
    locator: Locator,
    outbox: VecDeque<Transmit>,
    completions: VecDeque<Completion>,
    stats: ClerkStats,
}

impl Clerk {
    /// A new session whose home group is `group`: where its requests go while no map assigns
    /// slots, and where keyless requests go unless another group is named.
    pub fn new(id: ClientId, group: GroupId, config: ClerkConfig) -> Clerk {
        Clerk {
            id,
            home: group,
            config,
            views: BTreeMap::new(),
            map: None,
            next_seq: Seq(1),
            inflight: None,
            last_query_ms: None,
            want_query: false,
            locator: Locator::new(vec![VsAddr::new(DEFAULT_VIEW_SERVICE)]),
            outbox: VecDeque::new(),
            completions: VecDeque::new(),
            stats: ClerkStats::default(),
        }
    }

    /// The view-service nodes to ask (Q2). Until this is called the clerk asks one node named
    /// [`DEFAULT_VIEW_SERVICE`] (what the unit tests use).
    ///
    /// # Panics
    /// If `addrs` is empty.
    pub fn set_view_services(&mut self, addrs: Vec<VsAddr>) {
        self.locator = Locator::new(addrs);
    }

    /// The session id.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// The home group's cached view.
    pub fn view(&self) -> Option<&View> {
        self.views.get(&self.home)
    }

    /// The cached view of `group`.
    pub fn view_of(&self, group: GroupId) -> Option<&View> {
        self.views.get(&group)
    }

    /// The newest cluster map received, if any.
    pub fn map(&self) -> Option<&Arc<ClusterMap>> {
        self.map.as_ref()
    }

    /// Counters.
    pub fn stats(&self) -> &ClerkStats {
        &self.stats
    }

    /// No request outstanding.
    pub fn is_idle(&self) -> bool {
        self.inflight.is_none()
    }

    /// Starts a request of a connection that never authenticated (A3), routed by its keys.
    /// Panics if one is outstanding: a session sends one at a time (P8).
    pub fn submit(&mut self, now: Now, cmds: Arc<Vec<Command>>) -> Seq {
        self.submit_as(now, cmds, None)
    }

    /// Starts a request run as ACL user `user` (`None`: never authenticated; A6), routed by its
    /// keys; without keys it goes to the home group.
    pub fn submit_as(&mut self, now: Now, cmds: Arc<Vec<Command>>, user: Option<Arc<str>>) -> Seq {
        self.start(now, cmds, user, None)
    }

    /// Starts a request for `group`: for commands without keys (DBSIZE, FLUSHALL, ACL ...) that
    /// the caller sends to a chosen group, or to every group in turn. Keys it has must be owned
    /// by `group`, else it ends as [`Outcome::CrossGroup`].
    pub fn submit_to(
        &mut self,
        now: Now,
        cmds: Arc<Vec<Command>>,
        user: Option<Arc<str>>,
        group: GroupId,
    ) -> Seq {
        self.start(now, cmds, user, Some(group))
    }

    fn start(
        &mut self,
        now: Now,
        cmds: Arc<Vec<Command>>,
        user: Option<Arc<str>>,
        named: Option<GroupId>,
    ) -> Seq {
        assert!(self.inflight.is_none(), "one request at a time per session");
        let seq = self.next_seq;
        self.next_seq = seq.next();
        let deadline_ms = now.mono_ms + self.config.request_timeout_ms;
        self.inflight = Some(InFlight {
            seq,
            slots: slots_of(&cmds),
            cmds,
            user,
            named,
            deadline_ms,
            resend_at_ms: Some(now.mono_ms),
            attempts: 0,
            sent_to: Vec::new(),
            last: None,
            awaiting: false,
            uncertain: false,
            refused_by: None,
        });
        self.drive(now);
        seq
    }

    /// Handles a message: a `ViewReply`, `ClusterReply` or `NotLeader` from the view service or
    /// a `Response` from a server. Anything else, or from anyone else, is ignored rather than
    /// trusted.
    pub fn handle(&mut self, now: Now, from: Endpoint, msg: Message) {
        match (from, msg) {
            // C4: views and maps only from a view-service node (proved by the transport, I3/I4).
            (Endpoint::ViewService(node), Message::ViewReply(reply)) => {
                self.locator.answered(&node);
                self.on_view(now, reply);
            }
            (Endpoint::ViewService(node), Message::ClusterReply(map)) => {
                self.locator.answered(&node);
                self.on_map(now, map);
            }
            (Endpoint::ViewService(node), Message::NotLeader { leader }) => {
                let named = leader.is_some();
                self.locator.redirected(&node, leader);
                self.want_query = true;
                if named {
                    // Ask the leader named at once rather than a ping interval later (an
                    // unnamed one waits: no query storm during an election).
                    self.last_query_ms = None;
                }
            }
            (Endpoint::Server(server), Message::Response(response)) => {
                // C4: only a server the request went to answers it.
                if self
                    .inflight
                    .as_ref()
                    .is_some_and(|i| i.sent_to.contains(&server))
                {
                    self.on_response(now, response);
                } else {
                    self.stats.refused += 1;
                }
            }
            _ => {}
        }
        self.drive(now);
    }

    /// The transport could not reach `server` (connection refused or broken). If our request
    /// went there last, treat it like an error: re-ask the view service (C1, rate-limited) and
    /// resend shortly, rather than wait out the attempt timeout.
    pub fn server_unreachable(&mut self, now: Now, server: &ServerId) {
        let Some(inflight) = &mut self.inflight else {
            return;
        };
        if inflight.last.as_ref().is_none_or(|(_, s)| s != server) {
            return;
        }
        self.stats.retries += 1;
        self.want_query = true;
        let soon = now.mono_ms + (self.config.ping_interval_ms / 4).max(1);
        if inflight.resend_at_ms.is_none_or(|t| t > soon) {
            inflight.resend_at_ms = Some(soon);
        }
        self.drive(now);
    }

    /// Timers: deadlines (C3), attempt timeouts and rate-limited view queries (C1). Calling it
    /// early is harmless.
    pub fn handle_timeout(&mut self, now: Now) {
        self.drive(now);
    }

    /// When [`Clerk::handle_timeout`] must be called next (monotonic ms); `None` while idle.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        let inflight = self.inflight.as_ref()?;
        let mut at = inflight.deadline_ms;
        if let Some(resend) = inflight.resend_at_ms {
            at = at.min(resend);
        }
        if self.want_query {
            at = at.min(self.next_query_ms());
        }
        Some(at)
    }

    /// The next message to send.
    #[must_use]
    pub fn poll_transmit(&mut self, _now: Now) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next finished request.
    #[must_use]
    pub fn poll_completion(&mut self) -> Option<Completion> {
        self.completions.pop_front()
    }

    fn next_query_ms(&self) -> u64 {
        self.last_query_ms
            .map_or(0, |t| t + self.config.ping_interval_ms)
    }

    /// Keeps `view` for `group` if it is newer than the one known; true if it was.
    fn learn_view(&mut self, group: GroupId, view: &View) -> bool {
        let newer = self.views.get(&group).is_none_or(|v| view.num > v.num);
        if newer {
            self.views.insert(group, view.clone());
        }
        newer
    }

    fn on_view(&mut self, now: Now, reply: ViewReply) {
        let Some(view) = reply.view else { return };
        if !view.is_well_formed() {
            self.stats.refused += 1;
            return;
        }
        if self.learn_view(reply.group, &view) {
            self.want_query = false;
            self.resend_if_moved(now);
        }
    }

    fn on_map(&mut self, now: Now, map: Arc<ClusterMap>) {
        let well_formed = map.config.is_well_formed()
            && map
                .groups
                .values()
                .all(|g| g.view.as_ref().is_none_or(View::is_well_formed));
        if !well_formed {
            self.stats.refused += 1;
            return;
        }
        if self.map.as_ref().is_some_and(|m| map.epoch <= m.epoch) {
            return;
        }
        for (group, info) in &map.groups {
            if let Some(view) = &info.view {
                self.learn_view(*group, view);
            }
        }
        self.map = Some(map);
        self.want_query = false;
        self.resend_if_moved(now);
    }

    /// After a newer view or map: if the request's destination changed (a new primary, a new
    /// owner), resend right away.
    fn resend_if_moved(&mut self, now: Now) {
        let Some(inflight) = &self.inflight else {
            return;
        };
        let moved = match self.destination(inflight) {
            Destination::Send(group, server) => inflight.last != Some((group, server)),
            Destination::CrossGroup => true,
            Destination::Wait => false,
        };
        if moved && let Some(inflight) = &mut self.inflight {
            inflight.resend_at_ms = Some(now.mono_ms);
        }
    }

    fn on_response(&mut self, now: Now, response: Response) {
        let Some(inflight) = &mut self.inflight else {
            return;
        };
        if response.seq != inflight.seq || response.client != self.id {
            return; // An answer to an earlier attempt of a finished request.
        }
        let error = match response.result {
            Ok(replies) => {
                let seq = inflight.seq;
                self.inflight = None;
                self.completions.push_back(Completion {
                    seq,
                    outcome: Outcome::Replies(replies),
                });
                return;
            }
            Err(error) => error,
        };
        inflight.awaiting = false;
        self.stats.retries += 1;
        // C1: on an error, re-ask the view service; resend once it answers with something new
        // or after a pause (the primary may just be waiting for its backup).
        self.want_query = true;
        let ping = self.config.ping_interval_ms;
        let pause = match error {
            RequestError::Busy => (ping / 10).max(1),
            RequestError::BackupUnconfirmed => {
                // The primary may have ordered it: a later view may still commit it.
                inflight.uncertain = true;
                ping
            }
            // S4: the slot is on its way here; the map may also name a newer owner.
            RequestError::SlotMoving { .. } => {
                self.stats.wrong_group += 1;
                (ping / 4).max(1)
            }
            RequestError::WrongGroup { .. } => {
                self.stats.wrong_group += 1;
                inflight.refused_by = inflight.last.as_ref().map(|(group, _)| *group);
                ping
            }
            RequestError::CrossSlot if !inflight.uncertain => {
                // The group cannot run it as one request: the caller splits it (S1).
                let seq = inflight.seq;
                self.inflight = None;
                self.completions.push_back(Completion {
                    seq,
                    outcome: Outcome::CrossGroup,
                });
                return;
            }
            RequestError::CrossSlot | RequestError::WrongServer(_) | RequestError::Stale => ping,
        };
        inflight.resend_at_ms = Some(now.mono_ms + pause);
    }

    /// Where the next attempt of `inflight` goes, from the newest map and views.
    fn destination(&self, inflight: &InFlight) -> Destination {
        let group = match route(
            self.map.as_deref(),
            self.home,
            inflight.named,
            &inflight.slots,
        ) {
            Route::Group(group) => group,
            // An attempt may have run: keep asking the group it went to (its at-most-once
            // record answers, or the taker's, which received the records: S8) until the
            // deadline. Never split it under new sequence numbers.
            Route::CrossGroup if inflight.uncertain => match &inflight.last {
                Some((group, _)) => *group,
                None => return Destination::CrossGroup,
            },
            Route::CrossGroup => return Destination::CrossGroup,
            Route::Unassigned => return Destination::Wait,
        };
        // S11: the group serving the slot by the map refused it (it froze it): its owner in
        // the configuration takes it next, and serves it as soon as its install is ordered,
        // before the map reports the move.
        let group = match self.map.as_deref() {
            Some(map) if inflight.refused_by == Some(group) => {
                let owners = inflight.slots.iter().map(|&slot| map.config.owner(slot));
                match owners.collect::<Option<std::collections::BTreeSet<GroupId>>>() {
                    Some(owners) if owners.len() == 1 => owners.into_iter().next().unwrap_or(group),
                    _ => group,
                }
            }
            _ => group,
        };
        match self.views.get(&group) {
            Some(view) => Destination::Send(group, view.primary.clone()),
            None => Destination::Wait,
        }
    }

    fn drive(&mut self, now: Now) {
        let Some(inflight) = &self.inflight else {
            self.want_query = false;
            return;
        };
        if now.mono_ms >= inflight.deadline_ms {
            // C3: a clear failure, never a guess.
            self.finish(Outcome::TimedOut);
            return;
        }
        if inflight.resend_at_ms.is_some_and(|t| now.mono_ms >= t) {
            if inflight.attempts > 0 {
                // C1: an error or a silent attempt: the view or the map may have changed.
                self.want_query = true;
            }
            match self.destination(inflight) {
                Destination::Send(group, primary) => self.send(now, group, primary),
                Destination::CrossGroup => {
                    self.finish(Outcome::CrossGroup);
                    return;
                }
                Destination::Wait => {
                    self.want_query = true;
                    if let Some(inflight) = &mut self.inflight {
                        inflight.resend_at_ms = Some(now.mono_ms + self.config.ping_interval_ms);
                    }
                }
            }
        }
        // C1: at most one view query per ping interval.
        if self.want_query && now.mono_ms >= self.next_query_ms() {
            self.query();
            self.last_query_ms = Some(now.mono_ms);
            self.want_query = false;
        }
    }

    fn send(&mut self, now: Now, group: GroupId, primary: ServerId) {
        let Some(inflight) = &mut self.inflight else {
            return;
        };
        if inflight.awaiting {
            // The previous attempt got no answer: it may have run.
            inflight.uncertain = true;
        }
        let request = Request {
            group,
            client: self.id,
            seq: inflight.seq,
            cmds: inflight.cmds.clone(),
            user: inflight.user.clone(),
        };
        if !inflight.sent_to.contains(&primary) {
            if inflight.sent_to.len() >= MAX_TARGETS_REMEMBERED {
                inflight.sent_to.remove(0);
            }
            inflight.sent_to.push(primary.clone());
        }
        self.outbox.push_back(Transmit {
            to: Endpoint::Server(primary.clone()),
            msg: Message::Request(request),
        });
        self.stats.sends += 1;
        inflight.attempts += 1;
        inflight.awaiting = true;
        inflight.last = Some((group, primary));
        inflight.resend_at_ms = Some(now.mono_ms + self.config.attempt_timeout_ms);
    }

    /// Asks the view service for a map newer than the one held (S2): it carries every
    /// group's view, so one question serves routing and finding primaries (C1).
    fn query(&mut self) {
        let epoch = self.map.as_ref().map_or(0, |m| m.epoch);
        self.outbox.push_back(Transmit {
            to: self.locator.target(),
            msg: Message::GetCluster { epoch },
        });
        self.stats.view_queries += 1;
        self.locator.sent();
    }

    fn finish(&mut self, outcome: Outcome) {
        if let Some(inflight) = self.inflight.take() {
            self.completions.push_back(Completion {
                seq: inflight.seq,
                outcome,
            });
        }
    }
}
