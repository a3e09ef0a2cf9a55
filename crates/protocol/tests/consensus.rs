//! The replicated view-service node (Q1-Q5) driven by a tiny in-process network: every
//! message is delivered in order at the next step, every persist completes at once unless the
//! node is stopped. The simulator covers faults at scale; these tests pin the rules.

use std::collections::{BTreeMap, VecDeque};

use tandem_protocol::consensus::{DiskState, NodeConfig, ViewServiceNode};
use tandem_protocol::message::Ping;
use tandem_protocol::{
    Endpoint, GroupId, Incarnation, Message, Now, ServerId, ViewNum, ViewServiceConfig, VsAddr,
};

struct Net {
    nodes: BTreeMap<u64, ViewServiceNode>,
    disks: BTreeMap<u64, DiskState>,
    down: Vec<u64>,
    /// Nodes that receive nothing (what they send still arrives).
    deaf: Vec<u64>,
    now_ms: u64,
    /// Messages addressed to servers.
    to_servers: Vec<(Endpoint, Message)>,
    queue: VecDeque<(Endpoint, Endpoint, Message)>,
}

fn addr(id: u64) -> VsAddr {
    VsAddr::new(format!("vs{id}"))
}

fn config(id: u64, n: u64) -> NodeConfig {
    config_with(id, n, 6)
}

fn config_with(id: u64, n: u64, election_ticks: usize) -> NodeConfig {
    let mut c = NodeConfig::single(addr(id));
    c.id = id;
    c.peers = (1..=n).map(|i| (i, addr(i))).collect();
    c.seed = 7;
    c.election_ticks = election_ticks;
    c.view_service = ViewServiceConfig::default();
    c
}

impl Net {
    fn new(n: u64) -> Net {
        Net::with(n, 6)
    }

    fn with(n: u64, election_ticks: usize) -> Net {
        let mut net = Net {
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            down: Vec::new(),
            deaf: Vec::new(),
            now_ms: 1,
            to_servers: Vec::new(),
            queue: VecDeque::new(),
        };
        for id in 1..=n {
            net.disks.insert(id, DiskState::default());
            let node =
                ViewServiceNode::new(config_with(id, n, election_ticks), DiskState::default())
                    .unwrap();
            net.nodes.insert(id, node);
        }
        net
    }

    fn now(&self) -> Now {
        Now::at_ms(self.now_ms)
    }

    fn id_of(addr: &VsAddr) -> u64 {
        addr.as_str()[2..].parse().unwrap()
    }

    fn flush(&mut self, id: u64) {
        let now = self.now();
        let node = self.nodes.get_mut(&id).unwrap();
        loop {
            let mut progressed = false;
            while let Some(p) = node.poll_persist() {
                let disk = self.disks.get_mut(&id).unwrap();
                for op in &p.ops {
                    disk.apply(op).unwrap();
                }
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

    /// Advances time by `ms` in 1 ms steps, delivering everything.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now_ms += 1;
            let now = self.now();
            let ids: Vec<u64> = self.nodes.keys().copied().collect();
            for id in &ids {
                if self.down.contains(id) {
                    continue;
                }
                let node = self.nodes.get_mut(id).unwrap();
                if node.poll_timeout().is_some_and(|at| at <= now.mono_ms) {
                    node.handle_timeout(now);
                }
                self.flush(*id);
            }
            while let Some((from, to, msg)) = self.queue.pop_front() {
                match &to {
                    Endpoint::ViewService(a) => {
                        let id = Net::id_of(a);
                        if self.down.contains(&id) || self.deaf.contains(&id) {
                            continue;
                        }
                        if let Endpoint::ViewService(f) = &from
                            && self.down.contains(&Net::id_of(f))
                        {
                            continue;
                        }
                        self.nodes.get_mut(&id).unwrap().handle(now, from, msg);
                        self.flush(id);
                    }
                    _ => self.to_servers.push((to, msg)),
                }
            }
        }
    }

    fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .find(|(id, n)| !self.down.contains(id) && n.is_leader())
            .map(|(id, _)| *id)
    }

