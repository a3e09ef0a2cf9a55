//! One configuration struct per role, with defaults and `validate()`. Every bound that protects
//! a process from its peers lives here.

use std::borrow::Cow;

use thiserror::Error;

use crate::bug::Bugs;

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
    /// Planted bugs (simulator only).
    pub bugs: Bugs,
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
        check("max-clients", self.max_clients as u64, 1000, 100_000_000)
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
