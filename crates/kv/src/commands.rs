//! Command metadata for `COMMAND` (Redis 7's shape): the [`CommandInfo`] type, lookups in the
//! generated [`COMMAND_TABLE`], the `COMMAND INFO` reply of an entry, and the key positions
//! `COMMAND GETKEYS` reports.
//!
//! Cluster clients read this table (redis-py's `RedisCluster` sends `COMMAND` when it is
//! constructed and refuses any command the answer does not list), so it lists every command
//! tandem executes or answers, with exactly the metadata redis-server 7 gives.

use bytes::Bytes;

pub use crate::commands_table::COMMAND_TABLE;
use crate::reply::Reply;

/// One command (or subcommand) as `COMMAND INFO` describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandInfo {
    /// Lowercase name; `container|sub` for a subcommand.
    pub name: &'static str,
    /// Redis arity: the argument count including the name; negative means at least that many.
    pub arity: i32,
    /// Command flags (`readonly`, `write`, `fast`, ...).
    pub flags: &'static [&'static str],
    /// Position of the first key (0: none).
    pub first_key: i32,
    /// Position of the last key (-1: the last argument).
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// ACL categories, without the `@`.
    pub categories: &'static [&'static str],
    /// Command tips (`request_policy:...`).
    pub tips: &'static [&'static str],
    /// Redis 7 key specifications.
    pub key_specs: &'static [KeySpec],
    /// The subcommands tandem answers.
    pub subcommands: &'static [CommandInfo],
}

/// A Redis 7 key specification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpec {
    /// Free text Redis attaches to some specs.
    pub notes: Option<&'static str>,
    /// Access flags (`RO`, `RW`, `access`, ...).
    pub flags: &'static [&'static str],
    /// Where the search for keys begins.
    pub begin_search: BeginSearch,
    /// How keys are found from there.
    pub find_keys: FindKeys,
}

/// `begin_search` of a key spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeginSearch {
    /// At a fixed argument index.
    Index(i32),
    /// After a keyword, searched from `start_from`.
    Keyword {
        /// The keyword.
        keyword: &'static str,
        /// Where the search starts (negative: from the end).
        start_from: i32,
    },
    /// Unknown (movable keys).
    Unknown,
}

/// `find_keys` of a key spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindKeys {
    /// A range of keys.
    Range {
        /// Last key, relative to the beginning (-1: the last argument).
        last_key: i32,
        /// Step between keys.
        key_step: i32,
        /// How far the range may go when `last_key` is -1.
        limit: i32,
    },
    /// A count of keys given by an argument.
    Keynum {
        /// Index of the count.
        keynum_index: i32,
        /// First key after the count.
        first_key: i32,
        /// Step between keys.
        key_step: i32,
    },
    /// Unknown (movable keys).
    Unknown,
}

/// The entry for `name` (any case): a command, or `container|sub` for a subcommand.
pub fn lookup(name: &[u8]) -> Option<&'static CommandInfo> {
    let lower = name.to_ascii_lowercase();
    let (container, sub) = match lower.iter().position(|&b| b == b'|') {
        Some(at) => (&lower[..at], Some(&lower[at + 1..])),
        None => (&lower[..], None),
    };
    let info = COMMAND_TABLE
        .iter()
        .find(|c| c.name.as_bytes() == container)?;
    match sub {
        None => Some(info),
        Some(sub) => info.subcommands.iter().find(|s| {
            s.name
                .split('|')
                .nth(1)
                .is_some_and(|n| n.as_bytes() == sub)
        }),
    }
}

/// Why `COMMAND GETKEYS` has no keys to give (Redis's texts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetKeysError {
    /// Not a command in the table.
    Unknown,
    /// The argument count does not fit the arity.
    Arity,
    /// The command takes no keys.
    NoKeys,
    // Sets
    /// A command with movable keys (SINTERCARD) whose arguments do not parse.
    Invalid,
}

