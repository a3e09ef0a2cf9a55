//! The clerk hub: one task owning every connection's [`Clerk`], multiplexing all of them over
//! one link to the view service and one per server (issue 5: many client connections, few
//! coordinator-to-primary connections).
//!
//! Connection tasks send `(client, commands, reply channel)`; the hub submits them to that
//! connection's clerk and drives every clerk like the simulator does: `handle` each message
//! addressed to it, `handle_timeout` when its `poll_timeout` is due, then drain `poll_transmit` and
//! `poll_completion`. Timers are a min-heap of `(deadline, client)` with lazy deletion.
//!
//! Two shortcuts keep the view service from being flooded by thousands of sessions, without
//! changing what any clerk decides: the latest cluster map (and the home group's view in it) is
//! cached and handed to a session before it submits, and a `GetCluster` from a session is not
//! sent when another was sent within [`VIEW_QUERY_GAP_MS`]: the answer to that one is given to
//! every busy session.
//!
//! **Sharding (S1).** A batch that one group serves whole (every command's keys in one slot,
//! all owned by one group: always so without sharding) is sent as it came, as one request. Any
//! other batch is split by a [`Plan`] (`tandem_protocol::router`):
//! multi-key commands across slots into one part per slot, keyspace-wide commands and ACL
//! writes into one part per group. The hub runs the parts in order, each run of consecutive
//! parts for one group (under the newest map when the run starts) as one request of the
//! session's clerk, and merges the replies in the batch's order. A run that a move split in the
//! meantime comes back as `CrossGroup` and is planned again with the newer map. After a run
//! times out, the parts after it are not sent: their commands are answered `-TRYAGAIN` (a batch
//! in which nothing completed is `TimedOut`, as before sharding).
//!
//! The hub finds the view service's leader itself (Q2) with its own [`Locator`] over the
//! `--viewserver` list: every `GetCluster` goes to the locator's target; a `ClusterReply` from the
//! target counts as its answer; a `NotLeader` moves the target to the leader named (asked at
//! once, a few times in a row at most) or, with none named, to the next node (asked at the
//! normal pace); too many unanswered queries, or a refused connection to the target, move on to
//! the next node.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;

use tandem_kv::{Command, Reply};
use tandem_protocol::locator::{Locator, MAX_UNANSWERED};
use tandem_protocol::router::{Plan, Run, groups_of};
use tandem_protocol::{
    Clerk, ClerkConfig, ClientId, ClusterMap, Endpoint, GroupId, Message, Outcome, Transmit, View,
    VsAddr, message::ViewReply,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Duration, interval, sleep_until};
use tracing::info;

use crate::clock::{Clock, random_u64};
use crate::net::{Inbound, Net, Peers};
use crate::shutdown::Shutdown;

/// Least time between two `GetCluster`s sent on behalf of sessions.
pub(crate) const VIEW_QUERY_GAP_MS: u64 = 5;
/// Most `NotLeader` redirects followed at once (without waiting out the gap) in a row.
const MAX_REDIRECTS_AT_ONCE: u32 = 3;
/// Most inputs of one kind handled before the others get a turn.
const MAX_BATCH: usize = 4096;
/// Most times one batch is planned again because moves split a run (then its rest is
/// answered `-TRYAGAIN`).
const MAX_REPLANS: u32 = 16;

/// What a connection task asks of the hub.
#[derive(Debug)]
pub(crate) enum HubRequest {
    /// Run `cmds` as one request of session `client`; the outcome comes back on `done`.
    Submit {
        /// The connection's session.
        client: ClientId,
        /// The batch.
        cmds: Vec<Command>,
        /// The connection's ACL user (A6).
        user: Option<Arc<str>>,
        /// Where the outcome goes.
        done: oneshot::Sender<Outcome>,
    },
    /// The connection closed: forget its session.
    Close {
        /// The connection's session.
        client: ClientId,
    },
}

struct Session {
    clerk: Clerk,
    /// The batch being run, if any.
    job: Option<Job>,
    /// The deadline this session has in the timer heap, if any.
    armed_ms: Option<u64>,
}

