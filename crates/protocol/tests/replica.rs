//! The replica core fed messages no correct peer sends: it must reject them, count them and keep
//! working. A peer's bytes never panic a server (a forged forward or transfer reply used to trip
//! the assertions the replica keeps for its own invariants).

use std::sync::Arc;

use bytes::Bytes;
use tandem_kv::Command;
use tandem_protocol::message::{
    Forward, ForwardReply, ForwardResult, LogEntry, Op, SnapshotEnd, Transfer, TransferReply,
    ViewReply,
};
use tandem_protocol::{
    ClientId, Endpoint, GroupId, Incarnation, LogPos, Message, Now, OpIndex, Replica,
    ReplicaConfig, Seq, ServerId, Transmit, View, ViewNum, VsAddr,
};

const GROUP: GroupId = GroupId(0);
const INCARNATION: Incarnation = Incarnation(1);

fn server(name: &str) -> ServerId {
    ServerId::new(name)
}

fn from(name: &str) -> Endpoint {
    Endpoint::Server(server(name))
}

fn pos(index: u64, view: u64) -> LogPos {
    LogPos {
        index: OpIndex(index),
        view: ViewNum(view),
    }
}

fn replica(name: &str) -> Replica {
    Replica::new(server(name), GROUP, INCARNATION, ReplicaConfig::default())
}

/// Tells `replica` that view `num` is current, as the view service's ping reply does.
fn give_view(replica: &mut Replica, at_ms: u64, num: u64, primary: &str, backups: &[&str]) {
    let view = View {
        num: ViewNum(num),
        primary: server(primary),
        backups: backups.iter().map(|b| server(b)).collect(),
    };
    let reply = ViewReply {
        group: GROUP,
        view: Some(view),
        member_incarnation: Some(INCARNATION),
        cluster: None,
    };
    replica.handle(
        Now::at_ms(at_ms),
        Endpoint::ViewService(VsAddr::new(tandem_protocol::locator::DEFAULT_VIEW_SERVICE)),
        Message::PingReply(reply),
    );
}

fn drain(replica: &mut Replica, at_ms: u64) -> Vec<Transmit> {
    std::iter::from_fn(|| replica.poll_transmit(Now::at_ms(at_ms))).collect()
}

/// A SET as entry `at` of a history.
fn set_entry(at: LogPos, key: &str) -> LogEntry {
    let args = [
        Bytes::from("SET"),
        Bytes::from(key.to_owned()),
        Bytes::from("v"),
    ];
    let cmd = Command::parse(&args).expect("a valid SET");
    LogEntry {
        pos: at,
        now_ms: 1_000,
        random: 0,
        limits: tandem_kv::Limits::default(),
        op: Op::Client {
            client: ClientId(1),
            seq: Seq(at.index.0),
            cmds: Arc::new(vec![cmd]),
            user: None,
        },
    }
}

fn forward(view: u64, prev: LogPos, entries: &[LogPos]) -> Message {
    let entries = entries
        .iter()
        .map(|&at| set_entry(at, &format!("k{}", at.index.0)))
        .collect();
    Message::Forward(Forward {
        view: ViewNum(view),
        prev,
        entries: Arc::new(entries),
    })
}

/// The forward replies among `sent`.
fn forward_results(sent: &[Transmit]) -> Vec<ForwardResult> {
    sent.iter()
        .filter_map(|t| match &t.msg {
            Message::ForwardReply(ForwardReply { result, .. }) => Some(*result),
            _ => None,
        })
        .collect()
}

/// Backup `b` of view 1, whose primary is `a`.
fn backup() -> Replica {
    let mut b = replica("b");
    give_view(&mut b, 0, 1, "a", &["b"]);
    drain(&mut b, 0);
    b
}

#[test]
fn p3_a_forward_with_out_of_order_entries_is_rejected_not_fatal() {
    let mut b = backup();
    let malformed: [&[LogPos]; 4] = [
        &[pos(2, 1), pos(1, 1)],
        &[pos(1, 1), pos(3, 1)],
        &[pos(1, 1), pos(1, 1)],
        &[pos(2, 1)],
    ];
    for (count, entries) in (1..).zip(malformed) {
        b.handle(
            Now::at_ms(10),
            from("a"),
            forward(1, LogPos::EMPTY, entries),
        );
        assert!(
            forward_results(&drain(&mut b, 10)).is_empty(),
            "{entries:?}: ignored"
        );
        assert_eq!(b.stats().protocol_errors, count, "{entries:?}: counted");
        assert_eq!(
            b.state().last,
            LogPos::EMPTY,
            "{entries:?}: nothing applied"
        );
    }
    // The backup still takes a well-formed forward.
    b.handle(
        Now::at_ms(20),
        from("a"),
        forward(1, LogPos::EMPTY, &[pos(1, 1), pos(2, 1)]),
    );
    assert_eq!(
        forward_results(&drain(&mut b, 20)),
        [ForwardResult::Ack { last: pos(2, 1) }]
    );
    assert_eq!(b.stats().applied, 2);
}