impl GetKeysError {
    /// The error reply Redis gives.
    pub fn text(self) -> &'static str {
        match self {
            GetKeysError::Unknown => "ERR Invalid command specified",
            GetKeysError::Arity => "ERR Invalid number of arguments specified for command",
            GetKeysError::NoKeys => "ERR The command has no key arguments",
            GetKeysError::Invalid => "ERR Invalid arguments specified for command",
        }
    }
}

/// The keys of the command `args` (name first), by the table's first/last/step, as
/// `COMMAND GETKEYS` reports them; a command with movable keys (SINTERCARD's numkeys) is
/// parsed and its keys taken from the parsed command.
pub fn get_keys(args: &[Bytes]) -> Result<Vec<Bytes>, GetKeysError> {
    let name = args.first().ok_or(GetKeysError::Unknown)?;
    let mut info = lookup(name).ok_or(GetKeysError::Unknown)?;
    if !info.subcommands.is_empty()
        && let Some(sub) = args.get(1)
    {
        let mut full = name.to_vec();
        full.push(b'|');
        full.extend_from_slice(sub);
        info = lookup(&full).ok_or(GetKeysError::Unknown)?;
    }
    let count = args.len() as i64;
    let arity = i64::from(info.arity);
    if (arity > 0 && count != arity) || (arity < 0 && count < -arity) {
        return Err(GetKeysError::Arity);
    }
    if info.flags.contains(&"movablekeys") {
        let cmd = crate::Command::parse(args).map_err(|_| GetKeysError::Invalid)?;
        return Ok(cmd.keys().into_iter().cloned().collect());
    }
    if info.first_key == 0 {
        return Err(GetKeysError::NoKeys);
    }
    let first = i64::from(info.first_key);
    let last = match i64::from(info.last_key) {
        last if last < 0 => count + last,
        last => last,
    };
    let step = i64::from(info.step.max(1));
    let mut keys = Vec::new();
    let mut at = first;
    while at <= last && at < count {
        keys.push(args[at as usize].clone());
        at += step;
    }
    Ok(keys)
}

impl CommandInfo {
    /// The `COMMAND INFO` entry: ten elements, as redis-server 7 encodes them.
    pub fn reply(&self) -> Reply {
        Reply::Array(vec![
            bulk(self.name),
            Reply::Integer(i64::from(self.arity)),
            Reply::Array(self.flags.iter().map(|f| simple(f)).collect()),
            Reply::Integer(i64::from(self.first_key)),
            Reply::Integer(i64::from(self.last_key)),
            Reply::Integer(i64::from(self.step)),
            Reply::Array(
                self.categories
                    .iter()
                    .map(|c| Reply::Simple(format!("@{c}")))
                    .collect(),
            ),
            Reply::Array(self.tips.iter().map(|t| bulk(t)).collect()),
            Reply::Array(self.key_specs.iter().map(KeySpec::reply).collect()),
            Reply::Array(self.subcommands.iter().map(CommandInfo::reply).collect()),
        ])
    }

    /// A minimal, well-formed `COMMAND DOCS` entry: the name and the documentation map.
    pub fn docs(&self) -> Reply {
        let group = if self.categories.contains(&"connection") {
            "connection"
        } else {
            "generic"
        };
        let mut pairs = vec![(bulk("group"), bulk(group))];
        if !self.subcommands.is_empty() {
            let subs = self
                .subcommands
                .iter()
                .flat_map(|s| {
                    let Reply::Array(mut entry) = s.docs() else {
                        unreachable!("docs is an array")
                    };
                    let map = entry.pop().expect("two elements");
                    let name = entry.pop().expect("two elements");
                    [name, map]
                })
                .collect::<Vec<_>>();
            pairs.push((bulk("subcommands"), Reply::Map(pairs_of(subs))));
        }
        Reply::Array(vec![bulk(self.name), Reply::Map(pairs)])
    }
}

fn pairs_of(flat: Vec<Reply>) -> Vec<(Reply, Reply)> {
    let mut pairs = Vec::new();
    let mut items = flat.into_iter();
    while let (Some(key), Some(value)) = (items.next(), items.next()) {
        pairs.push((key, value));
    }
    pairs
}

