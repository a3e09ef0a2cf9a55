//! The Redis protocol codec: RESP2, RESP3 and inline commands, with no I/O.
//!
//! Everything here is a pure function over a byte buffer. A connection task reads bytes from
//! its socket into a [`BytesMut`](bytes::BytesMut), then calls [`parse_request`] until it
//! returns `Ok(None)` ("need more bytes"); each reply is written with [`encode`] into an output
//! buffer which the task flushes. A client (the benchmark, tests) does the reverse with
//! [`encode_request`] and [`parse_frame`].
//!
//! # Layout
//!
//! - `request` — [`parse_request`]: multibulk and inline client requests, split zero-copy.
//! - `frame` — [`Frame`], [`Protocol`] and [`encode`]: replies in RESP2 or RESP3.
//! - `reply_parse` — [`parse_frame`] and [`encode_request`]: the client side.
//! - `scan` (private) — the byte cursor and strict integer parsing both parsers share.
//!
//! # Invariants
//!
//! - No tokio and no sockets: the runtime crate owns all I/O.
//! - Parsing is two-phase, as in mini-redis: a check that walks the buffer without allocating
//!   or consuming anything, then a parse that splits the complete message off the buffer.
//! - Every input is bounded by [`Limits`]; a declared length is never trusted for allocation,
//!   and no input makes these functions panic.

mod frame;
mod reply_parse;
mod request;
mod scan;

pub use frame::{Frame, Protocol, encode};
pub use reply_parse::{encode_request, parse_frame};
pub use request::{RequestParser, parse_request};

/// Bounds on what a peer may make the parsers accept or buffer.
///
/// Anything beyond a bound is a [`ParseError::Protocol`], after which the caller should close
/// the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string accepted, in bytes (Redis's `proto-max-bulk-len`). Default 512 MiB.
    pub max_bulk_bytes: usize,
    /// Largest number of arguments in one request, or elements in one reply aggregate.
    /// Default 1024 * 1024.
    pub max_args: usize,
    /// Longest inline command line, and longest `*`/`$` count line, in bytes. Default 64 KiB.
    pub max_inline_bytes: usize,
    /// Hard cap on bytes pending in the buffer while a message is still incomplete.
    /// Default 1 GiB.
    pub max_buffer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_bytes: 512 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline_bytes: 64 * 1024,
            max_buffer_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// Why a buffer could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The buffer holds only part of a message. Used inside the check phase; the public parse
    /// functions report it as `Ok(None)` instead of returning it.
    #[error("incomplete message")]
    Incomplete,
    /// The peer sent bytes that are not valid protocol. The text is the error reply Redis
    /// itself would send (e.g. `Protocol error: invalid bulk length`); the connection should
    /// be closed after sending it.
    #[error("{0}")]
    Protocol(String),
}

impl ParseError {
    /// A [`ParseError::Protocol`] whose text is `Protocol error: ` followed by `what`.
    pub(crate) fn protocol(what: &str) -> Self {
        ParseError::Protocol(format!("Protocol error: {what}"))
    }
}