#[test]
fn p3_a_forward_with_view_tags_after_its_view_or_decreasing_is_rejected_not_fatal() {
    let mut b = replica("b");
    give_view(&mut b, 0, 2, "a", &["b"]);
    drain(&mut b, 0);
    let malformed = [
        forward(2, LogPos::EMPTY, &[pos(1, 3)]),
        forward(2, LogPos::EMPTY, &[pos(1, 2), pos(2, 1)]),
        forward(2, pos(0, 3), &[]),
    ];
    for (count, msg) in (1..).zip(malformed) {
        b.handle(Now::at_ms(10), from("a"), msg);
        assert!(forward_results(&drain(&mut b, 10)).is_empty());
        assert_eq!(b.stats().protocol_errors, count);
        assert_eq!(b.state().last, LogPos::EMPTY);
    }
    b.handle(
        Now::at_ms(20),
        from("a"),
        forward(2, LogPos::EMPTY, &[pos(1, 1), pos(2, 2)]),
    );
    assert_eq!(
        forward_results(&drain(&mut b, 20)),
        [ForwardResult::Ack { last: pos(2, 2) }]
    );
}

/// The transfer chunks among `sent`.
fn transfer_chunks(sent: &[Transmit]) -> Vec<Transfer> {
    sent.iter()
        .filter_map(|t| match &t.msg {
            Message::Transfer(chunk) => Some(chunk.clone()),
            _ => None,
        })
        .collect()
}

/// Primary `a` of view 1 with a new backup `b` whose history is not a prefix of `a`'s: `a`
/// sends it the whole state. Returns the chunks sent.
fn primary_transferring_to_b() -> (Replica, Vec<Transfer>) {
    let mut a = replica("a");
    give_view(&mut a, 0, 1, "a", &["b"]);
    let probe = drain(&mut a, 0);
    assert!(
        probe
            .iter()
            .any(|t| t.to == from("b") && matches!(t.msg, Message::Forward(_))),
        "a probes b: {probe:?}"
    );
    let diverged = ForwardResult::Ack { last: pos(5, 9) };
    let reply = ForwardReply {
        view: ViewNum(1),
        result: diverged,
    };
    a.handle(Now::at_ms(10), from("b"), Message::ForwardReply(reply));
    let chunks = transfer_chunks(&drain(&mut a, 10));
    assert!(!chunks.is_empty(), "a transfer started");
    assert_eq!(a.stats().transfers_started, 1);
    (a, chunks)
}

fn transfer_reply(chunks: &[Transfer], next_chunk: u32, installed: Option<LogPos>) -> Message {
    Message::TransferReply(TransferReply {
        view: ViewNum(1),
        transfer_id: chunks[0].transfer_id,
        next_chunk: Some(next_chunk),
        installed,
    })
}

#[test]
fn p6_a_transfer_reply_installed_at_another_position_is_rejected_not_fatal() {
    let (mut a, chunks) = primary_transferring_to_b();
    let done = chunks
        .iter()
        .find_map(|c| c.done)
        .expect("an empty state fits the window");
    let after_last = u32::try_from(chunks.len()).unwrap();
    let elsewhere = pos(done.last.index.0 + 7, 1);
    a.handle(
        Now::at_ms(20),
        from("b"),
        transfer_reply(&chunks, after_last, Some(elsewhere)),
    );
    drain(&mut a, 20);
    assert_eq!(a.stats().protocol_errors, 1);
    assert_eq!(a.stats().transfers_completed, 0);
    assert_eq!(
        a.transfers_in_progress(),
        [(server("b"), 0)],
        "nothing acknowledged"
    );
    // The true answer still completes the transfer.
    a.handle(
        Now::at_ms(30),
        from("b"),
        transfer_reply(&chunks, after_last, Some(done.last)),
    );
    drain(&mut a, 30);
    assert_eq!(a.stats().transfers_completed, 1);
    assert!(a.transfers_in_progress().is_empty());
}

#[test]
fn p6_a_transfer_reply_acknowledging_chunks_never_sent_is_rejected_not_fatal() {
    let (mut a, chunks) = primary_transferring_to_b();
    let never_sent = u32::try_from(chunks.len()).unwrap() + 1;
    a.handle(
        Now::at_ms(20),
        from("b"),
        transfer_reply(&chunks, never_sent, None),
    );
    drain(&mut a, 20);
    assert_eq!(a.stats().protocol_errors, 1);
    assert_eq!(a.transfers_in_progress(), [(server("b"), 0)]);
}

#[test]
fn p6_a_transfer_chunk_numbered_at_the_end_of_the_range_is_rejected_not_fatal() {
    let mut b = backup();
    let (_a, chunks) = primary_transferring_to_b();
    for chunk in chunks.iter().cloned() {
        b.handle(Now::at_ms(20), from("a"), Message::Transfer(chunk));
    }
    drain(&mut b, 20);
    assert_eq!(b.stats().protocol_errors, 0);
    // The last chunk resent with the largest number: answering it would name the chunk after.
    let forged = Transfer {
        chunk: u32::MAX,
        ..chunks[0].clone()
    };
    b.handle(Now::at_ms(30), from("a"), Message::Transfer(forged));
    assert!(drain(&mut b, 30).is_empty());
    assert_eq!(b.stats().protocol_errors, 1);
}

#[test]
fn p6_a_snapshot_tagged_after_its_transfer_s_view_is_rejected_not_fatal() {
    let mut b = backup();
    let from_the_future = Transfer {
        view: ViewNum(1),
        transfer_id: 5,
        chunk: 0,
        entries: Vec::new(),
        clients: Vec::new(),
        done: Some(SnapshotEnd {
            last: pos(3, 2),
            clock_ms: 0,
        }),
        acl: None,
        shard: None,
    };
    b.handle(
        Now::at_ms(10),
        from("a"),
        Message::Transfer(from_the_future),
    );
    assert!(drain(&mut b, 10).is_empty());
    assert_eq!(b.stats().protocol_errors, 1);
    assert_eq!(b.state().last, LogPos::EMPTY, "nothing installed");
}