impl KeySpec {
    fn reply(&self) -> Reply {
        let mut pairs = Vec::new();
        if let Some(notes) = self.notes {
            pairs.push((bulk("notes"), bulk(notes)));
        }
        pairs.push((
            bulk("flags"),
            Reply::Array(self.flags.iter().map(|f| simple(f)).collect()),
        ));
        let begin = match self.begin_search {
            BeginSearch::Index(index) => (
                "index",
                Reply::Map(vec![(bulk("index"), Reply::Integer(i64::from(index)))]),
            ),
            BeginSearch::Keyword {
                keyword,
                start_from,
            } => (
                "keyword",
                Reply::Map(vec![
                    (bulk("keyword"), bulk(keyword)),
                    (bulk("startfrom"), Reply::Integer(i64::from(start_from))),
                ]),
            ),
            BeginSearch::Unknown => ("unknown", Reply::Map(Vec::new())),
        };
        pairs.push((
            bulk("begin_search"),
            Reply::Map(vec![(bulk("type"), bulk(begin.0)), (bulk("spec"), begin.1)]),
        ));
        let find = match self.find_keys {
            FindKeys::Range {
                last_key,
                key_step,
                limit,
            } => (
                "range",
                Reply::Map(vec![
                    (bulk("lastkey"), Reply::Integer(i64::from(last_key))),
                    (bulk("keystep"), Reply::Integer(i64::from(key_step))),
                    (bulk("limit"), Reply::Integer(i64::from(limit))),
                ]),
            ),
            FindKeys::Keynum {
                keynum_index,
                first_key,
                key_step,
            } => (
                "keynum",
                Reply::Map(vec![
                    (bulk("keynumidx"), Reply::Integer(i64::from(keynum_index))),
                    (bulk("firstkey"), Reply::Integer(i64::from(first_key))),
                    (bulk("keystep"), Reply::Integer(i64::from(key_step))),
                ]),
            ),
            FindKeys::Unknown => ("unknown", Reply::Map(Vec::new())),
        };
        pairs.push((
            bulk("find_keys"),
            Reply::Map(vec![(bulk("type"), bulk(find.0)), (bulk("spec"), find.1)]),
        ));
        Reply::Map(pairs)
    }
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

fn simple(text: &str) -> Reply {
    Reply::Simple(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    #[test]
    fn every_parsed_command_and_acl_name_is_in_the_table() {
        for (name, categories) in acl::COMMANDS {
            let info = lookup(name.as_bytes()).unwrap_or_else(|| panic!("{name} not in table"));
            // The ACL table and COMMAND agree on the categories of the data commands.
            if !name.contains('|') && info.subcommands.is_empty() && *name != "info" {
                assert_eq!(info.categories, *categories, "{name}");
            }
        }
        assert!(lookup(b"CLUSTER|slots").is_some());
        assert!(lookup(b"nosuch").is_none());
    }

    #[test]
    fn getkeys_follows_first_last_step() {
        assert_eq!(
            get_keys(&args(&["MSET", "a", "1", "b", "2"])),
            Ok(args(&["a", "b"]))
        );
        assert_eq!(get_keys(&args(&["get", "k"])), Ok(args(&["k"])));
        assert_eq!(
            get_keys(&args(&["get", "k", "x"])),
            Err(GetKeysError::Arity)
        );
        assert_eq!(get_keys(&args(&["ping", "x"])), Err(GetKeysError::NoKeys));
        assert_eq!(get_keys(&args(&["nosuch"])), Err(GetKeysError::Unknown));
        assert_eq!(
            get_keys(&args(&["del", "a", "b", "c"])),
            Ok(args(&["a", "b", "c"]))
        );
        // Sets: movable keys are found by parsing.
        assert_eq!(
            get_keys(&args(&["sintercard", "2", "a", "b", "LIMIT", "1"])),
            Ok(args(&["a", "b"]))
        );
        assert_eq!(
            get_keys(&args(&["sintercard", "3", "a"])),
            Err(GetKeysError::Invalid)
        );
        assert_eq!(
            get_keys(&args(&["sinterstore", "d", "a", "b"])),
            Ok(args(&["d", "a", "b"]))
        );
    }
}