/// A connection's batch on its way through the groups.
struct Job {
    work: Work,
    user: Option<Arc<str>>,
    done: oneshot::Sender<Outcome>,
    replans: u32,
    /// The outcome, once known.
    finished: Option<Outcome>,
}

/// How a batch is being run.
enum Work {
    /// As it came, as one request to one group: the common case, without copies.
    Whole {
        cmds: Arc<Vec<Command>>,
        group: GroupId,
    },
    /// Split by a plan, run by run.
    Planned {
        plan: Plan,
        /// One per part, filled as runs complete.
        replies: Vec<Option<Reply>>,
        /// The first part not run yet.
        next: usize,
        /// The run the clerk is executing.
        run: Option<Run>,
        /// A run timed out: the parts after it are not sent.
        timed_out: bool,
    },
}

/// The hub task's state.
pub(crate) struct Hub {
    group: GroupId,
    config: ClerkConfig,
    clock: Clock,
    sessions: BTreeMap<ClientId, Session>,
    busy: BTreeSet<ClientId>,
    timers: BinaryHeap<Reverse<(u64, ClientId)>>,
    latest: Option<ViewReply>,
    /// The view-service node `latest` came from.
    latest_from: Endpoint,
    /// The newest cluster map (S2), and the node it came from.
    map: Option<(Arc<ClusterMap>, Endpoint)>,
    view_sender: watch::Sender<Option<View>>,
    /// Publishes the newest map (the admin `/status`).
    map_sender: Option<watch::Sender<Option<Arc<ClusterMap>>>>,
    last_view_query_ms: Option<u64>,
    /// The configured view-service list, given to every clerk.
    view_services: Vec<VsAddr>,
    /// Which view-service node to ask (Q2).
    locator: Locator,
    /// `locator.moves()` last published.
    seen_moves: u64,
    /// The target last logged.
    seen_target: VsAddr,
    /// Redirects followed at once since the last view received.
    redirects_in_a_row: u32,
    /// Publishes the locator's target (the admin `/status`).
    target_sender: watch::Sender<String>,
    peers: Peers,
}

impl Hub {
    /// A hub for `group`, reaching the view service's nodes `view_services` (not empty) through
    /// `net`; the node it asks is published on `target_sender`.
    pub fn new(
        group: GroupId,
        config: ClerkConfig,
        view_services: Vec<VsAddr>,
        net: Arc<Net>,
        view_sender: watch::Sender<Option<View>>,
        target_sender: watch::Sender<String>,
    ) -> Hub {
        Hub {
            group,
            config,
            clock: Clock::new(),
            sessions: BTreeMap::new(),
            busy: BTreeSet::new(),
            timers: BinaryHeap::new(),
            latest: None,
            latest_from: Endpoint::ViewService(tandem_protocol::VsAddr::new(
                tandem_protocol::locator::DEFAULT_VIEW_SERVICE,
            )),
            map: None,
            view_sender,
            map_sender: None,
            last_view_query_ms: None,
            locator: Locator::new(view_services.clone()),
            seen_target: view_services[0].clone(),
            redirects_in_a_row: 0,
            view_services,
            seen_moves: 0,
            target_sender,
            peers: Peers::new(net),
        }
    }

    /// Publishes every newer cluster map on `sender`.
    pub fn publishing_maps(mut self, sender: watch::Sender<Option<Arc<ClusterMap>>>) -> Hub {
        self.map_sender = Some(sender);
        self
    }

