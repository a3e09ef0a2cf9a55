//! The view-service process as a Raft group (Q1-Q5), in process on loopback: three
//! `ViewServer` nodes elect a leader, followers redirect (Q2), the table survives a restart of
//! every node from its data directory (Q5), membership changes online, and a damaged
//! `raft.log` refuses to start. Pings are sent on raw connections with a server id the test
//! controls; every wait polls with a deadline.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::BytesMut;
use common::wait_until;
use tandem_protocol::message::{MemberChange, NodeStatus, Ping};
use tandem_protocol::{
    ClientId, Endpoint, GroupId, Incarnation, Message, ServerId, Status, ViewNum, VsAddr,
};
use tandem_runtime::wire::{Envelope, decode_frame, encode_frame};
use tandem_runtime::{
    RuntimeError, ShutdownTrigger, ViewServer, ViewServerConfig, change_members, shutdown_channel,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const MAX_FRAME: usize = 1 << 20;
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// One running node.
struct Node {
    id: u64,
    addr: String,
    admin: Option<std::net::SocketAddr>,
    dir: PathBuf,
    trigger: ShutdownTrigger,
    task: JoinHandle<Result<(), RuntimeError>>,
}

impl Node {
    /// Stops the node and waits for its task.
    async fn stop(self) -> anyhow::Result<()> {
        self.trigger.trigger();
        self.task.await??;
        Ok(())
    }
}

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tandem-vs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(id: u64, peers: &BTreeMap<u64, String>, dir: PathBuf) -> ViewServerConfig {
    ViewServerConfig {
        id,
        peers: peers.clone(),
        data_dir: Some(dir),
        raft_tick_ms: 10,
        election_ticks: 6,
        ..ViewServerConfig::default()
    }
}

async fn start(
    id: u64,
    listener: TcpListener,
    peers: &BTreeMap<u64, String>,
    dir: PathBuf,
) -> anyhow::Result<Node> {
    start_with(config(id, peers, dir), listener).await
}

async fn start_with(config: ViewServerConfig, listener: TcpListener) -> anyhow::Result<Node> {
    let (id, dir) = (config.id, config.data_dir.clone().expect("a data dir"));
    let addr = listener.local_addr()?.to_string();
    let server = ViewServer::with_listener(config, listener, None).await?;
    let admin = server.admin_addr();
    assert_eq!(server.addr(), addr);
    let (trigger, shutdown) = shutdown_channel();
    let task = tokio::spawn(server.run(shutdown));
    Ok(Node {
        id,
        addr,
        admin,
        dir,
        trigger,
        task,
    })
}

/// Three nodes on ephemeral loopback ports, each with its own directory under `root`.
async fn start_group(root: &std::path::Path) -> anyhow::Result<Vec<Node>> {
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await?);
    }
    let peers: BTreeMap<u64, String> = (1..)
        .zip(&listeners)
        .map(|(id, l)| (id, l.local_addr().expect("bound").to_string()))
        .collect();
    let mut nodes = Vec::new();
    for (id, listener) in (1..).zip(listeners) {
        nodes.push(start(id, listener, &peers, root.join(format!("vs{id}"))).await?);
    }
    Ok(nodes)
}

fn peers_of(nodes: &[Node]) -> BTreeMap<u64, String> {
    nodes.iter().map(|n| (n.id, n.addr.clone())).collect()
}

/// Sends `msg` as `from` on a new connection and returns the first answer.
async fn ask(addr: &str, from: Endpoint, msg: Message) -> anyhow::Result<Message> {
    timeout(ASK_TIMEOUT, async {
        let mut stream = TcpStream::connect(addr).await?;
        let frame = encode_frame(&Envelope { from, msg }, MAX_FRAME)?;
        stream.write_all(&frame).await?;
        let mut buf = BytesMut::new();
        loop {
            if let Some(envelope) = decode_frame(&mut buf, MAX_FRAME)? {
                return Ok(envelope.msg);
            }
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("{addr} closed the connection");
            }
        }
    })
    .await
    .context("no answer in time")?
}

async fn status(addr: &str) -> anyhow::Result<Status> {
    match ask(addr, Endpoint::Client(ClientId(7)), Message::GetStatus {}).await? {
        Message::StatusReply(status) => Ok(status),
        other => bail!("unexpected answer {other:?}"),
    }
}

