//! `tandem viewserver`: run one node of the view service, or change its membership online
//! (`add-node`, `remove-node`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use tandem_protocol::VsAddr;
use tandem_protocol::message::{MemberChange, NodeStatus};
use tandem_runtime::config::MAX_VIEW_SERVICE_PEERS;
use tandem_runtime::{ViewServer, ViewServerConfig};

use crate::config::{ViewServerFile, ViewServiceList, pick, print_settings, require};
use crate::role::{RoleArgs, SharedFileKeys, run_role};

const VIEWSERVER_HELP: &str = "\
The view service is a Raft group of view-service nodes (Q1); only the leader decides.

A group of three, each node with its own data directory:
  tandem viewserver --id 1 --listen 10.0.0.1:7000 --data-dir /var/lib/tandem/vs \\
      --peers 1=10.0.0.1:7000,2=10.0.0.2:7000,3=10.0.0.3:7000
  (the same --peers on nodes 2 and 3, each with its own --id and --listen)
Without --peers it is a single node (id 1) and --data-dir is optional (without it nothing is
kept across restarts). The own id's --peers address must be the --listen address, or give it
as --advertise (needed when listening on 0.0.0.0).

Adding a node online: start it with an id that is NOT in --peers and an empty data directory;
it waits to be added:
  tandem viewserver --id 4 --listen 10.0.0.4:7000 --data-dir /var/lib/tandem/vs \\
      --peers 1=10.0.0.1:7000,2=10.0.0.2:7000,3=10.0.0.3:7000
then, from anywhere:
  tandem viewserver add-node --viewserver 10.0.0.1:7000,10.0.0.2:7000 --id 4 --addr 10.0.0.4:7000
and to take a node out:
  tandem viewserver remove-node --viewserver 10.0.0.1:7000 --id 2
Both print the new membership once a node has applied the change (Q5: one change at a time).";

/// Options of `tandem viewserver`. Each flag can also come from its `TANDEM_*` variable or the
/// `--config` file.
#[derive(Args, Debug)]
#[command(after_long_help = VIEWSERVER_HELP)]
pub struct ViewServerArgs {
    /// Change the membership of a running view service instead of running a node.
    #[command(subcommand)]
    action: Option<MembersCommand>,
    /// Address to listen on for servers, coordinators and the other nodes.
    #[arg(long, value_name = "HOST:PORT", env = "TANDEM_LISTEN")]
    listen: Option<String>,
    /// The address the other nodes, servers and coordinators reach this node at [default: the
    /// listen address].
    #[arg(long, value_name = "HOST:PORT", env = "TANDEM_ADVERTISE")]
    advertise: Option<String>,
    /// This node's Raft id (non-zero) [default: 1].
    #[arg(long, env = "TANDEM_ID")]
    id: Option<u64>,
    /// The group's members, comma-separated ID=HOST:PORT, this node included (used when the
    /// data directory is empty; a node whose id is not listed waits to be added). Without it:
    /// a single node.
    #[arg(
        long,
        value_name = "ID=ADDR,..",
        value_delimiter = ',',
        env = "TANDEM_PEERS"
    )]
    peers: Option<Vec<String>>,
    /// Where this node keeps its Raft log (required with --peers).
    #[arg(long, value_name = "DIR", env = "TANDEM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Raft tick in ms [default: 50].
    #[arg(long, env = "TANDEM_RAFT_TICK_MS")]
    raft_tick_ms: Option<u64>,
    /// Ticks without a leader before a node campaigns, randomized up to twice this
    /// [default: 6].
    #[arg(long, env = "TANDEM_ELECTION_TICKS")]
    election_ticks: Option<usize>,
    /// Admin endpoints of coordinators, comma-separated: their throughput is shown on the
    /// dashboard.
    #[arg(
        long,
        value_name = "ADDRS",
        value_delimiter = ',',
        env = "TANDEM_COORDINATOR_ADMIN"
    )]
    coordinator_admin: Option<Vec<String>>,
    /// How often servers ping (V2) [default: 100].
    #[arg(long, env = "TANDEM_PING_INTERVAL_MS")]
    ping_interval_ms: Option<u64>,
    /// Missed pings after which a server is dead (V3) [default: 5].
    #[arg(long, env = "TANDEM_DEAD_PINGS")]
    dead_pings: Option<u32>,
    /// Backups per replica group (V8) [default: 1].
    #[arg(long, env = "TANDEM_BACKUPS")]
    backups: Option<usize>,
    /// Views remembered per group with their reasons (`tandem status --history`)
    /// [default: 64].
    #[arg(long, env = "TANDEM_HISTORY_LEN")]
    history_len: Option<usize>,
    #[command(flatten)]
    role: RoleArgs,
}

