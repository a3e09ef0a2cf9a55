//! Protocol bugs that the simulator can plant on purpose, to prove its checkers catch them.
//! Production configurations never set any.

use std::fmt;
use std::str::FromStr;

/// A known protocol bug. Each one breaks exactly one rule of PROTOCOL.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    /// The primary answers as soon as it applied an operation, before backups accept it (P2).
    ReplyBeforeBackupAck,
    /// A backup executes coordinator requests as if it were primary (P1).
    BackupAcceptsClientWrites,
    /// The primary answers read-only requests from its own state without the backups (P4).
    PrimaryServesLocalReads,
    /// The view service promotes an idle server when no backup is alive (V7).
    PromoteUninitializedServer,
    /// The view service changes views without waiting for the primary's acknowledgement (V6).
    SkipViewAckWait,
    /// Retried requests execute again (P8).
    NoDuplicateDetection,
    /// Backups use their own clock instead of the primary's for expiry (P5).
    BackupUsesOwnClock,
    /// The view service counts its own stall against servers: after a pause it judges
    /// liveness by the whole gap, before reading the pings that waited for it (V3).
    VsJudgesAfterStall,
    /// The view-service leader pushes a view to its members before the log commits it (Q3).
    RevealUncommittedView,
    /// A new view-service leader judges liveness at once, without giving every server a full
    /// detection period from its election (Q4).
    NewLeaderJudgesImmediately,
    /// The view-service leader counts a primary's acknowledgement when the ping arrives and
    /// never logs it (Q3).
    AckBeforeCommit,
    /// A view-service node acts on its Raft state (votes, log appends) before it is synced to
    /// disk, and never syncs (Q5).
    VsSkipsSync,
    /// The giver keeps executing requests on slots it froze for a taker (S5).
    ServeAfterHandoff,
    /// The taker executes requests on arriving slots before their install (S6).
    ServeBeforeInstall,
    /// The freeze of slots handed off is kept by the primary only: backups do not apply it, so
    /// after a failover the new primary serves the slots again and never sends them (S5).
    MoveStateOnlyOnPrimary,
    /// The giver's primary sends the keys it pre-copied while serving but never the keys
    /// changed since (the delta), so the taker serves values older than the giver's (S10).
    PreCopyWithoutDelta,
}

impl Bug {
    /// Every bug, in a fixed order.
    pub const ALL: [Bug; 16] = [
        Bug::ReplyBeforeBackupAck,
        Bug::BackupAcceptsClientWrites,
        Bug::PrimaryServesLocalReads,
        Bug::PromoteUninitializedServer,
        Bug::SkipViewAckWait,
        Bug::NoDuplicateDetection,
        Bug::BackupUsesOwnClock,
        Bug::VsJudgesAfterStall,
        Bug::RevealUncommittedView,
        Bug::NewLeaderJudgesImmediately,
        Bug::AckBeforeCommit,
        Bug::VsSkipsSync,
        Bug::ServeAfterHandoff,
        Bug::ServeBeforeInstall,
        Bug::MoveStateOnlyOnPrimary,
        Bug::PreCopyWithoutDelta,
    ];

    /// The command-line name (`--inject-bug NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Bug::ReplyBeforeBackupAck => "reply-before-backup-ack",
            Bug::BackupAcceptsClientWrites => "backup-accepts-client-writes",
            Bug::PrimaryServesLocalReads => "primary-serves-local-reads",
            Bug::PromoteUninitializedServer => "promote-uninitialized-server",
            Bug::SkipViewAckWait => "skip-view-ack-wait",
            Bug::NoDuplicateDetection => "no-duplicate-detection",
            Bug::BackupUsesOwnClock => "backup-uses-own-clock",
            Bug::VsJudgesAfterStall => "vs-judges-after-stall",
            Bug::RevealUncommittedView => "reveal-uncommitted-view",
            Bug::NewLeaderJudgesImmediately => "new-leader-judges-immediately",
            Bug::AckBeforeCommit => "ack-before-commit",
            Bug::VsSkipsSync => "vs-skips-sync",
            Bug::ServeAfterHandoff => "serve-after-handoff",
            Bug::ServeBeforeInstall => "serve-before-install",
            Bug::MoveStateOnlyOnPrimary => "move-state-only-on-primary",
            Bug::PreCopyWithoutDelta => "pre-copy-without-delta",
        }
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;

    fn from_str(s: &str) -> Result<Bug, String> {
        Bug::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
            format!("unknown bug '{s}'; known: {}", names.join(", "))
        })
    }
}

/// The set of planted bugs (empty in production).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs(u32);

impl Bugs {
    /// No bugs.
    pub const NONE: Bugs = Bugs(0);

    /// Just one bug.
    pub fn only(bug: Bug) -> Bugs {
        Bugs(1 << bug as u32)
    }

    /// This set plus `bug`.
    pub fn with(self, bug: Bug) -> Bugs {
        Bugs(self.0 | 1 << bug as u32)
    }

    /// Is `bug` planted?
    pub fn has(self, bug: Bug) -> bool {
        self.0 & (1 << bug as u32) != 0
    }
}
