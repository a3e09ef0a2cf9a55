//! Messages from peers that lie: a server or node whose identity is true (the transport checks
//! it) but whose messages are stale, forged or absurd. Each test is named after the rule it
//! checks (P9-P11, C4, V11-V13, Q6 in docs/PROTOCOL.md). Nothing here may panic a core.

use std::sync::Arc;

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{Entry, Message as RaftMessage, MessageType};
use tandem_kv::Command;
use tandem_protocol::consensus::{DiskState, NodeConfig, ViewServiceNode};
use tandem_protocol::locator::DEFAULT_VIEW_SERVICE;
use tandem_protocol::message::{
    Forward, ForwardReply, ForwardResult, LogEntry, Op, Ping, Response, SnapshotEnd, Transfer,
    TransferReply, ViewReply,
};
use tandem_protocol::{
    Clerk, ClerkConfig, ClientId, Endpoint, GroupId, Incarnation, LogPos, Message, Now, OpIndex,
    Replica, ReplicaConfig, RoleKind, Seq, ServerId, Transmit, View, ViewNum, ViewService,
    ViewServiceConfig, VsAddr,
};

const GROUP: GroupId = GroupId(0);
const INCARNATION: Incarnation = Incarnation(1);

fn server(name: &str) -> ServerId {
    ServerId::new(name)
}

fn from(name: &str) -> Endpoint {
    Endpoint::Server(server(name))
}

fn view_service() -> Endpoint {
    Endpoint::ViewService(VsAddr::new(DEFAULT_VIEW_SERVICE))
}

fn pos(index: u64, view: u64) -> LogPos {
    LogPos {
        index: OpIndex(index),
        view: ViewNum(view),
    }
}

fn view(num: u64, primary: &str, backups: &[&str]) -> View {
    View {
        num: ViewNum(num),
        primary: server(primary),
        backups: backups.iter().map(|b| server(b)).collect(),
    }
}

fn view_reply(view: View) -> Message {
    Message::PingReply(ViewReply {
        group: GROUP,
        view: Some(view),
        member_incarnation: Some(INCARNATION),
        cluster: None,
    })
}

fn replica(name: &str) -> Replica {
    Replica::new(server(name), GROUP, INCARNATION, ReplicaConfig::default())
}

fn drain(replica: &mut Replica, at_ms: u64) -> Vec<Transmit> {
    std::iter::from_fn(|| replica.poll_transmit(Now::at_ms(at_ms))).collect()
}

fn set_entry(at: LogPos) -> LogEntry {
    let args = [
        Bytes::from("SET"),
        Bytes::from(format!("k{}", at.index.0)),
        Bytes::from("v"),
    ];
    LogEntry {
        pos: at,
        now_ms: 1_000,
        random: 0,
        op: Op::Client {
            client: ClientId(1),
            seq: Seq(at.index.0),
            cmds: Arc::new(vec![Command::parse(&args).expect("a valid SET")]),
            user: None,
        },
        limits: Default::default(),
    }
}

fn forward(view: u64, prev: LogPos, entries: &[LogPos]) -> Message {
    Message::Forward(Forward {
        view: ViewNum(view),
        prev,
        entries: Arc::new(entries.iter().map(|&at| set_entry(at)).collect()),
    })
}

fn ack(view: u64, last: LogPos) -> Message {
    Message::ForwardReply(ForwardReply {
        view: ViewNum(view),
        result: ForwardResult::Ack { last },
    })
}

/// Primary `a` and backup `b` of view 1, `b` streaming and holding `a`'s two entries.
fn synced_pair() -> (Replica, Replica) {
    let mut a = replica("a");
    let mut b = replica("b");
    a.handle(
        Now::at_ms(0),
        view_service(),
        view_reply(view(1, "a", &["b"])),
    );
    b.handle(
        Now::at_ms(0),
        view_service(),
        view_reply(view(1, "a", &["b"])),
    );
    drain(&mut b, 0);
    // Deliver a <-> b until quiet.
    for step in 0..20 {
        let at_ms = step * 10;
        let out = drain(&mut a, at_ms);
        let mut back = Vec::new();
        for t in out {
            if t.to == from("b") {
                b.handle(Now::at_ms(at_ms), from("a"), t.msg);
                back.extend(drain(&mut b, at_ms));
            }
        }
        for t in back {
            if t.to == from("a") {
                a.handle(Now::at_ms(at_ms), from("b"), t.msg);
            }
        }
    }
    assert!(
        a.progress_summary().contains("stream"),
        "{}",
        a.progress_summary()
    );
    (a, b)
}

