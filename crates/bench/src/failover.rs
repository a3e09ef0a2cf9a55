//! The failover benchmark: a replicated store, a steady write load, and a process killed with
//! SIGKILL again and again (the primary, the view-service leader, or both at once: [`KillMode`]).
//! For each kill it reports the client-visible unavailability window (the longest time without
//! any acknowledged write around the kill); at the end, the failed client requests, how many
//! times the view changed, and how many acknowledged writes were lost (read back and compared).
//!
//! Two targets share the writers, the measurement and the read-back:
//! - tandem: a real cluster (a view service of three Raft nodes with their data dirs, three
//!   servers, a coordinator, each its own process of the `tandem` binary); lost writes must
//!   be 0. Each view-service node serves an admin endpoint whose `/status` says whether it
//!   leads.
//! - Redis + Sentinel (see `sentinel`): a master, two replicas and three Sentinels from the
//!   installed `redis-server` and `redis-sentinel`; replication is asynchronous, so lost writes
//!   are reported, not judged.
//!
//! Blocking code on purpose: a handful of threads and sockets, no runtime needed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::BytesMut;
use tandem_resp::{Frame, Limits};

/// Which store to run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailoverTarget {
    /// A tandem cluster started from [`FailoverConfig::tandem`].
    Tandem,
    /// Redis master + two replicas + three Sentinels, from `redis-server` and `redis-sentinel`
    /// on the `PATH`.
    RedisSentinel,
}

impl FailoverTarget {
    /// The name used in reports: `tandem` or `redis-sentinel`.
    pub fn label(self) -> &'static str {
        match self {
            FailoverTarget::Tandem => "tandem",
            FailoverTarget::RedisSentinel => "redis-sentinel",
        }
    }
}

/// What is killed in each round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KillMode {
    /// The primary (the only mode of the Redis + Sentinel target).
    #[default]
    Primary,
    /// The view-service leader (tandem only): clients should see nothing (Q4: no view change).
    VsLeader,
    /// The view-service leader and the primary at the same instant (tandem only): the group
    /// fails over once a new leader is elected.
    VsLeaderAndPrimary,
}

impl KillMode {
    /// The name used on the command line and in reports.
    pub fn label(self) -> &'static str {
        match self {
            KillMode::Primary => "primary",
            KillMode::VsLeader => "vs-leader",
            KillMode::VsLeaderAndPrimary => "vs-leader+primary",
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct FailoverConfig {
    /// The store under test.
    pub target: FailoverTarget,
    /// What is killed in each round; the Redis + Sentinel target supports only
    /// [`KillMode::Primary`].
    pub kill: KillMode,
    /// The `tandem` executable whose roles are started (tandem target only).
    pub tandem: PathBuf,
    /// How many times the primary is killed.
    pub kills: usize,
    /// Concurrent writer connections.
    pub writers: usize,
    /// Sentinel's `down-after-milliseconds` (Redis + Sentinel target only).
    pub sentinel_down_after_ms: u64,
}

/// What it measured.
#[derive(Clone, Debug)]
pub struct FailoverReport {
    /// Unavailability window of each kill, in milliseconds.
    pub windows_ms: Vec<f64>,
    /// Writes acknowledged during the run.
    pub acknowledged: u64,
    /// Acknowledged writes missing or wrong when read back.
    pub lost: u64,
    /// Failovers nobody asked for: the primary changed without a kill (Redis + Sentinel only).
    pub extra_failovers: u64,
    /// Client requests that failed: error replies and broken connections.
    pub client_errors: u64,
    /// How many times the view changed during the run (tandem only: `None` for Redis).
    pub view_changes: Option<u64>,
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

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `cond` every 5 ms until it holds; false if `deadline` passes first.
pub(crate) fn wait_for(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let poll = || if cond() { Ok(()) } else { Err(String::new()) };
    wait_until(deadline, Duration::from_millis(5), poll).is_ok()
}

/// Polls `check` every `every` until it succeeds; on timeout the error is the last thing it
/// reported.
pub(crate) fn wait_until<T>(
    deadline: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> anyhow::Result<T> {
    let end = Instant::now() + deadline;
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(reason) if Instant::now() >= end => anyhow::bail!("{reason}"),
            Err(_) => std::thread::sleep(every),
        }
    }
}

/// A minimal blocking RESP connection.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    pub(crate) fn open(port: u16) -> std::io::Result<Conn> {
        Conn::open_with_timeout(port, Duration::from_secs(10))
    }

