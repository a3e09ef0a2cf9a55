//! Peers prove who they are (I1-I6): the rejection matrix against a real in-process cluster
//! running on certificates. Every refused attempt ends with the connection closed and no
//! answer; the good peer gets its answer.

mod common;

use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use common::{DEADLINE, TestCluster, wait_until};
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
    // The cluster answers SET as soon as view 1 (a primary alone) exists; the backup joins in
    // view 2 a moment later. Take the "before" view once that settled, so only a forged frame
    // could change it afterwards.
    let before = wait_until("the backup joined and the view is acknowledged", || async {
        let status = tandem_runtime::status(&cluster.view_service(), DEADLINE, cluster.admin_tls())
            .await
            .ok()?;
        let group = status.groups.first()?;
        let settled = group.acked && group.view.as_ref().is_some_and(|v| !v.backups.is_empty());
        settled.then_some(status)
    })
    .await?;
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

/// The view service's `tandem_net_errors_total{kind="refused_connection"}`.
async fn refused_connections(admin: &str) -> anyhow::Result<f64> {
    let (_, body) = tandem_runtime::http_get(admin, "/metrics", DEADLINE).await?;
    let line = body
        .lines()
        .find(|l| l.starts_with("tandem_net_errors_total{kind=\"refused_connection\"}"))
        .ok_or_else(|| anyhow::anyhow!("no refused_connection counter in:\n{body}"))?;
    Ok(line.rsplit(' ').next().unwrap_or("").parse()?)
}

