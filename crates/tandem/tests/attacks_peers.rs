//! Issue 12, "peers prove who they are", against real processes running on certificates:
//! forged internal frames from a program without a certificate, or with a valid certificate of
//! another name or role, are refused at the connection and change nothing (I2-I5), and idle
//! connections cannot lock the cluster out of its view service (I6).

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use support::{Cluster, Proc, certs, free_port, wait_for};
use tandem_protocol::message::{Forward, Ping, Transfer, ViewReply};
use tandem_protocol::{
    ClientId, Endpoint, GroupId, Incarnation, LogPos, Message, OpIndex, ServerId, View, ViewNum,
};
use tandem_resp::Frame;
use tandem_runtime::PeerTls;
use tandem_runtime::identity::Role;
use tandem_runtime::wire::{Envelope, decode_frame, encode_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// Sends one forged frame to `addr` (plain TCP without `tls`) and returns the answer, `None`
/// when the connection was refused or closed without one.
fn forge(addr: &str, tls: Option<&PeerTls>, from: Endpoint, msg: Message) -> Option<Message> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let frame = encode_frame(&Envelope { from, msg }, 1 << 20).unwrap();
    runtime.block_on(async {
        let exchange = async {
            let mut stream: Box<dyn Stream> = match tls {
                Some(tls) => Box::new(tandem_runtime::tls::dial(addr, tls).await.ok()?),
                None => Box::new(tokio::net::TcpStream::connect(addr).await.ok()?),
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
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .ok()
            .flatten()
    })
}

fn server(addr: &str) -> Endpoint {
    Endpoint::Server(ServerId::new(addr))
}

/// The forged frames of the issue, as (destination, claimed sender, message).
fn forged_frames(cluster: &Cluster) -> Vec<(String, Endpoint, Message)> {
    let status = cluster.status().expect("status");
    let primary = status.primary.clone().expect("a primary");
    let backup = status.backups[0].clone();
    let mut frames = Vec::new();
    for node in &cluster.vs.nodes {
        for addr in [node.listen.clone(), node.advertised()] {
            // A Ping naming the backup with a new incarnation (it would be dropped as
            // restarted).
            let ping = Message::Ping(Ping {
                group: GroupId(0),
                server: ServerId::new(&backup),
                viewnum: ViewNum(status.viewnum),
                incarnation: Incarnation(0xbad),
                client_addr: None,
                config_done: tandem_protocol::ConfigNum(0),
                cluster_epoch: 0,
            });
            frames.push((addr, server(&backup), ping));
        }
    }
    // A view-service answer making the backup believe in view 1002.
    let reply = Message::PingReply(ViewReply {
        group: GroupId(0),
        view: Some(View {
            num: ViewNum(1002),
            primary: ServerId::new(&backup),
            backups: Vec::new(),
        }),
        member_incarnation: None,
        cluster: None,
    });
    let vs_addr = cluster.vs.nodes[0].advertised();
    let as_vs = Endpoint::ViewService(tandem_protocol::VsAddr::new(&vs_addr));
    frames.push((backup.clone(), as_vs, reply));
    // A state transfer "from the primary" wiping the backup's store.
    let transfer = Message::Transfer(Transfer {
        view: ViewNum(status.viewnum),
        transfer_id: 1,
        chunk: 0,
        entries: Vec::new(),
        clients: Vec::new(),
        done: Some(tandem_protocol::message::SnapshotEnd {
            last: LogPos::EMPTY,
            clock_ms: 0,
        }),
        acl: None,
        shard: None,
    });
    frames.push((backup.clone(), server(&primary), transfer));
    // A Forward whose entries start far beyond the backup's log.
    let forward = Message::Forward(Forward {
        view: ViewNum(status.viewnum),
        prev: LogPos {
            index: OpIndex(1 << 40),
            view: ViewNum(status.viewnum),
        },
        entries: Arc::new(Vec::new()),
    });
    frames.push((backup, server(&primary), forward));
    frames
}

/// Writes `n` keys, all acknowledged.
fn write_keys(cluster: &Cluster, n: usize) {
    let mut client = cluster.client();
    for i in 0..n {
        let reply = client
            .call(&["SET", &format!("k{i}"), &format!("v{i}")])
            .unwrap();
        assert_eq!(reply, Frame::Simple("OK".into()));
    }
}

/// Kills the primary, waits for the next view, and checks every key written.
fn every_key_survives_the_primary(cluster: &mut Cluster, n: usize) {
    let before = cluster.status().expect("status");
    let p = cluster.primary().expect("a primary");
    cluster.servers[p].kill();
    assert!(
        wait_for(Duration::from_secs(20), || cluster
            .status()
            .is_some_and(|s| s.viewnum > before.viewnum && s.acked)),
        "no new view after killing the primary: {}",
        cluster.history()
    );
    assert!(
        wait_for(Duration::from_secs(20), || {
            let Ok(mut client) = support::RespClient::connect(cluster.port) else {
                return false;
            };
            (0..n).all(|i| {
                client.call(&["GET", &format!("k{i}")]).ok()
                    == Some(Frame::Bulk(format!("v{i}").into()))
            })
        }),
        "an acknowledged write was lost: {}",
        cluster.history()
    );
}

#[test]
fn i2_forged_frames_without_a_certificate_are_refused_and_change_nothing() {
    let mut cluster = Cluster::start(3);
    write_keys(&cluster, 50);
    let before = cluster.status().expect("status");
    for (addr, from, msg) in forged_frames(&cluster) {
        let answer = forge(&addr, None, from.clone(), msg.clone());
        assert_eq!(answer, None, "{addr} answered {from:?} {msg:?}");
    }
    let after = cluster.status().expect("status");
    assert_eq!(
        (before.viewnum, &before.primary, &before.backups),
        (after.viewnum, &after.primary, &after.backups)
    );
    every_key_survives_the_primary(&mut cluster, 50);
}

#[test]
fn i3_a_valid_certificate_of_another_name_or_role_cannot_claim_the_primary() {
    let mut cluster = Cluster::start(3);
    write_keys(&cluster, 20);
    let before = cluster.status().expect("status");
    let primary = before.primary.clone().expect("a primary");
    let attackers = [
        certs().peer(Role::Server, &format!("127.0.0.1:{}", free_port())),
        certs().peer(Role::Coordinator, "mallory"),
        certs().peer(Role::Admin, "mallory"),
    ];
    for tls in &attackers {
        for node in &cluster.vs.nodes {
            let ping = Message::Ping(Ping {
                group: GroupId(0),
                server: ServerId::new(&primary),
                viewnum: ViewNum(before.viewnum),
                incarnation: Incarnation(0xbad),
                client_addr: None,
                config_done: tandem_protocol::ConfigNum(0),
                cluster_epoch: 0,
            });
            let answer = forge(&node.listen, Some(tls), server(&primary), ping);
            assert_eq!(answer, None, "{} posing as the primary", tls.principal());
        }
        for (addr, from, msg) in forged_frames(&cluster) {
            let answer = forge(&addr, Some(tls), from, msg.clone());
            assert_eq!(answer, None, "{} sent {msg:?} to {addr}", tls.principal());
        }
    }
    // A coordinator certificate speaking as a coordinator is still fine.
    let ok = forge(
        &cluster.vs.nodes[0].listen,
        Some(&attackers[1]),
        Endpoint::Client(ClientId(9)),
        Message::GetStatus {},
    );
    assert!(matches!(ok, Some(Message::StatusReply(_))), "{ok:?}");
    let after = cluster.status().expect("status");
    assert_eq!(
        (before.viewnum, &before.primary),
        (after.viewnum, &after.primary)
    );
    every_key_survives_the_primary(&mut cluster, 20);
}

#[test]
fn i6_a_thousand_idle_connections_do_not_keep_a_new_server_out() {
    let cluster = Cluster::start(2);
    let mut idle = Vec::new();
    for node in &cluster.vs.nodes {
        for _ in 0..1024 {
            if let Ok(stream) = std::net::TcpStream::connect(&node.listen) {
                idle.push(stream);
            }
        }
    }
    let port = free_port();
    let joining = format!("127.0.0.1:{port}");
    let _server = Proc::spawn(
        "attacks-joining-server",
        &[
            "server".into(),
            "--listen".into(),
            joining.clone(),
            "--viewserver".into(),
            cluster.vs.list(),
        ],
    );
    assert!(
        wait_for(Duration::from_secs(30), || cluster.status().is_some_and(
            |s| s.alive.contains(&joining) || s.backups.contains(&joining)
        )),
        "the new server never reached the view service: {:?}",
        cluster.status()
    );
    let mut client = cluster.client();
    assert_eq!(
        client.call(&["SET", "during", "1"]).unwrap(),
        Frame::Simple("OK".into())
    );
    drop(idle);
}