    pub(crate) fn open_with_timeout(port: u16, timeout: Duration) -> std::io::Result<Conn> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Conn {
            stream,
            buf: BytesMut::new(),
        })
    }

    pub(crate) fn call(&mut self, args: &[&[u8]]) -> std::io::Result<Frame> {
        let mut out = BytesMut::new();
        tandem_resp::encode_request(args, &mut out);
        self.stream.write_all(&out)?;
        self.read_frame()
    }

    /// Sends all commands at once, then reads one reply per command.
    fn call_many(&mut self, commands: &[Vec<&[u8]>]) -> std::io::Result<Vec<Frame>> {
        let mut out = BytesMut::new();
        for args in commands {
            tandem_resp::encode_request(args, &mut out);
        }
        self.stream.write_all(&out)?;
        commands.iter().map(|_| self.read_frame()).collect()
    }

    fn read_frame(&mut self) -> std::io::Result<Frame> {
        loop {
            match tandem_resp::parse_frame(&mut self.buf, &Limits::default()) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) | Err(tandem_resp::ParseError::Incomplete) => {}
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
            let mut chunk = [0u8; 16 * 1024];
            // A socket with a read timeout is not restarted after a signal: read again.
            let n = match self.stream.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => other?,
            };
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// How a writer reaches the current primary; called again after every connection loss.
pub(crate) type Connector = Arc<dyn Fn() -> std::io::Result<Conn> + Send + Sync>;

/// A replicated store under test, driven by [`measure`].
pub(crate) trait System {
    /// How writers find and connect to the primary.
    fn connector(&self) -> Connector;
    /// SIGKILLs the current primary; returns the instant just before the signal.
    fn kill_primary(&mut self) -> anyhow::Result<Instant>;
    /// Restarts the killed process and waits until the store is fully redundant again.
    fn recover(&mut self) -> anyhow::Result<()>;
    /// A connection to the primary, to read the acknowledged writes back.
    fn reader(&self) -> anyhow::Result<Conn>;
    /// How many times the primary changed without a kill.
    fn extra_failovers(&self) -> u64 {
        0
    }
    /// SIGKILLs what `mode` names; returns the instant just before the first signal. Only
    /// [`KillMode::Primary`] unless a system says otherwise.
    fn kill(&mut self, mode: KillMode) -> anyhow::Result<Instant> {
        match mode {
            KillMode::Primary => self.kill_primary(),
            other => bail!("this target cannot kill `{}`", other.label()),
        }
    }
    /// The current view number, if the system has views.
    fn view_number(&self) -> Option<u64> {
        None
    }
}

/// A removable directory for the view-service nodes' data.
struct DataDir(PathBuf);

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Views-service nodes in a tandem cluster.
const VS_NODES: usize = 3;

struct Cluster {
    tandem: PathBuf,
    /// Every view-service node's address, comma-separated (the `--viewserver` list).
    vs_list: String,
    /// The admin endpoint of each view-service node.
    vs_admin: Vec<String>,
    /// View-service nodes first, then servers, then the coordinator.
    processes: Vec<(String, Vec<String>, Option<Child>)>,
    server_ports: Vec<u16>,
    port: u16,
    killed: Vec<usize>,
    _data: DataDir,
}

impl Cluster {
    fn spawn(&mut self, args: Vec<String>, name: &str) -> anyhow::Result<()> {
        let child = self.command(&args)?;
        self.processes.push((name.to_string(), args, Some(child)));
        Ok(())
    }

