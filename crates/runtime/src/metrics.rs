//! Metrics for `GET /metrics`, in the Prometheus text format (version 0.0.4).
//!
//! Everything recorded on a hot path is a relaxed atomic: counters, and histograms with fixed
//! bucket bounds whose buckets are atomic counters too. No lock is taken per request; the text
//! is produced only when scraped. Values that a role's task owns (a replica's counters, the view
//! service's table) are read from the snapshot that task publishes, at scrape time.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tandem_kv::Command;
use tandem_protocol::Outcome;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A histogram with fixed upper bounds (`le`), Prometheus style: each observation increments
/// the first bucket whose bound holds it; the cumulative counts are computed when rendered.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, plus the overflow bucket (`+Inf`).
    buckets: Box<[AtomicU64]>,
    /// Sum of observations, in millionths of the unit (integers keep it atomic).
    sum_micros: AtomicU64,
}

/// Latency bounds in seconds: 100 µs to 10 s.
pub const LATENCY_BOUNDS_S: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Size bounds (operations per batch, commands per pipeline).
pub const SIZE_BOUNDS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

impl Histogram {
    /// An empty histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "ascending bounds");
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = (value.max(0.0) * 1e6) as u64;
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Records a duration in seconds.
    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(elapsed.as_secs_f64());
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }
}

