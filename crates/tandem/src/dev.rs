//! `tandem dev`: a view service, three servers and a coordinator in one process.

use std::process::ExitCode;

use clap::Args;
use tandem_runtime::{DevCluster, DevOptions};

use crate::role::{LogArgs, run_role_on};

/// Options of `tandem dev`.
#[derive(Args, Debug)]
pub struct DevArgs {
    /// The Redis port; the view service listens on port+1000, the servers on port+1001..+1003.
    /// 0 picks free ports.
    #[arg(long, default_value_t = 6379)]
    port: u16,
    #[command(flatten)]
    log: LogArgs,
}

/// Runs the cluster until Ctrl-C or SIGTERM.
pub fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    let options = DevOptions {
        port: args.port,
        ..DevOptions::default()
    };
    run_role_on(&args.log, None, |shutdown| async move {
        let cluster = DevCluster::start(options, &shutdown).await?;
        println!("view service  {}", cluster.view_service);
        for (i, server) in cluster.servers.iter().enumerate() {
            println!("server {i}      {server}");
        }
        println!("coordinator   {}", cluster.coordinator);
        println!();
        println!("try: redis-cli -p {}", cluster.coordinator.port());
        println!("     tandem status --viewserver {}", cluster.view_service);
        cluster.wait().await?;
        Ok(())
    })
}