#[test]
fn p9_a_transfer_from_a_server_that_is_not_the_primary_is_refused_and_changes_nothing() {
    let mut b = replica("b");
    b.handle(
        Now::at_ms(0),
        view_service(),
        view_reply(view(1, "a", &["b"])),
    );
    b.handle(
        Now::at_ms(1),
        from("a"),
        forward(1, LogPos::EMPTY, &[pos(1, 1), pos(2, 1)]),
    );
    drain(&mut b, 1);
    let before = b.state().digest();
    for (sender, transfer_view) in [("c", 1), ("a", 2), ("a", 0)] {
        let wipe = Transfer {
            view: ViewNum(transfer_view),
            transfer_id: 9,
            chunk: 0,
            entries: Vec::new(),
            clients: Vec::new(),
            done: Some(SnapshotEnd {
                last: pos(0, 0),
                clock_ms: 0,
            }),
            acl: None,
            shard: None,
        };
        b.handle(Now::at_ms(2), from(sender), Message::Transfer(wipe));
        let answers = drain(&mut b, 2);
        assert!(
            answers.iter().all(|t| matches!(
                &t.msg,
                Message::TransferReply(TransferReply {
                    next_chunk: None,
                    ..
                })
            )),
            "{answers:?}"
        );
        assert_eq!(b.state().digest(), before, "{sender} view {transfer_view}");
        assert_eq!(b.state().last, pos(2, 1));
    }
}

#[test]
fn p9_a_forward_reply_from_a_server_that_is_not_a_backup_is_ignored() {
    let (mut a, _b) = synced_pair();
    let stats = a.stats().clone();
    for step in 0..20 {
        a.handle(Now::at_ms(500 + step), from("c"), ack(1, pos(999, 7)));
    }
    drain(&mut a, 600);
    assert_eq!(a.stats().transfers_started, stats.transfers_started);
    assert_eq!(a.stats().protocol_errors, stats.protocol_errors);
}

#[test]
fn p9_a_forward_reply_tagged_with_another_view_is_ignored() {
    let mut a = replica("a");
    a.handle(
        Now::at_ms(0),
        view_service(),
        view_reply(view(2, "a", &["b"])),
    );
    drain(&mut a, 0);
    // An answer from the backup's life in view 1 says nothing about what it holds now.
    a.handle(Now::at_ms(5), from("b"), ack(1, pos(0, 0)));
    drain(&mut a, 5);
    assert!(
        a.progress_summary().contains("probe"),
        "{}",
        a.progress_summary()
    );
}

#[test]
fn p10_forged_forward_replies_to_a_streaming_backup_start_no_transfer() {
    let (mut a, _b) = synced_pair();
    let started = a.stats().transfers_started;
    let errors = a.stats().protocol_errors;
    for step in 0..20 {
        // Positions off a's history and beyond anything sent to b.
        a.handle(
            Now::at_ms(500 + step),
            from("b"),
            ack(1, pos(999 + step, 1)),
        );
        a.handle(Now::at_ms(500 + step), from("b"), ack(1, pos(1, 9)));
    }
    drain(&mut a, 600);
    assert_eq!(a.stats().transfers_started, started, "no full copy");
    assert_eq!(a.stats().protocol_errors, errors + 40);
    assert!(a.transfers_in_progress().is_empty());
}

#[test]
fn p10_twenty_forged_forward_replies_cause_at_most_one_transfer() {
    let mut a = replica("a");
    a.handle(
        Now::at_ms(0),
        view_service(),
        view_reply(view(1, "a", &["b"])),
    );
    drain(&mut a, 0);
    for step in 0..20 {
        a.handle(Now::at_ms(10 + step), from("b"), ack(1, pos(5 + step, 9)));
        drain(&mut a, 10 + step);
    }
    assert!(a.stats().transfers_started <= 1, "{:?}", a.stats());
}

