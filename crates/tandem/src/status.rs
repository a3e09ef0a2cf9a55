//! `tandem status`: print every view-service node (id, role, term, commit and applied index,
//! last contact) and every replica group's view as the view service's leader sees it.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::config::ViewServiceList;
use tandem_runtime::status;

/// Options of `tandem status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Every node of the list is asked at once.
    #[command(flatten)]
    view_service: ViewServiceList,
    /// Print JSON: {"nodes":[{"id","address","role","term","commit","applied","leader",
    /// "last_contact_ms","error"}],"groups":[{"group","viewnum","primary","backups","acked",
    /// "idle","slots","config_done"}],"slots":{..as `tandem slots show --json`..}}.
    #[arg(long)]
    json: bool,
    /// Print each group's recent views, newest first, with when and why each one started.
    #[arg(long)]
    history: bool,
    /// Give up on a node after this long (the nodes are asked at once).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    timeout_ms: u64,
    /// An admin certificate (tandem://admin/NAME), or --insecure.
    #[command(flatten)]
    tls: crate::role::ClusterTlsArgs,
}

/// Queries every view-service node and prints the nodes and the groups; fails only if no node
/// answered.
pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let tls = args.tls.load(None)?;
    let cluster = runtime.block_on(status::cluster_status(
        &args.view_service.addrs,
        timeout,
        tls.as_ref(),
    ))?;
    let groups = cluster.groups();
    if args.history && args.json {
        println!("{}", tandem_runtime::status_history_json(groups));
    } else if args.history {
        print!("{}", tandem_runtime::status_history(groups));
    } else if args.json {
        println!("{}", status::cluster_status_json(&cluster));
    } else {
        print!("{}", status::cluster_status_table(&cluster));
    }
    Ok(ExitCode::SUCCESS)
}
