//! A view: who is primary of a replica group and who are its backups (V1), and the typed causes
//! of a change from one view to the next (V5, V8).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{ServerId, ViewNum};

/// Most backups a view can have (the view service's `backups` setting allows at most 16).
pub const MAX_BACKUPS: usize = 64;

/// One view of one replica group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The view number; views of a group are numbered 1, 2, 3, ... (V1).
    pub num: ViewNum,
    /// The only server that accepts coordinator requests in this view (P1).
    pub primary: ServerId,
    /// Ordered backups; the first live one is promoted when the primary dies (V8).
    pub backups: Vec<ServerId>,
}

impl View {
    /// True if `server` is the primary or a backup of this view.
    pub fn contains(&self, server: &ServerId) -> bool {
        self.primary == *server || self.is_backup(server)
    }

    /// True if `server` is a backup of this view.
    pub fn is_backup(&self, server: &ServerId) -> bool {
        self.backups.contains(server)
    }

    /// V1: numbered from 1, the primary not among the backups, no backup twice. The view
    /// service only makes such views; anything else came from a peer that lies (P11).
    pub fn is_well_formed(&self) -> bool {
        if self.backups.len() > MAX_BACKUPS {
            return false;
        }
        let distinct = self
            .backups
            .iter()
            .enumerate()
            .all(|(i, b)| !self.backups[..i].contains(b));
        self.num != ViewNum::NONE && !self.is_backup(&self.primary) && distinct
    }

    /// Every member, primary first.
    pub fn members(&self) -> impl Iterator<Item = &ServerId> {
        std::iter::once(&self.primary).chain(self.backups.iter())
    }
}

/// Why a server left its place in a view (V3, V4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    /// Silent for at least the dead interval (V3); `count` ping intervals passed without a ping.
    MissedPings {
        /// Ping intervals of silence when it was judged.
        count: u64,
    },
    /// Pinged with a new incarnation: it lost its state (V4).
    Restarted,
    /// In the view but never heard from by this view service.
    NeverPinged,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::MissedPings { count } => write!(f, "missed {count} pings"),
            Failure::Restarted => f.write_str("restarted"),
            Failure::NeverPinged => f.write_str("never pinged"),
        }
    }
}

/// One reason a view change was needed (V5, V8). A change folds several (V8): a dead primary,
/// the backup promoted in its place and the idle server added as the new backup are three.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ViewChangeCause {
    /// The first server to ping a group without a view became primary of view 1 (V5).
    FirstPrimary {
        /// The new primary.
        server: ServerId,
    },
    /// The primary failed (V8).
    PrimaryFailed {
        /// The failed primary.
        server: ServerId,
        /// How it failed.
        failure: Failure,
    },
    /// A backup failed and was dropped (V8).
    BackupFailed {
        /// The failed backup.
        server: ServerId,
        /// How it failed.
        failure: Failure,
    },
    /// A backup of the previous view became primary: the consequence of `PrimaryFailed` (V7).
    BackupPromoted {
        /// The new primary.
        server: ServerId,
    },
    /// An idle server became a backup (V8, V9).
    IdleAdded {
        /// The new backup.
        server: ServerId,
    },
}

impl ViewChangeCause {
    /// The metrics label the cause counts under; `None` for a promotion, which is the
    /// consequence of a primary's failure and already counted under it.
    pub fn label(&self) -> Option<&'static str> {
        let label = match self {
            ViewChangeCause::FirstPrimary { .. } => "first_primary",
            ViewChangeCause::PrimaryFailed { failure, .. } => match failure {
                Failure::MissedPings { .. } => "primary_missed_pings",
                Failure::Restarted => "primary_restarted",
                Failure::NeverPinged => "primary_never_pinged",
            },
            ViewChangeCause::BackupFailed { failure, .. } => match failure {
                Failure::MissedPings { .. } => "backup_missed_pings",
                Failure::Restarted => "backup_restarted",
                Failure::NeverPinged => "backup_never_pinged",
            },
            ViewChangeCause::BackupPromoted { .. } => return None,
            ViewChangeCause::IdleAdded { .. } => "backup_added",
        };
        Some(label)
    }

    /// The server the cause is about.
    pub fn server(&self) -> &ServerId {
        match self {
            ViewChangeCause::FirstPrimary { server }
            | ViewChangeCause::PrimaryFailed { server, .. }
            | ViewChangeCause::BackupFailed { server, .. }
            | ViewChangeCause::BackupPromoted { server }
            | ViewChangeCause::IdleAdded { server } => server,
        }
    }

    /// How the server failed, if the cause is a failure.
    pub fn failure(&self) -> Option<Failure> {
        match self {
            ViewChangeCause::PrimaryFailed { failure, .. }
            | ViewChangeCause::BackupFailed { failure, .. } => Some(*failure),
            _ => None,
        }
    }
}

