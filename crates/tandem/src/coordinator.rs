//! `tandem coordinator`: run the Redis-protocol front end.

use std::process::ExitCode;

use clap::Args;
use tandem_runtime::{Coordinator, CoordinatorConfig};

use crate::role::{LogArgs, run_role};

/// Options of `tandem coordinator`.
#[derive(Args, Debug)]
pub struct CoordinatorArgs {
    /// Address to listen on for Redis clients.
    #[arg(long, value_name = "HOST:PORT")]
    listen: String,
    /// View service addresses, comma-separated (the first is used).
    #[arg(
        long = "viewserver",
        value_name = "ADDRS",
        value_delimiter = ',',
        required = true
    )]
    view_service: Vec<String>,
    /// A request not answered within this long gets `-TRYAGAIN` (C3).
    #[arg(long, default_value_t = 5000)]
    request_timeout_ms: u64,
    #[command(flatten)]
    log: LogArgs,
}

/// Runs the coordinator until Ctrl-C or SIGTERM.
pub fn run(args: CoordinatorArgs) -> anyhow::Result<ExitCode> {
    let mut config = CoordinatorConfig::default();
    config.clerk.request_timeout_ms = args.request_timeout_ms;
    config.validate()?;
    run_role(&args.log, |shutdown| async move {
        let coordinator = Coordinator::bind(config, &args.listen, &args.view_service).await?;
        coordinator.run(shutdown).await?;
        Ok(())
    })
}
