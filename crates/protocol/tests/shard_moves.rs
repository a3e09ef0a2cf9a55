//! Slot moves between two replica groups (S4-S8), driven by hand: two groups of two replicas,
//! a stand-in view service that answers pings with each group's view and a hand-made cluster
//! map, and a network that delivers every message at once unless a test blocks it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use tandem_kv::slots::key_slot;
use tandem_kv::{Command, ExecContext, Reply};
use tandem_protocol::locator::DEFAULT_VIEW_SERVICE;
use tandem_protocol::message::{
    MembersRefusal, Request, RequestError, Response, SlotCursor, SlotData, SlotDataReply,
    SlotsChange, ViewReply,
};
use tandem_protocol::{
    ClientId, ClusterMap, ConfigNum, Endpoint, GroupId, Incarnation, Message, Now, Replica,
    ReplicaConfig, RoleKind, Seq, ServerId, ShardConfig, View, ViewNum, ViewService,
    ViewServiceConfig, VsAddr,
};

const INCARNATION: Incarnation = Incarnation(1);
const G1: GroupId = GroupId(1);
const G2: GroupId = GroupId(2);
/// The slots moved from G1 to G2 in configuration 2.
const MOVED: (u16, u16) = (0, 8191);

type Blocker = Box<dyn FnMut(&str, &Endpoint, &Message) -> bool>;

struct Net {
    now: u64,
    replicas: BTreeMap<String, Replica>,
    dead: BTreeSet<String>,
    views: BTreeMap<GroupId, View>,
    map: ClusterMap,
    /// `config_done` of each group as its primary last pinged it.
    done: BTreeMap<GroupId, ConfigNum>,
    responses: Vec<Response>,
    /// The next session `write_keys` uses.
    next_client: u64,
    /// Returns true to drop a message (sender name, destination, message).
    block: Blocker,
    /// The real view service, when a test runs one instead of the stand-in.
    vs: Option<ViewService>,
    /// Answers to `ChangeSlots`.
    slots_replies: Vec<Result<ConfigNum, MembersRefusal>>,
}

fn view(num: u64, primary: &str, backups: &[&str]) -> View {
    View {
        num: ViewNum(num),
        primary: ServerId::new(primary),
        backups: backups.iter().copied().map(ServerId::new).collect(),
    }
}

fn config(num: u64, owners: impl Fn(u16) -> Option<GroupId>) -> ShardConfig {
    let owners: Vec<Option<GroupId>> = (0..16384).map(owners).collect();
    ShardConfig::from_owners(ConfigNum(num), &owners)
}

fn all_g1(num: u64) -> ShardConfig {
    config(num, |_| Some(G1))
}

fn moved(num: u64) -> ShardConfig {
    config(num, |slot| {
        Some(if (MOVED.0..=MOVED.1).contains(&slot) {
            G2
        } else {
            G1
        })
    })
}

fn cmd(text: &str) -> Command {
    let args: Vec<Bytes> = text.split(' ').map(|a| Bytes::from(a.to_owned())).collect();
    Command::parse(&args).expect("a valid command")
}

/// Keys whose slot is moved, and keys whose slot stays.
fn keys() -> (Vec<String>, Vec<String>) {
    let all: Vec<String> = (0..300).map(|i| format!("key:{i}")).collect();
    all.into_iter()
        .partition(|k| (MOVED.0..=MOVED.1).contains(&key_slot(k.as_bytes())))
}

impl Net {
    /// Groups 1 (a1 primary, b1 backup) and 2 (a2, b2), in configuration 1: every slot is
    /// G1's.
    fn new(replica_config: ReplicaConfig) -> Net {
        let mut replicas = BTreeMap::new();
        for (name, group) in [("a1", G1), ("b1", G1), ("a2", G2), ("b2", G2)] {
            let replica = Replica::new(
                ServerId::new(name),
                group,
                INCARNATION,
                replica_config.clone(),
            );
            replicas.insert(name.to_owned(), replica);
        }
        let mut net = Net {
            now: 0,
            replicas,
            dead: BTreeSet::new(),
            views: BTreeMap::new(),
            map: ClusterMap::default(),
            done: BTreeMap::new(),
            responses: Vec::new(),
            next_client: 1000,
            block: Box::new(|_, _, _| false),
            vs: None,
            slots_replies: Vec::new(),
        };
        net.set_view(G1, view(1, "a1", &["b1"]));
        net.set_view(G2, view(1, "a2", &["b2"]));
        net.set_config(all_g1(1));
        net.run_until("configuration 1 taken on", |n| {
            n.done.get(&G1) == Some(&ConfigNum(1)) && n.done.get(&G2) == Some(&ConfigNum(1))
        });
        net
    }

    /// A fresh server of `group`, in no view yet.
    fn add_server(&mut self, name: &str, group: GroupId) {
        let config = small_chunks();
        let replica = Replica::new(ServerId::new(name), group, INCARNATION, config);
        self.replicas.insert(name.to_owned(), replica);
    }

    /// Groups 1 (a1, b1) and 2 (a2, b2) under the real view service (`ViewService`), which
    /// makes the views and configuration 1 itself.
    fn with_view_service(replica_config: ReplicaConfig) -> Net {
        let mut net = Net {
            now: 0,
            replicas: BTreeMap::new(),
            dead: BTreeSet::new(),
            views: BTreeMap::new(),
            map: ClusterMap::default(),
            done: BTreeMap::new(),
            responses: Vec::new(),
            next_client: 1000,
            block: Box::new(|_, _, _| false),
            vs: Some(ViewService::new(ViewServiceConfig::default())),
            slots_replies: Vec::new(),
        };
        for (name, group) in [("a1", G1), ("b1", G1), ("a2", G2), ("b2", G2)] {
            let replica = Replica::new(
                ServerId::new(name),
                group,
                INCARNATION,
                replica_config.clone(),
            );
            net.replicas.insert(name.to_owned(), replica);
            // One server joins at a time, so `a<n>` is the first primary of its group.
            for _ in 0..5 {
                net.step();
            }
        }
        net.run_until(
            "both groups have a backup and took on configuration 1",
            |n| {
                [G1, G2].iter().all(|g| {
                    n.views.get(g).is_some_and(|v| v.backups.len() == 1)
                        && n.done.get(g) == Some(&ConfigNum(1))
                })
            },
        );
        net
    }

    /// An operator's `ChangeSlots` to the real view service.
    fn change_slots(&mut self, change: SlotsChange) -> Result<ConfigNum, MembersRefusal> {
        let vs = self.vs.as_mut().expect("a real view service");
        let admin = Endpoint::Client(ClientId(4242));
        vs.handle(Now::at_ms(self.now), admin, Message::ChangeSlots(change));
        self.run_until("the view service answers", |n| !n.slots_replies.is_empty());
        self.slots_replies.remove(0)
    }

