//! Configuration files (`--config FILE`, TOML) and `tandem config example ROLE`.
//!
//! Every setting of a role comes from, in decreasing priority: its command-line flag, its
//! environment variable (`TANDEM_` + the flag name in capitals, `-` as `_`: `--ping-interval-ms`
//! is `TANDEM_PING_INTERVAL_MS`), its key in the file (the flag name: `ping-interval-ms = 100`),
//! its default. clap resolves flag over environment; [`pick`] puts the file and the default
//! under that. A file with an unknown key, a value of the wrong type or bad TOML is refused
//! with the file, line and key named.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Args, ValueEnum};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event, fields as `key=value`.
    #[default]
    Text,
    /// One JSON object per line, fields as keys (for log shippers).
    Json,
}

/// `--config FILE` and `--print-config`, part of [`crate::role::RoleArgs`].
#[derive(Args, Debug, Clone)]
pub struct ConfigArg {
    /// Read settings from this TOML file (`tandem config example ROLE` prints one); flags and
    /// TANDEM_* environment variables override it.
    #[arg(long, value_name = "FILE", env = "TANDEM_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Print the effective settings (after flags, environment, file, defaults) as TOML and exit;
    /// the output is a valid `--config` file.
    #[arg(long)]
    pub print_config: bool,
}

/// `--viewserver ADDRS`, shared by the roles that talk to the view service.
#[derive(Args, Debug, Clone)]
pub struct ViewServiceArg {
    /// View-service node addresses, comma-separated (1 to 64 HOST:PORT, no duplicates); the
    /// leader is found among them.
    #[arg(
        long = "viewserver",
        value_name = "ADDRS",
        value_delimiter = ',',
        env = "TANDEM_VIEWSERVER"
    )]
    pub addrs: Option<Vec<String>>,
}

/// The `--viewserver` list of the operator tools (`status`, `viewserver add-node|remove-node`),
/// which have no configuration file: required on the command line.
#[derive(Args, Debug, Clone)]
pub struct ViewServiceList {
    /// View-service node addresses, comma-separated (1 to 64 HOST:PORT, no duplicates); the
    /// leader is found among them.
    #[arg(
        long = "viewserver",
        value_name = "ADDRS",
        value_delimiter = ',',
        required = true
    )]
    pub addrs: Vec<String>,
}

/// The first value present: flag or environment (clap), then the file, then the default.
pub fn pick<T>(cli: Option<T>, file: Option<T>, default: T) -> T {
    cli.or(file).unwrap_or(default)
}

/// Like [`pick`] for a setting without a default: names every way to give it when missing.
pub fn require<T>(cli: Option<T>, file: Option<T>, key: &str) -> anyhow::Result<T> {
    cli.or(file).ok_or_else(|| {
        let env = format!("TANDEM_{}", key.to_uppercase().replace('-', "_"));
        anyhow!("missing setting {key}: give --{key}, set {env}, or put `{key} = ...` in --config")
    })
}

/// Reads the file named by `arg`, if any, into `T` (all of whose fields are optional).
pub fn load<T: DeserializeOwned + Default>(arg: &ConfigArg) -> anyhow::Result<T> {
    match &arg.config {
        Some(path) => load_file(path),
        None => Ok(T::default()),
    }
}

/// Prints a role's resolved settings as its config file (unset optional keys omitted), so
/// that the output loads back with `--config`.
pub fn print_settings<T: Serialize>(settings: &T) -> anyhow::Result<ExitCode> {
    let text = toml::to_string(settings).context("cannot print the settings as TOML")?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// Parses a TOML file into `T`; errors name the file, the line and the key.
pub fn load_file<T: DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse(&path.display().to_string(), &text)
}

/// Parses TOML `text` read from `name`.
pub fn parse<T: DeserializeOwned>(name: &str, text: &str) -> anyhow::Result<T> {
    toml::from_str(text).map_err(|error| {
        let (line, key) = match error.span() {
            Some(span) => locate(text, span.start),
            None => (0, None),
        };
        let message = error.message().trim();
        match key {
            Some(key) => anyhow!("config file {name}, line {line}, key `{key}`: {message}"),
            None => anyhow!("config file {name}, line {line}: {message}"),
        }
    })
}

/// The 1-based line of byte `offset`, and the key assigned on that line, if any.
fn locate(text: &str, offset: usize) -> (usize, Option<String>) {
    let offset = offset.min(text.len());
    let line = text[..offset].matches('\n').count() + 1;
    let content = text.lines().nth(line - 1).unwrap_or("");
    let key = content
        .split_once('=')
        .map(|(key, _)| key.trim().trim_matches('"').to_owned())
        .filter(|key| !key.is_empty() && !key.starts_with('#'));
    (line, key)
}