    fn command(&self, args: &[String]) -> anyhow::Result<Child> {
        // A benchmark measures failover, not peer TLS: the processes run --insecure.
        Command::new(&self.tandem)
            .args(args)
            .env("TANDEM_INSECURE", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.tandem.display()))
    }

    fn start(tandem: PathBuf) -> anyhow::Result<Cluster> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let data = DataDir(
            std::env::temp_dir().join(format!("tandem-failover-{}-{nanos}", std::process::id())),
        );
        let mut vs_addrs = Vec::new();
        let mut vs_admin = Vec::new();
        for _ in 0..VS_NODES {
            vs_addrs.push(format!("127.0.0.1:{}", free_port()?));
            vs_admin.push(format!("127.0.0.1:{}", free_port()?));
        }
        let peers: Vec<String> = vs_addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect();
        let mut cluster = Cluster {
            tandem,
            vs_list: vs_addrs.join(","),
            vs_admin: vs_admin.clone(),
            processes: Vec::new(),
            server_ports: Vec::new(),
            port: 0,
            killed: Vec::new(),
            _data: data,
        };
        for (i, addr) in vs_addrs.iter().enumerate() {
            let dir = cluster._data.0.join(format!("vs{}", i + 1));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let args = vec![
                "viewserver".into(),
                "--id".into(),
                (i + 1).to_string(),
                "--listen".into(),
                addr.clone(),
                "--peers".into(),
                peers.join(","),
                "--data-dir".into(),
                dir.display().to_string(),
                "--admin".into(),
                vs_admin[i].clone(),
            ];
            cluster.spawn(args, &format!("viewserver{}", i + 1))?;
        }
        if !wait_for(Duration::from_secs(20), || cluster.vs_leader().is_some()) {
            bail!("the view service elected no leader within 20 s");
        }
        for i in 0..3 {
            let port = free_port()?;
            cluster.server_ports.push(port);
            let args = vec![
                "server".into(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--viewserver".into(),
                cluster.vs_list.clone(),
            ];
            cluster.spawn(args, &format!("server{i}"))?;
        }
        cluster.port = free_port()?;
        let args = vec![
            "coordinator".into(),
            "--listen".into(),
            format!("127.0.0.1:{}", cluster.port),
            "--viewserver".into(),
            cluster.vs_list.clone(),
        ];
        cluster.spawn(args, "coordinator")?;
        if !wait_for(Duration::from_secs(20), || cluster.healthy()) {
            bail!("the tandem cluster did not form within 20 s");
        }
        Ok(cluster)
    }

    /// (primary port, acked, backup count, view number) from `tandem status --json`, which
    /// takes the groups from the view-service leader.
    fn status(&self) -> Option<(u16, bool, usize, u64)> {
        let out = Command::new(&self.tandem)
            .args(["status", "--viewserver", &self.vs_list, "--json"])
            .env("TANDEM_INSECURE", "true")
            .output()
            .ok()?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let group = json.get("groups")?.get(0)?;
        let primary = group.get("primary")?.as_str()?;
        let port = primary.rsplit(':').next()?.parse().ok()?;
        let acked = group.get("acked")?.as_bool()?;
        let backups = group.get("backups")?.as_array()?.len();
        let viewnum = group.get("viewnum")?.as_u64()?;
        Some((port, acked, backups, viewnum))
    }

    /// (role, term) of view-service node `i`, from the `node` object of its admin `/status`.
    fn vs_role(&self, i: usize) -> Option<(String, u64)> {
        self.processes[i].2.as_ref()?;
        let body = http_get(&self.vs_admin[i], "/status")?;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let node = json.get("node")?;
        Some((
            node.get("role")?.as_str()?.to_string(),
            node.get("term")?.as_u64()?,
        ))
    }

    /// The index of the view-service node that leads (the highest term among those that say
    /// so: a deposed leader may not know yet).
    fn vs_leader(&self) -> Option<usize> {
        (0..VS_NODES)
            .filter_map(|i| {
                let (role, term) = self.vs_role(i)?;
                (role == "leader").then_some((term, i))
            })
            .max()
            .map(|(_, i)| i)
    }

    fn healthy(&self) -> bool {
        self.status()
            .is_some_and(|(_, acked, backups, _)| acked && backups >= 1)
            && Conn::open(self.port)
                .and_then(|mut c| c.call(&[b"PING"]))
                .is_ok()
    }

    fn server_index(&self, port: u16) -> Option<usize> {
        let position = self.server_ports.iter().position(|p| *p == port)?;
        Some(position + VS_NODES)
    }

    fn kill_process(&mut self, index: usize) {
        if let Some(mut child) = self.processes[index].2.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A bounded HTTP/1.0 GET on loopback; the body, if the answer is 200.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let timeout = Duration::from_secs(1);
    let addr: std::net::SocketAddr = addr.parse().ok()?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut raw = Vec::new();
    stream.take(16 << 20).read_to_end(&mut raw).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.split_whitespace()
        .nth(1)
        .is_some_and(|code| code == "200")
        .then(|| body.to_string())
}

