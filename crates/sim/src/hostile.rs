//! A hostile peer: mutated copies of real messages, and messages made up from scratch, with
//! senders among the real endpoints. The simulator's `hostile` fault injects them into the
//! cores; the fuzz property tests and the cargo-fuzz targets feed them to each core directly.
//!
//! Every choice is drawn from a [`Source`]: a seeded generator in the simulator and the tests, the
//! fuzzer's bytes in `fuzz/`. The same draws always make the same messages.

use std::sync::Arc;

use bytes::Bytes;
use tandem_protocol::message::{
    ClientRecord, Forward, ForwardReply, ForwardResult, LogEntry, Op, Ping, Request, Response,
    SnapshotEnd, Transfer, TransferReply, ViewReply,
};
use tandem_protocol::rng::SplitMix64;
use tandem_protocol::{
    ClientId, Endpoint, GroupId, Incarnation, LogPos, Message, OpIndex, Seq, ServerId, View,
    ViewNum, VsAddr,
};

/// Where the mutator's choices come from.
pub trait Source {
    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64;

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
            }),
            Message::Request(r) => Message::Request(Request {
                group: r.group,
                client: ClientId(Self::num(rng, r.client.0)),
                seq: Seq(Self::num(rng, r.seq.0)),
                cmds: r.cmds.clone(),
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
            }),
            5 => Message::Ping(Ping {
                group: self.group(rng),
                server: self.server(rng),
                viewnum: ViewNum(rng.below(4)),
                incarnation: Incarnation(rng.below(3)),
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
