//! TLS on the coordinator's client port (rule L5 of docs/PROTOCOL.md), with real clients:
//! redis-cli `--tls` and redis-py `ssl=True`. Certificates are made here with rcgen: a CA, a
//! coordinator certificate for 127.0.0.1/localhost, a client certificate from that CA and one
//! from another CA.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use support::{Cluster, Proc, TempDir, free_port, wait_for};

/// A CA: its certificate and key.
struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A certificate signed by this CA for `names`, used as `purpose`: (cert PEM, key PEM).
    fn issue(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> (String, String) {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "tandem test");
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// The files of one test: the CA, the coordinator's pair, a good and a foreign client pair.
struct Files {
    dir: TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = TempDir::new("client-tls");
        let ca = Ca::new("tandem test CA");
        let other = Ca::new("another CA");
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", &ca.cert.pem());
        write("other-ca.pem", &other.cert.pem());
        let (cert, key) = ca.issue(
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        write("coordinator.pem", &cert);
        write("coordinator.key", &key);
        let (cert, key) = ca.issue(&["client"], ExtendedKeyUsagePurpose::ClientAuth);
        write("client.pem", &cert);
        write("client.key", &key);
        let (cert, key) = other.issue(&["client"], ExtendedKeyUsagePurpose::ClientAuth);
        write("foreign.pem", &cert);
        write("foreign.key", &key);
        Files { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A coordinator with a TLS port (client certificates required) in front of `cluster`.
fn tls_coordinator(cluster: &Cluster, files: &Files) -> (Proc, u16) {
    let tls_port = free_port();
    let path = |name: &str| files.path(name).display().to_string();
    let coordinator = Proc::spawn(
        "tls-coordinator",
        &[
            "coordinator".into(),
            "--listen".into(),
            format!("127.0.0.1:{}", free_port()),
            "--tls-listen".into(),
            format!("127.0.0.1:{tls_port}"),
            "--tls-cert".into(),
            path("coordinator.pem"),
            "--tls-key".into(),
            path("coordinator.key"),
            "--tls-ca".into(),
            path("ca.pem"),
            "--viewserver".into(),
            cluster.vs.list(),
        ],
    );
    assert!(
        wait_for(Duration::from_secs(15), || TcpStream::connect((
            "127.0.0.1",
            tls_port
        ))
        .is_ok()),
        "the TLS port did not open"
    );
    (coordinator, tls_port)
}

/// redis-cli over TLS with `ca` as the trusted CA and the client pair `client` (if any).
fn redis_cli_tls(port: u16, files: &Files, client: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new("redis-cli");
    command
        .args(["--tls", "--cacert"])
        .arg(files.path("ca.pem"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    if let Some(client) = client {
        command
            .arg("--cert")
            .arg(files.path(&format!("{client}.pem")))
            .arg("--key")
            .arg(files.path(&format!("{client}.key")));
    }
    command.args(args).output().expect("redis-cli runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Retries `args` until redis-cli answers `expected` (the coordinator may still be learning
/// the view).
fn redis_cli_until(port: u16, files: &Files, args: &[&str], expected: &str) {
    let mut last = String::new();
    let answered = wait_for(Duration::from_secs(15), || {
        let output = redis_cli_tls(port, files, Some("client"), args);
        last = format!(
            "{} {}",
            stdout(&output),
            String::from_utf8_lossy(&output.stderr)
        );
        stdout(&output) == expected
    });
    assert!(answered, "redis-cli {args:?}: {last}");
}

#[test]
#[cfg_attr(
    not(all(has_redis_cli, has_redis_py)),
    ignore = "needs redis-cli (Debian package redis-tools) and redis-py (pip install redis)"
)]
fn l5_redis_cli_and_redis_py_set_and_get_over_tls() {
    let files = Files::new();
    let cluster = Cluster::start_single(1, &[]);
    let (_coordinator, port) = tls_coordinator(&cluster, &files);

    redis_cli_until(port, &files, &["PING"], "PONG");
    redis_cli_until(port, &files, &["SET", "tls-key", "over tls"], "OK");
    redis_cli_until(port, &files, &["GET", "tls-key"], "over tls");

    let script = format!(
        "import redis\n\
         r = redis.Redis(host='127.0.0.1', port={port}, ssl=True, ssl_ca_certs={ca:?}, \
         ssl_certfile={cert:?}, ssl_keyfile={key:?})\n\
         assert r.set('py-key', 'from python')\n\
         print(r.get('py-key').decode(), r.get('tls-key').decode())\n",
        ca = files.path("ca.pem").display().to_string(),
        cert = files.path("client.pem").display().to_string(),
        key = files.path("client.key").display().to_string(),
    );
    let output = python(&script);
    assert!(
        output.status.success(),
        "redis-py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout(&output), "from python over tls");
}

fn python(script: &str) -> Output {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3 runs")
}

#[test]
#[cfg_attr(
    not(has_redis_cli),
    ignore = "needs redis-cli on PATH (Debian package redis-tools)"
)]
fn l5_tls_port_refuses_plain_text_foreign_and_missing_client_certificates() {
    let files = Files::new();
    let cluster = Cluster::start_single(1, &[]);
    let (_coordinator, port) = tls_coordinator(&cluster, &files);
    redis_cli_until(port, &files, &["PING"], "PONG");

    // Plain text on the TLS port: no PONG, the connection ends.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    plain.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("PONG"),
        "{answer:?}"
    );

    // A client certificate from another CA, and none at all: refused.
    for client in [Some("foreign"), None] {
        let output = redis_cli_tls(port, &files, client, &["PING"]);
        assert_ne!(stdout(&output), "PONG", "client certificate {client:?}");
    }
    assert_no_pong_over_tls_without_the_coordinator_ca(port, &files.path("other-ca.pem"));
}

/// A client that trusts another CA refuses the coordinator's certificate.
fn assert_no_pong_over_tls_without_the_coordinator_ca(port: u16, other_ca: &Path) {
    let output = Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(other_ca)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "PING"])
        .output()
        .expect("redis-cli runs");
    assert_ne!(stdout(&output), "PONG");
}
