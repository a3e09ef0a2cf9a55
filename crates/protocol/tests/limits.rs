//! Limits on data (L11-L16) across a primary and its backup, driven message by message.

use std::sync::Arc;

use bytes::Bytes;
use tandem_kv::{Command, EvictionPolicy, Reply};
use tandem_protocol::message::{Request, Response, ViewReply};
use tandem_protocol::{
    ClientId, Endpoint, GroupId, Incarnation, Message, Now, Replica, ReplicaConfig, Seq, ServerId,
    View, ViewNum, VsAddr,
};

const GROUP: GroupId = GroupId(0);
const INCARNATION: Incarnation = Incarnation(1);
const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
const REPLY_TOO_BIG: &str = "ERR reply exceeds the maximum reply size (max-reply-bytes)";

fn server(name: &str) -> ServerId {
    ServerId::new(name)
}

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

/// A primary `a` and a backup `b` wired to each other; client answers are collected.
struct Pair {
    a: Replica,
    b: Replica,
    now_ms: u64,
    seq: u64,
    responses: Vec<Response>,
    /// The largest transfer chunk seen, by the bytes of its entries' values.
    largest_chunk_bytes: usize,
}

impl Pair {
    fn new(config: ReplicaConfig, with_backup: bool) -> Pair {
        let mut a = Replica::new(server("a"), GROUP, INCARNATION, config.clone());
        let mut b = Replica::new(server("b"), GROUP, INCARNATION, config);
        let backups: &[&str] = if with_backup { &["b"] } else { &[] };
        give_view(&mut a, 0, 1, "a", backups);
        if with_backup {
            give_view(&mut b, 0, 1, "a", backups);
        }
        let mut pair = Pair {
            a,
            b,
            now_ms: 1,
            seq: 0,
            responses: Vec::new(),
            largest_chunk_bytes: 0,
        };
        pair.settle();
        pair
    }

    /// Moves messages and fires timers until nothing moves.
    fn settle(&mut self) {
        let mut quiet_ms = 0;
        for _ in 0..100_000 {
            self.now_ms += 1;
            let now = Now::at_ms(self.now_ms);
            let mut moved = false;
            for side in [true, false] {
                let (from, to) = if side {
                    (&mut self.a, &mut self.b)
                } else {
                    (&mut self.b, &mut self.a)
                };
                if from.poll_timeout().is_some_and(|at| at <= self.now_ms) {
                    from.handle_timeout(now);
                }
                while let Some(t) = from.poll_transmit(now) {
                    match (t.to, t.msg) {
                        (Endpoint::Server(id), msg) if id == *to.id() => {
                            if let Message::Transfer(chunk) = &msg {
                                let bytes = chunk
                                    .entries
                                    .iter()
                                    .map(|(k, e)| k.len() + value_len(&e.value))
                                    .sum();
                                self.largest_chunk_bytes = self.largest_chunk_bytes.max(bytes);
                            }
                            to.handle(now, Endpoint::Server(from.id().clone()), msg);
                            moved = true;
                        }
                        (Endpoint::Client(_), Message::Response(r)) => self.responses.push(r),
                        _ => {}
                    }
                }
            }
            quiet_ms = if moved { 0 } else { quiet_ms + 1 };
            if quiet_ms >= 1000 {
                return;
            }
        }
        panic!("the pair never settled");
    }

    /// Sends one request to the primary and returns its replies.
    fn call(&mut self, cmds: Vec<Command>) -> Vec<Reply> {
        self.seq += 1;
        let request = Request {
            group: GROUP,
            client: ClientId(7),
            seq: Seq(self.seq),
            cmds: Arc::new(cmds),
            user: None,
        };
        self.a.handle(
            Now::at_ms(self.now_ms),
            Endpoint::Client(ClientId(7)),
            Message::Request(request),
        );
        self.settle();
        let seq = Seq(self.seq);
        let response = self
            .responses
            .iter()
            .rev()
            .find(|r| r.seq == seq)
            .expect("an answer");
        response.result.clone().expect("replies").to_vec()
    }

    fn line(&mut self, line: &str) -> Reply {
        self.call(vec![cmd(line)]).remove(0)
    }
}

fn value_len(value: &tandem_kv::Value) -> usize {
    match value {
        tandem_kv::Value::Str(s) => s.len(),
        tandem_kv::Value::List(l) => l.iter().map(Bytes::len).sum(),
        tandem_kv::Value::Hash(h) => h.iter().map(|(f, v)| f.len() + v.len()).sum(),
        tandem_kv::Value::Set(s) => s.iter().map(|m| m.bytes().len()).sum(),
        // Sorted sets: members and their 8-byte scores.
        tandem_kv::Value::ZSet(z) => z.by_member().map(|(m, _)| m.len() + 8).sum(),
    }
}

fn cmd(line: &str) -> Command {
    let args: Vec<Bytes> = line
        .split_whitespace()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect();
    Command::parse(&args).expect("a valid command")
}

fn err(text: &str) -> Reply {
    Reply::Error(text.to_owned())
}

#[test]
fn l11_noeviction_answers_oom_with_redis_text_reads_still_served_replicas_equal() {
    let config = ReplicaConfig {
        maxmemory_bytes: 2_000,
        ..ReplicaConfig::default()
    };
    let mut pair = Pair::new(config, true);
    let value = "x".repeat(300);
    let mut refused = 0;
    for i in 0..20 {
        if pair.line(&format!("set k{i} {value}")) == err(OOM) {
            refused += 1;
        }
    }
    assert!(
        refused > 10,
        "writes beyond maxmemory are refused: {refused}"
    );
    assert!(pair.a.state().store.used_memory() < 2_000 + 400);
    assert_eq!(pair.line("get k0"), Reply::Bulk(Bytes::from(value)));
    assert_eq!(pair.line("del k0"), Reply::Integer(1));
    assert_eq!(pair.line("set again 1"), Reply::ok());
    assert_eq!(pair.a.state().digest(), pair.b.state().digest());
}

