//! Metrics for `GET /metrics`, kept with the `prometheus-client` crate and encoded by it in the
//! Prometheus text format (version 0.0.4).
//!
//! What a hot path records takes no lock and allocates nothing:
//! - counters are prometheus-client's `Counter` (an `Arc`'d atomic). A labelled counter is a
//!   child of a `Family`, resolved once when the metrics are built and then held as a handle:
//!   `Family::get_or_create` takes the family's lock and allocates a label set, so it is never
//!   called per request;
//! - histograms are this module's [`Histogram`] (atomic buckets), encoded through the crate's
//!   `EncodeMetric`: the crate's own `Histogram` takes a mutex on every observation.
//!
//! Each role's recorded metrics live in a `Registry` built once with them. Values that a role's
//! task owns (a replica's counters, the view service's table) are read from the snapshot that
//! task publishes, at scrape time, and added to the scrape's [`Exposition`] as families of
//! samples, which prometheus-client encodes too. A scrape never touches a core.
//!
//! Names and help texts are written here as they are exposed (`_total` ending a counter's name,
//! a full stop ending every help text): prometheus-client appends both itself, so [`register`]
//! removes them before handing a metric over.

use std::iter::once;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Metric, Registry};
use tandem_kv::Command;
use tandem_protocol::Outcome;

pub use prometheus_client::metrics::counter::Counter;

/// The `Content-Type` of what [`Exposition::finish`] returns.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// A histogram with fixed upper bounds (`le`), Prometheus style: each observation increments
/// the first bucket whose bound holds it; the crate's encoder makes the counts cumulative.
/// Clones share the buckets (like prometheus-client's handles), so one clone is registered and
/// another records.
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramBuckets>);

#[derive(Debug)]
struct HistogramBuckets {
    bounds: &'static [f64],
    /// One per bound, plus the overflow bucket (`+Inf`).
    counts: Box<[AtomicU64]>,
    /// Sum of observations, in millionths of the unit (an integer keeps it one atomic add).
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
    /// An empty histogram over `bounds` (ascending, finite).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "ascending bounds");
        debug_assert!(bounds.iter().all(|b| b.is_finite()), "+Inf is implicit");
        Histogram(Arc::new(HistogramBuckets {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }))
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        let buckets = &self.0;
        let bucket = buckets.bounds.partition_point(|bound| *bound < value);
        buckets.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = (value.max(0.0) * 1e6) as u64;
        buckets.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Records a duration in seconds.
    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(elapsed.as_secs_f64());
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets = &self.0;
        // Each bucket is loaded once, so `_count` equals the `+Inf` bucket even while
        // observations land during the scrape.
        let counts: Vec<(f64, u64)> = buckets
            .bounds
            .iter()
            .copied()
            .chain(once(f64::INFINITY))
            .zip(buckets.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        let count = counts.iter().map(|(_, n)| n).sum();
        let sum = buckets.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &counts, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Registers `metric` under the name and help text it is exposed with (see the module doc).
fn register(registry: &mut Registry, exposed_name: &str, exposed_help: &str, metric: impl Metric) {
    let name = match metric.metric_type() {
        MetricType::Counter => {
            let name = exposed_name.strip_suffix("_total");
            debug_assert!(
                name.is_some(),
                "counter {exposed_name} must end with _total"
            );
            name.unwrap_or(exposed_name)
        }
        _ => exposed_name,
    };
    let help = exposed_help.strip_suffix('.');
    debug_assert!(
        help.is_some(),
        "help of {exposed_name} must end with a full stop"
    );
    registry.register(name, help.unwrap_or(exposed_help), metric);
}

/// One scrape's metrics, in the order they are added: the registries of what a role records
/// and families of values read at scrape time, all encoded by prometheus-client.
#[derive(Debug)]
pub struct Exposition {
    text: String,
    /// The first encoding error; what follows it is not encoded.
    encoded: std::fmt::Result,
    /// The scrape-time family that [`Exposition::sample`] adds to, encoded when the next
    /// family or registry is added, or at [`Exposition::finish`].
    open: Option<ScrapeFamily>,
}

impl Default for Exposition {
    fn default() -> Self {
        Exposition::new()
    }
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition {
            text: String::new(),
            encoded: Ok(()),
            open: None,
        }
    }

    /// Adds every metric of `registry`.
    pub fn registry(&mut self, registry: &Registry) -> &mut Exposition {
        self.close_family();
        if self.encoded.is_ok() {
            self.encoded = prometheus_text::encode(&mut self.text, registry);
        }
        self
    }

    /// Starts a family of values read at scrape time. `kind` is "counter" or "gauge" (what is
    /// observed into a histogram is recorded, never read from a snapshot); `name` and `help`
    /// as exposed, a counter's name ending in `_total`, `help` in a full stop.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Exposition {
        self.close_family();
        let kind = match kind {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            other => {
                debug_assert!(false, "{name}: no scrape-time family of kind {other}");
                MetricType::Unknown
            }
        };
        self.open = Some(ScrapeFamily {
            name: name.to_owned(),
            help: help.to_owned(),
            kind,
            samples: Vec::new(),
        });
        self
    }

