//! `tandem server`: run one replica server.

use std::process::ExitCode;

use clap::Args;
use tandem_protocol::GroupId;
use tandem_runtime::{Server, ServerConfig};

use crate::role::{LogArgs, run_role};

/// Options of `tandem server`.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Address to listen on for the primary, backups and coordinators.
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
    /// The address peers reach this server at, which is also its id (default: the bound
    /// listen address).
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Replica group served.
    #[arg(long, default_value_t = 0)]
    group: u32,
    /// How often to ping the view service (V2).
    #[arg(long, default_value_t = 100)]
    ping_interval_ms: u64,
    #[command(flatten)]
    log: LogArgs,
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let mut config = ServerConfig {
        group: GroupId(args.group),
        ..ServerConfig::default()
    };
    config.replica.ping_interval_ms = args.ping_interval_ms;
    config.validate()?;
    run_role(&args.log, |shutdown| async move {
        let server = Server::bind(
            config,
            &args.listen,
            args.advertise.as_deref(),
            &args.view_service,
        )
        .await?;
        server.run(shutdown).await?;
        Ok(())
    })
}
