//! A hostile peer: mutated copies of real messages, and messages made up from scratch, with
//! senders among the real endpoints. The simulator's `hostile` fault injects them into the
//! cores; the fuzz property tests and the cargo-fuzz targets feed them to each core directly.
//!
//! Every choice is drawn from a [`Source`]: a seeded generator in the simulator and the tests, the
//! fuzzer's bytes in `fuzz/`. The same draws always make the same messages.

use std::sync::Arc;

use bytes::Bytes;
use tandem_protocol::consensus::{DiskState, NodeConfig, ViewServiceNode};
use tandem_protocol::locator::DEFAULT_VIEW_SERVICE;
use tandem_protocol::message::{
    ClientRecord, Forward, ForwardReply, ForwardResult, LogEntry, Op, Ping, Request, Response,
    SnapshotEnd, Transfer, TransferReply, ViewReply,
};
use tandem_protocol::rng::SplitMix64;
use tandem_protocol::{
    Clerk, ClerkConfig, ClientId, ConfigNum, Endpoint, GroupId, Incarnation, LogPos, Message, Now,
    OpIndex, Replica, ReplicaConfig, Seq, ServerId, Transmit, View, ViewNum, ViewService,
    ViewServiceConfig, VsAddr,
};

/// Where the mutator's choices come from.
pub trait Source {
    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64;

    /// True when the source has nothing more to give (a fuzzer's input used up): drivers stop.
    fn is_exhausted(&self) -> bool {
        false
    }

    /// A value below `bound` (0 when `bound` is 0).
    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }
}

impl Source for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        SplitMix64::next_u64(self)
    }
}

/// Draws from a byte string (a fuzzer's input); zeros once it runs out.
#[derive(Debug)]
pub struct ByteSource<'a> {
    bytes: &'a [u8],
}

impl<'a> ByteSource<'a> {
    /// Draws from `bytes`.
    pub fn new(bytes: &'a [u8]) -> ByteSource<'a> {
        ByteSource { bytes }
    }

    /// True once every byte was used.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl Source for ByteSource<'_> {
    fn is_exhausted(&self) -> bool {
        self.bytes.is_empty()
    }

    fn next_u64(&mut self) -> u64 {
        let take = self.bytes.len().min(8);
        let mut word = [0u8; 8];
        word[..take].copy_from_slice(&self.bytes[..take]);
        self.bytes = &self.bytes[take..];
        u64::from_le_bytes(word)
    }
}

/// Makes hostile messages among a fixed cast of endpoints.
#[derive(Clone, Debug)]
pub struct Mutator {
    servers: Vec<ServerId>,
    view_services: Vec<VsAddr>,
    groups: Vec<GroupId>,
}

/// Most entries a made-up forward or transfer carries.
const MAX_MADE_UP_ENTRIES: u64 = 8;

impl Mutator {
    /// A mutator whose senders and named servers are among `servers` and `view_services`
    /// (plus one stranger of each kind), for `groups`.
    ///
    /// # Panics
    /// If `groups` is empty.
    pub fn new(servers: Vec<ServerId>, view_services: Vec<VsAddr>, groups: Vec<GroupId>) -> Self {
        assert!(!groups.is_empty(), "at least one group");
        let mut servers = servers;
        servers.push(ServerId::new("stranger"));
        let mut view_services = view_services;
        view_services.push(VsAddr::new("stranger-vs"));
        Mutator {
            servers,
            view_services,
            groups,
        }
    }