    fn ping(&mut self, to: u64, server: &str, viewnum: u64) {
        let msg = Message::Ping(Ping {
            group: GroupId(0),
            server: ServerId::new(server),
            viewnum: ViewNum(viewnum),
            incarnation: Incarnation(1),
            client_addr: None,
            config_done: tandem_protocol::ConfigNum(0),
            cluster_epoch: 0,
        });
        self.queue.push_back((
            Endpoint::Server(ServerId::new(server)),
            Endpoint::ViewService(addr(to)),
            msg,
        ));
    }

    fn restart(&mut self, id: u64, n: u64) {
        let disk = self.disks[&id].clone();
        let node = ViewServiceNode::new(config(id, n), disk).unwrap();
        self.nodes.insert(id, node);
        self.down.retain(|d| *d != id);
    }
}

#[test]
fn q1_three_nodes_elect_a_leader_and_commit_the_first_view_everywhere() {
    let mut net = Net::new(3);
    net.run(2000);
    let leader = net.leader().expect("a leader within 2 s");
    net.ping(leader, "s1", 0);
    net.run(50);
    for node in net.nodes.values() {
        let view = node.table().group(GroupId(0)).and_then(|g| g.view.clone());
        assert_eq!(
            view.map(|v| v.primary),
            Some(ServerId::new("s1")),
            "node {}",
            node.id()
        );
    }
    // A follower redirects (Q2).
    let follower = (1..=3).find(|i| *i != leader).unwrap();
    net.to_servers.clear();
    net.ping(follower, "s1", 1);
    net.run(5);
    assert!(net.to_servers.iter().any(|(_, m)| matches!(
        m,
        Message::NotLeader { leader: Some(l) } if *l == addr(leader)
    )));
}

#[test]
fn q4_killing_the_leader_elects_another_that_keeps_the_table_and_changes_no_view() {
    let mut net = Net::new(3);
    net.run(2000);
    let leader = net.leader().unwrap();
    net.ping(leader, "s1", 0);
    net.ping(leader, "s2", 0);
    net.run(20);
    // s1 acknowledges view 1; s2 then becomes backup in view 2, acknowledged too.
    for _ in 0..20 {
        net.ping(leader, "s1", 1);
        net.ping(leader, "s2", 1);
        net.run(20);
    }
    let before = net.nodes[&leader]
        .table()
        .group(GroupId(0))
        .unwrap()
        .view
        .clone();
    net.down.push(leader);
    net.run(3000);
    let new_leader = net.leader().expect("a new leader");
    assert_ne!(new_leader, leader);
    // Keep pinging the new leader: no view change, ever, from the leader change itself.
    for _ in 0..50 {
        let v = before.as_ref().unwrap().num.0;
        net.ping(new_leader, "s1", v);
        net.ping(new_leader, "s2", v);
        net.run(20);
    }
    let after = net.nodes[&new_leader]
        .table()
        .group(GroupId(0))
        .unwrap()
        .view
        .clone();
    assert_eq!(before, after);
    // The old leader restarts from its disk and catches up.
    net.restart(leader, 3);
    net.run(500);
    assert_eq!(
        net.nodes[&leader].table().group(GroupId(0)).unwrap().view,
        after
    );
}

#[test]
fn q5_all_nodes_restarted_from_disk_keep_every_view() {
    let mut net = Net::new(3);
    net.run(2000);
    let leader = net.leader().unwrap();
    net.ping(leader, "s1", 0);
    net.run(50);
    let before = net.nodes[&leader].table().clone();
    assert!(before.group(GroupId(0)).is_some());
    for id in 1..=3 {
        net.restart(id, 3);
    }
    net.run(3000);
    let leader = net.leader().expect("a leader after the restart");
    assert_eq!(
        net.nodes[&leader].table().group(GroupId(0)).unwrap().view,
        before.group(GroupId(0)).unwrap().view
    );
}

#[test]
fn q1_a_single_node_leads_at_once() {
    let mut net = Net::new(1);
    net.run(5);
    assert_eq!(net.leader(), Some(1));
    net.ping(1, "s1", 0);
    net.run(5);
    assert!(net.nodes[&1].table().group(GroupId(0)).is_some());
}

