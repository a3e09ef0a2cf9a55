//! What one benchmark run does: [`BenchConfig`] and its validation.

use std::time::Duration;

/// Most connections one run may open.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Most commands one connection may have in flight.
pub const MAX_PIPELINE: usize = 1024;
/// Largest SET value, in bytes.
pub const MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;
/// Largest batch one connection may write at once (`pipeline * value_size`), in bytes; keeps
/// a single connection's write buffer bounded even at the extremes of both settings.
pub const MAX_BATCH_BYTES: usize = 256 * 1024 * 1024;

/// One benchmark run: where to connect, the workload, and when to stop.
///
/// Exactly one of `duration` and `requests` is set. [`BenchConfig::default`] sends 200,000
/// SETs of 100-byte values over 50 connections to `127.0.0.1:6379`.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    /// The server, `HOST:PORT`.
    pub addr: String,
    /// Connections opened, each driven by its own task (1..=10,000).
    pub connections: usize,
    /// Commands written per batch on each connection before reading their replies (1..=1024).
    pub pipeline: usize,
    /// Keys are `key:0` up to `key:<keyspace - 1>` (at least 1).
    pub keyspace: u64,
    /// Bytes in each SET value (0..=16 MiB).
    pub value_size: usize,
    /// Fraction of commands that are GETs: 0.0 is all SET, 1.0 all GET.
    pub read_ratio: f64,
    /// Stop starting new batches after this long; nothing waits past it.
    pub duration: Option<Duration>,
    /// Send exactly this many requests in total.
    pub requests: Option<u64>,
    /// Show a progress line on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// SET every key of the keyspace once before measuring, so GETs find values.
    pub warmup_keys: bool,
    /// How long a connection waits for a reply (and for a write to go through) before it
    /// gives up: its unanswered requests count as errors and the connection closes.
    pub read_timeout: Duration,
    /// After each SET, send `WAIT n 0` and count the pair as one request (Redis's way of waiting
    /// for replicas, to compare with a store that replicates synchronously). 0 = off.
    pub wait_replicas: u32,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            addr: "127.0.0.1:6379".to_string(),
            connections: 50,
            pipeline: 1,
            keyspace: 100_000,
            value_size: 100,
            read_ratio: 0.0,
            duration: None,
            requests: Some(200_000),
            progress: true,
            warmup_keys: false,
            read_timeout: Duration::from_secs(10),
            wait_replicas: 0,
        }
    }
}

/// Why a [`BenchConfig`] cannot be run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The address is empty.
    #[error("the server address is empty (expected HOST:PORT)")]
    EmptyAddr,
    /// `connections` is outside 1..=10,000.
    #[error("connections must be between 1 and {MAX_CONNECTIONS}, got {0}")]
    Connections(usize),
    /// `pipeline` is outside 1..=1024.
    #[error("pipeline must be between 1 and {MAX_PIPELINE}, got {0}")]
    Pipeline(usize),
    /// `keyspace` is zero.
    #[error("keyspace must be at least 1")]
    Keyspace,
    /// `value_size` is larger than 16 MiB.
    #[error("value size must be at most {MAX_VALUE_BYTES} bytes, got {0}")]
    ValueSize(usize),
    /// `pipeline * value_size` is larger than 256 MiB.
    #[error(
        "pipeline {pipeline} x value size {value_size} bytes exceeds {MAX_BATCH_BYTES} bytes per batch"
    )]
    BatchTooLarge {
        /// The configured pipeline depth.
        pipeline: usize,
        /// The configured value size.
        value_size: usize,
    },
    /// `read_ratio` is not a number between 0.0 and 1.0.
    #[error("read ratio must be between 0.0 and 1.0, got {0}")]
    ReadRatio(f64),
    /// Both or neither of `duration` and `requests` are set.
    #[error("set exactly one of a duration and a request count")]
    StopCondition,
    /// `duration` is zero.
    #[error("duration must be longer than zero")]
    ZeroDuration,
    /// `requests` is zero.
    #[error("requests must be at least 1")]
    ZeroRequests,
    /// `read_timeout` is zero.
    #[error("read timeout must be longer than zero")]
    ZeroReadTimeout,
}

impl BenchConfig {
    /// Checks every bound, returning the first one violated.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.addr.trim().is_empty() {
            return Err(ConfigError::EmptyAddr);
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.connections) {
            return Err(ConfigError::Connections(self.connections));
        }
        if !(1..=MAX_PIPELINE).contains(&self.pipeline) {
            return Err(ConfigError::Pipeline(self.pipeline));
        }
        if self.keyspace == 0 {
            return Err(ConfigError::Keyspace);
        }
        if self.value_size > MAX_VALUE_BYTES {
            return Err(ConfigError::ValueSize(self.value_size));
        }
        if self.pipeline.saturating_mul(self.value_size) > MAX_BATCH_BYTES {
            return Err(ConfigError::BatchTooLarge {
                pipeline: self.pipeline,
                value_size: self.value_size,
            });
        }
        // Written so that NaN fails too.
        if !(self.read_ratio >= 0.0 && self.read_ratio <= 1.0) {
            return Err(ConfigError::ReadRatio(self.read_ratio));
        }
        if self.read_timeout.is_zero() {
            return Err(ConfigError::ZeroReadTimeout);
        }
        match (self.duration, self.requests) {
            (Some(duration), None) if duration.is_zero() => Err(ConfigError::ZeroDuration),
            (None, Some(0)) => Err(ConfigError::ZeroRequests),
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err(ConfigError::StopCondition),
        }
    }
}
