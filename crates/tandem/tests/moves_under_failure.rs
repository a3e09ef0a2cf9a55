//! Issue 13 with real processes: three groups of two servers, a coordinator, and clients
//! writing and reading through it while `tandem slots move` moves slots holding megabytes from
//! one group (the giver) to another (the taker). In the middle of the move the giver's primary
//! is SIGKILLed, then, once the giver has failed over, the taker's primary; each kill is
//! asserted to have happened while the view service's status still reported the move in
//! progress, and each killed server is replaced so every group has two servers again.
//!
//! Then: the move completes, the map covers every slot, the clients' history (clerk sessions,
//! so retries across failovers and the move are exactly once: S8, C5) is linearizable per key
//! as a register, no acknowledged write is lost (the load's, the preloaded keys that moved, or
//! those of a client writing at the servers' cluster ports directly), and every group serves.
//!
//! The move is slow enough to be caught in the middle because its slots are preloaded with
//! 20 MB and the servers copy in the smallest chunks, two at a time (`--transfer-chunk-bytes
//! 1024 --transfer-window 2`). Nothing here depends on how a move proceeds inside a group:
//! only "a move is in progress" as `slots_summary(..).moving` (what `tandem slots show`
//! prints) reports it.

mod support;

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::{Proc, RespClient, ViewService, certs, free_port, wait_for};
use tandem_check::{Budget, Model, Operation, Verdict, check_partitioned};
use tandem_kv::slots::key_slot;
use tandem_protocol::{ClusterMap, ConfigNum, GroupId};
use tandem_resp::Frame;
use tandem_runtime::identity::Role;
use tandem_runtime::status::slots_summary;

/// Replica groups, and servers in each.
const GROUPS: u32 = 3;
const GROUP_SIZE: usize = 2;
/// The smallest chunk the servers accept, and two in flight: many round trips per megabyte,
/// so a slow move, pinned here against changes of the defaults.
const TRANSFER_CHUNK_BYTES: &str = "1024";
const TRANSFER_WINDOW: &str = "2";
/// The slots moved: the first ones of the group owning slot 0 after the rebalance.
const MOVED: RangeInclusive<u16> = 0..=1999;
/// Keys preloaded into the moved slots, and the bytes of each value.
const PRELOAD_KEYS: usize = 20_000;
const PRELOAD_VALUE_BYTES: usize = 1000;
/// How long the move runs before the giver's primary is killed: long enough for the copy to
/// be under way, a small part of the move's duration (seconds).
const KILL_GIVER_AFTER: Duration = Duration::from_millis(300);
/// Keys of the checked load: in the moved slots, and elsewhere (giver, taker, third group).
const MOVING_KEYS: usize = 4;
const OTHER_KEYS_PER_PLACE: usize = 2;
/// Client threads on the moving keys and on the others.
const MOVING_THREADS: usize = 2;
const OTHER_THREADS: usize = 4;

/// A read/write register per key: `SET key v` and `GET key`, values unique numbers.
#[derive(Clone, Copy, Debug)]
struct Register;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RegisterInput {
    Set(u64),
    Get,
}

impl Model for Register {
    /// `None`: the key does not exist.
    type State = Option<u64>;
    type Input = RegisterInput;
    /// The value read (ignored for SET).
    type Output = Option<u64>;

    fn init(&self) -> Option<u64> {
        None
    }

    fn step(
        &self,
        state: &Option<u64>,
        input: &RegisterInput,
        output: &Option<u64>,
    ) -> Option<Option<u64>> {
        match input {
            RegisterInput::Set(value) => Some(Some(*value)),
            RegisterInput::Get => (output == state).then_some(*state),
        }
    }

    fn step_unobserved(&self, state: &Option<u64>, input: &RegisterInput) -> Vec<Option<u64>> {
        match input {
            RegisterInput::Set(value) => vec![Some(*value)],
            RegisterInput::Get => vec![*state],
        }
    }

    fn is_read_only(&self, input: &RegisterInput) -> bool {
        *input == RegisterInput::Get
    }
}

type Op = Operation<RegisterInput, Option<u64>>;

/// One server process and the group it serves.
struct Member {
    group: u32,
    port: u16,
    /// Where it serves Redis Cluster clients (`--client-listen`).
    client_port: u16,
    proc: Proc,
}

