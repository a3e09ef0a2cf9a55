//! Test support for multi-process tests: real `tandem` processes on loopback, a TCP proxy to
//! cut one link, a small blocking RESP client, and recorded histories checked for
//! linearizability with the simulator's model.
//!
//! The view service is a Raft group of three nodes by default ([`ViewService::group`]), each
//! with its own data dir and a [`Proxy`] in front of it whose address is the one it advertises
//! and the others list in `--peers`: cutting node i's proxy cuts all Raft traffic TO node i
//! (an asymmetric partition: it hears nothing, but what it sends still arrives). Servers and
//! coordinators are given the proxies' addresses too (a node's answers name its advertised
//! address: an asker given another one would not recognise them); the tests' status queries
//! go to the nodes' own listen addresses, so a cut-off node can still be watched.

#![allow(dead_code)]

pub mod sharded;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tandem_kv::Reply;
use tandem_protocol::Status;
use tandem_resp::{Frame, Limits};
use tandem_runtime::PeerTls;
use tandem_runtime::identity::Role;
use tandem_runtime::tls::{ClusterCa, NodeSpec, Validity};
use tandem_sim::history::HistoryOp;

/// A free loopback port (bound then released; the OS does not hand it out again at once).
pub fn free_port() -> u16 {
    // The kernel may hand a just-closed port out again; the tests of one binary run in
    // parallel, so never give the same port to two of them (a server that cannot bind exits
    // and its test waits in vain).
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The cluster CA of this test process, and the directory its certificate files go to. Every
/// process the tests start gets a certificate from it for its advertised address (or, behind
/// a proxy, the proxy's: the principal is bound to the advertised address).
pub struct Certs {
    pub ca: ClusterCa,
    pub dir: PathBuf,
    next: AtomicU64,
}

/// This test process's [`Certs`] (made on first use).
pub fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tandem-test-certs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ca = ClusterCa::new(Validity::days(1)).expect("a CA");
        let certs = tandem_runtime::tls::ClusterCerts {
            ca,
            issued: Vec::new(),
        };
        certs.write(&dir, true).expect("write the CA");
        Certs {
            ca: certs.ca,
            dir,
            next: AtomicU64::new(0),
        }
    })
}

impl Certs {
    /// The CA certificate file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues a certificate for `role`/`name`, writes it, and returns the flags that use it.
    pub fn flags(&self, role: Role, name: &str) -> Vec<String> {
        let file = format!("p{}", self.next.fetch_add(1, Ordering::Relaxed));
        let spec = NodeSpec {
            file: file.clone(),
            principal: tandem_runtime::identity::Principal::new(role, name),
            hosts: Vec::new(),
        };
        let issued = self
            .ca
            .issue(&spec, Validity::days(1))
            .expect("a certificate");
        let cert = self.dir.join(format!("{file}.pem"));
        let key = self.dir.join(format!("{file}.key"));
        std::fs::write(&cert, &issued.cert_pem).expect("write a certificate");
        std::fs::write(&key, &issued.key_pem).expect("write a key");
        vec![
            "--cluster-ca".into(),
            self.ca_file().display().to_string(),
            "--cluster-cert".into(),
            cert.display().to_string(),
            "--cluster-key".into(),
            key.display().to_string(),
        ]
    }

    /// TLS settings for `role`/`name` in memory.
    pub fn peer(&self, role: Role, name: &str) -> PeerTls {
        self.ca.peer(role, name).expect("a certificate")
    }

    /// The operator's TLS settings the tests query status with.
    pub fn admin(&self) -> &'static PeerTls {
        static ADMIN: OnceLock<PeerTls> = OnceLock::new();
        ADMIN.get_or_init(|| self.peer(Role::Admin, "tests"))
    }
}

