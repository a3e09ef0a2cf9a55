//! Redis + Sentinel for the failover benchmark: a master and two replicas (`redis-server`,
//! persistence off) and three Sentinels (`redis-sentinel`), all on free loopback ports, with
//! their files in one temporary directory. Writers find the master as a Sentinel-aware client
//! does: ask a Sentinel for its address and ask again (the next Sentinel) whenever it fails.
//!
//! Every wait polls with a deadline and, on timeout, names the condition still unmet. Every
//! process is killed when [`RedisSentinel`] is dropped, also on error or panic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tandem_resp::Frame;

use crate::failover::{Conn, Connector, System, free_port, wait_until};

/// How often readiness conditions are polled (each poll asks several processes).
const SENTINEL_POLL: Duration = Duration::from_millis(20);

const MASTER_NAME: &str = "mymaster";
/// Limit for one query to a Sentinel or a Redis node while checking the setup.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

struct Node {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// The running setup; dropping it kills every process.
pub(crate) struct RedisSentinel {
    dir: PathBuf,
    nodes: Vec<Node>,
    sentinels: Vec<Node>,
    killed: Option<usize>,
    /// The master as of the last kill or recovery, to notice failovers nobody asked for.
    expected_master: u16,
    extra_failovers: u64,
    succeeded: bool,
}

impl RedisSentinel {
    /// Starts master, replicas and Sentinels, and waits until every Sentinel knows both replicas
    /// and the other two Sentinels: killing before that discovery stalls the failover.
    pub(crate) fn start(down_after_ms: u64) -> anyhow::Result<RedisSentinel> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("tandem-sentinel-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut setup = RedisSentinel {
            dir,
            nodes: Vec::new(),
            sentinels: Vec::new(),
            killed: None,
            expected_master: 0,
            extra_failovers: 0,
            succeeded: false,
        };
        for i in 0..3 {
            let dir = setup.dir.join(format!("redis{i}"));
            std::fs::create_dir_all(&dir)?;
            setup.nodes.push(Node {
                port: free_port()?,
                dir,
                child: None,
            });
        }
        let master = setup.nodes[0].port;
        setup.expected_master = master;
        setup.spawn_redis(0, None)?;
        setup.spawn_redis(1, Some(master))?;
        setup.spawn_redis(2, Some(master))?;
        for i in 0..3 {
            let port = setup.nodes[i].port;
            wait_until(Duration::from_secs(10), SENTINEL_POLL, || {
                query(port, &[b"PING"]).map(|_| ())
            })
            .with_context(|| format!("redis-server on port {port} did not answer PING"))?;
        }
        for i in 0..3 {
            let dir = setup.dir.join(format!("sentinel{i}"));
            std::fs::create_dir_all(&dir)?;
            let port = free_port()?;
            let child = spawn_sentinel(&dir, port, master, down_after_ms)?;
            setup.sentinels.push(Node {
                port,
                dir,
                child: Some(child),
            });
        }
        // Sentinels learn replicas from the master's INFO (every 10 s) and each other from
        // hello messages (every 2 s).
        wait_until(Duration::from_secs(60), SENTINEL_POLL, || {
            setup.check().map(|_| ())
        })
        .context("Redis + Sentinel did not become ready within 60 s")?;
        Ok(setup)
    }

    /// Keeps no logs: called once the run went through.
    pub(crate) fn succeeded(&mut self) {
        self.succeeded = true;
    }

    fn spawn_redis(&mut self, index: usize, replica_of: Option<u16>) -> anyhow::Result<()> {
        let node = &self.nodes[index];
        let mut args: Vec<String> = [
            "--port",
            &node.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &node.dir.display().to_string(),
            "--logfile",
            &node.dir.join("redis.log").display().to_string(),
            // A restarted node must resync at once, not after the default 5 s delay.
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(master) = replica_of {
            args.extend(["--replicaof".into(), "127.0.0.1".into(), master.to_string()]);
        }
        let child = Command::new("redis-server")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (apt-get install redis-server)")?;
        self.nodes[index].child = Some(child);
        Ok(())
    }

    /// Counts a master change that no kill caused (Sentinel failing over a live master).
    fn note_master(&mut self, master: u16) {
        if master != self.expected_master {
            self.extra_failovers += 1;
            self.expected_master = master;
        }
    }

    fn node_index(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.port == port)
    }

