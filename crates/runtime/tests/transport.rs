//! The internal transport, the client library and status, against a real in-process cluster.

mod common;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::{RespClient, TestCluster};
use tandem_protocol::{ClerkConfig, ClientId, Endpoint, GroupId, Message};
use tandem_resp::Frame;
use tandem_runtime::PeerTls;
use tandem_runtime::identity::Role;
use tandem_runtime::wire::{Envelope, encode_frame};
use tandem_runtime::{
    Client, ClientError, Coordinator, CoordinatorConfig, DevOptions, Reply, ViewServer,
    ViewServerConfig, shutdown_channel, status, status_json,
};
use tokio::io::AsyncWriteExt;

fn get_view_frame() -> Bytes {
    let envelope = Envelope {
        from: Endpoint::Client(ClientId(7)),
        msg: Message::GetView { group: GroupId(0) },
    };
    encode_frame(&envelope, 1 << 20).expect("small frame")
}

async fn expect_closed_after(
    addr: std::net::SocketAddr,
    tls: &PeerTls,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let mut stream = common::dial(addr, tls).await?;
    stream.write_all(bytes).await?;
    stream.flush().await?;
    common::expect_eof(&mut stream).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_internal_frames_close_only_their_connection() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let good = get_view_frame();
    let mut wrong_version = BytesMut::from(&good[..]);
    wrong_version[0] = 2;
    let mut bad_crc = BytesMut::from(&good[..]);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x55;
    let mut huge = BytesMut::new();
    huge.put_u8(1);
    huge.put_u32(u32::MAX);
    huge.put_u32(0);
    let mut undecodable = BytesMut::new();
    let payload = [0xffu8; 16];
    undecodable.put_u8(1);
    undecodable.put_u32(payload.len() as u32);
    undecodable.put_u32(crc32fast::hash(&payload));
    undecodable.put_slice(&payload);
    let targets = [cluster.cluster.view_service, cluster.cluster.servers[0]];
    let tls = cluster.peer(Role::Coordinator, "bad-frames");
    for addr in targets {
        for bad in [&wrong_version, &bad_crc, &huge, &undecodable] {
            expect_closed_after(addr, &tls, bad).await?;
        }
    }
    // The processes keep serving: the coordinator still reaches the cluster.
    let mut client = RespClient::connect(cluster.coordinator()).await?;
    assert_eq!(
        client.call(&[b"SET", b"after", b"1"]).await?,
        Frame::Simple("OK".into())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_internal_connections_are_closed_after_the_idle_timeout() -> anyhow::Result<()> {
    let mut options = DevOptions {
        port: 0,
        ..DevOptions::default()
    };
    options.view_service.net.idle_timeout_ms = 200;
    let cluster = TestCluster::start_with(options).await?;
    let addr = cluster.cluster.view_service;
    let tls = cluster.peer(Role::Coordinator, "silent");
    let mut stream = common::dial(addr, &tls).await?;
    common::expect_eof(&mut stream).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_talks_to_the_servers_directly() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let mut client = Client::connect_with(
        ClerkConfig::default(),
        cluster.client_net(),
        &cluster.view_service(),
    )
    .await?;
    assert_eq!(client.call(&[b"SET", b"rc", b"1"]).await?, Reply::ok());
    assert_eq!(
        client.call(&[b"GET", b"rc"]).await?,
        Reply::Bulk(Bytes::from_static(b"1"))
    );
    let replies = client
        .pipeline(vec![
            vec![Bytes::from_static(b"INCR"), Bytes::from_static(b"n")],
            vec![Bytes::from_static(b"INCR"), Bytes::from_static(b"n")],
        ])
        .await?;
    assert_eq!(replies, vec![Reply::Integer(1), Reply::Integer(2)]);
    assert!(matches!(
        client.call(&[b"NOSUCH"]).await,
        Err(ClientError::Rejected(_))
    ));
    // What the client wrote is what the coordinator reads.
    let mut resp = RespClient::connect(cluster.coordinator()).await?;
    assert_eq!(resp.call(&[b"GET", b"n"]).await?, common::bulk("2"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_the_view_and_idle_servers() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let addrs = cluster.view_service();
    let status = common::wait_until("the view has a backup and an idle server", || {
        let addrs = addrs.clone();
        let tls = cluster.admin_tls().cloned();
        async move {
            let status = status(&addrs, Duration::from_secs(2), tls.as_ref())
                .await
                .ok()?;
            let group = status.groups.first()?;
            let ready =
                group.acked && group.view.as_ref()?.backups.len() == 1 && group.idle.len() == 1;
            ready.then_some(status)
        }
    })
    .await?;
    let json = status_json(&status);
    assert!(
        json.starts_with(r#"{"groups":[{"group":0,"viewnum":"#),
        "{json}"
    );
    assert!(json.contains(r#""acked":true,"idle":[""#), "{json}");
    let parsed: serde_json::Value = serde_json::from_str(&json)?;
    assert_eq!(
        parsed["groups"][0]["backups"].as_array().map(Vec::len),
        Some(1)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_no_primary_gets_tryagain() -> anyhow::Result<()> {
    // A view service with no servers: no view, so no primary, ever.
    let (trigger, shutdown) = shutdown_channel();
    let view_server = ViewServer::bind(ViewServerConfig::default(), "127.0.0.1:0").await?;
    let view_service = vec![view_server.local_addr().to_string()];
    tokio::spawn(view_server.run(shutdown.clone()));
    let mut config = CoordinatorConfig::default();
    config.clerk.request_timeout_ms = 300;
    let coordinator = Coordinator::bind(config, "127.0.0.1:0", &view_service).await?;
    let addr = coordinator.local_addr();
    tokio::spawn(coordinator.run(shutdown));
    let mut client = RespClient::connect(addr).await?;
    client
        .send_raw(b"*2\r\n$3\r\nGET\r\n$1\r\nx\r\n*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\n1\r\n")
        .await?;
    for _ in 0..2 {
        assert_eq!(
            client.read().await?,
            Frame::Error("TRYAGAIN no primary for this key".into())
        );
    }
    // The connection stays usable.
    assert_eq!(client.call(&[b"PING"]).await?, Frame::Simple("PONG".into()));
    trigger.trigger();
    Ok(())
}
