//! The Redis front end over a real in-process cluster (VS + 3 servers + coordinator) on
//! ephemeral ports.

mod common;

use common::{RespClient, TestCluster, bulk};
use tandem_resp::Frame;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_get_round_trip() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let mut client = RespClient::connect(cluster.coordinator()).await?;
    assert_eq!(
        client.call(&[b"SET", b"a", b"1"]).await?,
        Frame::Simple("OK".into())
    );
    assert_eq!(client.call(&[b"GET", b"a"]).await?, bulk("1"));
    assert_eq!(client.call(&[b"GET", b"missing"]).await?, Frame::Null);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_of_100_commands_is_answered_in_order() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let mut client = RespClient::connect(cluster.coordinator()).await?;
    let mut bytes = bytes::BytesMut::new();
    for i in 0..100 {
        if i % 10 == 5 {
            // Connection-local and invalid commands keep their place in the pipeline.
            tandem_resp::encode_request(&[b"PING"], &mut bytes);
        } else if i % 10 == 7 {
            tandem_resp::encode_request(&[b"GET"], &mut bytes);
        } else {
            tandem_resp::encode_request(&[b"INCR", b"counter"], &mut bytes);
        }
    }
    client.send_raw(&bytes).await?;
    let mut expected = 0;
    for i in 0..100 {
        let reply = client.read().await?;
        if i % 10 == 5 {
            assert_eq!(reply, Frame::Simple("PONG".into()), "reply {i}");
        } else if i % 10 == 7 {
            assert_eq!(
                reply,
                Frame::Error("ERR wrong number of arguments for 'get' command".into())
            );
        } else {
            expected += 1;
            assert_eq!(reply, Frame::Integer(expected), "reply {i}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_command_keeps_the_connection_usable() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let mut client = RespClient::connect(cluster.coordinator()).await?;
    let reply = client.call(&[b"NOSUCHCOMMAND", b"x"]).await?;
    let Frame::Error(text) = reply else {
        panic!("expected an error, got {reply:?}")
    };
    assert!(text.starts_with("ERR unknown command"), "{text}");
    assert_eq!(
        client.call(&[b"SET", b"k", b"v"]).await?,
        Frame::Simple("OK".into())
    );
    assert_eq!(client.call(&[b"GET", b"k"]).await?, bulk("v"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_3_gives_a_map_and_switches_to_resp3() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let mut client = RespClient::connect(cluster.coordinator()).await?;
    let reply = client.call(&[b"HELLO", b"3"]).await?;
    let Frame::Map(pairs) = reply else {
        panic!("expected a map, got {reply:?}")
    };
    assert!(pairs.contains(&(bulk("server"), bulk("tandem"))));
    assert!(pairs.contains(&(bulk("proto"), Frame::Integer(3))));
    // RESP3 null for a missing key (`_`), which parse_frame maps to Null as well; HGETALL gives
    // a map in RESP3.
    client.call(&[b"HSET", b"h", b"f", b"v"]).await?;
    assert_eq!(
        client.call(&[b"HGETALL", b"h"]).await?,
        Frame::Map(vec![(bulk("f"), bulk("v"))])
    );
    // HELLO with no arguments keeps the version; HELLO 2 goes back.
    let reply = client.call(&[b"HELLO"]).await?;
    assert!(matches!(reply, Frame::Map(_)));
    let reply = client.call(&[b"HELLO", b"2"]).await?;
    assert!(matches!(reply, Frame::Array(_)), "{reply:?}");
    assert_eq!(
        client.call(&[b"HELLO", b"4"]).await?,
        Frame::Error("NOPROTO unsupported protocol version".into())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_commands_answer_without_the_cluster() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let mut client = RespClient::connect(cluster.coordinator()).await?;
    assert_eq!(client.call(&[b"PING", b"hi"]).await?, bulk("hi"));
    assert_eq!(client.call(&[b"ECHO", b"e"]).await?, bulk("e"));
    assert_eq!(
        client.call(&[b"SELECT", b"0"]).await?,
        Frame::Simple("OK".into())
    );
    assert_eq!(
        client.call(&[b"SELECT", b"1"]).await?,
        Frame::Error("ERR DB index is out of range".into())
    );
    assert_eq!(
        client.call(&[b"CONFIG", b"GET", b"save"]).await?,
        Frame::Array(vec![bulk("save"), bulk("")])
    );
    assert_eq!(
        client.call(&[b"CONFIG", b"GET", b"appendonly"]).await?,
        Frame::Array(vec![bulk("appendonly"), bulk("no")])
    );
    // COMMAND reads the command table (tandem_kv::commands): DOCS names the command.
    let docs = client.call(&[b"COMMAND", b"DOCS", b"get"]).await?;
    assert!(
        matches!(&docs, Frame::Array(pair) if pair.len() == 2 && pair[0] == bulk("get")),
        "{docs:?}"
    );
    assert_eq!(
        client.call(&[b"CLUSTER", b"INFO"]).await?,
        Frame::Error("ERR This instance has cluster support disabled".into())
    );
    client.call(&[b"CLIENT", b"SETNAME", b"me"]).await?;
    assert_eq!(client.call(&[b"CLIENT", b"GETNAME"]).await?, bulk("me"));
    // Every server pinged, so the view has its one backup; WAIT reports it.
    common::wait_until("the view has a backup", || {
        let addr = cluster.coordinator();
        async move {
            let mut c = RespClient::connect(addr).await.ok()?;
            (c.call(&[b"WAIT", b"1", b"0"]).await.ok()? == Frame::Integer(1)).then_some(())
        }
    })
    .await?;
    let Frame::Bulk(info) = client.call(&[b"INFO", b"replication"]).await? else {
        panic!("INFO is a bulk string")
    };
    let info = String::from_utf8(info.to_vec())?;
    assert!(info.contains("# Replication"), "{info}");
    assert!(
        info.contains("role=primary") && info.contains("role=backup"),
        "{info}"
    );
    assert!(!info.contains("# Server"), "{info}");
    assert_eq!(client.call(&[b"QUIT"]).await?, Frame::Simple("OK".into()));
    client.expect_closed().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_a_protocol_error_that_closes_only_that_connection() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let mut good = RespClient::connect(cluster.coordinator()).await?;
    let mut bad = RespClient::connect(cluster.coordinator()).await?;
    // A complete command before the garbage is still answered.
    bad.send_raw(b"*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n").await?;
    assert_eq!(bad.read().await?, Frame::Simple("PONG".into()));
    let reply = bad.read().await?;
    let Frame::Error(text) = reply else {
        panic!("expected an error, got {reply:?}")
    };
    assert!(text.starts_with("ERR Protocol error"), "{text}");
    bad.expect_closed().await?;
    assert_eq!(
        good.call(&[b"SET", b"g", b"1"]).await?,
        Frame::Simple("OK".into())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2gb_declared_bulk_is_rejected_without_waiting_for_it() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let mut client = RespClient::connect(cluster.coordinator()).await?;
    client
        .send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2147483648\r\n")
        .await?;
    let reply = client.read().await?;
    let Frame::Error(text) = reply else {
        panic!("expected an error, got {reply:?}")
    };
    assert!(text.starts_with("ERR Protocol error"), "{text}");
    client.expect_closed().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_answers_everything_sent_before() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let mut client = RespClient::connect(cluster.coordinator()).await?;
    client.send(&[b"SET", b"h", b"1"]).await?;
    client.send(&[b"GET", b"h"]).await?;
    client.send(&[b"PING"]).await?;
    tokio::io::AsyncWriteExt::shutdown(&mut client.stream).await?;
    assert_eq!(client.read().await?, Frame::Simple("OK".into()));
    assert_eq!(client.read().await?, bulk("1"));
    assert_eq!(client.read().await?, Frame::Simple("PONG".into()));
    client.expect_closed().await
}