impl System for Cluster {
    fn connector(&self) -> Connector {
        let port = self.port;
        Arc::new(move || Conn::open(port))
    }

    fn kill_primary(&mut self) -> anyhow::Result<Instant> {
        self.kill(KillMode::Primary)
    }

    fn kill(&mut self, mode: KillMode) -> anyhow::Result<Instant> {
        let mut victims = Vec::new();
        if mode != KillMode::VsLeader {
            let (primary, _, _, _) = self.status().context("tandem status")?;
            victims.push(
                self.server_index(primary)
                    .context("the primary is not one of our servers")?,
            );
        }
        if mode != KillMode::Primary {
            victims.push(self.vs_leader().context("no view-service node leads")?);
        }
        let killed_at = Instant::now();
        for &index in &victims {
            self.kill_process(index);
        }
        self.killed = victims;
        Ok(killed_at)
    }

    fn recover(&mut self) -> anyhow::Result<()> {
        if self.killed.is_empty() {
            bail!("nothing was killed");
        }
        for index in std::mem::take(&mut self.killed) {
            let child = self.command(&self.processes[index].1)?;
            self.processes[index].2 = Some(child);
            if index < VS_NODES {
                // Rejoined: it answers as a follower (or, rarely, leads again) with a leader
                // elected, from its data dir.
                let rejoined = wait_for(Duration::from_secs(30), || {
                    self.vs_role(index).is_some() && self.vs_leader().is_some()
                });
                if !rejoined {
                    bail!("view-service node {} did not rejoin within 30 s", index + 1);
                }
            }
        }
        if !wait_for(Duration::from_secs(30), || self.healthy()) {
            bail!("the tandem cluster did not get a backup back within 30 s");
        }
        Ok(())
    }

    fn reader(&self) -> anyhow::Result<Conn> {
        Ok(Conn::open(self.port)?)
    }

    fn view_number(&self) -> Option<u64> {
        self.status().map(|(_, _, _, viewnum)| viewnum)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.processes.len() {
            self.kill_process(i);
        }
    }
}

/// One acknowledged write: key `failover:<writer>:<seq>`, value `v<seq>`.
struct Ack {
    writer: u32,
    seq: u32,
    at: Instant,
}

fn key_value(writer: u32, seq: u32) -> (String, String) {
    (format!("failover:{writer}:{seq}"), format!("v{seq}"))
}

fn writer(
    connect: Connector,
    id: u32,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Vec<Ack>>>,
    errors: Arc<AtomicU64>,
) {
    let mut conn: Option<Conn> = None;
    let mut seq = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect() {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            },
        };
        seq += 1;
        let (key, value) = key_value(id, seq);
        match c.call(&[b"SET", key.as_bytes(), value.as_bytes()]) {
            Ok(Frame::Simple(ok)) if ok == "OK" => {
                // Timestamped under the lock so that the ledger is in time order.
                let mut ledger = ledger.lock().expect("ledger");
                let at = Instant::now();
                ledger.push(Ack {
                    writer: id,
                    seq,
                    at,
                });
            }
            // A demoted Redis master or a replica: find the primary again, as Sentinel clients do.
            Ok(Frame::Error(e)) if e.starts_with("READONLY") => {
                errors.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
            Ok(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
        }
    }
}

