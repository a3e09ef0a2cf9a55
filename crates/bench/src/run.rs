//! Running a benchmark: connect every connection, optionally warm the keyspace up, then drive
//! the measured phase and merge what each connection saw into a [`Report`].

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use tandem_resp::Frame;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::conn::{Conn, ConnError};
use crate::workload::Workload;
use crate::{BenchConfig, ConfigError, Latency, Report};

/// Highest latency the histograms track: one hour, in microseconds. Larger values are
/// recorded as this (the read timeout makes them impossible in practice).
const MAX_LATENCY_US: u64 = 3_600 * 1_000_000;

/// How often the progress line is refreshed.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// Why a run could not produce a [`Report`].
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The configuration is out of bounds.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A connection could not be opened (every connection must open before measuring).
    #[error("connecting to {addr}: {reason}")]
    Connect {
        /// The configured address.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The warmup SETs failed: an error reply, a timeout or a broken connection.
    #[error("warmup: {0}")]
    Warmup(String),
    /// A connection task panicked (a bug in this crate).
    #[error("a connection task failed: {0}")]
    Task(String),
}

/// Runs the benchmark `config` describes and reports what it measured.
///
/// Fails before measuring if the configuration is invalid, a connection cannot be opened, or
/// the warmup fails. Once measuring, a failing connection does not fail the run: its
/// unanswered requests are counted as errors, and the report says how many connections failed.
pub async fn run(config: &BenchConfig) -> Result<Report, BenchError> {
    config.validate()?;
    let value = Bytes::from(vec![b'x'; config.value_size]);
    let show_progress = config.progress && std::io::stderr().is_terminal();
    let mut conns = connect_all(config).await?;
    if config.warmup_keys {
        if show_progress {
            eprint!("\rwarming up: SET of {} keys\x1b[K", config.keyspace);
        }
        let warmed = warmup(config, &value, conns).await;
        if show_progress {
            eprint!("\r\x1b[K");
        }
        conns = warmed?;
    }
    measure(config, &value, conns, show_progress).await
}

/// Opens every connection, concurrently.
async fn connect_all(config: &BenchConfig) -> Result<Vec<Conn>, BenchError> {
    let until = Instant::now() + config.read_timeout;
    let mut connecting = JoinSet::new();
    for _ in 0..config.connections {
        let addr = config.addr.clone();
        connecting.spawn(async move { Conn::connect(&addr, until).await });
    }
    let mut conns = Vec::with_capacity(config.connections);
    while let Some(joined) = connecting.join_next().await {
        let conn = joined
            .map_err(|error| BenchError::Task(error.to_string()))?
            .map_err(|error| BenchError::Connect {
                addr: config.addr.clone(),
                reason: error.to_string(),
            })?;
        conns.push(conn);
    }
    Ok(conns)
}

/// SETs every key once, the connections sharing the keyspace in pipelined batches, and hands
/// the connections back.
async fn warmup(
    config: &BenchConfig,
    value: &Bytes,
    conns: Vec<Conn>,
) -> Result<Vec<Conn>, BenchError> {
    // Each task takes the next range of keys from this counter until the keyspace is covered.
    let next_key = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for (index, conn) in conns.into_iter().enumerate() {
        let workload = Workload::new(config, value.clone(), index);
        let next_key = Arc::clone(&next_key);
        let (keyspace, batch, read_timeout) =
            (config.keyspace, config.pipeline as u64, config.read_timeout);
        tasks.spawn(async move {
            warm_connection(conn, workload, &next_key, keyspace, batch, read_timeout).await
        });
    }
    let mut conns = Vec::with_capacity(config.connections);
    while let Some(joined) = tasks.join_next().await {
        let conn = joined
            .map_err(|error| BenchError::Task(error.to_string()))?
            .map_err(BenchError::Warmup)?;
        conns.push(conn);
    }
    Ok(conns)
}

