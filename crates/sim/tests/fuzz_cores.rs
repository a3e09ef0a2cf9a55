//! Property tests: each core fed thousands of hostile messages (mutated copies of real traffic
//! and made-up ones, from senders among the real endpoints) from a seeded generator. No input
//! may panic a core or grow its state without bound (P9-P11, C4, V10-V13). The cargo-fuzz
//! targets in `fuzz/` drive the same generator from the fuzzer's bytes.

use std::sync::Arc;

use bytes::Bytes;
use tandem_kv::Command;
use tandem_protocol::consensus::{DiskState, NodeConfig, ViewServiceNode};
use tandem_protocol::locator::DEFAULT_VIEW_SERVICE;
use tandem_protocol::message::ViewReply;
use tandem_protocol::rng::SplitMix64;
use tandem_protocol::{
    Clerk, ClerkConfig, ClientId, Endpoint, GroupId, Incarnation, Message, Now, Replica,
    ReplicaConfig, ServerId, Transmit, View, ViewNum, ViewService, ViewServiceConfig, VsAddr,
};
use tandem_sim::hostile::Mutator;

const GROUP: GroupId = GroupId(0);
const MESSAGES_PER_SEED: u64 = 2_000;

/// Seeds to run: `default`, or `TANDEM_FUZZ_SEEDS` for a longer hunt.
fn seeds(default: u64) -> std::ops::RangeInclusive<u64> {
    let count = std::env::var("TANDEM_FUZZ_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    1..=count
}

fn mutator() -> Mutator {
    Mutator::new(
        vec![ServerId::new("a"), ServerId::new("b"), ServerId::new("c")],
        vec![VsAddr::new(DEFAULT_VIEW_SERVICE)],
        vec![GROUP, GroupId(1)],
    )
}

fn set(key: &str) -> Arc<Vec<Command>> {
    let args = [
        Bytes::from("SET"),
        Bytes::from(key.to_owned()),
        Bytes::from("v"),
    ];
    Arc::new(vec![Command::parse(&args).expect("a valid SET")])
}

/// A primary `a` with backup `b`, and `b` itself, exchanging real traffic while a hostile peer
/// injects mutated copies of it and made-up messages into both.
#[test]
fn p9_p10_p11_replicas_survive_hostile_peers() {
    let vs = Endpoint::ViewService(VsAddr::new(DEFAULT_VIEW_SERVICE));
    let m = mutator();
    for seed in seeds(20) {
        let mut rng = SplitMix64::new(seed);
        let mut a = Replica::new(
            ServerId::new("a"),
            GROUP,
            Incarnation(1),
            ReplicaConfig::default(),
        );
        let mut b = Replica::new(
            ServerId::new("b"),
            GROUP,
            Incarnation(1),
            ReplicaConfig::default(),
        );
        let view = View {
            num: ViewNum(1),
            primary: ServerId::new("a"),
            backups: vec![ServerId::new("b")],
        };
        let reply = Message::PingReply(ViewReply {
            group: GROUP,
            view: Some(view),
            member_incarnation: Some(Incarnation(1)),
        });
        a.handle(Now::at_ms(0), vs.clone(), reply.clone());
        b.handle(Now::at_ms(0), vs.clone(), reply);
        let mut seen: Vec<Message> = Vec::new();
        for step in 0..MESSAGES_PER_SEED {
            let now = Now::at_ms(step);
            if step % 7 == 0 {
                a.handle(
                    now,
                    Endpoint::Client(ClientId(step)),
                    Message::Request(tandem_protocol::message::Request {
                        group: GROUP,
                        client: ClientId(step),
                        seq: tandem_protocol::Seq(1),
                        cmds: set(&format!("k{}", step % 5)),
                    }),
                );
            }
            let (from, msg) = if !seen.is_empty() && rng.below(3) != 0 {
                let i = rng.below(seen.len() as u64) as usize;
                m.mutate(&mut rng, &seen[i])
            } else {
                m.invent(&mut rng)
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
                        a.handle(now, Endpoint::Server(ServerId::new("b")), t.msg)
                    }
                    Endpoint::Server(s) if s.as_str() == "b" => {
                        b.handle(now, Endpoint::Server(ServerId::new("a")), t.msg)
                    }
                    _ => {}
                }
            }
        }
        // Bounded: at most one transfer per backup of the (possibly forged) view.
        assert!(a.transfers_in_progress().len() <= tandem_protocol::view::MAX_BACKUPS);
    }
}

#[test]
fn v10_v11_v12_the_view_service_survives_hostile_peers_with_bounded_state() {
    let m = mutator();
    let config = ViewServiceConfig {
        max_groups: 16,
        max_servers_per_group: 4,
        ..ViewServiceConfig::default()
    };
    for seed in seeds(20) {
        let mut rng = SplitMix64::new(seed);
        let mut vs = ViewService::new(config.clone());
        for step in 0..MESSAGES_PER_SEED {
            let now = Now::at_ms(step * 10);
            let (from, msg) = m.invent(&mut rng);
            vs.handle(now, from, msg);
            vs.handle_timeout(now);
            while vs.poll_transmit(now).is_some() {}
            while vs.poll_event().is_some() {}
        }
        let status = vs.status(Now::at_ms(MESSAGES_PER_SEED * 10));
        assert!(status.groups.len() <= 16, "{}", status.groups.len());
        for g in &status.groups {
            assert!(g.servers.len() <= 4 + 1 + config.backups, "{g:?}");
        }
    }
}