/// `args` of a `tandem` command with certificate flags added for the principal it runs as: a
/// view-service node or a server at its `--advertise` (else `--listen`) address, a
/// coordinator, or an operator tool (`status`, `viewserver add-node/remove-node`). Left alone
/// if it already has `--insecure` or `--cluster-*` flags, or only prints its settings.
pub fn with_cluster_tls(args: &[String]) -> Vec<String> {
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--insecure") || has("--cluster-ca") || has("--print-config") {
        return args.to_vec();
    }
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let address = || value("--advertise").or_else(|| value("--listen"));
    let principal = match (
        args.first().map(String::as_str),
        args.get(1).map(String::as_str),
    ) {
        (Some("viewserver"), Some("add-node" | "remove-node")) | (Some("status"), _) => {
            Some((Role::Admin, "tests".to_owned()))
        }
        (Some("viewserver"), _) => address().map(|a| (Role::ViewService, a)),
        (Some("server"), _) => address().map(|a| (Role::Server, a)),
        (Some("coordinator"), _) => Some((Role::Coordinator, "tests".to_owned())),
        _ => None,
    };
    let mut out = args.to_vec();
    if let Some((role, name)) = principal {
        out.extend(certs().flags(role, &name));
    }
    out
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
            .args(with_cluster_tls(&self.args))
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
            // A socket with a read timeout is never restarted after a signal (signal(7)):
            // EINTR is not an answer, read again.
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

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "tandem-test-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A unique prefix for process names (and so log files) of one cluster.
fn cluster_tag() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("c{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// How long one status query may take: a SIGSTOPped node accepts the connection (the kernel
/// does) but never answers.
const STATUS_TIMEOUT: Duration = Duration::from_millis(700);

/// Asks one view-service node for its status (`GetStatus`, answered by every node: Q1) over
/// the wire protocol; `None` if it does not answer in time.
pub fn node_status(addr: &str) -> Option<Status> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let tls = certs().admin();
    runtime
        .block_on(tandem_runtime::status(
            &[addr.to_owned()],
            STATUS_TIMEOUT,
            Some(tls),
        ))
        .ok()
}

/// What one view-service node says of itself (the `node` part of its status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: u64,
    pub role: String,
    pub term: u64,
    pub leader: u64,
    pub commit: u64,
    pub applied: u64,
    pub members: Vec<u64>,
}

impl NodeInfo {
    fn of(status: &Status) -> Option<NodeInfo> {
        let node = status.node.as_ref()?;
        Some(NodeInfo {
            id: node.id,
            role: node.role.clone(),
            term: node.term,
            leader: node.leader,
            commit: node.commit,
            applied: node.applied,
            members: node.members.iter().map(|m| m.id).collect(),
        })
    }

    pub fn leads(&self) -> bool {
        self.role == "leader"
    }
}

/// One node of the view service: its process, its data dir, and the proxy in front of it that
/// the other nodes send their Raft traffic through (its advertised address).
pub struct VsNode {
    /// Raft id (1-based).
    pub id: u64,
    /// Where it listens; the tests' status queries come here directly (so a cut-off node can
    /// still be observed).
    pub listen: String,
    /// The address it advertises, the others list in `--peers`, and servers and coordinators
    /// are given: a proxy to `listen`. Cutting it cuts everything sent TO this node (Raft
    /// traffic from the other nodes, pings, queries): an asymmetric partition, the node hears
    /// nothing, but what it sends on its own connections still arrives.
    pub proxy: Option<Proxy>,
    pub data: Option<TempDir>,
    pub proc: Proc,
    pub stopped: bool,
}

impl VsNode {
    /// Starts node `id` of group `tag` on `listen` behind `proxy` (its advertised address),
    /// with a fresh data directory.
    fn spawn(
        tag: &str,
        id: u64,
        listen: String,
        proxy: Proxy,
        peers: &str,
        extra: &[&str],
    ) -> VsNode {
        let data = TempDir::new(&format!("{tag}-vs{id}"));
        let mut args = vs_args(id, &listen, &proxy.addr(), peers, data.path());
        args.extend(extra.iter().map(|a| a.to_string()));
        let proc = Proc::spawn(&format!("{tag}-vs{id}"), &args);
        VsNode {
            id,
            listen,
            proxy: Some(proxy),
            data: Some(data),
            proc,
            stopped: false,
        }
    }

