//! Mutual TLS between the cluster's processes (rules I1, I2 in docs/PROTOCOL.md), and the
//! cluster certificate generator behind `tandem certs create`.
//!
//! - [`ClusterCa`] issues one certificate per process with rcgen; each names exactly one
//!   [`Principal`] in a `tandem://ROLE/NAME` URI SAN, and nodes also carry the host of their
//!   address as an IP or DNS SAN.
//! - [`PeerTls`] holds one process's TLS 1.3 settings (rustls with the ring provider): inbound,
//!   a client certificate from the cluster CA is required; outbound, the server name is
//!   verified against the host dialled and we present our own certificate. [`principal_of`]
//!   reads the principal off the peer's certificate after the handshake.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::identity::{Principal, Role};

/// Why TLS settings or certificates could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{0}")]
    Pem(String),
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Config(String),
    /// Our own or the peer's certificate does not name exactly one valid principal (I1).
    #[error("certificate principal: {0}")]
    Principal(String),
    /// rcgen could not make a certificate.
    #[error("certificate generation: {0}")]
    Generate(String),
    /// A node spec of `tandem certs create --nodes` is malformed.
    #[error("bad node spec {spec:?}: {reason}")]
    Spec {
        /// The spec.
        spec: String,
        /// Why.
        reason: String,
    },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One process's TLS settings for the internal port: both directions, and who we are.
#[derive(Clone)]
pub struct PeerTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    me: Principal,
    /// Node name -> the address to connect to instead (a proxy in front of it).
    connect_via: Arc<HashMap<String, String>>,
}

impl fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerTls").field("me", &self.me).finish()
    }
}

impl PeerTls {
    /// Loads the cluster CA certificate, our certificate (chain) and its private key from PEM
    /// files (`--cluster-ca`, `--cluster-cert`, `--cluster-key`); an error names the file and
    /// what is wrong with it.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<PeerTls, TlsError> {
        PeerTls::from_parts(load_certs(ca)?, load_certs(cert)?, load_key(key)?)
    }

    /// The same from PEM text in memory.
    pub fn from_pem(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<PeerTls, TlsError> {
        PeerTls::from_parts(
            parse_certs(ca_pem, "CA certificate")?,
            parse_certs(cert_pem, "certificate")?,
            parse_key(key_pem, "private key")?,
        )
    }

    fn from_parts(
        cas: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<PeerTls, TlsError> {
        let mut roots = RootCertStore::empty();
        for ca in cas {
            roots
                .add(ca)
                .map_err(|e| TlsError::Pem(format!("CA certificate: {e}")))?;
        }
        let Some(leaf) = chain.first() else {
            return Err(TlsError::Pem("no certificate".to_owned()));
        };
        let me = principal_of(leaf)?;
        let roots = Arc::new(roots);
        let versions = &[&rustls::version::TLS13];
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let client = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(PeerTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            me,
            connect_via: Arc::new(HashMap::new()),
        })
    }

    /// The same settings, reaching the node named `name` (its `HOST:PORT` principal) by
    /// connecting to `addr` instead: a TCP proxy in front of it. The peer must still prove
    /// `name` (I2).
    pub fn connect_via(mut self, name: &str, addr: &str) -> PeerTls {
        Arc::make_mut(&mut self.connect_via).insert(name.to_owned(), addr.to_owned());
        self
    }

    /// Where to open the TCP connection to reach the node named `name`: `name` itself unless
    /// [`PeerTls::connect_via`] gave another address.
    pub fn connect_address<'a>(&'a self, name: &'a str) -> &'a str {
        self.connect_via.get(name).map_or(name, String::as_str)
    }

    /// Who our certificate says we are.
    pub fn principal(&self) -> &Principal {
        &self.me
    }

    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    pub(crate) fn connector(&self) -> &TlsConnector {
        &self.connector
    }
}

/// Connects to `addr` and runs the client side of the TLS handshake with our certificate,
/// without checking which principal the peer proves (operator tools and tests; the transport
/// checks it, I2).
pub async fn dial(
    addr: &str,
    tls: &PeerTls,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let name = server_name(addr).map_err(std::io::Error::other)?;
    let stream = tokio::net::TcpStream::connect(addr).await?;
    tls.connector().connect(name, stream).await
}

