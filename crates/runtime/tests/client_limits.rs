//! The bounds of client connections (rules L2-L7 of docs/PROTOCOL.md), each against the attack
//! of issue 12 it stops. Most need no cluster: a coordinator answers PING by itself, so one is
//! run alone, pointed at a view service that is not there.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use common::{DEADLINE, RespClient, TestCluster, bulk, wait_until};
use tandem_resp::Frame;
use tandem_runtime::{
    Coordinator, CoordinatorConfig, DevOptions, ShutdownTrigger, http_get, shutdown_channel,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A coordinator alone, with its admin endpoint; stops when dropped.
struct Alone {
    addr: SocketAddr,
    admin: SocketAddr,
    _trigger: ShutdownTrigger,
}

impl Drop for Alone {
    fn drop(&mut self) {
        self._trigger.trigger();
    }
}

async fn alone(mut config: CoordinatorConfig) -> anyhow::Result<Alone> {
    config.admin = Some("127.0.0.1:0".to_owned());
    // Nobody listens there: data commands would time out, connection-local ones answer.
    let coordinator = Coordinator::bind(config, "127.0.0.1:0", &["127.0.0.1:1".to_owned()]).await?;
    let addr = coordinator.local_addr();
    let admin = coordinator.admin_addr().context("admin endpoint")?;
    let (trigger, shutdown) = shutdown_channel();
    tokio::spawn(coordinator.run(shutdown));
    Ok(Alone {
        addr,
        admin,
        _trigger: trigger,
    })
}

/// A number in the coordinator's `/status`, at `pointer` (a JSON pointer).
async fn status_number(admin: SocketAddr, pointer: &str) -> anyhow::Result<u64> {
    let (code, body) = http_get(&admin.to_string(), "/status", DEADLINE).await?;
    anyhow::ensure!(code == 200, "status answered {code}");
    let status: serde_json::Value = serde_json::from_str(&body)?;
    status
        .pointer(pointer)
        .and_then(serde_json::Value::as_u64)
        .with_context(|| format!("{pointer} in {body}"))
}

/// Reads until EOF (or an error, which a reset is): every byte the server sent.
async fn read_to_close(stream: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut all = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => all.extend_from_slice(&chunk[..read]),
            }
        }
    })
    .await
    .context("the connection was not closed")?;
    Ok(all)
}

