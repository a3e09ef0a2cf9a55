//! The command line: [`BenchArgs`] and [`run_cli`].

use std::time::Duration;

use anyhow::Context;

use crate::{BenchConfig, run};

/// Options of the benchmark command (`tandem bench`).
///
/// Measures any Redis-protocol server: SETs and GETs of random keys over many connections,
/// optionally pipelined; prints throughput and latency percentiles.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// The server to load.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:6379")]
    pub addr: String,
    /// Connections, each with its own task (1..=10000).
    #[arg(short = 'c', long, default_value_t = 50)]
    pub connections: usize,
    /// Commands sent per batch on each connection before reading the replies (1..=1024).
    #[arg(short = 'P', long, default_value_t = 1)]
    pub pipeline: usize,
    /// Number of distinct keys (key:0 .. key:N-1).
    #[arg(long, default_value_t = 100_000)]
    pub keyspace: u64,
    /// Bytes in each SET value.
    #[arg(short = 'd', long, value_name = "BYTES", default_value_t = 100)]
    pub value_size: usize,
    /// Fraction of GETs, from 0.0 (all SET) to 1.0 (all GET).
    #[arg(long, default_value_t = 0.0)]
    pub read_ratio: f64,
    /// Run for this many seconds instead of a fixed number of requests.
    #[arg(long, value_name = "SECS", conflicts_with = "requests",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub duration_secs: Option<u64>,
    /// Total requests to send [default: 200000].
    #[arg(short = 'n', long, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Seconds a connection waits for a reply before counting its requests as errors.
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_secs: u64,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Do not show the progress line.
    #[arg(long)]
    pub no_progress: bool,
    /// SET every key once before measuring, so GETs find values.
    #[arg(long)]
    pub warmup: bool,
    /// Follow every SET with `WAIT N 0` (Redis: wait for N replicas); the pair counts as one.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=16))]
    pub wait_replicas: u32,
}

impl BenchArgs {
    /// The run these options describe (not yet validated: [`run`] does that).
    pub fn to_config(&self) -> BenchConfig {
        let defaults = BenchConfig::default();
        let duration = self.duration_secs.map(Duration::from_secs);
        let requests = match duration {
            Some(_) => None,
            None => self.requests.or(defaults.requests),
        };
        BenchConfig {
            addr: self.addr.clone(),
            connections: self.connections,
            pipeline: self.pipeline,
            keyspace: self.keyspace,
            value_size: self.value_size,
            read_ratio: self.read_ratio,
            duration,
            requests,
            progress: !self.no_progress,
            warmup_keys: self.warmup,
            read_timeout: Duration::from_secs(self.timeout_secs),
            wait_replicas: self.wait_replicas,
        }
    }
}

/// Runs the benchmark `args` describe and prints the report on stdout: a table, or one JSON
/// object with `--json`. Fails if the run cannot start (bad options, server unreachable,
/// warmup failed); errors during the run are in the report, not failures.
pub async fn run_cli(args: BenchArgs) -> anyhow::Result<()> {
    let config = args.to_config();
    let report = run(&config)
        .await
        .with_context(|| format!("benchmark of {}", config.addr))?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    Ok(())
}
