//! The failover benchmark: a real tandem cluster (view service, three servers, coordinator,
//! each its own process of the `tandem` binary), a steady write load, and the primary killed with
//! SIGKILL again and again. For each kill it reports the client-visible unavailability window
//! (the longest time without any acknowledged write around the kill) and, at the end, how many
//! acknowledged writes were lost (read back and compared: must be 0).
//!
//! Blocking code on purpose: a handful of threads and sockets, no runtime needed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::BytesMut;
use tandem_resp::{Frame, Limits};

/// What to run.
#[derive(Clone, Debug)]
pub struct FailoverConfig {
    /// The `tandem` executable whose roles are started.
    pub tandem: PathBuf,
    /// How many times the primary is killed.
    pub kills: usize,
    /// Concurrent writer connections.
    pub writers: usize,
}

/// What it measured.
#[derive(Clone, Debug)]
pub struct FailoverReport {
    /// Unavailability window of each kill, in milliseconds.
    pub windows_ms: Vec<f64>,
    /// Writes acknowledged during the run.
    pub acknowledged: u64,
    /// Acknowledged writes missing or wrong when read back (must be 0).
    pub lost: u64,
}

impl FailoverReport {
    /// The median window.
    pub fn p50_ms(&self) -> f64 {
        percentile(&self.windows_ms, 0.5)
    }

    /// The largest window.
    pub fn max_ms(&self) -> f64 {
        self.windows_ms.iter().copied().fold(0.0, f64::max)
    }
}

fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// A minimal blocking RESP connection.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    fn open(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Conn {
            stream,
            buf: BytesMut::new(),
        })
    }

    fn call(&mut self, args: &[&[u8]]) -> std::io::Result<Frame> {
        let mut out = BytesMut::new();
        tandem_resp::encode_request(args, &mut out);
        self.stream.write_all(&out)?;
        loop {
            match tandem_resp::parse_frame(&mut self.buf, &Limits::default()) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) | Err(tandem_resp::ParseError::Incomplete) => {}
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

struct Cluster {
    tandem: PathBuf,
    vs_addr: String,
    processes: Vec<(String, Vec<String>, Option<Child>)>,
    server_ports: Vec<u16>,
    port: u16,
}

impl Cluster {
    fn spawn(&mut self, args: Vec<String>, name: &str) -> anyhow::Result<()> {
        let child = Command::new(&self.tandem)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.tandem.display()))?;
        self.processes.push((name.to_string(), args, Some(child)));
        Ok(())
    }

    fn start(tandem: PathBuf) -> anyhow::Result<Cluster> {
        let vs_port = free_port()?;
        let vs_addr = format!("127.0.0.1:{vs_port}");
        let mut cluster = Cluster {
            tandem,
            vs_addr: vs_addr.clone(),
            processes: Vec::new(),
            server_ports: Vec::new(),
            port: 0,
        };
        cluster.spawn(
            vec!["viewserver".into(), "--listen".into(), vs_addr.clone()],
            "viewserver",
        )?;
        for i in 0..3 {
            let port = free_port()?;
            cluster.server_ports.push(port);
            let args = vec![
                "server".into(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--viewserver".into(),
                vs_addr.clone(),
            ];
            cluster.spawn(args, &format!("server{i}"))?;
        }
        cluster.port = free_port()?;
        let args = vec![
            "coordinator".into(),
            "--listen".into(),
            format!("127.0.0.1:{}", cluster.port),
            "--viewserver".into(),
            vs_addr,
        ];
        cluster.spawn(args, "coordinator")?;
        if !wait_for(Duration::from_secs(20), || cluster.healthy()) {
            bail!("the cluster did not form within 20 s");
        }
        Ok(cluster)
    }

    /// (primary port, acked, backup count) from `tandem status --json`.
    fn status(&self) -> Option<(u16, bool, usize)> {
        let out = Command::new(&self.tandem)
            .args(["status", "--viewserver", &self.vs_addr, "--json"])
            .output()
            .ok()?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let group = json.get("groups")?.get(0)?;
        let primary = group.get("primary")?.as_str()?;
        let port = primary.rsplit(':').next()?.parse().ok()?;
        let acked = group.get("acked")?.as_bool()?;
        let backups = group.get("backups")?.as_array()?.len();
        Some((port, acked, backups))
    }

    fn healthy(&self) -> bool {
        self.status()
            .is_some_and(|(_, acked, backups)| acked && backups >= 1)
            && Conn::open(self.port)
                .and_then(|mut c| c.call(&[b"PING"]))
                .is_ok()
    }

    fn server_index(&self, port: u16) -> Option<usize> {
        let position = self.server_ports.iter().position(|p| *p == port)?;
        Some(position + 1) // processes[0] is the view service
    }

    fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.processes[index].2.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        let args = self.processes[index].1.clone();
        let child = Command::new(&self.tandem)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.processes[index].2 = Some(child);
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.processes.len() {
            self.kill(i);
        }
    }
}