/// A Raft message from node 2 or 3 to node 1 with fields near the node's own numbers or at the
/// edges of the range, entries that may or may not follow one another.
fn raft_message(rng: &mut SplitMix64, term: u64, last: u64) -> Message {
    use protobuf::Message as _;
    use raft::eraftpb::{Entry, MessageType};
    let types = [
        MessageType::MsgAppend,
        MessageType::MsgAppendResponse,
        MessageType::MsgHeartbeat,
        MessageType::MsgHeartbeatResponse,
        MessageType::MsgRequestVote,
        MessageType::MsgRequestVoteResponse,
        MessageType::MsgRequestPreVote,
        MessageType::MsgRequestPreVoteResponse,
        MessageType::MsgSnapshot,
        MessageType::MsgTimeoutNow,
        MessageType::MsgTransferLeader,
        MessageType::MsgReadIndex,
        MessageType::MsgPropose,
    ];
    let near = |rng: &mut SplitMix64, base: u64| match rng.below(6) {
        0 => base,
        1 => base + 1,
        2 => base.saturating_sub(1),
        3 => rng.below(4),
        4 => u64::MAX - rng.below(2),
        _ => base + rng.below(5),
    };
    let mut m = raft::eraftpb::Message::default();
    m.set_msg_type(types[rng.below(types.len() as u64) as usize]);
    m.to = 1;
    m.from = 2 + rng.below(2);
    m.term = near(rng, term);
    m.log_term = near(rng, term);
    m.index = near(rng, last);
    m.commit = near(rng, last);
    m.reject = rng.below(4) == 0;
    m.reject_hint = near(rng, last);
    for i in 0..rng.below(4) {
        let mut e = Entry::default();
        e.index = if rng.below(5) == 0 {
            near(rng, last)
        } else {
            m.index + 1 + i
        };
        e.term = near(rng, term).min(m.term);
        m.entries.push(e);
    }
    if m.get_msg_type() == MessageType::MsgSnapshot {
        let meta = m.mut_snapshot().mut_metadata();
        meta.index = near(rng, last);
        meta.term = near(rng, term);
        meta.mut_conf_state().voters = vec![1, 2, 3];
    }
    Message::Raft(Bytes::from(m.write_to_bytes().expect("encodes")))
}

#[test]
fn v13_a_view_service_node_survives_hostile_peers() {
    let m = mutator();
    let addr = |i: u64| VsAddr::new(format!("vs{i}"));
    for seed in seeds(40) {
        let mut rng = SplitMix64::new(seed);
        let mut config = NodeConfig::single(addr(1));
        config.peers = (1..=3).map(|i| (i, addr(i))).collect();
        config.seed = seed;
        let fresh = || ViewServiceNode::new(config.clone(), DiskState::default()).expect("a node");
        let mut node = fresh();
        let mut failures = 0;
        for step in 0..MESSAGES_PER_SEED {
            if node.failure().is_some() {
                // A leader that claims commits beyond our log (or rewrites committed entries)
                // stops the node: what a disk that lost acknowledged writes looks like. Not a
                // panic; start a fresh node and go on.
                failures += 1;
                node = fresh();
            }
            let now = Now::at_ms(step * 10);
            let (from, msg) = if rng.below(2) == 0 {
                let raft_from = 2 + rng.below(2);
                let msg = raft_message(&mut rng, node.term(), node.applied());
                (Endpoint::ViewService(addr(raft_from)), msg)
            } else {
                m.invent(&mut rng)
            };
            if std::env::var("FUZZ_TRACE").is_ok() {
                if let Message::Raft(b) = &msg {
                    use protobuf::Message as _;
                    let d = raft::eraftpb::Message::parse_from_bytes(b).ok();
                    eprintln!(
                        "seed {seed} step {step} term {} applied {}: {:?} {:?}",
                        node.term(),
                        node.applied(),
                        d.as_ref().map(|d| d.get_msg_type()),
                        d.map(|d| (
                            d.from,
                            d.term,
                            d.log_term,
                            d.index,
                            d.commit,
                            d.entries
                                .iter()
                                .map(|e| (e.index, e.term))
                                .collect::<Vec<_>>(),
                            d.get_snapshot().get_metadata().index,
                            d.get_snapshot().get_metadata().term
                        ))
                    );
                } else {
                    eprintln!("seed {seed} step {step}: {:?}", msg);
                }
            }
            node.handle(now, from, msg);
            node.handle_timeout(now);
            while node.poll_transmit(now).is_some() {}
            while let Some(p) = node.poll_persist() {
                node.persisted(now, p.id);
            }
            while node.poll_event().is_some() {}
        }
        assert!(failures < MESSAGES_PER_SEED);
    }
}

#[test]
fn c4_a_clerk_survives_hostile_peers() {
    let m = mutator();
    for seed in seeds(20) {
        let mut rng = SplitMix64::new(seed);
        let mut clerk = Clerk::new(ClientId(1), GROUP, ClerkConfig::default());
        for step in 0..MESSAGES_PER_SEED {
            let now = Now::at_ms(step * 10);
            if clerk.is_idle() {
                clerk.submit(now, set("k"));
            }
            let (from, msg) = m.invent(&mut rng);
            clerk.handle(now, from, msg);
            clerk.handle_timeout(now);
            while clerk.poll_transmit(now).is_some() {}
            while clerk.poll_completion().is_some() {}
        }
    }
}
