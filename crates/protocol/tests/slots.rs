//! The slot map in the view service (S2, S3): first assignment, moves, gating on
//! `config_done`, rebalance, `apply`'s checks, the cluster map in ping replies, and the epoch on
//! every node of a replicated view service.

use std::collections::{BTreeMap, VecDeque};

use tandem_protocol::consensus::{DiskState, NodeConfig, ViewServiceNode};
use tandem_protocol::message::{MembersRefusal, Ping, SlotsChange, ViewReply};
use tandem_protocol::view_service::{TableError, rebalanced};
use tandem_protocol::{
    ConfigNum, Endpoint, GroupId, Incarnation, Message, Now, ServerId, ShardConfig, SlotRange,
    View, ViewEvent, ViewNum, ViewService, ViewServiceConfig, ViewTable, VsAddr,
};

const SLOTS: u16 = 16384;
const G0: GroupId = GroupId(0);
const G1: GroupId = GroupId(1);
const G2: GroupId = GroupId(2);

fn vs() -> ViewService {
    ViewService::new(ViewServiceConfig::default())
}

struct P<'a> {
    group: GroupId,
    server: &'a str,
    viewnum: u64,
    done: u64,
    epoch: u64,
    addr: Option<&'a str>,
}

fn p(group: GroupId, server: &str, viewnum: u64) -> P<'_> {
    P {
        group,
        server,
        viewnum,
        done: 0,
        epoch: 0,
        addr: None,
    }
}

fn ping_msg(p: &P<'_>) -> Ping {
    Ping {
        group: p.group,
        server: ServerId::new(p.server),
        viewnum: ViewNum(p.viewnum),
        incarnation: Incarnation(1),
        client_addr: p.addr.map(str::to_owned),
        config_done: ConfigNum(p.done),
        cluster_epoch: p.epoch,
    }
}

/// One ping, judged as a driver does; the direct reply to the pinging server.
fn ping(vs: &mut ViewService, at_ms: u64, p: P<'_>) -> ViewReply {
    let now = Now::at_ms(at_ms);
    let from = Endpoint::Server(ServerId::new(p.server));
    vs.handle(now, from.clone(), Message::Ping(ping_msg(&p)));
    if vs.poll_timeout().is_some_and(|at| at <= now.mono_ms) {
        vs.handle_timeout(now);
    }
    // The latest answer: a view decided by this ping is pushed before the direct reply.
    let mut answer = None;
    while let Some(t) = vs.poll_transmit(now) {
        if let (true, Message::PingReply(reply)) = (t.to == from, t.msg) {
            answer = Some(reply);
        }
    }
    answer.expect("a ping is answered")
}

/// Groups 0..n, each with one acknowledged primary `g<i>`.
fn groups(n: u32) -> ViewService {
    let mut vs = vs();
    for g in 0..n {
        let server = format!("g{g}");
        ping(&mut vs, 0, p(GroupId(g), &server, 0));
        ping(&mut vs, 1, p(GroupId(g), &server, 1));
    }
    vs
}

/// Every group reports it took on the current configuration.
fn all_done(vs: &mut ViewService, n: u32, at_ms: u64) {
    let num = vs.table().shard_config().num.0;
    for g in 0..n {
        let server = format!("g{g}");
        ping(
            vs,
            at_ms,
            P {
                done: num,
                ..p(GroupId(g), &server, 1)
            },
        );
    }
}