/// [`dial`] from the local IP address `local` (tests: a peer on 127.0.0.2, I6).
pub async fn dial_from(
    addr: std::net::SocketAddr,
    local: IpAddr,
    tls: &PeerTls,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let name = server_name(&addr.to_string()).map_err(std::io::Error::other)?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(std::net::SocketAddr::new(local, 0))?;
    let stream = socket.connect(addr).await?;
    tls.connector().connect(name, stream).await
}

/// Checks that our own certificate names the principal we run as (a server with another
/// node's certificate would only be refused by every peer; say so at startup instead).
pub fn expect_principal(
    tls: &PeerTls,
    role: Role,
    name: Option<&str>,
) -> Result<(), crate::error::RuntimeError> {
    let me = tls.principal();
    if me.role == role && name.is_none_or(|name| me.name == name) {
        return Ok(());
    }
    let wanted = match name {
        Some(name) => format!("{role}/{name}"),
        None => format!("a {role} certificate"),
    };
    Err(crate::error::RuntimeError::Setting {
        key: "cluster-cert",
        reason: format!("the certificate names {me}, but this process runs as {wanted}"),
    })
}

/// The server name to verify when dialling `addr` (`HOST:PORT`, `[V6]:PORT`): its host.
pub fn server_name(addr: &str) -> Result<ServerName<'static>, TlsError> {
    let host = match addr.rsplit_once(':') {
        Some((host, _port)) => host,
        None => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|e| TlsError::Principal(format!("no server name in {addr:?}: {e}")))
}

/// Reads every certificate of a PEM file (a CA bundle, or a certificate and its chain); an
/// error names the file and what is wrong: unreadable, not PEM, or no certificate in it. The
/// one loader of certificate files, for the internal port (I2) and the client port (L5).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path)?;
    parse_certs(&pem, &path.display().to_string())
}

/// Reads the private key of a PEM file; an error names the file and what is wrong.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(path)?;
    parse_key(&pem, &path.display().to_string())
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::File {
        path: path.to_owned(),
        error,
    })
}

/// The certificates of PEM text from `source` (a path, or what the text is, for errors).
pub fn parse_certs(pem: &[u8], source: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(format!("{source}: not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(format!("{source}: holds no PEM certificate")));
    }
    Ok(certs)
}

/// The private key of PEM text from `source`.
pub fn parse_key(pem: &[u8], source: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            TlsError::Pem(format!("{source}: holds no PEM private key"))
        }
        e => TlsError::Pem(format!("{source}: not a PEM private key file: {e}")),
    })
}

/// Checks the principal a node dialled at `name` proved (I2): it must be a node (view service
/// or server) named exactly `name`, port included. The host alone is verified by the TLS
/// server name; another node on the same host has another port and must not stand in.
pub fn check_dialled(name: &str, proved: &Principal) -> Result<(), TlsError> {
    if !proved.role.is_node() {
        return Err(TlsError::Principal(format!(
            "dialled {name}, the peer proved to be {proved}, not a node"
        )));
    }
    if proved.name != name {
        return Err(TlsError::Principal(format!(
            "dialled {name}, the peer proved to be {proved}"
        )));
    }
    Ok(())
}

/// The one principal a certificate names (I1): exactly one `tandem://` URI SAN, well formed.
pub fn principal_of(cert: &CertificateDer<'_>) -> Result<Principal, TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| TlsError::Principal(format!("unparsable certificate: {e}")))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| TlsError::Principal(format!("bad subject alternative names: {e}")))?
        .ok_or_else(|| TlsError::Principal("no subject alternative names".to_owned()))?;
    let mut found = None;
    for name in &san.value.general_names {
        if let x509_parser::extensions::GeneralName::URI(uri) = name
            && uri.starts_with(crate::identity::PRINCIPAL_SCHEME)
        {
            if found.is_some() {
                return Err(TlsError::Principal("more than one principal".to_owned()));
            }
            found = Some(
                Principal::parse_uri(uri)
                    .ok_or_else(|| TlsError::Principal(format!("malformed principal {uri:?}")))?,
            );
        }
    }
    found.ok_or_else(|| TlsError::Principal("no tandem:// principal".to_owned()))
}

