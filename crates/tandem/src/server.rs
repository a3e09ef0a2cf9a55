//! `tandem server`: run one replica server.

use std::process::ExitCode;

use clap::Args;
use tandem_protocol::GroupId;
use tandem_runtime::{Server, ServerConfig};

use crate::config::{ConfigArg, ServerFile, ViewServiceArg, load, pick, require};
use crate::role::{LogArgs, run_role};

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
    /// Serve the admin endpoint (/status, /metrics, /healthz, /readyz) here; a bare port means
    /// 127.0.0.1:PORT [default: off].
    #[arg(long, value_name = "HOST:PORT", env = "TANDEM_ADMIN")]
    admin: Option<String>,
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    log: LogArgs,
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let file: ServerFile = load(&args.config)?;
    let defaults = ServerConfig::default();
    let listen = require(args.listen, file.listen, "listen")?;
    let view_service = require(args.view_service.addrs, file.viewserver, "viewserver")?;
    let advertise = args.advertise.or(file.advertise);
    let mut config = ServerConfig {
        group: GroupId(pick(args.group, file.group, 0)),
        admin: args.admin.or(file.admin),
        ..ServerConfig::default()
    };
    config.replica.ping_interval_ms = pick(
        args.ping_interval_ms,
        file.ping_interval_ms,
        defaults.replica.ping_interval_ms,
    );
    let log = args.log.resolve(file.log_level, file.log_format);
    config.validate()?;
    if args.config.print_config {
        print!(
            "listen = {listen:?}\nviewserver = {view_service:?}\nadvertise = {:?}\ngroup = {}\n\
             ping-interval-ms = {}\nadmin = {:?}\nlog-level = {:?}\nlog-format = \"{}\"\n",
            advertise.as_deref().unwrap_or(""),
            config.group.0,
            config.replica.ping_interval_ms,
            config.admin.as_deref().unwrap_or(""),
            log.level,
            log.format.name(),
        );
        return Ok(ExitCode::SUCCESS);
    }
    run_role(&log, |shutdown| async move {
        let server = Server::bind(config, &listen, advertise.as_deref(), &view_service).await?;
        server.run(shutdown).await?;
        Ok(())
    })
}