    fn pick<'a, T>(rng: &mut impl Source, items: &'a [T]) -> &'a T {
        &items[rng.below(items.len() as u64) as usize]
    }

    /// A number near `base`, or one at an edge of the range.
    fn num(rng: &mut impl Source, base: u64) -> u64 {
        match rng.below(10) {
            0 => 0,
            1 => u64::MAX,
            2 => u64::MAX - rng.below(3),
            3 => base.saturating_add(1),
            4 => base.saturating_sub(1),
            5 => rng.below(8),
            6 => base.saturating_add(rng.below(1000)),
            7 => rng.next_u64(),
            _ => base,
        }
    }

    fn server(&self, rng: &mut impl Source) -> ServerId {
        Self::pick(rng, &self.servers).clone()
    }

    fn group(&self, rng: &mut impl Source) -> GroupId {
        *Self::pick(rng, &self.groups)
    }

    /// A sender: mostly a real server or view-service node, sometimes a client.
    pub fn sender(&self, rng: &mut impl Source) -> Endpoint {
        match rng.below(8) {
            0..=4 => Endpoint::Server(self.server(rng)),
            5 | 6 => Endpoint::ViewService(Self::pick(rng, &self.view_services).clone()),
            _ => Endpoint::Client(ClientId(rng.below(4))),
        }
    }

    fn pos(rng: &mut impl Source, base: LogPos) -> LogPos {
        LogPos {
            index: OpIndex(Self::num(rng, base.index.0)),
            view: ViewNum(Self::num(rng, base.view.0)),
        }
    }

    fn view(&self, rng: &mut impl Source, base: ViewNum) -> View {
        let backups = (0..rng.below(3)).map(|_| self.server(rng)).collect();
        View {
            num: ViewNum(Self::num(rng, base.0)),
            primary: self.server(rng),
            backups,
        }
    }

    fn entry(rng: &mut impl Source, pos: LogPos) -> LogEntry {
        let op = match rng.below(3) {
            0 => {
                let key = Bytes::from(format!("k{}", rng.below(4)));
                let cmd = if rng.below(2) == 0 {
                    tandem_kv::Command::parse(&[Bytes::from("GET"), key])
                } else {
                    tandem_kv::Command::parse(&[Bytes::from("SET"), key, Bytes::from("x")])
                };
                Op::Client {
                    client: ClientId(rng.below(4)),
                    seq: Seq(Self::num(rng, 1)),
                    cmds: Arc::new(cmd.ok().into_iter().collect()),
                    user: None,
                }
            }
            1 => Op::Expire {
                keys: vec![Bytes::from(format!("k{}", rng.below(4)))],
            },
            _ => Op::ForgetClients {
                idle_before_ms: Self::num(rng, 1000),
            },
        };
        LogEntry {
            pos,
            now_ms: Self::num(rng, 1000),
            random: rng.next_u64(),
            op,
            limits: tandem_kv::Limits::default(),
        }
    }

    /// Entries following `prev`, then possibly reordered, duplicated, dropped or re-tagged.
    fn entries(rng: &mut impl Source, prev: LogPos, base: &[LogEntry]) -> Vec<LogEntry> {
        let mut entries: Vec<LogEntry> = if base.is_empty() || rng.below(4) == 0 {
            let mut at = prev;
            (0..rng.below(MAX_MADE_UP_ENTRIES))
                .map(|_| {
                    at = LogPos {
                        index: OpIndex(at.index.0.wrapping_add(1)),
                        view: at.view,
                    };
                    Self::entry(rng, at)
                })
                .collect()
        } else {
            base.to_vec()
        };
        if entries.is_empty() {
            return entries;
        }
        let len = entries.len() as u64;
        match rng.below(6) {
            0 => {
                let (i, j) = (rng.below(len) as usize, rng.below(len) as usize);
                entries.swap(i, j);
            }
            1 => {
                let i = rng.below(len) as usize;
                let copy = entries[i].clone();
                entries.insert(i, copy);
            }
            2 => {
                entries.remove(rng.below(len) as usize);
            }
            3 => {
                let i = rng.below(len) as usize;
                entries[i].pos = Self::pos(rng, entries[i].pos);
            }
            _ => {}
        }
        entries
    }

    /// A mutated copy of `msg`, a real message, with a sender among the cast.
    pub fn mutate(&self, rng: &mut impl Source, msg: &Message) -> (Endpoint, Message) {
        let from = self.sender(rng);
        let msg = match msg {
            Message::Forward(f) => {
                let prev = Self::pos(rng, f.prev);
                Message::Forward(Forward {
                    view: ViewNum(Self::num(rng, f.view.0)),
                    prev,
                    entries: Arc::new(Self::entries(rng, prev, &f.entries)),
                })
            }
            Message::ForwardReply(r) => {
                let result = match (rng.below(4), r.result) {
                    (0, _) => ForwardResult::Reject,
                    (1, ForwardResult::Ack { last } | ForwardResult::Gap { last }) => {
                        ForwardResult::Gap {
                            last: Self::pos(rng, last),
                        }
                    }
                    (_, ForwardResult::Ack { last } | ForwardResult::Gap { last }) => {
                        ForwardResult::Ack {
                            last: Self::pos(rng, last),
                        }
                    }
                    (_, ForwardResult::Reject) => ForwardResult::Ack {
                        last: Self::pos(rng, LogPos::EMPTY),
                    },
                };
                Message::ForwardReply(ForwardReply {
                    view: ViewNum(Self::num(rng, r.view.0)),
                    result,
                })
            }
            Message::Transfer(t) => Message::Transfer(Transfer {
                view: ViewNum(Self::num(rng, t.view.0)),
                transfer_id: Self::num(rng, t.transfer_id),
                chunk: Self::num(rng, u64::from(t.chunk)) as u32,
                entries: t.entries.clone(),
                clients: t.clients.clone(),
                acl: t.acl.clone(),
                shard: t.shard.clone(),
                done: match (rng.below(3), t.done) {
                    (0, _) => None,
                    (_, Some(end)) => Some(SnapshotEnd {
                        last: Self::pos(rng, end.last),
                        clock_ms: Self::num(rng, end.clock_ms),
                    }),
                    (_, None) => Some(SnapshotEnd {
                        last: Self::pos(rng, LogPos::EMPTY),
                        clock_ms: 0,
                    }),
                },
            }),
            Message::TransferReply(r) => Message::TransferReply(TransferReply {
                view: ViewNum(Self::num(rng, r.view.0)),
                transfer_id: Self::num(rng, r.transfer_id),
                next_chunk: match rng.below(4) {
                    0 => None,
                    _ => Some(Self::num(rng, u64::from(r.next_chunk.unwrap_or(0))) as u32),
                },
                installed: match (rng.below(3), r.installed) {
                    (0, _) => None,
                    (_, Some(at)) => Some(Self::pos(rng, at)),
                    (_, None) => Some(Self::pos(rng, LogPos::EMPTY)),
                },
            }),
            Message::PingReply(r) | Message::ViewReply(r) => {
                let base = r.view.as_ref().map_or(ViewNum::NONE, |v| v.num);
                let reply = ViewReply {
                    group: if rng.below(4) == 0 {
                        self.group(rng)
                    } else {
                        r.group
                    },
                    view: (rng.below(8) != 0).then(|| self.view(rng, base)),
                    member_incarnation: r.member_incarnation,
                    cluster: None,
                };
                if rng.below(2) == 0 {
                    Message::PingReply(reply)
                } else {
                    Message::ViewReply(reply)
                }
            }
            Message::Ping(p) => Message::Ping(Ping {
                group: if rng.below(4) == 0 {
                    GroupId(rng.next_u64() as u32)
                } else {
                    p.group
                },
                server: if rng.below(2) == 0 {
                    self.server(rng)
                } else {
                    p.server.clone()
                },
                viewnum: ViewNum(Self::num(rng, p.viewnum.0)),
                incarnation: Incarnation(Self::num(rng, p.incarnation.0)),
                client_addr: p.client_addr.clone(),
                config_done: ConfigNum(Self::num(rng, p.config_done.0)),
                cluster_epoch: Self::num(rng, p.cluster_epoch),
            }),
            Message::Request(r) => Message::Request(Request {
                group: r.group,
                client: ClientId(Self::num(rng, r.client.0)),
                seq: Seq(Self::num(rng, r.seq.0)),
                cmds: r.cmds.clone(),
                user: r.user.clone(),
            }),
            Message::Response(r) => Message::Response(Response {
                client: r.client,
                seq: Seq(Self::num(rng, r.seq.0)),
                result: r.result.clone(),
            }),
            other => other.clone(),
        };
        (from, msg)
    }

    /// A message made up from scratch, with a sender among the cast.
    pub fn invent(&self, rng: &mut impl Source) -> (Endpoint, Message) {
        let base = match rng.below(10) {
            0 => Message::Forward(Forward {
                view: ViewNum(rng.below(4)),
                prev: Self::pos(rng, LogPos::EMPTY),
                entries: Arc::new(Vec::new()),
            }),
            1 => Message::ForwardReply(ForwardReply {
                view: ViewNum(rng.below(4)),
                result: ForwardResult::Ack {
                    last: LogPos::EMPTY,
                },
            }),
            2 => Message::Transfer(Transfer {
                view: ViewNum(rng.below(4)),
                transfer_id: rng.below(4),
                chunk: 0,
                entries: vec![(
                    Bytes::from(format!("k{}", rng.below(4))),
                    tandem_kv::Entry::persistent(tandem_kv::Value::Str(Bytes::from("v"))),
                )],
                clients: vec![(
                    ClientId(rng.below(4)),
                    ClientRecord {
                        seq: Seq(rng.below(4)),
                        index: OpIndex(rng.below(4)),
                        replies: None,
                        at_ms: 0,
                    },
                )],
                done: None,
                acl: None,
                shard: None,
            }),
            3 => Message::TransferReply(TransferReply {
                view: ViewNum(rng.below(4)),
                transfer_id: rng.below(4),
                next_chunk: Some(0),
                installed: None,
            }),
            4 => Message::PingReply(ViewReply {
                group: self.group(rng),
                view: None,
                member_incarnation: Some(Incarnation(rng.below(3))),
                cluster: None,
            }),
            5 => Message::Ping(Ping {
                group: self.group(rng),
                server: self.server(rng),
                viewnum: ViewNum(rng.below(4)),
                incarnation: Incarnation(rng.below(3)),
                client_addr: None,
                config_done: tandem_protocol::ConfigNum(0),
                cluster_epoch: 0,
            }),
            6 => Message::GetView {
                group: self.group(rng),
            },
            7 => Message::NotLeader {
                leader: (rng.below(2) == 0).then(|| Self::pick(rng, &self.view_services).clone()),
            },
            8 => Message::Raft(Bytes::from(
                (0..rng.below(64))
                    .map(|_| rng.below(256) as u8)
                    .collect::<Vec<u8>>(),
            )),
            _ => Message::Response(Response {
                client: ClientId(rng.below(4)),
                seq: Seq(rng.below(4)),
                result: Ok(Arc::new(Vec::new())),
            }),
        };
        self.mutate(rng, &base)
    }
}

