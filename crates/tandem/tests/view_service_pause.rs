//! V3 with real processes: a view service that was itself frozen (SIGSTOP, as a stalled VM or a
//! debugger would) must not blame the servers for the silence it did not hear while it was
//! stopped. A server is dead only after `dead_pings` ping intervals of silence the view service
//! was running to hear; a pause of the view service alone must change no view.
//!
//! The view service is not on the request path (the coordinator talks to the primary of the
//! view it already knows), so client requests keep succeeding through the pause: every request
//! must succeed, and every acknowledged write must read back.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::{Cluster, RespClient, status, status_history, wait_for};
use tandem_resp::Frame;

/// How often the view number is polled while watching for a view change: often enough to see
/// one within a ping interval, rarely enough that the `tandem status` processes do not compete
/// with the cluster for the two cores.
const STATUS_POLL_MS: u64 = 100;

/// Failure descriptions kept for the report; the rest are only counted.
const FAILURES_KEPT: usize = 10;

/// Polls the view number for `window`; returns the first number seen that differs from
/// `baseline`, or `None` if the view stayed put for the whole window.
fn view_change_within(vs_port: u16, baseline: u64, window: Duration) -> Option<u64> {
    let end = Instant::now() + window;
    loop {
        if let Some(now) = status(vs_port).map(|s| s.viewnum)
            && now != baseline
        {
            return Some(now);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(STATUS_POLL_MS));
    }
}

/// The view number once the view service answers (within 10 s).
fn current_view(vs_port: u16) -> u64 {
    let mut viewnum = None;
    assert!(
        wait_for(Duration::from_secs(10), || {
            viewnum = status(vs_port).map(|s| s.viewnum);
            viewnum.is_some()
        }),
        "the view service did not answer `tandem status`"
    );
    viewnum.expect("answered")
}

/// What the client threads saw.
#[derive(Default)]
struct Outcome {
    /// (client, sequence number) of every acknowledged SET of `pause:<client>:<seq>`.
    acknowledged: Vec<(usize, u64)>,
    /// Requests that failed: error replies, broken connections, wrong values read.
    failed: u64,
    /// The first few failures, described.
    failures: Vec<String>,
}

impl Outcome {
    fn fail(&mut self, description: String) {
        self.failed += 1;
        if self.failures.len() < FAILURES_KEPT {
            self.failures.push(description);
        }
    }
}

fn key_value(client: usize, seq: u64) -> (String, String) {
    (format!("pause:{client}:{seq}"), format!("v{seq}"))
}

/// Client threads through the coordinator, each writing a fresh key and reading it back, in a
/// loop until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    /// Successful requests so far (SETs and GETs).
    succeeded: Arc<AtomicU64>,
    outcome: Arc<Mutex<Outcome>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, clients: usize) -> Load {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let succeeded = Arc::new(AtomicU64::new(0));
        let outcome: Arc<Mutex<Outcome>> = Arc::default();
        let threads = (0..clients)
            .map(|who| {
                let (stop, succeeded, outcome) = (stop.clone(), succeeded.clone(), outcome.clone());
                std::thread::spawn(move || {
                    client_loop(port, who, started, &stop, &succeeded, &outcome)
                })
            })
            .collect();
        Load {
            stop,
            succeeded,
            outcome,
            threads,
        }
    }

    fn succeeded(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed)
    }

    fn finish(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("client thread");
        }
        std::mem::take(&mut *self.outcome.lock().unwrap())
    }
}

