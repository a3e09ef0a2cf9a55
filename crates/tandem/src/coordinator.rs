//! `tandem coordinator`: run the Redis-protocol front end.

use std::process::ExitCode;

use clap::Args;
use tandem_runtime::{Coordinator, CoordinatorConfig};

use crate::config::{ConfigArg, CoordinatorFile, ViewServiceArg, load, pick, require};
use crate::role::{LogArgs, run_role};

/// Options of `tandem coordinator`. Each flag can also come from its `TANDEM_*` variable or the
/// `--config` file.
#[derive(Args, Debug)]
pub struct CoordinatorArgs {
    /// Address to listen on for Redis clients.
    #[arg(long, value_name = "HOST:PORT", env = "TANDEM_LISTEN")]
    listen: Option<String>,
    #[command(flatten)]
    view_service: ViewServiceArg,
    /// A request not answered within this long gets `-TRYAGAIN` (C3) [default: 5000].
    #[arg(long, env = "TANDEM_REQUEST_TIMEOUT_MS")]
    request_timeout_ms: Option<u64>,
    /// Most client connections served at once [default: 10000].
    #[arg(long, env = "TANDEM_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Serve the admin endpoint (/status, /metrics, /healthz, /readyz) here; a bare port means
    /// 127.0.0.1:PORT [default: off].
    #[arg(long, value_name = "HOST:PORT", env = "TANDEM_ADMIN")]
    admin: Option<String>,
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    log: LogArgs,
}

/// Runs the coordinator until Ctrl-C or SIGTERM.
pub fn run(args: CoordinatorArgs) -> anyhow::Result<ExitCode> {
    let file: CoordinatorFile = load(&args.config)?;
    let defaults = CoordinatorConfig::default();
    let listen = require(args.listen, file.listen, "listen")?;
    let view_service = require(args.view_service.addrs, file.viewserver, "viewserver")?;
    let mut config = CoordinatorConfig {
        max_connections: pick(
            args.max_connections,
            file.max_connections,
            defaults.max_connections,
        ),
        admin: args.admin.or(file.admin),
        ..CoordinatorConfig::default()
    };
    config.clerk.request_timeout_ms = pick(
        args.request_timeout_ms,
        file.request_timeout_ms,
        defaults.clerk.request_timeout_ms,
    );
    let log = args.log.resolve(file.log_level, file.log_format);
    config.validate()?;
    if args.config.print_config {
        print!(
            "listen = {listen:?}\nviewserver = {view_service:?}\nrequest-timeout-ms = {}\n\
             max-connections = {}\nadmin = {:?}\nlog-level = {:?}\nlog-format = \"{}\"\n",
            config.clerk.request_timeout_ms,
            config.max_connections,
            config.admin.as_deref().unwrap_or(""),
            log.level,
            log.format.name(),
        );
        return Ok(ExitCode::SUCCESS);
    }
    run_role(&log, |shutdown| async move {
        let coordinator = Coordinator::bind(config, &listen, &view_service).await?;
        coordinator.run(shutdown).await?;
        Ok(())
    })
}
