//! `tandem coordinator`: run the Redis-protocol front end.

use std::process::ExitCode;

use clap::Args;
use tandem_runtime::{Coordinator, CoordinatorConfig};

use crate::config::{CoordinatorFile, ViewServiceArg, YesNo, pick, print_settings, require};
use crate::role::{RoleArgs, SharedFileKeys, run_role};

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
    /// The default user's password, set through the cluster at start while the default user
    /// has none (A9). Prefer the environment variable to the flag (visible in `ps`).
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "TANDEM_REQUIREPASS",
        hide_env_values = true
    )]
    requirepass: Option<String>,
    /// While the default user has no password, refuse clients from non-loopback addresses
    /// with Redis's -DENIED (A10) [default: yes].
    #[arg(long, value_enum, env = "TANDEM_PROTECTED_MODE")]
    protected_mode: Option<YesNo>,
    #[command(flatten)]
    role: RoleArgs,
}

/// Runs the coordinator until Ctrl-C or SIGTERM.
pub fn run(args: CoordinatorArgs) -> anyhow::Result<ExitCode> {
    let file: CoordinatorFile = args.role.load_file()?;
    let shared = args.role.resolve(SharedFileKeys {
        admin: file.admin,
        log_level: file.log_level,
        log_format: file.log_format,
    });
    let defaults = CoordinatorConfig::default();
    let listen = require(args.listen, file.listen, "listen")?;
    let view_service = crate::role::view_service_list(args.view_service.addrs, file.viewserver)?;
    let mut config = CoordinatorConfig {
        max_connections: pick(
            args.max_connections,
            file.max_connections,
            defaults.max_connections,
        ),
        admin: shared.admin.clone(),
        // An empty password means none, as with Redis's `requirepass ""`.
        requirepass: args
            .requirepass
            .or(file.requirepass)
            .filter(|p| !p.is_empty()),
        protected_mode: pick(args.protected_mode, file.protected_mode, YesNo::Yes) == YesNo::Yes,
        ..CoordinatorConfig::default()
    };
    config.clerk.request_timeout_ms = pick(
        args.request_timeout_ms,
        file.request_timeout_ms,
        defaults.clerk.request_timeout_ms,
    );
    config.validate()?;
    if args.role.print_config_only() {
        return print_settings(&CoordinatorFile {
            listen: Some(listen),
            viewserver: Some(view_service),
            request_timeout_ms: Some(config.clerk.request_timeout_ms),
            max_connections: Some(config.max_connections),
            requirepass: None,
            protected_mode: Some(if config.protected_mode {
                YesNo::Yes
            } else {
                YesNo::No
            }),
            admin: shared.admin,
            log_level: Some(shared.log.level),
            log_format: Some(shared.log.format),
        });
    }
    run_role(&shared.log, |shutdown| async move {
        let coordinator = Coordinator::bind(config, &listen, &view_service).await?;
        coordinator.run(shutdown).await?;
        Ok(())
    })
}