/// The settings file of `tandem viewserver`, and what its `--print-config` prints.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ViewServerFile {
    /// `listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `advertise`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// `id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// `peers`: `["1=HOST:PORT", ...]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<String>>,
    /// `data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<std::path::PathBuf>,
    /// `raft-tick-ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_tick_ms: Option<u64>,
    /// `election-ticks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub election_ticks: Option<usize>,
    /// `admin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// `admin-token` (never printed by --print-config).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// `coordinator-admin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coordinator_admin: Option<Vec<String>>,
    /// `ping-interval-ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_interval_ms: Option<u64>,
    /// `dead-pings`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_pings: Option<u32>,
    /// `backups`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backups: Option<usize>,
    /// `history-len`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_len: Option<usize>,
    /// `log-level`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// `log-format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// `cluster-ca` (I2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_ca: Option<std::path::PathBuf>,
    /// `cluster-cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_cert: Option<std::path::PathBuf>,
    /// `cluster-key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_key: Option<std::path::PathBuf>,
    /// `insecure`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

/// The settings file of `tandem server`, and what its `--print-config` prints.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServerFile {
    /// `listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `viewserver`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub viewserver: Option<Vec<String>>,
    /// `advertise`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// `group`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<u32>,
    /// `ping-interval-ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_interval_ms: Option<u64>,
    /// `maxmemory` (bytes, or with a unit: `100mb`, `1gb`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxmemory: Option<String>,
    /// `maxmemory-policy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxmemory_policy: Option<String>,
    /// `proto-max-bulk-len` (bytes, or with a unit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proto_max_bulk_len: Option<String>,
    /// `transfer-chunk-bytes`: the byte budget of one state-transfer or slot-move chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_chunk_bytes: Option<usize>,
    /// `transfer-window`: chunks of a state transfer or slot move in flight at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_window: Option<u32>,
    /// `client-listen`: the Redis Cluster client port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_listen: Option<String>,
    /// `client-advertise`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_advertise: Option<String>,
    /// `client-protected-mode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_protected_mode: Option<YesNo>,
    /// `admin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// `admin-token` (never printed by --print-config).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// `log-level`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// `log-format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// `cluster-ca` (I2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_ca: Option<std::path::PathBuf>,
    /// `cluster-cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_cert: Option<std::path::PathBuf>,
    /// `cluster-key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_key: Option<std::path::PathBuf>,
    /// `insecure`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

/// The settings file of `tandem coordinator`, and what its `--print-config` prints.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CoordinatorFile {
    /// `listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `viewserver`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub viewserver: Option<Vec<String>>,
    /// `request-timeout-ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    /// `max-connections`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// `tls-listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_listen: Option<String>,
    /// `tls-cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// `tls-key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// `tls-ca`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// `tls-auth-clients`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_auth_clients: Option<TlsAuthClientsArg>,
    /// `unfinished-request-timeout-ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfinished_request_timeout_ms: Option<u64>,
    /// `timeout` (Redis's name: idle seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// `max-total-query-bytes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_total_query_bytes: Option<usize>,
    /// `max-reply-bytes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_reply_bytes: Option<usize>,
    /// `requirepass` (never printed back by `--print-config`).
    #[serde(skip_serializing)]
    pub requirepass: Option<String>,
    /// `protected-mode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protected_mode: Option<YesNo>,
    /// `admin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// `admin-token` (never printed by --print-config).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// `log-level`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// `log-format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// `cluster-ca` (I2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_ca: Option<std::path::PathBuf>,
    /// `cluster-cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_cert: Option<std::path::PathBuf>,
    /// `cluster-key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_key: Option<std::path::PathBuf>,
    /// `insecure`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

/// `--tls-auth-clients`: Redis's `tls-auth-clients` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsAuthClientsArg {
    /// No client certificate asked for.
    No,
    /// A certificate, if shown, must be signed by --tls-ca.
    Optional,
    /// Every client shows a certificate signed by --tls-ca.
    Yes,
}

/// `yes` or `no`, as Redis spells its boolean settings (`--protected-mode yes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum YesNo {
    /// On.
    Yes,
    /// Off.
    No,
}

/// The role whose example `tandem config example` prints.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExampleRole {
    /// `tandem viewserver`.
    Viewserver,
    /// `tandem server`.
    Server,
    /// `tandem coordinator`.
    Coordinator,
}