    /// Runs until shutdown or until every connection task and the listener are gone.
    pub async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<HubRequest>,
        mut inbox: mpsc::Receiver<Inbound>,
        view_refresh: Duration,
        mut shutdown: Shutdown,
    ) {
        let mut refresh = interval(view_refresh);
        let mut unreachable = self.peers.net().subscribe_unreachable();
        loop {
            let wake = self.timers.peek().map(|Reverse((at, _))| *at);
            let wake_at = self.clock.instant_at(wake.unwrap_or(u64::MAX / 4));
            tokio::select! {
                _ = shutdown.wait() => return,
                request = requests.recv() => {
                    let Some(request) = request else { return };
                    self.on_request(request);
                    for _ in 1..MAX_BATCH {
                        let Ok(request) = requests.try_recv() else { break };
                        self.on_request(request);
                    }
                }
                inbound = inbox.recv() => {
                    let Some(inbound) = inbound else { return };
                    self.on_message(inbound.from, inbound.msg);
                    for _ in 1..MAX_BATCH {
                        let Ok(inbound) = inbox.try_recv() else { break };
                        self.on_message(inbound.from, inbound.msg);
                    }
                }
                _ = sleep_until(wake_at.into()), if wake.is_some() => self.fire_timers(),
                addr = unreachable.recv() => {
                    if let Some(addr) = addr {
                        self.on_unreachable(&addr);
                    }
                }
                _ = refresh.tick() => self.query_view(Endpoint::Client(ClientId(0))),
            }
        }
    }

    /// A server refused or dropped our connection: every session waiting on it re-asks the
    /// view service now instead of waiting out its attempt timeout (C1).
    fn on_unreachable(&mut self, addr: &str) {
        if self.locator.target_addr().as_str() == addr {
            // Q2: a refused connection is a node that will not answer: count the queries
            // as unanswered until the locator moves on. The next query (refresh or a
            // session's) goes to the new target; not at once, so that a list of dead nodes is
            // not cycled through in a tight loop.
            for _ in 0..=MAX_UNANSWERED {
                if self.locator.target_addr().as_str() != addr {
                    break;
                }
                self.locator.sent();
            }
            self.note_target();
            return;
        }
        let now = self.clock.now();
        let server = tandem_protocol::ServerId::new(addr);
        let waiting: Vec<ClientId> = self.busy.iter().copied().collect();
        for client in waiting {
            if let Some(session) = self.sessions.get_mut(&client) {
                session.clerk.server_unreachable(now, &server);
                self.after(client);
            }
        }
    }

    fn on_request(&mut self, request: HubRequest) {
        match request {
            HubRequest::Submit {
                client,
                cmds,
                user,
                done,
            } => self.submit(client, (cmds, user), done),
            HubRequest::Close { client } => {
                self.sessions.remove(&client);
                self.busy.remove(&client);
            }
        }
    }

    fn submit(
        &mut self,
        client: ClientId,
        (cmds, user): (Vec<Command>, Option<Arc<str>>),
        done: oneshot::Sender<Outcome>,
    ) {
        let now = self.clock.now();
        let session = self.sessions.entry(client).or_insert_with(|| {
            let mut clerk = Clerk::new(client, self.group, self.config.clone());
            // Its queries are routed through `query_view` (and so to the hub's target).
            clerk.set_view_services(self.view_services.clone());
            Session {
                clerk,
                job: None,
                armed_ms: None,
            }
        });
        if session.job.is_some() || !session.clerk.is_idle() {
            // A connection waits for each outcome before sending more; refuse rather than
            // break the one-request-per-session rule (P8).
            let _ = done.send(Outcome::TimedOut);
            return;
        }
        if let Some(latest) = &self.latest {
            let newer = session
                .clerk
                .view()
                .is_none_or(|v| latest.view.as_ref().is_some_and(|l| l.num > v.num));
            if newer {
                session.clerk.handle(
                    now,
                    self.latest_from.clone(),
                    Message::ViewReply(latest.clone()),
                );
            }
        }
        if let Some((map, from)) = &self.map
            && session.clerk.map().is_none_or(|m| m.epoch < map.epoch)
        {
            session
                .clerk
                .handle(now, from.clone(), Message::ClusterReply(map.clone()));
        }
        let map = self.map.as_ref().map(|(m, _)| m.as_ref());
        let groups = groups_of(map, self.group);
        let work = match Plan::single_group(&cmds, map, self.group, &groups) {
            Some(group) => Work::Whole {
                cmds: Arc::new(cmds),
                group,
            },
            None => Work::planned(cmds, &groups),
        };
        session.job = Some(Job {
            work,
            user,
            done,
            replans: 0,
            finished: None,
        });
        self.busy.insert(client);
        self.after(client);
    }

    fn on_message(&mut self, from: Endpoint, msg: Message) {
        let now = self.clock.now();
        match msg {
            Message::Response(response) => {
                let client = response.client;
                if let Some(session) = self.sessions.get_mut(&client) {
                    session.clerk.handle(now, from, Message::Response(response));
                    self.after(client);
                }
            }
            Message::NotLeader { leader } => {
                if let Endpoint::ViewService(node) = &from {
                    // Q2: follow the redirect and ask the leader named now, not after the gap
                    // (at most MAX_REDIRECTS_AT_ONCE times in a row: two stale nodes naming each
                    // other must not make a loop). Without a leader named (an election), the
                    // next node is asked at the normal pace.
                    let before = self.locator.target_addr().clone();
                    let named = leader.is_some();
                    self.locator.redirected(node, leader);
                    let moved = self.note_target() && *self.locator.target_addr() != before;
                    if moved && named && self.redirects_in_a_row < MAX_REDIRECTS_AT_ONCE {
                        self.redirects_in_a_row += 1;
                        self.last_view_query_ms = None;
                        self.query_view(Endpoint::Client(ClientId(0)));
                    }
                }
            }
            Message::ViewReply(reply)
                if reply.group == self.group && matches!(from, Endpoint::ViewService(_)) =>
            {
                if let Endpoint::ViewService(node) = &from {
                    self.locator.answered(node);
                    self.redirects_in_a_row = 0;
                }
                let newer = match (
                    &reply.view,
                    self.latest.as_ref().and_then(|l| l.view.as_ref()),
                ) {
                    (Some(new), Some(old)) => new.num > old.num,
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                if !newer {
                    return;
                }
                self.view_sender.send_replace(reply.view.clone());
                self.latest = Some(reply.clone());
                self.latest_from = from.clone();
                let busy: Vec<ClientId> = self.busy.iter().copied().collect();
                for client in busy {
                    if let Some(session) = self.sessions.get_mut(&client) {
                        session
                            .clerk
                            .handle(now, from.clone(), Message::ViewReply(reply.clone()));
                        self.after(client);
                    }
                }
            }
            Message::ClusterReply(map) if matches!(from, Endpoint::ViewService(_)) => {
                self.on_map(now, from, map);
            }
            _ => {}
        }
    }

    /// A cluster map from the view service (S2): cached if newer, published as the home
    /// group's view, and given to every busy session (each checks it again, C4).
    fn on_map(&mut self, now: tandem_protocol::Now, from: Endpoint, map: Arc<ClusterMap>) {
        if let Endpoint::ViewService(node) = &from {
            self.locator.answered(node);
            self.redirects_in_a_row = 0;
        }
        let well_formed = map.config.is_well_formed()
            && map
                .groups
                .values()
                .all(|g| g.view.as_ref().is_none_or(View::is_well_formed));
        let newer = self
            .map
            .as_ref()
            .is_none_or(|(old, _)| map.epoch > old.epoch);
        if !well_formed || !newer {
            return;
        }
        if let Some(view) = map.groups.get(&self.group).and_then(|g| g.view.clone()) {
            let newer_view = self
                .latest
                .as_ref()
                .and_then(|l| l.view.as_ref())
                .is_none_or(|old| view.num > old.num);
            if newer_view {
                self.view_sender.send_replace(Some(view.clone()));
                self.latest = Some(ViewReply {
                    group: self.group,
                    view: Some(view),
                    member_incarnation: None,
                    cluster: None,
                });
                self.latest_from = from.clone();
            }
        }
        self.map = Some((map.clone(), from.clone()));
        if let Some(sender) = &self.map_sender {
            sender.send_replace(Some(map.clone()));
        }
        let busy: Vec<ClientId> = self.busy.iter().copied().collect();
        for client in busy {
            if let Some(session) = self.sessions.get_mut(&client) {
                session
                    .clerk
                    .handle(now, from.clone(), Message::ClusterReply(map.clone()));
                self.after(client);
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = self.clock.now();
        while let Some(Reverse((at, client))) = self.timers.peek().copied() {
            if at > now.mono_ms {
                break;
            }
            self.timers.pop();
            let Some(session) = self.sessions.get_mut(&client) else {
                continue;
            };
            if session.armed_ms != Some(at) {
                continue; // Superseded by a later deadline.
            }
            session.armed_ms = None;
            session.clerk.handle_timeout(now);
            self.after(client);
        }
        self.compact_timers();
    }

    /// Drains a session's outputs, moves its batch on (the next run, or the merged replies),
    /// and re-arms its timer.
    fn after(&mut self, client: ClientId) {
        let now = self.clock.now();
        let map = self.map.as_ref().map(|(m, _)| m.clone());
        let Some(session) = self.sessions.get_mut(&client) else {
            return;
        };
        let mut transmits = Vec::new();
        loop {
            while let Some(transmit) = session.clerk.poll_transmit(now) {
                transmits.push(transmit);
            }
            if let Some(completion) = session.clerk.poll_completion()
                && let Some(job) = &mut session.job
            {
                job.completed(completion.outcome, map.as_deref(), self.group);
            }
            let Some(job) = &mut session.job else { break };
            if !session.clerk.is_idle() {
                break;
            }
            if let Some(outcome) = job.finished.take() {
                // The connection may be gone; its session is removed by its Close.
                let _ = session.job.take().map(|job| job.done.send(outcome));
                break;
            }
            job.start(now, &mut session.clerk, map.as_deref(), self.group);
        }
        if session.clerk.is_idle() && session.job.is_none() {
            self.busy.remove(&client);
        }
        let next = session.clerk.poll_timeout();
        if next != session.armed_ms {
            session.armed_ms = next;
            if let Some(at) = next {
                self.timers.push(Reverse((at, client)));
            }
        }
        for transmit in transmits {
            self.route(client, transmit);
        }
    }

    fn route(&mut self, client: ClientId, transmit: Transmit) {
        let from = Endpoint::Client(client);
        match transmit.to {
            Endpoint::ViewService(_) => self.query_view(from),
            Endpoint::Server(server) => {
                if let Some(frame) = self.peers.net().encode(&from, transmit.msg) {
                    self.peers.send(server.as_str(), frame);
                }
            }
            Endpoint::Client(_) => {} // Clerks never talk to each other.
        }
    }

    /// Asks the view service for a newer cluster map (it carries every group's view) unless
    /// it was asked within [`VIEW_QUERY_GAP_MS`].
    fn query_view(&mut self, from: Endpoint) {
        let now_ms = self.clock.now().mono_ms;
        if self
            .last_view_query_ms
            .is_some_and(|last| now_ms < last + VIEW_QUERY_GAP_MS)
        {
            return;
        }
        self.last_view_query_ms = Some(now_ms);
        let epoch = self.map.as_ref().map_or(0, |(m, _)| m.epoch);
        let msg = Message::GetCluster { epoch };
        let target = self.locator.target_addr().clone();
        self.locator.sent();
        self.note_target();
        if let Some(frame) = self.peers.net().encode(&from, msg) {
            self.peers.send(target.as_str(), frame);
        }
    }

    /// Logs and publishes a move of the locator's target; true if it moved (perhaps to the same
    /// node, in a list of one).
    fn note_target(&mut self) -> bool {
        let moves = self.locator.moves();
        if moves == self.seen_moves {
            return false;
        }
        self.seen_moves = moves;
        if *self.locator.target_addr() == self.seen_target {
            return true;
        }
        self.seen_target = self.locator.target_addr().clone();
        let target = self.seen_target.to_string();
        info!(
            event = "view_service_target",
            %target,
            moves,
            "asking another view-service node (Q2: redirected or the last one went silent)"
        );
        self.target_sender.send_replace(target);
        true
    }

    /// Rebuilds the heap when stale entries dominate it.
    fn compact_timers(&mut self) {
        if self.timers.len() <= 4 * self.sessions.len() + 4096 {
            return;
        }
        self.timers = self
            .sessions
            .iter()
            .filter_map(|(client, s)| s.armed_ms.map(|at| Reverse((at, *client))))
            .collect();
    }
}

impl Work {
    /// `cmds` split by a plan over `groups`.
    fn planned(cmds: Vec<Command>, groups: &[GroupId]) -> Work {
        let random = if cmds.iter().any(|c| matches!(c, Command::RandomKey)) {
            random_u64()
        } else {
            0
        };
        let plan = Plan::new(cmds, groups, random);
        Work::Planned {
            replies: vec![None; plan.parts().len()],
            plan,
            next: 0,
            run: None,
            timed_out: false,
        }
    }
}

impl Job {
    /// Takes the outcome of the request the clerk executed; sets `finished` when the batch is
    /// done.
    fn completed(&mut self, outcome: Outcome, map: Option<&ClusterMap>, home: GroupId) {
        if let Outcome::CrossGroup = outcome {
            // A move split what was planned: plan again with the newer map (bounded).
            self.replans += 1;
            if self.replans > MAX_REPLANS {
                self.finished = Some(self.outcome(true));
                return;
            }
        }
        match &mut self.work {
            Work::Whole { cmds, .. } => match outcome {
                Outcome::CrossGroup => {
                    let cmds = Arc::unwrap_or_clone(std::mem::take(cmds));
                    self.work = Work::planned(cmds, &groups_of(map, home));
                }
                outcome => self.finished = Some(outcome),
            },
            Work::Planned {
                plan,
                replies,
                next,
                run,
                timed_out,
            } => {
                let Some(run) = run.take() else { return };
                match outcome {
                    Outcome::Replies(got) => {
                        for (slot, reply) in replies[run.parts.clone()].iter_mut().zip(got.iter()) {
                            *slot = Some(reply.clone());
                        }
                        *next = run.parts.end;
                    }
                    Outcome::CrossGroup => {}
                    Outcome::TimedOut => *timed_out = true,
                }
                if *timed_out || *next == plan.parts().len() {
                    self.finished = Some(self.outcome(false));
                }
            }
        }
    }

    /// Submits the batch, or its next run.
    fn start(
        &mut self,
        now: tandem_protocol::Now,
        clerk: &mut Clerk,
        map: Option<&ClusterMap>,
        home: GroupId,
    ) {
        let user = self.user.clone();
        match &mut self.work {
            Work::Whole { cmds, group } => {
                if cmds.iter().all(|c| c.keys().is_empty()) {
                    clerk.submit_to(now, cmds.clone(), user, *group);
                } else {
                    // Routed by its keys: when they move on together, the clerk follows them
                    // with the same (client, seq) (S8), even after an unanswered attempt.
                    clerk.submit_as(now, cmds.clone(), user);
                }
            }
            Work::Planned {
                plan, next, run, ..
            } => {
                if *next == plan.parts().len() {
                    // Nothing to send (an empty batch, or only CROSSSLOT answers).
                    self.finished = Some(self.outcome(false));
                    return;
                }
                let this = plan.run_at(*next, map, home);
                let cmds: Vec<Command> = plan.parts()[this.parts.clone()]
                    .iter()
                    .map(|p| p.cmd.clone())
                    .collect();
                match this.group {
                    Some(group) if this.named => clerk.submit_to(now, Arc::new(cmds), user, group),
                    _ => clerk.submit_as(now, Arc::new(cmds), user),
                };
                *run = Some(this);
            }
        }
    }

    /// What the connection gets: the merged replies, or `TimedOut` when nothing completed
    /// (`gave_up`: the rest is not sent).
    fn outcome(&mut self, gave_up: bool) -> Outcome {
        match &mut self.work {
            Work::Whole { .. } => Outcome::TimedOut,
            Work::Planned {
                plan,
                replies,
                timed_out,
                ..
            } => {
                if (*timed_out || gave_up) && replies.iter().all(Option::is_none) {
                    return Outcome::TimedOut;
                }
                Outcome::Replies(Arc::new(plan.merge(std::mem::take(replies))))
            }
        }
    }
}
