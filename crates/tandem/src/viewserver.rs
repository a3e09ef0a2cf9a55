//! `tandem viewserver`: run the view service.

use std::process::ExitCode;

use clap::Args;
use tandem_runtime::{ViewServer, ViewServerConfig};

use crate::role::{LogArgs, run_role};

/// Options of `tandem viewserver`.
#[derive(Args, Debug)]
pub struct ViewServerArgs {
    /// Address to listen on for servers and coordinators.
    #[arg(long, value_name = "HOST:PORT")]
    listen: String,
    /// How often servers ping (V2).
    #[arg(long, default_value_t = 100)]
    ping_interval_ms: u64,
    /// Missed pings after which a server is dead (V3).
    #[arg(long, default_value_t = 5)]
    dead_pings: u32,
    /// Backups per replica group (V8).
    #[arg(long, default_value_t = 1)]
    backups: usize,
    #[command(flatten)]
    log: LogArgs,
}

/// Runs the view service until Ctrl-C or SIGTERM.
pub fn run(args: ViewServerArgs) -> anyhow::Result<ExitCode> {
    let mut config = ViewServerConfig::default();
    config.view_service.ping_interval_ms = args.ping_interval_ms;
    config.view_service.dead_pings = args.dead_pings;
    config.view_service.backups = args.backups;
    config.validate()?;
    run_role(&args.log, |shutdown| async move {
        let view_server = ViewServer::bind(config, &args.listen).await?;
        view_server.run(shutdown).await?;
        Ok(())
    })
}
