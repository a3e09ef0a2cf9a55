//! What every long-running role subcommand shares: `--log-level` and `--log-format`, tracing to
//! stderr, a tokio runtime, and shutdown on Ctrl-C or SIGTERM.

use std::future::Future;
use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::Args;
use tandem_runtime::{Shutdown, shutdown_channel};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, pick};

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