async fn ping(addr: &str, server: &str, viewnum: u64) -> anyhow::Result<Message> {
    let server = ServerId::new(server);
    let msg = Message::Ping(Ping {
        group: GroupId(0),
        server: server.clone(),
        viewnum: ViewNum(viewnum),
        incarnation: Incarnation(1),
        client_addr: None,
        config_done: tandem_protocol::ConfigNum(0),
        cluster_epoch: 0,
    });
    ask(addr, Endpoint::Server(server), msg).await
}

/// The node statuses once every node agrees on one leader that leads (Q1); returns the
/// leader's index in `nodes`.
async fn elected(nodes: &[Node]) -> anyhow::Result<usize> {
    wait_until("the nodes agree on one leader", || async {
        let mut statuses: Vec<NodeStatus> = Vec::new();
        for node in nodes {
            statuses.push(status(&node.addr).await.ok()?.node?);
        }
        let leader = statuses[0].leader;
        let agree = leader != 0 && statuses.iter().all(|s| s.leader == leader);
        let leaders: Vec<usize> = (0..statuses.len())
            .filter(|i| statuses[*i].role == "leader")
            .collect();
        (agree && leaders.len() == 1 && statuses[leaders[0]].id == leader).then(|| leaders[0])
    })
    .await
}

/// Pings the leader as `server` until it is the acknowledged primary of view 1 of group 0.
async fn make_primary(leader: &str, server: &str) -> anyhow::Result<()> {
    wait_until(
        "the server is the acknowledged primary of view 1",
        || async {
            let viewnum = match ping(leader, server, 0).await.ok()? {
                Message::PingReply(reply) => reply.view.map_or(0, |v| v.num.0),
                _ => 0,
            };
            if viewnum > 0 {
                ping(leader, server, viewnum).await.ok()?;
            }
            let status = status(leader).await.ok()?;
            let group = status.groups.first()?;
            let view = group.view.as_ref()?;
            (view.num.0 == 1 && view.primary.as_str() == server && group.acked).then_some(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q1_q2_three_nodes_elect_a_leader_and_followers_redirect_to_it() -> anyhow::Result<()> {
    let root = test_dir("elect");
    let nodes = start_group(&root).await?;
    let leader = elected(&nodes).await?;
    let node = status(&nodes[leader].addr)
        .await?
        .node
        .context("node status")?;
    assert_eq!(node.members.len(), 3, "{node:?}");
    assert_eq!(node.addr, nodes[leader].addr);
    // Q2: a follower answers a ping with the leader's address.
    for (i, follower) in nodes.iter().enumerate().filter(|(i, _)| *i != leader) {
        let reply = ping(&follower.addr, "127.0.0.1:1", 0).await?;
        assert_eq!(
            reply,
            Message::NotLeader {
                leader: Some(VsAddr::new(&nodes[leader].addr))
            },
            "follower {i}"
        );
    }
    // The leader decides (Q1): the first pinging server becomes primary.
    make_primary(&nodes[leader].addr, "127.0.0.1:1").await?;
    // Every node applies the committed view (Q3), followers included.
    for node in &nodes {
        wait_until("every node applied view 1", || async {
            let status = status(&node.addr).await.ok()?;
            (status.groups.first()?.view.as_ref()?.num.0 == 1).then_some(())
        })
        .await?;
    }
    for node in nodes {
        node.stop().await?;
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q5_all_three_restarted_from_their_data_dirs_keep_the_table() -> anyhow::Result<()> {
    let root = test_dir("restart");
    let nodes = start_group(&root).await?;
    let leader = elected(&nodes).await?;
    make_primary(&nodes[leader].addr, "127.0.0.1:2").await?;
    let peers = peers_of(&nodes);
    let mut dirs = Vec::new();
    for node in nodes {
        dirs.push((node.id, node.addr.clone(), node.dir.clone()));
        node.stop().await?;
    }
    for (_, _, dir) in &dirs {
        let log = dir.join("raft.log");
        assert!(
            std::fs::metadata(&log)?.len() > 0,
            "{} is empty",
            log.display()
        );
    }
    let mut nodes = Vec::new();
    for (id, addr, dir) in dirs {
        // The stopped node's listener closes as its tasks end.
        let listener = wait_until("the old port is free again", || async {
            TcpListener::bind(&addr).await.ok()
        })
        .await?;
        nodes.push(start(id, listener, &peers, dir).await?);
    }
    elected(&nodes).await?;
    for node in &nodes {
        wait_until(
            "the restarted node shows view 1 with its primary",
            || async {
                let status = status(&node.addr).await.ok()?;
                let view = status.groups.first()?.view.clone()?;
                (view.num.0 == 1 && view.primary.as_str() == "127.0.0.1:2").then_some(())
            },
        )
        .await?;
    }
    for node in nodes {
        node.stop().await?;
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q5_add_node_then_remove_node_online() -> anyhow::Result<()> {
    let root = test_dir("members");
    let mut nodes = start_group(&root).await?;
    elected(&nodes).await?;
    let peers = peers_of(&nodes);
    // Node 4: not in its --peers, empty data dir: it waits to be added.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr4 = listener.local_addr()?.to_string();
    let joining = start(4, listener, &peers, root.join("vs4")).await?;
    let before = status(&joining.addr).await?.node.context("node status")?;
    assert!(before.members.is_empty(), "{before:?}");
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let added = change_members(
        &addrs,
        MemberChange::Add {
            id: 4,
            addr: VsAddr::new(&addr4),
        },
        Duration::from_secs(10),
        None,
    )
    .await?;
    let ids: Vec<u64> = added.members.iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 2, 3, 4], "{added:?}");
    nodes.push(joining);
    wait_until("node 4 caught up and knows the leader", || async {
        let node = status(&addr4).await.ok()?.node?;
        (node.members.len() == 4 && node.leader != 0).then_some(())
    })
    .await?;
    // Adding it twice is refused with the reason.
    let again = change_members(
        &addrs,
        MemberChange::Add {
            id: 4,
            addr: VsAddr::new(&addr4),
        },
        Duration::from_secs(10),
        None,
    )
    .await
    .expect_err("a second add of node 4");
    assert!(again.to_string().contains("already a member"), "{again}");
    // Removing node 2, asked through any member (the leader is found).
    let removed = change_members(
        std::slice::from_ref(&addr4),
        MemberChange::Remove { id: 2 },
        Duration::from_secs(10),
        None,
    )
    .await?;
    let ids: Vec<u64> = removed.members.iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 3, 4], "{removed:?}");
    for node in &nodes {
        if node.id == 2 {
            continue;
        }
        wait_until("every remaining node applied the removal", || async {
            let node = status(&node.addr).await.ok()?.node?;
            (node.members.iter().map(|m| m.id).collect::<Vec<_>>() == [1, 3, 4]).then_some(())
        })
        .await?;
    }
    for node in nodes {
        node.stop().await?;
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

#[tokio::test]
async fn q5_a_corrupt_raft_log_refuses_to_start_naming_the_file() -> anyhow::Result<()> {
    let root = test_dir("corrupt");
    let dir = root.join("vs1");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("raft.log"),
        b"this is not a raft log at all, not even close",
    )?;
    let peers = BTreeMap::from([(1, "127.0.0.1:1".to_owned())]);
    let mut config = config(1, &peers, dir.clone());
    config.peers = BTreeMap::new();
    let error = ViewServer::bind(config, "127.0.0.1:0")
        .await
        .expect_err("a damaged log must not start");
    let text = error.to_string();
    assert!(
        text.contains(&dir.join("raft.log").display().to_string()),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

#[tokio::test]
async fn peers_without_a_data_dir_or_with_a_wrong_own_address_are_refused() -> anyhow::Result<()> {
    let peers = BTreeMap::from([
        (1, "127.0.0.1:7000".to_owned()),
        (2, "127.0.0.1:7001".to_owned()),
    ]);
    let mut no_dir = config(1, &peers, PathBuf::new());
    no_dir.data_dir = None;
    let error = ViewServer::bind(no_dir, "127.0.0.1:0")
        .await
        .expect_err("no data dir");
    assert!(error.to_string().contains("data-dir"), "{error}");
    let dir = test_dir("wrong-addr");
    let wrong = config(1, &peers, dir.clone());
    let error = ViewServer::bind(wrong, "127.0.0.1:0")
        .await
        .expect_err("own address differs");
    assert!(error.to_string().contains("127.0.0.1:7000"), "{error}");
    let mut bad = config(1, &peers, dir.clone());
    bad.peers.insert(3, "no-port".to_owned());
    let error = ViewServer::bind(bad, "127.0.0.1:0")
        .await
        .expect_err("bad address");
    assert!(error.to_string().contains("no-port"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The value of an unlabelled sample in a Prometheus text exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q1_status_metrics_and_dashboard_show_the_nodes_and_the_leader() -> anyhow::Result<()> {
    let root = test_dir("admin");
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await?);
    }
    let peers: BTreeMap<u64, String> = (1..)
        .zip(&listeners)
        .map(|(id, l)| (id, l.local_addr().expect("bound").to_string()))
        .collect();
    let mut nodes = Vec::new();
    for (id, listener) in (1..).zip(listeners) {
        let mut config = config(id, &peers, root.join(format!("vs{id}")));
        config.admin = Some("127.0.0.1:0".to_owned());
        nodes.push(start_with(config, listener).await?);
    }
    let leader = elected(&nodes).await?;
    make_primary(&nodes[leader].addr, "127.0.0.1:3").await?;
    let get = |addr: std::net::SocketAddr, path: &'static str| async move {
        let (code, body) = tandem_runtime::http_get(&addr.to_string(), path, ASK_TIMEOUT)
            .await
            .ok()?;
        (code == 200).then_some(body)
    };
    // Every node's /status lists all members and flags the same single leader.
    for node in &nodes {
        let admin = node.admin.context("admin endpoint")?;
        let body = get(admin, "/status").await.context("/status")?;
        let status: serde_json::Value = serde_json::from_str(&body)?;
        let members = status["node"]["members"].as_array().context("members")?;
        assert_eq!(members.len(), 3, "{status}");
        let leaders: Vec<u64> = members
            .iter()
            .filter(|m| m["leader"] == true)
            .filter_map(|m| m["id"].as_u64())
            .collect();
        assert_eq!(leaders, [nodes[leader].id], "{status}");
        assert_eq!(status["node"]["id"], node.id);
        assert!(status["node"]["log_bytes"].as_u64() > Some(0), "{status}");
    }
    // Metrics: one leader among the nodes, a term, a committed proposal timed on the leader.
    let mut leaders = 0.0;
    for node in &nodes {
        let admin = node.admin.context("admin endpoint")?;
        let text = wait_until("the node's metrics show the applied view", || async {
            let text = get(admin, "/metrics").await?;
            (sample(
                &text,
                "tandem_viewservice_view_changes_total{reason=\"first_primary\"}",
            ) >= Some(1.0))
            .then_some(text)
        })
        .await?;
        leaders += sample(&text, "tandem_viewservice_is_leader").context("is_leader")?;
        assert!(
            sample(&text, "tandem_viewservice_term") >= Some(1.0),
            "{text}"
        );
        assert!(
            sample(&text, "tandem_viewservice_log_bytes") > Some(0.0),
            "{text}"
        );
        assert!(
            sample(&text, "tandem_viewservice_log_entries").is_some(),
            "{text}"
        );
        assert!(
            sample(&text, "tandem_viewservice_elections_total").is_some(),
            "{text}"
        );
        if node.id == nodes[leader].id {
            assert!(
                sample(&text, "tandem_viewservice_proposals_total") >= Some(1.0),
                "{text}"
            );
            assert!(
                sample(&text, "tandem_viewservice_commit_latency_seconds_count") >= Some(1.0),
                "{text}"
            );
        }
    }
    assert_eq!(leaders, 1.0);
    let admin = nodes[0].admin.context("admin endpoint")?;
    let page = get(admin, "/").await.context("dashboard")?;
    assert!(
        page.contains("view-service-nodes"),
        "the dashboard renders the nodes"
    );
    for node in nodes {
        node.stop().await?;
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q1_dev_cluster_runs_three_view_service_nodes_that_elect_a_leader() -> anyhow::Result<()> {
    let (trigger, shutdown) = shutdown_channel();
    let options = tandem_runtime::DevOptions {
        port: 0,
        servers: 0,
        ..tandem_runtime::DevOptions::default()
    };
    let cluster = tandem_runtime::DevCluster::start(options, &shutdown).await?;
    assert_eq!(cluster.view_services.len(), 3);
    assert_eq!(cluster.view_service, cluster.view_services[0]);
    let addrs: Vec<String> = cluster
        .view_services
        .iter()
        .map(|a| a.to_string())
        .collect();
    let leader = wait_until("the dev view service elects a leader", || async {
        let mut leaders = Vec::new();
        for addr in &addrs {
            let node = status(addr).await.ok()?.node?;
            if node.members.len() != 3 || node.leader == 0 {
                return None;
            }
            leaders.push(node.leader);
        }
        leaders.windows(2).all(|w| w[0] == w[1]).then(|| leaders[0])
    })
    .await?;
    assert!((1..=3).contains(&leader));
    trigger.trigger();
    cluster.wait().await?;
    Ok(())
}
