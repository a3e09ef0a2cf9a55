//! `tandem-kv`: the deterministic key/value state machine that every replica runs.
//!
//! No I/O, no clock, no randomness of its own: every non-deterministic input (the time
//! for expiries, the random number for RANDOMKEY) arrives in [`ExecContext`], decided by
//! the primary (PROTOCOL.md R1, P5). Replicas that apply the same [`Command`]s with the
//! same contexts hold equal stores, which [`Store::digest`] checks.
//!
//! How to drive it: [`Command::parse`] turns RESP arguments into a validated command (or
//! the error reply to send); [`Store::execute`] applies it and returns the [`Reply`]. The
//! primary also polls [`Store::expired_keys`] and replicates [`Store::purge_expired`],
//! and copies state to a new backup with [`Store::chunk_after`] / [`Store::insert_entry`].
//!
//! # Layout
//! - `acl`: the replicated ACL table ([`Acl`]): users, passwords, permissions (A1..A9).
//! - `command`: the [`Command`] type, `name`, `is_write`, `keys`, `to_args`.
//! - `commands`: `COMMAND`'s metadata (Redis 7's shape); `commands_table` is generated.
//! - `parse`: [`Command::parse`], arity and option checks with Redis's error texts.
//! - `error`: every error a command can give, as Redis text.
//! - `reply`: the [`Reply`] type.
//! - `store`: [`Store`], [`Entry`], the expiry index, typed lookups, dispatch.
//! - `strings`, `lists`, `hashes`, `sets`: the commands on each value type.
//! - `keymap`: [`Store`]'s keyspace, (hash, key)-ordered copy-on-write buckets.
//! - `keyspace`: DEL, EXISTS, TYPE, DBSIZE, KEYS, SCAN, RANDOMKEY, FLUSH*.
//! - `expiry`: EXPIRE family, TTL, PERSIST, and the expired-key purge path.
//! - `glob`: Redis glob patterns for KEYS and SCAN MATCH.
//! - `digest`: FNV-1a, for key order and the store digest.
//! - `transfer`: chunked state transfer ([`Chunk`]).
//! - `zsets`: sorted sets ([`ZSet`]) and their commands, ZADD ... ZSCAN.
//!
//! **Architecture invariant:** nothing here iterates a `HashMap`/`HashSet` or reads the
//! clock; every collection is ordered (the bucketed keymap, `imbl::OrdMap`, `imbl::Vector`), so iteration
//! order, and therefore every reply, is the same on every machine.

pub mod acl;
mod bounded_serde;
mod command;
pub mod commands;
mod commands_table;
mod digest;
mod error;
mod expiry;
mod glob;
mod hashes;
mod keymap;
mod keyspace;
mod limits;
mod lists;
mod parse;
mod reply;
mod sets;
pub mod slots;
mod store;
mod strings;
mod transfer;
// Sorted sets
mod zsets;

#[cfg(test)]
mod tests;

pub use acl::Acl;
pub use command::{Command, ExpireCondition, FlushMode, SetCondition, SetExpiry};
pub use limits::{
    DEFAULT_MAX_VALUE_BYTES, ENTRY_OVERHEAD_BYTES, EvictionPolicy, ITEM_OVERHEAD_BYTES, Limits,
    entry_bytes, reply_bytes, reply_too_large,
};
pub use reply::Reply;
pub use sets::Member;
pub use store::{Entry, ExecContext, Store, Value};
pub use transfer::Chunk;
// Sorted sets
pub use command::ZRangeForm;
pub use zsets::{
    Aggregate, LexBound, MAX_ZSET_OP_ELEMENTS, Score, ScoreBound, SetOp, ZAddFlags, ZRangeSpec,
    ZSet, format_double,
};
