//! Test support for multi-process tests: real `tandem` processes on loopback, a TCP proxy to
//! cut one link, a small blocking RESP client, and recorded histories checked for
//! linearizability with the simulator's model.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tandem_kv::Reply;
use tandem_resp::{Frame, Limits};
use tandem_sim::history::HistoryOp;

/// A free loopback port (bound then released; the OS does not hand it out again at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `cond` every 10 ms until it holds or `deadline` passes.
pub fn wait_for(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One `tandem` process; killed when dropped.
pub struct Proc {
    pub name: String,
    pub args: Vec<String>,
    child: Option<Child>,
}

impl Proc {
    pub fn spawn(name: &str, args: &[String]) -> Proc {
        let mut p = Proc {
            name: name.to_string(),
            args: args.to_vec(),
            child: None,
        };
        p.start();
        p
    }

    pub fn start(&mut self) {
        let log = std::env::temp_dir().join(format!(
            "tandem-test-{}-{}.log",
            std::process::id(),
            self.name
        ));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tandem");
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: the process dies at once and loses its memory.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.child.as_ref().map(|c| {
                Command::new("kill")
                    .args(["-CONT", &c.id().to_string()])
                    .status()
            });
        }
        self.kill();
    }
}

/// A TCP proxy whose link can be cut: new connections are refused and existing ones closed.
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (cut2, stop2, conns2) = (cut.clone(), stop.clone(), conns.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((inbound, _)) => {
                        if cut2.load(Ordering::Relaxed) {
                            drop(inbound);
                            continue;
                        }
                        inbound.set_nonblocking(false).unwrap();
                        let Ok(outbound) = TcpStream::connect(&target) else {
                            continue;
                        };
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        {
                            let mut all = conns2.lock().unwrap();
                            all.push(inbound.try_clone().unwrap());
                            all.push(outbound.try_clone().unwrap());
                        }
                        pipe(
                            inbound.try_clone().unwrap(),
                            outbound.try_clone().unwrap(),
                            cut2.clone(),
                        );
                        pipe(outbound, inbound, cut2.clone());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Proxy {
            port,
            cut,
            conns,
            stop,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Cuts the link: every connection through the proxy is closed and new ones are refused.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
        for conn in self.conns.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.cut.store(false, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, cut: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if cut.load(Ordering::Relaxed) || to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// A blocking RESP client with a read timeout.
pub struct RespClient {
    stream: TcpStream,
    buf: BytesMut,
}

impl RespClient {
    pub fn connect(port: u16) -> std::io::Result<RespClient> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        Ok(RespClient {
            stream,
            buf: BytesMut::new(),
        })
    }

    pub fn send(&mut self, args: &[&str]) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        tandem_resp::encode_request(&args, &mut out);
        self.stream.write_all(&out)
    }

    pub fn read(&mut self) -> std::io::Result<Frame> {
        loop {
            match tandem_resp::parse_frame(&mut self.buf, &Limits::default()) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) | Err(tandem_resp::ParseError::Incomplete) => {}
                Err(e) => return Err(std::io::Error::other(format!("{e:?}"))),
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn call(&mut self, args: &[&str]) -> std::io::Result<Frame> {
        self.send(args)?;
        self.read()
    }
}

/// A RESP reply as the store's `Reply`, for the model.
pub fn to_reply(frame: &Frame) -> Reply {
    match frame {
        Frame::Simple(s) => Reply::Simple(s.clone()),
        Frame::Error(e) => Reply::Error(e.clone()),
        Frame::Integer(i) => Reply::Integer(*i),
        Frame::Bulk(b) => Reply::Bulk(b.clone()),
        Frame::Null => Reply::Nil,
        Frame::Array(items) => Reply::Array(items.iter().map(to_reply).collect()),
        Frame::Map(pairs) => Reply::Map(
            pairs
                .iter()
                .map(|(k, v)| (to_reply(k), to_reply(v)))
                .collect(),
        ),
        Frame::Boolean(b) => Reply::Integer(i64::from(*b)),
        Frame::Double(d) => Reply::Bulk(Bytes::from(d.to_string())),
        Frame::Verbatim(_, b) => Reply::Bulk(b.clone()),
    }
}

/// A cluster of real processes: view service, servers, a coordinator.
pub struct Cluster {
    pub vs_port: u16,
    pub vs: Proc,
    pub servers: Vec<Proc>,
    pub server_ports: Vec<u16>,
    pub coordinator: Proc,
    pub port: u16,
    /// Proxies between server i and the view service, when requested.
    pub vs_links: Vec<Option<Proxy>>,
}

impl Cluster {
    /// Starts a view service, `n` servers (server `i` reaches the view service through a
    /// cuttable proxy if `proxied[i]`), and a coordinator; waits until the coordinator serves.
    pub fn start(n: usize, proxied: &[bool]) -> Cluster {
        let vs_port = free_port();
        let vs_addr = format!("127.0.0.1:{vs_port}");
        let vs = Proc::spawn(
            "vs",
            &["viewserver".into(), "--listen".into(), vs_addr.clone()],
        );
        let mut servers = Vec::new();
        let mut server_ports = Vec::new();
        let mut vs_links = Vec::new();
        for i in 0..n {
            let port = free_port();
            let link = proxied
                .get(i)
                .copied()
                .unwrap_or(false)
                .then(|| Proxy::start(vs_addr.clone()));
            let target = link.as_ref().map_or(vs_addr.clone(), |p| p.addr());
            let args = vec![
                "server".into(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--viewserver".into(),
                target,
            ];
            servers.push(Proc::spawn(&format!("s{i}"), &args));
            server_ports.push(port);
            vs_links.push(link);
            // Start in order so that server 0 becomes the first primary (V5).
            if i == 0 {
                assert!(
                    wait_for(Duration::from_secs(10), || status_primary(vs_port)
                        .is_some()),
                    "first primary"
                );
            }
        }
        let port = free_port();
        let coordinator = Proc::spawn(
            "coord",
            &[
                "coordinator".into(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--viewserver".into(),
                vs_addr,
            ],
        );
        let cluster = Cluster {
            vs_port,
            vs,
            servers,
            server_ports,
            coordinator,
            port,
            vs_links,
        };
        assert!(
            wait_for(Duration::from_secs(15), || cluster
                .acked_with_backups(1.min(n - 1))),
            "cluster did not form: {:?}",
            status(vs_port)
        );
        assert!(
            wait_for(Duration::from_secs(10), || RespClient::connect(port)
                .and_then(|mut c| c.call(&["SET", "__ready", "1"]))
                .is_ok_and(|f| f == Frame::Simple("OK".into()))),
            "coordinator did not serve"
        );
        cluster
    }

    pub fn acked_with_backups(&self, backups: usize) -> bool {
        status(self.vs_port).is_some_and(|s| s.acked && s.backups.len() >= backups)
    }

    /// Index of the current primary.
    pub fn primary(&self) -> Option<usize> {
        let primary = status(self.vs_port)?.primary?;
        self.server_ports
            .iter()
            .position(|p| primary.ends_with(&format!(":{p}")))
    }

    pub fn client(&self) -> RespClient {
        RespClient::connect(self.port).expect("connect to coordinator")
    }
}

/// What `tandem status --json` says of group 0.
#[derive(Debug, Clone)]
pub struct GroupStatus {
    pub viewnum: u64,
    pub primary: Option<String>,
    pub backups: Vec<String>,
    pub acked: bool,
}

pub fn status(vs_port: u16) -> Option<GroupStatus> {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args([
            "status",
            "--viewserver",
            &format!("127.0.0.1:{vs_port}"),
            "--json",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    parse_status(&text)
}

fn status_primary(vs_port: u16) -> Option<String> {
    status(vs_port)?.primary
}

/// A tiny reader for the fixed status JSON shape (avoids a JSON dependency in tests).
fn parse_status(text: &str) -> Option<GroupStatus> {
    let field = |name: &str| -> Option<&str> {
        let start = text.find(&format!("\"{name}\":"))? + name.len() + 3;
        Some(&text[start..])
    };
    let viewnum = field("viewnum")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let primary = field("primary")?;
    let primary = if primary.starts_with("null") {
        None
    } else {
        Some(primary[1..].split('"').next()?.to_string())
    };
    let list = |name: &str| -> Option<Vec<String>> {
        let text = field(name)?;
        let text = &text[1..text.find(']')?];
        Some(
            text.split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        )
    };
    let acked = field("acked")?.starts_with("true");
    Some(GroupStatus {
        viewnum,
        primary,
        backups: list("backups")?,
        acked,
    })
}

/// A history shared by client threads.
#[derive(Default, Clone)]
pub struct History {
    start: Arc<Mutex<Option<Instant>>>,
    ops: Arc<Mutex<Vec<HistoryOp>>>,
}

impl History {
    fn micros(&self) -> u64 {
        let mut start = self.start.lock().unwrap();
        start.get_or_insert_with(Instant::now).elapsed().as_micros() as u64
    }

    /// Runs one command on `client` and records it (a transport error or a TRYAGAIN/timeout
    /// error is recorded as "outcome unknown").
    pub fn call(&self, who: usize, client: &mut RespClient, args: &[&str]) -> Option<Frame> {
        let cmd = tandem_kv::Command::parse(
            &args
                .iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect::<Vec<_>>(),
        )
        .expect("valid command");
        let call = self.micros();
        let result = client.call(args);
        let ret = self.micros();
        let frame = result.ok();
        let known = frame
            .as_ref()
            .filter(|f| !matches!(f, Frame::Error(e) if e.starts_with("TRYAGAIN")));
        let op = HistoryOp {
            client: who,
            seq: tandem_protocol::Seq(0),
            cmds: Arc::new(vec![cmd]),
            call_ms: call,
            ret: known.map(|f| (ret, Arc::new(vec![to_reply(f)]))),
            done: true,
        };
        self.ops.lock().unwrap().push(op);
        frame
    }

    /// Checks the history for linearizability, per key.
    pub fn check(&self, universe: &[&str]) -> Result<usize, String> {
        let ops = self.ops.lock().unwrap().clone();
        let universe: Vec<Bytes> = universe
            .iter()
            .map(|k| Bytes::copy_from_slice(k.as_bytes()))
            .collect();
        for (model, per_key) in tandem_sim::model::partition(&ops, &universe) {
            match tandem_check::check(
                &model,
                &per_key,
                tandem_check::Budget {
                    max_steps: 20_000_000,
                },
            ) {
                tandem_check::Verdict::Linearizable => {}
                tandem_check::Verdict::Unknown => return Err(format!("{model:?}: undecided")),
                tandem_check::Verdict::NotLinearizable(c) => {
                    return Err(format!(
                        "{model:?}: not linearizable; stuck at {:?}",
                        c.stuck_at
                            .iter()
                            .map(|i| &per_key[*i].input)
                            .collect::<Vec<_>>()
                    ));
                }
            }
        }
        Ok(ops.len())
    }
}

/// `tandem status --history`: every view the view service remembers, with when and why it
/// started, for failure messages (empty if the view service did not answer).
pub fn status_history(vs_port: u16) -> String {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args([
            "status",
            "--viewserver",
            &format!("127.0.0.1:{vs_port}"),
            "--history",
        ])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}