/// Builds one exposition: `# HELP`/`# TYPE` once per family, then its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family of kind `kind` ("counter", "gauge", "histogram").
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Exposition {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        self
    }

    /// One sample; `labels` are `(name, value)` pairs, values escaped here.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Exposition {
        self.text.push_str(name);
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", format_value(value));
        self
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) -> &mut Exposition {
        self.family(name, kind, help).sample(name, &[], value)
    }

    /// Every sample of one histogram (cumulative buckets, `_sum`, `_count`); the family must
    /// have been started with kind "histogram".
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], histogram: &Histogram) {
        let mut cumulative = 0;
        for (i, bucket) in histogram.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = histogram
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| format_value(*b));
            let _ = write!(self.text, "{name}_bucket");
            write_labels(&mut self.text, labels, Some(&le));
            let _ = writeln!(self.text, " {cumulative}");
        }
        let sum = histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = write!(self.text, "{name}_sum");
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", format_value(sum));
        let _ = write!(self.text, "{name}_count");
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {cumulative}");
    }

    /// The text.
    pub fn finish(self) -> String {
        self.text
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    let le = le.map(|le| ("le", le));
    for (name, value) in labels.iter().copied().chain(le) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

fn format_value(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// The command names counted individually; anything else is counted as "other".
const COMMAND_NAMES: &[&str] = &[
    "append",
    "dbsize",
    "decr",
    "decrby",
    "del",
    "exists",
    "expire",
    "flushall",
    "flushdb",
    "get",
    "getdel",
    "getset",
    "hdel",
    "hget",
    "hgetall",
    "hincrby",
    "hlen",
    "hset",
    "incr",
    "incrby",
    "keys",
    "llen",
    "lpop",
    "lpush",
    "lrange",
    "mget",
    "mset",
    "persist",
    "pexpire",
    "pttl",
    "randomkey",
    "rpop",
    "rpush",
    "scan",
    "set",
    "setnx",
    "strlen",
    "ttl",
    "type",
];
const OTHER_COMMAND: usize = COMMAND_NAMES.len();
const COMMAND_SLOTS: usize = COMMAND_NAMES.len() + 1;

/// Outcome of one command as the client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CommandOutcome {
    Ok = 0,
    /// The store answered with an error reply (wrong type, bad argument).
    Error = 1,
    /// No answer within the request timeout (C3): the client got `-TRYAGAIN`.
    Timeout = 2,
}
const OUTCOMES: [&str; 3] = ["ok", "error", "timeout"];

fn command_slot(name: &str) -> usize {
    COMMAND_NAMES.binary_search(&name).unwrap_or(OTHER_COMMAND)
}

/// Commands of one pipeline batch in flight, remembered so that each one is counted with its
/// own outcome when the batch completes. No allocation for batches of up to 32 commands.
#[derive(Debug)]
pub struct BatchTimer {
    started: std::time::Instant,
    inline: [u8; 32],
    len: usize,
    spilled: Vec<u8>,
}

impl BatchTimer {
    fn slots(&self) -> &[u8] {
        if self.spilled.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }
}

/// Metrics of a coordinator (the Redis front end).
#[derive(Debug)]
pub struct CoordinatorMetrics {
    /// `[command][outcome]`.
    commands: Vec<[Counter; 3]>,
    /// Requests (pipeline batches) by outcome: ok, timeout.
    requests_ok: Counter,
    requests_timed_out: Counter,
    /// Latency of one batch, from submission to the clerk until its outcome.
    latency: Histogram,
    /// Commands per batch.
    batch_commands: Histogram,
    /// Client connections accepted since start.
    pub connections_accepted: Counter,
    /// Client connections refused or failed at accept.
    pub accept_errors: Counter,
}

impl Default for CoordinatorMetrics {
    fn default() -> Self {
        CoordinatorMetrics {
            commands: (0..COMMAND_SLOTS).map(|_| Default::default()).collect(),
            requests_ok: Counter::default(),
            requests_timed_out: Counter::default(),
            latency: Histogram::new(LATENCY_BOUNDS_S),
            batch_commands: Histogram::new(SIZE_BOUNDS),
            connections_accepted: Counter::default(),
            accept_errors: Counter::default(),
        }
    }
}

impl CoordinatorMetrics {
    /// Call before a batch is submitted; pass the result to [`CoordinatorMetrics::finish_batch`].
    pub fn start_batch(&self, cmds: &[Command]) -> BatchTimer {
        let mut timer = BatchTimer {
            started: std::time::Instant::now(),
            inline: [0; 32],
            len: cmds.len().min(32),
            spilled: Vec::new(),
        };
        if cmds.len() <= 32 {
            for (slot, cmd) in timer.inline.iter_mut().zip(cmds) {
                *slot = command_slot(cmd.name()) as u8;
            }
        } else {
            timer.spilled = cmds.iter().map(|c| command_slot(c.name()) as u8).collect();
        }
        timer
    }

    /// Records a finished batch: its latency and each command's outcome.
    pub fn finish_batch(&self, timer: BatchTimer, outcome: &Outcome) {
        self.latency.observe_duration(timer.started.elapsed());
        let slots = timer.slots();
        self.batch_commands.observe(slots.len() as f64);
        match outcome {
            Outcome::Replies(replies) => {
                self.requests_ok.inc();
                for (i, slot) in slots.iter().enumerate() {
                    let failed = replies
                        .get(i)
                        .is_some_and(|r| matches!(r, tandem_kv::Reply::Error(_)));
                    let outcome = if failed {
                        CommandOutcome::Error
                    } else {
                        CommandOutcome::Ok
                    };
                    self.commands[usize::from(*slot)][outcome as usize].inc();
                }
            }
            Outcome::TimedOut => {
                self.requests_timed_out.inc();
                for slot in slots {
                    self.commands[usize::from(*slot)][CommandOutcome::Timeout as usize].inc();
                }
            }
        }
    }

    /// Batches answered, and batches that timed out.
    pub fn requests(&self) -> (u64, u64) {
        (self.requests_ok.get(), self.requests_timed_out.get())
    }

    /// Commands counted, over every command and outcome.
    pub fn commands_total(&self) -> u64 {
        self.commands.iter().flatten().map(Counter::get).sum()
    }

    /// Appends every coordinator family to `out`.
    pub fn render(&self, out: &mut Exposition) {
        out.family(
            "tandem_coordinator_commands_total",
            "counter",
            "Commands answered, by command and outcome (ok, error reply, timeout).",
        );
        for (slot, counters) in self.commands.iter().enumerate() {
            let name = COMMAND_NAMES.get(slot).copied().unwrap_or("other");
            for (outcome, counter) in OUTCOMES.iter().zip(counters) {
                let value = counter.get();
                if value > 0 {
                    out.sample(
                        "tandem_coordinator_commands_total",
                        &[("command", name), ("outcome", outcome)],
                        value as f64,
                    );
                }
            }
        }
        out.family(
            "tandem_coordinator_requests_total",
            "counter",
            "Pipeline batches sent through the clerk, by outcome.",
        )
        .sample(
            "tandem_coordinator_requests_total",
            &[("outcome", "ok")],
            self.requests_ok.get() as f64,
        )
        .sample(
            "tandem_coordinator_requests_total",
            &[("outcome", "timeout")],
            self.requests_timed_out.get() as f64,
        );
        out.family(
            "tandem_coordinator_request_duration_seconds",
            "histogram",
            "Time from submitting a batch to its outcome, failover retries included.",
        )
        .histogram(
            "tandem_coordinator_request_duration_seconds",
            &[],
            &self.latency,
        );
        out.family(
            "tandem_coordinator_batch_commands",
            "histogram",
            "Commands per pipeline batch.",
        )
        .histogram(
            "tandem_coordinator_batch_commands",
            &[],
            &self.batch_commands,
        );
        out.single(
            "tandem_coordinator_connections_accepted_total",
            "counter",
            "Client connections accepted.",
            self.connections_accepted.get() as f64,
        );
    }
}

/// Metrics of a replica server recorded by the runtime as messages pass.
#[derive(Debug)]
pub struct ServerMetrics {
    /// Operations per forward frame sent to a backup.
    pub forward_batch: Histogram,
    /// Bytes of state-transfer chunks sent.
    pub transfer_bytes: Counter,
    /// Bytes sent, every message kind.
    pub bytes_sent: Counter,
    /// Pings sent to the view service.
    pub pings_sent: Counter,
    /// Requests refused because this server is not the primary (P1).
    pub requests_rejected: Counter,
    /// Requests the primary could not confirm with its backups (P4), or refused as busy.
    pub requests_failed: Counter,
    /// State transfers started / finished as primary.
    pub transfers_started: Counter,
    /// State transfers whose backup installed the snapshot.
    pub transfers_finished: Counter,
    /// View changes this server moved through.
    pub views_seen: Counter,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics {
            forward_batch: Histogram::new(SIZE_BOUNDS),
            transfer_bytes: Counter::default(),
            bytes_sent: Counter::default(),
            pings_sent: Counter::default(),
            requests_rejected: Counter::default(),
            requests_failed: Counter::default(),
            transfers_started: Counter::default(),
            transfers_finished: Counter::default(),
            views_seen: Counter::default(),
        }
    }
}