// ---- drivers: one core (or pair) under a hostile peer, shared by the property tests and the
// ---- cargo-fuzz targets ----

/// The cast the drivers use: servers `a`, `b`, `c`, the default view-service node, groups 0
/// and 1.
pub fn default_mutator() -> Mutator {
    Mutator::new(
        vec![ServerId::new("a"), ServerId::new("b"), ServerId::new("c")],
        vec![VsAddr::new(DEFAULT_VIEW_SERVICE)],
        vec![GroupId(0), GroupId(1)],
    )
}

fn set_command(key: &str) -> Arc<Vec<tandem_kv::Command>> {
    let args = [
        Bytes::from("SET"),
        Bytes::from(key.to_owned()),
        Bytes::from("v"),
    ];
    Arc::new(tandem_kv::Command::parse(&args).ok().into_iter().collect())
}

/// Primary `a` and backup `b` of view 1 exchanging real traffic (a client writes every seventh
/// step) while a hostile peer injects mutated copies of it and made-up messages into both, for
/// up to `steps` steps (fewer if the source runs out). Returns the pair for checks.
pub fn drive_replicas(rng: &mut impl Source, steps: u64) -> (Replica, Replica) {
    let m = default_mutator();
    let group = GroupId(0);
    let vs = Endpoint::ViewService(VsAddr::new(DEFAULT_VIEW_SERVICE));
    let new = |name: &str| {
        Replica::new(
            ServerId::new(name),
            group,
            Incarnation(1),
            ReplicaConfig::default(),
        )
    };
    let (mut a, mut b) = (new("a"), new("b"));
    let reply = Message::PingReply(ViewReply {
        group,
        view: Some(View {
            num: ViewNum(1),
            primary: ServerId::new("a"),
            backups: vec![ServerId::new("b")],
        }),
        member_incarnation: Some(Incarnation(1)),
        cluster: None,
    });
    a.handle(Now::at_ms(0), vs.clone(), reply.clone());
    b.handle(Now::at_ms(0), vs, reply);
    let mut seen: Vec<Message> = Vec::new();
    for step in 0..steps {
        if rng.is_exhausted() {
            break;
        }
        let now = Now::at_ms(step);
        if step % 7 == 0 {
            let request = Request {
                group,
                client: ClientId(step),
                seq: Seq(1),
                cmds: set_command(&format!("k{}", step % 5)),
                user: None,
            };
            a.handle(
                now,
                Endpoint::Client(ClientId(step)),
                Message::Request(request),
            );
        }
        let (from, msg) = if !seen.is_empty() && rng.below(3) != 0 {
            let i = rng.below(seen.len() as u64) as usize;
            m.mutate(rng, &seen[i])
        } else {
            m.invent(rng)
        };
        if rng.below(2) == 0 {
            a.handle(now, from, msg);
        } else {
            b.handle(now, from, msg);
        }
        a.handle_timeout(now);
        b.handle_timeout(now);
        // Real traffic between them, remembered for mutation.
        let out: Vec<Transmit> = std::iter::from_fn(|| a.poll_transmit(now))
            .chain(std::iter::from_fn(|| b.poll_transmit(now)))
            .collect();
        for t in out {
            if seen.len() < 256 {
                seen.push(t.msg.clone());
            } else {
                let i = rng.below(256) as usize;
                seen[i] = t.msg.clone();
            }
            match &t.to {
                Endpoint::Server(s) if s.as_str() == "a" => {
                    a.handle(now, Endpoint::Server(ServerId::new("b")), t.msg);
                }
                Endpoint::Server(s) if s.as_str() == "b" => {
                    b.handle(now, Endpoint::Server(ServerId::new("a")), t.msg);
                }
                _ => {}
            }
        }
    }
    (a, b)
}