/// Runs the benchmark against `config.target`.
pub fn run_failover(config: &FailoverConfig) -> anyhow::Result<FailoverReport> {
    if config.kills == 0 || config.kills > 1000 || config.writers == 0 || config.writers > 256 {
        bail!("kills must be 1..=1000 and writers 1..=256");
    }
    if config.target == FailoverTarget::RedisSentinel && config.kill != KillMode::Primary {
        bail!(
            "redis-sentinel has no view-service leader to kill (`--kill {}`)",
            config.kill.label()
        );
    }
    match config.target {
        FailoverTarget::Tandem => {
            let mut cluster = Cluster::start(config.tandem.clone())?;
            measure(&mut cluster, config)
        }
        FailoverTarget::RedisSentinel => {
            let mut redis = crate::sentinel::RedisSentinel::start(config.sentinel_down_after_ms)?;
            let report = measure(&mut redis, config)?;
            redis.succeeded();
            Ok(report)
        }
    }
}

/// The kill loop and the read-back, the same for every target.
fn measure(system: &mut dyn System, config: &FailoverConfig) -> anyhow::Result<FailoverReport> {
    let label = config.target.label();
    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Vec::<Ack>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let first_view = system.view_number();
    let writers: Vec<_> = (0..config.writers as u32)
        .map(|id| {
            let (connect, stop, ledger, errors) = (
                system.connector(),
                stop.clone(),
                ledger.clone(),
                errors.clone(),
            );
            std::thread::spawn(move || writer(connect, id, stop, ledger, errors))
        })
        .collect();
    let acks = || ledger.lock().expect("ledger").len();
    let mut windows_ms = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        for round in 0..config.kills {
            let acked_before = acks();
            if !wait_for(Duration::from_secs(10), || acks() > acked_before + 100) {
                bail!("{label} round {round}: no steady write load before the kill (10 s)");
            }
            let killed_at = system.kill(config.kill).with_context(|| {
                format!("{label} round {round}: killing the {}", config.kill.label())
            })?;
            let resumed = wait_for(Duration::from_secs(30), || {
                ledger
                    .lock()
                    .expect("ledger")
                    .last()
                    .is_some_and(|a| a.at > killed_at)
            });
            if !resumed {
                bail!("{label} round {round}: writes did not resume within 30 s of the kill");
            }
            // The window clients saw: the largest gap between consecutive acknowledgements from
            // just before the kill until writes flow again (a reply already in flight at the kill
            // must not hide the outage that follows it).
            let settled = wait_for(Duration::from_secs(30), || {
                let ledger = ledger.lock().expect("ledger");
                ledger.iter().rev().take_while(|a| a.at > killed_at).count() >= 200
            });
            if !settled {
                bail!("{label} round {round}: writes did not settle after the kill (30 s)");
            }
            let window = {
                let ledger = ledger.lock().expect("ledger");
                let start = ledger.iter().rposition(|a| a.at <= killed_at).unwrap_or(0);
                ledger[start..]
                    .windows(2)
                    .map(|w| w[1].at - w[0].at)
                    .max()
                    .unwrap_or_default()
            };
            windows_ms.push(window.as_secs_f64() * 1000.0);
            system
                .recover()
                .with_context(|| format!("{label} round {round}: recovering after the kill"))?;
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.join();
    }
    result?;
    let view_changes = match (first_view, system.view_number()) {
        (Some(first), Some(last)) => Some(last.saturating_sub(first)),
        _ => None,
    };
    // Read every acknowledged write back, pipelined so that a long Redis run stays quick.
    let ledger = ledger.lock().expect("ledger");
    let mut conn = system.reader().context("connecting to read back")?;
    let mut lost = 0;
    for chunk in ledger.chunks(512) {
        let pairs: Vec<(String, String)> =
            chunk.iter().map(|a| key_value(a.writer, a.seq)).collect();
        let commands: Vec<Vec<&[u8]>> = pairs
            .iter()
            .map(|(key, _)| vec![&b"GET"[..], key.as_bytes()])
            .collect();
        let replies = conn.call_many(&commands).context("reading back")?;
        for ((_, value), reply) in pairs.iter().zip(replies) {
            match reply {
                Frame::Bulk(got) if got.as_ref() == value.as_bytes() => {}
                _ => lost += 1,
            }
        }
    }
    Ok(FailoverReport {
        windows_ms,
        acknowledged: ledger.len() as u64,
        lost,
        extra_failovers: system.extra_failovers(),
        client_errors: errors.load(Ordering::Relaxed),
        view_changes,
    })
}
