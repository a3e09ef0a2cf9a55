//! TLS on the client port (L5): the rustls server settings built from PEM files, read by
//! the one PEM loader of [`crate::tls`].

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use crate::config::{ClientTlsConfig, TlsAuthClients};
use crate::error::RuntimeError;
use crate::tls::{TlsError, load_certs, load_key};

/// The acceptor for `config`: its certificate and key, and (with a CA) the verifier of client
/// certificates.
pub(crate) fn acceptor(config: &ClientTlsConfig) -> Result<TlsAcceptor, RuntimeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = load_certs(&config.cert).map_err(|error| loading("tls-cert", &error))?;
    let key = load_key(&config.key).map_err(|error| loading("tls-key", &error))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| setting("tls-cert", &config.cert, &error))?;
    let builder = match (&config.ca, config.auth_clients) {
        (Some(ca), TlsAuthClients::Yes | TlsAuthClients::Optional) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs(ca).map_err(|error| loading("tls-ca", &error))? {
                roots
                    .add(cert)
                    .map_err(|error| setting("tls-ca", ca, &error))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if config.auth_clients == TlsAuthClients::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|error| setting("tls-ca", ca, &error))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let server = builder
        .with_single_cert(certs, key)
        .map_err(|error| setting("tls-key", &config.key, &error))?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// A file of setting `key` that could not be loaded (the error names the file).
fn loading(key: &'static str, error: &TlsError) -> RuntimeError {
    RuntimeError::Setting {
        key,
        reason: error.to_string(),
    }
}

fn setting(key: &'static str, path: &Path, error: &dyn std::fmt::Display) -> RuntimeError {
    RuntimeError::Setting {
        key,
        reason: format!("{}: {error}", path.display()),
    }
}
