//! `tandem status`: print every replica group's view as the view service sees it.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

/// Options of `tandem status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// View service addresses, comma-separated (tried in order).
    #[arg(
        long = "viewserver",
        value_name = "ADDRS",
        value_delimiter = ',',
        required = true
    )]
    view_service: Vec<String>,
    /// Print JSON: {"groups":[{"group","viewnum","primary","backups","acked","idle"}]}.
    #[arg(long)]
    json: bool,
    /// Print each group's recent views, newest first, with when and why each one started.
    #[arg(long)]
    history: bool,
    /// Give up on an address after this long.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

/// Queries the view service and prints its status.
pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let status = runtime.block_on(tandem_runtime::status(&args.view_service, timeout))?;
    if args.history && args.json {
        println!("{}", tandem_runtime::status_history_json(&status));
    } else if args.history {
        print!("{}", tandem_runtime::status_history(&status));
    } else if args.json {
        println!("{}", tandem_runtime::status_json(&status));
    } else {
        print!("{}", tandem_runtime::status_table(&status));
    }
    Ok(ExitCode::SUCCESS)
}
