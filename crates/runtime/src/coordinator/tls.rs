//! TLS on the client port (L5): the rustls server settings built from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use crate::config::{ClientTlsConfig, TlsAuthClients};
use crate::error::RuntimeError;

/// The acceptor for `config`: its certificate and key, and (with a CA) the verifier of client
/// certificates.
pub(crate) fn acceptor(config: &ClientTlsConfig) -> Result<TlsAcceptor, RuntimeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = load_certs("tls-cert", &config.cert)?;
    let key = PrivateKeyDer::from_pem_file(&config.key)
        .map_err(|error| setting("tls-key", &config.key, &error))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| setting("tls-cert", &config.cert, &error))?;
    let builder = match (&config.ca, config.auth_clients) {
        (Some(ca), TlsAuthClients::Yes | TlsAuthClients::Optional) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs("tls-ca", ca)? {
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

fn load_certs(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, RuntimeError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|error| setting(key, path, &error))?;
    if certs.is_empty() {
        return Err(RuntimeError::Setting {
            key,
            reason: format!("{} holds no PEM certificate", path.display()),
        });
    }
    Ok(certs)
}

fn setting(key: &'static str, path: &Path, error: &dyn std::fmt::Display) -> RuntimeError {
    RuntimeError::Setting {
        key,
        reason: format!("{}: {error}", path.display()),
    }
}