    /// Delivers a message from the real view service.
    fn deliver_from_vs(&mut self, now: Now, to: Endpoint, msg: Message) {
        match (to, msg) {
            (Endpoint::Server(server), msg) => {
                let name = server.to_string();
                if self.dead.contains(&name) {
                    return;
                }
                if let Some(r) = self.replicas.get_mut(&name) {
                    r.handle(
                        now,
                        Endpoint::ViewService(VsAddr::new(DEFAULT_VIEW_SERVICE)),
                        msg,
                    );
                }
            }
            (Endpoint::Client(_), Message::SlotsReply(reply)) => self.slots_replies.push(reply),
            _ => {}
        }
    }

    fn set_view(&mut self, group: GroupId, view: View) {
        self.views.insert(group, view.clone());
        let info = self.map.groups.entry(group).or_default();
        info.view = Some(view);
        self.map.epoch += 1;
    }

    fn set_config(&mut self, config: ShardConfig) {
        self.map.previous = std::mem::take(&mut self.map.config);
        self.map.config = config;
        self.map.epoch += 1;
    }

    fn replica(&self, name: &str) -> &Replica {
        &self.replicas[name]
    }

    fn primary(&self, group: GroupId) -> String {
        self.views[&group].primary.to_string()
    }

    /// One 5 ms tick: due timers, then every message until none is left.
    fn step(&mut self) {
        self.now += 5;
        let now = Now::at_ms(self.now);
        if let Some(vs) = &mut self.vs {
            if vs.poll_timeout().is_some_and(|t| t <= self.now) {
                vs.handle_timeout(now);
            }
            let sent: Vec<_> = std::iter::from_fn(|| vs.poll_transmit(now)).collect();
            for t in sent {
                self.deliver_from_vs(now, t.to, t.msg);
            }
        }
        for (name, replica) in &mut self.replicas {
            if !self.dead.contains(name) && replica.poll_timeout().is_some_and(|t| t <= self.now) {
                replica.handle_timeout(now);
            }
        }
        for _round in 0..1000 {
            let mut queue = Vec::new();
            for (name, replica) in &mut self.replicas {
                if self.dead.contains(name) {
                    continue;
                }
                while let Some(t) = replica.poll_transmit(now) {
                    queue.push((name.clone(), t));
                }
            }
            if queue.is_empty() {
                return;
            }
            for (sender, t) in queue {
                if (self.block)(&sender, &t.to, &t.msg) {
                    continue;
                }
                match t.to {
                    Endpoint::Server(to) => {
                        let to = to.to_string();
                        if self.dead.contains(&to) {
                            continue;
                        }
                        let from = Endpoint::Server(ServerId::new(&sender));
                        if let Some(r) = self.replicas.get_mut(&to) {
                            r.handle(now, from, t.msg);
                        }
                    }
                    Endpoint::ViewService(_) if self.vs.is_some() => {
                        let vs = self.vs.as_mut().expect("checked");
                        if let Message::Ping(ping) = &t.msg
                            && vs
                                .view(ping.group)
                                .is_some_and(|v| v.primary == ping.server)
                        {
                            self.done.insert(ping.group, ping.config_done);
                        }
                        let from = Endpoint::Server(ServerId::new(&sender));
                        vs.handle(now, from, t.msg);
                        let sent: Vec<_> = std::iter::from_fn(|| vs.poll_transmit(now)).collect();
                        let views: Vec<_> = [G1, G2]
                            .iter()
                            .filter_map(|g| Some((*g, vs.view(*g)?.clone())))
                            .collect();
                        self.views.extend(views);
                        for t in sent {
                            self.deliver_from_vs(now, t.to, t.msg);
                        }
                    }
                    Endpoint::ViewService(vs) => {
                        let Message::Ping(ping) = t.msg else { continue };
                        let current = self.views.get(&ping.group).cloned();
                        if current.as_ref().is_some_and(|v| v.primary == ping.server) {
                            self.done.insert(ping.group, ping.config_done);
                            if let Some(info) = self.map.groups.get_mut(&ping.group) {
                                info.config_done = ping.config_done;
                            }
                        }
                        let cluster = (ping.cluster_epoch < self.map.epoch)
                            .then(|| Arc::new(self.map.clone()));
                        let reply = ViewReply {
                            group: ping.group,
                            view: current,
                            member_incarnation: Some(INCARNATION),
                            cluster,
                        };
                        let r = self.replicas.get_mut(&sender).expect("a replica pinged");
                        r.handle(now, Endpoint::ViewService(vs), Message::PingReply(reply));
                    }
                    Endpoint::Client(_) => {
                        if let Message::Response(response) = t.msg {
                            self.responses.push(response);
                        }
                    }
                }
            }
        }
        panic!("messages never stopped flowing");
    }

    fn run_until(&mut self, what: &str, mut done: impl FnMut(&Net) -> bool) {
        let deadline = self.now + 30_000;
        while !done(self) {
            assert!(
                self.now < deadline,
                "{what}: not within 30 s (at {} ms)",
                self.now
            );
            self.step();
        }
    }

    /// Sends a request to `server` and waits for its answer.
    fn request(
        &mut self,
        server: &str,
        group: GroupId,
        (client, seq): (u64, u64),
        text: &str,
    ) -> Result<Vec<Reply>, RequestError> {
        let req = Request {
            group,
            client: ClientId(client),
            seq: Seq(seq),
            cmds: Arc::new(vec![cmd(text)]),
            user: None,
        };
        let from = Endpoint::Client(ClientId(client));
        let now = Now::at_ms(self.now);
        self.replicas
            .get_mut(server)
            .expect("a server")
            .handle(now, from, Message::Request(req));
        let answered = |r: &Response| r.client == ClientId(client) && r.seq == Seq(seq);
        self.run_until("an answer", |n| n.responses.iter().any(answered));
        let i = self.responses.iter().position(answered).expect("answered");
        let response = self.responses.remove(i);
        response.result.map(|replies| replies.as_ref().clone())
    }

    /// Writes every key through G1's primary, each from its own session.
    fn write_keys(&mut self, keys: &[String]) {
        for key in keys {
            let primary = self.primary(G1);
            self.next_client += 1;
            let session = (self.next_client, 1);
            let reply = self.request(&primary, G1, session, &format!("SET {key} v-{key}"));
            assert_eq!(reply, Ok(vec![Reply::ok()]), "{key}");
        }
    }

    fn move_slots(&mut self) {
        self.set_config(moved(2));
    }

    fn both_done(&self, num: u64) -> bool {
        self.done.get(&G1) == Some(&ConfigNum(num)) && self.done.get(&G2) == Some(&ConfigNum(num))
    }
}

