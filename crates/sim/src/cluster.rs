//! The deterministic cluster harness: one view service, N replica servers and M client
//! sessions, driven by virtual time and one seeded random generator, so that a seed replays a
//! whole run exactly. Scenario tests drive it directly; `run` drives it with random workloads
//! and faults.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;

use tandem_kv::{Command, Reply};
use tandem_protocol::message::{Endpoint, Message, Transmit};
use tandem_protocol::replica::Replica;
use tandem_protocol::rng::SplitMix64;
use tandem_protocol::{
    Clerk, ClerkConfig, ClientId, Completion, Failure, GroupId, Incarnation, Now, Outcome,
    ReplicaConfig, Seq, ServerId, ViewChangeCause, ViewEvent, ViewNum, ViewService,
    ViewServiceConfig,
};

use crate::history::{HistoryOp, Invariants};
use crate::net::{NetConfig, Network, NodeId};

/// Wall clocks start here (Unix ms, late 2023), so expiry times look like real ones.
const WALL_EPOCH_MS: u64 = 1_700_000_000_000;
/// View-service pauses remembered for the V3 invariant; far more than a run applies. Forgetting
/// one only makes the invariant stricter.
const MAX_REMEMBERED_PAUSES: usize = 1024;

/// How to build a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The one seed everything derives from.
    pub seed: u64,
    /// Replica servers (named s1, s2, ...). They start pinging in order, s1 first.
    pub servers: usize,
    /// Client sessions.
    pub clients: usize,
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
            servers: 3,
            clients: 3,
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
    replica: Option<Replica>,
    skew_ms: i64,
    paused_until_ms: u64,
    timer_at_ms: Option<u64>,
    /// The last moment the server was disrupted in a way that can legitimately make the view
    /// service declare it dead: started, crashed, restarted, paused (until the pause ends), or
    /// a message between it and the view service lost or delayed beyond the network's normal
    /// delay. The "no healthy server is declared dead" invariant (V3) measures from here.
    disrupted_at_ms: u64,
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
    vs: ViewService,
    vs_timer_at_ms: Option<u64>,
    /// Like a server's pause: deliveries to the view service and its timers wait until then.
    vs_paused_until_ms: u64,
    /// When the view service was paused, as `(from_ms, until_ms)`, oldest first (bounded).
    vs_pauses: VecDeque<(u64, u64)>,
    servers: Vec<ServerSlot>,
    by_id: BTreeMap<ServerId, usize>,
    clients: Vec<ClientSlot>,
    workload: Option<Box<dyn Workload>>,
    history: Vec<HistoryOp>,
    invariants: Invariants,
    trace: u64,
    events_processed: u64,
    /// Messages each view-service-facing sender sent, for the "not flooded" check.
    vs_requests: BTreeMap<NodeId, u64>,
}

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
        for i in 0..config.servers {
            let id = ServerId::new(format!("s{}", i + 1));
            let skew_ms = if config.clock_skew_max_ms == 0 {
                0
            } else {
                rng.below(2 * config.clock_skew_max_ms + 1) as i64 - config.clock_skew_max_ms as i64
            };
            let replica = Replica::new(
                id.clone(),
                GroupId(0),
                Incarnation(rng.next_u64()),
                config.replica.clone(),
            );
            by_id.insert(id.clone(), i);
            servers.push(ServerSlot {
                id,
                replica: Some(replica),
                skew_ms,
                paused_until_ms: 0,
                timer_at_ms: None,
                disrupted_at_ms: 0,
            });
        }
        let clients = (0..config.clients)
            .map(|i| ClientSlot {
                clerk: Clerk::new(ClientId(i as u64 + 1), GroupId(0), config.clerk.clone()),
                timer_at_ms: None,
                outstanding: None,
                completions: VecDeque::new(),
                submit_pending: false,
            })
            .collect();
        let vs = ViewService::new(config.view_service.clone());
        let mut cluster = Cluster {
            config,
            now_ms: 0,
            rng,
            net,
            queue: BinaryHeap::new(),
            next_seq: 0,
            vs,
            vs_timer_at_ms: None,
            vs_paused_until_ms: 0,
            vs_pauses: VecDeque::new(),
            servers,
            by_id,
            clients,
            workload: None,
            history: Vec::new(),
            invariants: Invariants::default(),
            trace: 0xcbf2_9ce4_8422_2325,
            events_processed: 0,
            vs_requests: BTreeMap::new(),
        };
        // Servers start one ping interval apart so that s1 is the first primary (V5). The view
        // service arms its timer once it has heard from anyone (its poll_timeout).
        for i in 0..cluster.servers.len() {
            let at = i as u64 * cluster.config.replica.ping_interval_ms / 2;
            cluster.servers[i].disrupted_at_ms = at;
            cluster.arm_timer(NodeId::Server(i), at);
        }
        cluster
    }

    // ---- observation ----

    /// Current virtual time.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The view service.
    pub fn view_service(&self) -> &ViewService {
        &self.vs
    }

    /// The view service's current view of group 0.
    pub fn view(&self) -> Option<tandem_protocol::View> {
        self.vs.view(GroupId(0)).cloned()
    }

    /// Why the group cannot make progress by the rules, if it cannot (see
    /// `ViewService::stuck_reason`).
    pub fn stuck_reason(&self) -> Option<String> {
        self.vs.stuck_reason(GroupId(0), self.now())
    }

    /// Is the current view acknowledged by its primary?
    pub fn view_acked(&self) -> bool {
        self.vs.table().group(GroupId(0)).is_some_and(|g| g.acked)
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
        let mut nodes = vec![NodeId::ViewService];
        nodes.extend((0..self.servers.len()).map(NodeId::Server));
        nodes.extend((0..self.clients.len()).map(NodeId::Client));
        nodes
    }

    // ---- faults ----

    /// Crashes server `i`: it stops and loses its memory (R3).
    pub fn crash(&mut self, i: usize) {
        self.servers[i].replica = None;
        self.servers[i].timer_at_ms = None;
        self.disrupted(i, self.now_ms);
    }

    /// Starts server `i` again as a new, empty server with a new incarnation (R3, V4).
    pub fn restart(&mut self, i: usize) {
        let incarnation = Incarnation(self.rng.next_u64());
        self.invariants.server_restarted(&self.servers[i].id);
        let slot = &mut self.servers[i];
        slot.replica = Some(Replica::new(
            slot.id.clone(),
            GroupId(0),
            incarnation,
            self.config.replica.clone(),
        ));
        slot.paused_until_ms = 0;
        slot.timer_at_ms = None;
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

    /// Freezes the view service for `duration_ms` (like SIGSTOP): messages to it and its timers
    /// wait. The servers stay healthy; the view service must not count its own stall against
    /// them (V3).
    pub fn pause_view_service(&mut self, duration_ms: u64) {
        let until_ms = self.now_ms + duration_ms;
        match self.vs_pauses.back_mut() {
            Some((_, end_ms)) if *end_ms >= self.now_ms => *end_ms = (*end_ms).max(until_ms),
            _ => self.vs_pauses.push_back((self.now_ms, until_ms)),
        }
        while self.vs_pauses.len() > MAX_REMEMBERED_PAUSES {
            self.vs_pauses.pop_front();
        }
        self.vs_paused_until_ms = self.vs_paused_until_ms.max(until_ms);
    }

    /// How long the view service was paused between `from_ms` and `to_ms`.
    fn view_service_paused_ms(&self, from_ms: u64, to_ms: u64) -> u64 {
        self.vs_pauses
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
            NodeId::ViewService => &mut self.vs_timer_at_ms,
        };
        if slot.is_some_and(|t| t <= at_ms) {
            return;
        }
        *slot = Some(at_ms);
        self.schedule_at(at_ms, EventKind::Timer { node });
    }

    fn endpoint(&self, node: NodeId) -> Endpoint {
        match node {
            NodeId::ViewService => Endpoint::ViewService(tandem_protocol::VsAddr::new(tandem_protocol::locator::DEFAULT_VIEW_SERVICE)),
            NodeId::Server(i) => Endpoint::Server(self.servers[i].id.clone()),
            NodeId::Client(c) => Endpoint::Client(self.clients[c].clerk.id()),
        }
    }

    fn node(&self, endpoint: &Endpoint) -> Option<NodeId> {
        match endpoint {
            Endpoint::ViewService(_) => Some(NodeId::ViewService),
            Endpoint::Server(id) => self.by_id.get(id).map(|i| NodeId::Server(*i)),
            Endpoint::Client(id) => {
                let c = id.0.checked_sub(1)? as usize;
                (c < self.clients.len()).then_some(NodeId::Client(c))
            }
        }
    }

    fn send(&mut self, from: NodeId, transmit: Transmit) {
        let Some(to) = self.node(&transmit.to) else {
            return;
        };
        if to == NodeId::ViewService {
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

    /// Observes the network where it matters for V3: a message between a server and the view
    /// service that is lost (a cut in either direction, a partition, a flapping link, a lossy
    /// network) or slower than the network's normal delay (a slowed node, a degraded network)
    /// disrupts that server. Watching every message here catches whatever a fault or a test does
    /// to the links, without each of them having to report it.
    fn observe_view_service_link(&mut self, from: NodeId, to: NodeId, delays: &[u64]) {
        let server = match (from, to) {
            (NodeId::Server(i), NodeId::ViewService) | (NodeId::ViewService, NodeId::Server(i)) => {
                i
            }
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
            NodeId::ViewService => 0,
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
        }
    }

    fn deliver(&mut self, at_ms: u64, from: NodeId, to: NodeId, msg: Message) {
        match to {
            NodeId::ViewService => {
                if self.vs_paused_until_ms > at_ms {
                    let until_ms = self.vs_paused_until_ms;
                    self.schedule_at(until_ms, EventKind::Deliver { from, to, msg });
                    return;
                }
                self.trace_event(1, to, 0);
                let from_endpoint = self.endpoint(from);
                let now = self.now();
                self.vs.handle(now, from_endpoint, msg);
                self.after_view_service();
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
                let from_endpoint = self.endpoint(from);
                let now = self.now();
                self.clients[c].clerk.handle(now, from_endpoint, msg);
                self.after_client(c);
            }
        }
    }

    fn timer(&mut self, node: NodeId, at_ms: u64) {
        match node {
            NodeId::ViewService => {
                if self.vs_timer_at_ms != Some(at_ms) {
                    return; // Superseded.
                }
                self.vs_timer_at_ms = None;
                if self.vs_paused_until_ms > at_ms {
                    let until_ms = self.vs_paused_until_ms;
                    self.arm_timer(node, until_ms);
                    return;
                }
                let now = self.now();
                self.vs.handle_timeout(now);
                self.after_view_service();
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
                self.invariants.answered(&id, viewnum);
            }
            if capture == Some(&t.to) {
                captured.push(t.msg);
            } else {
                self.send(NodeId::Server(i), t);
            }
        }
        if let Some(next) = next {
            self.arm_timer(NodeId::Server(i), next.max(self.now_ms + 1));
        }
        captured
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

    /// Sends the view service's outputs, checks its decisions and re-arms its timer.
    fn after_view_service(&mut self) {
        let now = self.now();
        while let Some(t) = self.vs.poll_transmit(now) {
            self.send(NodeId::ViewService, t);
        }
        while let Some(event) = self.vs.poll_event() {
            if let ViewEvent::NewView { view, causes, .. } = &event {
                self.trace_event(4, NodeId::ViewService, view.num.0);
                for cause in causes {
                    self.check_declared_dead(cause);
                }
            }
            self.invariants.view_event(&event);
        }
        if let Some(next) = self.vs.poll_timeout() {
            self.arm_timer(NodeId::ViewService, next.max(self.now_ms + 1));
        }
    }

    /// V3: the view service declares a server dead only for silence while the view service
    /// itself was running. A server that was up, unpaused and connected to the view service
    /// (both directions, at the normal delay) for the whole detection window of view-service
    /// running time before the decision was never silent: declaring it dead is a violation.
    /// (Time the view service spent paused does not count towards the window: a server silent
    /// while the view service ran, whose death V6 held back until after a pause, may be
    /// declared dead when the view service resumes.)
    fn check_declared_dead(&mut self, cause: &ViewChangeCause) {
        if !matches!(
            cause.failure(),
            Some(Failure::MissedPings { .. } | Failure::NeverPinged)
        ) {
            return;
        }
        let Some(&i) = self.by_id.get(cause.server()) else {
            return;
        };
        let slot = &self.servers[i];
        let since_ms = slot.disrupted_at_ms;
        let healthy_for_ms =
            (slot.replica.is_some() && slot.paused_until_ms <= self.now_ms).then(|| {
                self.now_ms.saturating_sub(since_ms)
                    - self.view_service_paused_ms(since_ms, self.now_ms)
            });
        let vs = &self.config.view_service;
        // Detection takes dead_after_ms; a ping may be in flight for one interval plus the
        // network's delay, and the view service may judge up to a ping interval late.
        let window_ms = vs.dead_after_ms() + 2 * vs.ping_interval_ms + self.config.net.delay_max_ms;
        self.invariants
            .declared_dead(cause, self.now_ms, healthy_for_ms, window_ms);
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