#[test]
fn l12_allkeys_lru_evicts_on_the_primary_and_the_backup_stays_identical() {
    let config = ReplicaConfig {
        maxmemory_bytes: 20_000,
        maxmemory_policy: EvictionPolicy::AllKeysLru,
        ..ReplicaConfig::default()
    };
    let mut pair = Pair::new(config, true);
    let value = "y".repeat(200);
    for i in 0..400 {
        assert_eq!(pair.line(&format!("set k{i} {value}")), Reply::ok(), "k{i}");
        if i % 10 == 0 {
            // k0 stays in use, so LRU keeps it.
            pair.now_ms += 2_000;
            pair.line("get k0");
        }
    }
    let used = pair.a.state().store.used_memory();
    assert!(used <= 20_000 + 300, "used {used}");
    assert!(pair.a.stats().evicted_keys > 300);
    assert!(pair.a.state().store.len() < 100);
    assert_eq!(
        pair.a.state().store.used_memory(),
        pair.b.state().store.used_memory()
    );
    assert_eq!(pair.a.state().digest(), pair.b.state().digest());
}

#[test]
fn l13_append_and_list_growth_beyond_the_value_limit_are_refused() {
    let config = ReplicaConfig {
        max_value_bytes: 4096,
        max_reply_bytes: 8192,
        ..ReplicaConfig::default()
    };
    let mut pair = Pair::new(config, true);
    let chunk = "z".repeat(3000);
    assert_eq!(pair.line(&format!("set s {chunk}")), Reply::ok());
    assert_eq!(pair.line(&format!("append s {chunk}")), err(TOO_BIG));
    assert_eq!(pair.line(&format!("rpush l {chunk}{chunk}")), err(TOO_BIG));
    assert_eq!(pair.line(&format!("hset h f {chunk}{chunk}")), err(TOO_BIG));
    assert_eq!(pair.line("strlen s"), Reply::Integer(3000));
    assert_eq!(pair.a.state().digest(), pair.b.state().digest());
}

#[test]
fn l14_mget_of_a_big_key_many_times_answers_an_error_and_writes_stay_consistent() {
    let config = ReplicaConfig {
        max_value_bytes: 4096,
        max_reply_bytes: 16_384,
        ..ReplicaConfig::default()
    };
    let mut pair = Pair::new(config, true);
    let big = "b".repeat(4096);
    assert_eq!(pair.line(&format!("set big {big}")), Reply::ok());
    let mget = format!("mget{}", " big".repeat(60));
    assert_eq!(pair.line(&mget), err(REPLY_TOO_BIG));
    // A batch whose replies add up beyond the bound: the writes still happen everywhere.
    let replies = pair.call(vec![
        cmd("get big"),
        cmd("get big"),
        cmd("get big"),
        cmd("get big"),
        cmd("set after 1"),
        cmd("get big"),
    ]);
    assert_eq!(replies[0], Reply::Bulk(Bytes::from(big)));
    assert_eq!(replies[4], Reply::ok());
    assert_eq!(replies[5], err(REPLY_TOO_BIG));
    assert_eq!(pair.line("get after"), Reply::Bulk(Bytes::from("1")));
    assert_eq!(pair.a.state().digest(), pair.b.state().digest());
}

#[test]
fn l16_a_value_near_the_limit_and_a_list_over_64_mib_reach_a_new_backup() {
    let config = ReplicaConfig::default();
    let value_limit = usize::try_from(config.max_value_bytes).unwrap();
    let chunk_bytes = config.transfer_chunk_bytes;
    let mut pair = Pair::new(config, false);
    let near_limit = Bytes::from(vec![b'v'; value_limit - 10]);
    let set = Command::Set {
        key: Bytes::from("big"),
        value: near_limit,
        condition: None,
        get: false,
        expiry: None,
    };
    assert_eq!(pair.call(vec![set]), vec![Reply::ok()]);
    let element = Bytes::from(vec![b'e'; 256 << 10]);
    for _ in 0..17 {
        let push = Command::RPush {
            key: Bytes::from("list"),
            values: vec![element.clone(); 16],
        };
        pair.call(vec![push]);
    }
    let list_len = pair.line("llen list");
    assert_eq!(list_len, Reply::Integer(17 * 16));
    assert!(pair.a.state().store.used_memory() > 64 << 20);
    // b joins as the backup of view 2: a copies it everything, then acknowledges the view.
    give_view(&mut pair.a, pair.now_ms, 2, "a", &["b"]);
    give_view(&mut pair.b, pair.now_ms, 2, "a", &["b"]);
    pair.settle();
    assert_eq!(pair.a.stats().transfers_completed, 1);
    assert_eq!(
        pair.a.ping_viewnum(),
        ViewNum(2),
        "the view is acknowledged"
    );
    assert_eq!(pair.b.state().digest(), pair.a.state().digest());
    assert!(
        pair.largest_chunk_bytes <= 2 * chunk_bytes,
        "chunks stay near their budget: {}",
        pair.largest_chunk_bytes
    );
    assert_eq!(pair.line("set after-transfer 1"), Reply::ok());
    assert_eq!(pair.b.state().digest(), pair.a.state().digest());
}
