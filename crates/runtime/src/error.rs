//! The runtime's error type.

use std::io;

use tandem_protocol::ConfigError;

/// Why a role could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A configuration value is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// Why, in words ("address in use").
        reason: String,
    },
    /// A required address is missing or malformed.
    #[error("bad address {addr:?}: {reason}")]
    Address {
        /// The address given.
        addr: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A setting is missing or does not fit the others.
    #[error("--{key}: {reason}")]
    Setting {
        /// The setting, as spelled on the command line.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The view-service node could not start on its stored state or settings.
    #[error("view-service node: {0}")]
    Node(String),
    /// No view service answered (status, client connect).
    #[error("no view service answered at {0}")]
    NoViewService(String),
    /// The durable log file is damaged or could not be written (the message names the file).
    #[error(transparent)]
    Disk(#[from] crate::disk::DiskFileError),
    /// Any other I/O failure.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Binds a TCP listener, turning the failure into a one-line [`RuntimeError::Listen`].
pub(crate) async fn bind(addr: &str) -> Result<tokio::net::TcpListener, RuntimeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| RuntimeError::Listen {
            addr: addr.to_owned(),
            reason: match error.kind() {
                io::ErrorKind::AddrInUse => "address in use".to_owned(),
                io::ErrorKind::AddrNotAvailable => "address not available".to_owned(),
                io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                _ => error.to_string(),
            },
        })
}

/// The view service address used for `Endpoint::ViewService`: the first of the list (V10: one
/// view service until it is replicated).
pub(crate) fn first_view_service(addrs: &[String]) -> Result<String, RuntimeError> {
    match addrs.first() {
        Some(addr) if !addr.is_empty() => Ok(addr.clone()),
        _ => Err(RuntimeError::Address {
            addr: String::new(),
            reason: "at least one view service address is required",
        }),
    }
}
