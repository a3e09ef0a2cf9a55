//! `tandem dev`: a view service, three servers and a coordinator in one process.

use std::process::ExitCode;

use clap::Args;
use tandem_runtime::{DevCluster, DevOptions};

use crate::role::{LogArgs, run_role_multi};

/// Options of `tandem dev`.
#[derive(Args, Debug)]
pub struct DevArgs {
    /// The Redis port; the view service listens on port+1000, the servers on port+1001..+1003.
    /// 0 picks free ports.
    #[arg(long, default_value_t = 6379)]
    port: u16,
    /// Serve the dashboard and the view service's admin endpoint here (a bare port means
    /// 127.0.0.1:PORT); the servers and the coordinator then get admin endpoints on free ports.
    #[arg(long, value_name = "HOST:PORT", env = "TANDEM_ADMIN")]
    admin: Option<String>,
    #[command(flatten)]
    log: LogArgs,
}

/// Runs the cluster until Ctrl-C or SIGTERM.
pub fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    let options = DevOptions {
        port: args.port,
        admin: args.admin,
        ..DevOptions::default()
    };
    let log = args.log.resolve(None, None);
    run_role_multi(&log, |shutdown| async move {
        let cluster = DevCluster::start(options, &shutdown).await?;
        println!("view service  {}", cluster.view_service);
        for (i, server) in cluster.servers.iter().enumerate() {
            println!("server {i}      {server}");
        }
        println!("coordinator   {}", cluster.coordinator);
        if let Some(admin) = &cluster.admin {
            println!();
            println!("dashboard     http://{}/", admin.view_service);
            for (i, server) in admin.servers.iter().enumerate() {
                println!("server {i} admin http://{server}/status");
            }
            println!("coordinator admin http://{}/metrics", admin.coordinator);
        }
        println!();
        println!("try: redis-cli -p {}", cluster.coordinator.port());
        println!("     tandem status --viewserver {}", cluster.view_service);
        cluster.wait().await?;
        Ok(())
    })
}
