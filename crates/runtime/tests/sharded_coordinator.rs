//! A keyspace sharded over three replica groups, used through one coordinator by a client that
//! knows nothing of slots (S1, S4, S8): keys spread over the groups after a rebalance, multi-key
//! commands split and merged, keyspace-wide commands over every group, a pipeline across groups
//! answered in order, ACL changes reaching every group, and the embedded `Client` routing the
//! same way. Everything runs in this process on loopback ports, in insecure mode (an operator's
//! `ChangeSlots` is sent as a raw frame from a `Client` endpoint, which insecure mode admits).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use common::{RespClient, wait_until};
use tandem_kv::slots::key_slot;
use tandem_protocol::message::SlotsChange;
use tandem_protocol::{ClientId, ClusterMap, Endpoint, GroupId, Message};
use tandem_resp::Frame;
use tandem_runtime::wire::{Envelope, decode_frame, encode_frame};
use tandem_runtime::{
    Client, Coordinator, CoordinatorConfig, Reply, Server, ServerConfig, ShutdownTrigger,
    ViewServer, ViewServerConfig, http_get, shutdown_channel,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GROUPS: u32 = 3;
const MAX_FRAME: usize = 1 << 24;

struct Sharded {
    view_service: Vec<String>,
    coordinator: std::net::SocketAddr,
    /// The coordinator's admin endpoint.
    admin: String,
    _stop: ShutdownTrigger,
}

/// Asks the view service `msg` as operator `ClientId(7)` and returns its answer.
async fn ask(view_service: &str, msg: Message) -> anyhow::Result<Message> {
    let mut stream = TcpStream::connect(view_service).await?;
    let envelope = Envelope {
        from: Endpoint::Client(ClientId(7)),
        msg,
    };
    stream
        .write_all(&encode_frame(&envelope, MAX_FRAME)?)
        .await?;
    let mut buf = BytesMut::new();
    loop {
        if let Some(answer) = decode_frame(&mut buf, MAX_FRAME)? {
            return Ok(answer.msg);
        }
        if stream.read_buf(&mut buf).await? == 0 {
            bail!("the view service closed the connection");
        }
    }
}

async fn cluster_map(view_service: &str) -> anyhow::Result<Arc<ClusterMap>> {
    match ask(view_service, Message::GetCluster { epoch: 0 }).await? {
        Message::ClusterReply(map) => Ok(map),
        other => bail!("not a map: {other:?}"),
    }
}

/// Every group has a view and has taken on the current configuration (no move in progress).
fn settled(map: &ClusterMap) -> bool {
    map.config.num.0 > 0
        && map.groups.len() == GROUPS as usize
        && map
            .groups
            .values()
            .all(|g| g.view.is_some() && g.config_done == map.config.num)
}

/// A view service, one server per group, a coordinator; slots rebalanced over the groups.
async fn start() -> anyhow::Result<Sharded> {
    let (stop, shutdown) = shutdown_channel();
    let view_server = ViewServer::bind(ViewServerConfig::default(), "127.0.0.1:0").await?;
    let vs = view_server.local_addr().to_string();
    tokio::spawn(view_server.run(shutdown.clone()));
    let list = vec![vs.clone()];
    for group in 0..GROUPS {
        let config = ServerConfig {
            group: GroupId(group),
            ..ServerConfig::default()
        };
        let server = Server::bind(config, "127.0.0.1:0", None, &list).await?;
        tokio::spawn(server.run(shutdown.clone()));
    }
    let mut config = CoordinatorConfig {
        admin: Some("127.0.0.1:0".to_owned()),
        ..CoordinatorConfig::default()
    };
    config.clerk.request_timeout_ms = 3000;
    let coordinator = Coordinator::bind(config, "127.0.0.1:0", &list).await?;
    let coordinator_addr = coordinator.local_addr();
    let admin = coordinator
        .admin_addr()
        .context("an admin endpoint")?
        .to_string();
    tokio::spawn(coordinator.run(shutdown.clone()));
    let vs_probe = vs.clone();
    wait_until("every group has a view and a first configuration", || {
        let vs = vs_probe.clone();
        async move { cluster_map(&vs).await.ok().filter(|m| settled(m)) }
    })
    .await?;
    Ok(Sharded {
        view_service: list,
        coordinator: coordinator_addr,
        admin,
        _stop: stop,
    })
}

impl Sharded {
    /// Rebalances and waits until every group took the new configuration on.
    async fn rebalance(&self) -> anyhow::Result<Arc<ClusterMap>> {
        let vs = self.view_service[0].clone();
        let before = cluster_map(&vs).await?.config.num;
        match ask(&vs, Message::ChangeSlots(SlotsChange::Rebalance)).await? {
            Message::SlotsReply(Ok(num)) if num > before => {}
            other => bail!("rebalance refused: {other:?}"),
        }
        wait_until("the rebalance is taken on by every group", || {
            let vs = vs.clone();
            async move {
                cluster_map(&vs)
                    .await
                    .ok()
                    .filter(|m| settled(m) && m.config.num > before)
            }
        })
        .await
    }

    async fn client(&self) -> anyhow::Result<RespClient> {
        RespClient::connect(self.coordinator).await
    }
}

fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

/// `n` keys whose slots are owned by every group of `map` (at least `n / 10` each).
fn spread_keys(map: &ClusterMap, n: usize) -> Vec<String> {
    let keys: Vec<String> = (0..n).map(|i| format!("user:{i}")).collect();
    for group in 0..GROUPS {
        let owned = keys
            .iter()
            .filter(|k| map.config.owner(key_slot(k.as_bytes())) == Some(GroupId(group)))
            .count();
        assert!(owned >= n / 10, "group {group} owns {owned} of {n} keys");
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_one_coordinator_serves_a_keyspace_sharded_over_three_groups() -> anyhow::Result<()> {
    let cluster = start().await?;
    let mut client = cluster.client().await?;
    // Written while group 0 owns everything: the rebalance moves them (S5, S6).
    for i in 0..30 {
        let key = format!("early:{i}");
        assert_eq!(
            client.call(&[b"SET", key.as_bytes(), b"e"]).await?,
            Frame::Simple("OK".into())
        );
    }
    let map = cluster.rebalance().await?;
    let owners: BTreeSet<GroupId> = map.config.ranges.iter().map(|r| r.group).collect();
    assert_eq!(owners.len(), GROUPS as usize, "{:?}", map.config);
    let keys = spread_keys(&map, 90);
    // The coordinator's /status shows the map it routes by, once it has heard of it.
    let admin = cluster.admin.clone();
    let epoch = map.epoch;
    let status = wait_until("the coordinator's status shows the rebalanced map", || {
        let admin = admin.clone();
        async move {
            let (_, body) = http_get(&admin, "/status", std::time::Duration::from_secs(2))
                .await
                .ok()?;
            let status: serde_json::Value = serde_json::from_str(&body).ok()?;
            (status["cluster"]["epoch"].as_u64()? >= epoch).then_some(status)
        }
    })
    .await?;
    let slots: u64 = status["cluster"]["groups"]
        .as_array()
        .context("groups")?
        .iter()
        .map(|g| g["slots"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(slots, 16384, "{status}");

    // Single keys land on their owner and read back through the same coordinator.
    for key in &keys {
        let reply = client
            .call(&[b"SET", key.as_bytes(), key.as_bytes()])
            .await?;
        assert_eq!(reply, Frame::Simple("OK".into()));
    }
    for i in 0..30 {
        let key = format!("early:{i}");
        assert_eq!(
            client.call(&[b"GET", key.as_bytes()]).await?,
            bulk("e"),
            "{key} moved with its slot"
        );
    }

    // MGET across groups: values in argument order, a missing key nil.
    let mut mget: Vec<&[u8]> = vec![b"MGET"];
    mget.extend(keys.iter().take(12).map(|k| k.as_bytes()));
    mget.push(b"missing:key");
    let mut expected: Vec<Frame> = keys.iter().take(12).map(|k| bulk(k)).collect();
    expected.push(Frame::Null);
    assert_eq!(client.call(&mget).await?, Frame::Array(expected));

    // MSET across groups (not atomic across them), then EXISTS and DEL counts summed.
    let pairs: Vec<(String, String)> = (0..12)
        .map(|i| (format!("m:{i}"), format!("v{i}")))
        .collect();
    let mut mset: Vec<&[u8]> = vec![b"MSET"];
    for (k, v) in &pairs {
        mset.push(k.as_bytes());
        mset.push(v.as_bytes());
    }
    assert_eq!(client.call(&mset).await?, Frame::Simple("OK".into()));
    let mut exists: Vec<&[u8]> = vec![b"EXISTS"];
    exists.extend(pairs.iter().map(|(k, _)| k.as_bytes()));
    exists.push(b"m:0"); // counted twice, as Redis does
    exists.push(b"missing:key");
    assert_eq!(client.call(&exists).await?, Frame::Integer(13));
    let groups_of_pairs: BTreeSet<_> = pairs
        .iter()
        .filter_map(|(k, _)| map.config.owner(key_slot(k.as_bytes())))
        .collect();
    assert!(groups_of_pairs.len() > 1, "the MSET spans groups");
    let mut del: Vec<&[u8]> = vec![b"DEL"];
    del.extend(pairs.iter().take(6).map(|(k, _)| k.as_bytes()));
    del.push(b"missing:key");
    assert_eq!(client.call(&del).await?, Frame::Integer(6));

    // Keyspace-wide commands over every group.
    let total = (keys.len() + 30 + 6) as i64; // user:*, early:*, m:6..m:11
    let dbsize = client.call(&[b"DBSIZE"]).await?;
    let Frame::Integer(n) = dbsize else {
        bail!("DBSIZE: {dbsize:?}")
    };
    assert_eq!(n, total, "DBSIZE is the sum over the groups");
    let Frame::Array(all) = client.call(&[b"KEYS", b"user:*"]).await? else {
        bail!("KEYS is an array")
    };
    assert_eq!(
        all.len(),
        keys.len(),
        "KEYS concatenates every group's keys"
    );
    let scanned = scan_all(&mut client).await?;
    assert_eq!(scanned.len() as i64, n, "SCAN walks every group once");
    let random = client.call(&[b"RANDOMKEY"]).await?;
    assert!(matches!(random, Frame::Bulk(_)), "{random:?}");

    // A pipeline across groups: one write, replies in order.
    let mut pipeline = BytesMut::new();
    for (i, key) in keys.iter().enumerate().take(40) {
        let value = format!("p{i}");
        tandem_resp::encode_request(&[b"SET", key.as_bytes(), value.as_bytes()], &mut pipeline);
        tandem_resp::encode_request(&[b"GET", key.as_bytes()], &mut pipeline);
    }
    client.send_raw(&pipeline).await?;
    for i in 0..40 {
        assert_eq!(client.read().await?, Frame::Simple("OK".into()));
        assert_eq!(
            client.read().await?,
            bulk(&format!("p{i}")),
            "reply {i} in order"
        );
    }

    // FLUSHALL empties every group.
    assert_eq!(
        client.call(&[b"FLUSHALL"]).await?,
        Frame::Simple("OK".into())
    );
    assert_eq!(client.call(&[b"DBSIZE"]).await?, Frame::Integer(0));
    Ok(())
}

/// Every key SCAN returns, following cursors until 0 (bounded).
async fn scan_all(client: &mut RespClient) -> anyhow::Result<BTreeSet<Bytes>> {
    let mut cursor = "0".to_owned();
    let mut keys = BTreeSet::new();
    for _ in 0..10_000 {
        let reply = client
            .call(&[b"SCAN", cursor.as_bytes(), b"COUNT", b"7"])
            .await?;
        let Frame::Array(parts) = reply else {
            bail!("SCAN: {reply:?}")
        };
        let [Frame::Bulk(next), Frame::Array(page)] = parts.as_slice() else {
            bail!("SCAN: {parts:?}")
        };
        for key in page {
            if let Frame::Bulk(key) = key {
                keys.insert(key.clone());
            }
        }
        cursor = std::str::from_utf8(next)?.to_owned();
        if cursor == "0" {
            return Ok(keys);
        }
    }
    bail!("SCAN did not finish")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a1_acl_changes_reach_every_group() -> anyhow::Result<()> {
    let cluster = start().await?;
    let map = cluster.rebalance().await?;
    let keys = spread_keys(&map, 60);
    let mut admin = cluster.client().await?;
    // An ACL write reaches the groups the coordinator knows (ARCHITECTURE.md): write once to
    // every group first, so its cached map names all of them, as after any rebalance in use.
    for key in &keys {
        let reply = admin.call(&[b"SET", key.as_bytes(), b"0"]).await?;
        assert_eq!(reply, Frame::Simple("OK".into()), "{key}");
    }
    let reply = admin
        .call(&[
            b"ACL", b"SETUSER", b"alice", b"on", b">secret", b"~user:*", b"+@all",
        ])
        .await?;
    assert_eq!(reply, Frame::Simple("OK".into()));
    let mut alice = cluster.client().await?;
    assert_eq!(
        alice.call(&[b"AUTH", b"alice", b"secret"]).await?,
        Frame::Simple("OK".into())
    );
    // Every group checks alice against its own table (A6): a SET on each group's keys works.
    for key in &keys {
        let reply = alice.call(&[b"SET", key.as_bytes(), b"1"]).await?;
        assert_eq!(reply, Frame::Simple("OK".into()), "{key}");
    }
    // Deleting her reaches every group too (A7: her next command is refused everywhere).
    assert_eq!(
        admin.call(&[b"ACL", b"DELUSER", b"alice"]).await?,
        Frame::Integer(1)
    );
    for key in keys.iter().step_by(7) {
        let reply = alice.call(&[b"GET", key.as_bytes()]).await?;
        assert!(
            matches!(&reply, Frame::Error(e) if e.starts_with("NOAUTH")),
            "{key}: {reply:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s8_the_embedded_client_routes_by_slot_and_follows_a_move() -> anyhow::Result<()> {
    let cluster = start().await?;
    let map = cluster.rebalance().await?;
    let keys = spread_keys(&map, 30);
    let mut client = Client::connect(&cluster.view_service)
        .await
        .context("connect")?;
    let mut batch: Vec<Vec<Bytes>> = Vec::new();
    for key in &keys {
        batch.push(vec![
            Bytes::from_static(b"SET"),
            Bytes::from(key.clone()),
            Bytes::from(key.clone()),
        ]);
    }
    let mut mget = vec![Bytes::from_static(b"MGET")];
    mget.extend(keys.iter().map(|k| Bytes::from(k.clone())));
    batch.push(mget);
    let replies = client.pipeline(batch).await?;
    assert!(replies[..keys.len()].iter().all(|r| *r == Reply::ok()));
    let expected: Vec<Reply> = keys
        .iter()
        .map(|k| Reply::Bulk(Bytes::from(k.clone())))
        .collect();
    assert_eq!(replies[keys.len()], Reply::Array(expected));
    // Move the slot of one key to another group; the client follows (WrongGroup, new map).
    let key = &keys[0];
    let slot = key_slot(key.as_bytes());
    let owner = map.config.owner(slot).expect("assigned");
    let to = GroupId((owner.0 + 1) % GROUPS);
    let vs = cluster.view_service[0].clone();
    match ask(
        &vs,
        Message::ChangeSlots(SlotsChange::Move {
            ranges: vec![(slot, slot)],
            to,
        }),
    )
    .await?
    {
        Message::SlotsReply(Ok(_)) => {}
        other => bail!("move refused: {other:?}"),
    }
    let moved = wait_until("the move is taken on", || {
        let vs = vs.clone();
        async move {
            cluster_map(&vs)
                .await
                .ok()
                .filter(|m| settled(m) && m.config.owner(slot) == Some(to))
        }
    })
    .await?;
    assert_eq!(moved.config.owner(slot), Some(to));
    let value = client.call(&[b"GET", key.as_bytes()]).await?;
    assert_eq!(value, Reply::Bulk(Bytes::from(key.clone())));
    assert_eq!(
        client.call(&[b"DBSIZE"]).await?,
        Reply::Integer(keys.len() as i64)
    );
    Ok(())
}

/// Moves `slot` to `to` and waits until every group has taken the move on.
async fn move_slot(vs: &str, slot: u16, to: GroupId) -> anyhow::Result<()> {
    let change = SlotsChange::Move {
        ranges: vec![(slot, slot)],
        to,
    };
    wait_until("the view service accepts the move", || {
        let change = change.clone();
        async move {
            match ask(vs, Message::ChangeSlots(change)).await.ok()? {
                Message::SlotsReply(Ok(_)) => Some(()),
                _ => None,
            }
        }
    })
    .await?;
    wait_until("the move is taken on", || async move {
        cluster_map(vs)
            .await
            .ok()
            .filter(|m| settled(m) && m.config.owner(slot) == Some(to))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s8_increments_through_a_coordinator_run_exactly_once_while_their_slot_moves()
-> anyhow::Result<()> {
    let cluster = start().await?;
    let map = cluster.rebalance().await?;
    let key = "counter";
    let slot = key_slot(key.as_bytes());
    let first = map.config.owner(slot).expect("assigned");
    let mut client = cluster.client().await?;
    let moving = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let still_moving = moving.clone();
    let incrs = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut during_moves = 0;
        while still_moving.load(std::sync::atomic::Ordering::SeqCst) || seen.len() < 50 {
            if still_moving.load(std::sync::atomic::Ordering::SeqCst) {
                during_moves += 1;
            }
            seen.push(client.call(&[b"INCR", key.as_bytes()]).await?);
        }
        anyhow::Ok((seen, during_moves))
    });
    let vs = cluster.view_service[0].clone();
    for hop in 1..=3 {
        move_slot(&vs, slot, GroupId((first.0 + hop) % GROUPS)).await?;
    }
    moving.store(false, std::sync::atomic::Ordering::SeqCst);
    let (seen, during_moves) = incrs.await??;
    eprintln!(
        "INCRs while the slot moved: {during_moves} of {}",
        seen.len()
    );
    assert!(
        during_moves > 10,
        "only {during_moves} INCRs ran while the slot moved"
    );
    // Exactly once: every INCR answered with the next number, none lost, none run twice
    // (a retry after WrongGroup/SlotMoving keeps its (client, seq) and the records moved).
    let expected: Vec<Frame> = (1..=seen.len() as i64).map(Frame::Integer).collect();
    assert_eq!(seen, expected);
    Ok(())
}