async fn warm_connection(
    mut conn: Conn,
    mut workload: Workload,
    next_key: &AtomicU64,
    keyspace: u64,
    batch: u64,
    read_timeout: Duration,
) -> Result<Conn, String> {
    loop {
        let start = next_key.fetch_add(batch, Ordering::Relaxed);
        if start >= keyspace {
            return Ok(conn);
        }
        let end = start.saturating_add(batch).min(keyspace);
        workload.encode_sets(start..end, &mut conn.output);
        let until = Instant::now() + read_timeout;
        conn.flush(until).await.map_err(|error| error.to_string())?;
        for _ in start..end {
            match conn.read_reply(until).await {
                Ok(Frame::Error(text)) => return Err(format!("server replied -{text}")),
                Ok(_) => {}
                Err(error) => return Err(error.to_string()),
            }
        }
    }
}

/// What every connection task of the measured phase shares.
#[derive(Debug)]
struct Shared {
    /// Requests not yet claimed by any connection, when the run is bounded by a count.
    remaining: Option<AtomicU64>,
    /// When no new batch may start and no reply is waited for any longer, in a timed run.
    deadline: Option<Instant>,
    /// Requests finished so far (for the progress line).
    done: AtomicU64,
    pipeline: u64,
    read_timeout: Duration,
}

impl Shared {
    /// Claims the next batch: up to `pipeline` requests, or 0 when the run is over.
    fn claim(&self) -> u64 {
        if self.past_deadline() {
            return 0;
        }
        let Some(remaining) = &self.remaining else {
            return self.pipeline;
        };
        let mut claimed = 0;
        // The closure may run more than once under contention; `claimed` ends up holding the
        // value of the attempt that succeeded (or 0 if none was left).
        let _ = remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            claimed = left.min(self.pipeline);
            (claimed > 0).then(|| left - claimed)
        });
        claimed
    }

    /// How long the replies of a batch written at `sent` may be waited for.
    fn wait_limit(&self, sent: Instant) -> Instant {
        let limit = sent + self.read_timeout;
        self.deadline.map_or(limit, |deadline| limit.min(deadline))
    }

    fn past_deadline(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }
}

/// What one connection saw during the measured phase.
#[derive(Debug)]
struct ConnStats {
    /// Requests that were answered, failed or timed out.
    requests: u64,
    /// Error replies, plus requests lost to a timeout or a broken connection.
    errors: u64,
    /// Requests still unanswered when the deadline of a timed run passed.
    cut_off: u64,
    /// Latencies of the successful replies, in microseconds.
    histogram: Histogram<u64>,
    /// Whether the connection broke (or timed out) before the run ended.
    failed: bool,
    /// The first error reply or connection failure, as an example for the report.
    first_error: Option<String>,
}

impl ConnStats {
    fn new() -> Self {
        ConnStats {
            requests: 0,
            errors: 0,
            cut_off: 0,
            histogram: new_histogram(),
            failed: false,
            first_error: None,
        }
    }

    fn record(&mut self, reply: Frame, latency: Duration) {
        self.requests += 1;
        if let Frame::Error(text) = reply {
            self.errors += 1;
            self.first_error.get_or_insert_with(|| format!("-{text}"));
        } else {
            let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            self.histogram.saturating_record(micros.max(1));
        }
    }

    /// Accounts for `unanswered` requests of a batch that ended with `error`.
    fn fail(&mut self, unanswered: u64, error: &ConnError, past_deadline: bool) {
        if past_deadline && matches!(error, ConnError::TimedOut) {
            // Not the server's fault: the run ended while they were in flight.
            self.cut_off += unanswered;
            return;
        }
        self.requests += unanswered;
        self.errors += unanswered;
        self.failed = true;
        self.first_error.get_or_insert_with(|| error.to_string());
    }

    fn merge(&mut self, other: ConnStats) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.cut_off += other.cut_off;
        self.histogram
            .add(&other.histogram)
            .expect("histograms with the same bounds always merge");
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant bounds are valid")
}