/// A commented example file for `role`, every key at its default.
pub fn example(role: ExampleRole) -> &'static str {
    match role {
        ExampleRole::Viewserver => VIEWSERVER_EXAMPLE,
        ExampleRole::Server => SERVER_EXAMPLE,
        ExampleRole::Coordinator => COORDINATOR_EXAMPLE,
    }
}

const VIEWSERVER_EXAMPLE: &str = r#"# tandem viewserver --config viewserver.toml
# Every key is optional here; a flag (--ping-interval-ms) or an environment variable
# (TANDEM_PING_INTERVAL_MS) overrides the file.

# Address servers, coordinators and the other nodes reach this node at (required).
listen = "127.0.0.1:7000"

# This node's Raft id, and the group's members (ID=HOST:PORT, this node included; a node
# whose id is not listed waits to be added with `tandem viewserver add-node`). Without
# peers: a single node.
id = 1
# peers = ["1=10.0.0.1:7000", "2=10.0.0.2:7000", "3=10.0.0.3:7000"]

# Where the Raft log is kept (required with peers; without it a single node keeps nothing).
# data-dir = "/var/lib/tandem/viewservice"

# The address the others reach this node at, when it is not the listen address (0.0.0.0).
# advertise = "10.0.0.1:7000"

# Raft tick, and ticks without a leader before a node campaigns (randomized up to twice).
raft-tick-ms = 50
election-ticks = 6

# Admin HTTP endpoint: /status, /metrics, /healthz, /readyz and the dashboard at /.
# Off unless set; a bare port means 127.0.0.1:PORT.
# admin = "127.0.0.1:9000"
# Bearer token the admin endpoint asks for (required to bind it beyond loopback).
# admin-token = "change-me"

# Admin endpoints of the coordinators, read every second for the dashboard's throughput.
# coordinator-admin = ["127.0.0.1:9100"]

# How often servers ping (V2), and how many missed pings make a server dead (V3).
ping-interval-ms = 100
dead-pings = 5

# Backups per replica group (V8).
backups = 1

# Views remembered per group, with the reason of each change (tandem status --history).
history-len = 64

# Logs go to stderr: level (error, warn, info, debug, trace or a directive list) and
# format ("text" or "json": one object per line).
log-level = "info"
log-format = "text"

# The cluster CA and this process's certificate and key for the internal port (mutual TLS;
# make them with `tandem certs create`). Without them the process refuses to start unless
# insecure = true (plain TCP, no authentication).
# cluster-ca = "/etc/tandem/certs/ca.pem"
# cluster-cert = "/etc/tandem/certs/NAME.pem"
# cluster-key = "/etc/tandem/certs/NAME.key"
# insecure = false
"#;

const SERVER_EXAMPLE: &str = r#"# tandem server --config server.toml
# Every key is optional here; a flag (--group) or an environment variable (TANDEM_GROUP)
# overrides the file.

# Address the primary, backups and coordinators reach this server at (required).
listen = "127.0.0.1:7001"

# View-service node addresses (required; 1 to 64, the leader is found among them).
viewserver = ["127.0.0.1:7000"]

# The address peers use, which is also the server's id (default: the bound listen address;
# required when listening on 0.0.0.0).
# advertise = "10.0.0.5:7001"

# Replica group served.
group = 0

# How often to ping the view service (V2).
ping-interval-ms = 100

# Memory limit on keys and values (0: none), and what to do beyond it: noeviction (refuse
# writes with -OOM), allkeys-lru, allkeys-random, volatile-lru, volatile-ttl, volatile-random.
# maxmemory = "1gb"
# maxmemory-policy = "noeviction"

# Largest value (string, list element, hash field or value); at most a quarter of a frame.
# proto-max-bulk-len = "16mb"

# Byte budget of one chunk of a state transfer or a slot move (1 KiB to 64 MiB).
# transfer-chunk-bytes = 1048576
# Chunks of one copy in flight at once (1 to 1024).
# transfer-window = 4

# Also serve Redis Cluster clients (redis-cli -c, redis-py RedisCluster) here; the advertised
# address goes into the cluster map, CLUSTER SLOTS and -MOVED. Off unless set.
# client-listen = "0.0.0.0:6379"
# client-advertise = "10.0.0.4:6379"
# client-protected-mode = "yes"

# Admin HTTP endpoint: /status, /metrics, /healthz, /readyz. Off unless set.
# admin = "127.0.0.1:9001"
# Bearer token the admin endpoint asks for (required to bind it beyond loopback).
# admin-token = "change-me"

