//! `tandem sim`: replay one seed exactly, or sweep many seeds on every core.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use tandem_protocol::{Bug, Bugs};
use tandem_sim::run::{RunOptions, RunReport, replay_command, run_seed};

/// Options of `tandem sim`.
#[derive(Args, Debug)]
pub struct SimArgs {
    /// Run exactly this seed and print its trace digest.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Sweep this many seeds (starting at --first-seed).
    #[arg(long)]
    seeds: Option<u64>,
    /// First seed of a sweep.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Simulated time under load and faults, per seed.
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1000..=3_600_000))]
    duration_ms: u64,
    /// Plant a known protocol bug (to prove the checkers catch it).
    #[arg(long = "inject-bug", value_name = "NAME", value_parser = parse_bug)]
    inject_bug: Vec<Bug>,
    /// Worker threads for a sweep (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Stop a sweep at the first failing seed.
    #[arg(long)]
    stop_on_failure: bool,
    /// Print every fault as it is applied, with the cluster's state (for one seed).
    #[arg(long)]
    verbose: bool,
}

fn parse_bug(name: &str) -> Result<Bug, String> {
    name.parse()
}

fn options(args: &SimArgs, seed: u64) -> RunOptions {
    let mut bugs = Bugs::NONE;
    for bug in &args.inject_bug {
        bugs = bugs.with(*bug);
    }
    RunOptions {
        seed,
        duration_ms: args.duration_ms,
        bugs,
        verbose: args.verbose,
    }
}

fn print_failure(options: &RunOptions, report: &RunReport) {
    eprintln!("seed {} FAILED:", report.seed);
    for violation in &report.violations {
        eprintln!("  - {violation}");
    }
    eprintln!("  replay: {}", replay_command(options));
}

/// Runs the subcommand.
pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    match (args.seed, args.seeds) {
        (Some(seed), _) => run_one(&args, seed),
        (None, Some(count)) => sweep(&args, count),
        (None, None) => bail!("give --seed S to replay one run or --seeds N to sweep"),
    }
}

fn run_one(args: &SimArgs, seed: u64) -> anyhow::Result<ExitCode> {
    let options = options(args, seed);
    let started = Instant::now();
    let report = run_seed(&options);
    println!(
        "seed {} digest {:016x}: {} ops ({} completed), {} faults, {} events, {:.1} simulated s, {:.2} real s",
        report.seed,
        report.digest,
        report.operations,
        report.completed,
        report.faults,
        report.events,
        report.simulated_ms as f64 / 1000.0,
        started.elapsed().as_secs_f64()
    );
    if let Some(why) = &report.stuck {
        println!("note: the group ended stuck by the rules ({why}); liveness was not checked");
    }
    if report.undecided_keys > 0 {
        println!(
            "note: the linearizability checker could not decide {} keys within its budget",
            report.undecided_keys
        );
    }
    if report.passed() {
        println!("ok");
        Ok(ExitCode::SUCCESS)
    } else {
        print_failure(&options, &report);
        Ok(ExitCode::FAILURE)
    }
}

fn sweep(args: &SimArgs, count: u64) -> anyhow::Result<ExitCode> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let next = AtomicU64::new(args.first_seed);
    let end = args
        .first_seed
        .checked_add(count)
        .context("seed range overflows")?;
    let failures: Mutex<Vec<(RunOptions, RunReport)>> = Mutex::new(Vec::new());
    let simulated_ms = AtomicU64::new(0);
    let undecided = AtomicU64::new(0);
    let stuck = AtomicU64::new(0);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        return;
                    }
                    let options = options(args, seed);
                    let report = run_seed(&options);
                    simulated_ms.fetch_add(report.simulated_ms, Ordering::Relaxed);
                    undecided.fetch_add(report.undecided_keys as u64, Ordering::Relaxed);
                    stuck.fetch_add(u64::from(report.stuck.is_some()), Ordering::Relaxed);
                    if !report.passed() {
                        print_failure(&options, &report);
                        failures
                            .lock()
                            .expect("no poisoned lock")
                            .push((options, report));
                        if args.stop_on_failure {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().expect("no poisoned lock");
    let ran = (next.load(Ordering::Relaxed).min(end) - args.first_seed).min(count);
    println!(
        "{} seeds, {} violations, {:.0} simulated s, {:.1} real s",
        ran,
        failures.len(),
        simulated_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        started.elapsed().as_secs_f64()
    );
    let undecided = undecided.load(Ordering::Relaxed);
    let stuck = stuck.load(Ordering::Relaxed);
    if stuck > 0 {
        println!(
            "note: {stuck} runs ended with every holder of the state crashed (stuck by V6/V7; safety checked, liveness not)"
        );
    }
    if undecided > 0 {
        println!(
            "note: {undecided} key histories were too large for the checker's budget (not counted as violations)"
        );
    }
    if let Some((options, _)) = failures.iter().min_by_key(|(o, _)| o.seed) {
        println!("first failing seed: {}", replay_command(options));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
