//! `tandem coordinator`: run the Redis-protocol front end.

use std::process::ExitCode;

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use tandem_runtime::config::{ClientTlsConfig, TlsAuthClients};
use tandem_runtime::{Coordinator, CoordinatorConfig};

use crate::config::{
    CoordinatorFile, TlsAuthClientsArg, ViewServiceArg, YesNo, pick, print_settings, require,
};
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
    /// Most client connections served at once; the one beyond is answered
    /// `-ERR max number of clients reached` and closed [default: 10000].
    #[arg(long, env = "TANDEM_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Serve TLS clients on this address too (like Redis's `tls-port` beside `port`); needs
    /// --tls-cert and --tls-key [default: off].
    #[arg(long, value_name = "HOST:PORT", env = "TANDEM_TLS_LISTEN")]
    tls_listen: Option<String>,
    /// The TLS port's certificate chain (PEM).
    #[arg(long, value_name = "FILE", env = "TANDEM_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The TLS port's private key (PEM).
    #[arg(long, value_name = "FILE", env = "TANDEM_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// CA certificate(s) (PEM) that sign client certificates; with it, clients must show one
    /// (see --tls-auth-clients).
    #[arg(long, value_name = "FILE", env = "TANDEM_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Whether TLS clients must show a certificate signed by --tls-ca [default: yes].
    #[arg(long, value_enum, env = "TANDEM_TLS_AUTH_CLIENTS")]
    tls_auth_clients: Option<TlsAuthClientsArg>,
    /// An unfinished request must be complete within this long, else the client gets an error
    /// and is closed [default: 30000].
    #[arg(long, env = "TANDEM_UNFINISHED_REQUEST_TIMEOUT_MS")]
    unfinished_request_timeout_ms: Option<u64>,
    /// Close a client idle this many seconds (Redis's `timeout`; 0: never) [default: 0].
    #[arg(long, value_name = "SECONDS", env = "TANDEM_TIMEOUT")]
    timeout: Option<u64>,
    /// Bytes of unfinished requests held across all clients; beyond it the client whose read
    /// passes it is closed [default: 536870912].
    #[arg(long, env = "TANDEM_MAX_TOTAL_QUERY_BYTES")]
    max_total_query_bytes: Option<usize>,
    /// Largest reply sent; a larger one is answered with an error [default: 67108864].
    #[arg(long, env = "TANDEM_MAX_REPLY_BYTES")]
    max_reply_bytes: Option<usize>,
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
        admin_token: shared.admin_token.clone(),
        unfinished_request_timeout_ms: pick(
            args.unfinished_request_timeout_ms,
            file.unfinished_request_timeout_ms,
            defaults.unfinished_request_timeout_ms,
        ),
        client_idle_timeout_s: pick(args.timeout, file.timeout, defaults.client_idle_timeout_s),
        max_total_query_bytes: pick(
            args.max_total_query_bytes,
            file.max_total_query_bytes,
            defaults.max_total_query_bytes,
        ),
        max_reply_bytes: pick(
            args.max_reply_bytes,
            file.max_reply_bytes,
            defaults.max_reply_bytes,
        ),
        // An empty password means none, as with Redis's `requirepass ""`.
        requirepass: args
            .requirepass
            .or(file.requirepass)
            .filter(|p| !p.is_empty()),
        protected_mode: pick(args.protected_mode, file.protected_mode, YesNo::Yes) == YesNo::Yes,
        ..CoordinatorConfig::default()
    };
    let tls_listen = args.tls_listen.or(file.tls_listen);
    let tls_cert = args.tls_cert.or(file.tls_cert);
    let tls_key = args.tls_key.or(file.tls_key);
    let tls_ca = args.tls_ca.or(file.tls_ca);
    let tls_auth_clients = args.tls_auth_clients.or(file.tls_auth_clients);
    config.tls = match (&tls_listen, &tls_cert, &tls_key) {
        (Some(listen), Some(cert), Some(key)) => Some(ClientTlsConfig {
            listen: listen.clone(),
            cert: cert.clone(),
            key: key.clone(),
            ca: tls_ca.clone(),
            auth_clients: match tls_auth_clients {
                Some(TlsAuthClientsArg::No) => TlsAuthClients::No,
                Some(TlsAuthClientsArg::Optional) => TlsAuthClients::Optional,
                Some(TlsAuthClientsArg::Yes) | None => TlsAuthClients::Yes,
            },
        }),
        (None, None, None) if tls_ca.is_none() && tls_auth_clients.is_none() => None,
        _ => bail!("TLS for clients needs all of --tls-listen, --tls-cert and --tls-key"),
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
            tls_listen,
            tls_cert,
            tls_key,
            tls_ca,
            tls_auth_clients,
            unfinished_request_timeout_ms: Some(config.unfinished_request_timeout_ms),
            timeout: Some(config.client_idle_timeout_s),
            max_total_query_bytes: Some(config.max_total_query_bytes),
            max_reply_bytes: Some(config.max_reply_bytes),
            requirepass: None,
            protected_mode: Some(if config.protected_mode {
                YesNo::Yes
            } else {
                YesNo::No
            }),
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
        let coordinator = Coordinator::bind(config, &listen, &view_service).await?;
        crate::role::warn_if_insecure(peer_tls.as_ref());
        coordinator.run(shutdown).await?;
        Ok(())
    })
}