    pub fn advertised(&self) -> String {
        self.proxy
            .as_ref()
            .map_or_else(|| self.listen.clone(), Proxy::addr)
    }

    pub fn status(&self) -> Option<Status> {
        if self.stopped || !self.proc.is_running() {
            return None;
        }
        node_status(&self.listen)
    }

    pub fn info(&self) -> Option<NodeInfo> {
        NodeInfo::of(&self.status()?)
    }
}

/// The view service: one node (no Raft peers, nothing on disk) or a Raft group of nodes.
pub struct ViewService {
    pub nodes: Vec<VsNode>,
    tag: String,
}

impl ViewService {
    /// A single node, as before the view service was replicated.
    pub fn single() -> ViewService {
        let tag = cluster_tag();
        let listen = format!("127.0.0.1:{}", free_port());
        let proc = Proc::spawn(
            &format!("{tag}-vs"),
            &["viewserver".into(), "--listen".into(), listen.clone()],
        );
        ViewService {
            nodes: vec![VsNode {
                id: 1,
                listen,
                proxy: None,
                data: None,
                proc,
                stopped: false,
            }],
            tag,
        }
    }

    /// `n` nodes with ids 1..=n, each with its own data dir, all listed in every `--peers`;
    /// returns once one of them leads.
    pub fn group(n: usize) -> ViewService {
        ViewService::group_with(n, &[])
    }

