//! `tandem server`: run one replica server.

use std::process::ExitCode;

use clap::Args;
use tandem_protocol::GroupId;
use tandem_protocol::config::EvictionPolicy;
use tandem_runtime::{ClientFront, CoordinatorConfig, Server, ServerConfig};

use crate::config::{ServerFile, ViewServiceArg, YesNo, pick, print_settings, require};
use crate::role::{RoleArgs, SharedFileKeys, run_role};

/// Options of `tandem server`. Each flag can also come from its `TANDEM_*` variable or the
/// `--config` file.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Address to listen on for the primary, backups and coordinators.
    #[arg(long, value_name = "HOST:PORT", env = "TANDEM_LISTEN")]
    listen: Option<String>,
    #[command(flatten)]
    view_service: ViewServiceArg,
    /// The address peers reach this server at, which is also its id (default: the bound
    /// listen address).
    #[arg(long, value_name = "HOST:PORT", env = "TANDEM_ADVERTISE")]
    advertise: Option<String>,
    /// Replica group served [default: 0].
    #[arg(long, env = "TANDEM_GROUP")]
    group: Option<u32>,
    /// How often to ping the view service (V2) [default: 100].
    #[arg(long, env = "TANDEM_PING_INTERVAL_MS")]
    ping_interval_ms: Option<u64>,
    /// Memory limit on keys and values, in bytes or with a unit (`100mb`, `1gb`); 0: none
    /// [default: 0].
    #[arg(long, value_name = "BYTES", env = "TANDEM_MAXMEMORY")]
    maxmemory: Option<String>,
    /// What the primary does beyond --maxmemory: noeviction, allkeys-lru, allkeys-random,
    /// volatile-lru, volatile-ttl or volatile-random [default: noeviction].
    #[arg(long, value_name = "POLICY", env = "TANDEM_MAXMEMORY_POLICY")]
    maxmemory_policy: Option<String>,
    /// Largest value (string, list element, hash field or value), in bytes or with a unit
    /// [default: 16mb].
    #[arg(long, value_name = "BYTES", env = "TANDEM_PROTO_MAX_BULK_LEN")]
    proto_max_bulk_len: Option<String>,
    /// Byte budget of one chunk of a state transfer or a slot move (P6, S5), 1 KiB to
    /// 64 MiB; smaller chunks make copies slower, not less safe [default: 1048576].
    #[arg(long, value_name = "BYTES", env = "TANDEM_TRANSFER_CHUNK_BYTES")]
    transfer_chunk_bytes: Option<usize>,
    /// Chunks of a state transfer or a slot move in flight at once, 1 to 1024 [default: 4].
    #[arg(long, value_name = "CHUNKS", env = "TANDEM_TRANSFER_WINDOW")]
    transfer_window: Option<u32>,
    /// Also serve Redis Cluster clients (redis-cli -c, redis-py RedisCluster, ...) on this
    /// address: CLUSTER SLOTS/NODES, -MOVED to the owner of a key's slot [default: off].
    #[arg(long, value_name = "HOST:PORT", env = "TANDEM_CLIENT_LISTEN")]
    client_listen: Option<String>,
    /// The address clients reach the client port at, announced in the cluster map and in
    /// -MOVED (default: the bound --client-listen address).
    #[arg(long, value_name = "HOST:PORT", env = "TANDEM_CLIENT_ADVERTISE")]
    client_advertise: Option<String>,
    /// While the default user has no password, refuse clients of the client port from
    /// non-loopback addresses with Redis's -DENIED (A10) [default: yes].
    #[arg(long, value_enum, env = "TANDEM_CLIENT_PROTECTED_MODE")]
    client_protected_mode: Option<YesNo>,
    #[command(flatten)]
    role: RoleArgs,
}