#[test]
fn q5_a_node_added_online_catches_up_from_a_snapshot_and_a_removed_one_is_gone() {
    use tandem_protocol::message::MemberChange;
    let mut net = Net::new(3);
    net.run(2000);
    let leader = net.leader().unwrap();
    net.ping(leader, "s1", 0);
    net.run(50);
    // Node 4 starts empty, not in the initial membership: it waits.
    net.disks.insert(4, DiskState::default());
    net.nodes.insert(
        4,
        ViewServiceNode::new(config(4, 3), DiskState::default()).unwrap(),
    );
    net.run(500);
    assert!(net.nodes[&4].table().group(GroupId(0)).is_none());
    net.queue.push_back((
        Endpoint::Client(tandem_protocol::ClientId(9)),
        Endpoint::ViewService(addr(leader)),
        Message::ChangeMembers(MemberChange::Add {
            id: 4,
            addr: addr(4),
        }),
    ));
    net.run(500);
    assert!(
        net.to_servers
            .iter()
            .any(|(_, m)| matches!(m, Message::MembersReply(Ok(()))))
    );
    for node in net.nodes.values() {
        assert_eq!(
            node.members().len(),
            4,
            "node {} {:?}",
            node.id(),
            node.node_status(Now::at_ms(net.now_ms))
        );
    }
    assert!(
        net.nodes[&4].table().group(GroupId(0)).is_some(),
        "the new node has the table"
    );
    // Remove a follower.
    let follower = (1..=3).find(|i| *i != leader).unwrap();
    net.queue.push_back((
        Endpoint::Client(tandem_protocol::ClientId(9)),
        Endpoint::ViewService(addr(leader)),
        Message::ChangeMembers(MemberChange::Remove { id: follower }),
    ));
    net.run(500);
    assert_eq!(net.nodes[&leader].members().len(), 3);
    assert!(!net.nodes[&leader].members().contains_key(&follower));
    // The rest still commits decisions without it.
    net.down.push(follower);
    net.ping(leader, "s2", 0);
    net.run(300);
    let idle = net.nodes[&leader]
        .view_service()
        .idle(GroupId(0), Now::at_ms(net.now_ms));
    assert!(
        idle.contains(&ServerId::new("s2")) || {
            let v = net.nodes[&leader].table().group(GroupId(0)).unwrap();
            v.view
                .as_ref()
                .unwrap()
                .backups
                .contains(&ServerId::new("s2"))
        }
    );
}

#[test]
fn q4_a_leader_that_hears_no_quorum_judges_nobody() {
    // An election timeout (1-2 s) longer than the detection period (500 ms): the cut-off
    // leader would see the servers' silence long before raft deposes it.
    let mut net = Net::with(3, 20);
    net.run(5000);
    let leader = net.leader().unwrap();
    let ping_all = |net: &mut Net, v: u64| {
        for to in 1..=3 {
            net.ping(to, "s1", v);
            net.ping(to, "s2", v);
        }
    };
    ping_all(&mut net, 0);
    net.run(50);
    for _ in 0..40 {
        let v = net.nodes[&leader]
            .table()
            .group(GroupId(0))
            .unwrap()
            .view
            .as_ref()
            .unwrap()
            .num
            .0;
        ping_all(&mut net, v);
        net.run(25);
    }
    let before = net.nodes[&leader]
        .table()
        .group(GroupId(0))
        .unwrap()
        .clone();
    assert_eq!(before.view.as_ref().unwrap().backups.len(), 1, "{before:?}");
    assert!(before.acked);
    // The backup's pings land earlier in each round than the primary's, so a leader that
    // judged the silence would find the backup dead first and drop it (a view change).
    let v = before.view.as_ref().unwrap().num.0;
    let (primary, backup) = {
        let view = before.view.as_ref().unwrap();
        (
            view.primary.as_str().to_owned(),
            view.backups[0].as_str().to_owned(),
        )
    };
    let round = |net: &mut Net| {
        for to in 1..=3 {
            net.ping(to, &backup, v);
        }
        net.run(40);
        for to in 1..=3 {
            net.ping(to, &primary, v);
        }
        net.run(10);
    };
    for _ in 0..10 {
        round(&mut net);
    }
    // The leader hears nothing from now on: not the servers, not the other nodes. Its own
    // messages still arrive, so anything it proposed would be committed by its successor.
    net.deaf.push(leader);
    for _ in 0..100 {
        round(&mut net);
    }
    let new_leader = net.leader().expect("a new leader");
    assert_ne!(new_leader, leader);
    let after = net.nodes[&new_leader].table().group(GroupId(0)).unwrap();
    assert_eq!(after.view, before.view, "the partition changed no view");
}
