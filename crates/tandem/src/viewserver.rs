//! `tandem viewserver`: run the view service.

use std::process::ExitCode;

use clap::Args;
use tandem_runtime::{ViewServer, ViewServerConfig};

use crate::config::{ViewServerFile, pick, print_settings, require};
use crate::role::{RoleArgs, SharedFileKeys, run_role};

/// Options of `tandem viewserver`. Each flag can also come from its `TANDEM_*` variable or the
/// `--config` file.
#[derive(Args, Debug)]
pub struct ViewServerArgs {
    /// Address to listen on for servers and coordinators.
    #[arg(long, value_name = "HOST:PORT", env = "TANDEM_LISTEN")]
    listen: Option<String>,
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

/// Runs the view service until Ctrl-C or SIGTERM.
pub fn run(args: ViewServerArgs) -> anyhow::Result<ExitCode> {
    let file: ViewServerFile = args.role.load_file()?;
    let shared = args.role.resolve(SharedFileKeys {
        admin: file.admin,
        log_level: file.log_level,
        log_format: file.log_format,
    });
    let defaults = ViewServerConfig::default();
    let mut config = ViewServerConfig::default();
    let listen = require(args.listen, file.listen, "listen")?;
    config.admin = shared.admin.clone();
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
    config.validate()?;
    if args.role.print_config_only() {
        let core = &config.view_service;
        return print_settings(&ViewServerFile {
            listen: Some(listen),
            admin: shared.admin,
            coordinator_admin: Some(config.coordinator_admin.clone()),
            ping_interval_ms: Some(core.ping_interval_ms),
            dead_pings: Some(core.dead_pings),
            backups: Some(core.backups),
            history_len: Some(core.history_len),
            log_level: Some(shared.log.level),
            log_format: Some(shared.log.format),
        });
    }
    run_role(&shared.log, |shutdown| async move {
        let view_server = ViewServer::bind(config, &listen).await?;
        if let Some(admin) = view_server.admin_addr() {
            tracing::info!(%admin, "dashboard at http://{admin}/");
        }
        view_server.run(shutdown).await?;
        Ok(())
    })
}
