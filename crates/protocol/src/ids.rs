//! Identifier newtypes. Every identifier that crosses the network has its own type so that a
//! view number can never be passed where an operation index is expected.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A server's identity: its advertised address (`HOST:PORT`) in a real cluster, a short name in
/// the simulator. Cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServerId(Arc<str>);

impl ServerId {
    /// Makes an id from any string.
    pub fn new(name: impl AsRef<str>) -> ServerId {
        ServerId(Arc::from(name.as_ref()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A view-service node's address (`HOST:PORT` in a real cluster, a short name in the simulator):
/// where servers, coordinators and the other nodes reach it. Cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VsAddr(Arc<str>);

impl VsAddr {
    /// Makes an address from any string.
    pub fn new(addr: impl AsRef<str>) -> VsAddr {
        VsAddr(Arc::from(addr.as_ref()))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VsAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for VsAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! number_id {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        pub struct $name(pub $inner);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

number_id!(
    /// A replica group: one primary and its backups (PROTOCOL.md vocabulary).
    GroupId(u32)
);
number_id!(
    /// A view number (V1). `ViewNum(0)` means "no view yet".
    ViewNum(u64)
);
number_id!(
    /// A coordinator session; with `Seq`, the at-most-once key of a request (P8).
    ClientId(u64)
);
number_id!(
    /// A request's sequence number within its client session (P8).
    Seq(u64)
);
number_id!(
    /// A number a server process picks at start; a new one means the server restarted and lost
    /// its memory (how the view service tells a restart from a late ping: V4).
    Incarnation(u64)
);
number_id!(
    /// A shard configuration's number (S2): configurations of the slot map are numbered 1, 2,
    /// 3, ... by the view service; `ConfigNum(0)` is the empty map before any assignment.
    ConfigNum(u64)
);
number_id!(
    /// The position of an operation in a group's history. The first operation has index 1.
    OpIndex(u64)
);

impl ViewNum {
    /// "No view yet" (V1).
    pub const NONE: ViewNum = ViewNum(0);

    /// The view after this one. Views are numbered by the view service, which never gets near
    /// the end of the range.
    pub fn next(self) -> ViewNum {
        ViewNum(
            self.0
                .checked_add(1)
                .expect("V1: view numbers never run out"),
        )
    }
}

impl Seq {
    /// The sequence number after this one (P8). A session numbers its own requests from 1, one
    /// at a time.
    pub fn next(self) -> Seq {
        Seq(self
            .0
            .checked_add(1)
            .expect("P8: a session never runs out of sequence numbers"))
    }
}

impl OpIndex {
    /// Where the empty history ends: before the first operation, which has index 1.
    pub const ZERO: OpIndex = OpIndex(0);

    /// The index after this one. Only for indexes our own history reached; an index a peer sent
    /// goes through [`OpIndex::checked_next`].
    pub fn next(self) -> OpIndex {
        self.checked_next()
            .expect("R1: a history never reaches the end of the index range")
    }

    /// The index after this one, or `None` at the end of the range (only a forged index gets
    /// there).
    pub fn checked_next(self) -> Option<OpIndex> {
        self.0.checked_add(1).map(OpIndex)
    }

    /// How many operations follow this index up to and including `later`; `None` if `later`
    /// comes before this index.
    pub fn checked_distance_to(self, later: OpIndex) -> Option<u64> {
        later.0.checked_sub(self.0)
    }

    /// How many operations follow this index up to and including `later`, which the caller
    /// knows is not before it (callers state why with their own assertion first).
    pub fn distance_to(self, later: OpIndex) -> u64 {
        self.checked_distance_to(later)
            .unwrap_or_else(|| panic!("index {later} comes before {self}"))
    }
}

/// Where a history ends: the index of its last operation and the view in which that operation
/// was ordered. Only the primary of view `v` orders operations tagged `v`, so two histories that
/// both contain the position `(i, v)` are identical up to `i`; this is how a primary decides
/// whether a backup can continue from its history or needs a full state transfer (P6).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct LogPos {
    /// Index of the last operation (0 for the empty history).
    pub index: OpIndex,
    /// View in which that operation was ordered (`ViewNum::NONE` for the empty history).
    pub view: ViewNum,
}

impl LogPos {
    /// The position of the empty history, a prefix of every history.
    pub const EMPTY: LogPos = LogPos {
        index: OpIndex(0),
        view: ViewNum(0),
    };
}

impl fmt::Debug for LogPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@v{}", self.index.0, self.view.0)
    }
}