fn change(vs: &mut ViewService, change: SlotsChange) -> Result<ConfigNum, MembersRefusal> {
    let now = Now::at_ms(5);
    let admin = Endpoint::Client(tandem_protocol::ClientId(99));
    vs.handle(now, admin.clone(), Message::ChangeSlots(change));
    let t = vs.poll_transmit(now).expect("answered");
    assert_eq!(t.to, admin);
    match t.msg {
        Message::SlotsReply(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

fn count(config: &ShardConfig, group: GroupId) -> u32 {
    config
        .slots_of(group)
        .iter()
        .map(|(a, b)| u32::from(b - a) + 1)
        .sum()
}

#[test]
fn s2_first_group_with_a_view_gets_every_slot_as_configuration_1() {
    let mut vs = vs();
    assert_eq!(vs.table().shard_config().num, ConfigNum(0));
    let reply = ping(&mut vs, 0, p(G1, "a", 0));
    let config = vs.table().shard_config().clone();
    assert_eq!(config.num, ConfigNum(1));
    assert!(config.covers_all());
    assert_eq!(config.slots_of(G1), vec![(0, SLOTS - 1)]);
    // The reply to that very ping carries the map (its epoch 0 is older).
    let map = reply.cluster.expect("a newer map");
    assert_eq!(map.config, config);
    assert_eq!(map.route(1234).map(|(g, _)| g), Some(G1));
    // A second group gets nothing by itself.
    ping(&mut vs, 1, p(G0, "b", 0));
    assert_eq!(vs.table().shard_config().num, ConfigNum(1));
    assert_eq!(count(vs.table().shard_config(), G0), 0);
}

#[test]
fn s2_ping_reply_carries_the_map_only_when_the_server_holds_another() {
    let mut vs = groups(1);
    let epoch = vs.table().epoch();
    assert!(epoch > 0);
    let reply = ping(
        &mut vs,
        10,
        P {
            epoch,
            ..p(G0, "g0", 1)
        },
    );
    assert_eq!(reply.cluster, None, "same epoch: no map");
    let reply = ping(
        &mut vs,
        11,
        P {
            epoch: epoch - 1,
            ..p(G0, "g0", 1)
        },
    );
    assert_eq!(reply.cluster.map(|m| m.epoch), Some(epoch));
    // GetCluster always answers the map.
    let now = Now::at_ms(12);
    let from = Endpoint::Client(tandem_protocol::ClientId(1));
    vs.handle(now, from, Message::GetCluster { epoch });
    match vs.poll_transmit(now).map(|t| t.msg) {
        Some(Message::ClusterReply(map)) => assert_eq!(map.epoch, epoch),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn s2_client_addresses_and_config_done_come_from_pings_of_view_members() {
    let mut vs = groups(1);
    let before = vs.table().epoch();
    ping(
        &mut vs,
        10,
        P {
            addr: Some("10.0.0.1:7000"),
            ..p(G0, "g0", 1)
        },
    );
    assert_eq!(
        vs.table().client_addr(G0, &ServerId::new("g0")),
        Some("10.0.0.1:7000")
    );
    assert_eq!(vs.table().epoch(), before + 1);
    let map = vs.table().cluster_map();
    assert_eq!(map.primary_client_addr(0), Some("10.0.0.1:7000"));
    // The same address again changes nothing.
    ping(
        &mut vs,
        11,
        P {
            addr: Some("10.0.0.1:7000"),
            ..p(G0, "g0", 1)
        },
    );
    assert_eq!(vs.table().epoch(), before + 1);
    // A server outside the view is not recorded; an over-long address is not either.
    ping(
        &mut vs,
        12,
        P {
            addr: Some("x:1"),
            ..p(G0, "idle", 0)
        },
    );
    // (The idle server became a backup in view 2, which g0 acknowledges from now on.)
    assert_eq!(vs.view(G0).map(|v| v.num), Some(ViewNum(2)));
    let long = "a".repeat(300);
    ping(
        &mut vs,
        13,
        P {
            addr: Some(&long),
            ..p(G0, "g0", 2)
        },
    );
    assert_eq!(vs.table().client_addr(G0, &ServerId::new("idle")), None);
    assert_eq!(vs.table().client_addr(G0, &ServerId::new("g0")), None);
    // config_done: only increasing, only up to the current configuration.
    ping(
        &mut vs,
        14,
        P {
            done: 5,
            ..p(G0, "g0", 2)
        },
    );
    assert_eq!(vs.table().config_done(G0), ConfigNum(0));
    ping(
        &mut vs,
        15,
        P {
            done: 1,
            ..p(G0, "g0", 2)
        },
    );
    assert_eq!(vs.table().config_done(G0), ConfigNum(1));
    assert_eq!(
        vs.table().cluster_map().groups[&G0].config_done,
        ConfigNum(1)
    );
}

#[test]
fn s3_a_move_makes_the_next_configuration_with_the_previous_one_kept() {
    let mut vs = groups(2);
    all_done(&mut vs, 2, 10);
    let one = vs.table().shard_config().clone();
    let num = change(
        &mut vs,
        SlotsChange::Move {
            ranges: vec![(0, 99), (200, 200)],
            to: G1,
        },
    )
    .expect("accepted");
    assert_eq!(num, ConfigNum(2));
    let map = vs.table().cluster_map();
    assert_eq!(map.config.num, ConfigNum(2));
    assert_eq!(map.previous, one);
    assert_eq!(map.config.slots_of(G1), vec![(0, 99), (200, 200)]);
    let moves = map.previous.moves_to(&map.config);
    assert_eq!(moves.len(), 1);
    assert_eq!((moves[0].from, moves[0].to), (G0, G1));
    assert_eq!(moves[0].slots, vec![(0, 99), (200, 200)]);
}

#[test]
fn s3_a_second_change_is_refused_until_both_groups_took_on_the_first() {
    let mut vs = groups(3);
    all_done(&mut vs, 3, 10);
    let moved = SlotsChange::Move {
        ranges: vec![(0, 9)],
        to: G1,
    };
    assert_eq!(change(&mut vs, moved), Ok(ConfigNum(2)));
    let next = SlotsChange::Move {
        ranges: vec![(10, 19)],
        to: G2,
    };
    let refused = change(&mut vs, next.clone());
    assert!(
        matches!(&refused, Err(MembersRefusal::Invalid(why)) if why.contains("move is in progress")),
        "{refused:?}"
    );
    // The giver reports configuration 2: the taker is still behind.
    ping(
        &mut vs,
        20,
        P {
            done: 2,
            ..p(G0, "g0", 1)
        },
    );
    assert!(change(&mut vs, next.clone()).is_err());
    ping(
        &mut vs,
        21,
        P {
            done: 2,
            ..p(G1, "g1", 1)
        },
    );
    // G2 takes part in the next move but never reported configuration 2.
    let refused = change(&mut vs, next.clone());
    assert!(
        matches!(&refused, Err(MembersRefusal::Invalid(why)) if why.contains("group 2")),
        "{refused:?}"
    );
    ping(
        &mut vs,
        22,
        P {
            done: 2,
            ..p(G2, "g2", 1)
        },
    );
    assert_eq!(change(&mut vs, next), Ok(ConfigNum(3)));
}

#[test]
fn s3_moves_are_checked_and_a_no_op_answers_the_current_number() {
    let mut vs = groups(2);
    all_done(&mut vs, 2, 10);
    let out_of_range = change(
        &mut vs,
        SlotsChange::Move {
            ranges: vec![(16000, SLOTS)],
            to: G1,
        },
    );
    assert!(matches!(out_of_range, Err(MembersRefusal::Invalid(_))));
    let backwards = change(
        &mut vs,
        SlotsChange::Move {
            ranges: vec![(5, 4)],
            to: G1,
        },
    );
    assert!(matches!(backwards, Err(MembersRefusal::Invalid(_))));
    let no_view = change(
        &mut vs,
        SlotsChange::Move {
            ranges: vec![(0, 4)],
            to: GroupId(7),
        },
    );
    assert!(
        matches!(&no_view, Err(MembersRefusal::Invalid(why)) if why.contains("no view")),
        "{no_view:?}"
    );
    let noop = change(
        &mut vs,
        SlotsChange::Move {
            ranges: vec![(0, 4)],
            to: G0,
        },
    );
    assert_eq!(noop, Ok(ConfigNum(1)));
    assert_eq!(vs.table().shard_config().num, ConfigNum(1));
}

#[test]
fn s3_rebalance_spreads_evenly_and_moves_as_few_slots_as_possible() {
    let mut vs = groups(3);
    all_done(&mut vs, 3, 10);
    assert_eq!(change(&mut vs, SlotsChange::Rebalance), Ok(ConfigNum(2)));
    let config = vs.table().shard_config().clone();
    assert!(config.covers_all());
    let counts: Vec<u32> = [G0, G1, G2].iter().map(|g| count(&config, *g)).collect();
    assert_eq!(counts.iter().sum::<u32>(), u32::from(SLOTS));
    for c in &counts {
        assert!((5461..=5462).contains(c), "{counts:?}");
    }
    // G0 owned everything: it keeps its lowest slots and the larger share.
    assert_eq!(config.slots_of(G0), vec![(0, 5461)]);
    let moved: u32 = vs
        .table()
        .previous_config()
        .moves_to(&config)
        .iter()
        .flat_map(|m| m.slots.iter().map(|(a, b)| u32::from(b - a) + 1))
        .sum();
    assert_eq!(moved, u32::from(SLOTS) - 5462);
    // Balanced already: nothing to do.
    all_done(&mut vs, 3, 20);
    assert_eq!(change(&mut vs, SlotsChange::Rebalance), Ok(ConfigNum(2)));
}

#[test]
fn s3_rebalance_moves_only_the_excess() {
    // 4 groups: G0 owns 0..10000, G1 owns 10000..16384, G2 and G3 nothing.
    let owners: Vec<Option<GroupId>> = (0..SLOTS)
        .map(|s| Some(if s < 10000 { G0 } else { G1 }))
        .collect();
    let current = ShardConfig::from_owners(ConfigNum(4), &owners);
    let g3 = GroupId(3);
    let next = ShardConfig::from_owners(ConfigNum(5), &rebalanced(&current, &[G0, G1, G2, g3]));
    for g in [G0, G1, G2, g3] {
        assert_eq!(count(&next, g), 4096, "group {g}");
    }
    assert_eq!(next.slots_of(G0), vec![(0, 4095)]);
    assert_eq!(next.slots_of(G1), vec![(10000, 14095)]);
    let moved: u32 = current
        .moves_to(&next)
        .iter()
        .flat_map(|m| m.slots.iter().map(|(a, b)| u32::from(b - a) + 1))
        .sum();
    assert_eq!(moved, (10000 - 4096) + (6384 - 4096));
}

fn view(primary: &str) -> View {
    View {
        num: ViewNum(1),
        primary: ServerId::new(primary),
        backups: Vec::new(),
    }
}

fn new_view(group: GroupId, primary: &str) -> ViewEvent {
    ViewEvent::NewView {
        group,
        view: view(primary),
        incarnations: BTreeMap::new(),
        causes: Vec::new(),
        at_ms: 0,
    }
}

fn whole(num: u64, group: GroupId) -> ShardConfig {
    ShardConfig {
        num: ConfigNum(num),
        ranges: vec![SlotRange {
            start: 0,
            end: SLOTS - 1,
            group,
        }],
    }
}

#[test]
fn s2_s3_apply_rejects_malformed_out_of_order_ungated_configs_identically() {
    let mut a = ViewTable::new(8);
    for e in [new_view(G0, "a"), new_view(G1, "b")] {
        a.apply(&e).unwrap();
    }
    let mut b = a.clone();
    type Is = fn(&TableError) -> bool;
    let bad: Vec<(ViewEvent, Is)> = vec![
        (
            ViewEvent::Slots {
                config: whole(2, G0),
            },
            |e| matches!(e, TableError::ConfigNotNext { .. }),
        ),
        (
            ViewEvent::Slots {
                config: ShardConfig {
                    num: ConfigNum(1),
                    ranges: vec![
                        SlotRange {
                            start: 0,
                            end: 10,
                            group: G0,
                        },
                        SlotRange {
                            start: 5,
                            end: 20,
                            group: G1,
                        },
                    ],
                },
            },
            |e| matches!(e, TableError::ConfigMalformed { .. }),
        ),
        (
            ViewEvent::Slots {
                config: whole(1, G2),
            },
            |e| matches!(e, TableError::ConfigNoView { .. }),
        ),
    ];
    for (event, is) in &bad {
        let (ea, eb) = (a.apply(event).unwrap_err(), b.apply(event).unwrap_err());
        assert!(is(&ea), "{ea:?}");
        assert_eq!(ea, eb);
    }
    // Configuration 1 to G0, then a move to G1 before G0 reported 1: ungated.
    let one = ViewEvent::Slots {
        config: whole(1, G0),
    };
    a.apply(&one).unwrap();
    b.apply(&one).unwrap();
    let two = ViewEvent::Slots {
        config: whole(2, G1),
    };
    let ea = a.apply(&two).unwrap_err();
    assert!(
        matches!(ea, TableError::ConfigNotGated { group: G0, .. }),
        "{ea:?}"
    );
    assert_eq!(ea, b.apply(&two).unwrap_err());
    // config_done: not beyond the current configuration, only increasing.
    let beyond = ViewEvent::ConfigDone {
        group: G0,
        num: ConfigNum(2),
    };
    assert!(a.apply(&beyond).is_err());
    let done = |g| ViewEvent::ConfigDone {
        group: g,
        num: ConfigNum(1),
    };
    a.apply(&done(G0)).unwrap();
    assert!(a.apply(&done(G0)).is_err());
    // G1 takes part: it must have reported 1 too.
    assert!(matches!(
        a.apply(&two),
        Err(TableError::ConfigNotGated { group: G1, .. })
    ));
    a.apply(&done(G1)).unwrap();
    a.apply(&two).unwrap();
    assert_eq!(a.previous_config(), &whole(1, G0));
    // A client address only for a member of the current view.
    let stranger = ViewEvent::ClientAddr {
        group: G0,
        server: ServerId::new("zz"),
        addr: Some("h:1".to_owned()),
    };
    assert!(matches!(
        a.apply(&stranger),
        Err(TableError::NotMember { .. })
    ));
    // Rejections change nothing, so the epoch counts only applied map changes.
    assert_eq!(a.epoch(), 2 + 2 + 2);
    assert_eq!(b.epoch(), 2 + 1);
}

// ---- the replicated view service ----

struct Net {
    nodes: BTreeMap<u64, ViewServiceNode>,
    now_ms: u64,
    to_others: Vec<(Endpoint, Message)>,
    queue: VecDeque<(Endpoint, Endpoint, Message)>,
}

fn addr(id: u64) -> VsAddr {
    VsAddr::new(format!("vs{id}"))
}

impl Net {
    fn new(n: u64) -> Net {
        let mut nodes = BTreeMap::new();
        for id in 1..=n {
            let mut c = NodeConfig::single(addr(id));
            c.id = id;
            c.peers = (1..=n).map(|i| (i, addr(i))).collect();
            c.seed = 11;
            nodes.insert(id, ViewServiceNode::new(c, DiskState::default()).unwrap());
        }
        Net {
            nodes,
            now_ms: 1,
            to_others: Vec::new(),
            queue: VecDeque::new(),
        }
    }

    fn flush(&mut self, id: u64) {
        let now = Now::at_ms(self.now_ms);
        let node = self.nodes.get_mut(&id).unwrap();
        loop {
            let mut progressed = false;
            while let Some(p) = node.poll_persist() {
                node.persisted(now, p.id);
                progressed = true;
            }
            while let Some(t) = node.poll_transmit(now) {
                self.queue
                    .push_back((Endpoint::ViewService(addr(id)), t.to, t.msg));
                progressed = true;
            }
            while node.poll_event().is_some() {}
            if !progressed {
                break;
            }
        }
    }

    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now_ms += 1;
            let now = Now::at_ms(self.now_ms);
            let ids: Vec<u64> = self.nodes.keys().copied().collect();
            for id in ids {
                let node = self.nodes.get_mut(&id).unwrap();
                if node.poll_timeout().is_some_and(|at| at <= now.mono_ms) {
                    node.handle_timeout(now);
                }
                self.flush(id);
            }
            while let Some((from, to, msg)) = self.queue.pop_front() {
                match &to {
                    Endpoint::ViewService(a) => {
                        let id: u64 = a.as_str()[2..].parse().unwrap();
                        self.nodes.get_mut(&id).unwrap().handle(now, from, msg);
                        self.flush(id);
                    }
                    _ => self.to_others.push((to, msg)),
                }
            }
        }
    }

    fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .find(|(_, n)| n.is_leader() && n.view_service().is_deciding())
            .map(|(id, _)| *id)
    }

    fn send(&mut self, from: Endpoint, to: u64, msg: Message) {
        self.queue
            .push_back((from, Endpoint::ViewService(addr(to)), msg));
    }

    fn ping(&mut self, to: u64, p: P<'_>) {
        let from = Endpoint::Server(ServerId::new(p.server));
        self.send(from, to, Message::Ping(ping_msg(&p)));
    }
}

#[test]
fn s2_s3_replicated_nodes_agree_on_the_slot_map_and_its_epoch() {
    let mut net = Net::new(3);
    net.run(2000);
    let leader = net.leader().expect("a leader within 2 s");
    for round in 0..10 {
        net.ping(
            leader,
            P {
                addr: Some("h0:7000"),
                done: u64::from(round > 3),
                ..p(G0, "g0", u64::from(round > 0))
            },
        );
        net.ping(
            leader,
            P {
                addr: Some("h1:7000"),
                done: u64::from(round > 3),
                ..p(G1, "g1", u64::from(round > 0))
            },
        );
        net.run(20);
    }
    let admin = Endpoint::Client(tandem_protocol::ClientId(7));
    // A follower redirects a change to the leader.
    let follower = (1..=3).find(|i| *i != leader).unwrap();
    net.send(
        admin.clone(),
        follower,
        Message::ChangeSlots(SlotsChange::Rebalance),
    );
    net.send(
        admin.clone(),
        leader,
        Message::ChangeSlots(SlotsChange::Rebalance),
    );
    net.run(50);
    let replies: Vec<_> = net
        .to_others
        .iter()
        .filter(|(to, _)| *to == admin)
        .map(|(_, m)| m.clone())
        .collect();
    assert!(
        replies.iter().any(|m| matches!(
            m,
            Message::SlotsReply(Err(MembersRefusal::NotLeader { leader: Some(l) })) if *l == addr(leader)
        )),
        "{replies:?}"
    );
    assert!(
        replies
            .iter()
            .any(|m| matches!(m, Message::SlotsReply(Ok(ConfigNum(2))))),
        "{replies:?}"
    );
    let maps: Vec<_> = net
        .nodes
        .values()
        .map(|n| n.table().cluster_map())
        .collect();
    assert_eq!(maps[0].config.num, ConfigNum(2));
    assert_eq!(count(&maps[0].config, G1), 8192);
    assert_eq!(maps[0].groups[&G1].client_addrs.len(), 1);
    assert_eq!(maps[0].groups[&G0].config_done, ConfigNum(1));
    for map in &maps[1..] {
        assert_eq!(map, &maps[0], "every node: the same map, the same epoch");
    }
    // GetCluster: the leader answers, a follower redirects.
    net.to_others.clear();
    net.send(admin.clone(), leader, Message::GetCluster { epoch: 0 });
    net.send(admin.clone(), follower, Message::GetCluster { epoch: 0 });
    net.run(5);
    assert!(
        net.to_others
            .iter()
            .any(|(_, m)| matches!(m, Message::ClusterReply(map) if map.epoch == maps[0].epoch))
    );
    assert!(
        net.to_others
            .iter()
            .any(|(_, m)| matches!(m, Message::NotLeader { .. }))
    );
}
