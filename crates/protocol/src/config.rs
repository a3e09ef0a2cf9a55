//! One configuration struct per role, with defaults and `validate()`. Every bound that protects
//! a process from its peers lives here.

use std::borrow::Cow;

use thiserror::Error;

pub use tandem_kv::{EvictionPolicy, Limits};

use crate::bug::Bugs;

/// Default largest value (L13): 16 MiB, a quarter of the 64 MiB frame, so a maximal value
/// always fits in one reply and one forward.
pub const DEFAULT_MAX_VALUE_BYTES: u64 = 16 << 20;
/// Default largest reply of one request (L14): 48 MiB, under the 64 MiB frame with room for
/// the message around it.
pub const DEFAULT_MAX_REPLY_BYTES: u64 = 48 << 20;

/// A configuration value out of its allowed range.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{field} = {value} is out of range: {allowed}")]
pub struct ConfigError {
    /// The offending field (as spelled on the command line, without dashes).
    pub field: &'static str,
    /// Its value.
    pub value: u64,
    /// What is allowed.
    pub allowed: Cow<'static, str>,
}

/// `Ok` if `low <= value <= high`, else a `ConfigError` naming `field` and saying "low to high".
/// Shared by every role's `validate()`, the runtime's included.
pub fn check(field: &'static str, value: u64, low: u64, high: u64) -> Result<(), ConfigError> {
    bounded(field, value, low, high, || {
        format!("{low} to {high}").into()
    })
}

/// Like [`check`], with the allowed range said in words (units, or a bound that is another
/// setting).
pub fn check_with(
    field: &'static str,
    value: u64,
    low: u64,
    high: u64,
    allowed: &'static str,
) -> Result<(), ConfigError> {
    bounded(field, value, low, high, || allowed.into())
}

fn bounded(
    field: &'static str,
    value: u64,
    low: u64,
    high: u64,
    allowed: impl FnOnce() -> Cow<'static, str>,
) -> Result<(), ConfigError> {
    if value < low || value > high {
        return Err(ConfigError {
            field,
            value,
            allowed: allowed(),
        });
    }
    Ok(())
}

/// The view service's settings (V2, V3, V8).
#[derive(Clone, Debug)]
pub struct ViewServiceConfig {
    /// How often servers ping (V2).
    pub ping_interval_ms: u64,
    /// Missed pings before a server is dead (V3).
    pub dead_pings: u32,
    /// Target number of backups per group (V8).
    pub backups: usize,
    /// View changes remembered per group for operators.
    pub history_len: usize,
    /// Most groups the view service knows (V12): a ping for another group is refused.
    pub max_groups: usize,
    /// Most servers it tracks per group besides the view's members (V12): a ping from another
    /// server is refused.
    pub max_servers_per_group: usize,
    /// A server outside every view silent for this many dead intervals (V3) is forgotten (V13).
    pub forget_after_dead_intervals: u32,
    /// Planted bugs (simulator only).
    pub bugs: Bugs,
}

impl Default for ViewServiceConfig {
    fn default() -> Self {
        ViewServiceConfig {
            ping_interval_ms: 100,
            dead_pings: 5,
            backups: 1,
            history_len: 64,
            max_groups: 1024,
            max_servers_per_group: 64,
            forget_after_dead_intervals: 100,
            bugs: Bugs::NONE,
        }
    }
}

impl ViewServiceConfig {
    /// Rejects values that would make the service unusable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check("ping-interval-ms", self.ping_interval_ms, 1, 60_000)?;
        check("dead-pings", self.dead_pings.into(), 2, 1000)?;
        check("backups", self.backups as u64, 0, 16)?;
        check("history-len", self.history_len as u64, 1, 100_000)?;
        check("max-groups", self.max_groups as u64, 1, 1_000_000)?;
        check(
            "max-servers-per-group",
            self.max_servers_per_group as u64,
            1,
            10_000,
        )?;
        check(
            "forget-after-dead-intervals",
            self.forget_after_dead_intervals.into(),
            2,
            1_000_000,
        )
    }

    /// Silence after which a server outside every view is forgotten (V13).
    pub fn forget_after_ms(&self) -> u64 {
        self.dead_after_ms()
            .saturating_mul(u64::from(self.forget_after_dead_intervals))
    }

    /// Silence after which a server is dead (V3).
    pub fn dead_after_ms(&self) -> u64 {
        self.ping_interval_ms * u64::from(self.dead_pings)
    }
}