    /// One sample of the family started last (`name` is that family's); `labels` are
    /// `(name, value)` pairs, values escaped by the encoder.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Exposition {
        match &mut self.open {
            Some(family) => {
                debug_assert_eq!(family.name, name, "a sample of another family");
                let labels = labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                family.samples.push((labels, value));
            }
            None => debug_assert!(false, "sample {name} outside a family"),
        }
        self
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) -> &mut Exposition {
        self.family(name, kind, help).sample(name, &[], value)
    }

    /// The text, or the error an encoder returned.
    pub fn finish(mut self) -> Result<String, std::fmt::Error> {
        self.close_family();
        self.encoded.map(|()| self.text)
    }

    fn close_family(&mut self) {
        let Some(family) = self.open.take() else {
            return;
        };
        let mut registry = Registry::default();
        let (name, help) = (family.name.clone(), family.help.clone());
        register(&mut registry, &name, &help, family);
        self.registry(&registry);
    }
}

/// Samples of one family read at scrape time.
#[derive(Debug)]
struct ScrapeFamily {
    name: String,
    help: String,
    kind: MetricType,
    samples: Vec<(Vec<(String, String)>, f64)>,
}

impl EncodeMetric for ScrapeFamily {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, value) in &self.samples {
            encode_value(encoder.encode_family(labels)?, self.kind, *value)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        self.kind
    }
}