impl ServerMetrics {
    /// Appends every family recorded by the runtime to `out`.
    pub fn render(&self, out: &mut Exposition) {
        out.family(
            "tandem_server_forward_batch_ops",
            "histogram",
            "Operations per forward frame sent to a backup (group commit).",
        )
        .histogram("tandem_server_forward_batch_ops", &[], &self.forward_batch);
        out.single(
            "tandem_server_transfer_bytes_total",
            "counter",
            "Bytes of state-transfer chunks sent (P6).",
            self.transfer_bytes.get() as f64,
        );
        out.single(
            "tandem_server_sent_bytes_total",
            "counter",
            "Bytes of internal frames sent.",
            self.bytes_sent.get() as f64,
        );
        out.single(
            "tandem_server_pings_sent_total",
            "counter",
            "Pings sent to the view service (V2).",
            self.pings_sent.get() as f64,
        );
        out.family(
            "tandem_server_request_errors_total",
            "counter",
            "Requests answered with an error, by kind.",
        )
        .sample(
            "tandem_server_request_errors_total",
            &[("kind", "wrong_server")],
            self.requests_rejected.get() as f64,
        )
        .sample(
            "tandem_server_request_errors_total",
            &[("kind", "unconfirmed_or_busy")],
            self.requests_failed.get() as f64,
        );
        out.family(
            "tandem_server_transfers_total",
            "counter",
            "State transfers as primary, by phase.",
        )
        .sample(
            "tandem_server_transfers_total",
            &[("phase", "started")],
            self.transfers_started.get() as f64,
        )
        .sample(
            "tandem_server_transfers_total",
            &[("phase", "finished")],
            self.transfers_finished.get() as f64,
        );
        out.single(
            "tandem_server_view_changes_total",
            "counter",
            "Views this server moved into.",
            self.views_seen.get() as f64,
        );
    }
}