/// The value of `key` in a replica's store, read without going through the protocol.
fn stored(replica: &Replica, key: &str) -> Option<Bytes> {
    let mut store = replica.state().store.clone();
    let ctx = ExecContext {
        now_ms: 0,
        random: 0,
        limits: tandem_kv::Limits::default(),
    };
    match store.execute(&cmd(&format!("GET {key}")), &ctx) {
        Reply::Bulk(value) => Some(value),
        _ => None,
    }
}

fn small_chunks() -> ReplicaConfig {
    ReplicaConfig {
        transfer_chunk_bytes: 512,
        transfer_window: 2,
        ..ReplicaConfig::default()
    }
}

fn is_slot_data(msg: &Message) -> bool {
    matches!(msg, Message::SlotData(_))
}

/// Every moved key is at the taker (primary and backup) with its value, none at the giver;
/// the keys that stay are at the giver only.
fn assert_moved(net: &Net, moved: &[String], stayed: &[String]) {
    let (giver, taker) = (net.primary(G1), net.primary(G2));
    let mut replicas: Vec<&str> = vec![&taker];
    replicas.extend(net.views[&G2].backups.iter().map(|b| b.as_str()));
    for key in moved {
        let want = Some(Bytes::from(format!("v-{key}")));
        for name in &replicas {
            assert_eq!(stored(net.replica(name), key), want, "{key} at {name}");
        }
        assert_eq!(
            stored(net.replica(&giver), key),
            None,
            "{key} left at the giver"
        );
    }
    for key in stayed {
        assert!(stored(net.replica(&giver), key).is_some(), "{key} stays");
        assert_eq!(stored(net.replica(&taker), key), None, "{key} not moved");
    }
    for group in [G1, G2] {
        let primary = net.replica(&net.primary(group));
        for backup in &net.views[&group].backups {
            let backup = net.replica(backup.as_str());
            if backup.state().last == primary.state().last {
                assert_eq!(backup.state().digest(), primary.state().digest(), "{group}");
            }
        }
    }
}

#[test]
fn s3_s4_a_group_given_every_slot_serves_them_and_reports_the_configuration() {
    let mut net = Net::new(ReplicaConfig::default());
    assert!(net.replica("a1").shard().served.len() == 16384);
    assert!(
        net.replica("b1").shard().served.len() == 16384,
        "replicated"
    );
    assert!(net.replica("a2").shard().served.is_empty());
    assert_eq!(
        net.request("a1", G1, (1, 1), "SET k v"),
        Ok(vec![Reply::ok()])
    );
    assert_eq!(
        net.request("a2", G2, (2, 1), "SET k v"),
        Err(RequestError::WrongGroup {
            slot: key_slot(b"k"),
            config: ConfigNum(1)
        })
    );
    // S1: front ends refuse keys of several slots; the core runs them when it serves all.
    assert_eq!(
        net.request("a1", G1, (3, 1), "MSET a 1 b 2"),
        Ok(vec![Reply::ok()])
    );
    assert_eq!(
        net.request("a1", G1, (4, 1), "MSET {t}a 1 {t}b 2"),
        Ok(vec![Reply::ok()])
    );
}

#[test]
fn s5_s6_a_move_copies_the_keys_to_the_taker_and_deletes_them_at_the_giver() {
    let mut net = Net::new(small_chunks());
    let (moved, stayed) = keys();
    assert!(moved.len() > 50 && stayed.len() > 50);
    net.write_keys(&moved);
    net.write_keys(&stayed);
    net.move_slots();
    net.run_until("configuration 2 taken on", |n| n.both_done(2));
    assert_moved(&net, &moved, &stayed);
    assert!(
        net.replica("a1").stats().slot_chunks_sent > 5,
        "many small chunks"
    );
    let key = &moved[0];
    assert_eq!(
        net.request("a2", G2, (9, 1), &format!("GET {key}")),
        Ok(vec![Reply::Bulk(Bytes::from(format!("v-{key}")))])
    );
    assert!(matches!(
        net.request("a1", G1, (9, 2), &format!("GET {key}")),
        Err(RequestError::WrongGroup {
            config: ConfigNum(2),
            ..
        })
    ));
    let kept = &stayed[0];
    assert_eq!(
        net.request("a1", G1, (9, 3), &format!("GET {kept}")),
        Ok(vec![Reply::Bulk(Bytes::from(format!("v-{kept}")))])
    );
    // S1, S4: keys of several slots, not all served here: no group can run it.
    for (server, group) in [("a1", G1), ("a2", G2)] {
        assert_eq!(
            net.request(
                server,
                group,
                (10, 1 + group.0 as u64),
                &format!("MGET {key} {kept}")
            ),
            Err(RequestError::CrossSlot),
            "at {server}"
        );
    }
}

#[test]
fn s4_requests_are_refused_with_the_right_error_at_every_stage_of_a_move() {
    let mut net = Net::new(small_chunks());
    let (moved, stayed) = keys();
    net.write_keys(&moved[..10]);
    let key = moved[0].clone();
    let slot = key_slot(key.as_bytes());
    // Hold every chunk: the giver has frozen the slots, the taker waits for them.
    net.block = Box::new(|_, _, msg| is_slot_data(msg));
    net.move_slots();
    net.run_until("the freeze and the wait", |n| {
        n.replica("a1").shard().frozen.contains(slot)
            && n.replica("a2").shard().arriving.contains(slot)
    });
    assert!(
        net.replica("b1").shard().frozen.contains(slot),
        "the freeze is replicated"
    );
    assert_eq!(
        net.request("a1", G1, (1, 1), &format!("SET {key} x")),
        Err(RequestError::WrongGroup {
            slot,
            config: ConfigNum(2)
        }),
        "frozen at the giver"
    );
    assert_eq!(
        net.request("a2", G2, (1, 2), &format!("GET {key}")),
        Err(RequestError::SlotMoving { slot }),
        "arriving at the taker"
    );
    let kept = &stayed[0];
    assert_eq!(
        net.request("a1", G1, (1, 3), &format!("SET {kept} y")),
        Ok(vec![Reply::ok()]),
        "slots that stay are served throughout"
    );
    assert_eq!(
        net.request("a1", G1, (1, 4), "FLUSHALL"),
        Err(RequestError::SlotMoving { slot: MOVED.0 }),
        "nothing deletes frozen keys"
    );
    assert_eq!(net.done.get(&G1), Some(&ConfigNum(1)), "not taken on yet");
    net.block = Box::new(|_, _, _| false);
    net.run_until("configuration 2 taken on", |n| n.both_done(2));
    assert_eq!(
        net.request("a2", G2, (1, 5), &format!("GET {key}")),
        Ok(vec![Reply::Bulk(Bytes::from(format!("v-{key}")))])
    );
    assert_eq!(
        net.request("a1", G1, (1, 6), &format!("GET {key}")),
        Err(RequestError::WrongGroup {
            slot,
            config: ConfigNum(2)
        }),
        "dropped at the giver"
    );
}