    /// The port all Sentinels name as master, as long as they agree.
    fn agreed_master(&self) -> Result<u16, String> {
        let mut named = Vec::new();
        for sentinel in &self.sentinels {
            named.push(master_addr(sentinel.port)?);
        }
        if named.windows(2).any(|w| w[0] != w[1]) {
            return Err(format!(
                "the Sentinels disagree on the master: ports {named:?}"
            ));
        }
        Ok(named[0])
    }

    /// Ok(master port) when the setup is fully redundant and ready for a kill, else what is not.
    fn check(&self) -> Result<u16, String> {
        let master = self.agreed_master()?;
        let index = self
            .node_index(master)
            .ok_or_else(|| format!("the Sentinels name port {master}, not one of ours"))?;
        if self.nodes[index].child.is_none() {
            return Err(format!(
                "the Sentinels still name the killed master (port {master})"
            ));
        }
        match role(master)? {
            Role::Master { replicas } if replicas >= 2 => {}
            Role::Master { replicas } => {
                return Err(format!(
                    "master {master} has {replicas} connected replicas, not 2"
                ));
            }
            Role::Replica { .. } => return Err(format!("port {master} is not a master yet")),
        }
        for node in self.nodes.iter().filter(|n| n.port != master) {
            match role(node.port)? {
                Role::Replica {
                    master: m,
                    connected: true,
                } if m == master => {}
                _ => {
                    return Err(format!(
                        "port {} is not a connected replica of {master} yet",
                        node.port
                    ));
                }
            }
        }
        for sentinel in &self.sentinels {
            let s = sentinel.port;
            let info = fields(&query(
                s,
                &[b"SENTINEL", b"MASTER", MASTER_NAME.as_bytes()],
            )?);
            let number = |name: &str| info.get(name).and_then(|v| v.parse::<u64>().ok());
            let flags = info.get("flags").map_or("", String::as_str);
            if flags != "master" {
                return Err(format!("Sentinel {s} flags the master \"{flags}\""));
            }
            if number("num-slaves").unwrap_or(0) < 2 {
                return Err(format!("Sentinel {s} does not know 2 replicas yet"));
            }
            if number("num-other-sentinels").unwrap_or(0) < 2 {
                return Err(format!(
                    "Sentinel {s} does not know the other 2 Sentinels yet"
                ));
            }
            let replicas = query(s, &[b"SENTINEL", b"REPLICAS", MASTER_NAME.as_bytes()])?;
            let healthy = match &replicas {
                Frame::Array(list) => list
                    .iter()
                    .filter(|r| fields(r).get("flags").is_some_and(|f| f == "slave"))
                    .count(),
                _ => 0,
            };
            if healthy < 2 {
                return Err(format!(
                    "Sentinel {s} sees {healthy} healthy replicas (flags \"slave\"), not 2"
                ));
            }
        }
        Ok(master)
    }
}

impl System for RedisSentinel {
    fn connector(&self) -> Connector {
        let sentinels: Vec<u16> = self.sentinels.iter().map(|s| s.port).collect();
        let next = Arc::new(AtomicUsize::new(0));
        Arc::new(move || {
            // Start at the next Sentinel each time, so that a stale answer is not asked again.
            let first = next.fetch_add(1, Ordering::Relaxed);
            let mut last = std::io::Error::other("no Sentinel named a reachable master");
            for i in 0..sentinels.len() {
                let sentinel = sentinels[(first + i) % sentinels.len()];
                match master_addr(sentinel) {
                    Ok(port) => match Conn::open(port) {
                        Ok(conn) => return Ok(conn),
                        Err(e) => last = e,
                    },
                    Err(e) => last = std::io::Error::other(e),
                }
            }
            Err(last)
        })
    }

    fn kill_primary(&mut self) -> anyhow::Result<Instant> {
        let master = self.check().map_err(anyhow::Error::msg)?;
        self.note_master(master);
        let index = self
            .node_index(master)
            .context("the master is one of ours")?;
        let mut child = self.nodes[index].child.take().context("master running")?;
        let killed_at = Instant::now();
        let _ = child.kill();
        let _ = child.wait();
        self.killed = Some(index);
        Ok(killed_at)
    }

