//! Q2 over loopback: servers, a coordinator, the Rust client and `status` given a view-service
//! list whose first address is dead (a port bound then released) still find the one live view
//! service and serve; `status` lists the dead node as unreachable.

mod common;

use std::time::Duration;

use common::{RespClient, wait_until};
use tandem_resp::Frame;
use tandem_runtime::status::{cluster_status, cluster_status_json, cluster_status_table};
use tandem_runtime::{
    Client, Coordinator, CoordinatorConfig, Reply, Server, ServerConfig, ShutdownTrigger,
    ViewServer, ViewServerConfig, http_get, shutdown_channel,
};

const TIMEOUT: Duration = Duration::from_secs(2);

/// An address nothing listens on: a port bound, then released.
fn dead_address() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

/// A running view service whose `--viewserver` list starts with a dead node.
struct Setup {
    live: String,
    list: Vec<String>,
    _stop: ShutdownTrigger,
    shutdown: tandem_runtime::Shutdown,
}

async fn view_service_behind_a_dead_node() -> anyhow::Result<Setup> {
    let (stop, shutdown) = shutdown_channel();
    let view_server = ViewServer::bind(ViewServerConfig::default(), "127.0.0.1:0").await?;
    let live = view_server.local_addr().to_string();
    tokio::spawn(view_server.run(shutdown.clone()));
    let list = vec![dead_address()?, live.clone()];
    Ok(Setup {
        live,
        list,
        _stop: stop,
        shutdown,
    })
}