    /// [`ViewService::group`] with `extra` flags for every node (e.g. Raft timing).
    pub fn group_with(n: usize, extra: &[&str]) -> ViewService {
        let tag = cluster_tag();
        let listens: Vec<String> = (0..n)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let proxies: Vec<Proxy> = listens.iter().map(|l| Proxy::start(l.clone())).collect();
        let peers = proxies
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}={}", i + 1, p.addr()))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (i, (listen, proxy)) in listens.into_iter().zip(proxies).enumerate() {
            nodes.push(VsNode::spawn(
                &tag,
                i as u64 + 1,
                listen,
                proxy,
                &peers,
                extra,
            ));
        }
        let vs = ViewService { nodes, tag };
        vs.wait_leader(Duration::from_secs(20), None);
        vs
    }

    /// The list servers, coordinators and tools are given: every node's advertised address
    /// (the one its answers declare, and the one leaders redirect to).
    pub fn list(&self) -> String {
        self.nodes
            .iter()
            .map(VsNode::advertised)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The `--peers` value naming every node by its advertised address.
    pub fn peers(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{}={}", n.id, n.advertised()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every node's self-description, `None` for those that do not answer.
    pub fn infos(&self) -> Vec<Option<NodeInfo>> {
        self.nodes.iter().map(VsNode::info).collect()
    }

    /// The node that leads, as the answering nodes say: among those claiming to lead, the one
    /// of the highest term (a deposed leader that has not noticed yet has a lower one).
    pub fn leader(&self) -> Option<usize> {
        if self.nodes.len() == 1 {
            return self.nodes[0].status().map(|_| 0);
        }
        self.infos()
            .iter()
            .enumerate()
            .filter_map(|(i, info)| info.as_ref().filter(|n| n.leads()).map(|n| (n.term, i)))
            .max()
            .map(|(_, i)| i)
    }

    /// Waits until a node other than `not` leads; panics after `deadline` with every status.
    pub fn wait_leader(&self, deadline: Duration, not: Option<usize>) -> usize {
        let mut found = None;
        let ok = wait_for(deadline, || {
            found = self.leader().filter(|l| Some(*l) != not);
            found.is_some()
        });
        assert!(
            ok,
            "no view-service leader (other than {not:?}) within {deadline:?}: {:?}",
            self.infos()
        );
        found.unwrap()
    }

    /// The table as the leader has it (or, with no leader answering, the node that applied
    /// most).
    pub fn status(&self) -> Option<Status> {
        if let Some(l) = self.leader()
            && let Some(s) = self.nodes[l].status()
        {
            return Some(s);
        }
        self.nodes
            .iter()
            .filter_map(VsNode::status)
            .max_by_key(|s| s.node.as_ref().map_or(0, |n| n.applied))
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].proc.kill();
        self.nodes[i].stopped = false;
    }

    /// Starts node `i` again with the same arguments (so the same data dir).
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].proc.kill();
        self.nodes[i].proc.start();
        self.nodes[i].stopped = false;
    }

    /// SIGSTOP node `i`: it keeps its sockets but does nothing.
    pub fn stop(&mut self, i: usize) {
        self.nodes[i].proc.signal("STOP");
        self.nodes[i].stopped = true;
    }

    /// SIGCONT node `i`.
    pub fn cont(&mut self, i: usize) {
        self.nodes[i].proc.signal("CONT");
        self.nodes[i].stopped = false;
    }

    /// Cuts the proxy in front of node `i`: nothing the other nodes send reaches it any more
    /// (see [`VsNode::proxy`]: asymmetric, it can still send).
    pub fn cut(&self, i: usize) {
        self.nodes[i].proxy.as_ref().expect("a group node").cut();
    }

    pub fn heal(&self, i: usize) {
        self.nodes[i].proxy.as_ref().expect("a group node").heal();
    }

    /// Starts node `id` that is not yet a member: own id not in `--peers` means "join" (it
    /// waits to be added). Returns its index.
    pub fn start_joining(&mut self, id: u64) -> usize {
        let listen = format!("127.0.0.1:{}", free_port());
        let proxy = Proxy::start(listen.clone());
        let node = VsNode::spawn(&self.tag, id, listen, proxy, &self.peers(), &[]);
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Runs `tandem viewserver <args> --viewserver <list>`: (success, output).
    pub fn admin(&self, args: &[&str]) -> (bool, String) {
        let mut full: Vec<String> = vec!["viewserver".into()];
        full.extend(args.iter().map(|a| a.to_string()));
        full.extend(["--viewserver".into(), self.list()]);
        let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(with_cluster_tls(&full))
            .output()
            .expect("run tandem viewserver");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

fn vs_args(id: u64, listen: &str, advertise: &str, peers: &str, data: &Path) -> Vec<String> {
    vec![
        "viewserver".into(),
        "--id".into(),
        id.to_string(),
        "--listen".into(),
        listen.into(),
        "--advertise".into(),
        advertise.into(),
        "--peers".into(),
        peers.into(),
        "--data-dir".into(),
        data.display().to_string(),
    ]
}

/// Proxies between one server and every view-service node (its `--viewserver` list), cut and
/// healed together.
pub struct VsLink(pub Vec<Proxy>);

impl VsLink {
    pub fn cut(&self) {
        self.0.iter().for_each(Proxy::cut);
    }

    pub fn heal(&self) {
        self.0.iter().for_each(Proxy::heal);
    }
}

/// A cluster of real processes: the view service, servers, a coordinator.
pub struct Cluster {
    pub vs: ViewService,
    pub servers: Vec<Proc>,
    pub server_ports: Vec<u16>,
    pub coordinator: Proc,
    pub port: u16,
    /// Links between server i and the view service, when requested.
    pub vs_links: Vec<Option<VsLink>>,
}

impl Cluster {
    /// Starts a view service of three nodes, `n` servers and a coordinator (every one given the
    /// whole node list: Q2); waits until the coordinator serves.
    pub fn start(n: usize) -> Cluster {
        Cluster::with(ViewService::group(3), n, &[])
    }

    /// Starts a single view-service node, `n` servers (server `i` reaches the view service
    /// through a cuttable proxy if `proxied[i]`) and a coordinator.
    ///
    /// A proxied server needs the single node: with a group, a follower's redirect names the
    /// leader's own address, and a server that followed it would bypass its proxy.
    pub fn start_single(n: usize, proxied: &[bool]) -> Cluster {
        Cluster::with(ViewService::single(), n, proxied)
    }

    /// Servers and a coordinator around a view service already started.
    pub fn with(vs: ViewService, n: usize, proxied: &[bool]) -> Cluster {
        let tag = vs.tag.clone();
        let mut servers = Vec::new();
        let mut server_ports = Vec::new();
        let mut vs_links = Vec::new();
        for i in 0..n {
            let port = free_port();
            let link = proxied.get(i).copied().unwrap_or(false).then(|| {
                VsLink(
                    vs.nodes
                        .iter()
                        .map(|node| Proxy::start(node.listen.clone()))
                        .collect(),
                )
            });
            let mut args = vec![
                "server".into(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--viewserver".into(),
                vs.list(),
            ];
            // A proxied server names each node as usual and connects through its proxy; the
            // node still proves its own address (I2).
            for (node, proxy) in link.iter().flat_map(|l| vs.nodes.iter().zip(&l.0)) {
                args.push("--cluster-connect-via".into());
                args.push(format!("{}={}", node.advertised(), proxy.addr()));
            }
            servers.push(Proc::spawn(&format!("{tag}-s{i}"), &args));
            server_ports.push(port);
            vs_links.push(link);
            // Start in order so that server 0 becomes the first primary (V5).
            if i == 0 {
                assert!(
                    wait_for(Duration::from_secs(15), || group_of(vs.status().as_ref())
                        .is_some_and(|g| g.primary.is_some())),
                    "first primary: {:?}",
                    vs.infos()
                );
            }
        }
        let port = free_port();
        let coordinator = Proc::spawn(
            &format!("{tag}-coord"),
            &[
                "coordinator".into(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--viewserver".into(),
                vs.list(),
            ],
        );
        let cluster = Cluster {
            vs,
            servers,
            server_ports,
            coordinator,
            port,
            vs_links,
        };
        assert!(
            wait_for(Duration::from_secs(20), || cluster
                .acked_with_backups(1.min(n - 1))),
            "cluster did not form: {:?}",
            cluster.status()
        );
        assert!(
            wait_for(Duration::from_secs(15), || RespClient::connect(port)
                .and_then(|mut c| c.call(&["SET", "__ready", "1"]))
                .is_ok_and(|f| f == Frame::Simple("OK".into()))),
            "coordinator did not serve"
        );
        cluster
    }

    /// Group 0 as the view-service leader has it.
    pub fn status(&self) -> Option<GroupStatus> {
        group_of(self.vs.status().as_ref())
    }

    pub fn acked_with_backups(&self, backups: usize) -> bool {
        self.status()
            .is_some_and(|s| s.acked && s.backups.len() >= backups)
    }

    /// Index of the current primary.
    pub fn primary(&self) -> Option<usize> {
        let primary = self.status()?.primary?;
        self.server_index(&primary)
    }

    /// Index of the server `id` names.
    pub fn server_index(&self, id: &str) -> Option<usize> {
        self.server_ports
            .iter()
            .position(|p| id.ends_with(&format!(":{p}")))
    }

    pub fn client(&self) -> RespClient {
        RespClient::connect(self.port).expect("connect to coordinator")
    }

    /// Every view the view service remembers, with when and why it started, for failure
    /// messages.
    pub fn history(&self) -> String {
        let Some(status) = self.vs.status() else {
            return "(no view-service node answered)".into();
        };
        status
            .groups
            .iter()
            .flat_map(|g| g.history.iter())
            .map(|c| format!("view {} at {} ms: {}\n", c.view.num.0, c.at_ms, c.reason()))
            .collect()
    }
}

/// Group 0 of a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    pub viewnum: u64,
    pub primary: Option<String>,
    pub backups: Vec<String>,
    pub acked: bool,
    /// Servers the answering node heard from within the dead interval (only the leader knows).
    pub alive: Vec<String>,
}

pub fn group_of(status: Option<&Status>) -> Option<GroupStatus> {
    let group = status?.groups.first()?;
    let view = group.view.as_ref();
    Some(GroupStatus {
        viewnum: view.map_or(0, |v| v.num.0),
        primary: view.map(|v| v.primary.to_string()),
        backups: view.map_or_else(Vec::new, |v| {
            v.backups.iter().map(ToString::to_string).collect()
        }),
        acked: group.acked,
        alive: group
            .servers
            .iter()
            .filter(|s| s.alive)
            .map(|s| s.server.to_string())
            .collect(),
    })
}

/// Client threads doing a mix of writes and reads through the coordinator until stopped,
/// recording every call in a [`History`].
pub struct Load {
    pub history: History,
    stop: Arc<AtomicBool>,
    /// Requests answered with something other than an error.
    pub acked: Arc<AtomicU64>,
    /// Error replies and failed connections or calls (outcome unknown).
    pub errors: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// The keys the load uses.
pub const KEYS: [&str; 5] = ["a", "b", "c", "n", "log"];

impl Load {
    /// Starts `threads` clients on the coordinator at `port`; returns once they have made
    /// progress.
    pub fn start(port: u16, threads: usize) -> Load {
        let history = History::default();
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let threads = (0..threads)
            .map(|who| {
                let (history, stop, acked, errors) =
                    (history.clone(), stop.clone(), acked.clone(), errors.clone());
                std::thread::spawn(move || {
                    let mut client = None;
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let c = match client.as_mut() {
                            Some(c) => c,
                            None => match RespClient::connect(port) {
                                Ok(c) => client.insert(c),
                                Err(_) => {
                                    errors.fetch_add(1, Ordering::Relaxed);
                                    std::thread::sleep(Duration::from_millis(20));
                                    continue;
                                }
                            },
                        };
                        let value = format!("w{who}i{i}");
                        let key = KEYS[(i as usize + who) % 3];
                        let args: Vec<&str> = match i % 6 {
                            0 => vec!["SET", key, &value],
                            1 => vec!["GET", key],
                            2 => vec!["INCR", "n"],
                            3 => vec!["APPEND", "log", &value],
                            4 => vec!["GET", "n"],
                            _ => vec!["SET", key, &value],
                        };
                        match history.call(who, c, &args) {
                            Some(Frame::Error(e)) => {
                                eprintln!("client {who}: error reply {e}");
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                            Some(_) => {
                                acked.fetch_add(1, Ordering::Relaxed);
                            }
                            None => {
                                eprintln!("client {who}: call failed");
                                errors.fetch_add(1, Ordering::Relaxed);
                                client = None;
                            }
                        }
                    }
                })
            })
            .collect();
        let load = Load {
            history,
            stop,
            acked,
            errors,
            threads,
        };
        assert!(load.progress(200, Duration::from_secs(15)), "load started");
        load
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Waits until `more` further requests succeed.
    pub fn progress(&self, more: u64, deadline: Duration) -> bool {
        let before = self.acked();
        wait_for(deadline, || self.acked() >= before + more)
    }

    /// Stops the clients, reads every key once more through `port` (so every acknowledged
    /// write must be visible: the reads are part of the checked history), and checks the
    /// history for linearizability (R2). Returns the number of operations checked.
    pub fn finish(mut self, port: u16) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        let mut client = RespClient::connect(port).expect("connect to coordinator");
        for key in KEYS {
            assert!(
                self.history.call(99, &mut client, &["GET", key]).is_some(),
                "final read of {key}"
            );
        }
        self.history
            .check(&KEYS)
            .unwrap_or_else(|e| panic!("R2 violated: {e}"))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
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

/// A real redis-server on a free port, for side-by-side comparisons; killed when dropped.
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    /// Starts redis-server without persistence and waits (10 s at most) until it answers PING.
    pub fn start() -> RedisServer {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let redis = RedisServer { child, port };
        assert!(
            wait_for(Duration::from_secs(10), || RespClient::connect(port)
                .and_then(|mut c| c.call(&["PING"]))
                .is_ok()),
            "redis-server answers"
        );
        redis
    }

    /// A client connected to it.
    pub fn client(&self) -> RespClient {
        RespClient::connect(self.port).expect("redis-server accepts a connection")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