log-level = "info"
log-format = "text"

# The cluster CA and this process's certificate and key for the internal port (mutual TLS;
# make them with `tandem certs create`). Without them the process refuses to start unless
# insecure = true (plain TCP, no authentication).
# cluster-ca = "/etc/tandem/certs/ca.pem"
# cluster-cert = "/etc/tandem/certs/NAME.pem"
# cluster-key = "/etc/tandem/certs/NAME.key"
# insecure = false
"#;

const COORDINATOR_EXAMPLE: &str = r#"# tandem coordinator --config coordinator.toml
# Every key is optional here; a flag (--request-timeout-ms) or an environment variable
# (TANDEM_REQUEST_TIMEOUT_MS) overrides the file.

# Address Redis clients connect to (required).
listen = "127.0.0.1:6379"

# View-service node addresses (required; 1 to 64, the leader is found among them).
viewserver = ["127.0.0.1:7000"]

# A request not answered within this long gets -TRYAGAIN (C3).
request-timeout-ms = 5000

# Most client connections served at once; the one beyond gets
# -ERR max number of clients reached.
max-connections = 10000

# TLS port beside the plain one (like Redis's tls-port beside port), off unless set.
# With tls-ca, clients must show a certificate signed by it (tls-auth-clients = "yes").
# tls-listen = "127.0.0.1:6380"
# tls-cert = "coordinator.pem"
# tls-key = "coordinator.key"
# tls-ca = "ca.pem"
# tls-auth-clients = "yes"

# An unfinished request must be complete within this long, else the client is closed.
unfinished-request-timeout-ms = 30000

# Close a client idle this many seconds (Redis's timeout; 0: never).
timeout = 0

# Bytes of unfinished requests held across all clients, and the largest reply sent.
max-total-query-bytes = 536870912
max-reply-bytes = 67108864
# The default user's password, set through the cluster at start if it has none yet (A9).
# Prefer TANDEM_REQUIREPASS over writing it here.
# requirepass = "..."

# While the default user has no password, refuse clients from non-loopback addresses (A10).
protected-mode = "yes"

# Admin HTTP endpoint: /status, /metrics, /healthz, /readyz. Off unless set.
# admin = "127.0.0.1:9100"
# Bearer token the admin endpoint asks for (required to bind it beyond loopback).
# admin-token = "change-me"

log-level = "info"
log-format = "text"

# The cluster CA and this process's certificate and key for the internal port (mutual TLS;
# make them with `tandem certs create`). Without them the process refuses to start unless
# insecure = true (plain TCP, no authentication).
# cluster-ca = "/etc/tandem/certs/ca.pem"
# cluster-cert = "/etc/tandem/certs/NAME.pem"
# cluster-key = "/etc/tandem/certs/NAME.key"
# insecure = false
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_parses() {
        let _: ViewServerFile = parse("vs", VIEWSERVER_EXAMPLE).unwrap();
        let _: ServerFile = parse("s", SERVER_EXAMPLE).unwrap();
        let _: CoordinatorFile = parse("c", COORDINATOR_EXAMPLE).unwrap();
    }

    #[test]
    fn precedence_is_flag_then_file_then_default() {
        assert_eq!(pick(Some(3), Some(2), 1), 3);
        assert_eq!(pick(None, Some(2), 1), 2);
        assert_eq!(pick(None, None, 1), 1);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = "listen = \"a:1\"\n\npingg-interval-ms = 5\n";
        let error = parse::<ViewServerFile>("vs.toml", text)
            .unwrap_err()
            .to_string();
        assert!(error.contains("vs.toml"), "{error}");
        assert!(error.contains("line 3"), "{error}");
        assert!(error.contains("`pingg-interval-ms`"), "{error}");
    }

    #[test]
    fn wrong_type_names_file_line_and_key() {
        let text = "listen = \"a:1\"\ndead-pings = \"five\"\n";
        let error = parse::<ViewServerFile>("vs.toml", text)
            .unwrap_err()
            .to_string();
        assert!(error.contains("line 2"), "{error}");
        assert!(error.contains("`dead-pings`"), "{error}");
    }

    #[test]
    fn bad_toml_names_the_line() {
        let text = "listen = \"a:1\"\nbackups = = 2\n";
        let error = parse::<ViewServerFile>("vs.toml", text)
            .unwrap_err()
            .to_string();
        assert!(error.contains("vs.toml, line 2"), "{error}");
    }
}