/// A standalone view service bounded to 16 groups of at most 4 servers outside their view,
/// fed made-up messages for up to `steps` steps.
pub fn drive_standalone_view_service(rng: &mut impl Source, steps: u64) -> ViewService {
    let m = default_mutator();
    let config = ViewServiceConfig {
        max_groups: 16,
        max_servers_per_group: 4,
        ..ViewServiceConfig::default()
    };
    let mut vs = ViewService::new(config);
    for step in 0..steps {
        if rng.is_exhausted() {
            break;
        }
        let now = Now::at_ms(step * 10);
        let (from, msg) = m.invent(rng);
        vs.handle(now, from, msg);
        vs.handle_timeout(now);
        while vs.poll_transmit(now).is_some() {}
        while vs.poll_event().is_some() {}
    }
    vs
}

/// A Raft message from node 2 or 3 to node 1 with numbers near the node's own term and
/// applied index or at the edges of the range, and entries that may not follow one another.
pub fn raft_message(rng: &mut impl Source, term: u64, last: u64) -> Message {
    use protobuf::Message as _;
    use raft::eraftpb::{Entry, MessageType};
    const TYPES: [MessageType; 19] = [
        MessageType::MsgHup,
        MessageType::MsgBeat,
        MessageType::MsgPropose,
        MessageType::MsgAppend,
        MessageType::MsgAppendResponse,
        MessageType::MsgRequestVote,
        MessageType::MsgRequestVoteResponse,
        MessageType::MsgSnapshot,
        MessageType::MsgHeartbeat,
        MessageType::MsgHeartbeatResponse,
        MessageType::MsgUnreachable,
        MessageType::MsgSnapStatus,
        MessageType::MsgCheckQuorum,
        MessageType::MsgTransferLeader,
        MessageType::MsgTimeoutNow,
        MessageType::MsgReadIndex,
        MessageType::MsgReadIndexResp,
        MessageType::MsgRequestPreVote,
        MessageType::MsgRequestPreVoteResponse,
    ];
    fn near(rng: &mut impl Source, base: u64) -> u64 {
        match rng.below(6) {
            0 => base,
            1 => base + 1,
            2 => base.saturating_sub(1),
            3 => rng.below(4),
            4 => u64::MAX - rng.below(2),
            _ => base + rng.below(5),
        }
    }
    let mut m = raft::eraftpb::Message::default();
    m.set_msg_type(TYPES[rng.below(TYPES.len() as u64) as usize]);
    m.to = 1;
    m.from = 2 + rng.below(2);
    m.term = near(rng, term);
    m.log_term = near(rng, term);
    m.index = near(rng, last);
    m.commit = near(rng, last);
    m.reject = rng.below(4) == 0;
    m.reject_hint = near(rng, last);
    for i in 0..rng.below(4) {
        let index = if rng.below(5) == 0 {
            near(rng, last)
        } else {
            m.index.wrapping_add(1 + i)
        };
        let term = near(rng, term).min(m.term);
        m.entries.push(Entry {
            index,
            term,
            ..Default::default()
        });
    }
    if m.get_msg_type() == MessageType::MsgSnapshot {
        let meta = m.mut_snapshot().mut_metadata();
        meta.index = near(rng, last);
        meta.term = near(rng, term);
        meta.mut_conf_state().voters = vec![1, 2, 3];
    }
    Message::Raft(Bytes::from(m.write_to_bytes().unwrap_or_default()))
}