/// Writes whole numbers as integers (`3`), as the text was before prometheus-client, which
/// writes any `f64` with a fraction (`3.0`); most readings are counts.
fn encode_value(mut encoder: MetricEncoder, kind: MetricType, value: f64) -> std::fmt::Result {
    let whole = (value.fract() == 0.0 && value.abs() < 1e15).then_some(value as i64);
    if kind == MetricType::Counter {
        match whole.and_then(|whole| u64::try_from(whole).ok()) {
            Some(count) => encoder.encode_counter::<NoLabelSet, _, u64>(&count, None),
            None => encoder.encode_counter::<NoLabelSet, _, u64>(&value, None),
        }
    } else {
        match whole {
            Some(whole) => encoder.encode_gauge(&whole),
            None => encoder.encode_gauge(&value),
        }
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
    started: Instant,
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Metrics of a coordinator (the Redis front end).
#[derive(Debug)]
pub struct CoordinatorMetrics {
    /// `[command][outcome]`, handles into the `tandem_coordinator_commands_total` family.
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
    registry: Registry,
}

impl Default for CoordinatorMetrics {
    fn default() -> Self {
        let commands_family = Family::<CommandLabels, Counter>::default();
        let commands = (0..COMMAND_SLOTS)
            .map(|slot| {
                let command = COMMAND_NAMES.get(slot).copied().unwrap_or("other");
                OUTCOMES.map(|outcome| {
                    commands_family.get_or_create_owned(&CommandLabels { command, outcome })
                })
            })
            .collect();
        let requests = Family::<OutcomeLabels, Counter>::default();
        let requests_ok = requests.get_or_create_owned(&OutcomeLabels { outcome: "ok" });
        let requests_timed_out =
            requests.get_or_create_owned(&OutcomeLabels { outcome: "timeout" });
        let latency = Histogram::new(LATENCY_BOUNDS_S);
        let batch_commands = Histogram::new(SIZE_BOUNDS);
        let connections_accepted = Counter::default();
        let mut registry = Registry::default();
        register(
            &mut registry,
            "tandem_coordinator_commands_total",
            "Commands answered, by command and outcome (ok, error reply, timeout).",
            commands_family,
        );
        register(
            &mut registry,
            "tandem_coordinator_requests_total",
            "Pipeline batches sent through the clerk, by outcome.",
            requests,
        );
        register(
            &mut registry,
            "tandem_coordinator_request_duration_seconds",
            "Time from submitting a batch to its outcome, failover retries included.",
            latency.clone(),
        );
        register(
            &mut registry,
            "tandem_coordinator_batch_commands",
            "Commands per pipeline batch.",
            batch_commands.clone(),
        );
        register(
            &mut registry,
            "tandem_coordinator_connections_accepted_total",
            "Client connections accepted.",
            connections_accepted.clone(),
        );
        CoordinatorMetrics {
            commands,
            requests_ok,
            requests_timed_out,
            latency,
            batch_commands,
            connections_accepted,
            // Exposed by the coordinator's admin source, next to the timeouts.
            accept_errors: Counter::default(),
            registry,
        }
    }
}

impl CoordinatorMetrics {
    /// Call before a batch is submitted; pass the result to [`CoordinatorMetrics::finish_batch`].
    pub fn start_batch(&self, cmds: &[Command]) -> BatchTimer {
        let mut timer = BatchTimer {
            started: Instant::now(),
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
            Outcome::TimedOut | Outcome::CrossGroup => {
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

    /// Adds every coordinator family recorded by the connection tasks to `out`.
    pub fn render(&self, out: &mut Exposition) {
        out.registry(&self.registry);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
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
    /// State transfers started as primary.
    pub transfers_started: Counter,
    /// State transfers whose backup installed the snapshot.
    pub transfers_finished: Counter,
    /// View changes this server moved through.
    pub views_seen: Counter,
    registry: Registry,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        let request_errors = Family::<KindLabels, Counter>::default();
        let transfers = Family::<PhaseLabels, Counter>::default();
        let error = |kind| request_errors.get_or_create_owned(&KindLabels { kind });
        let phase = |phase| transfers.get_or_create_owned(&PhaseLabels { phase });
        let forward_batch = Histogram::new(SIZE_BOUNDS);
        let transfer_bytes = Counter::default();
        let bytes_sent = Counter::default();
        let pings_sent = Counter::default();
        let requests_rejected = error("wrong_server");
        let requests_failed = error("unconfirmed_or_busy");
        let transfers_started = phase("started");
        let transfers_finished = phase("finished");
        let views_seen = Counter::default();
        let mut registry = Registry::default();
        register(
            &mut registry,
            "tandem_server_forward_batch_ops",
            "Operations per forward frame sent to a backup (group commit).",
            forward_batch.clone(),
        );
        register(
            &mut registry,
            "tandem_server_transfer_bytes_total",
            "Bytes of state-transfer chunks sent (P6).",
            transfer_bytes.clone(),
        );
        register(
            &mut registry,
            "tandem_server_sent_bytes_total",
            "Bytes of internal frames sent.",
            bytes_sent.clone(),
        );
        register(
            &mut registry,
            "tandem_server_pings_sent_total",
            "Pings sent to the view service (V2).",
            pings_sent.clone(),
        );
        register(
            &mut registry,
            "tandem_server_request_errors_total",
            "Requests answered with an error, by kind.",
            request_errors,
        );
        register(
            &mut registry,
            "tandem_server_transfers_total",
            "State transfers as primary, by phase.",
            transfers,
        );
        register(
            &mut registry,
            "tandem_server_view_changes_total",
            "Views this server moved into.",
            views_seen.clone(),
        );
        ServerMetrics {
            forward_batch,
            transfer_bytes,
            bytes_sent,
            pings_sent,
            requests_rejected,
            requests_failed,
            transfers_started,
            transfers_finished,
            views_seen,
            registry,
        }
    }
}

impl ServerMetrics {
    /// Adds every family recorded by the runtime to `out`.
    pub fn render(&self, out: &mut Exposition) {
        out.registry(&self.registry);
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Metrics of the view service recorded by its task.
///
/// With a replicated view service (Q1) every node applies every committed decision once, so
/// every node counts view changes and acknowledgements as it applies them: any node's
/// `view_changes_total` and `acks_total` are the group's (do not sum them across nodes; after
/// a restart a node counts again what it replays). Pings and queries count what this node
/// received (a follower answers them with the leader's address, Q2).
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
    /// Propose-to-apply latency of this node's proposals while it leads (Q3).
    pub commit_latency: Histogram,
    registry: Registry,
}

impl Default for ViewServiceMetrics {
    fn default() -> Self {
        let view_changes_family = Family::<ReasonLabels, Counter>::default();
        let view_changes = VIEW_CHANGE_REASONS
            .iter()
            .map(|&reason| view_changes_family.get_or_create_owned(&ReasonLabels { reason }))
            .collect();
        let pings = Counter::default();
        let view_queries = Counter::default();
        let status_queries = Counter::default();
        let acks = Counter::default();
        let commit_latency = Histogram::new(LATENCY_BOUNDS_S);
        let mut registry = Registry::default();
        register(
            &mut registry,
            "tandem_viewservice_pings_total",
            "Pings received from servers (V2).",
            pings.clone(),
        );
        register(
            &mut registry,
            "tandem_viewservice_view_queries_total",
            "GetView queries received from coordinators (C1).",
            view_queries.clone(),
        );
        register(
            &mut registry,
            "tandem_viewservice_status_queries_total",
            "GetStatus queries received from operator tools.",
            status_queries.clone(),
        );
        register(
            &mut registry,
            "tandem_viewservice_view_changes_total",
            "View changes, by cause (a change folding several causes counts under each).",
            view_changes_family,
        );
        register(
            &mut registry,
            "tandem_viewservice_acks_total",
            "Views acknowledged by their primary (V6).",
            acks.clone(),
        );
        register(
            &mut registry,
            "tandem_viewservice_commit_latency_seconds",
            "Time from a leader's proposal (a decision or a membership change) to its \
             application once committed (Q3), on the node that proposed it.",
            commit_latency.clone(),
        );
        ViewServiceMetrics {
            pings,
            view_queries,
            status_queries,
            view_changes,
            acks,
            commit_latency,
            registry,
        }
    }
}

impl ViewServiceMetrics {
    /// Counts one view change under `label`, one of [`VIEW_CHANGE_REASONS`]; a change folding
    /// several causes is counted once per cause. Any other label is counted nowhere.
    pub fn view_changed(&self, label: &'static str) {
        match VIEW_CHANGE_REASONS.iter().position(|r| *r == label) {
            Some(index) => {
                self.view_changes[index].inc();
            }
            None => debug_assert!(false, "unknown view-change reason label {label}"),
        }
    }

    /// Adds every family recorded by the task to `out`.
    pub fn render(&self, out: &mut Exposition) {
        out.registry(&self.registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(add: impl FnOnce(&mut Exposition)) -> String {
        let mut out = Exposition::new();
        add(&mut out);
        out.finish().expect("encodes")
    }

    /// The `# HELP` and `# TYPE` lines, in order.
    fn descriptors(text: &str) -> Vec<&str> {
        text.lines().filter(|l| l.starts_with("# ")).collect()
    }

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
        assert_eq!(h.count(), 4);
        let mut registry = Registry::default();
        register(&mut registry, "x", "Test.", h.clone());
        let text = render(|out| {
            out.registry(&registry);
        });
        let expected = "# HELP x Test.\n# TYPE x histogram\nx_bucket{le=\"1\"} 2\n\
                        x_bucket{le=\"2\"} 3\nx_bucket{le=\"+Inf\"} 4\nx_sum 12.0\nx_count 4\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn scrape_time_families_keep_exposed_names_and_whole_numbers() {
        let text = render(|out| {
            out.single("a_total", "counter", "A count.", 3.0);
            out.family("b", "gauge", "A gauge.")
                .sample("b", &[("role", "primary")], 1.0)
                .sample("b", &[("role", "backup")], 0.25)
                .sample("b", &[("role", "idle")], -2.0);
        });
        let expected = "# HELP a_total A count.\n# TYPE a_total counter\na_total 3\n\
                        # HELP b A gauge.\n# TYPE b gauge\nb{role=\"primary\"} 1\n\
                        b{role=\"backup\"} 0.25\nb{role=\"idle\"} -2\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn label_values_are_escaped() {
        let text = render(|out| {
            out.family("m", "gauge", "M.")
                .sample("m", &[("k", "a\"b\\c\nd")], 1.0);
        });
        assert!(text.ends_with("m{k=\"a\\\"b\\\\c\\nd\"} 1\n"), "{text}");
    }

    #[test]
    fn registries_and_families_keep_the_order_they_are_added_in() {
        let metrics = ServerMetrics::default();
        let text = render(|out| {
            out.single("first", "gauge", "First.", 1.0);
            metrics.render(out);
            out.single("last", "gauge", "Last.", 1.0);
        });
        let names: Vec<&str> = descriptors(&text)
            .iter()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(names.first(), Some(&"first gauge"));
        assert_eq!(names.last(), Some(&"last gauge"));
        assert_eq!(names.len(), 9);
    }

    // The three tests below pin every recorded family's name, type and help text to what the
    // hand-written exposition wrote before prometheus-client (dashboards and alerts use them).

    #[test]
    fn coordinator_families_are_exposed_as_before() {
        let metrics = CoordinatorMetrics::default();
        let text = render(|out| metrics.render(out));
        assert_eq!(
            descriptors(&text),
            [
                "# HELP tandem_coordinator_commands_total Commands answered, by command and outcome (ok, error reply, timeout).",
                "# TYPE tandem_coordinator_commands_total counter",
                "# HELP tandem_coordinator_requests_total Pipeline batches sent through the clerk, by outcome.",
                "# TYPE tandem_coordinator_requests_total counter",
                "# HELP tandem_coordinator_request_duration_seconds Time from submitting a batch to its outcome, failover retries included.",
                "# TYPE tandem_coordinator_request_duration_seconds histogram",
                "# HELP tandem_coordinator_batch_commands Commands per pipeline batch.",
                "# TYPE tandem_coordinator_batch_commands histogram",
                "# HELP tandem_coordinator_connections_accepted_total Client connections accepted.",
                "# TYPE tandem_coordinator_connections_accepted_total counter",
            ]
        );
        // Every command and outcome is a series from the start, at zero until counted.
        assert!(
            text.contains("tandem_coordinator_commands_total{command=\"set\",outcome=\"ok\"} 0\n")
        );
        assert!(text.contains(
            "tandem_coordinator_commands_total{command=\"other\",outcome=\"timeout\"} 0\n"
        ));
        assert!(
            text.contains("tandem_coordinator_request_duration_seconds_bucket{le=\"0.00025\"} 0\n")
        );
        assert!(text.contains("tandem_coordinator_batch_commands_bucket{le=\"1024\"} 0\n"));
    }

    #[test]
    fn server_families_are_exposed_as_before() {
        let metrics = ServerMetrics::default();
        let text = render(|out| metrics.render(out));
        assert_eq!(
            descriptors(&text),
            [
                "# HELP tandem_server_forward_batch_ops Operations per forward frame sent to a backup (group commit).",
                "# TYPE tandem_server_forward_batch_ops histogram",
                "# HELP tandem_server_transfer_bytes_total Bytes of state-transfer chunks sent (P6).",
                "# TYPE tandem_server_transfer_bytes_total counter",
                "# HELP tandem_server_sent_bytes_total Bytes of internal frames sent.",
                "# TYPE tandem_server_sent_bytes_total counter",
                "# HELP tandem_server_pings_sent_total Pings sent to the view service (V2).",
                "# TYPE tandem_server_pings_sent_total counter",
                "# HELP tandem_server_request_errors_total Requests answered with an error, by kind.",
                "# TYPE tandem_server_request_errors_total counter",
                "# HELP tandem_server_transfers_total State transfers as primary, by phase.",
                "# TYPE tandem_server_transfers_total counter",
                "# HELP tandem_server_view_changes_total Views this server moved into.",
                "# TYPE tandem_server_view_changes_total counter",
            ]
        );
    }

    #[test]
    fn view_service_families_are_exposed_as_before() {
        let metrics = ViewServiceMetrics::default();
        let text = render(|out| metrics.render(out));
        assert_eq!(
            descriptors(&text),
            [
                "# HELP tandem_viewservice_pings_total Pings received from servers (V2).",
                "# TYPE tandem_viewservice_pings_total counter",
                "# HELP tandem_viewservice_view_queries_total GetView queries received from coordinators (C1).",
                "# TYPE tandem_viewservice_view_queries_total counter",
                "# HELP tandem_viewservice_status_queries_total GetStatus queries received from operator tools.",
                "# TYPE tandem_viewservice_status_queries_total counter",
                "# HELP tandem_viewservice_view_changes_total View changes, by cause (a change folding several causes counts under each).",
                "# TYPE tandem_viewservice_view_changes_total counter",
                "# HELP tandem_viewservice_acks_total Views acknowledged by their primary (V6).",
                "# TYPE tandem_viewservice_acks_total counter",
                "# HELP tandem_viewservice_commit_latency_seconds Time from a leader's proposal (a decision or a membership change) to its application once committed (Q3), on the node that proposed it.",
                "# TYPE tandem_viewservice_commit_latency_seconds histogram",
            ]
        );
    }

    #[test]
    fn labelled_handles_count_into_their_own_series() {
        let coordinator = CoordinatorMetrics::default();
        let command = |args: &[&'static str]| {
            let args: Vec<bytes::Bytes> = args.iter().map(|a| bytes::Bytes::from(*a)).collect();
            Command::parse(&args).expect("a valid command")
        };
        let batch = [command(&["SET", "k", "v"]), command(&["LPUSH", "k", "x"])];
        let replies = vec![
            tandem_kv::Reply::Simple("OK".to_owned()),
            tandem_kv::Reply::Error("WRONGTYPE".to_owned()),
        ];
        let timer = coordinator.start_batch(&batch);
        coordinator.finish_batch(timer, &Outcome::Replies(Arc::new(replies)));
        let timer = coordinator.start_batch(&batch[..1]);
        coordinator.finish_batch(timer, &Outcome::TimedOut);
        assert_eq!(coordinator.requests(), (1, 1));
        assert_eq!(coordinator.commands_total(), 3);
        let server = ServerMetrics::default();
        server.requests_rejected.inc();
        server.transfers_finished.inc_by(2);
        let text = render(|out| {
            coordinator.render(out);
            server.render(out);
        });
        for line in [
            "tandem_coordinator_commands_total{command=\"set\",outcome=\"ok\"} 1\n",
            "tandem_coordinator_commands_total{command=\"set\",outcome=\"timeout\"} 1\n",
            "tandem_coordinator_commands_total{command=\"lpush\",outcome=\"error\"} 1\n",
            "tandem_coordinator_commands_total{command=\"lpush\",outcome=\"ok\"} 0\n",
            "tandem_coordinator_requests_total{outcome=\"ok\"} 1\n",
            "tandem_coordinator_requests_total{outcome=\"timeout\"} 1\n",
            "tandem_coordinator_request_duration_seconds_count 2\n",
            "tandem_coordinator_batch_commands_bucket{le=\"1\"} 1\n",
            "tandem_coordinator_batch_commands_bucket{le=\"2\"} 2\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(
            text.contains("tandem_server_request_errors_total{kind=\"wrong_server\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("tandem_server_request_errors_total{kind=\"unconfirmed_or_busy\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("tandem_server_transfers_total{phase=\"finished\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("tandem_server_transfers_total{phase=\"started\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn view_changes_count_under_each_known_reason() {
        let metrics = ViewServiceMetrics::default();
        metrics.view_changed("primary_missed_pings");
        metrics.view_changed("backup_added");
        metrics.view_changed("backup_never_pinged");
        let text = render(|out| metrics.render(out));
        for (reason, count) in [
            ("primary_missed_pings", 1),
            ("backup_added", 1),
            ("backup_never_pinged", 1),
            ("first_primary", 0),
            ("primary_never_pinged", 0),
        ] {
            let line =
                format!("tandem_viewservice_view_changes_total{{reason=\"{reason}\"}} {count}\n");
            assert!(text.contains(&line), "{line} in {text}");
        }
        assert_eq!(
            text.matches("tandem_viewservice_view_changes_total{")
                .count(),
            8
        );
    }

    #[test]
    #[cfg_attr(
        debug_assertions,
        should_panic(expected = "unknown view-change reason label")
    )]
    fn an_unknown_view_change_reason_counts_nowhere() {
        let metrics = ViewServiceMetrics::default();
        metrics.view_changed("other");
        let text = render(|out| metrics.render(out));
        assert_eq!(
            text.matches("_total{reason=").count(),
            VIEW_CHANGE_REASONS.len()
        );
        assert!(!text.contains("reason=\"other\""), "{text}");
        assert!(metrics.view_changes.iter().all(|c| c.get() == 0));
    }
}
