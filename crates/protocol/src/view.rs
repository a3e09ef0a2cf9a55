//! A view: who is primary of a replica group and who are its backups (V1).

use serde::{Deserialize, Serialize};

use crate::ids::{ServerId, ViewNum};

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

    /// Every member, primary first.
    pub fn members(&self) -> impl Iterator<Item = &ServerId> {
        std::iter::once(&self.primary).chain(self.backups.iter())
    }
}