/// Node 1 of a three-node view service fed Raft messages from nodes 2 and 3 (with their true
/// addresses) and made-up messages, for up to `steps` steps. A node that stops because a
/// "leader" claims commits past its log (what a disk that lost acknowledged writes looks
/// like: not a panic) is replaced by a fresh one. Returns how many were replaced.
pub fn drive_view_service_node(rng: &mut impl Source, steps: u64) -> u64 {
    let m = default_mutator();
    let addr = |i: u64| VsAddr::new(format!("vs{i}"));
    let mut config = NodeConfig::single(addr(1));
    config.peers = (1..=3).map(|i| (i, addr(i))).collect();
    config.seed = rng.next_u64();
    let fresh = || ViewServiceNode::new(config.clone(), DiskState::default()).ok();
    let Some(mut node) = fresh() else {
        return 0;
    };
    let mut replaced = 0;
    for step in 0..steps {
        if rng.is_exhausted() {
            break;
        }
        if node.failure().is_some() {
            replaced += 1;
            match fresh() {
                Some(n) => node = n,
                None => break,
            }
        }
        let now = Now::at_ms(step * 10);
        let (from, msg) = if rng.below(2) == 0 {
            let raft_from = 2 + rng.below(2);
            let msg = raft_message(rng, node.term(), node.applied());
            (Endpoint::ViewService(addr(raft_from)), msg)
        } else {
            m.invent(rng)
        };
        node.handle(now, from, msg);
        node.handle_timeout(now);
        while node.poll_transmit(now).is_some() {}
        while let Some(p) = node.poll_persist() {
            node.persisted(now, p.id);
        }
        while node.poll_event().is_some() {}
    }
    replaced
}

/// The view service both ways: standalone, and as a node of a replicated group.
pub fn drive_view_service(rng: &mut impl Source, steps: u64) {
    drive_standalone_view_service(rng, steps);
    drive_view_service_node(rng, steps);
}

/// A clerk with a request always outstanding, fed made-up messages for up to `steps` steps.
pub fn drive_clerk(rng: &mut impl Source, steps: u64) -> Clerk {
    let m = default_mutator();
    let mut clerk = Clerk::new(ClientId(1), GroupId(0), ClerkConfig::default());
    for step in 0..steps {
        if rng.is_exhausted() {
            break;
        }
        let now = Now::at_ms(step * 10);
        if clerk.is_idle() {
            clerk.submit(now, set_command("k"));
        }
        let (from, msg) = m.invent(rng);
        clerk.handle(now, from, msg);
        clerk.handle_timeout(now);
        while clerk.poll_transmit(now).is_some() {}
        while clerk.poll_completion().is_some() {}
    }
    clerk
}
