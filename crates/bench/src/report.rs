//! What a run measured: [`Report`], printed as a table ([`std::fmt::Display`]) or as one JSON
//! object ([`Report::to_json`]).

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;

use crate::BenchConfig;

/// Latency percentiles of the successful requests, in microseconds.
///
/// A request's latency runs from the write of its batch to the arrival of its reply. Error
/// replies and failed requests are not included. All zero when nothing succeeded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Slowest.
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl Latency {
    /// Reads the percentiles off a histogram of microseconds (3 significant digits, so each
    /// value is within 0.1% of the exact one).
    pub(crate) fn from_histogram(histogram: &Histogram<u64>) -> Self {
        Latency {
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: histogram.mean(),
        }
    }
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The configuration that was run.
    pub config: BenchConfig,
    /// Requests finished: answered (successfully or with an error reply), timed out, or lost
    /// with a broken connection. With `config.requests` set and no failure, exactly that.
    pub requests: u64,
    /// Of `requests`, those that did not succeed: error replies (`-ERR ...`), plus requests
    /// that timed out or were in flight when their connection broke.
    pub errors: u64,
    /// Requests still in flight when the deadline of a timed run passed; counted neither as
    /// successes nor as errors.
    pub cut_off: u64,
    /// Connections that broke or timed out before the run ended.
    pub failed_connections: u64,
    /// The first error reply or connection failure seen, as an example.
    pub first_error: Option<String>,
    /// Time of the measured phase (connecting and warmup excluded).
    pub elapsed: Duration,
    /// Successful requests per second of `elapsed`.
    pub ops_per_sec: f64,
    /// Latency of the successful requests.
    pub latency_us: Latency,
}

impl Report {
    /// The report as one flat JSON object: the counts, `elapsed_secs`, `ops_per_sec`,
    /// `p50_us` ... `max_us`, `mean_us`, and the configuration under `config`.
    pub fn to_json(&self) -> serde_json::Value {
        let config = &self.config;
        let latency = &self.latency_us;
        json!({
            "requests": self.requests,
            "errors": self.errors,
            "cut_off": self.cut_off,
            "failed_connections": self.failed_connections,
            "first_error": self.first_error,
            "elapsed_secs": self.elapsed.as_secs_f64(),
            "ops_per_sec": self.ops_per_sec,
            "p50_us": latency.p50,
            "p90_us": latency.p90,
            "p99_us": latency.p99,
            "p999_us": latency.p999,
            "max_us": latency.max,
            "mean_us": latency.mean,
            "config": {
                "addr": config.addr,
                "connections": config.connections,
                "pipeline": config.pipeline,
                "keyspace": config.keyspace,
                "value_size": config.value_size,
                "read_ratio": config.read_ratio,
                "wait_replicas": config.wait_replicas,
                "duration_secs": config.duration.map(|duration| duration.as_secs_f64()),
                "requests": config.requests,
                "warmup_keys": config.warmup_keys,
                "read_timeout_secs": config.read_timeout.as_secs_f64(),
            },
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.config;
        let reads = (config.read_ratio * 100.0).round();
        writeln!(
            f,
            "server        {} ({} connections, pipeline {})",
            config.addr, config.connections, config.pipeline
        )?;
        writeln!(
            f,
            "workload      {reads}% GET / {}% SET, {}-byte values, {} keys",
            100.0 - reads,
            config.value_size,
            config.keyspace
        )?;
        writeln!(f, "requests      {}", self.requests)?;
        writeln!(f, "errors        {}", self.errors)?;
        if self.cut_off > 0 {
            writeln!(
                f,
                "cut off       {} (in flight at the deadline)",
                self.cut_off
            )?;
        }
        if self.failed_connections > 0 {
            writeln!(f, "failed conns  {}", self.failed_connections)?;
        }
        if let Some(error) = &self.first_error {
            writeln!(f, "first error   {error}")?;
        }
        writeln!(f, "elapsed       {:.3} s", self.elapsed.as_secs_f64())?;
        writeln!(f, "throughput    {:.0} ops/s", self.ops_per_sec)?;
        let latency = &self.latency_us;
        writeln!(
            f,
            "latency (us)  {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "p50", "p90", "p99", "p99.9", "max", "mean"
        )?;
        writeln!(
            f,
            "              {:>8} {:>8} {:>8} {:>8} {:>8} {:>8.1}",
            latency.p50, latency.p90, latency.p99, latency.p999, latency.max, latency.mean
        )
    }
}
