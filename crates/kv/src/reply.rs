//! The reply to a command, independent of the RESP version that will encode it.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// What a command answers; the RESP codec turns it into bytes on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// A simple string such as `OK` or a type name.
    Simple(String),
    /// An error, Redis's exact text without the leading '-' (e.g. `ERR syntax error`).
    Error(String),
    /// A signed 64-bit integer.
    Integer(i64),
    /// A binary-safe bulk string.
    Bulk(Bytes),
    /// The null bulk string (also used where Redis answers a null array in RESP2).
    Nil,
    /// An array of replies.
    Array(Vec<Reply>),
    /// A RESP3 map (HGETALL); the RESP2 encoder flattens it into an array.
    Map(Vec<(Reply, Reply)>),
    /// A double (a sorted-set score, never NaN): RESP3 `,`, in RESP2 a bulk string of Redis
    /// 7.0's text ([`format_double`](crate::format_double)).
    Double(f64),
    /// (element, element) pairs, e.g. ZRANGE WITHSCORES: in RESP3 an array of two-element
    /// arrays, in RESP2 one flat array.
    Pairs(Vec<(Reply, Reply)>),
}

// Equality is total: a `Double` is never NaN (sorted sets refuse NaN scores).
impl Eq for Reply {}

impl Reply {
    /// The `OK` simple string.
    pub fn ok() -> Reply {
        Reply::Simple("OK".to_owned())
    }

    /// Whether this reply is an error.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// An integer reply from a count (saturating at `i64::MAX`, which no store reaches).
    pub(crate) fn count(n: usize) -> Reply {
        Reply::Integer(i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// A bulk reply, or nil when the value is absent.
    pub(crate) fn bulk_or_nil(value: Option<Bytes>) -> Reply {
        value.map_or(Reply::Nil, Reply::Bulk)
    }

    /// An array of bulk strings.
    pub(crate) fn bulks(values: impl IntoIterator<Item = Bytes>) -> Reply {
        Reply::Array(values.into_iter().map(Reply::Bulk).collect())
    }
}