fn pong() -> Frame {
    Frame::Simple("PONG".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l4_client_beyond_maxclients_is_told_and_closed() -> anyhow::Result<()> {
    let coordinator = alone(CoordinatorConfig {
        max_connections: 2,
        ..CoordinatorConfig::default()
    })
    .await?;
    let mut first = RespClient::connect(coordinator.addr).await?;
    let mut second = RespClient::connect(coordinator.addr).await?;
    assert_eq!(first.call(&[b"PING"]).await?, pong());
    assert_eq!(second.call(&[b"PING"]).await?, pong());

    let mut third = TcpStream::connect(coordinator.addr).await?;
    let answer = read_to_close(&mut third).await?;
    assert_eq!(answer, b"-ERR max number of clients reached\r\n");
    assert_eq!(
        status_number(coordinator.admin, "/refused/max_clients").await?,
        1
    );

    // A freed slot takes the next client.
    drop(first);
    let addr = coordinator.addr;
    wait_until("a slot frees", || async move {
        let mut client = RespClient::connect(addr).await.ok()?;
        (client.call(&[b"PING"]).await.ok()? == pong()).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l3_unfinished_request_is_closed_after_its_timeout() -> anyhow::Result<()> {
    let coordinator = alone(CoordinatorConfig {
        unfinished_request_timeout_ms: 300,
        ..CoordinatorConfig::default()
    })
    .await?;
    let mut client = TcpStream::connect(coordinator.addr).await?;
    // A complete PING, then a request that never finishes.
    client
        .write_all(b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$10\r\nabc")
        .await?;
    let answer = read_to_close(&mut client).await?;
    assert_eq!(
        String::from_utf8_lossy(&answer),
        "+PONG\r\n-ERR request not completed in time, closing\r\n"
    );
    assert_eq!(
        status_number(coordinator.admin, "/refused/unfinished_timeout").await?,
        1
    );
    // A client that only waits between whole requests is not concerned.
    let mut patient = RespClient::connect(coordinator.addr).await?;
    assert_eq!(patient.call(&[b"PING"]).await?, pong());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(patient.call(&[b"PING"]).await?, pong());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l3_idle_client_is_closed_after_timeout() -> anyhow::Result<()> {
    let coordinator = alone(CoordinatorConfig {
        client_idle_timeout_s: 1,
        ..CoordinatorConfig::default()
    })
    .await?;
    let mut client = RespClient::connect(coordinator.addr).await?;
    assert_eq!(client.call(&[b"PING"]).await?, pong());
    let mut stream = client.stream;
    let answer = read_to_close(&mut stream).await?;
    assert!(answer.is_empty(), "{answer:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l6_unfinished_requests_of_40_clients_stay_within_the_total_budget() -> anyhow::Result<()> {
    const BUDGET_BYTES: usize = 4 << 20;
    const CLIENTS: usize = 40;
    const SENT_BYTES: usize = 900 << 10;
    let mut config = CoordinatorConfig {
        max_total_query_bytes: BUDGET_BYTES,
        ..CoordinatorConfig::default()
    };
    config.resp_limits.max_buffer_bytes = 1 << 20;
    let coordinator = alone(config).await?;

    // Each client sends most of a 1 MB argument and never the rest: 36 MB in all, 9 times
    // the budget.
    let mut request = b"*2\r\n$3\r\nGET\r\n$1000000\r\n".to_vec();
    request.resize(SENT_BYTES, b'x');
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut stream = TcpStream::connect(coordinator.addr).await?;
        let request = request.clone();
        clients.push(tokio::spawn(async move {
            // A refused client's write may fail: the answer is read below.
            let _ = stream.write_all(&request).await;
            stream
        }));
    }
    let mut refused = 0;
    let mut held = 0;
    let mut peak = 0;
    for client in clients {
        let mut stream = client.await?;
        peak = peak.max(status_number(coordinator.admin, "/query_buffer_bytes").await?);
        let mut answer = vec![0u8; 128];
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut answer)).await {
            Ok(Ok(read)) if read > 0 => {
                let text = String::from_utf8_lossy(&answer[..read]).into_owned();
                assert!(
                    text.contains("buffer for unfinished requests is full"),
                    "{text}"
                );
                refused += 1;
            }
            Ok(_) => refused += 1, // Closed (reset) before the answer was read.
            Err(_) => held += 1,   // Still waiting for the rest of its request.
        }
    }
    // Each read takes at most 16 KiB, counted right after it.
    let bound = (BUDGET_BYTES + CLIENTS * (16 << 10)) as u64;
    assert!(peak <= bound, "peak {peak} over {bound}");
    assert!(refused > 0 && held > 0, "refused {refused}, held {held}");
    assert!(
        status_number(coordinator.admin, "/refused/query_budget").await? > 0,
        "refusals counted"
    );
    // The coordinator still serves.
    let mut client = RespClient::connect(coordinator.addr).await?;
    assert_eq!(client.call(&[b"PING"]).await?, pong());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l6_budget_is_given_back_when_clients_leave() -> anyhow::Result<()> {
    let coordinator = alone(CoordinatorConfig::default()).await?;
    let mut stream = TcpStream::connect(coordinator.addr).await?;
    stream.write_all(b"*1\r\n$100000\r\nabcdef").await?;
    let admin = coordinator.admin;
    wait_until("the unfinished request is counted", || async move {
        let bytes = status_number(admin, "/query_buffer_bytes").await.ok()?;
        (bytes > 0).then_some(())
    })
    .await?;
    drop(stream);
    wait_until("the count is back to zero", || async move {
        let bytes = status_number(admin, "/query_buffer_bytes").await.ok()?;
        (bytes == 0).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l7_reply_over_the_bound_is_an_error_and_the_connection_keeps_serving() -> anyhow::Result<()>
{
    let mut options = DevOptions {
        port: 0,
        ..DevOptions::default()
    };
    options.coordinator.clerk.request_timeout_ms = 2000;
    options.coordinator.max_reply_bytes = 64 << 10;
    let cluster = TestCluster::start_with(options).await?;
    let mut client = RespClient::connect(cluster.coordinator()).await?;
    let value = vec![b'v'; 40 << 10];
    assert_eq!(
        client.call(&[b"SET", b"big", &value]).await?,
        Frame::Simple("OK".into())
    );
    // Two copies are 80 KiB: over the 64 KiB bound.
    let reply = client.call(&[b"MGET", b"big", b"big"]).await?;
    let Frame::Error(text) = reply else {
        panic!("expected an error, got a reply of another kind")
    };
    assert!(
        text.starts_with("ERR reply exceeds max-reply-bytes"),
        "{text}"
    );
    // One copy fits; the connection and the cluster keep serving.
    assert_eq!(
        client.call(&[b"GET", b"big"]).await?,
        Frame::Bulk(value.into())
    );
    assert_eq!(
        client.call(&[b"SET", b"small", b"1"]).await?,
        Frame::Simple("OK".into())
    );
    assert_eq!(client.call(&[b"GET", b"small"]).await?, bulk("1"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l8_admin_beyond_loopback_is_refused_without_a_token() -> anyhow::Result<()> {
    let refused = tandem_runtime::AdminListener::bind("0.0.0.0:0").await;
    let error = refused
        .expect_err("a wildcard bind without a token")
        .to_string();
    assert!(error.contains("admin-token"), "{error}");
    // Loopback needs no token; beyond it, a token makes the bind acceptable.
    tandem_runtime::AdminListener::bind("127.0.0.1:0").await?;
    tandem_runtime::AdminListener::bind_with_token("0.0.0.0:0", Some("s3cret-token")).await?;
    // A token that would not fit a header or a cookie is refused.
    let bad = tandem_runtime::AdminListener::bind_with_token("127.0.0.1:0", Some("a b;c")).await;
    assert!(bad.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l8_admin_routes_answer_401_without_the_token_and_200_with_it() -> anyhow::Result<()> {
    const TOKEN: &str = "s3cret-token";
    let coordinator = alone(CoordinatorConfig {
        admin_token: Some(TOKEN.to_owned()),
        ..CoordinatorConfig::default()
    })
    .await?;
    let admin = coordinator.admin.to_string();
    for path in ["/status", "/metrics", "/readyz", "/"] {
        let (code, _) = http_get(&admin, path, DEADLINE).await?;
        assert_eq!(code, 401, "{path} without a token");
        let (code, _) =
            tandem_runtime::http_get_with_token(&admin, path, Some("wrong-token"), DEADLINE)
                .await?;
        assert_eq!(code, 401, "{path} with a wrong token");
    }
    let (code, _) =
        tandem_runtime::http_get_with_token(&admin, "/status", Some(TOKEN), DEADLINE).await?;
    assert_eq!(code, 200);
    let (code, _) =
        tandem_runtime::http_get_with_token(&admin, "/metrics", Some(TOKEN), DEADLINE).await?;
    assert_eq!(code, 200);
    // Liveness stays open.
    assert_eq!(http_get(&admin, "/healthz", DEADLINE).await?.0, 200);
    // The dashboard link: `/?token=` is let through and sets the cookie the page's fetches use.
    let mut stream = TcpStream::connect(coordinator.admin).await?;
    stream
        .write_all(
            format!("GET /?token={TOKEN} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let answer = String::from_utf8_lossy(&read_to_close(&mut stream).await?).into_owned();
    assert!(!answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.contains(&format!("tandem_admin_token={TOKEN}")),
        "{answer}"
    );
    let mut stream = TcpStream::connect(coordinator.admin).await?;
    stream
        .write_all(
            format!(
                "GET /status HTTP/1.1\r\nHost: x\r\nCookie: tandem_admin_token={TOKEN}\r\n\
                 Connection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let answer = String::from_utf8_lossy(&read_to_close(&mut stream).await?).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2_request_trickled_over_many_reads_is_answered_once_complete() -> anyhow::Result<()> {
    let coordinator = alone(CoordinatorConfig::default()).await?;
    // PING with 200,000 arguments: a connection-local error, once the last byte is in.
    let arg_count = 200_000;
    let mut wire = format!("*{}\r\n$4\r\nPING\r\n", arg_count + 1).into_bytes();
    for _ in 0..arg_count {
        wire.extend_from_slice(b"$1\r\na\r\n");
    }
    wire.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    let mut client = RespClient::connect(coordinator.addr).await?;
    for chunk in wire.chunks(1000) {
        client.send_raw(chunk).await?;
        client.stream.flush().await?;
    }
    let reply = client.read().await?;
    assert_eq!(
        reply,
        Frame::Error("ERR wrong number of arguments for 'ping' command".into())
    );
    assert_eq!(client.read().await?, pong());
    Ok(())
}