/// What one certificate is issued for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    /// The file stem (`NAME.pem`, `NAME.key`).
    pub file: String,
    /// The principal it names.
    pub principal: Principal,
    /// Extra DNS names or IP addresses (besides a node's own host).
    pub hosts: Vec<String>,
}

impl NodeSpec {
    /// Parses `FILE=ROLE@HOST:PORT` (view service, server) or `FILE=ROLE[@NAME]` (coordinator,
    /// admin; the name defaults to FILE).
    pub fn parse(spec: &str) -> Result<NodeSpec, TlsError> {
        let bad = |reason: &str| TlsError::Spec {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let (file, rest) = spec
            .split_once('=')
            .ok_or_else(|| bad("expected FILE=ROLE..."))?;
        let file = file.trim();
        if file.is_empty()
            || !file
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            || file.starts_with('.')
        {
            return Err(bad("FILE must be letters, digits, '-', '_' or '.'"));
        }
        let (role, name) = match rest.split_once('@') {
            Some((role, name)) => (role.trim(), Some(name.trim())),
            None => (rest.trim(), None),
        };
        let role = Role::parse(role)
            .ok_or_else(|| bad("ROLE must be viewservice, server, coordinator or admin"))?;
        let name = match (role.is_node(), name) {
            (true, Some(addr)) => {
                if !addr.contains(':') {
                    return Err(bad("a node's name is its HOST:PORT"));
                }
                server_name(addr)?;
                addr.to_owned()
            }
            (true, None) => return Err(bad("a node needs @HOST:PORT")),
            (false, Some(name)) => name.to_owned(),
            (false, None) => file.to_owned(),
        };
        let principal = Principal::parse_uri(&Principal::new(role, name).uri())
            .ok_or_else(|| bad("malformed name"))?;
        Ok(NodeSpec {
            file: file.to_owned(),
            principal,
            hosts: Vec::new(),
        })
    }

    /// A node certificate for `role` at `addr`, named FILE.
    pub fn node(file: &str, role: Role, addr: &str) -> NodeSpec {
        NodeSpec {
            file: file.to_owned(),
            principal: Principal::new(role, addr),
            hosts: Vec::new(),
        }
    }
}

/// One issued certificate and its key, PEM.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// What it was issued for.
    pub spec: NodeSpec,
    /// The certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

/// A cluster certificate authority held in memory.
pub struct ClusterCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

/// Validity of an issued certificate: from `not_before` for `days` days.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    /// Start.
    pub not_before: SystemTime,
    /// Length in days.
    pub days: u32,
}

impl Validity {
    /// From one hour ago (clock skew) for `days` days.
    pub fn days(days: u32) -> Validity {
        Validity {
            not_before: SystemTime::now() - Duration::from_secs(3600),
            days,
        }
    }

    fn apply(self, params: &mut CertificateParams) {
        params.not_before = self.not_before.into();
        params.not_after =
            (self.not_before + Duration::from_secs(u64::from(self.days) * 86_400)).into();
    }
}

fn generate(e: rcgen::Error) -> TlsError {
    TlsError::Generate(e.to_string())
}

