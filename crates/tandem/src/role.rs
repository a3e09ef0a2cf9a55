//! What every long-running role subcommand shares: the flags of [`RoleArgs`] (`--admin`,
//! `--config`, `--print-config`, `--log-level`, `--log-format`), tracing to stderr, a tokio
//! runtime, and shutdown on Ctrl-C or SIGTERM.

use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use tandem_runtime::{Shutdown, shutdown_channel};
use tracing_subscriber::EnvFilter;

use crate::config::{ConfigArg, LogFormat, pick};

/// The flags every role process (`viewserver`, `server`, `coordinator`) takes, declared once
/// and flattened into each role's options. The role's config file has a key for each of them
/// (see [`SharedFileKeys`]).
#[derive(Args, Debug, Clone)]
pub struct RoleArgs {
    /// Serve this process's admin HTTP endpoint here: /status, /metrics, /healthz and /readyz
    /// (the view service's also serves the dashboard at /). A bare port means 127.0.0.1:PORT
    /// [default: off].
    #[arg(long, value_name = "HOST:PORT", env = "TANDEM_ADMIN")]
    admin: Option<String>,
    /// Bearer token the admin endpoint asks for on every route but /healthz (the dashboard:
    /// open /?token=TOKEN once); required to bind --admin beyond loopback [default: none].
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TANDEM_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    cluster_tls: ClusterTlsArgs,
}

/// The certificates of a process for the internal port (mutual TLS, I2), or `--insecure`.
/// Every role and operator tool takes them.
#[derive(Args, Debug, Clone, Default)]
pub struct ClusterTlsArgs {
    /// The cluster CA certificate (PEM) that every peer's certificate must chain to (see
    /// `tandem certs create`).
    #[arg(long, value_name = "FILE", env = "TANDEM_CLUSTER_CA")]
    pub cluster_ca: Option<PathBuf>,
    /// This process's certificate (PEM), naming its principal (e.g.
    /// tandem://server/HOST:PORT for a server advertised at HOST:PORT).
    #[arg(long, value_name = "FILE", env = "TANDEM_CLUSTER_CERT")]
    pub cluster_cert: Option<PathBuf>,
    /// The private key of --cluster-cert (PEM).
    #[arg(long, value_name = "FILE", env = "TANDEM_CLUSTER_KEY")]
    pub cluster_key: Option<PathBuf>,
    /// Run the internal port without certificates: plain TCP, where anyone who can reach it
    /// can impersonate any node. Required to start without --cluster-* files.
    #[arg(long, env = "TANDEM_INSECURE")]
    pub insecure: bool,
    /// Reach the node named NAME (its HOST:PORT principal) by connecting to ADDR, a TCP proxy
    /// in front of it; the node must still prove NAME (I2). Repeatable.
    #[arg(long, value_name = "NAME=ADDR")]
    pub cluster_connect_via: Vec<String>,
}

impl ClusterTlsArgs {
    /// The TLS settings in force: the three files (flag or environment, else the config
    /// file's keys), or `None` with `--insecure`; any other combination is an error that says
    /// what to give.
    pub fn load(
        &self,
        file: Option<&ClusterTlsFile>,
    ) -> anyhow::Result<Option<tandem_runtime::PeerTls>> {
        let from_file = |pick: fn(&ClusterTlsFile) -> Option<PathBuf>| file.and_then(pick);
        let ca = self
            .cluster_ca
            .clone()
            .or_else(|| from_file(|f| f.cluster_ca.clone()));
        let cert = self
            .cluster_cert
            .clone()
            .or_else(|| from_file(|f| f.cluster_cert.clone()));
        let key = self
            .cluster_key
            .clone()
            .or_else(|| from_file(|f| f.cluster_key.clone()));
        let insecure = self.insecure || file.is_some_and(|f| f.insecure == Some(true));
        match (ca, cert, key) {
            (Some(_), Some(_), Some(_)) if insecure => {
                bail!("give either --insecure or the --cluster-* certificates, not both")
            }
            (Some(ca), Some(cert), Some(key)) => {
                let mut tls = tandem_runtime::PeerTls::load(&ca, &cert, &key)
                    .context("cannot load the cluster certificates")?;
                for via in &self.cluster_connect_via {
                    let Some((name, addr)) = via.split_once('=') else {
                        bail!("--cluster-connect-via {via:?}: expected NAME=ADDR");
                    };
                    tls = tls.connect_via(name.trim(), addr.trim());
                }
                Ok(Some(tls))
            }
            (None, None, None) if insecure => Ok(None),
            (None, None, None) => bail!(
                "internal connections need certificates: give --cluster-ca, --cluster-cert and \
                 --cluster-key (make them with `tandem certs create`), or --insecure to run \
                 without them (plain TCP: anyone who reaches the port can impersonate a node)"
            ),
            (ca, cert, key) => {
                let missing: Vec<&str> = [
                    (ca.is_none(), "--cluster-ca"),
                    (cert.is_none(), "--cluster-cert"),
                    (key.is_none(), "--cluster-key"),
                ]
                .into_iter()
                .filter_map(|(missing, name)| missing.then_some(name))
                .collect();
                bail!(
                    "missing {}: give all three cluster certificate files",
                    missing.join(", ")
                )
            }
        }
    }
}

/// The config-file keys of [`ClusterTlsArgs`]: `cluster-ca`, `cluster-cert`, `cluster-key`,
/// `insecure`.
#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClusterTlsFile {
    /// `cluster-ca`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ca: Option<PathBuf>,
    /// `cluster-cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_cert: Option<PathBuf>,
    /// `cluster-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_key: Option<PathBuf>,
    /// `insecure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

