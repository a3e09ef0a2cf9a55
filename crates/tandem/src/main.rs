//! The `tandem` command: one binary, a subcommand per role.

mod bench;
mod certs;
mod config;
mod coordinator;
mod dev;
mod role;
mod server;
mod sim;
mod slots;
mod status;
mod viewserver;

use clap::{Parser, Subcommand};

/// jemalloc instead of glibc's malloc: a replica allocates and frees a value, a key and a few
/// small records per operation, and a backup receiving a state transfer allocates millions
/// in a row. Profiles showed glibc's `_int_malloc`/`malloc_consolidate` at up to 30% of a
/// backup's time during a transfer (Redis ships with jemalloc for the same reason).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A replicated key/value store that keeps serving through crashes and partitions.
#[derive(Parser, Debug)]
#[command(name = "tandem", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run the view service, which decides the primary and backups of every group.
    Viewserver(viewserver::ViewServerArgs),
    /// Run one replica server.
    Server(server::ServerArgs),
    /// Run the Redis-protocol front end.
    Coordinator(coordinator::CoordinatorArgs),
    /// Show every group's view as the view service sees it.
    Status(status::StatusArgs),
    /// Show or change which group owns each hash slot: show, move, rebalance.
    Slots(slots::SlotsArgs),
    /// Run a view service, three servers and a coordinator in one process.
    Dev(dev::DevArgs),
    /// Cluster certificates: `tandem certs create` makes a CA and one per process.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Configuration files: `tandem config example ROLE` prints a commented one.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the deterministic cluster simulator: one seed, or a sweep over many.
    Sim(sim::SimArgs),
    /// Load any Redis-protocol endpoint (tandem or Redis) and report throughput and latency.
    Bench(tandem_bench::BenchArgs),
    /// Start a cluster, kill its primary under load again and again, report the windows.
    BenchFailover(bench::FailoverArgs),
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print a commented example configuration file for ROLE, every key at its default.
    Example {
        /// viewserver, server or coordinator.
        #[arg(value_enum)]
        role: config::ExampleRole,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Viewserver(args) => viewserver::run(args),
        Command::Server(args) => server::run(args),
        Command::Coordinator(args) => coordinator::run(args),
        Command::Status(args) => status::run(args),
        Command::Slots(args) => slots::run(args),
        Command::Dev(args) => dev::run(args),
        Command::Certs(command) => certs::run(command),
        Command::Sim(args) => sim::run(args),
        Command::Config(ConfigCommand::Example { role }) => {
            print!("{}", config::example(role));
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Bench(args) => bench::run(args),
        Command::BenchFailover(args) => bench::run_failover_bench(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("tandem: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}
