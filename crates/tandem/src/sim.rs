//! `tandem sim`: replay one seed exactly, or sweep many seeds on every core.
//!
//! Everything goes through `writeln!` on locked streams: `println!` panics when the reader went
//! away (`tandem sim --seed 1 --verbose | head`), and locking keeps the sweep threads' failure
//! reports whole.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use tandem_protocol::{Bug, Bugs};
use tandem_sim::PanicPrint;
use tandem_sim::run::{RunOptions, RunReport, replay_command, run_seed, run_seed_traced};

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
    /// Nodes of the replicated view service (a Raft group): 1, 3 or 5.
    #[arg(long, default_value_t = 3, value_parser = parse_vs_nodes)]
    vs_nodes: usize,
    /// Replica groups (S): with more than one, the run starts with a rebalance, clients route
    /// by slot and slot moves join the faults.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=8))]
    groups: u64,
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
    #[arg(long, conflicts_with = "seeds")]
    verbose: bool,
}

fn parse_bug(name: &str) -> Result<Bug, String> {
    name.parse()
}

fn parse_vs_nodes(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n @ (1 | 3 | 5)) => Ok(n),
        _ => Err(format!("--vs-nodes must be 1, 3 or 5, not '{text}'")),
    }
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
        vs_nodes: args.vs_nodes,
        groups: args.groups as usize,
        // A sweep reports a panicking seed with its location and replay command; the replay is
        // where the standard message (and a backtrace) are wanted.
        panic_print: match args.seed {
            Some(_) => PanicPrint::Standard,
            None => PanicPrint::Silent,
        },
        panic_at_ms: None,
    }
}

fn print_failure(out: &mut dyn Write, options: &RunOptions, report: &RunReport) -> io::Result<()> {
    writeln!(out, "seed {} FAILED:", report.seed)?;
    for violation in &report.violations {
        writeln!(out, "  - {violation}")?;
    }
    writeln!(out, "  replay: {}", replay_command(options))
}

/// A reader that went away (`| head`) ends the output quietly; other write errors are errors.
fn unless_broken_pipe(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
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
    let mut out = io::stdout().lock();
    let started = Instant::now();
    let report = if args.verbose {
        match run_seed_traced(&options, &mut out) {
            Ok(report) => report,
            // The reader went away mid-run (`| head`): stop, there is no verdict to give.
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                return Ok(ExitCode::SUCCESS);
            }
            Err(error) => return Err(error.into()),
        }
    } else {
        run_seed(&options)
    };
    unless_broken_pipe(print_report(&mut out, &report, started.elapsed()))?;
    if report.passed() {
        return Ok(ExitCode::SUCCESS);
    }
    unless_broken_pipe(print_failure(&mut io::stderr().lock(), &options, &report))?;
    Ok(ExitCode::FAILURE)
}

fn print_report(out: &mut dyn Write, report: &RunReport, real: Duration) -> io::Result<()> {
    writeln!(
        out,
        "seed {} digest {:016x}: {} ops ({} completed), {} faults, {} events, {:.1} simulated s, {:.2} real s",
        report.seed,
        report.digest,
        report.operations,
        report.completed,
        report.faults,
        report.events,
        report.simulated_ms as f64 / 1000.0,
        real.as_secs_f64()
    )?;
    if report.executions_per_group.len() > 1 {
        writeln!(
            out,
            "{} slot configurations; executions per group: {:?}",
            report.configs, report.executions_per_group
        )?;
    }
    if let Some(why) = &report.stuck {
        writeln!(
            out,
            "note: the group ended stuck by the rules ({why}); liveness was not checked"
        )?;
    }
    if report.undecided_keys > 0 {
        writeln!(
            out,
            "note: the linearizability checker could not decide {} keys within its budget",
            report.undecided_keys
        )?;
    }
    if report.passed() {
        writeln!(out, "ok")?;
    }
    Ok(())
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
                        // A closed stderr must not end the sweep: the summary on stdout still
                        // names the first failing seed, and the exit status counts it.
                        let _ = print_failure(&mut io::stderr().lock(), &options, &report);
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
    let first_failure = failures.iter().min_by_key(|(o, _)| o.seed);
    let summary = Summary {
        seeds: ran,
        failed: failures.len(),
        simulated_ms: simulated_ms.load(Ordering::Relaxed),
        real_s: started.elapsed().as_secs_f64(),
        stuck: stuck.load(Ordering::Relaxed),
        undecided: undecided.load(Ordering::Relaxed),
        first_failure: first_failure.map(|(options, _)| replay_command(options)),
    };
    unless_broken_pipe(summary.print(&mut io::stdout().lock()))?;
    Ok(match first_failure {
        Some(_) => ExitCode::FAILURE,
        None => ExitCode::SUCCESS,
    })
}

/// The end of a sweep.
struct Summary {
    seeds: u64,
    failed: usize,
    simulated_ms: u64,
    real_s: f64,
    stuck: u64,
    undecided: u64,
    /// The replay command of the lowest failing seed.
    first_failure: Option<String>,
}

impl Summary {
    fn print(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "{} seeds, {} failed, {:.0} simulated s, {:.1} real s",
            self.seeds,
            self.failed,
            self.simulated_ms as f64 / 1000.0,
            self.real_s
        )?;
        if self.stuck > 0 {
            writeln!(
                out,
                "note: {} runs ended with every holder of the state crashed (stuck by V6/V7; safety checked, liveness not)",
                self.stuck
            )?;
        }
        if self.undecided > 0 {
            writeln!(
                out,
                "note: {} key histories were too large for the checker's budget (not counted as violations)",
                self.undecided
            )?;
        }
        if let Some(replay) = &self.first_failure {
            writeln!(out, "first failing seed: {replay}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_vs_nodes;

    #[test]
    fn vs_nodes_accepts_one_three_or_five() {
        for n in [1, 3, 5] {
            assert_eq!(parse_vs_nodes(&n.to_string()), Ok(n));
        }
        for bad in ["0", "2", "4", "7", "x", ""] {
            let err = parse_vs_nodes(bad).unwrap_err();
            assert!(err.contains("1, 3 or 5"), "{bad}: {err}");
        }
    }
}
