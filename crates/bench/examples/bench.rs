//! The benchmark as a standalone program, until `tandem bench` wires it in:
//! `cargo run --release -p tandem-bench --example bench -- --addr 127.0.0.1:6379 -n 200000`.

use std::process::ExitCode;

use clap::Parser;
use tandem_bench::{BenchArgs, run_cli};

/// Load a Redis-protocol server and report throughput and latency.
#[derive(Parser, Debug)]
#[command(name = "bench")]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run_cli(Cli::parse().args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error:#}");
            ExitCode::from(2)
        }
    }
}