/// The `view_service` field of an admin endpoint's `/status`.
async fn admin_target(admin: &str) -> Option<String> {
    let (code, body) = http_get(admin, "/status", TIMEOUT).await.ok()?;
    let status: serde_json::Value = serde_json::from_str(&body).ok()?;
    (code == 200).then(|| status["view_service"].as_str().map(str::to_owned))?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q2_servers_and_a_coordinator_skip_a_dead_first_view_service_node() -> anyhow::Result<()> {
    let setup = view_service_behind_a_dead_node().await?;
    let mut server_admins = Vec::new();
    for _ in 0..2 {
        let config = ServerConfig {
            admin: Some("127.0.0.1:0".to_owned()),
            ..ServerConfig::default()
        };
        let server = Server::bind(config, "127.0.0.1:0", None, &setup.list).await?;
        server_admins.push(server.admin_addr().expect("admin").to_string());
        tokio::spawn(server.run(setup.shutdown.clone()));
    }
    let mut config = CoordinatorConfig {
        admin: Some("127.0.0.1:0".to_owned()),
        ..CoordinatorConfig::default()
    };
    config.clerk.request_timeout_ms = 2000;
    let coordinator = Coordinator::bind(config, "127.0.0.1:0", &setup.list).await?;
    let coordinator_addr = coordinator.local_addr();
    let coordinator_admin = coordinator.admin_addr().expect("admin").to_string();
    tokio::spawn(coordinator.run(setup.shutdown.clone()));

    // The servers got a view from the live node (Q2: the dead first node was left).
    for admin in &server_admins {
        let live = setup.live.clone();
        wait_until("a server pings the live view-service node", || {
            let live = live.clone();
            async move { (admin_target(admin).await? == live).then_some(()) }
        })
        .await?;
    }
    wait_until("the coordinator asks the live view-service node", || {
        let (admin, live) = (coordinator_admin.clone(), setup.live.clone());
        async move { (admin_target(&admin).await? == live).then_some(()) }
    })
    .await?;
    // And the cluster serves through the coordinator.
    wait_until("the coordinator answers SET", || async move {
        let mut client = RespClient::connect(coordinator_addr).await.ok()?;
        let reply = client.call(&[b"SET", b"k", b"v"]).await.ok()?;
        (reply == Frame::Simple("OK".into())).then_some(())
    })
    .await?;
    let mut resp = RespClient::connect(coordinator_addr).await?;
    assert_eq!(resp.call(&[b"GET", b"k"]).await?, common::bulk("v"));

    // The Rust client locates the live node too and reads what the coordinator wrote.
    let mut client = Client::connect(&setup.list).await?;
    assert_eq!(
        client.call(&[b"GET", b"k"]).await?,
        Reply::Bulk(bytes::Bytes::from_static(b"v"))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_a_dead_node_as_unreachable_and_the_groups_from_the_live_one()
-> anyhow::Result<()> {
    let setup = view_service_behind_a_dead_node().await?;
    let cluster = wait_until("the live node answers GetStatus", || {
        let list = setup.list.clone();
        async move { cluster_status(&list, TIMEOUT, None).await.ok() }
    })
    .await?;
    assert_eq!(cluster.nodes.len(), 2);
    assert!(cluster.nodes[0].status.is_err(), "the dead node answered?");
    assert!(cluster.nodes[1].status.is_ok());
    assert_eq!(cluster.source, 1, "groups come from the node that answered");
    let table = cluster_status_table(&cluster);
    let dead_row = table
        .lines()
        .find(|l| l.contains(setup.list[0].as_str()))
        .expect("a row for the dead node");
    assert!(dead_row.contains("unreachable"), "{table}");
    assert!(
        table.contains("GROUP"),
        "the groups' table follows: {table}"
    );
    let json: serde_json::Value = serde_json::from_str(&cluster_status_json(&cluster))?;
    assert_eq!(json["nodes"][0]["address"], setup.list[0].as_str());
    assert_eq!(json["nodes"][0]["role"], "unreachable");
    assert_eq!(json["nodes"][1]["address"], setup.live.as_str());
    assert_ne!(json["nodes"][1]["role"], "unreachable");
    assert_eq!(json["groups"][0]["group"], 0);

    // Nothing answers: an error naming the list, not an empty table.
    let dead = vec![dead_address()?];
    let error = cluster_status(&dead, TIMEOUT, None).await.unwrap_err();
    assert!(error.to_string().contains(dead[0].as_str()), "{error}");
    Ok(())
}

#[tokio::test]
async fn q2_malformed_view_service_lists_are_refused_at_bind() -> anyhow::Result<()> {
    let list = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    for (bad, why) in [
        (list(&[]), "at least one"),
        (list(&["127.0.0.1:7000", "127.0.0.1:7000"]), "twice"),
        (list(&["127.0.0.1"]), "HOST:PORT"),
    ] {
        let error = Server::bind(ServerConfig::default(), "127.0.0.1:0", None, &bad)
            .await
            .unwrap_err();
        assert!(error.to_string().contains(why), "{error}");
        let error = Coordinator::bind(CoordinatorConfig::default(), "127.0.0.1:0", &bad)
            .await
            .unwrap_err();
        assert!(error.to_string().contains(why), "{error}");
        let error = Client::connect(&bad).await.unwrap_err();
        assert!(error.to_string().contains(why), "{error}");
    }
    Ok(())
}

/// A view-service follower stand-in: answers every `Ping`, `GetView` and `GetCluster` with
/// `NotLeader { leader: Some(leader) }`, naming itself by its address; counts what it answered.
async fn fake_follower(
    leader: String,
    answered: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> anyhow::Result<String> {
    use tandem_protocol::{Endpoint, Message, VsAddr};
    use tandem_runtime::wire::{Envelope, decode_frame, encode_frame};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let me = listener.local_addr()?.to_string();
    let from = Endpoint::ViewService(VsAddr::new(&me));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (from, leader, answered) = (from.clone(), leader.clone(), answered.clone());
            tokio::spawn(async move {
                let max = 1 << 20;
                let mut buf = bytes::BytesMut::new();
                loop {
                    while let Ok(Some(envelope)) = decode_frame(&mut buf, max) {
                        if !matches!(
                            envelope.msg,
                            Message::Ping(_) | Message::GetView { .. } | Message::GetCluster { .. }
                        ) {
                            continue;
                        }
                        let reply = Envelope {
                            from: from.clone(),
                            msg: Message::NotLeader {
                                leader: Some(VsAddr::new(&leader)),
                            },
                        };
                        let Ok(frame) = encode_frame(&reply, max) else {
                            return;
                        };
                        if stream.write_all(&frame).await.is_err() {
                            return;
                        }
                        answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    match stream.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    Ok(me)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q2_a_followers_redirect_leads_servers_coordinators_and_clients_to_the_leader()
-> anyhow::Result<()> {
    let setup = view_service_behind_a_dead_node().await?;
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let follower = fake_follower(setup.live.clone(), answered.clone()).await?;
    // The follower is first; the dead node is last (never needed).
    let list = vec![follower, setup.live.clone(), setup.list[0].clone()];
    let config = ServerConfig {
        admin: Some("127.0.0.1:0".to_owned()),
        ..ServerConfig::default()
    };
    let server = Server::bind(config, "127.0.0.1:0", None, &list).await?;
    let server_admin = server.admin_addr().expect("admin").to_string();
    tokio::spawn(server.run(setup.shutdown.clone()));
    let mut config = CoordinatorConfig {
        admin: Some("127.0.0.1:0".to_owned()),
        ..CoordinatorConfig::default()
    };
    config.clerk.request_timeout_ms = 2000;
    let coordinator = Coordinator::bind(config, "127.0.0.1:0", &list).await?;
    let coordinator_addr = coordinator.local_addr();
    let coordinator_admin = coordinator.admin_addr().expect("admin").to_string();
    tokio::spawn(coordinator.run(setup.shutdown.clone()));

    for admin in [&server_admin, &coordinator_admin] {
        let live = setup.live.clone();
        wait_until("the redirect is followed to the leader", || {
            let live = live.clone();
            async move { (admin_target(admin).await? == live).then_some(()) }
        })
        .await?;
    }
    wait_until("the coordinator answers SET", || async move {
        let mut client = RespClient::connect(coordinator_addr).await.ok()?;
        let reply = client.call(&[b"SET", b"r", b"1"]).await.ok()?;
        (reply == Frame::Simple("OK".into())).then_some(())
    })
    .await?;
    let mut client = Client::connect(&list).await?;
    assert_eq!(
        client.call(&[b"GET", b"r"]).await?,
        Reply::Bulk(bytes::Bytes::from_static(b"1"))
    );
    assert!(
        answered.load(std::sync::atomic::Ordering::Relaxed) >= 2,
        "the follower was asked first and redirected"
    );
    Ok(())
}