/// Online membership changes (Q5).
#[derive(Subcommand, Debug)]
pub enum MembersCommand {
    /// Add a node (running, with an empty data directory and an id not in its --peers).
    AddNode(AddNodeArgs),
    /// Remove a node.
    RemoveNode(RemoveNodeArgs),
}

/// Where a membership change is sent, and how long to wait for it (shared by `add-node` and
/// `remove-node`).
#[derive(Args, Debug)]
pub struct MembersTarget {
    /// Current members (the leader is found from any of them).
    #[command(flatten)]
    view_service: ViewServiceList,
    /// Give up unless the change is applied within this long.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    timeout_ms: u64,
    /// An admin certificate (tandem://admin/NAME), or --insecure.
    #[command(flatten)]
    tls: crate::role::ClusterTlsArgs,
}

/// Options of `tandem viewserver add-node`.
#[derive(Args, Debug)]
pub struct AddNodeArgs {
    #[command(flatten)]
    target: MembersTarget,
    /// The new node's Raft id (non-zero, unused).
    #[arg(long)]
    id: u64,
    /// The new node's address (its --listen or --advertise).
    #[arg(long, value_name = "HOST:PORT")]
    addr: String,
}

/// Options of `tandem viewserver remove-node`.
#[derive(Args, Debug)]
pub struct RemoveNodeArgs {
    #[command(flatten)]
    target: MembersTarget,
    /// The Raft id of the node to remove.
    #[arg(long)]
    id: u64,
}