/// Acknowledged writes: key index -> value, and the time of every acknowledgement.
#[derive(Default)]
struct Ledger {
    acked: Vec<(String, String)>,
    ack_times: Vec<Instant>,
}

fn writer(port: u16, id: usize, stop: Arc<AtomicBool>, ledger: Arc<Mutex<Ledger>>) {
    let mut conn: Option<Conn> = None;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::open(port) {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            },
        };
        n += 1;
        let key = format!("failover:{id}:{n}");
        let value = format!("v{n}");
        match c.call(&[b"SET", key.as_bytes(), value.as_bytes()]) {
            Ok(Frame::Simple(ok)) if ok == "OK" => {
                let mut ledger = ledger.lock().expect("ledger");
                ledger.acked.push((key, value));
                ledger.ack_times.push(Instant::now());
            }
            Ok(_) => {}
            Err(_) => conn = None,
        }
    }
}

/// Runs the benchmark.
pub fn run_failover(config: &FailoverConfig) -> anyhow::Result<FailoverReport> {
    if config.kills == 0 || config.kills > 1000 || config.writers == 0 || config.writers > 256 {
        bail!("kills must be 1..=1000 and writers 1..=256");
    }
    let mut cluster = Cluster::start(config.tandem.clone())?;
    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let writers: Vec<_> = (0..config.writers)
        .map(|id| {
            let (stop, ledger, port) = (stop.clone(), ledger.clone(), cluster.port);
            std::thread::spawn(move || writer(port, id, stop, ledger))
        })
        .collect();
    let mut windows_ms = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        for round in 0..config.kills {
            let acked_before = ledger.lock().expect("ledger").acked.len();
            if !wait_for(Duration::from_secs(10), || {
                ledger.lock().expect("ledger").acked.len() > acked_before + 100
            }) {
                bail!("round {round}: no steady write load before the kill");
            }
            let (primary, _, _) = cluster.status().context("status")?;
            let index = cluster
                .server_index(primary)
                .context("primary is one of ours")?;
            let killed_at = Instant::now();
            cluster.kill(index);
            let resumed = wait_for(Duration::from_secs(30), || {
                ledger
                    .lock()
                    .expect("ledger")
                    .ack_times
                    .iter()
                    .rev()
                    .take(1)
                    .any(|t| *t > killed_at)
            });
            if !resumed {
                bail!("round {round}: writes did not resume within 30 s");
            }
            // The window clients saw: the largest gap between consecutive acknowledgements from
            // just before the kill until writes flow again (a reply already in flight at the kill
            // must not hide the outage that follows it).
            let settled = wait_for(Duration::from_secs(30), || {
                let ledger = ledger.lock().expect("ledger");
                ledger.ack_times.iter().filter(|t| **t > killed_at).count() >= 200
            });
            if !settled {
                bail!("round {round}: writes did not settle after the kill");
            }
            let window = {
                let ledger = ledger.lock().expect("ledger");
                let start = ledger
                    .ack_times
                    .iter()
                    .rposition(|t| *t <= killed_at)
                    .unwrap_or(0);
                ledger.ack_times[start..]
                    .windows(2)
                    .map(|w| w[1] - w[0])
                    .max()
                    .unwrap_or_default()
            };
            windows_ms.push(window.as_secs_f64() * 1000.0);
            cluster.restart(index)?;
            if !wait_for(Duration::from_secs(30), || cluster.healthy()) {
                bail!("round {round}: the cluster did not get a backup back within 30 s");
            }
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.join();
    }
    result?;
    // Read every acknowledged write back.
    let ledger = ledger.lock().expect("ledger");
    let mut conn = Conn::open(cluster.port)?;
    let mut lost = 0;
    for (key, value) in &ledger.acked {
        match conn.call(&[b"GET", key.as_bytes()])? {
            Frame::Bulk(got) if got.as_ref() == value.as_bytes() => {}
            _ => lost += 1,
        }
    }
    Ok(FailoverReport {
        windows_ms,
        acknowledged: ledger.acked.len() as u64,
        lost,
    })
}
