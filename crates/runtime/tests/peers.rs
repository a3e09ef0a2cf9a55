//! Peers prove who they are (I1-I6): the rejection matrix against a real in-process cluster
//! running on certificates. Every refused attempt ends with the connection closed and no
//! answer; the good peer gets its answer.

mod common;

use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use common::{DEADLINE, TestCluster};
use tandem_protocol::message::Ping;
use tandem_protocol::{
    ClientId, Endpoint, GroupId, Incarnation, Message, ServerId, View, ViewNum, VsAddr,
};
use tandem_runtime::PeerTls;
use tandem_runtime::identity::{Principal, Role};
use tandem_runtime::tls::{ClusterCa, NodeSpec, Validity};
use tandem_runtime::wire::{Envelope, decode_frame, encode_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Connects with `tls` (or plain TCP), sends `msg` as `from`, and returns the first answer, or
/// `None` if the connection was refused or closed without one.
async fn answer(
    addr: std::net::SocketAddr,
    tls: Option<&PeerTls>,
    from: Endpoint,
    msg: Message,
) -> anyhow::Result<Option<Message>> {
    let frame = encode_frame(&Envelope { from, msg }, 1 << 20)?;
    let exchange = async {
        let mut stream: Box<dyn Stream> = match tls {
            Some(tls) => match tandem_runtime::tls::dial(&addr.to_string(), tls).await {
                Ok(stream) => Box::new(stream),
                Err(_) => return None,
            },
            None => Box::new(TcpStream::connect(addr).await.ok()?),
        };
        stream.write_all(&frame).await.ok()?;
        stream.flush().await.ok()?;
        let mut buf = BytesMut::new();
        loop {
            if let Some(envelope) = decode_frame(&mut buf, 1 << 26).ok()? {
                return Some(envelope.msg);
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    };
    Ok(timeout(DEADLINE, exchange).await?)
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

fn client() -> Endpoint {
    Endpoint::Client(ClientId(0x7e57))
}

fn ping(server: &str) -> Message {
    Message::Ping(Ping {
        group: GroupId(0),
        server: ServerId::new(server),
        viewnum: ViewNum(0),
        incarnation: Incarnation(0xbad),
        client_addr: None,
        config_done: tandem_protocol::ConfigNum(0),
        cluster_epoch: 0,
    })
}

fn is_status(answer: &Option<Message>) -> bool {
    matches!(answer, Some(Message::StatusReply(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i2_only_certificates_of_the_cluster_ca_that_are_valid_get_an_answer() -> anyhow::Result<()>
{
    let cluster = TestCluster::start().await?;
    let vs = cluster.cluster.view_service;
    let server = cluster.cluster.servers[0];
    let status = || Message::GetStatus {};
    // A good peer is answered.
    let good = cluster.peer(Role::Admin, "ops");
    assert!(is_status(
        &answer(vs, Some(&good), client(), status()).await?
    ));
    for addr in [vs, server] {
        // No certificate (plain TCP).
        let plain = answer(addr, None, client(), status()).await?;
        assert_eq!(plain, None, "plain TCP to {addr}");
        // Another CA.
        let other = ClusterCa::new(Validity::days(1))?.peer(Role::Admin, "ops")?;
        let foreign = answer(addr, Some(&other), client(), status()).await?;
        assert_eq!(foreign, None, "wrong CA to {addr}");
        // Expired (the right CA).
        let spec = NodeSpec {
            file: "old".into(),
            principal: Principal::new(Role::Admin, "old"),
            hosts: Vec::new(),
        };
        let expired = Validity {
            not_before: SystemTime::now() - Duration::from_secs(10 * 86_400),
            days: 1,
        };
        let issued = cluster.ca.issue(&spec, expired)?;
        let old = cluster.ca.peer_tls(&issued)?;
        assert_eq!(
            answer(addr, Some(&old), client(), status()).await?,
            None,
            "expired certificate to {addr}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i3_i4_a_certificate_speaks_only_as_its_own_principal_and_role() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let vs = cluster.cluster.view_service;
    let [a, b] = [cluster.cluster.servers[0], cluster.cluster.servers[1]];
    let (a_name, b_name) = (a.to_string(), b.to_string());
    let before =
        tandem_runtime::status(&cluster.view_service(), DEADLINE, cluster.admin_tls()).await?;
    // Server A's certificate claiming to be server B (a Ping with a new incarnation).
    let server_a = cluster.peer(Role::Server, &a_name);
    let forged = answer(
        vs,
        Some(&server_a),
        Endpoint::Server(ServerId::new(&b_name)),
        ping(&b_name),
    );
    assert_eq!(forged.await?, None, "server A posing as server B");
    // A coordinator's certificate sending a Ping, as a client or as a server.
    let coordinator = cluster.peer(Role::Coordinator, "c1");
    assert_eq!(
        answer(vs, Some(&coordinator), client(), ping(&b_name)).await?,
        None
    );
    let as_server = Endpoint::Server(ServerId::new(&b_name));
    assert_eq!(
        answer(vs, Some(&coordinator), as_server, ping(&b_name)).await?,
        None
    );
    // A server's certificate sending a PingReply (to another server): only view-service nodes
    // answer pings.
    let reply = Message::PingReply(tandem_protocol::message::ViewReply {
        group: GroupId(0),
        view: Some(View {
            num: ViewNum(1002),
            primary: ServerId::new(&a_name),
            backups: Vec::new(),
        }),
        member_incarnation: None,
        cluster: None,
    });
    let from_a = Endpoint::Server(ServerId::new(&a_name));
    assert_eq!(
        answer(b, Some(&server_a), from_a.clone(), reply.clone()).await?,
        None
    );
    // ... nor claiming a view-service node's address.
    let from_vs = Endpoint::ViewService(VsAddr::new(vs.to_string()));
    assert_eq!(answer(b, Some(&server_a), from_vs, reply).await?, None);
    // An admin's certificate may change membership; a server's may not.
    let change = Message::ChangeMembers(tandem_protocol::message::MemberChange::Remove { id: 3 });
    assert_eq!(answer(vs, Some(&server_a), from_a, change).await?, None);
    // Nothing changed: same view, and the cluster still serves.
    let after =
        tandem_runtime::status(&cluster.view_service(), DEADLINE, cluster.admin_tls()).await?;
    assert_eq!(
        before.groups[0].view.as_ref().map(|v| v.num),
        after.groups[0].view.as_ref().map(|v| v.num)
    );
    let mut resp = common::RespClient::connect(cluster.coordinator()).await?;
    assert_eq!(
        resp.call(&[b"SET", b"after", b"1"]).await?,
        tandem_resp::Frame::Simple("OK".into())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i6_idle_unauthenticated_connections_do_not_lock_out_the_cluster() -> anyhow::Result<()> {
    let mut options = tandem_runtime::DevOptions {
        port: 0,
        ..tandem_runtime::DevOptions::default()
    };
    options.coordinator.clerk.request_timeout_ms = 2000;
    options.view_service.net.handshake_timeout_ms = 1000;
    let cluster = TestCluster::start_with(options).await?;
    let vs = cluster.cluster.view_service;
    // 1,024 connections that never start a handshake.
    let mut idle = Vec::new();
    for _ in 0..1024 {
        match TcpStream::connect(vs).await {
            Ok(stream) => idle.push(stream),
            Err(_) => break,
        }
    }
    // An authenticated peer still gets answers (it retries while the slots are busy).
    let admin = cluster.peer(Role::Admin, "ops");
    common::wait_until("the view service answers an authenticated peer", || {
        let admin = admin.clone();
        async move {
            let answer = answer(vs, Some(&admin), client(), Message::GetStatus {}).await;
            is_status(&answer.ok()?).then_some(())
        }
    })
    .await?;
    // And the coordinator still serves.
    let mut resp = common::RespClient::connect(cluster.coordinator()).await?;
    assert_eq!(
        resp.call(&[b"SET", b"k", b"v"]).await?,
        tandem_resp::Frame::Simple("OK".into())
    );
    drop(idle);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i6_a_frame_left_unfinished_closes_its_connection() -> anyhow::Result<()> {
    let mut options = tandem_runtime::DevOptions {
        port: 0,
        ..tandem_runtime::DevOptions::default()
    };
    options.view_service.net.frame_timeout_ms = 300;
    let cluster = TestCluster::start_with(options).await?;
    let tls = cluster.peer(Role::Admin, "slow");
    let mut stream = common::dial(cluster.cluster.view_service, &tls).await?;
    // A header announcing 1 KiB, then nothing more.
    let mut header = vec![1u8];
    header.extend_from_slice(&1024u32.to_be_bytes());
    header.extend_from_slice(&0u32.to_be_bytes());
    stream.write_all(&header).await?;
    stream.flush().await?;
    common::expect_eof(&mut stream).await?;
    Ok(())
}
