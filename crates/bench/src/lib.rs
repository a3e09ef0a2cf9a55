//! A load generator for any Redis-protocol endpoint, so that tandem and Redis are measured by
//! the same tool with the same workload.
//!
//! Describe a run with a [`BenchConfig`] (or parse [`BenchArgs`] from the command line), call
//! [`run`], and print the [`Report`] it returns. [`run_cli`] does all three for the `tandem
//! bench` subcommand.
//!
//! Each connection is one tokio task that writes `pipeline` commands (`SET key:<n> <value>` or
//! `GET key:<n>`, chosen by a small deterministic generator seeded per connection), then reads
//! that many replies. A request's latency runs from the write of its batch to the arrival of
//! its reply; the per-connection HdrHistograms are merged at the end.
//!
//! # Layout
//!
//! - `config` — [`BenchConfig`], its defaults and [`BenchConfig::validate`].
//! - `cli` — [`BenchArgs`] (clap) and [`run_cli`].
//! - `workload` (private) — the key generator and the encoding of one batch of commands.
//! - `conn` (private) — one connection: writing a batch, reading replies under a time limit.
//! - `run` — [`run`]: connecting, warmup, the measured phase, progress, merging the results.
//! - `report` — [`Report`] and [`Latency`]: the table and the JSON object.
//! - [`failover`] — kills the primary of a real cluster under load and measures the window.
//!
//! # Invariants
//!
//! - Every wait on the server is bounded: connecting, each batch's write and each reply read
//!   have a time limit, and in a timed run nothing waits past the deadline.
//! - A reply larger than 512 MiB or a protocol error closes that connection only; its
//!   unanswered requests count as errors and the run goes on with the other connections.
//! - With `requests` set, exactly that many requests are sent (fewer only if connections fail).

mod cli;
mod config;
mod conn;
pub mod failover;
mod report;
mod run;
mod sentinel;
mod workload;

pub use cli::{BenchArgs, run_cli};
pub use config::{BenchConfig, ConfigError};
pub use report::{Latency, Report};
pub use run::{BenchError, run};
