//! `tandem bench` (load any Redis-protocol endpoint) and `tandem bench-failover` (kill the
//! primary of a real cluster under load, again and again, and measure what clients saw).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tandem_bench::failover::{
    FailoverConfig, FailoverReport, FailoverTarget, KillMode, run_failover,
};

/// Runs `tandem bench`.
pub fn run(args: tandem_bench::BenchArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    runtime.block_on(tandem_bench::run_cli(args))?;
    Ok(ExitCode::SUCCESS)
}

/// What `tandem bench-failover` runs against.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Target {
    /// A tandem cluster of this binary's roles.
    Tandem,
    /// Redis master + 2 replicas + 3 Sentinels (needs redis-server and redis-sentinel).
    RedisSentinel,
    /// tandem, then Redis + Sentinel, one report each.
    Both,
}

/// What `tandem bench-failover` kills in each round of the tandem target.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kill {
    /// The primary.
    Primary,
    /// The view-service leader (clients should see no error and no view change: Q4).
    VsLeader,
    /// The view-service leader and the primary at once.
    #[value(name = "vs-leader+primary")]
    VsLeaderPrimary,
}

impl From<Kill> for KillMode {
    fn from(kill: Kill) -> KillMode {
        match kill {
            Kill::Primary => KillMode::Primary,
            Kill::VsLeader => KillMode::VsLeader,
            Kill::VsLeaderPrimary => KillMode::VsLeaderAndPrimary,
        }
    }
}

/// Options of `tandem bench-failover`.
#[derive(Args, Debug)]
pub struct FailoverArgs {
    /// What to kill the primary of. Lost acknowledged writes fail the run for tandem only:
    /// Redis replicates asynchronously, so its losses are reported, not judged.
    #[arg(long, value_enum, default_value_t = Target::Tandem)]
    target: Target,
    /// What to kill in each round of the tandem target. Redis + Sentinel always has its
    /// master killed (the baseline).
    #[arg(long, value_enum, default_value_t = Kill::Primary)]
    kill: Kill,
    /// How many times to kill (each target).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    kills: u64,
    /// Concurrent writer connections.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    writers: u64,
    /// Sentinel's down-after-milliseconds. At 1000 or less, Sentinel 7 often fails over the
    /// master it has just promoted (its link to it reconnects at most once a second), and writes
    /// acknowledged by the demoted one are lost: `extra failovers` in the report counts that.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    sentinel_down_after_ms: u64,
    /// Print one JSON object per target, one a line, instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `tandem bench-failover`.
pub fn run_failover_bench(args: FailoverArgs) -> anyhow::Result<ExitCode> {
    let tandem = std::env::current_exe().context("finding the tandem executable")?;
    let targets: &[FailoverTarget] = match args.target {
        Target::Tandem => &[FailoverTarget::Tandem],
        Target::RedisSentinel => &[FailoverTarget::RedisSentinel],
        Target::Both => &[FailoverTarget::Tandem, FailoverTarget::RedisSentinel],
    };
    let mut tandem_lost = 0;
    for (i, &target) in targets.iter().enumerate() {
        let kill = match target {
            FailoverTarget::Tandem => args.kill.into(),
            FailoverTarget::RedisSentinel => KillMode::Primary,
        };
        let config = FailoverConfig {
            target,
            kill,
            tandem: tandem.clone(),
            kills: args.kills as usize,
            writers: args.writers as usize,
            sentinel_down_after_ms: args.sentinel_down_after_ms,
        };
        let report = run_failover(&config)?;
        if i > 0 && !args.json {
            println!();
        }
        print_report(target, kill, &report, args.json);
        if target == FailoverTarget::Tandem {
            tandem_lost = report.lost;
        }
    }
    Ok(if tandem_lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(target: FailoverTarget, kill: KillMode, report: &FailoverReport, json: bool) {
    if json {
        let windows: Vec<String> = report
            .windows_ms
            .iter()
            .map(|w| format!("{w:.1}"))
            .collect();
        println!(
            "{{\"target\":\"{}\",\"kill\":\"{}\",\"kills\":{},\"window_p50_ms\":{:.1},\"window_max_ms\":{:.1},\"windows_ms\":[{}],\"acknowledged\":{},\"lost\":{},\"client_errors\":{},\"view_changes\":{},\"extra_failovers\":{}}}",
            target.label(),
            kill.label(),
            report.windows_ms.len(),
            report.p50_ms(),
            report.max_ms(),
            windows.join(","),
            report.acknowledged,
            report.lost,
            report.client_errors,
            report
                .view_changes
                .map_or_else(|| "null".to_string(), |v| v.to_string()),
            report.extra_failovers
        );
    } else {
        let windows: Vec<String> = report
            .windows_ms
            .iter()
            .map(|w| format!("{w:.0}"))
            .collect();
        println!("target:               {}", target.label());
        println!("killed each round:    {}", kill.label());
        println!("kills:                {}", report.windows_ms.len());
        println!("window p50:           {:.0} ms", report.p50_ms());
        println!("window max:           {:.0} ms", report.max_ms());
        println!("windows (ms):         {}", windows.join(" "));
        println!("acknowledged writes:  {}", report.acknowledged);
        println!("lost acknowledged:    {}", report.lost);
        println!("failed requests:      {}", report.client_errors);
        if let Some(changes) = report.view_changes {
            println!("view changes:         {changes}");
        }
        if target == FailoverTarget::RedisSentinel {
            println!("extra failovers:      {}", report.extra_failovers);
        }
    }
}