/// Parses `ID=HOST:PORT` entries (at most [`MAX_VIEW_SERVICE_PEERS`], ids unique).
pub fn parse_peers(entries: &[String]) -> anyhow::Result<BTreeMap<u64, String>> {
    if entries.len() > MAX_VIEW_SERVICE_PEERS {
        bail!(
            "--peers: {} entries; at most {MAX_VIEW_SERVICE_PEERS}",
            entries.len()
        );
    }
    let mut peers = BTreeMap::new();
    for entry in entries {
        let (id, addr) = entry
            .split_once('=')
            .ok_or_else(|| anyhow!("--peers: {entry:?} is not ID=HOST:PORT"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| anyhow!("--peers: {entry:?}: the id is not a number"))?;
        if peers.insert(id, addr.trim().to_owned()).is_some() {
            bail!("--peers: node {id} is listed twice");
        }
    }
    Ok(peers)
}

/// Runs `add-node` or `remove-node`: prints the membership once applied.
fn change(action: MembersCommand) -> anyhow::Result<ExitCode> {
    let (target, change) = match action {
        MembersCommand::AddNode(args) => {
            if args.id == 0 {
                bail!("--id must be non-zero");
            }
            (
                args.target,
                MemberChange::Add {
                    id: args.id,
                    addr: VsAddr::new(&args.addr),
                },
            )
        }
        MembersCommand::RemoveNode(args) => (args.target, MemberChange::Remove { id: args.id }),
    };
    let (addrs, timeout_ms) = (target.view_service.addrs, target.timeout_ms);
    let tls = target.tls.load(None)?;
    if let Some(tls) = &tls {
        tandem_runtime::tls::expect_principal(tls, tandem_runtime::identity::Role::Admin, None)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let node = runtime
        .block_on(tandem_runtime::change_members(
            &addrs,
            change.clone(),
            Duration::from_millis(timeout_ms),
            tls.as_ref(),
        ))
        .context("membership change failed")?;
    match change {
        MemberChange::Add { id, addr } => println!("node {id} ({addr}) added"),
        MemberChange::Remove { id } => println!("node {id} removed"),
    }
    print!("{}", members_table(&node));
    Ok(ExitCode::SUCCESS)
}

/// The membership as one node applied it, one line per member.
fn members_table(node: &NodeStatus) -> String {
    let mut out = format!("{:<6} {:<28} {}\n", "ID", "ADDR", "ROLE");
    for member in &node.members {
        let role = if member.id == node.leader {
            "leader"
        } else {
            "member"
        };
        out.push_str(&format!("{:<6} {:<28} {role}\n", member.id, member.addr));
    }
    out
}

/// Runs the view service until Ctrl-C or SIGTERM.
pub fn run(args: ViewServerArgs) -> anyhow::Result<ExitCode> {
    if let Some(action) = args.action {
        return change(action);
    }
    let file: ViewServerFile = args.role.load_file()?;
    let tls_file = crate::role::ClusterTlsFile {
        cluster_ca: file.cluster_ca.clone(),
        cluster_cert: file.cluster_cert.clone(),
        cluster_key: file.cluster_key.clone(),
        insecure: file.insecure,
    };
    let shared = args.role.resolve(SharedFileKeys {
        admin: file.admin,
        admin_token: file.admin_token,
        log_level: file.log_level,
        log_format: file.log_format,
    });
    let defaults = ViewServerConfig::default();
    let mut config = ViewServerConfig::default();
    let listen = require(args.listen, file.listen, "listen")?;
    config.admin = shared.admin.clone();
    config.admin_token = shared.admin_token.clone();
    config.coordinator_admin = pick(args.coordinator_admin, file.coordinator_admin, Vec::new());
    let core = &mut config.view_service;
    core.ping_interval_ms = pick(
        args.ping_interval_ms,
        file.ping_interval_ms,
        defaults.view_service.ping_interval_ms,
    );
    core.dead_pings = pick(
        args.dead_pings,
        file.dead_pings,
        defaults.view_service.dead_pings,
    );
    core.backups = pick(args.backups, file.backups, defaults.view_service.backups);
    core.history_len = pick(
        args.history_len,
        file.history_len,
        defaults.view_service.history_len,
    );
    config.id = pick(args.id, file.id, defaults.id);
    let peers = pick(args.peers, file.peers, Vec::new());
    config.peers = parse_peers(&peers)?;
    config.data_dir = args.data_dir.or(file.data_dir);
    config.advertise = args.advertise.or(file.advertise);
    config.raft_tick_ms = pick(args.raft_tick_ms, file.raft_tick_ms, defaults.raft_tick_ms);
    config.election_ticks = pick(
        args.election_ticks,
        file.election_ticks,
        defaults.election_ticks,
    );
    config.validate()?;
    if args.role.print_config_only() {
        let core = &config.view_service;
        return print_settings(&ViewServerFile {
            id: Some(config.id),
            peers: (!peers.is_empty()).then_some(peers),
            data_dir: config.data_dir.clone(),
            advertise: config.advertise.clone(),
            raft_tick_ms: Some(config.raft_tick_ms),
            election_ticks: Some(config.election_ticks),
            listen: Some(listen),
            admin: shared.admin,
            admin_token: None,
            coordinator_admin: Some(config.coordinator_admin.clone()),
            ping_interval_ms: Some(core.ping_interval_ms),
            dead_pings: Some(core.dead_pings),
            backups: Some(core.backups),
            history_len: Some(core.history_len),
            log_level: Some(shared.log.level),
            log_format: Some(shared.log.format),
            cluster_ca: tls_file.cluster_ca,
            cluster_cert: tls_file.cluster_cert,
            cluster_key: tls_file.cluster_key,
            insecure: tls_file.insecure,
        });
    }
    config.net.tls = args.role.peer_tls(Some(&tls_file))?;
    let peer_tls = config.net.tls.clone();
    run_role(&shared.log, |shutdown| async move {
        let view_server = ViewServer::bind(config, &listen).await?;
        crate::role::warn_if_insecure(peer_tls.as_ref());
        if let Some(admin) = view_server.admin_addr() {
            tracing::info!(%admin, "dashboard at http://{admin}/");
        }
        view_server.run(shutdown).await?;
        Ok(())
    })
}