impl fmt::Display for ViewChangeCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ViewChangeCause::FirstPrimary { server } => {
                write!(f, "first server {server} became primary")
            }
            ViewChangeCause::PrimaryFailed { server, failure } => {
                write!(f, "primary {server} {failure}")
            }
            ViewChangeCause::BackupFailed { server, failure } => {
                write!(f, "backup {server} {failure}")
            }
            ViewChangeCause::BackupPromoted { server } => write!(f, "promoted backup {server}"),
            ViewChangeCause::IdleAdded { server } => {
                write!(f, "added idle server {server} as backup")
            }
        }
    }
}

/// The causes of one view change as one line for people, e.g. "primary a missed 5 pings;
/// promoted backup b" (`tandem status --history`, the dashboard, logs).
pub fn reason(causes: &[ViewChangeCause]) -> String {
    let parts: Vec<String> = causes.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str) -> ServerId {
        ServerId::new(name)
    }

    #[test]
    fn every_cause_maps_to_its_metrics_label() {
        let missed = Failure::MissedPings { count: 5 };
        let cases = [
            (
                ViewChangeCause::FirstPrimary {
                    server: server("a"),
                },
                Some("first_primary"),
            ),
            (
                ViewChangeCause::PrimaryFailed {
                    server: server("a"),
                    failure: missed,
                },
                Some("primary_missed_pings"),
            ),
            (
                ViewChangeCause::PrimaryFailed {
                    server: server("a"),
                    failure: Failure::Restarted,
                },
                Some("primary_restarted"),
            ),
            (
                ViewChangeCause::PrimaryFailed {
                    server: server("a"),
                    failure: Failure::NeverPinged,
                },
                Some("primary_never_pinged"),
            ),
            (
                ViewChangeCause::BackupFailed {
                    server: server("b"),
                    failure: missed,
                },
                Some("backup_missed_pings"),
            ),
            (
                ViewChangeCause::BackupFailed {
                    server: server("b"),
                    failure: Failure::Restarted,
                },
                Some("backup_restarted"),
            ),
            (
                ViewChangeCause::BackupFailed {
                    server: server("b"),
                    failure: Failure::NeverPinged,
                },
                Some("backup_never_pinged"),
            ),
            (
                ViewChangeCause::BackupPromoted {
                    server: server("b"),
                },
                None,
            ),
            (
                ViewChangeCause::IdleAdded {
                    server: server("c"),
                },
                Some("backup_added"),
            ),
        ];
        for (cause, label) in cases {
            assert_eq!(cause.label(), label, "{cause:?}");
        }
    }

    #[test]
    fn reason_keeps_the_wording_operators_read() {
        let causes = [
            ViewChangeCause::PrimaryFailed {
                server: server("a"),
                failure: Failure::MissedPings { count: 5 },
            },
            ViewChangeCause::BackupPromoted {
                server: server("b"),
            },
            ViewChangeCause::IdleAdded {
                server: server("c"),
            },
        ];
        assert_eq!(
            reason(&causes),
            "primary a missed 5 pings; promoted backup b; added idle server c as backup"
        );
        let first = [ViewChangeCause::FirstPrimary {
            server: server("a"),
        }];
        assert_eq!(reason(&first), "first server a became primary");
        let restarted = [ViewChangeCause::BackupFailed {
            server: server("b"),
            failure: Failure::Restarted,
        }];
        assert_eq!(reason(&restarted), "backup b restarted");
    }
}