/// A view service, [`GROUPS`] groups of [`GROUP_SIZE`] servers, a coordinator.
struct Sharded {
    vs: ViewService,
    members: Vec<Member>,
    _coordinator: Proc,
    port: u16,
    /// Every server's client port, replacements included (for the direct-path client).
    client_ports: Arc<Mutex<Vec<u16>>>,
}

impl Sharded {
    /// Starts everything, spreads the slots evenly over the groups, and waits until no move is
    /// in progress and the coordinator serves.
    fn start() -> Sharded {
        let vs = ViewService::single();
        let mut members = Vec::new();
        for group in 0..GROUPS {
            for _ in 0..GROUP_SIZE {
                members.push(spawn_server(&vs, group, members.len()));
            }
        }
        let port = free_port();
        let coordinator = Proc::spawn(
            "mf-coord",
            &[
                "coordinator".into(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--viewserver".into(),
                vs.list(),
            ],
        );
        let client_ports = Arc::new(Mutex::new(members.iter().map(|m| m.client_port).collect()));
        let sharded = Sharded {
            vs,
            members,
            _coordinator: coordinator,
            port,
            client_ports,
        };
        assert!(
            wait_for(Duration::from_secs(30), || (0..GROUPS)
                .all(|g| sharded.whole(g))),
            "every group has a primary and a backup: {:?}",
            sharded.vs.status()
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let list: Vec<String> = sharded.vs.list().split(',').map(str::to_owned).collect();
        let spread = runtime.block_on(tandem_runtime::dev::spread_slots(
            &list,
            GROUPS as usize,
            Some(certs().admin()),
            Duration::from_secs(30),
        ));
        assert!(spread.is_ok(), "slots spread: {spread:?}");
        assert!(
            wait_for(Duration::from_secs(30), || sharded.map().is_some_and(|m| {
                m.config.num.0 >= 2 && m.config.covers_all() && moving(&m).is_empty()
            })),
            "the rebalance finished: {:?}",
            sharded.map()
        );
        assert!(
            wait_for(Duration::from_secs(15), || RespClient::connect(port)
                .and_then(|mut c| c.call(&["SET", "mf:ready", "1"]))
                .is_ok_and(|f| f == Frame::Simple("OK".into()))),
            "the coordinator serves"
        );
        sharded
    }

    /// The cluster map of the view service's applied table.
    fn map(&self) -> Option<Arc<ClusterMap>> {
        self.vs.status()?.cluster
    }

    /// [`Sharded::map`], asked again until the view service answers.
    fn map_now(&self) -> Arc<ClusterMap> {
        let mut map = None;
        let answered = wait_for(Duration::from_secs(10), || {
            map = self.map();
            map.is_some()
        });
        assert!(answered, "the view service answers with its cluster map");
        map.unwrap()
    }

    /// Index in `members` of the primary of `group`'s acknowledged view.
    fn primary(&self, group: u32) -> Option<usize> {
        let status = self.vs.status()?;
        let entry = status.groups.iter().find(|g| g.group == GroupId(group))?;
        let view = entry.view.as_ref().filter(|_| entry.acked)?;
        self.members.iter().position(|m| {
            m.group == group
                && m.proc.is_running()
                && view.primary.to_string() == format!("127.0.0.1:{}", m.port)
        })
    }

    /// `group`'s view is acknowledged and has a backup: every member holds the whole state
    /// (P6: a view with a new backup is acknowledged only once its copy is complete).
    fn whole(&self, group: u32) -> bool {
        self.vs.status().is_some_and(|s| {
            s.groups.iter().any(|g| {
                g.group == GroupId(group)
                    && g.acked
                    && g.view
                        .as_ref()
                        .is_some_and(|v| v.backups.len() + 1 == GROUP_SIZE)
            })
        })
    }

    /// The groups still taking on configuration `config`, as the status reports them; `None`
    /// if the view service did not answer or already has another configuration.
    fn moving_in(&self, config: ConfigNum) -> Option<Vec<u32>> {
        self.map()
            .filter(|m| m.config.num == config)
            .map(|m| moving(&m))
    }

    /// [`Sharded::moving_in`], asked again until the view service answers (a status query
    /// times out on a busy machine; that says nothing about the move).
    fn moving_now(&self, config: ConfigNum) -> Vec<u32> {
        let mut moving = None;
        let answered = wait_for(Duration::from_secs(10), || {
            moving = self.moving_in(config);
            moving.is_some()
        });
        assert!(
            answered,
            "the view service answers with configuration {config:?}"
        );
        moving.unwrap_or_default()
    }

    /// SIGKILLs `group`'s primary while configuration `config`'s move is in progress, and
    /// asserts that it was: the status said so just before the kill and still says so after
    /// it (a move only ever finishes: still in progress after means in progress at the kill).
    /// Then waits for the failover and starts a replacement server for the group.
    fn kill_primary_mid_move(&mut self, group: u32, config: ConfigNum, who: &str) {
        let mut victim = None;
        assert!(
            wait_for(Duration::from_secs(10), || {
                victim = self.primary(group);
                victim.is_some()
            }),
            "the {who} (group {group}) has a primary: {:?}",
            self.vs.status()
        );
        let victim = victim.unwrap();
        assert!(
            !self.moving_now(config).is_empty(),
            "the move had ended before the {who}'s primary was killed (make it slower)"
        );
        self.members[victim].proc.kill();
        let after = self.moving_now(config);
        assert!(
            !after.is_empty(),
            "the move ended while the {who}'s primary was being killed (make it slower)"
        );
        eprintln!("killed the {who}'s primary (group {group}) mid-move; groups moving: {after:?}");
        let failover = Instant::now();
        assert!(
            wait_for(Duration::from_secs(20), || self
                .primary(group)
                .is_some_and(|p| p != victim)),
            "the {who} (group {group}) failed over: {:?}",
            self.vs.status()
        );
        eprintln!(
            "the {who} failed over in {} ms",
            failover.elapsed().as_millis()
        );
        let replacement = spawn_server(&self.vs, group, self.members.len());
        self.client_ports
            .lock()
            .unwrap()
            .push(replacement.client_port);
        self.members.push(replacement);
    }
}

/// Starts a server of `group` copying in [`TRANSFER_CHUNK_BYTES`] chunks, [`TRANSFER_WINDOW`]
/// at a time.
fn spawn_server(vs: &ViewService, group: u32, index: usize) -> Member {
    let (port, client_port) = (free_port(), free_port());
    let args: Vec<String> = [
        "server",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--viewserver",
        &vs.list(),
        "--group",
        &group.to_string(),
        "--transfer-chunk-bytes",
        TRANSFER_CHUNK_BYTES,
        "--transfer-window",
        TRANSFER_WINDOW,
        "--client-listen",
        &format!("127.0.0.1:{client_port}"),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    Member {
        group,
        port,
        client_port,
        proc: Proc::spawn(&format!("mf-g{group}-s{index}"), &args),
    }
}

/// Groups still taking on the map's configuration (S3), as `tandem slots show` reports them.
fn moving(map: &ClusterMap) -> Vec<u32> {
    slots_summary(map).moving
}

/// Runs `tandem slots move --slots A-B --to GROUP` as an admin; panics unless it succeeds.
fn move_slots(vs: &ViewService, slots: &RangeInclusive<u16>, to: u32) {
    let mut args: Vec<String> = [
        "slots",
        "move",
        "--slots",
        &format!("{}-{}", slots.start(), slots.end()),
        "--to",
        &to.to_string(),
        "--viewserver",
        &vs.list(),
        "--timeout-ms",
        "20000",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(certs().flags(Role::Admin, "tests"));
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(&args)
        .output()
        .expect("run tandem slots move");
    assert!(
        out.status.success(),
        "tandem slots move: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first `n` keys `mf:k{i}` whose slot `wanted` accepts.
fn keys_where(n: usize, used: &mut usize, wanted: impl Fn(u16) -> bool) -> Vec<String> {
    let mut keys = Vec::new();
    while keys.len() < n {
        let key = format!("mf:k{used}");
        *used += 1;
        if wanted(key_slot(key.as_bytes())) {
            keys.push(key);
        }
    }
    keys
}

/// The value preloaded under key `n`.
fn preload_value(n: usize) -> String {
    let digits = format!("{n:08}|");
    digits.repeat(PRELOAD_VALUE_BYTES / digits.len())
}

/// The preloaded keys: `mf:fill{n}` in the moved slots.
fn preload_keys() -> Vec<(usize, String)> {
    (0..)
        .map(|n| (n, format!("mf:fill{n}")))
        .filter(|(_, key)| MOVED.contains(&key_slot(key.as_bytes())))
        .take(PRELOAD_KEYS)
        .collect()
}

/// Runs `commands` pipelined in batches on the coordinator; returns every reply in order.
fn pipelined(port: u16, commands: &[Vec<String>]) -> Vec<Frame> {
    let mut client = RespClient::connect(port).expect("connect to the coordinator");
    let mut replies = Vec::with_capacity(commands.len());
    for batch in commands.chunks(500) {
        for command in batch {
            let args: Vec<&str> = command.iter().map(String::as_str).collect();
            client.send(&args).expect("send a pipelined command");
        }
        for _ in batch {
            replies.push(client.read().expect("a pipelined reply"));
        }
    }
    replies
}

/// Client threads doing SETs of unique values and GETs through the coordinator, recording
/// every call; an error reply or a failed connection leaves its outcome unknown.
struct Load {
    start: Instant,
    stop: Arc<AtomicBool>,
    /// Per key index: the operations on it.
    history: Arc<Mutex<Vec<Vec<Op>>>>,
    keys: Arc<Vec<String>>,
    acked: Arc<AtomicU64>,
    /// Error replies by their first word, and failed connections or calls.
    unknown: Arc<Mutex<BTreeMap<String, u64>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `MOVING_THREADS` clients on the keys `0..moving` of `keys` and `OTHER_THREADS`
    /// on the rest.
    fn start(port: u16, keys: Vec<String>, moving: usize) -> Load {
        let mut load = Load {
            start: Instant::now(),
            stop: Arc::default(),
            history: Arc::new(Mutex::new(vec![Vec::new(); keys.len()])),
            keys: Arc::new(keys),
            acked: Arc::default(),
            unknown: Arc::default(),
            threads: Vec::new(),
        };
        let total = load.keys.len();
        for who in 0..MOVING_THREADS + OTHER_THREADS {
            let range = if who < MOVING_THREADS {
                0..moving
            } else {
                moving..total
            };
            load.threads.push(load.client(port, who, range));
        }
        load
    }

    fn micros(start: Instant) -> u64 {
        start.elapsed().as_micros() as u64
    }

    /// One client thread on the keys of `range`.
    fn client(&self, port: u16, who: usize, range: std::ops::Range<usize>) -> JoinHandle<()> {
        let (start, stop, history, keys, acked, unknown) = (
            self.start,
            self.stop.clone(),
            self.history.clone(),
            self.keys.clone(),
            self.acked.clone(),
            self.unknown.clone(),
        );
        std::thread::spawn(move || {
            let mut client: Option<RespClient> = None;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let key = range.start + (i as usize * 7 + who) % range.len();
                let value = (who as u64 + 1) * 1_000_000_000 + i;
                let input = if i.is_multiple_of(2) {
                    RegisterInput::Set(value)
                } else {
                    RegisterInput::Get
                };
                let c = match client.as_mut() {
                    Some(c) => c,
                    None => match RespClient::connect(port) {
                        Ok(c) => client.insert(c),
                        Err(_) => {
                            *unknown.lock().unwrap().entry("connect".into()).or_default() += 1;
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                    },
                };
                let (op, failure) = call(c, start, who, &keys[key], input);
                if op.ret.is_some() {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(failure) = failure {
                    if failure.starts_with("io") {
                        client = None;
                    }
                    *unknown.lock().unwrap().entry(failure).or_default() += 1;
                }
                history.lock().unwrap()[key].push(op);
            }
        })
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Waits until `more` further calls were answered.
    fn progress(&self, more: u64, deadline: Duration) -> bool {
        let before = self.acked();
        wait_for(deadline, || self.acked() >= before + more)
    }

    /// How many calls were made and answered between `from_us` and `to_us`.
    fn answered_between(&self, from_us: u64, to_us: u64) -> usize {
        let history = self.history.lock().unwrap();
        history
            .iter()
            .flatten()
            .filter(|o| o.call >= from_us && o.ret.as_ref().is_some_and(|(t, _)| *t <= to_us))
            .count()
    }

    /// Whether each of the first `n` keys had a SET called after `after_us` and answered.
    fn set_answered_after(&self, n: usize, after_us: u64) -> bool {
        self.history.lock().unwrap()[..n].iter().all(|ops| {
            ops.iter().any(|o| {
                matches!(o.input, RegisterInput::Set(_)) && o.ret.is_some() && o.call > after_us
            })
        })
    }

    /// Stops the clients, reads every key once more (retrying until a read is answered; each
    /// try is part of the history), and returns the history per key.
    fn finish(mut self, port: u16) -> Vec<Vec<Op>> {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            thread.join().expect("a load thread panicked");
        }
        let mut history = self.history.lock().unwrap().clone();
        for (index, key) in self.keys.iter().enumerate() {
            let answered = wait_for(Duration::from_secs(20), || {
                let Ok(mut client) = RespClient::connect(port) else {
                    return false;
                };
                let (op, _) = call(&mut client, self.start, 99, key, RegisterInput::Get);
                let answered = op.ret.is_some();
                history[index].push(op);
                answered
            });
            assert!(answered, "the final read of {key} was answered");
        }
        history
    }
}

/// Runs one SET or GET of `key` on `client` and records it. An error reply (`-TRYAGAIN` after
/// the coordinator's timeout, say) or a failed call leaves the outcome unknown: the write may
/// have happened, at any time after the call; the second part says why.
fn call(
    client: &mut RespClient,
    start: Instant,
    who: usize,
    key: &str,
    input: RegisterInput,
) -> (Op, Option<String>) {
    let value;
    let args: Vec<&str> = match input {
        RegisterInput::Set(v) => {
            value = v.to_string();
            vec!["SET", key, &value]
        }
        RegisterInput::Get => vec!["GET", key],
    };
    let called = Load::micros(start);
    let reply = client.call(&args);
    let returned = Load::micros(start);
    let (ret, failure) = match (input, reply) {
        (RegisterInput::Set(_), Ok(Frame::Simple(ok))) if ok == "OK" => (Some(None), None),
        (RegisterInput::Get, Ok(Frame::Null)) => (Some(None), None),
        (RegisterInput::Get, Ok(Frame::Bulk(bytes))) => {
            let text = String::from_utf8_lossy(&bytes);
            let read = text
                .parse()
                .unwrap_or_else(|_| panic!("GET {key} read {text:?}, which no client wrote"));
            (Some(Some(read)), None)
        }
        (_, Ok(Frame::Error(e))) => (None, Some(e.split(' ').next().unwrap_or("").to_owned())),
        (_, Ok(other)) => panic!("{args:?} answered {other:?}"),
        (_, Err(e)) => (None, Some(format!("io: {:?}", e.kind()))),
    };
    let op = Operation {
        client: who as u64,
        input,
        call: called,
        ret: ret.map(|output| (returned, output)),
    };
    (op, failure)
}

/// A client of the servers' client ports, as Redis Cluster clients are: it follows `-MOVED`,
/// retries `-TRYAGAIN` and `-CLUSTERDOWN`, and turns to another server when one stops
/// answering. Direct clients have no session (S8: a resent command may run twice), so it
/// writes each value under a fresh key, where running twice changes nothing; every key it
/// was told OK for must be readable at the end.
struct DirectWriter {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(String, String)>>,
}

/// How long the direct client keeps trying one write before it gives up on it and writes the
/// next key (so a key of a slot that is moving does not hold up those of the other slots).
const DIRECT_WRITE_DEADLINE: Duration = Duration::from_secs(2);

impl DirectWriter {
    fn start(ports: Arc<Mutex<Vec<u16>>>) -> DirectWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut acked = Vec::new();
            // Where each slot is served, as the -MOVED answers said (as cluster clients keep
            // it), and one connection per server; a slot not known yet goes to `target`.
            let mut owners: BTreeMap<u16, u16> = BTreeMap::new();
            let mut clients: BTreeMap<u16, RespClient> = BTreeMap::new();
            let mut target = 0usize;
            let mut n = 0u64;
            while !stopped.load(Ordering::Relaxed) {
                n += 1;
                let (key, value) = (format!("mf:d{n}"), format!("d{n}"));
                let slot = key_slot(key.as_bytes());
                let deadline = Instant::now() + DIRECT_WRITE_DEADLINE;
                while Instant::now() < deadline && !stopped.load(Ordering::Relaxed) {
                    let port = owners.get(&slot).copied().unwrap_or_else(|| {
                        let ports = ports.lock().unwrap();
                        ports[target % ports.len()]
                    });
                    if let std::collections::btree_map::Entry::Vacant(entry) = clients.entry(port)
                        && let Ok(client) = RespClient::connect(port)
                    {
                        entry.insert(client);
                    }
                    let reply = match clients.get_mut(&port) {
                        Some(client) => client.call(&["SET", &key, &value]),
                        None => Err(std::io::ErrorKind::ConnectionRefused.into()),
                    };
                    match reply {
                        Ok(Frame::Simple(ok)) if ok == "OK" => {
                            acked.push((key, value));
                            break;
                        }
                        Ok(Frame::Error(e)) if e.starts_with("MOVED ") => {
                            if let Some(to) = e.rsplit(':').next().and_then(|p| p.parse().ok()) {
                                owners.insert(slot, to);
                            }
                        }
                        Ok(Frame::Error(e))
                            if e.starts_with("TRYAGAIN") || e.starts_with("CLUSTERDOWN") =>
                        {
                            // Pace the retries of a slot that is moving or failing over.
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Ok(other) => panic!("SET {key} answered {other:?}"),
                        Err(_) => {
                            clients.remove(&port);
                            owners.remove(&slot);
                            target += 1;
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            }
            acked
        });
        DirectWriter { stop, thread }
    }

    /// Stops it; returns every (key, value) it was told OK for.
    fn finish(self) -> Vec<(String, String)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the direct client panicked")
    }
}

/// Keys whose final read shows an acknowledged write overwritten by nothing later: the final
/// read returned nothing, or a value whose SET completed before the last acknowledged SET was
/// even called.
fn lost_writes(keys: &[String], history: &[Vec<Op>]) -> Vec<String> {
    let mut lost = Vec::new();
    for (key, ops) in keys.iter().zip(history) {
        let Some(last_acked) = ops
            .iter()
            .filter(|o| matches!(o.input, RegisterInput::Set(_)) && o.ret.is_some())
            .max_by_key(|o| o.ret.as_ref().map(|(t, _)| *t))
        else {
            continue;
        };
        let last_read = ops
            .iter()
            .rev()
            .find(|o| o.input == RegisterInput::Get && o.ret.is_some())
            .and_then(|o| o.ret.as_ref())
            .map(|(_, value)| *value);
        let overwritten = |value: u64| {
            ops.iter().any(|o| {
                o.input == RegisterInput::Set(value)
                    && o.ret.as_ref().is_some_and(|(t, _)| *t < last_acked.call)
            })
        };
        match last_read {
            Some(Some(value)) if !overwritten(value) => {}
            other => lost.push(format!("{key}: last read {other:?} after {last_acked:?}")),
        }
    }
    lost
}

#[test]
fn s4_s6_s8_killing_the_givers_then_the_takers_primary_mid_move_loses_nothing() {
    let began = Instant::now();
    let mut cluster = Sharded::start();
    let map = cluster.map_now();
    let giver = map.config.owner(0).expect("slot 0 has an owner").0;
    assert!(
        MOVED
            .clone()
            .all(|s| map.config.owner(s) == Some(GroupId(giver))),
        "group {giver} owns every slot of {MOVED:?}: {:?}",
        map.config
    );
    let taker = map.config.owner(16_383).expect("slot 16383 has an owner").0;
    assert_ne!(taker, giver, "{:?}", map.config);
    let third = (0..GROUPS).find(|g| *g != giver && *g != taker).unwrap();

    // Preload the moved slots so that the move takes seconds.
    let preload = preload_keys();
    let sets: Vec<Vec<String>> = preload
        .iter()
        .map(|(n, key)| vec!["SET".into(), key.clone(), preload_value(*n)])
        .collect();
    let replies = pipelined(cluster.port, &sets);
    assert!(
        replies.iter().all(|r| *r == Frame::Simple("OK".into())),
        "every preloaded SET acknowledged: {:?}",
        replies.iter().find(|r| **r != Frame::Simple("OK".into()))
    );
    eprintln!(
        "preloaded {} keys ({} KB) in {:?}",
        preload.len(),
        preload.len() * PRELOAD_VALUE_BYTES / 1000,
        began.elapsed()
    );

    // The checked keys: some in the moved slots, some in each group's own.
    let owner = |slot: u16| map.config.owner(slot).map(|g| g.0);
    let mut used = 0;
    let mut keys = keys_where(MOVING_KEYS, &mut used, |s| MOVED.contains(&s));
    for place in [giver, taker, third] {
        keys.extend(keys_where(OTHER_KEYS_PER_PLACE, &mut used, |s| {
            !MOVED.contains(&s) && owner(s) == Some(place)
        }));
    }
    let load = Load::start(cluster.port, keys.clone(), MOVING_KEYS);
    let direct = DirectWriter::start(cluster.client_ports.clone());
    assert!(
        load.progress(200, Duration::from_secs(20)),
        "the load makes progress"
    );

    // The move, then each primary killed while it is in progress.
    let moved_at = Instant::now();
    let move_began_us = Load::micros(load.start);
    move_slots(&cluster.vs, &MOVED, taker);
    let config = cluster.map_now().config.num;
    assert!(config > map.config.num, "a new configuration");
    let in_progress = || !cluster.moving_now(config).is_empty();
    assert!(
        wait_for(Duration::from_secs(10), in_progress),
        "the status shows the move in progress"
    );
    let under_way = Instant::now();
    eprintln!(
        "the move under way {} ms after `tandem slots move`",
        moved_at.elapsed().as_millis()
    );
    assert!(
        wait_for(Duration::from_secs(10), || under_way.elapsed()
            >= KILL_GIVER_AFTER
            && in_progress()),
        "the move was still in progress {KILL_GIVER_AFTER:?} after it began (make it slower)"
    );
    eprintln!(
        "killing the giver's primary {} ms after `tandem slots move`",
        moved_at.elapsed().as_millis()
    );
    cluster.kill_primary_mid_move(giver, config, "giver");
    eprintln!(
        "killing the taker's primary {} ms after `tandem slots move`",
        moved_at.elapsed().as_millis()
    );
    cluster.kill_primary_mid_move(taker, config, "taker");

    // The move completes, every group is whole again, and the load still gets answers.
    assert!(
        wait_for(Duration::from_secs(40), || cluster
            .moving_in(config)
            .is_some_and(|m| m.is_empty())),
        "the move completed: {:?}",
        cluster.map().map(|m| slots_summary(&m))
    );
    let move_ended_us = Load::micros(load.start);
    eprintln!(
        "the move completed {} ms after `tandem slots move`",
        moved_at.elapsed().as_millis()
    );
    assert!(
        wait_for(Duration::from_secs(40), || (0..GROUPS)
            .all(|g| cluster.whole(g))),
        "every group has two servers again: {:?}",
        cluster.vs.status()
    );
    assert!(
        load.progress(100, Duration::from_secs(20)),
        "the load goes on after the move"
    );
    assert!(
        wait_for(Duration::from_secs(20), || load
            .set_answered_after(MOVING_KEYS, move_ended_us)),
        "every moved key is written again after the move"
    );
    assert!(
        load.answered_between(move_began_us, move_ended_us) > 0,
        "the load got answers during the move"
    );
    let unknown = load.unknown.lock().unwrap().clone();
    let acked = load.acked();
    let history = load.finish(cluster.port);
    let direct_acked = direct.finish();

    // The map covers every slot; the moved ones are the taker's.
    let map = cluster.map_now();
    assert!(map.config.covers_all(), "{:?}", map.config);
    assert!(
        MOVED
            .clone()
            .all(|s| map.config.owner(s) == Some(GroupId(taker))),
        "{:?}",
        map.config
    );

    // Linearizable per key (R2 across the move: S4-S6, S8), and nothing acknowledged lost.
    let ops: usize = history.iter().map(Vec::len).sum();
    let verdict = check_partitioned(&Register, &history, Budget::default());
    let flat: Vec<Op> = history.concat();
    match &verdict {
        Verdict::Linearizable => {}
        Verdict::NotLinearizable(counterexample) => {
            panic!("not linearizable:\n{}", counterexample.describe(&flat))
        }
        Verdict::Unknown => panic!("the checker could not decide on {ops} operations"),
    }
    // The history of each moved key crosses the move: writes answered by the giver before it,
    // and by the taker after it (else the check above says little about the move).
    for (key, ops) in keys.iter().zip(&history).take(MOVING_KEYS) {
        let answered_set = |when: &dyn Fn(&Op) -> bool| {
            ops.iter()
                .any(|o| matches!(o.input, RegisterInput::Set(_)) && o.ret.is_some() && when(o))
        };
        assert!(
            answered_set(&|o| o.ret.as_ref().is_some_and(|(t, _)| *t < move_began_us)),
            "{key}: a SET answered before the move"
        );
        assert!(
            answered_set(&|o| o.call > move_ended_us),
            "{key}: a SET answered after the move"
        );
    }
    let lost = lost_writes(&keys, &history);
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:#?}");
    let gets: Vec<Vec<String>> = preload
        .iter()
        .map(|(_, key)| vec!["GET".into(), key.clone()])
        .collect();
    let replies = pipelined(cluster.port, &gets);
    let missing: Vec<&str> = preload
        .iter()
        .zip(&replies)
        .filter(|((n, _), r)| **r != Frame::Bulk(preload_value(*n).into()))
        .map(|((_, key), _)| key.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} preloaded keys lost or changed, e.g. {:?}",
        missing.len(),
        preload.len(),
        &missing[..missing.len().min(5)]
    );

    // The direct client's acknowledged writes are all there (the moved slots' among them).
    let gets: Vec<Vec<String>> = direct_acked
        .iter()
        .map(|(key, _)| vec!["GET".into(), key.clone()])
        .collect();
    let replies = pipelined(cluster.port, &gets);
    let lost: Vec<&str> = direct_acked
        .iter()
        .zip(&replies)
        .filter(|((_, value), r)| **r != Frame::Bulk(value.clone().into()))
        .map(|((key, _), _)| key.as_str())
        .collect();
    let direct_moved = direct_acked
        .iter()
        .filter(|(key, _)| MOVED.contains(&key_slot(key.as_bytes())))
        .count();
    assert!(
        direct_moved > 0,
        "the direct client wrote into the moved slots"
    );
    assert!(
        lost.is_empty(),
        "direct writes acknowledged and lost: {lost:?}"
    );

    // Every group serves: a write and a read on a key of each.
    for group in 0..GROUPS {
        let key = keys_where(1, &mut used, |s| {
            map.config.owner(s) == Some(GroupId(group))
        })
        .pop()
        .unwrap();
        let mut client = RespClient::connect(cluster.port).expect("connect");
        assert_eq!(
            client.call(&["SET", &key, "served"]).ok(),
            Some(Frame::Simple("OK".into())),
            "group {group} serves"
        );
        assert_eq!(
            client.call(&["GET", &key]).ok(),
            Some(Frame::Bulk("served".into())),
            "group {group} serves"
        );
    }
    eprintln!(
        "{ops} operations linearizable ({acked} answered during the load, unknown outcomes: \
         {unknown:?}); {} preloaded keys intact; {} direct writes acknowledged and intact \
         ({direct_moved} in the moved slots); {} s in all",
        preload.len(),
        direct_acked.len(),
        began.elapsed().as_secs()
    );
}

/// The checks above catch what they are for: a write acknowledged and then missing from a
/// later read is neither linearizable nor passed by [`lost_writes`], and a read of an
/// overwritten value neither.
#[test]
fn r2_the_register_check_and_the_lost_write_check_catch_a_lost_write() {
    let op = |input, call, ret: Option<(u64, Option<u64>)>| Operation {
        client: 0,
        input,
        call,
        ret,
    };
    let keys = ["k".to_owned()];
    let fine = vec![
        op(RegisterInput::Set(1), 0, Some((10, None))),
        op(RegisterInput::Set(2), 5, None),
        op(RegisterInput::Get, 20, Some((30, Some(2)))),
    ];
    assert!(
        check_partitioned(&Register, std::slice::from_ref(&fine), Budget::default())
            .is_linearizable()
    );
    assert!(lost_writes(&keys, &[fine]).is_empty());
    for last_read in [None, Some(1)] {
        let lost = vec![
            op(RegisterInput::Set(1), 0, Some((10, None))),
            op(RegisterInput::Set(2), 20, Some((30, None))),
            op(RegisterInput::Get, 40, Some((50, last_read))),
        ];
        let verdict = check_partitioned(&Register, std::slice::from_ref(&lost), Budget::default());
        assert!(
            matches!(verdict, Verdict::NotLinearizable(_)),
            "{last_read:?}"
        );
        assert_eq!(lost_writes(&keys, &[lost]).len(), 1, "{last_read:?}");
    }
}