impl ClusterCa {
    /// A new CA with a fresh key, valid for `validity`.
    pub fn new(validity: Validity) -> Result<ClusterCa, TlsError> {
        let key = KeyPair::generate().map_err(generate)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "tandem cluster CA");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity.apply(&mut params);
        let cert = params.self_signed(&key).map_err(generate)?;
        Ok(ClusterCa { cert, key })
    }

    /// The CA certificate, PEM (`ca.pem`).
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA private key, PEM (`ca.key`).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issues a certificate for `spec`: its principal as a URI SAN; a node's host and every
    /// extra host as DNS or IP SANs; usable as TLS client and server.
    pub fn issue(&self, spec: &NodeSpec, validity: Validity) -> Result<IssuedCert, TlsError> {
        let key = KeyPair::generate().map_err(generate)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, spec.principal.to_string());
        params.distinguished_name = name;
        let uri = rcgen::Ia5String::try_from(spec.principal.uri()).map_err(generate)?;
        params.subject_alt_names.push(SanType::URI(uri));
        let mut hosts = Vec::new();
        if spec.principal.role.is_node() {
            let host = match spec.principal.name.rsplit_once(':') {
                Some((host, _)) => host,
                None => spec.principal.name.as_str(),
            };
            hosts.push(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            );
        }
        hosts.extend(spec.hosts.iter().cloned());
        hosts.dedup();
        for host in hosts {
            params.subject_alt_names.push(match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(rcgen::Ia5String::try_from(host).map_err(generate)?),
            });
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        validity.apply(&mut params);
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(generate)?;
        Ok(IssuedCert {
            spec: spec.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The TLS settings of a process holding `issued`.
    pub fn peer_tls(&self, issued: &IssuedCert) -> Result<PeerTls, TlsError> {
        PeerTls::from_pem(
            self.cert_pem().as_bytes(),
            issued.cert_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        )
    }

    /// Issues a certificate for `principal` valid for a year and returns its TLS settings.
    pub fn peer(&self, role: Role, name: &str) -> Result<PeerTls, TlsError> {
        let issued = self.issue(&NodeSpec::node(name, role, name), Validity::days(365))?;
        self.peer_tls(&issued)
    }
}

/// A whole cluster's certificates: the CA and one per spec.
#[derive(Debug)]
pub struct ClusterCerts {
    /// The CA.
    pub ca: ClusterCa,
    /// One per spec, in order.
    pub issued: Vec<IssuedCert>,
}

/// Generates a CA and a certificate for each spec, all valid for `days` days.
pub fn generate_cluster(specs: &[NodeSpec], days: u32) -> Result<ClusterCerts, TlsError> {
    let validity = Validity::days(days);
    let ca = ClusterCa::new(validity)?;
    let issued = specs
        .iter()
        .map(|spec| ca.issue(spec, validity))
        .collect::<Result<_, _>>()?;
    Ok(ClusterCerts { ca, issued })
}

impl ClusterCerts {
    /// Writes `ca.pem`, `ca.key` and `FILE.pem`/`FILE.key` per certificate into `dir`
    /// (created if missing); keys get mode 0600. Refuses to replace any existing file unless
    /// `force`. Returns the paths written.
    pub fn write(&self, dir: &Path, force: bool) -> Result<Vec<PathBuf>, TlsError> {
        self.write_split(dir, dir, force)
    }

    /// [`ClusterCerts::write`] with `ca.key` written into `ca_key_dir` instead, so that the
    /// directory given to the nodes never holds it (deploy/docker-compose.yml).
    pub fn write_split(
        &self,
        dir: &Path,
        ca_key_dir: &Path,
        force: bool,
    ) -> Result<Vec<PathBuf>, TlsError> {
        let file_error = |path: &Path, error| TlsError::File {
            path: path.to_owned(),
            error,
        };
        std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
        std::fs::create_dir_all(ca_key_dir).map_err(|e| file_error(ca_key_dir, e))?;
        let mut files = vec![
            (dir.join("ca.pem"), self.ca.cert_pem(), false),
            (ca_key_dir.join("ca.key"), self.ca.key_pem(), true),
        ];
        for issued in &self.issued {
            let stem = &issued.spec.file;
            files.push((
                dir.join(format!("{stem}.pem")),
                issued.cert_pem.clone(),
                false,
            ));
            files.push((
                dir.join(format!("{stem}.key")),
                issued.key_pem.clone(),
                true,
            ));
        }
        if !force && let Some((path, _, _)) = files.iter().find(|(path, _, _)| path.exists()) {
            return Err(file_error(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "already exists (use --force to replace)",
                ),
            ));
        }
        for (path, contents, secret) in &files {
            write_file(path, contents, *secret).map_err(|e| file_error(path, e))?;
        }
        Ok(files.into_iter().map(|(path, _, _)| path).collect())
    }
}