    fn recover(&mut self) -> anyhow::Result<()> {
        let index = self.killed.take().context("nothing was killed")?;
        let killed_port = self.nodes[index].port;
        let new_master = wait_until(Duration::from_secs(30), SENTINEL_POLL, || {
            let master = self.agreed_master()?;
            if master == killed_port {
                return Err(format!(
                    "the Sentinels still name the killed master {master}"
                ));
            }
            match role(master)? {
                Role::Master { .. } => Ok(master),
                Role::Replica { .. } => Err(format!("port {master} is not promoted yet")),
            }
        })
        .context("Sentinel did not promote a new master within 30 s")?;
        self.expected_master = new_master;
        self.spawn_redis(index, Some(new_master))?;
        let master = wait_until(Duration::from_secs(30), SENTINEL_POLL, || self.check())
            .with_context(|| {
                format!("the restarted node {killed_port} did not rejoin as a replica within 30 s")
            })?;
        self.note_master(master);
        Ok(())
    }

    fn reader(&self) -> anyhow::Result<Conn> {
        let master = self.check().map_err(anyhow::Error::msg)?;
        Ok(Conn::open(master)?)
    }

    fn extra_failovers(&self) -> u64 {
        self.extra_failovers
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        for node in self.nodes.iter_mut().chain(self.sentinels.iter_mut()) {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if self.succeeded {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("Redis + Sentinel logs kept in {}", self.dir.display());
        }
    }
}

fn spawn_sentinel(dir: &Path, port: u16, master: u16, down_after_ms: u64) -> anyhow::Result<Child> {
    // Sentinel rewrites its config file, so each gets its own, in the temporary directory.
    let config = dir.join("sentinel.conf");
    let text = format!(
        "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\nlogfile {log}\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n\
         sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}\n\
         sentinel failover-timeout {MASTER_NAME} 5000\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n",
        dir = dir.display(),
        log = dir.join("sentinel.log").display(),
    );
    std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
    Command::new("redis-sentinel")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting redis-sentinel (apt-get install redis-sentinel)")
}

fn query(port: u16, args: &[&[u8]]) -> Result<Frame, String> {
    let reply = Conn::open_with_timeout(port, QUERY_TIMEOUT)
        .and_then(|mut conn| conn.call(args))
        .map_err(|e| format!("port {port}: {e}"))?;
    match reply {
        Frame::Error(e) => Err(format!("port {port}: {e}")),
        frame => Ok(frame),
    }
}

fn text(frame: &Frame) -> Option<String> {
    match frame {
        Frame::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Frame::Simple(s) => Some(s.clone()),
        Frame::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A flat `[name, value, name, value, ...]` reply as a map.
fn fields(frame: &Frame) -> HashMap<String, String> {
    match frame {
        Frame::Array(items) => items
            .chunks(2)
            .filter_map(|pair| Some((text(pair.first()?)?, text(pair.get(1)?)?)))
            .collect(),
        Frame::Map(pairs) => pairs
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
            .collect(),
        _ => HashMap::new(),
    }
}

/// The master port a Sentinel names (`SENTINEL GET-MASTER-ADDR-BY-NAME`).
fn master_addr(sentinel: u16) -> Result<u16, String> {
    let reply = query(
        sentinel,
        &[
            b"SENTINEL",
            b"GET-MASTER-ADDR-BY-NAME",
            MASTER_NAME.as_bytes(),
        ],
    )?;
    match &reply {
        Frame::Array(items) if items.len() == 2 => text(&items[1])
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("Sentinel {sentinel}: bad master address {reply:?}")),
        _ => Err(format!("Sentinel {sentinel} names no master: {reply:?}")),
    }
}

enum Role {
    Master { replicas: usize },
    Replica { master: u16, connected: bool },
}

/// What a node says it is (`ROLE`).
fn role(port: u16) -> Result<Role, String> {
    let reply = query(port, &[b"ROLE"])?;
    let items = match &reply {
        Frame::Array(items) if !items.is_empty() => items,
        _ => return Err(format!("port {port}: unexpected ROLE reply {reply:?}")),
    };
    match text(&items[0]).as_deref() {
        Some("master") => Ok(Role::Master {
            replicas: match items.get(2) {
                Some(Frame::Array(list)) => list.len(),
                _ => 0,
            },
        }),
        Some("slave") => Ok(Role::Replica {
            master: items
                .get(2)
                .and_then(text)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
            connected: items.get(3).and_then(text).as_deref() == Some("connected"),
        }),
        _ => Err(format!("port {port}: unexpected ROLE reply {reply:?}")),
    }
}