#[test]
fn s5_a_promoted_giver_backup_carries_the_move_on() {
    let mut net = Net::new(small_chunks());
    let (moved, stayed) = keys();
    net.write_keys(&moved);
    net.write_keys(&stayed);
    // Let a few chunks through, then the giver's primary dies.
    let mut passed = 0;
    net.block = Box::new(move |_, _, msg| {
        if is_slot_data(msg) {
            passed += 1;
            return passed > 3;
        }
        false
    });
    net.move_slots();
    net.run_until("chunks installed", |n| {
        n.replica("a2")
            .shard()
            .incoming
            .get(&G1)
            .is_some_and(|i| i.next_chunk >= 2)
    });
    let backup = net.replica("b1").shard();
    assert!(
        backup.outgoing.contains_key(&G2) || backup.precopy.contains_key(&G2),
        "the pre-copy or the freeze is replicated"
    );
    net.dead.insert("a1".to_owned());
    net.block = Box::new(|_, _, _| false);
    net.set_view(G1, view(2, "b1", &[]));
    net.run_until("configuration 2 taken on", |n| n.both_done(2));
    assert_eq!(net.replica("b1").role(), RoleKind::Primary);
    assert!(
        net.replica("b1").stats().slot_chunks_sent > 0,
        "the new primary sent"
    );
    assert_moved(&net, &moved, &stayed);
}

#[test]
fn s6_a_taker_failover_mid_install_loses_nothing() {
    let mut net = Net::new(small_chunks());
    let (moved, stayed) = keys();
    net.write_keys(&moved);
    net.write_keys(&stayed);
    let mut passed = 0;
    net.block = Box::new(move |_, _, msg| {
        if is_slot_data(msg) {
            passed += 1;
            return passed > 4;
        }
        false
    });
    net.move_slots();
    net.run_until("chunks installed", |n| {
        n.replica("a2")
            .shard()
            .incoming
            .get(&G1)
            .is_some_and(|i| i.next_chunk >= 3)
    });
    let held = net.replica("b2").shard().incoming[&G1].next_chunk;
    assert!(held >= 2, "the backup holds the installed chunks: {held}");
    net.dead.insert("a2".to_owned());
    net.block = Box::new(|_, _, _| false);
    net.set_view(G2, view(2, "b2", &[]));
    net.run_until("configuration 2 taken on", |n| n.both_done(2));
    assert_eq!(net.replica("b2").role(), RoleKind::Primary);
    assert_moved(&net, &moved, &stayed);
}