fn write_file(path: &Path, contents: &str, secret: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i1_node_specs_parse_and_refuse_garbage() {
        let vs = NodeSpec::parse("vs1=viewservice@127.0.0.1:7000").unwrap();
        assert_eq!(
            vs.principal,
            Principal::new(Role::ViewService, "127.0.0.1:7000")
        );
        let c = NodeSpec::parse("c1=coordinator").unwrap();
        assert_eq!(c.principal, Principal::new(Role::Coordinator, "c1"));
        let ops = NodeSpec::parse("ops=admin@alice").unwrap();
        assert_eq!(ops.principal, Principal::new(Role::Admin, "alice"));
        for bad in [
            "vs1",
            "vs1=viewservice",
            "s=server@nohost",
            "x=root@a:1",
            "../x=admin",
            "=admin",
        ] {
            assert!(NodeSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn i1_issued_certificates_name_their_principal() {
        let ca = ClusterCa::new(Validity::days(1)).unwrap();
        let mut spec = NodeSpec::node("s1", Role::Server, "127.0.0.1:7101");
        spec.hosts.push("example.test".to_owned());
        let issued = ca.issue(&spec, Validity::days(1)).unwrap();
        let tls = ca.peer_tls(&issued).unwrap();
        assert_eq!(tls.principal(), &spec.principal);
    }

    #[test]
    fn i2_keys_are_written_private_and_files_not_replaced() {
        let dir = std::env::temp_dir().join(format!("tandem-certs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let specs = [NodeSpec::parse("c1=coordinator").unwrap()];
        let certs = generate_cluster(&specs, 2).unwrap();
        certs.write(&dir, false).unwrap();
        assert!(certs.write(&dir, false).is_err());
        certs.write(&dir, true).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("ca.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        PeerTls::load(
            &dir.join("ca.pem"),
            &dir.join("c1.pem"),
            &dir.join("c1.key"),
        )
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pem_errors_name_the_file_and_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("tandem-pem-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let specs = [NodeSpec::parse("c1=coordinator").unwrap()];
        generate_cluster(&specs, 2)
            .unwrap()
            .write(&dir, false)
            .unwrap();
        let (ca, cert, key) = (dir.join("ca.pem"), dir.join("c1.pem"), dir.join("c1.key"));
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not pem at all\n").unwrap();
        let missing = dir.join("missing.pem");
        let cases = [
            (&missing, &cert, &key, "missing.pem", "No such file"),
            (
                &garbage,
                &cert,
                &key,
                "garbage.pem",
                "holds no PEM certificate",
            ),
            (
                &ca,
                &garbage,
                &key,
                "garbage.pem",
                "holds no PEM certificate",
            ),
            (
                &ca,
                &cert,
                &garbage,
                "garbage.pem",
                "holds no PEM private key",
            ),
            (&ca, &cert, &cert, "c1.pem", "holds no PEM private key"),
        ];
        for (ca, cert, key, file, what) in cases {
            let error = PeerTls::load(ca, cert, key).unwrap_err().to_string();
            assert!(error.contains(file) && error.contains(what), "{error}");
        }
        // The client port's loader is the same one.
        let error = load_certs(&garbage).unwrap_err().to_string();
        assert!(
            error.contains("garbage.pem: holds no PEM certificate"),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn i2_the_dialled_endpoint_must_be_the_principal() {
        let node = Principal::new(Role::Server, "127.0.0.1:7001");
        assert!(check_dialled("127.0.0.1:7001", &node).is_ok());
        assert!(check_dialled("127.0.0.1:7002", &node).is_err());
        let vs = Principal::new(Role::ViewService, "127.0.0.1:7001");
        assert!(check_dialled("127.0.0.1:7001", &vs).is_ok());
        let admin = Principal::new(Role::Admin, "127.0.0.1:7001");
        assert!(check_dialled("127.0.0.1:7001", &admin).is_err());
        let ca = ClusterCa::new(Validity::days(1)).unwrap();
        let tls = ca.peer(Role::Coordinator, "c").unwrap();
        assert_eq!(tls.connect_address("10.0.0.1:7000"), "10.0.0.1:7000");
        let tls = tls.connect_via("10.0.0.1:7000", "127.0.0.1:9000");
        assert_eq!(tls.connect_address("10.0.0.1:7000"), "127.0.0.1:9000");
    }

    #[test]
    fn server_names_come_from_the_host() {
        assert!(matches!(
            server_name("127.0.0.1:1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]:1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("localhost:1").unwrap(),
            ServerName::DnsName(_)
        ));
    }
}