/// Sends GetStatus from the local address `from` with `tls`; the answer, or `None` if the
/// connection was refused or closed without one. The stream is kept open in `keep`.
async fn status_from(
    vs: std::net::SocketAddr,
    from: std::net::IpAddr,
    tls: &PeerTls,
    keep: &mut Vec<Box<dyn Stream>>,
) -> anyhow::Result<Option<Message>> {
    let frame = encode_frame(
        &Envelope {
            from: client(),
            msg: Message::GetStatus {},
        },
        1 << 20,
    )?;
    let exchange = async {
        let mut stream = tandem_runtime::tls::dial_from(vs, from, tls).await.ok()?;
        stream.write_all(&frame).await.ok()?;
        stream.flush().await.ok()?;
        let mut buf = BytesMut::new();
        loop {
            if let Some(envelope) = decode_frame(&mut buf, 1 << 26).ok()? {
                keep.push(Box::new(stream));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i6_one_address_cannot_spend_the_budgets_of_the_others() -> anyhow::Result<()> {
    let mut options = tandem_runtime::DevOptions {
        port: 0,
        admin: Some("127.0.0.1:0".to_owned()),
        ..tandem_runtime::DevOptions::default()
    };
    options.coordinator.clerk.request_timeout_ms = 2000;
    // Handshakes that never start hold their slots for the whole test.
    options.view_service.net.handshake_timeout_ms = 120_000;
    options.view_service.net.max_handshaking_connections = 32;
    options.view_service.net.max_handshaking_per_ip = 16;
    // The cluster's own processes all connect from 127.0.0.1: enough for them.
    options.view_service.net.max_inbound_per_ip = 16;
    let cluster = TestCluster::start_with(options).await?;
    let vs = cluster.cluster.view_service;
    let admin = cluster.cluster.admin.as_ref().expect("admin endpoints");
    let metrics = admin.view_service.to_string();
    let refused_before = refused_connections(&metrics).await?;
    // 127.0.0.1 opens 64 connections that never start a handshake: only 16 are kept (the
    // others are closed at once), and the global budget of 32 is not spent.
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(TcpStream::connect(vs).await?);
    }
    common::wait_until("48 of the 64 idle connections are refused", || {
        let metrics = metrics.clone();
        async move {
            let refused = refused_connections(&metrics).await.ok()?;
            (refused - refused_before >= 48.0).then_some(())
        }
    })
    .await?;
    // A peer on another address gets in at once, and its frames are delivered: sixteen
    // connections from 127.0.0.2 are each answered and kept open.
    let ops = cluster.peer(Role::Admin, "ops");
    let other: std::net::IpAddr = "127.0.0.2".parse()?;
    let mut kept = Vec::new();
    for i in 0..16 {
        let answer = status_from(vs, other, &ops, &mut kept).await?;
        assert!(
            is_status(&answer),
            "connection {i} from 127.0.0.2: {answer:?}"
        );
    }
    // A seventeenth from 127.0.0.2 passes the handshake but finds its address's established
    // budget spent: closed without an answer, and counted.
    let refused = refused_connections(&metrics).await?;
    let fifth = status_from(vs, other, &ops, &mut kept).await?;
    assert_eq!(fifth, None, "a 17th connection from 127.0.0.2 is refused");
    assert!(refused_connections(&metrics).await? > refused);
    // 127.0.0.3 still gets in.
    let third: std::net::IpAddr = "127.0.0.3".parse()?;
    let answer = status_from(vs, third, &ops, &mut kept).await?;
    assert!(is_status(&answer), "127.0.0.3: {answer:?}");
    // And the cluster on 127.0.0.1 still serves.
    let mut resp = common::RespClient::connect(cluster.coordinator()).await?;
    assert_eq!(
        resp.call(&[b"SET", b"k", b"v"]).await?,
        tandem_resp::Frame::Simple("OK".into())
    );
    drop(idle);
    Ok(())
}

/// A TCP relay on a fresh loopback port to `to`: a process on the same host as a node, at
/// another port, whose TLS handshakes are the node's (its certificate names `to`).
async fn relay(to: std::net::SocketAddr) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    Ok(addr)
}

/// A TLS listener on a fresh loopback port presenting a certificate for `principal` (from
/// `ca`); it counts the frames it receives and answers none.
async fn fake_node(
    ca: &ClusterCa,
    principal: impl Fn(u16) -> Principal,
) -> anyhow::Result<(
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let spec = NodeSpec {
        file: "fake".into(),
        principal: principal(addr.port()),
        hosts: Vec::new(),
    };
    let issued = ca.issue(&spec, Validity::days(1))?;
    let chain = tandem_runtime::tls::parse_certs(issued.cert_pem.as_bytes(), "fake")?;
    let key = tandem_runtime::tls::parse_key(issued.key_pem.as_bytes(), "fake")?;
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let frames = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = frames.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(mut stream) = acceptor.accept(stream).await else {
                    return;
                };
                let mut buf = BytesMut::new();
                loop {
                    while let Ok(Some(_)) = decode_frame(&mut buf, 1 << 26) {
                        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    match stream.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    Ok((addr, frames))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i2_a_node_dialled_at_one_port_must_prove_that_port() -> anyhow::Result<()> {
    let ca = common::test_ca();
    let config = tandem_protocol::ClerkConfig {
        request_timeout_ms: 1000,
        ..tandem_protocol::ClerkConfig::default()
    };
    let net = || tandem_runtime::NetConfig {
        tls: Some(ca.peer(Role::Coordinator, "c").expect("a certificate")),
        ..tandem_runtime::NetConfig::default()
    };
    // Two certificates for one host: the node at PORT proves viewservice/127.0.0.1:PORT;
    // the impostor at PORT proves the node on the same host at PORT+1.
    let (honest, heard) = fake_node(&ca, |port| {
        Principal::new(Role::ViewService, format!("127.0.0.1:{port}"))
    })
    .await?;
    let (impostor, fooled) = fake_node(&ca, |port| {
        Principal::new(Role::ViewService, format!("127.0.0.1:{}", port + 1))
    })
    .await?;
    // A client asks each for a view (neither answers): the honest node hears its frames,
    // the impostor, whose certificate names another port, hears none (the link is refused
    // right after the handshake).
    let _ =
        tandem_runtime::Client::connect_with(config.clone(), net(), &[honest.to_string()]).await;
    let _ = tandem_runtime::Client::connect_with(config, net(), &[impostor.to_string()]).await;
    assert!(
        heard.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the honest node heard nothing"
    );
    assert_eq!(
        fooled.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a frame for {impostor} reached a node proving 127.0.0.1:{}",
        impostor.port() + 1
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i2_a_node_behind_a_proxy_is_named_by_its_own_address() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let vs = cluster.cluster.view_service;
    let proxy = relay(vs).await?;
    let config = tandem_protocol::ClerkConfig {
        request_timeout_ms: 1500,
        ..tandem_protocol::ClerkConfig::default()
    };
    // Dialled at the proxy's port, the node proves another endpoint: no view.
    let at_proxy = tandem_runtime::Client::connect_with(
        config.clone(),
        cluster.client_net(),
        &[proxy.to_string()],
    )
    .await;
    assert!(at_proxy.is_err(), "a client took a view from {proxy}");
    // Named by its own address and told to connect through the proxy, it answers.
    let mut net = cluster.client_net();
    net.tls = net
        .tls
        .map(|tls| tls.connect_via(&vs.to_string(), &proxy.to_string()));
    tandem_runtime::Client::connect_with(config, net, &[vs.to_string()]).await?;
    Ok(())
}