/// A size in bytes as Redis writes it: a number with an optional unit, `k`/`m`/`g` (powers
/// of 1000) or `kb`/`mb`/`gb` (powers of 1024), case-insensitive.
pub fn parse_memory(text: &str) -> anyhow::Result<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let scale: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => anyhow::bail!("{text:?}: the unit must be one of k, kb, m, mb, g, gb"),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| anyhow::anyhow!("{text:?} is not a size such as 100mb"))?;
    number
        .checked_mul(scale)
        .ok_or_else(|| anyhow::anyhow!("{text:?} is too large"))
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let file: ServerFile = args.role.load_file()?;
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
    let defaults = ServerConfig::default();
    let listen = require(args.listen, file.listen, "listen")?;
    let view_service = crate::role::view_service_list(args.view_service.addrs, file.viewserver)?;
    let advertise = args.advertise.or(file.advertise);
    let mut config = ServerConfig {
        group: GroupId(pick(args.group, file.group, 0)),
        admin: shared.admin.clone(),
        admin_token: shared.admin_token.clone(),
        ..ServerConfig::default()
    };
    config.replica.ping_interval_ms = pick(
        args.ping_interval_ms,
        file.ping_interval_ms,
        defaults.replica.ping_interval_ms,
    );
    let maxmemory = args.maxmemory.or(file.maxmemory);
    if let Some(text) = &maxmemory {
        config.replica.maxmemory_bytes = parse_memory(text)?;
    }
    let policy = args.maxmemory_policy.or(file.maxmemory_policy);
    if let Some(name) = &policy {
        config.replica.maxmemory_policy = EvictionPolicy::parse(name).ok_or_else(|| {
            let names: Vec<_> = EvictionPolicy::ALL.iter().map(|(_, n)| *n).collect();
            anyhow::anyhow!("maxmemory-policy {name:?}: use one of {}", names.join(", "))
        })?;
    }
    let max_value = args.proto_max_bulk_len.or(file.proto_max_bulk_len);
    if let Some(text) = &max_value {
        config.replica.max_value_bytes = parse_memory(text)?;
    }
    config.replica.transfer_chunk_bytes = pick(
        args.transfer_chunk_bytes,
        file.transfer_chunk_bytes,
        defaults.replica.transfer_chunk_bytes,
    );
    config.replica.transfer_window = pick(
        args.transfer_window,
        file.transfer_window,
        defaults.replica.transfer_window,
    );
    config.validate()?;
    let client_listen = args.client_listen.or(file.client_listen);
    let client_advertise = args.client_advertise.or(file.client_advertise);
    let client_protected_mode = pick(
        args.client_protected_mode,
        file.client_protected_mode,
        YesNo::Yes,
    );
    let client_front = client_listen.clone().map(|listen| ClientFront {
        listen,
        advertise: client_advertise.clone(),
        config: CoordinatorConfig {
            protected_mode: client_protected_mode == YesNo::Yes,
            ..CoordinatorConfig::default()
        },
    });
    if args.role.print_config_only() {
        return print_settings(&ServerFile {
            listen: Some(listen),
            viewserver: Some(view_service),
            advertise,
            group: Some(config.group.0),
            ping_interval_ms: Some(config.replica.ping_interval_ms),
            maxmemory: Some(config.replica.maxmemory_bytes.to_string()),
            maxmemory_policy: Some(config.replica.maxmemory_policy.name().to_owned()),
            proto_max_bulk_len: Some(config.replica.max_value_bytes.to_string()),
            transfer_chunk_bytes: Some(config.replica.transfer_chunk_bytes),
            transfer_window: Some(config.replica.transfer_window),
            client_listen,
            client_advertise,
            client_protected_mode: Some(client_protected_mode),
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
        let mut server = Server::bind(config, &listen, advertise.as_deref(), &view_service).await?;
        if let Some(front) = client_front {
            server = server.with_client_front(front).await?;
        }
        crate::role::warn_if_insecure(peer_tls.as_ref());
        server.run(shutdown).await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::parse_memory;

    #[test]
    fn l11_memory_sizes_read_like_redis() {
        assert_eq!(parse_memory("0").unwrap(), 0);
        assert_eq!(parse_memory("1234").unwrap(), 1234);
        assert_eq!(parse_memory("100mb").unwrap(), 100 << 20);
        assert_eq!(parse_memory("1GB").unwrap(), 1 << 30);
        assert_eq!(parse_memory("2k").unwrap(), 2000);
        assert_eq!(parse_memory("3kb").unwrap(), 3 << 10);
        assert_eq!(parse_memory("5m").unwrap(), 5_000_000);
        assert!(parse_memory("10tb").is_err());
        assert!(parse_memory("mb").is_err());
        assert!(parse_memory("99999999999999gb").is_err());
    }
}
