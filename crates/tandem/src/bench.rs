//! `tandem bench` (load any Redis-protocol endpoint) and `tandem bench-failover` (kill the
//! primary of a real cluster under load, again and again, and measure what clients saw).

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tandem_bench::failover::{FailoverConfig, run_failover};

/// Runs `tandem bench`.
pub fn run(args: tandem_bench::BenchArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    runtime.block_on(tandem_bench::run_cli(args))?;
    Ok(ExitCode::SUCCESS)
}

/// Options of `tandem bench-failover`.
#[derive(Args, Debug)]
pub struct FailoverArgs {
    /// How many times to kill the primary.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    kills: u64,
    /// Concurrent writer connections.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    writers: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `tandem bench-failover`.
pub fn run_failover_bench(args: FailoverArgs) -> anyhow::Result<ExitCode> {
    let tandem = std::env::current_exe().context("finding the tandem executable")?;
    let config = FailoverConfig {
        tandem,
        kills: args.kills as usize,
        writers: args.writers as usize,
    };
    let report = run_failover(&config)?;
    if args.json {
        let windows: Vec<String> = report
            .windows_ms
            .iter()
            .map(|w| format!("{w:.1}"))
            .collect();
        println!(
            "{{\"kills\":{},\"window_p50_ms\":{:.1},\"window_max_ms\":{:.1},\"windows_ms\":[{}],\"acknowledged\":{},\"lost\":{}}}",
            report.windows_ms.len(),
            report.p50_ms(),
            report.max_ms(),
            windows.join(","),
            report.acknowledged,
            report.lost
        );
    } else {
        let windows: Vec<String> = report
            .windows_ms
            .iter()
            .map(|w| format!("{w:.0}"))
            .collect();
        println!("kills:                {}", report.windows_ms.len());
        println!("window p50:           {:.0} ms", report.p50_ms());
        println!("window max:           {:.0} ms", report.max_ms());
        println!("windows (ms):         {}", windows.join(" "));
        println!("acknowledged writes:  {}", report.acknowledged);
        println!("lost acknowledged:    {}", report.lost);
    }
    Ok(if report.lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
