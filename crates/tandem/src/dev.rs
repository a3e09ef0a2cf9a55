//! `tandem dev`: a view service of three Raft nodes, three servers and a coordinator in one
//! process.

use std::process::ExitCode;

use clap::Args;
use std::sync::Arc;

use tandem_runtime::tls::{NodeSpec, generate_cluster};
use tandem_runtime::{DevCluster, DevOptions};

use crate::role::{LogArgs, run_role_multi};

/// Options of `tandem dev`.
#[derive(Args, Debug)]
pub struct DevArgs {
    /// The Redis port; the view-service nodes listen on port+1000.. (+1000..+1002 with three),
    /// the servers on the ports after them. 0 picks free ports.
    #[arg(long, default_value_t = 6379)]
    port: u16,
    /// Replica groups sharing the keyspace (S2). With more than one, each group has two
    /// servers, every server serves Redis Cluster clients on port+1, port+2, ... and the slots
    /// are spread over the groups once they are up (1: three servers in one group).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    groups: u64,
    /// View-service nodes (a Raft group; 1 runs a single node that keeps nothing on disk).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=64))]
    view_services: u64,
    /// Where the view-service nodes keep their Raft logs (default: a temp directory, removed
    /// on exit).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// Serve the dashboard and the view service's admin endpoint here (a bare port means
    /// 127.0.0.1:PORT); the servers and the coordinator then get admin endpoints on free ports.
    #[arg(long, value_name = "HOST:PORT", env = "TANDEM_ADMIN")]
    admin: Option<String>,
    /// Where to write the cluster CA and an operator certificate (admin.pem, admin.key) for
    /// `tandem status`; every process gets its certificate in memory from that CA. Replaced
    /// on every start [default: tandem-dev-certs-PID in the temp directory].
    #[arg(long, value_name = "DIR")]
    certs: Option<std::path::PathBuf>,
    /// Run without certificates (plain TCP on the internal ports).
    #[arg(long)]
    insecure: bool,
    #[command(flatten)]
    log: LogArgs,
}

/// Runs the cluster until Ctrl-C or SIGTERM.
pub fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    let certs_dir = args.certs.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("tandem-dev-certs-{}", std::process::id()))
    });
    let ca = match args.insecure {
        true => None,
        false => {
            let specs = [NodeSpec::parse("admin=admin@dev")?];
            let certs = generate_cluster(&specs, 30)?;
            certs.write(&certs_dir, true)?;
            Some(Arc::new(certs.ca))
        }
    };
    let certs_dir = certs_dir.display().to_string();
    let insecure = args.insecure;
    let options = DevOptions {
        ca,
        port: args.port,
        admin: args.admin,
        view_services: args.view_services as usize,
        groups: args.groups as usize,
        servers: if args.groups > 1 { 2 } else { 3 },
        data_dir: args.data_dir,
        ..DevOptions::default()
    };
    let log = args.log.resolve(None, None);
    run_role_multi(&log, |shutdown| async move {
        if insecure {
            crate::role::warn_if_insecure(None);
        }
        let cluster = DevCluster::start(options, &shutdown).await?;
        for (i, node) in cluster.view_services.iter().enumerate() {
            println!("view service {} {node}", i + 1);
        }
        for (i, server) in cluster.servers.iter().enumerate() {
            match cluster.client_ports.get(i) {
                Some(client) => println!("server {i}      {server}  clients {client}"),
                None => println!("server {i}      {server}"),
            }
        }
        println!("coordinator   {}", cluster.coordinator);
        if let Some(admin) = &cluster.admin {
            println!();
            println!("dashboard     http://{}/", admin.view_service);
            for (i, node) in admin.view_services.iter().enumerate().skip(1) {
                println!("view service {} admin http://{node}/", i + 1);
            }
            for (i, server) in admin.servers.iter().enumerate() {
                println!("server {i} admin http://{server}/status");
            }
            println!("coordinator admin http://{}/metrics", admin.coordinator);
        }
        println!();
        println!("try: redis-cli -p {}", cluster.coordinator.port());
        if let Some(first) = cluster.client_ports.first() {
            println!(
                "     redis-cli -c -p {}   (cluster mode, any server)",
                first.port()
            );
        }
        let list: Vec<String> = cluster
            .view_services
            .iter()
            .map(ToString::to_string)
            .collect();
        match &cluster.admin_tls {
            Some(_) => println!(
                "     tandem status --viewserver {} --cluster-ca {certs_dir}/ca.pem \\\n         \
                 --cluster-cert {certs_dir}/admin.pem --cluster-key {certs_dir}/admin.key",
                list.join(",")
            ),
            None => println!(
                "     tandem status --viewserver {} --insecure",
                list.join(",")
            ),
        }
        cluster.wait().await?;
        Ok(())
    })
}