/// Logs the startup warning of insecure mode.
pub fn warn_if_insecure(tls: Option<&tandem_runtime::PeerTls>) {
    match tls {
        Some(tls) => tracing::info!(principal = %tls.principal(), "internal port uses mutual TLS"),
        None => tracing::warn!(
            "--insecure: internal connections are plain TCP without authentication; anyone \
             who can reach them can impersonate any node"
        ),
    }
}

/// The values a role's config file gives for the flags of [`RoleArgs`]. Each role's file
/// struct lists these keys itself: serde's `flatten` would lose `deny_unknown_fields`.
#[derive(Debug, Default)]
pub struct SharedFileKeys {
    /// `admin`.
    pub admin: Option<String>,
    /// `admin-token`.
    pub admin_token: Option<String>,
    /// `log-level`.
    pub log_level: Option<String>,
    /// `log-format`.
    pub log_format: Option<LogFormat>,
}

/// The settings of [`RoleArgs`] in force: flag or environment, then file, then default.
#[derive(Debug, Clone)]
pub struct RoleSettings {
    /// Where to serve the admin endpoint, if anywhere.
    pub admin: Option<String>,
    /// The token the admin endpoint asks for, if any.
    pub admin_token: Option<String>,
    /// Logging.
    pub log: LogSettings,
}

impl RoleArgs {
    /// The role's config file (`--config` or `TANDEM_CONFIG`), or every key unset without one.
    pub fn load_file<T: serde::de::DeserializeOwned + Default>(&self) -> anyhow::Result<T> {
        crate::config::load(&self.config)
    }

    /// The shared settings, given what the file says about them.
    pub fn resolve(&self, file: SharedFileKeys) -> RoleSettings {
        RoleSettings {
            admin: self.admin.clone().or(file.admin),
            admin_token: self.admin_token.clone().or(file.admin_token),
            log: self.log.resolve(file.log_level, file.log_format),
        }
    }

    /// The internal port's TLS settings (see [`ClusterTlsArgs::load`]).
    pub fn peer_tls(
        &self,
        file: Option<&ClusterTlsFile>,
    ) -> anyhow::Result<Option<tandem_runtime::PeerTls>> {
        self.cluster_tls.load(file)
    }

    /// Whether to print the resolved settings and exit instead of running (`--print-config`).
    pub fn print_config_only(&self) -> bool {
        self.config.print_config
    }
}

/// The `--viewserver` list in force (flag or environment, then file), validated: 1 to 64
/// `HOST:PORT` entries without duplicates (Q2), trimmed.
pub fn view_service_list(
    cli: Option<Vec<String>>,
    file: Option<Vec<String>>,
) -> anyhow::Result<Vec<String>> {
    let addrs = crate::config::require(cli, file, "viewserver")?;
    let list = tandem_runtime::error::parse_view_services(&addrs)
        .map_err(|e| anyhow!("--viewserver: {e}"))?;
    Ok(list.iter().map(|a| a.as_str().to_owned()).collect())
}

/// Logging options of every role.
#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log filter: error, warn, info, debug, trace, or a tracing directive list [default: info].
    #[arg(long, env = "TANDEM_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Log line format: text, or json (one object per line, fields as keys) [default: text].
    #[arg(long, value_enum, env = "TANDEM_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

impl LogArgs {
    /// Flag or environment, then the config file's values, then the defaults.
    pub fn resolve(&self, level: Option<String>, format: Option<LogFormat>) -> LogSettings {
        LogSettings {
            level: pick(self.log_level.clone(), level, "info".to_owned()),
            format: pick(self.log_format, format, LogFormat::Text),
        }
    }
}

/// The logging settings in force.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// The filter.
    pub level: String,
    /// The line format.
    pub format: LogFormat,
}

/// Installs the stderr tracing subscriber.
pub fn init_logging(settings: &LogSettings) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&settings.level)
        .map_err(|e| anyhow!("bad --log-level {:?}: {e}", settings.level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let installed = match settings.format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    installed.map_err(|e| anyhow!("cannot install logging: {e}"))
}

/// Runs `role` on a single-threaded tokio runtime until it ends; Ctrl-C or SIGTERM asks it to
/// stop. One thread suits a process that shares the machine with the cluster's other processes:
/// every task (the protocol core's loop, its connections, the admin endpoint) runs on the thread
/// that polls the sockets, so a message never costs a cross-thread wake-up (futex and eventfd
/// calls). Measured on 2 cores: a multi-threaded runtime with one worker ran the core's loop on
/// the `block_on` thread and its connections on the worker, and spent more time in futex than
/// in sending and receiving.
pub fn run_role<F, Fut>(args: &LogSettings, role: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    init_logging(args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    run_on(&runtime, role)
}

/// Runs `role` on a tokio runtime with one worker per core (TOKIO_WORKER_THREADS overrides), for
/// `tandem dev`, which runs every role in one process. The role itself is spawned, so that it runs
/// on a worker like every other task rather than on the thread that called `block_on`.
pub fn run_role_multi<F, Fut>(args: &LogSettings, role: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    init_logging(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    run_on(&runtime, |shutdown| {
        let task = tokio::spawn(role(shutdown));
        async move {
            task.await
                .map_err(|e| anyhow!("the role task failed: {e}"))?
        }
    })
}

fn run_on<F, Fut>(runtime: &tokio::runtime::Runtime, role: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    runtime.block_on(async {
        let (trigger, shutdown) = shutdown_channel();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            trigger.trigger();
        });
        role(shutdown).await.map(|()| ExitCode::SUCCESS)
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
