//! `tandem server`: run one replica server.

use std::process::ExitCode;

use clap::Args;
use tandem_protocol::GroupId;
use tandem_runtime::{Server, ServerConfig};

use crate::config::{ServerFile, ViewServiceArg, pick, print_settings, require};
use crate::role::{RoleArgs, SharedFileKeys, run_role};

/// Options of `tandem server`. Each flag can also come from its `TANDEM_*` variable or the
/// `--config` file.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Address to listen on for the primary, backups and coordinators.
    #[arg(long, value_name = "HOST:PORT", env = "TANDEM_LISTEN")]
    listen: Option<String>,
    #[command(flatten)]
    view_service: ViewServiceArg,
    /// The address peers reach this server at, which is also its id (default: the bound
    /// listen address).
    #[arg(long, value_name = "HOST:PORT", env = "TANDEM_ADVERTISE")]
    advertise: Option<String>,
    /// Replica group served [default: 0].
    #[arg(long, env = "TANDEM_GROUP")]
    group: Option<u32>,
    /// How often to ping the view service (V2) [default: 100].
    #[arg(long, env = "TANDEM_PING_INTERVAL_MS")]
    ping_interval_ms: Option<u64>,
    #[command(flatten)]
    role: RoleArgs,
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let file: ServerFile = args.role.load_file()?;
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
    let defaults = ServerConfig::default();
    let listen = require(args.listen, file.listen, "listen")?;
    let view_service = crate::role::view_service_list(args.view_service.addrs, file.viewserver)?;
    let advertise = args.advertise.or(file.advertise);
    let mut config = ServerConfig {
        group: GroupId(pick(args.group, file.group, 0)),
        admin: shared.admin.clone(),
        admin_token: shared.admin_token.clone(),
        ..ServerConfig::default()
    };
    config.replica.ping_interval_ms = pick(
        args.ping_interval_ms,
        file.ping_interval_ms,
        defaults.replica.ping_interval_ms,
    );
    config.validate()?;
    if args.role.print_config_only() {
        return print_settings(&ServerFile {
            listen: Some(listen),
            viewserver: Some(view_service),
            advertise,
            group: Some(config.group.0),
            ping_interval_ms: Some(config.replica.ping_interval_ms),
            admin: shared.admin,
            admin_token: None,
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
        let server = Server::bind(config, &listen, advertise.as_deref(), &view_service).await?;
        crate::role::warn_if_insecure(peer_tls.as_ref());
        server.run(shutdown).await?;
        Ok(())
    })
}