/// A replica server's settings.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// How often to ping the view service (V2).
    pub ping_interval_ms: u64,
    /// Resend unacknowledged forwards after this long.
    pub retransmit_ms: u64,
    /// A waiting request gets `BackupUnconfirmed` after this long without backup confirmation (P4).
    pub confirm_timeout_ms: u64,
    /// Most operations in one forward frame (group commit).
    pub max_batch_ops: usize,
    /// Most operations forwarded but not yet acknowledged, per backup.
    pub max_inflight_ops: u64,
    /// Most operations ordered but not yet confirmed; beyond it requests get `Busy`.
    pub max_pending_ops: usize,
    /// Most operations the primary keeps for backups that are catching up. A backup that falls
    /// further behind (a long state transfer under heavy load) gets a fresh transfer.
    pub max_log_entries: usize,
    /// Byte budget of one state-transfer chunk (P6).
    pub transfer_chunk_bytes: usize,
    /// Chunks in flight during a state transfer.
    pub transfer_window: u32,
    /// How often the primary looks for expired keys (P5).
    pub expiry_interval_ms: u64,
    /// Most keys expired by one replicated delete.
    pub expiry_batch: usize,
    /// At-most-once records of sessions idle this long are forgotten (P8). A coordinator never
    /// retries a request this late: its request timeout is far shorter.
    pub client_idle_forget_ms: u64,
    /// Most at-most-once records kept; the least recently used beyond it are forgotten.
    pub max_clients: usize,
    /// Memory limit on keys and values as `used_memory` counts them (L10, L11); 0: none.
    pub maxmemory_bytes: u64,
    /// What the primary does when a write finds memory above `maxmemory_bytes` (L12).
    pub maxmemory_policy: EvictionPolicy,
    /// Largest string, list element, hash field or value (L13, Redis's `proto-max-bulk-len`).
    pub max_value_bytes: u64,
    /// Largest sum of the replies of one request (L14): must fit in one frame.
    pub max_reply_bytes: u64,
    /// Byte budget of one forward frame (L15); one entry is always sent, whatever its size.
    pub forward_batch_bytes: usize,
    /// Planted bugs (simulator only).
    pub bugs: Bugs,
}

impl ReplicaConfig {
    /// The limits the primary stamps on every operation it orders (L11-L14).
    pub fn limits(&self) -> Limits {
        Limits {
            max_value_bytes: self.max_value_bytes,
            maxmemory_bytes: self.maxmemory_bytes,
            max_reply_bytes: self.max_reply_bytes,
            policy: self.maxmemory_policy,
        }
    }
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            ping_interval_ms: 100,
            retransmit_ms: 200,
            confirm_timeout_ms: 500,
            max_batch_ops: 1024,
            max_inflight_ops: 65_536,
            max_pending_ops: 100_000,
            max_log_entries: 1_000_000,
            transfer_chunk_bytes: 1 << 20,
            transfer_window: 4,
            expiry_interval_ms: 100,
            expiry_batch: 64,
            client_idle_forget_ms: 3_600_000,
            max_clients: 1_000_000,
            maxmemory_bytes: 0,
            maxmemory_policy: EvictionPolicy::NoEviction,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
            forward_batch_bytes: 8 << 20,
            bugs: Bugs::NONE,
        }
    }
}

impl ReplicaConfig {
    /// Rejects values that would make the server unusable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check("ping-interval-ms", self.ping_interval_ms, 1, 60_000)?;
        check("retransmit-ms", self.retransmit_ms, 1, 60_000)?;
        check("confirm-timeout-ms", self.confirm_timeout_ms, 1, 600_000)?;
        check("max-batch-ops", self.max_batch_ops as u64, 1, 1 << 20)?;
        check("max-inflight-ops", self.max_inflight_ops, 1, 1 << 24)?;
        check("max-pending-ops", self.max_pending_ops as u64, 1, 1 << 24)?;
        check(
            "max-log-entries",
            self.max_log_entries as u64,
            100,
            100_000_000,
        )?;
        check_with(
            "transfer-chunk-bytes",
            self.transfer_chunk_bytes as u64,
            1024,
            64 << 20,
            "1 KiB to 64 MiB",
        )?;
        check("transfer-window", self.transfer_window.into(), 1, 1024)?;
        check("expiry-interval-ms", self.expiry_interval_ms, 1, 60_000)?;
        check("expiry-batch", self.expiry_batch as u64, 1, 100_000)?;
        check_with(
            "client-idle-forget-ms",
            self.client_idle_forget_ms,
            60_000,
            30 * 86_400_000,
            "1 minute to 30 days",
        )?;
        check("max-clients", self.max_clients as u64, 1000, 100_000_000)?;
        check_with(
            "proto-max-bulk-len",
            self.max_value_bytes,
            1024,
            512 << 20,
            "1 KiB to 512 MiB",
        )?;
        check_with(
            "max-reply-bytes",
            self.max_reply_bytes,
            self.max_value_bytes.saturating_add(1024),
            4 << 30,
            "proto-max-bulk-len + 1 KiB to 4 GiB (a maximal value must fit in a reply)",
        )?;
        check_with(
            "forward-batch-bytes",
            self.forward_batch_bytes as u64,
            1024,
            1 << 30,
            "1 KiB to 1 GiB",
        )
    }
}

/// A coordinator session's settings (C1, C3).
#[derive(Clone, Debug)]
pub struct ClerkConfig {
    /// Re-ask the view service at most once per this interval while nothing changes (C1).
    pub ping_interval_ms: u64,
    /// Resend to the primary if it has not answered within this long.
    pub attempt_timeout_ms: u64,
    /// Give up and answer the client with an error after this long (C3).
    pub request_timeout_ms: u64,
}

impl Default for ClerkConfig {
    fn default() -> Self {
        ClerkConfig {
            ping_interval_ms: 100,
            attempt_timeout_ms: 1000,
            request_timeout_ms: 5000,
        }
    }
}

impl ClerkConfig {
    /// Rejects values that would make the coordinator unusable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check("ping-interval-ms", self.ping_interval_ms, 1, 60_000)?;
        check("attempt-timeout-ms", self.attempt_timeout_ms, 1, 600_000)?;
        check("request-timeout-ms", self.request_timeout_ms, 1, 3_600_000)
    }
}
