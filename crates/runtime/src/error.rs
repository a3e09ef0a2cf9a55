//! The runtime's error type.

use std::io;

use tandem_protocol::{ConfigError, VsAddr};

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
    /// Certificates or TLS settings could not be made or loaded (I1, I2).
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
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

/// Most view-service nodes a `--viewserver` list may name.
pub const MAX_VIEW_SERVICES: usize = 64;

/// Validates a `--viewserver` list (Q2): 1 to [`MAX_VIEW_SERVICES`] entries, each a
/// `HOST:PORT` (surrounding spaces ignored), no address twice.
pub fn parse_view_services(addrs: &[String]) -> Result<Vec<VsAddr>, RuntimeError> {
    if addrs.is_empty() {
        return Err(RuntimeError::Address {
            addr: String::new(),
            reason: "at least one view service address is required",
        });
    }
    if addrs.len() > MAX_VIEW_SERVICES {
        return Err(RuntimeError::Address {
            addr: format!("{} addresses", addrs.len()),
            reason: "at most 64 view service addresses are allowed",
        });
    }
    let mut list: Vec<VsAddr> = Vec::with_capacity(addrs.len());
    for raw in addrs {
        let addr = raw.trim();
        check_host_port(addr).map_err(|reason| RuntimeError::Address {
            addr: raw.clone(),
            reason,
        })?;
        if list.iter().any(|a| a.as_str() == addr) {
            return Err(RuntimeError::Address {
                addr: raw.clone(),
                reason: "this view service address is listed twice",
            });
        }
        list.push(VsAddr::new(addr));
    }
    Ok(list)
}

/// Whether `addr` looks like `HOST:PORT` (a name or IPv4 address, or `[IPv6]`, and a port 1..65535).
fn check_host_port(addr: &str) -> Result<(), &'static str> {
    if addr.is_empty() {
        return Err("empty view service address (a stray comma?)");
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err("expected HOST:PORT");
    };
    if host.is_empty() {
        return Err("missing host in HOST:PORT");
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => return Err("the port must be a number from 1 to 65535"),
        Ok(_) => {}
    }
    let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
    if host.contains(':') && !bracketed {
        return Err("an IPv6 host must be written [ADDR]:PORT");
    }
    let bad = |c: char| c.is_whitespace() || c.is_control() || matches!(c, ',' | '/' | '@');
    if host.chars().any(bad) {
        return Err("the host has characters no host name has");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Vec<String>, String> {
        let owned: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        parse_view_services(&owned)
            .map(|v| v.iter().map(|a| a.as_str().to_owned()).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn q2_view_service_list_accepts_host_port_entries() {
        assert_eq!(
            parse(&["127.0.0.1:7000", " vs2:7000", "[::1]:7001"]).unwrap(),
            vec!["127.0.0.1:7000", "vs2:7000", "[::1]:7001"]
        );
    }

    #[test]
    fn q2_view_service_list_is_bounded_and_rejects_bad_entries() {
        assert!(parse(&[]).unwrap_err().contains("at least one"));
        let many: Vec<String> = (0..=MAX_VIEW_SERVICES)
            .map(|i| format!("h:{}", 1000 + i))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(parse(&many).unwrap_err().contains("at most 64"));
        assert!(parse(&many[..MAX_VIEW_SERVICES]).is_ok());
        for (bad, why) in [
            ("", "empty"),
            ("localhost", "HOST:PORT"),
            (":7000", "missing host"),
            ("h:0", "port"),
            ("h:70000", "port"),
            ("h:x", "port"),
            ("::1:7000", "IPv6"),
            ("a b:7000", "characters"),
        ] {
            let error = parse(&["ok:1", bad]).unwrap_err();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
        let error = parse(&["a:1", "b:2", " a:1"]).unwrap_err();
        assert!(error.contains("listed twice"), "{error}");
    }
}