#[test]
fn p10_transfers_to_one_backup_start_at_most_once_per_retransmit_interval() {
    let mut a = replica("a");
    let retransmit_ms = ReplicaConfig::default().retransmit_ms;
    a.handle(
        Now::at_ms(0),
        view_service(),
        view_reply(view(1, "a", &["b"])),
    );
    drain(&mut a, 0);
    a.handle(Now::at_ms(10), from("b"), ack(1, pos(5, 9)));
    let chunks: Vec<Transfer> = drain(&mut a, 10)
        .into_iter()
        .filter_map(|t| match t.msg {
            Message::Transfer(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(a.stats().transfers_started, 1);
    // "I lost the beginning", again and again, from the backup that knows the transfer id.
    let lost = |at_ms: u64| {
        (
            Now::at_ms(at_ms),
            Message::TransferReply(TransferReply {
                view: ViewNum(1),
                transfer_id: chunks[0].transfer_id,
                next_chunk: Some(0),
                installed: None,
            }),
        )
    };
    a.handle(Now::at_ms(11), from("b"), ack(1, pos(6, 9)));
    for at_ms in 12..20 {
        let (now, msg) = lost(at_ms);
        a.handle(now, from("b"), msg);
    }
    assert_eq!(a.stats().transfers_started, 1, "{:?}", a.stats());
    let _ = retransmit_ms;
}

#[test]
fn p11_a_ping_reply_with_view_1002_from_a_non_view_service_endpoint_is_ignored() {
    let mut b = replica("b");
    b.handle(
        Now::at_ms(0),
        view_service(),
        view_reply(view(1, "a", &["b"])),
    );
    let forged = view_reply(view(1002, "127.0.0.1:1", &[]));
    b.handle(Now::at_ms(1), from("a"), forged.clone());
    b.handle(Now::at_ms(1), Endpoint::Client(ClientId(3)), forged);
    assert_eq!(b.view().map(|v| v.num), Some(ViewNum(1)));
    assert_eq!(b.stats().views_refused, 2);
    // The real view service still moves it on.
    b.handle(Now::at_ms(2), view_service(), view_reply(view(2, "b", &[])));
    assert_eq!(b.view().map(|v| v.num), Some(ViewNum(2)));
}

#[test]
fn p11_an_ill_formed_view_is_refused() {
    let mut a = replica("a");
    a.handle(
        Now::at_ms(0),
        view_service(),
        view_reply(view(1, "a", &["a"])),
    );
    a.handle(
        Now::at_ms(0),
        view_service(),
        view_reply(view(2, "a", &["b", "b"])),
    );
    assert_eq!(a.view(), None);
    assert_eq!(a.role(), RoleKind::Idle);
    assert_eq!(a.stats().views_refused, 2);
}

// ---- the clerk (C4) ----

fn get_command() -> Arc<Vec<Command>> {
    Arc::new(vec![
        Command::parse(&[Bytes::from("GET"), Bytes::from("k")]).expect("a valid GET"),
    ])
}

#[test]
fn c4_a_clerk_takes_answers_only_from_the_server_it_asked_and_views_only_from_the_view_service() {
    let mut clerk = Clerk::new(ClientId(7), GROUP, ClerkConfig::default());
    let seq = clerk.submit(Now::at_ms(0), get_command());
    // A view from a server is not a view.
    let forged = Message::ViewReply(ViewReply {
        group: GROUP,
        view: Some(view(1002, "mallory", &[])),
        member_incarnation: None,
        cluster: None,
    });
    clerk.handle(Now::at_ms(1), from("mallory"), forged);
    assert_eq!(clerk.view(), None);
    let real = Message::ViewReply(ViewReply {
        group: GROUP,
        view: Some(view(1, "a", &[])),
        member_incarnation: None,
        cluster: None,
    });
    clerk.handle(Now::at_ms(2), view_service(), real);
    assert_eq!(clerk.view().map(|v| v.num), Some(ViewNum(1)));
    while clerk.poll_transmit(Now::at_ms(2)).is_some() {}
    let answer = |client| {
        Message::Response(Response {
            client,
            seq,
            result: Ok(Arc::new(Vec::new())),
        })
    };
    clerk.handle(Now::at_ms(3), from("mallory"), answer(ClientId(7)));
    assert!(
        clerk.poll_completion().is_none(),
        "not from the server asked"
    );
    assert_eq!(clerk.stats().refused, 1);
    clerk.handle(Now::at_ms(3), from("a"), answer(ClientId(7)));
    assert_eq!(clerk.poll_completion().map(|c| c.seq), Some(seq));
}

// ---- the view service (V11-V13) ----

fn ping_msg(group: u32, server: &str, viewnum: u64, incarnation: u64) -> Message {
    Message::Ping(Ping {
        group: GroupId(group),
        server: ServerId::new(server),
        viewnum: ViewNum(viewnum),
        incarnation: Incarnation(incarnation),
        client_addr: None,
        config_done: tandem_protocol::ConfigNum(0),
        cluster_epoch: 0,
    })
}

fn step(vs: &mut ViewService, at_ms: u64, sender: &str, msg: Message) {
    let now = Now::at_ms(at_ms);
    vs.handle(now, from(sender), msg);
    vs.handle_timeout(now);
    while vs.poll_transmit(now).is_some() {}
    while vs.poll_event().is_some() {}
}

/// Servers `a` (primary) and `b` (backup) of group 0 in acknowledged view 2.
fn steady_pair(vs: &mut ViewService) -> u64 {
    step(vs, 0, "a", ping_msg(0, "a", 0, 1));
    step(vs, 10, "a", ping_msg(0, "a", 1, 1));
    step(vs, 20, "b", ping_msg(0, "b", 0, 1));
    step(vs, 30, "a", ping_msg(0, "a", 2, 1));
    step(vs, 30, "b", ping_msg(0, "b", 2, 1));
    assert_eq!(vs.view(GROUP), Some(&view(2, "a", &["b"])));
    assert!(vs.table().group(GROUP).is_some_and(|g| g.acked));
    30
}

#[test]
fn v11_a_ping_naming_another_server_than_its_sender_is_refused() {
    let mut vs = ViewService::new(ViewServiceConfig::default());
    let mut at_ms = steady_pair(&mut vs);
    // "a restarted": a new incarnation of the primary, from someone else.
    for _ in 0..20 {
        at_ms += 100;
        step(&mut vs, at_ms, "mallory", ping_msg(0, "a", 0, 99));
        step(&mut vs, at_ms, "a", ping_msg(0, "a", 2, 1));
        step(&mut vs, at_ms, "b", ping_msg(0, "b", 2, 1));
    }
    assert_eq!(vs.view(GROUP), Some(&view(2, "a", &["b"])), "no failover");
    assert_eq!(vs.stats().pings_refused, 20);
    assert!(vs.liveness(GROUP).all(|(id, _)| id.as_str() != "mallory"));
}

#[test]
fn v12_pings_with_20k_group_ids_leave_bounded_state() {
    let config = ViewServiceConfig {
        max_groups: 1024,
        ..ViewServiceConfig::default()
    };
    let mut vs = ViewService::new(config);
    let at_ms = steady_pair(&mut vs);
    for group in 1..=20_000 {
        step(&mut vs, at_ms + 1, "m", ping_msg(group, "m", 0, 1));
    }
    let status = vs.status(Now::at_ms(at_ms + 1));
    assert_eq!(status.groups.len(), 1024);
    assert_eq!(vs.stats().pings_refused, 20_000 - 1023);
    // The real group is untouched and keeps working.
    step(&mut vs, at_ms + 50, "a", ping_msg(0, "a", 2, 1));
    assert_eq!(vs.view(GROUP), Some(&view(2, "a", &["b"])));
}

#[test]
fn v12_servers_outside_the_view_are_bounded_per_group() {
    let config = ViewServiceConfig {
        max_servers_per_group: 8,
        ..ViewServiceConfig::default()
    };
    let mut vs = ViewService::new(config);
    let at_ms = steady_pair(&mut vs);
    for i in 0..100 {
        step(
            &mut vs,
            at_ms + 1,
            &format!("s{i}"),
            ping_msg(0, &format!("s{i}"), 0, 1),
        );
    }
    // Two members and eight others.
    assert_eq!(vs.liveness(GROUP).count(), 10);
    assert_eq!(vs.stats().pings_refused, 92);
    let long = "x".repeat(300);
    step(&mut vs, at_ms + 2, &long, ping_msg(5, &long, 0, 1));
    assert_eq!(vs.stats().pings_refused, 93);
    assert!(vs.view(GroupId(5)).is_none());
}

#[test]
fn v13_servers_outside_every_view_silent_for_long_are_forgotten() {
    let config = ViewServiceConfig::default();
    let forget_after_ms = config.forget_after_ms();
    let ping_ms = config.ping_interval_ms;
    let mut vs = ViewService::new(ViewServiceConfig {
        backups: 1,
        ..config
    });
    let mut at_ms = steady_pair(&mut vs);
    step(&mut vs, at_ms, "idle", ping_msg(0, "idle", 0, 1));
    assert_eq!(vs.idle(GROUP, Now::at_ms(at_ms)), [server("idle")]);
    // a and b keep pinging; "idle" falls silent.
    let until_ms = at_ms + forget_after_ms + 2 * config.dead_after_ms();
    while at_ms < until_ms {
        at_ms += ping_ms;
        step(&mut vs, at_ms, "a", ping_msg(0, "a", 2, 1));
        step(&mut vs, at_ms, "b", ping_msg(0, "b", 2, 1));
    }
    let known: Vec<String> = vs.liveness(GROUP).map(|(id, _)| id.to_string()).collect();
    assert_eq!(known, ["a", "b"]);
    assert_eq!(vs.stats().servers_forgotten, 1);
    assert_eq!(vs.view(GROUP), Some(&view(2, "a", &["b"])), "members stay");
}

#[test]
fn v13_a_new_leader_knows_only_the_members_of_views_so_forgotten_servers_stay_forgotten() {
    // Liveness is soft state of the deciding node: a follower holds none and a new leader
    // starts from the views' members (Q4), so every node agrees without a log entry.
    let config = ViewServiceConfig {
        backups: 0,
        ..ViewServiceConfig::default()
    };
    let mut leader = ViewService::replicated(config.clone(), Default::default());
    leader.lead(Now::at_ms(0));
    let mut table = None;
    for (at_ms, who, viewnum) in [(0, "a", 0), (10, "a", 1), (20, "idle", 0)] {
        leader.handle(Now::at_ms(at_ms), from(who), ping_msg(0, who, viewnum, 1));
        leader.handle_timeout(Now::at_ms(at_ms));
        while let Some(event) = leader.poll_proposal() {
            leader.apply_committed(&event).expect("by the rules");
        }
        table = Some(leader.table().clone());
    }
    let table = table.expect("a table");
    assert!(leader.liveness(GROUP).any(|(id, _)| id.as_str() == "idle"));
    let mut next = ViewService::replicated(config, table);
    assert_eq!(next.liveness(GROUP).count(), 0, "a follower tracks nobody");
    next.lead(Now::at_ms(100));
    let known: Vec<String> = next.liveness(GROUP).map(|(id, _)| id.to_string()).collect();
    assert_eq!(known, ["a"], "only the view's members");
}

// ---- the Raft layer (Q6) ----

fn vs_addr(id: u64) -> VsAddr {
    VsAddr::new(format!("vs{id}"))
}

fn node(id: u64) -> ViewServiceNode {
    let mut c = NodeConfig::single(vs_addr(id));
    c.id = id;
    c.peers = (1..=3).map(|i| (i, vs_addr(i))).collect();
    c.seed = 7;
    ViewServiceNode::new(c, DiskState::default()).expect("a node")
}

fn raft(m: &RaftMessage) -> Message {
    Message::Raft(Bytes::from(m.write_to_bytes().expect("encodes")))
}

#[test]
fn q6_raft_messages_from_the_wrong_address_or_with_absurd_numbers_are_dropped() {
    let mut n = node(1);
    let term = n.term();
    let base = |t: MessageType| {
        let mut m = RaftMessage::default();
        m.set_msg_type(t);
        m.to = 1;
        m.from = 2;
        m.term = 1;
        m
    };
    let mut bad = Vec::new();
    // Node 2's message from node 3's address.
    bad.push((vs_addr(3), base(MessageType::MsgHeartbeat)));
    // A term at the end of the range.
    let mut m = base(MessageType::MsgRequestVote);
    m.term = u64::MAX;
    bad.push((vs_addr(2), m));
    // Entries that do not follow the append's index.
    let mut m = base(MessageType::MsgAppend);
    m.index = 5;
    m.log_term = 1;
    m.entries.push(Entry {
        index: 3,
        term: 1,
        ..Default::default()
    });
    bad.push((vs_addr(2), m));
    // An acknowledgement of entries we never had.
    let mut m = base(MessageType::MsgAppendResponse);
    m.index = 1_000_000;
    bad.push((vs_addr(2), m));
    let count = bad.len() as u64;
    for (addr, m) in bad {
        n.handle(Now::at_ms(1), Endpoint::ViewService(addr), raft(&m));
    }
    assert_eq!(n.stats().bad_messages, count);
    assert!(n.failure().is_none());
    assert_eq!(n.term(), term, "no forged term was taken");
    // Garbage bytes are dropped too.
    n.handle(
        Now::at_ms(2),
        Endpoint::ViewService(vs_addr(2)),
        Message::Raft(Bytes::from_static(&[0xff, 0xff, 0xff])),
    );
    assert_eq!(n.stats().bad_messages, count + 1);
}
