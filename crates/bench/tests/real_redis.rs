//! Against a real `redis-server`. Where the build found none on PATH the test is ignored with
//! the reason (crates/bench/build.rs); under CI it runs and fails.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tandem_bench::{BenchConfig, run};
use tokio::time::{Instant, sleep, timeout};

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(has_redis_server),
    ignore = "needs redis-server on PATH (Debian package redis-server)"
)]
async fn measures_a_real_redis_server() {
    let port = free_port();
    let spawned = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match spawned {
        Ok(child) => child,
        Err(error) => panic!("cannot start redis-server (Debian package redis-server): {error}"),
    };
    let _server = Server(child);
    let addr = format!("127.0.0.1:{port}");
    let ready_by = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(&addr).await.is_err() {
        assert!(
            Instant::now() < ready_by,
            "redis-server did not start listening"
        );
        sleep(Duration::from_millis(20)).await;
    }
    let config = BenchConfig {
        addr,
        connections: 8,
        pipeline: 4,
        keyspace: 500,
        read_ratio: 0.5,
        requests: Some(5000),
        warmup_keys: true,
        progress: false,
        ..BenchConfig::default()
    };
    let report = timeout(Duration::from_secs(30), run(&config))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((report.requests, report.errors), (5000, 0), "{report}");
}