/// The measured phase: every connection runs batches until the count or the time is used up.
async fn measure(
    config: &BenchConfig,
    value: &Bytes,
    conns: Vec<Conn>,
    show_progress: bool,
) -> Result<Report, BenchError> {
    let start = Instant::now();
    let shared = Arc::new(Shared {
        remaining: config.requests.map(AtomicU64::new),
        deadline: config.duration.map(|duration| start + duration),
        done: AtomicU64::new(0),
        pipeline: config.pipeline as u64,
        read_timeout: config.read_timeout,
    });
    let mut tasks = JoinSet::new();
    for (index, conn) in conns.into_iter().enumerate() {
        let workload = Workload::new(config, value.clone(), index);
        tasks.spawn(measure_connection(conn, workload, Arc::clone(&shared)));
    }
    let progress = show_progress.then(|| spawn_progress(Arc::clone(&shared)));
    let mut total = ConnStats::new();
    let mut failed_connections = 0;
    while let Some(joined) = tasks.join_next().await {
        let stats = joined.map_err(|error| BenchError::Task(error.to_string()))?;
        failed_connections += u64::from(stats.failed);
        total.merge(stats);
    }
    let elapsed = start.elapsed();
    if let Some(progress) = progress {
        progress.abort();
        eprint!("\r\x1b[K");
    }
    let successes = total.requests - total.errors;
    Ok(Report {
        config: config.clone(),
        requests: total.requests,
        errors: total.errors,
        cut_off: total.cut_off,
        failed_connections,
        first_error: total.first_error,
        elapsed,
        ops_per_sec: successes as f64 / elapsed.as_secs_f64().max(1e-9),
        latency_us: Latency::from_histogram(&total.histogram),
    })
}

async fn measure_connection(
    mut conn: Conn,
    mut workload: Workload,
    shared: Arc<Shared>,
) -> ConnStats {
    let mut stats = ConnStats::new();
    let mut replies = Vec::new();
    loop {
        let count = shared.claim();
        if count == 0 {
            return stats;
        }
        workload.encode_batch(count, &mut conn.output, &mut replies);
        let before = stats.requests;
        let result = run_batch(&mut conn, &mut stats, &replies, &shared).await;
        let answered = stats.requests - before;
        shared.done.fetch_add(answered, Ordering::Relaxed);
        if let Err(error) = result {
            stats.fail(count - answered, &error, shared.past_deadline());
            return stats;
        }
    }
}

/// Writes the encoded batch and reads its replies into `stats`: `replies[i]` replies for
/// request `i` (a SET followed by WAIT takes two; the request succeeds only if both do).
async fn run_batch(
    conn: &mut Conn,
    stats: &mut ConnStats,
    replies: &[u8],
    shared: &Shared,
) -> Result<(), ConnError> {
    let sent = Instant::now();
    let until = shared.wait_limit(sent);
    conn.flush(until).await?;
    for &n in replies {
        let mut reply = conn.read_reply(until).await?;
        for _ in 1..n {
            let next = conn.read_reply(until).await?;
            if !matches!(reply, Frame::Error(_)) {
                reply = next;
            }
        }
        stats.record(reply, sent.elapsed());
    }
    Ok(())
}

/// Refreshes one line on stderr with the requests done and the current rate, until aborted.
fn spawn_progress(shared: Arc<Shared>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
        // The first tick is immediate, with nothing to show yet.
        ticker.tick().await;
        let mut last = (Instant::now(), 0);
        loop {
            ticker.tick().await;
            let (now, done) = (Instant::now(), shared.done.load(Ordering::Relaxed));
            let seconds = (now - last.0).as_secs_f64().max(1e-9);
            let rate = (done - last.1) as f64 / seconds;
            let mut stderr = std::io::stderr().lock();
            // A progress line that fails to print is not worth stopping the run for.
            let _ = write!(stderr, "\r{done} requests, {rate:.0} ops/s\x1b[K");
            let _ = stderr.flush();
            last = (now, done);
        }
    })
}