#[test]
fn s7_chunks_from_a_wrong_sender_for_a_wrong_configuration_or_out_of_order_are_ignored() {
    let mut net = Net::new(small_chunks());
    let (moved, _) = keys();
    net.write_keys(&moved[..5]);
    net.block = Box::new(|_, _, msg| is_slot_data(msg));
    net.move_slots();
    net.run_until("the taker waits", |n| {
        n.replica("a2").shard().incoming.contains_key(&G1)
    });
    let key = Bytes::from(moved[0].clone());
    let entry = tandem_kv::Entry::persistent(tandem_kv::Value::Str(Bytes::from("forged")));
    let chunk = |config: u64, number: u32| SlotData {
        config: ConfigNum(config),
        from: G1,
        to: G2,
        chunk: number,
        start: SlotCursor::default(),
        end: SlotCursor {
            keys_done: true,
            ..SlotCursor::default()
        },
        deleted: Vec::new(),
        entries: vec![(key.clone(), entry.clone())],
        clients: Vec::new(),
        done: true,
    };
    let now = Now::at_ms(net.now);
    let a2 = net.replicas.get_mut("a2").expect("a2");
    let refused = a2.stats().slot_messages_refused;
    let server = |name: &str| Endpoint::Server(ServerId::new(name));
    // The giver's backup, a server of no group, and the right sender for configuration 3.
    a2.handle(now, server("b1"), Message::SlotData(chunk(2, 0)));
    a2.handle(now, server("x9"), Message::SlotData(chunk(2, 0)));
    a2.handle(now, server("a1"), Message::SlotData(chunk(3, 0)));
    assert_eq!(a2.stats().slot_messages_refused, refused + 3);
    // The right sender and configuration, but not the next chunk.
    a2.handle(now, server("a1"), Message::SlotData(chunk(2, 5)));
    // A reply about a move G2 is not making, to the taker.
    let reply = SlotDataReply {
        config: ConfigNum(2),
        from: G2,
        to: G1,
        next_chunk: 0,
        cursor: SlotCursor::default(),
        installed: true,
    };
    a2.handle(now, server("a1"), Message::SlotDataReply(reply));
    assert_eq!(a2.stats().slot_messages_refused, refused + 4);
    let incoming = &a2.shard().incoming[&G1];
    assert_eq!(incoming.next_chunk, 0, "nothing installed");
    assert_eq!(stored(net.replica("a2"), &moved[0]), None);
    // The replies the out-of-order chunk got name chunk 0, where the taker is.
    let sent: Vec<_> = std::iter::from_fn(|| net.replicas.get_mut("a2")?.poll_transmit(now))
        .filter_map(|t| match t.msg {
            Message::SlotDataReply(r) => Some(r.next_chunk),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec![0]);
    net.block = Box::new(|_, _, _| false);
    net.run_until("configuration 2 taken on", |n| n.both_done(2));
    assert_eq!(
        stored(net.replica("a2"), &moved[0]),
        Some(Bytes::from(format!("v-{}", moved[0])))
    );
}

#[test]
fn s8_a_request_retried_at_the_taker_after_the_move_is_answered_not_run_again() {
    let mut net = Net::new(small_chunks());
    let (moved, _) = keys();
    let key = moved[0].clone();
    // Executed at the giver; its answer is lost.
    net.block = Box::new(|_, to, _| matches!(to, Endpoint::Client(ClientId(77))));
    let req = Request {
        group: G1,
        client: ClientId(77),
        seq: Seq(1),
        cmds: Arc::new(vec![cmd(&format!("INCR {key}"))]),
        user: None,
    };
    let now = Now::at_ms(net.now);
    let a1 = net.replicas.get_mut("a1").expect("a1");
    a1.handle(now, Endpoint::Client(ClientId(77)), Message::Request(req));
    net.run_until("the INCR is committed", |n| {
        stored(n.replica("b1"), &key) == Some(Bytes::from("1"))
    });
    net.block = Box::new(|_, _, _| false);
    net.move_slots();
    net.run_until("configuration 2 taken on", |n| n.both_done(2));
    // The coordinator retries at the owner in the new map.
    assert_eq!(
        net.request("a2", G2, (77, 1), &format!("INCR {key}")),
        Ok(vec![Reply::Integer(1)])
    );
    assert_eq!(stored(net.replica("a2"), &key), Some(Bytes::from("1")));
    assert_eq!(
        net.request("a2", G2, (77, 2), &format!("INCR {key}")),
        Ok(vec![Reply::Integer(2)])
    );
}

#[test]
fn s4_a_group_that_owns_nothing_jumps_to_the_newest_configuration() {
    let mut net = Net::new(ReplicaConfig::default());
    // Configurations 2 and 3 change nothing for G2 (G1 keeps everything); 4 moves to G2.
    net.set_config(all_g1(2));
    net.run_until("2", |n| n.done.get(&G1) == Some(&ConfigNum(2)));
    net.set_config(all_g1(3));
    net.run_until("3", |n| n.done.get(&G1) == Some(&ConfigNum(3)));
    assert!(net.done.get(&G2) <= Some(&ConfigNum(3)));
    net.write_keys(&keys().0[..5]);
    net.set_config(moved(4));
    net.run_until("4", |n| n.both_done(4));
    assert_moved(&net, &keys().0[..5], &[]);
}

/// The planted bugs of moves (`tandem_protocol::Bug`) do what they say, so the simulator's
/// sweeps hunt something real.
#[test]
fn s5_s6_planted_bugs_serve_what_the_protocol_refuses() {
    use tandem_protocol::{Bug, Bugs};
    let (moved, _) = keys();
    let key = moved[0].clone();
    let slot = key_slot(key.as_bytes());
    for bug in [
        Bug::ServeAfterHandoff,
        Bug::ServeBeforeInstall,
        Bug::MoveStateOnlyOnPrimary,
    ] {
        let mut net = Net::new(ReplicaConfig {
            bugs: Bugs::only(bug),
            ..small_chunks()
        });
        net.write_keys(&moved[..3]);
        net.block = Box::new(|_, _, msg| is_slot_data(msg));
        net.move_slots();
        net.run_until("the freeze and the wait", |n| {
            n.replica("a1").shard().frozen.contains(slot)
                && n.replica("a2").shard().arriving.contains(slot)
        });
        let at_giver = net.request("a1", G1, (5, 1), &format!("GET {key}"));
        let at_taker = net.request("a2", G2, (5, 2), &format!("GET {key}"));
        match bug {
            Bug::ServeAfterHandoff => assert!(at_giver.is_ok(), "{at_giver:?}"),
            Bug::ServeBeforeInstall => assert!(at_taker.is_ok(), "{at_taker:?}"),
            _ => assert!(
                !net.replica("b1").shard().frozen.contains(slot),
                "the backup did not freeze"
            ),
        }
    }
}

#[test]
fn s6_a_giver_that_fails_before_its_drop_commits_is_told_again_and_drops() {
    use tandem_protocol::message::Op;
    let mut net = Net::new(small_chunks());
    let (moved, stayed) = keys();
    net.write_keys(&moved);
    net.write_keys(&stayed);
    // The giver's backup never hears of the drop: the giver's primary dies with it.
    net.block = Box::new(|sender, _, msg| {
        sender == "a1"
            && matches!(msg, Message::Forward(f) if f.entries.iter().any(|e| matches!(
                e.op,
                Op::DropKeys { .. } | Op::Drop { .. }
            )))
    });
    net.move_slots();
    net.run_until("the taker installed and the giver ordered its drop", |n| {
        n.done.get(&G2) == Some(&ConfigNum(2)) && !n.replica("a1").shard().moving()
    });
    assert!(net.replica("b1").shard().outgoing.contains_key(&G2));
    for _ in 0..40 {
        net.step(); // pings go on: the primary must not report what is not committed
    }
    assert_eq!(
        net.done.get(&G1),
        Some(&ConfigNum(1)),
        "S4: reported once committed"
    );
    net.dead.insert("a1".to_owned());
    net.block = Box::new(|_, _, _| false);
    net.set_view(G1, view(2, "b1", &[]));
    net.run_until("configuration 2 taken on", |n| n.both_done(2));
    assert_moved(&net, &moved, &stayed);
}

#[test]
fn s4_a_new_backup_gets_the_shard_state_with_the_state_transfer_and_can_finish_the_move() {
    let mut net = Net::new(small_chunks());
    let (moved, stayed) = keys();
    net.write_keys(&moved);
    net.write_keys(&stayed);
    let slot = key_slot(moved[0].as_bytes());
    net.block = Box::new(|_, _, msg| is_slot_data(msg));
    net.move_slots();
    net.run_until("the freeze", |n| {
        n.replica("b1").shard().frozen.contains(slot)
    });
    net.add_server("c1", G1);
    net.set_view(G1, view(2, "a1", &["b1", "c1"]));
    net.run_until("c1 holds the state", |n| {
        n.replica("c1").state().last == n.replica("a1").state().last
    });
    assert_eq!(net.replica("c1").shard(), net.replica("a1").shard());
    assert!(
        net.replica("a1").stats().transfers_started > 0,
        "by state transfer"
    );
    net.dead.insert("a1".to_owned());
    net.dead.insert("b1".to_owned());
    net.block = Box::new(|_, _, _| false);
    net.set_view(G1, view(3, "c1", &[]));
    net.run_until("configuration 2 taken on", |n| n.both_done(2));
    assert_moved(&net, &moved, &stayed);
}

#[test]
fn s2_an_ill_formed_cluster_map_is_refused() {
    let mut net = Net::new(ReplicaConfig::default());
    let refused = net.replica("a1").stats().views_refused;
    let mut bad = moved(2);
    bad.ranges.reverse();
    net.set_config(bad);
    for _ in 0..100 {
        net.step();
    }
    assert!(net.replica("a1").stats().views_refused > refused);
    assert_eq!(net.replica("a1").shard().target, ConfigNum(1));
    assert_eq!(net.replica("a1").shard().served.len(), 16384);
}

/// End to end with the real view service (S2, S3): it assigns every slot to the first group,
/// an operator moves half of them, both groups take the move on and report it, and the view
/// service then accepts the next change.
#[test]
fn s3_s6_a_move_asked_of_the_view_service_is_taken_on_by_both_groups() {
    let mut net = Net::with_view_service(small_chunks());
    let (moved, stayed) = keys();
    net.write_keys(&moved);
    net.write_keys(&stayed);
    let change = SlotsChange::Move {
        ranges: vec![MOVED],
        to: G2,
    };
    assert_eq!(net.change_slots(change), Ok(ConfigNum(2)));
    net.run_until("configuration 2 taken on", |n| n.both_done(2));
    assert_moved(&net, &moved, &stayed);
    net.run_until("the view service heard", |n| {
        let table = n.vs.as_ref().expect("vs").table();
        table.config_done(G1) == ConfigNum(2) && table.config_done(G2) == ConfigNum(2)
    });
    // The next change is accepted now that both took on configuration 2: move it all back.
    let back = SlotsChange::Move {
        ranges: vec![MOVED],
        to: G1,
    };
    assert_eq!(net.change_slots(back), Ok(ConfigNum(3)));
    net.run_until("configuration 3 taken on", |n| n.both_done(3));
    for key in &moved {
        let want = Some(Bytes::from(format!("v-{key}")));
        assert_eq!(
            stored(net.replica(&net.primary(G1)), key),
            want,
            "{key} back"
        );
        assert_eq!(
            stored(net.replica(&net.primary(G2)), key),
            None,
            "{key} gone"
        );
    }
}

/// S5, S6: in one configuration a group may give and take at once (a swap, as a rebalance
/// makes): both directions complete and each group reports it once both did.
#[test]
fn s5_s6_two_groups_swap_slots_in_one_configuration() {
    let mut net = Net::new(small_chunks());
    let (moved, stayed) = keys();
    net.write_keys(&moved);
    net.write_keys(&stayed);
    net.move_slots();
    net.run_until("configuration 2 taken on", |n| n.both_done(2));
    // Configuration 3: the lower half of what G2 got goes back, and G1 gives 8192..=12287.
    let owner = |slot: u16| {
        Some(match slot {
            0..=4095 | 12288..=16383 => G1,
            _ => G2,
        })
    };
    net.set_config(config(3, owner));
    net.run_until("configuration 3 taken on", |n| n.both_done(3));
    for key in moved.iter().chain(&stayed) {
        let group = owner(key_slot(key.as_bytes())).expect("assigned");
        let other = if group == G1 { G2 } else { G1 };
        let want = Some(Bytes::from(format!("v-{key}")));
        assert_eq!(stored(net.replica(&net.primary(group)), key), want, "{key}");
        assert_eq!(stored(net.replica(&net.primary(other)), key), None, "{key}");
        let backup = net.views[&group].backups[0].to_string();
        assert_eq!(stored(net.replica(&backup), key), want, "{key} at {backup}");
    }
}

/// A reply naming a chunk and a cursor the taker never had (a stale or lying one) makes the
/// giver resend from there; the taker's next real reply sets it right, and nothing panics.
#[test]
fn s5_a_reply_with_an_absurd_cursor_does_not_derail_the_move() {
    let mut net = Net::new(small_chunks());
    let (moved, stayed) = keys();
    net.write_keys(&moved);
    net.write_keys(&stayed);
    let mut passed = 0;
    net.block = Box::new(move |_, _, msg| {
        if is_slot_data(msg) {
            passed += 1;
            return passed > 3;
        }
        false
    });
    net.move_slots();
    net.run_until("chunks installed", |n| {
        n.replica("a2")
            .shard()
            .incoming
            .get(&G1)
            .is_some_and(|i| i.next_chunk >= 2)
    });
    let absurd = SlotDataReply {
        config: ConfigNum(2),
        from: G1,
        to: G2,
        next_chunk: 7,
        cursor: SlotCursor {
            key: Some(Bytes::from(moved[0].clone())),
            key_sent: Some(u64::MAX),
            ..SlotCursor::default()
        },
        installed: false,
    };
    let now = Now::at_ms(net.now);
    let a1 = net.replicas.get_mut("a1").expect("a1");
    a1.handle(
        now,
        Endpoint::Server(ServerId::new("a2")),
        Message::SlotDataReply(absurd),
    );
    net.block = Box::new(|_, _, _| false);
    net.run_until("configuration 2 taken on", |n| n.both_done(2));
    assert_moved(&net, &moved, &stayed);
}

#[test]
fn s2_s4_a_group_with_a_map_but_no_configuration_yet_serves_no_key() {
    // Two groups get views before configuration 1 exists. Whichever group configuration 1 will
    // name, a write taken by the other one now would be stranded there, never served: until a
    // group takes on a configuration, keyed commands wait (TRYAGAIN), keyless ones run.
    let mut net = Net {
        now: 0,
        replicas: BTreeMap::new(),
        dead: BTreeSet::new(),
        views: BTreeMap::new(),
        map: ClusterMap::default(),
        done: BTreeMap::new(),
        responses: Vec::new(),
        next_client: 1000,
        block: Box::new(|_, _, _| false),
        vs: None,
        slots_replies: Vec::new(),
    };
    for (name, group) in [("a1", G1), ("b1", G1), ("a2", G2), ("b2", G2)] {
        let replica = Replica::new(
            ServerId::new(name),
            group,
            INCARNATION,
            ReplicaConfig::default(),
        );
        net.replicas.insert(name.to_owned(), replica);
    }
    net.set_view(G1, view(1, "a1", &["b1"]));
    net.set_view(G2, view(1, "a2", &["b2"]));
    for _ in 0..20 {
        net.step();
    }
    for (server, group, client) in [("a1", G1, 1), ("a2", G2, 2)] {
        assert_eq!(
            net.request(server, group, (client, 1), "SET k v"),
            Err(RequestError::SlotMoving {
                slot: key_slot(b"k")
            }),
            "{server} before any configuration"
        );
        assert_eq!(
            net.request(server, group, (client, 2), "DBSIZE"),
            Ok(vec![Reply::Integer(0)])
        );
    }
    net.set_config(all_g1(1));
    net.run_until("configuration 1 taken on", |n| {
        n.done.get(&G1) == Some(&ConfigNum(1)) && n.done.get(&G2) == Some(&ConfigNum(1))
    });
    assert_eq!(
        net.request("a1", G1, (1, 3), "SET k v"),
        Ok(vec![Reply::ok()])
    );
    assert_eq!(
        net.request("a2", G2, (2, 3), "SET k v"),
        Err(RequestError::WrongGroup {
            slot: key_slot(b"k"),
            config: ConfigNum(1)
        })
    );
}

// ---- pre-copy (S9, S10) and routing during a move (S11) ----

/// Writes every key through G1's primary from one session (so the at-most-once records that
/// travel after the freeze are one, not one per key).
fn write_keys_as(net: &mut Net, client: u64, keys: &[String], value: &str) {
    for key in keys {
        let primary = net.primary(G1);
        net.next_client += 1;
        let seq = net.next_client;
        let reply = net.request(&primary, G1, (client, seq), &format!("SET {key} {value}"));
        assert_eq!(reply, Ok(vec![Reply::ok()]), "{key}");
    }
}

/// Starts the move of configuration 2 and waits until the taker holds every moved key
/// pre-copied while the giver still serves them. The taker's answer that it holds them all is
/// blocked, so the giver keeps pre-copying until its stall bound (S10) freezes the slots.
fn precopy_with_replies_blocked(net: &mut Net, moved: &[String]) {
    net.block = Box::new(
        |_, _, msg| matches!(msg, Message::SlotDataReply(reply) if reply.cursor.keys_done),
    );
    net.move_slots();
    net.run_until("every moved key pre-copied", |n| {
        n.replica("a2")
            .shard()
            .incoming
            .get(&G1)
            .is_some_and(|i| i.cursor.keys_done)
    });
    for name in ["a1", "b1"] {
        let shard = net.replica(name).shard();
        assert!(shard.precopy.contains_key(&G2), "{name} pre-copies");
        assert!(shard.outgoing.is_empty(), "{name} froze nothing yet");
    }
    for key in moved {
        assert!(stored(net.replica("a2"), key).is_some(), "{key} pre-copied");
    }
}

/// The moved keys as `want` says at the taker's primary and backup, and none at the giver.
fn assert_taker_holds(net: &Net, want: &BTreeMap<String, Option<String>>) {
    let taker = net.primary(G2);
    let backup = net.views[&G2].backups[0].to_string();
    for (key, value) in want {
        let value = value.clone().map(Bytes::from);
        assert_eq!(stored(net.replica(&taker), key), value, "{key} at {taker}");
        assert_eq!(
            stored(net.replica(&backup), key),
            value,
            "{key} at {backup}"
        );
        assert_eq!(
            stored(net.replica(&net.primary(G1)), key),
            None,
            "{key} at the giver"
        );
    }
}

#[test]
fn s9_the_giver_serves_the_slots_it_pre_copies_and_records_what_changes() {
    let mut net = Net::new(small_chunks());
    let (moved, _) = keys();
    write_keys_as(&mut net, 500, &moved, "old");
    precopy_with_replies_blocked(&mut net, &moved);
    let key = &moved[0];
    let slot = key_slot(key.as_bytes());
    assert_eq!(
        net.request("a1", G1, (501, 1), &format!("SET {key} new")),
        Ok(vec![Reply::ok()]),
        "served while pre-copied"
    );
    assert_eq!(
        net.request("a1", G1, (501, 2), &format!("GET {key}")),
        Ok(vec![Reply::Bulk(Bytes::from("new"))])
    );
    assert_eq!(
        net.request("a2", G2, (501, 3), &format!("GET {key}")),
        Err(RequestError::SlotMoving { slot }),
        "not served at the taker before its install"
    );
    assert_eq!(
        net.request("a1", G1, (501, 4), "FLUSHALL"),
        Err(RequestError::SlotMoving { slot: MOVED.0 }),
        "no keyspace-wide delete while a pre-copy records changes"
    );
    for name in ["a1", "b1"] {
        let dirty = &net.replica(name).shard().precopy[&G2].dirty;
        let keys: Vec<&Bytes> = dirty.keys().iter().collect();
        assert_eq!(keys, vec![&Bytes::from(key.clone())], "{name}'s dirty set");
    }
}

#[test]
fn s10_writes_and_deletes_during_the_pre_copy_reach_the_taker() {
    let mut net = Net::new(small_chunks());
    let (moved, _) = keys();
    let (old, later) = moved.split_at(moved.len() - 3);
    write_keys_as(&mut net, 500, old, "old");
    precopy_with_replies_blocked(&mut net, old);
    let mut want: BTreeMap<String, Option<String>> = old
        .iter()
        .map(|k| (k.clone(), Some("old".to_owned())))
        .collect();
    // Changes to keys the taker already holds, and keys it never saw.
    let commands = [
        (format!("SET {} new", old[0]), Some("new")),
        (format!("DEL {}", old[1]), None),
        (format!("APPEND {} +", old[2]), Some("old+")),
        (format!("SET {} born", later[0]), Some("born")),
    ];
    for (seq, (text, value)) in commands.iter().enumerate() {
        let reply = net.request("a1", G1, (501, seq as u64 + 1), text);
        assert!(reply.is_ok(), "{text}: {reply:?}");
        let key = text.split(' ').nth(1).expect("a key").to_owned();
        want.insert(key, value.map(str::to_owned));
    }
    net.run_until("the stall bound freezes the slots", |n| {
        n.replica("a1").shard().outgoing.contains_key(&G2)
    });
    let frozen = &net.replica("b1").shard().outgoing[&G2];
    assert_eq!(frozen.dirty.len(), 4, "the freeze keeps the dirty set");
    net.block = Box::new(|_, _, _| false);
    net.run_until("configuration 2 taken on", |n| n.both_done(2));
    assert_taker_holds(&net, &want);
    assert_eq!(
        net.request("a2", G2, (501, 9), &format!("GET {}", old[0])),
        Ok(vec![Reply::Bulk(Bytes::from("new"))])
    );
}

/// The planted bug `pre-copy-without-delta` leaves the taker with the values it pre-copied:
/// the scenario above is the one the simulator must catch.
#[test]
fn s10_planted_pre_copy_without_delta_leaves_stale_values_at_the_taker() {
    use tandem_protocol::{Bug, Bugs};
    let mut net = Net::new(ReplicaConfig {
        bugs: Bugs::only(Bug::PreCopyWithoutDelta),
        ..small_chunks()
    });
    let (moved, _) = keys();
    write_keys_as(&mut net, 500, &moved, "old");
    precopy_with_replies_blocked(&mut net, &moved);
    let key = &moved[0];
    let reply = net.request("a1", G1, (501, 1), &format!("SET {key} new"));
    assert_eq!(reply, Ok(vec![Reply::ok()]));
    net.block = Box::new(|_, _, _| false);
    net.run_until("configuration 2 taken on", |n| n.both_done(2));
    assert_eq!(stored(net.replica("a2"), key), Some(Bytes::from("old")));
}

#[test]
fn s10_a_giver_failover_during_the_pre_copy_loses_no_change() {
    let mut net = Net::new(small_chunks());
    let (moved, stayed) = keys();
    write_keys_as(&mut net, 500, &moved, "old");
    write_keys_as(&mut net, 500, &stayed[..5], "old");
    precopy_with_replies_blocked(&mut net, &moved);
    let mut want: BTreeMap<String, Option<String>> = moved
        .iter()
        .map(|k| (k.clone(), Some("old".to_owned())))
        .collect();
    assert!(
        net.request("a1", G1, (501, 1), &format!("SET {} new", moved[0]))
            .is_ok()
    );
    assert!(
        net.request("a1", G1, (501, 2), &format!("DEL {}", moved[1]))
            .is_ok()
    );
    want.insert(moved[0].clone(), Some("new".to_owned()));
    want.insert(moved[1].clone(), None);
    assert!(
        net.replica("b1").shard().precopy[&G2].dirty.len() == 2,
        "the backup recorded both changes"
    );
    // The giver's primary dies before its freeze.
    net.dead.insert("a1".to_owned());
    net.block = Box::new(|_, _, _| false);
    net.set_view(G1, view(2, "b1", &[]));
    net.run_until("configuration 2 taken on", |n| n.both_done(2));
    assert_eq!(net.replica("b1").role(), RoleKind::Primary);
    assert_taker_holds(&net, &want);
}

#[test]
fn s10_a_giver_failover_during_the_delta_loses_no_change() {
    let mut net = Net::new(small_chunks());
    let (moved, _) = keys();
    write_keys_as(&mut net, 500, &moved, "old");
    precopy_with_replies_blocked(&mut net, &moved);
    let mut want: BTreeMap<String, Option<String>> = moved
        .iter()
        .map(|k| (k.clone(), Some("old".to_owned())))
        .collect();
    for (i, key) in moved[..20].iter().enumerate() {
        let reply = net.request("a1", G1, (501, i as u64 + 1), &format!("SET {key} new"));
        assert!(reply.is_ok(), "{reply:?}");
        want.insert(key.clone(), Some("new".to_owned()));
    }
    net.run_until("the freeze is committed", |n| {
        n.replica("b1").shard().outgoing.contains_key(&G2)
    });
    // Let the taker's answers through: the delta starts; the giver's primary dies after
    // the first chunk of it.
    let mut delta_chunks = 0;
    net.block = Box::new(move |_, _, msg| match msg {
        Message::SlotData(data) if data.start.keys_done => {
            delta_chunks += 1;
            delta_chunks > 1
        }
        _ => false,
    });
    net.run_until("part of the delta installed", |n| {
        n.replica("a2")
            .shard()
            .incoming
            .get(&G1)
            .is_some_and(|i| i.cursor.dirty.is_some())
    });
    assert!(
        !net.replica("a2").shard().incoming[&G1].cursor.dirty_done,
        "the delta is not over"
    );
    net.dead.insert("a1".to_owned());
    net.block = Box::new(|_, _, _| false);
    net.set_view(G1, view(2, "b1", &[]));
    net.run_until("configuration 2 taken on", |n| n.both_done(2));
    assert_taker_holds(&net, &want);
}

/// S10: the slots are frozen only for what changed: with no write during the pre-copy, every
/// key travels before the freeze, and after it only the (empty) delta and the at-most-once
/// records.
#[test]
fn s10_the_freeze_covers_only_the_delta() {
    let mut net = Net::new(small_chunks());
    let (moved, stayed) = keys();
    write_keys_as(&mut net, 500, &moved, "old");
    write_keys_as(&mut net, 500, &stayed, "old");
    net.move_slots();
    net.run_until("configuration 2 taken on", |n| n.both_done(2));
    let stats = net.replica("a1").stats();
    let after_freeze = stats.slot_chunks_sent - stats.slot_chunks_precopied;
    assert!(
        stats.slot_chunks_precopied > 10,
        "the keys were pre-copied in many chunks: {stats:?}"
    );
    assert!(
        after_freeze <= 3,
        "after the freeze: the delta and the records only: {stats:?}"
    );
    let want = moved
        .iter()
        .map(|k| (k.clone(), Some("old".to_owned())))
        .collect();
    assert_taker_holds(&net, &want);
    // The test's network delivers at once: the freeze lasts a few of its 5 ms steps.
    assert_eq!(stats.slot_freeze_ms_last, stats.slot_freeze_ms_max);
    assert!(stats.slot_freeze_ms_max <= 50, "{stats:?}");
}

/// Two groups that give each other slots in one configuration both pre-copy at once: each
/// takes the other's chunks while it still serves what it gives (no wait for a freeze).
#[test]
fn s9_two_groups_giving_each_other_slots_both_pre_copy() {
    let mut net = Net::new(small_chunks());
    let (moved, stayed) = keys();
    write_keys_as(&mut net, 500, &moved, "v");
    write_keys_as(&mut net, 500, &stayed, "v");
    net.move_slots();
    net.run_until("configuration 2 taken on", |n| n.both_done(2));
    let precopied = |net: &Net, name: &str| net.replica(name).stats().slot_chunks_precopied;
    let before = (precopied(&net, "a1"), precopied(&net, "a2"));
    let owner = |slot: u16| {
        Some(match slot {
            0..=4095 | 12288..=16383 => G1,
            _ => G2,
        })
    };
    let start_ms = net.now;
    net.set_config(config(3, owner));
    net.run_until("configuration 3 taken on", |n| n.both_done(3));
    // Neither waited for the other's freeze: the stall bound (5 retransmit intervals, 1 s)
    // never fired.
    let took_ms = net.now - start_ms;
    assert!(took_ms < 1000, "configuration 3 took {took_ms} ms");
    assert!(precopied(&net, "a1") > before.0, "G1 pre-copied");
    assert!(precopied(&net, "a2") > before.1, "G2 pre-copied");
    for key in moved.iter().chain(&stayed) {
        let group = owner(key_slot(key.as_bytes())).expect("assigned");
        let other = if group == G1 { G2 } else { G1 };
        assert_eq!(
            stored(net.replica(&net.primary(group)), key),
            Some(Bytes::from("v")),
            "{key}"
        );
        assert_eq!(stored(net.replica(&net.primary(other)), key), None, "{key}");
    }
}

/// S11: while a configuration moves a slot, the map routes it to its giver until the giver or
/// the taker reports the configuration taken on, then to the taker.
#[test]
fn s11_a_moving_slot_is_routed_to_its_giver_until_the_move_is_reported() {
    let mut map = ClusterMap {
        epoch: 1,
        config: moved(2),
        previous: all_g1(1),
        groups: BTreeMap::new(),
    };
    for group in [G1, G2] {
        map.groups.entry(group).or_default().config_done = ConfigNum(1);
    }
    let (slot, kept) = (MOVED.0, MOVED.1 + 1);
    assert_eq!(
        map.serving(slot),
        Some(G1),
        "the giver pre-copies and serves it"
    );
    assert_eq!(map.route(slot).map(|(g, _)| g), Some(G1));
    assert_eq!(map.serving(kept), Some(G1));
    // What CLUSTER SLOTS shows: every slot still with the giver.
    assert_eq!(map.serving_config().slots_of(G1), vec![(0, 16383)]);
    map.groups.get_mut(&G2).expect("G2").config_done = ConfigNum(2);
    assert_eq!(map.serving(slot), Some(G2), "the taker installed it");
    assert_eq!(map.serving_config(), map.config);
    map.groups.get_mut(&G2).expect("G2").config_done = ConfigNum(1);
    map.groups.get_mut(&G1).expect("G1").config_done = ConfigNum(2);
    assert_eq!(map.serving(slot), Some(G2), "the giver dropped it");
    // A map whose previous configuration is not the one before: the owner.
    map.previous = all_g1(0);
    map.groups.get_mut(&G1).expect("G1").config_done = ConfigNum(1);
    assert_eq!(map.serving(slot), Some(G2));
}