fn client_loop(
    port: u16,
    who: usize,
    started: Instant,
    stop: &AtomicBool,
    succeeded: &AtomicU64,
    outcome: &Mutex<Outcome>,
) {
    let mut client: Option<RespClient> = None;
    let mut seq = 0u64;
    let fail = |what: String| {
        let at_ms = started.elapsed().as_millis();
        outcome
            .lock()
            .unwrap()
            .fail(format!("client {who} at {at_ms} ms: {what}"));
    };
    while !stop.load(Ordering::Relaxed) {
        let c = match client.as_mut() {
            Some(c) => c,
            None => match RespClient::connect(port) {
                Ok(c) => client.insert(c),
                Err(e) => {
                    fail(format!("connecting to the coordinator: {e}"));
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            },
        };
        seq += 1;
        let (key, value) = key_value(who, seq);
        match c.call(&["SET", &key, &value]) {
            Ok(Frame::Simple(ok)) if ok == "OK" => {
                outcome.lock().unwrap().acknowledged.push((who, seq));
                succeeded.fetch_add(1, Ordering::Relaxed);
            }
            Ok(other) => {
                fail(format!("SET {key}: {other:?}"));
                continue;
            }
            Err(e) => {
                fail(format!("SET {key}: {e}"));
                client = None;
                continue;
            }
        }
        match c.call(&["GET", &key]) {
            Ok(Frame::Bulk(got)) if got.as_ref() == value.as_bytes() => {
                succeeded.fetch_add(1, Ordering::Relaxed);
            }
            Ok(other) => fail(format!("GET {key}: expected {value}, got {other:?}")),
            Err(e) => {
                fail(format!("GET {key}: {e}"));
                client = None;
            }
        }
    }
}

/// Reads every acknowledged write back (pipelined); returns descriptions of those missing or
/// wrong.
fn lost_writes(port: u16, acknowledged: &[(usize, u64)]) -> Vec<String> {
    let mut client = RespClient::connect(port).expect("connect to coordinator");
    let mut lost = Vec::new();
    for chunk in acknowledged.chunks(256) {
        for &(who, seq) in chunk {
            client.send(&["GET", &key_value(who, seq).0]).unwrap();
        }
        for &(who, seq) in chunk {
            let (key, value) = key_value(who, seq);
            match client.read().expect("read back") {
                Frame::Bulk(got) if got.as_ref() == value.as_bytes() => {}
                other => lost.push(format!("{key}: expected {value}, got {other:?}")),
            }
        }
    }
    lost
}

/// SIGSTOPs the view service for `pause`, then SIGCONTs it.
fn pause_view_service(cluster: &Cluster, pause: Duration) {
    cluster.vs.signal("STOP");
    // The pause itself is the experiment, not a wait for something to happen.
    std::thread::sleep(pause);
    cluster.vs.signal("CONT");
}

#[test]
fn v3_view_service_paused_two_seconds_under_load_changes_no_view() {
    // A primary, a backup, and an idle spare (the default target is one backup, V8): the
    // spare is what a spurious failover would take in.
    let cluster = Cluster::start(3, &[]);
    assert!(
        wait_for(Duration::from_secs(15), || status(cluster.vs_port)
            .is_some_and(|s| s.acked
                && s.backups.len() == 1
                && s.idle.len() == 1)),
        "the spare server joined as idle: {:?}",
        status(cluster.vs_port)
    );
    let baseline = current_view(cluster.vs_port);
    let load = Load::start(cluster.port, 4);
    assert!(
        wait_for(Duration::from_secs(10), || load.succeeded() > 200),
        "load started"
    );

    let before_pause = load.succeeded();
    pause_view_service(&cluster, Duration::from_secs(2));
    let during_pause = load.succeeded() - before_pause;
    // Load goes on for 3 s after SIGCONT: a view service that blames the servers for its own
    // silence changes the view on its first tick after waking up.
    let changed_to = view_change_within(cluster.vs_port, baseline, Duration::from_secs(3));
    let after_pause = load.succeeded();
    let outcome = load.finish();
    let lost = lost_writes(cluster.port, &outcome.acknowledged);

    let mut violations = Vec::new();
    if let Some(viewnum) = changed_to {
        violations.push(format!(
            "V3: the view changed from {baseline} to {viewnum} although every server was \
             running; views:\n{}",
            status_history(cluster.vs_port)
        ));
    }
    if during_pause == 0 {
        violations.push(
            "no request succeeded while the view service was stopped: it is not on the \
             request path, so clients must not wait for it"
                .to_string(),
        );
    }
    if outcome.failed > 0 {
        violations.push(format!(
            "{} requests failed (first ones: {:#?})",
            outcome.failed, outcome.failures
        ));
    }
    if !lost.is_empty() {
        violations.push(format!(
            "R2: {} of {} acknowledged writes lost (first ones: {:#?})",
            lost.len(),
            outcome.acknowledged.len(),
            &lost[..lost.len().min(FAILURES_KEPT)]
        ));
    }
    assert!(
        violations.is_empty(),
        "{} requests succeeded before the pause, {during_pause} during it, {} after it:\n{}",
        before_pause,
        after_pause - before_pause - during_pause,
        violations.join("\n")
    );
    assert!(outcome.acknowledged.len() > 100, "too little load to judge");
}

#[test]
fn v3_view_service_paused_under_a_second_keeps_its_two_server_view() {
    // The reported reproduction: two servers, no client load, the view service stopped for
    // 0.8 s (longer than the 0.5 s failure detection, shorter than a second).
    let cluster = Cluster::start(2, &[]);
    let baseline = current_view(cluster.vs_port);
    pause_view_service(&cluster, Duration::from_millis(800));
    if let Some(viewnum) = view_change_within(cluster.vs_port, baseline, Duration::from_secs(2)) {
        panic!(
            "V3: the view changed from {baseline} to {viewnum} although both servers were \
             running; views:\n{}",
            status_history(cluster.vs_port)
        );
    }
    let after = status(cluster.vs_port).expect("status");
    assert!(
        after.acked && after.backups.len() == 1,
        "the view lost its backup: {after:?}"
    );
}
