//! Unit tests, one file per topic, driven through the public API with a small harness.

mod expiry;
mod hashes;
mod keyspace;
mod limits;
mod lists;
mod parse;
mod round_trip;
mod strings;
mod transfer;
// Sorted sets
mod zsets;

use bytes::Bytes;

use crate::{Command, ExecContext, Reply, Store};

/// Splits a command line on spaces into arguments.
pub(crate) fn args(line: &str) -> Vec<Bytes> {
    line.split_whitespace()
        .map(|word| Bytes::copy_from_slice(word.as_bytes()))
        .collect()
}

/// Parses a command line that must be valid.
pub(crate) fn cmd(line: &str) -> Command {
    Command::parse(&args(line)).unwrap_or_else(|e| panic!("{line:?} should parse: {e:?}"))
}

/// The error reply a command line gets at parse time.
pub(crate) fn parse_error(line: &str) -> Reply {
    Command::parse(&args(line)).expect_err("should not parse")
}

pub(crate) fn bulk(text: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

pub(crate) fn int(n: i64) -> Reply {
    Reply::Integer(n)
}

pub(crate) fn err(text: &str) -> Reply {
    Reply::Error(text.to_owned())
}

pub(crate) fn bulks(items: &[&str]) -> Reply {
    Reply::Array(items.iter().map(|item| bulk(item)).collect())
}

pub(crate) const WRONGTYPE: &str =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
pub(crate) const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub(crate) const SYNTAX: &str = "ERR syntax error";

/// A store plus the context the "primary" would decide for the next command.
pub(crate) struct Kv {
    pub(crate) store: Store,
    pub(crate) now_ms: u64,
    pub(crate) random: u64,
    pub(crate) limits: crate::Limits,
}

impl Kv {
    pub(crate) fn new() -> Kv {
        Kv {
            store: Store::new(),
            now_ms: 1_000_000,
            random: 0,
            limits: crate::Limits::default(),
        }
    }

    /// Parses and executes `line` like a server would: parse errors are replies too.
    pub(crate) fn call(&mut self, line: &str) -> Reply {
        match Command::parse(&args(line)) {
            Ok(command) => self.exec(&command),
            Err(reply) => reply,
        }
    }

    pub(crate) fn exec(&mut self, command: &Command) -> Reply {
        self.store.execute(
            command,
            &ExecContext {
                now_ms: self.now_ms,
                random: self.random,
                limits: self.limits,
            },
        )
    }

    /// Runs every line, asserting none fails.
    pub(crate) fn setup(&mut self, lines: &[&str]) {
        for line in lines {
            let reply = self.call(line);
            assert!(!reply.is_error(), "{line:?} failed: {reply:?}");
        }
    }
}
