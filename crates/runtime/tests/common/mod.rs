//! Shared helpers: an in-process cluster on ephemeral ports, a raw RESP client, and polling
//! with deadlines (never bare sleeps).

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::BytesMut;
use std::sync::Arc;
use tandem_resp::{Frame, Limits, encode_request, parse_frame};

use tandem_runtime::identity::Role;
use tandem_runtime::{
    ClusterCa, DevCluster, DevOptions, NetConfig, PeerTls, ShutdownTrigger, shutdown_channel,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

/// How long any single wait in these tests may take.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// A running cluster that stops when dropped.
pub struct TestCluster {
    pub cluster: DevCluster,
    /// The CA every process got its certificate from.
    pub ca: Arc<ClusterCa>,
    trigger: ShutdownTrigger,
}

/// A fresh cluster CA valid for a day.
pub fn test_ca() -> Arc<ClusterCa> {
    Arc::new(ClusterCa::new(tandem_runtime::tls::Validity::days(1)).expect("a CA"))
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.trigger.trigger();
    }
}

impl TestCluster {
    /// A view service, three servers and a coordinator, all on ephemeral ports, ready to
    /// answer a SET.
    pub async fn start() -> anyhow::Result<TestCluster> {
        let mut options = DevOptions {
            port: 0,
            ..DevOptions::default()
        };
        options.coordinator.clerk.request_timeout_ms = 2000;
        TestCluster::start_with(options).await
    }

    /// Starts with the given options and waits until a SET is answered. Every process runs
    /// with mutual TLS, its certificate from a fresh CA (unless `options.ca` names one).
    pub async fn start_with(mut options: DevOptions) -> anyhow::Result<TestCluster> {
        let ca = options.ca.get_or_insert_with(test_ca).clone();
        let (trigger, shutdown) = shutdown_channel();
        let cluster = DevCluster::start(options, &shutdown).await?;
        let test = TestCluster {
            cluster,
            ca,
            trigger,
        };
        let coordinator = test.coordinator();
        wait_until("the cluster answers SET", || async move {
            let mut client = RespClient::connect(coordinator).await.ok()?;
            let reply = client.call(&[b"SET", b"ready", b"1"]).await.ok()?;
            (reply == Frame::Simple("OK".into())).then_some(())
        })
        .await?;
        Ok(test)
    }

    /// An operator's TLS settings (for `status`, membership changes).
    pub fn admin_tls(&self) -> Option<&PeerTls> {
        self.cluster.admin_tls.as_ref()
    }

    /// TLS settings for `role` named `name`, from the cluster's CA.
    pub fn peer(&self, role: Role, name: &str) -> PeerTls {
        self.ca.peer(role, name).expect("a certificate")
    }

    /// Transport settings of an embedded Rust client (a coordinator certificate).
    pub fn client_net(&self) -> NetConfig {
        NetConfig {
            tls: Some(self.peer(Role::Coordinator, "rust-client")),
            ..NetConfig::default()
        }
    }

    /// The coordinator's address.
    pub fn coordinator(&self) -> SocketAddr {
        self.cluster.coordinator
    }

    /// The view service address list (every node; the leader is found from any).
    pub fn view_service(&self) -> Vec<String> {
        self.cluster
            .view_services
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}

/// Polls `probe` until it returns `Some`, failing after [`DEADLINE`].
pub async fn wait_until<T, F, Fut>(what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out waiting until {what}");
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// A raw RESP connection.
pub struct RespClient {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl RespClient {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<RespClient> {
        let stream = TcpStream::connect(addr).await?;
        Ok(RespClient::from_stream(stream))
    }

    /// Wraps a connected stream.
    pub fn from_stream(stream: TcpStream) -> RespClient {
        RespClient {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Sends one command and reads its reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> anyhow::Result<Frame> {
        self.send(args).await?;
        self.read().await
    }

    /// Sends one command without reading.
    pub async fn send(&mut self, args: &[&[u8]]) -> anyhow::Result<()> {
        let mut out = BytesMut::new();
        encode_request(args, &mut out);
        self.stream.write_all(&out).await?;
        Ok(())
    }

    /// Sends raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Reads the next reply, failing after [`DEADLINE`] or at EOF.
    pub async fn read(&mut self) -> anyhow::Result<Frame> {
        timeout(DEADLINE, async {
            loop {
                if let Some(frame) = parse_frame(&mut self.buf, &Limits::default())? {
                    return Ok(frame);
                }
                if self.stream.read_buf(&mut self.buf).await? == 0 {
                    bail!("connection closed");
                }
            }
        })
        .await
        .context("no reply in time")?
    }

    /// Waits until the server closes the connection (reading and discarding any bytes).
    pub async fn expect_closed(&mut self) -> anyhow::Result<()> {
        timeout(DEADLINE, async {
            let mut scratch = [0u8; 4096];
            loop {
                match self.stream.read(&mut scratch).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .context("connection was not closed")
    }
}

/// A bulk string frame.
pub fn bulk(text: &str) -> Frame {
    Frame::Bulk(bytes::Bytes::copy_from_slice(text.as_bytes()))
}

/// An internal connection to `addr` with `tls` (handshake done, no frame sent yet).
pub async fn dial(
    addr: SocketAddr,
    tls: &PeerTls,
) -> anyhow::Result<impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> {
    let stream = timeout(DEADLINE, tandem_runtime::tls::dial(&addr.to_string(), tls))
        .await
        .context("no handshake in time")??;
    Ok(stream)
}

/// Reads until the peer closes `stream` (EOF or an error such as a TLS alert), failing after
/// [`DEADLINE`]. Returns the frames' bytes read before.
pub async fn expect_eof<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
) -> anyhow::Result<BytesMut> {
    let mut buf = BytesMut::new();
    timeout(DEADLINE, async {
        loop {
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .context("the connection stayed open")?;
    Ok(buf)
}