/// Why a view changed, as a small fixed label set (the full reason is in the history).
pub const VIEW_CHANGE_REASONS: &[&str] = &[
    "first_primary",
    "primary_missed_pings",
    "primary_restarted",
    "primary_never_pinged",
    "backup_missed_pings",
    "backup_restarted",
    "backup_never_pinged",
    "backup_added",
];

/// Metrics of the view service recorded by its task.
#[derive(Debug)]
pub struct ViewServiceMetrics {
    /// Pings received (V2).
    pub pings: Counter,
    /// `GetView` queries from coordinators (C1).
    pub view_queries: Counter,
    /// `GetStatus` queries from operator tools.
    pub status_queries: Counter,
    /// View changes, indexed like [`VIEW_CHANGE_REASONS`].
    view_changes: Vec<Counter>,
    /// Views acknowledged by their primary (V6).
    pub acks: Counter,
}

impl Default for ViewServiceMetrics {
    fn default() -> Self {
        ViewServiceMetrics {
            pings: Counter::default(),
            view_queries: Counter::default(),
            status_queries: Counter::default(),
            view_changes: VIEW_CHANGE_REASONS
                .iter()
                .map(|_| Counter::default())
                .collect(),
            acks: Counter::default(),
        }
    }
}

impl ViewServiceMetrics {
    /// Counts one cause of a view change under its label (one of [`VIEW_CHANGE_REASONS`]); a
    /// change folding several causes is counted once per cause.
    pub fn view_changed(&self, label: &'static str) {
        if let Some(index) = VIEW_CHANGE_REASONS.iter().position(|r| *r == label) {
            self.view_changes[index].inc();
        }
    }

    /// Appends every family recorded by the task to `out`.
    pub fn render(&self, out: &mut Exposition) {
        out.single(
            "tandem_viewservice_pings_total",
            "counter",
            "Pings received from servers (V2).",
            self.pings.get() as f64,
        );
        out.single(
            "tandem_viewservice_view_queries_total",
            "counter",
            "GetView queries received from coordinators (C1).",
            self.view_queries.get() as f64,
        );
        out.single(
            "tandem_viewservice_status_queries_total",
            "counter",
            "GetStatus queries received from operator tools.",
            self.status_queries.get() as f64,
        );
        out.family(
            "tandem_viewservice_view_changes_total",
            "counter",
            "View changes, by cause (a change folding several causes counts under each).",
        );
        for (reason, counter) in VIEW_CHANGE_REASONS.iter().zip(&self.view_changes) {
            out.sample(
                "tandem_viewservice_view_changes_total",
                &[("reason", reason)],
                counter.get() as f64,
            );
        }
        out.single(
            "tandem_viewservice_acks_total",
            "counter",
            "Views acknowledged by their primary (V6).",
            self.acks.get() as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_are_sorted_for_binary_search() {
        assert!(COMMAND_NAMES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(command_slot("set"), 34);
        assert_eq!(command_slot("nosuch"), OTHER_COMMAND);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&[1.0, 2.0]);
        h.observe(0.5);
        h.observe(1.0);
        h.observe(1.5);
        h.observe(9.0);
        let mut out = Exposition::new();
        out.family("x", "histogram", "test").histogram("x", &[], &h);
        let text = out.finish();
        assert!(text.contains("x_bucket{le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("x_bucket{le=\"2\"} 3\n"), "{text}");
        assert!(text.contains("x_bucket{le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.contains("x_count 4\n"), "{text}");
        assert!(text.contains("x_sum 12\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = Exposition::new();
        out.sample("m", &[("k", "a\"b\\c")], 1.0);
        assert_eq!(out.finish(), "m{k=\"a\\\"b\\\\c\"} 1\n");
    }
}
