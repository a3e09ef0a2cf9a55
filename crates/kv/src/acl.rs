//! The ACL table (PROTOCOL.md A1..A9): users, their SHA-256 passwords, the commands and
//! categories they may run and the keys they may touch, with Redis's `ACL SETUSER` syntax,
//! `ACL LIST` text and error replies.
//!
//! It is replicated state: it lives in the [`Store`](crate::Store), changes only through
//! commands executed in history order (ACL SETUSER, ACL DELUSER, CONFIG SET requirepass),
//! travels with state transfer and is part of the digest (A1). Every collection is ordered,
//! so every replica describes the same table with the same bytes.

use bytes::Bytes;
use imbl::OrdMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::command::Command;
use crate::digest::Fnv;
use crate::glob::Pattern;
use crate::reply::Reply;

/// Most users the table holds (A8: a client must not grow replicated state without bound).
pub const MAX_USERS: usize = 1024;
/// Most rules of one kind (passwords, key patterns, channel patterns, command rules) a user holds.
pub const MAX_RULES_PER_USER: usize = 256;
/// Longest user name, password or pattern accepted, in bytes.
pub const MAX_RULE_BYTES: usize = 1024;

/// The user every connection starts as.
pub const DEFAULT_USER: &str = "default";

/// `NOAUTH`: the connection has not authenticated and the default user needs a password (A3).
pub const NOAUTH: &str = "NOAUTH Authentication required.";
/// `WRONGPASS`: AUTH with a wrong password, an unknown user or a disabled one (A2).
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
/// AUTH with one argument while the default user has no password (A2).
pub const AUTH_WITHOUT_PASSWORD: &str = "ERR AUTH <password> called without any password \
     configured for the default user. Are you sure your configuration is correct?";
/// A key the user may not touch (A5).
pub const NOPERM_KEY: &str = "NOPERM No permissions to access a key";

/// Every category, in the order `ACL CAT` lists them (Redis 7's order).
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// Every command tandem knows, by ACL name (`container|subcommand` for subcommands), with its
/// Redis 7 categories (A4). Connection-local commands are listed so that rules naming them are
/// valid; the coordinator answers them and only checks AUTH state for them (A6).
pub const COMMANDS: &[(&str, &[&str])] = &[
    ("get", &["read", "string", "fast"]),
    ("set", &["write", "string", "slow"]),
    ("setnx", &["write", "string", "fast"]),
    ("getset", &["write", "string", "fast"]),
    ("getdel", &["write", "string", "fast"]),
    ("mget", &["read", "string", "fast"]),
    ("mset", &["write", "string", "slow"]),
    ("append", &["write", "string", "fast"]),
    ("strlen", &["read", "string", "fast"]),
    ("setrange", &["write", "string", "slow"]),
    ("getrange", &["read", "string", "slow"]),
    ("incr", &["write", "string", "fast"]),
    ("incrby", &["write", "string", "fast"]),
    ("decr", &["write", "string", "fast"]),
    ("decrby", &["write", "string", "fast"]),
    ("del", &["keyspace", "write", "slow"]),
    ("exists", &["keyspace", "read", "fast"]),
    ("type", &["keyspace", "read", "fast"]),
    ("dbsize", &["keyspace", "read", "fast"]),
    ("keys", &["keyspace", "read", "slow", "dangerous"]),
    ("scan", &["keyspace", "read", "slow"]),
    ("randomkey", &["keyspace", "read", "slow"]),
    ("flushdb", &["keyspace", "write", "slow", "dangerous"]),
    ("flushall", &["keyspace", "write", "slow", "dangerous"]),
    ("expire", &["keyspace", "write", "fast"]),
    ("pexpire", &["keyspace", "write", "fast"]),
    ("ttl", &["keyspace", "read", "fast"]),
    ("pttl", &["keyspace", "read", "fast"]),
    ("persist", &["keyspace", "write", "fast"]),
    ("lpush", &["write", "list", "fast"]),
    ("rpush", &["write", "list", "fast"]),
    ("lpop", &["write", "list", "fast"]),
    ("rpop", &["write", "list", "fast"]),
    ("lrange", &["read", "list", "slow"]),
    ("llen", &["read", "list", "fast"]),
    ("hset", &["write", "hash", "fast"]),
    ("hget", &["read", "hash", "fast"]),
    ("hdel", &["write", "hash", "fast"]),
    ("hgetall", &["read", "hash", "slow"]),
    ("hlen", &["read", "hash", "fast"]),
    ("hincrby", &["write", "hash", "fast"]),
    // Sets
    ("sadd", &["write", "set", "fast"]),
    ("srem", &["write", "set", "fast"]),
    ("scard", &["read", "set", "fast"]),
    ("sismember", &["read", "set", "fast"]),
    ("smismember", &["read", "set", "fast"]),
    ("smembers", &["read", "set", "slow"]),
    ("spop", &["write", "set", "fast"]),
    ("srandmember", &["read", "set", "slow"]),
    ("smove", &["write", "set", "fast"]),
    ("sinter", &["read", "set", "slow"]),
    ("sintercard", &["read", "set", "slow"]),
    ("sinterstore", &["write", "set", "slow"]),
    ("sunion", &["read", "set", "slow"]),
    ("sunionstore", &["write", "set", "slow"]),
    ("sdiff", &["read", "set", "slow"]),
    ("sdiffstore", &["write", "set", "slow"]),
    ("sscan", &["read", "set", "slow"]),
    // Sorted sets
    ("zadd", &["write", "sortedset", "fast"]),
    ("zincrby", &["write", "sortedset", "fast"]),
    ("zscore", &["read", "sortedset", "fast"]),
    ("zmscore", &["read", "sortedset", "fast"]),
    ("zcard", &["read", "sortedset", "fast"]),
    ("zcount", &["read", "sortedset", "fast"]),
    ("zlexcount", &["read", "sortedset", "fast"]),
    ("zrange", &["read", "sortedset", "slow"]),
    ("zrevrange", &["read", "sortedset", "slow"]),
    ("zrangebyscore", &["read", "sortedset", "slow"]),
    ("zrevrangebyscore", &["read", "sortedset", "slow"]),
    ("zrangebylex", &["read", "sortedset", "slow"]),
    ("zrevrangebylex", &["read", "sortedset", "slow"]),
    ("zrangestore", &["write", "sortedset", "slow"]),
    ("zrank", &["read", "sortedset", "fast"]),
    ("zrevrank", &["read", "sortedset", "fast"]),
    ("zrem", &["write", "sortedset", "fast"]),
    ("zremrangebyrank", &["write", "sortedset", "slow"]),
    ("zremrangebyscore", &["write", "sortedset", "slow"]),
    ("zremrangebylex", &["write", "sortedset", "slow"]),
    ("zpopmin", &["write", "sortedset", "fast"]),
    ("zpopmax", &["write", "sortedset", "fast"]),
    ("zmpop", &["write", "sortedset", "slow"]),
    ("zunion", &["read", "sortedset", "slow"]),
    ("zinter", &["read", "sortedset", "slow"]),
    ("zdiff", &["read", "sortedset", "slow"]),
    ("zunionstore", &["write", "sortedset", "slow"]),
    ("zinterstore", &["write", "sortedset", "slow"]),
    ("zdiffstore", &["write", "sortedset", "slow"]),
    ("zintercard", &["read", "sortedset", "slow"]),
    ("zrandmember", &["read", "sortedset", "slow"]),
    ("zscan", &["read", "sortedset", "slow"]),
    ("acl|setuser", &["admin", "slow", "dangerous"]),
    ("acl|deluser", &["admin", "slow", "dangerous"]),
    ("acl|getuser", &["admin", "slow", "dangerous"]),
    ("acl|list", &["admin", "slow", "dangerous"]),
    ("acl|users", &["admin", "slow", "dangerous"]),
    ("acl|dryrun", &["admin", "slow", "dangerous"]),
    ("acl|cat", &["slow"]),
    ("acl|whoami", &["slow"]),
    ("config|set", &["admin", "slow", "dangerous"]),
    ("config|get", &["admin", "slow", "dangerous"]),
    ("auth", &["fast", "connection"]),
    ("hello", &["fast", "connection"]),
    ("ping", &["fast", "connection"]),
    ("echo", &["fast", "connection"]),
    ("select", &["fast", "connection"]),
    ("quit", &["fast", "connection"]),
    ("reset", &["fast", "connection"]),
    ("client", &["slow", "connection"]),
    ("command", &["slow", "connection"]),
    ("info", &["slow", "dangerous"]),
    ("wait", &["slow", "connection"]),
];

/// A password as stored: its SHA-256 (A1: the table never holds a password in clear).
pub type PasswordHash = [u8; 32];

/// The SHA-256 of `password`.
pub fn hash_password(password: &[u8]) -> PasswordHash {
    Sha256::digest(password).into()
}

fn hex(hash: &PasswordHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(text: &[u8]) -> Option<PasswordHash> {
    if text.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (i, pair) in text.chunks(2).enumerate() {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        hash[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(hash)
}

/// A key pattern and what it allows (`~p` both, `%R~p` reads, `%W~p` writes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPattern {
    /// Reads of matching keys are allowed.
    pub read: bool,
    /// Writes to matching keys are allowed.
    pub write: bool,
    /// The Redis glob pattern.
    pub pattern: Bytes,
}

/// One user of the ACL table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// `on`/`off`: a disabled user cannot authenticate nor run anything (A7).
    pub enabled: bool,
    /// `nopass`: any password is accepted.
    pub nopass: bool,
    /// `sanitize-payload` (stored and described only).
    pub sanitize_payload: bool,
    /// SHA-256 of each password, in the order added.
    pub passwords: Vec<PasswordHash>,
    /// Set by `+@all`/`allcommands`, cleared by `-@all`/`nocommands`: the base the rules
    /// below are applied to.
    pub all_commands: bool,
    /// Command rules after the base, in order: (allowed, lowercase command or `@category`).
    pub command_rules: Vec<(bool, String)>,
    /// `allkeys` / `~*`.
    pub all_keys: bool,
    /// Key patterns (when not `all_keys`).
    pub keys: Vec<KeyPattern>,
    /// `allchannels` / `&*` (pub/sub does not exist yet: parsed and stored only).
    pub all_channels: bool,
    /// Channel patterns.
    pub channels: Vec<Bytes>,
}

impl User {
    /// A new user as `ACL SETUSER name` creates it: off, no password, no commands, no keys.
    fn new() -> User {
        User {
            enabled: false,
            nopass: false,
            sanitize_payload: false,
            passwords: Vec::new(),
            all_commands: false,
            command_rules: Vec::new(),
            all_keys: false,
            keys: Vec::new(),
            all_channels: false,
            channels: Vec::new(),
        }
    }

    /// The initial default user: on, nopass, `~* &* +@all`.
    fn initial_default() -> User {
        User {
            enabled: true,
            nopass: true,
            all_commands: true,
            all_keys: true,
            all_channels: true,
            ..User::new()
        }
    }

    /// Whether the user may run the command with ACL name `name` (A4).
    pub fn can_run(&self, name: &str) -> bool {
        if self.command_rules.is_empty() {
            return self.all_commands; // The common case (`+@all`): no table lookup.
        }
        let base = name.split('|').next().unwrap_or(name);
        let categories = categories_of(name);
        let mut allowed = self.all_commands;
        for (allow, rule) in &self.command_rules {
            let hit = match rule.strip_prefix('@') {
                Some(category) => categories.contains(&category),
                None => rule == name || rule == base,
            };
            if hit {
                allowed = *allow;
            }
        }
        allowed
    }

    /// Whether the user may touch `key` with the given access (A5).
    pub fn can_access(&self, key: &[u8], read: bool, write: bool) -> bool {
        self.all_keys
            || self.keys.iter().any(|p| {
                (p.read || !read) && (p.write || !write) && Pattern::new(&p.pattern).matches(key)
            })
    }

    /// Whether `password` authenticates this user (enabled checked by the caller).
    fn accepts(&self, password: &[u8]) -> bool {
        self.nopass || self.passwords.contains(&hash_password(password))
    }

    /// Applies one `ACL SETUSER` rule; the error is the reason Redis gives.
    fn apply(&mut self, rule: &[u8]) -> Result<(), &'static str> {
        if rule.len() > MAX_RULE_BYTES {
            return Err("Rule too long");
        }
        let lower = rule.to_ascii_lowercase();
        match lower.as_slice() {
            b"on" => self.enabled = true,
            b"off" => self.enabled = false,
            b"nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            b"resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            b"allkeys" => self.allow_all_keys(),
            b"resetkeys" => {
                self.all_keys = false;
                self.keys.clear();
            }
            b"allchannels" => {
                self.all_channels = true;
                self.channels.clear();
            }
            b"resetchannels" => {
                self.all_channels = false;
                self.channels.clear();
            }
            b"allcommands" => self.set_all_commands(true),
            b"nocommands" => self.set_all_commands(false),
            b"sanitize-payload" => self.sanitize_payload = true,
            b"skip-sanitize-payload" => self.sanitize_payload = false,
            b"reset" => {
                *self = User {
                    sanitize_payload: true,
                    ..User::new()
                }
            }
            _ => return self.apply_prefixed(rule),
        }
        Ok(())
    }

    fn apply_prefixed(&mut self, rule: &[u8]) -> Result<(), &'static str> {
        let (&first, rest) = rule.split_first().ok_or("Syntax error")?;
        match first {
            b'>' => self.add_password(hash_password(rest)),
            b'#' => self.add_password(parse_hex(rest).ok_or(BAD_HASH)?),
            b'<' => self.remove_password(&hash_password(rest)),
            b'!' => self.remove_password(&parse_hex(rest).ok_or(BAD_HASH)?),
            b'~' => self.add_key_pattern(true, true, rest),
            b'%' => {
                let tilde = rest.iter().position(|&c| c == b'~').ok_or("Syntax error")?;
                let (mut read, mut write) = (false, false);
                for c in &rest[..tilde] {
                    match c.to_ascii_uppercase() {
                        b'R' => read = true,
                        b'W' => write = true,
                        _ => return Err("Syntax error"),
                    }
                }
                if !read && !write {
                    return Err("Syntax error");
                }
                self.add_key_pattern(read, write, &rest[tilde + 1..])
            }
            b'&' => {
                if rest == b"*" {
                    self.all_channels = true;
                    self.channels.clear();
                    return Ok(());
                }
                if self.all_channels {
                    return Err(CHANNELS_AFTER_ALL);
                }
                limit(self.channels.len())?;
                let pattern = Bytes::copy_from_slice(rest);
                if !self.channels.contains(&pattern) {
                    self.channels.push(pattern);
                }
                Ok(())
            }
            b'+' | b'-' => {
                let allow = first == b'+';
                let name = String::from_utf8_lossy(rest).to_ascii_lowercase();
                if name == "@all" {
                    self.set_all_commands(allow);
                    return Ok(());
                }
                let known = match name.strip_prefix('@') {
                    Some(category) => CATEGORIES.contains(&category),
                    None => COMMANDS
                        .iter()
                        .any(|(c, _)| *c == name || c.split('|').next() == Some(name.as_str())),
                };
                if !known {
                    return Err("Unknown command or category name in ACL");
                }
                self.command_rules.retain(|(_, r)| *r != name);
                limit(self.command_rules.len())?;
                self.command_rules.push((allow, name));
                Ok(())
            }
            _ => Err("Syntax error"),
        }
    }

    fn set_all_commands(&mut self, all: bool) {
        self.all_commands = all;
        self.command_rules.clear();
    }

    fn allow_all_keys(&mut self) {
        self.all_keys = true;
        self.keys.clear();
    }

    fn add_password(&mut self, hash: PasswordHash) -> Result<(), &'static str> {
        self.nopass = false;
        if !self.passwords.contains(&hash) {
            limit(self.passwords.len())?;
            self.passwords.push(hash);
        }
        Ok(())
    }

    fn remove_password(&mut self, hash: &PasswordHash) -> Result<(), &'static str> {
        let before = self.passwords.len();
        self.passwords.retain(|p| p != hash);
        if self.passwords.len() == before {
            return Err("The password you are trying to remove from the user does not exist");
        }
        Ok(())
    }

    fn add_key_pattern(
        &mut self,
        read: bool,
        write: bool,
        pattern: &[u8],
    ) -> Result<(), &'static str> {
        if self.all_keys {
            return Err(KEYS_AFTER_ALL);
        }
        if pattern == b"*" && read && write {
            self.allow_all_keys();
            return Ok(());
        }
        let pattern = Bytes::copy_from_slice(pattern);
        if let Some(existing) = self.keys.iter_mut().find(|p| p.pattern == pattern) {
            existing.read |= read;
            existing.write |= write;
            return Ok(());
        }
        limit(self.keys.len())?;
        self.keys.push(KeyPattern {
            read,
            write,
            pattern,
        });
        Ok(())
    }

    /// The rules part of `ACL LIST`'s line, after `user <name> ` (Redis 7's order).
    pub fn describe(&self) -> String {
        let mut words: Vec<String> = vec![if self.enabled { "on" } else { "off" }.to_owned()];
        if self.nopass {
            words.push("nopass".to_owned());
        }
        if self.sanitize_payload {
            words.push("sanitize-payload".to_owned());
        }
        words.extend(self.passwords.iter().map(|p| format!("#{}", hex(p))));
        let keys = self.describe_keys();
        if !keys.is_empty() {
            words.push(keys);
        }
        words.push(self.describe_channels());
        words.push(self.describe_commands());
        words.join(" ")
    }

    fn describe_keys(&self) -> String {
        if self.all_keys {
            return "~*".to_owned();
        }
        let pattern = |p: &KeyPattern| {
            let prefix = match (p.read, p.write) {
                (true, true) => "~",
                (true, false) => "%R~",
                _ => "%W~",
            };
            format!("{prefix}{}", String::from_utf8_lossy(&p.pattern))
        };
        self.keys.iter().map(pattern).collect::<Vec<_>>().join(" ")
    }

    fn describe_channels(&self) -> String {
        if self.all_channels {
            return "&*".to_owned();
        }
        let mut words = vec!["resetchannels".to_owned()];
        words.extend(
            self.channels
                .iter()
                .map(|c| format!("&{}", String::from_utf8_lossy(c))),
        );
        words.join(" ")
    }

    fn describe_commands(&self) -> String {
        let mut words = vec![if self.all_commands { "+@all" } else { "-@all" }.to_owned()];
        words.extend(
            self.command_rules
                .iter()
                .map(|(allow, rule)| format!("{}{rule}", if *allow { '+' } else { '-' })),
        );
        words.join(" ")
    }

    fn getuser_reply(&self) -> Reply {
        let bulk = |text: String| Reply::Bulk(Bytes::from(text));
        let mut flags = vec![bulk(if self.enabled { "on" } else { "off" }.to_owned())];
        if self.nopass {
            flags.push(bulk("nopass".to_owned()));
        }
        if self.sanitize_payload {
            flags.push(bulk("sanitize-payload".to_owned()));
        }
        let channels = if self.all_channels {
            "&*".to_owned()
        } else {
            self.channels
                .iter()
                .map(|c| format!("&{}", String::from_utf8_lossy(c)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        Reply::Map(vec![
            (bulk("flags".to_owned()), Reply::Array(flags)),
            (
                bulk("passwords".to_owned()),
                Reply::Array(self.passwords.iter().map(|p| bulk(hex(p))).collect()),
            ),
            (bulk("commands".to_owned()), bulk(self.describe_commands())),
            (bulk("keys".to_owned()), bulk(self.describe_keys())),
            (bulk("channels".to_owned()), bulk(channels)),
            (bulk("selectors".to_owned()), Reply::Array(Vec::new())),
        ])
    }

    fn write_digest(&self, fnv: &mut Fnv) {
        fnv.write_field(self.describe().as_bytes());
    }
}

const BAD_HASH: &str = "The password hash must be exactly 64 characters and contain only \
     lowercase hexadecimal characters";
const KEYS_AFTER_ALL: &str = "Adding a pattern after the * pattern (or the 'allkeys' flag) \
     is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of \
     patterns";
const CHANNELS_AFTER_ALL: &str = "Adding a pattern after the * pattern (or the 'allchannels' \
     flag) is not valid and does not have any effect. Try 'resetchannels' to start with an \
     empty list of channels";

fn limit(len: usize) -> Result<(), &'static str> {
    if len >= MAX_RULES_PER_USER {
        Err("Too many rules for this user (tandem's limit)")
    } else {
        Ok(())
    }
}

/// The categories of the command with ACL name `name` (empty for unknown names).
pub fn categories_of(name: &str) -> &'static [&'static str] {
    COMMANDS
        .iter()
        .find(|(c, _)| *c == name)
        .map_or(&[], |(_, cats)| cats)
}

/// The replicated ACL table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    #[serde(deserialize_with = "crate::bounded_serde::ord_map")]
    users: OrdMap<String, User>,
}

impl Default for Acl {
    fn default() -> Acl {
        let mut users = OrdMap::new();
        users.insert(DEFAULT_USER.to_owned(), User::initial_default());
        Acl { users }
    }
}

impl Acl {
    /// The user named `name`.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// Whether a connection that never authenticated must (A3): the default user is off or
    /// has no `nopass`.
    pub fn default_needs_password(&self) -> bool {
        self.users
            .get(DEFAULT_USER)
            .is_none_or(|u| !u.enabled || !u.nopass)
    }

    /// Checks `cmd` run by `user` (`None`: a connection that never authenticated, which acts
    /// as the default user while that one needs no password). `Err` is the error reply (A3-A7).
    pub fn authorize(&self, user: Option<&str>, cmd: &Command) -> Result<(), String> {
        if cmd.is_internal() || matches!(cmd, Command::Auth { .. }) {
            return Ok(()); // A6: AUTH is open to all; internal commands come from a coordinator.
        }
        let name = user.unwrap_or(DEFAULT_USER);
        let found = match user {
            None if self.default_needs_password() => None,
            _ => self.users.get(name).filter(|u| u.enabled),
        };
        let Some(found) = found else {
            return Err(NOAUTH.to_owned()); // A7: deleted or disabled since it authenticated.
        };
        check_user(name, found, cmd)
    }

    /// `AUTH [user] password` (A2).
    pub fn auth(&self, user: Option<&Bytes>, password: &Bytes) -> Reply {
        let name = match user {
            Some(name) => String::from_utf8_lossy(name).into_owned(),
            None => {
                if self.users.get(DEFAULT_USER).is_some_and(|u| u.nopass) {
                    return Reply::Error(AUTH_WITHOUT_PASSWORD.to_owned());
                }
                DEFAULT_USER.to_owned()
            }
        };
        match self.users.get(&name) {
            Some(u) if u.enabled && u.accepts(password) => Reply::ok(),
            _ => Reply::Error(WRONGPASS.to_owned()),
        }
    }

    /// `ACL SETUSER name rule...`: every rule applies, or none (A8).
    pub fn set_user(&mut self, name: &Bytes, rules: &[Bytes]) -> Reply {
        let key = String::from_utf8_lossy(name).into_owned();
        let exists = self.users.contains_key(&key);
        if !exists && self.users.len() >= MAX_USERS {
            return Reply::Error(format!(
                "ERR Error in ACL SETUSER: too many users (tandem's limit is {MAX_USERS})"
            ));
        }
        if name.len() > MAX_RULE_BYTES || name.iter().any(|c| c.is_ascii_whitespace()) {
            return Reply::Error(
                "ERR Usernames can't contain spaces or null characters".to_owned(),
            );
        }
        let mut user = self.users.get(&key).cloned().unwrap_or_else(User::new);
        for rule in rules {
            if let Err(reason) = user.apply(rule) {
                return Reply::Error(format!(
                    "ERR Error in ACL SETUSER modifier '{}': {reason}",
                    String::from_utf8_lossy(rule)
                ));
            }
        }
        self.users.insert(key, user);
        Reply::ok()
    }

    /// `ACL DELUSER name...`: how many existed.
    pub fn del_users(&mut self, names: &[Bytes]) -> Reply {
        if names.iter().any(|n| n.as_ref() == DEFAULT_USER.as_bytes()) {
            return Reply::Error("ERR The 'default' user cannot be removed".to_owned());
        }
        let removed = names
            .iter()
            .filter(|n| {
                self.users
                    .remove(String::from_utf8_lossy(n).as_ref())
                    .is_some()
            })
            .count();
        Reply::count(removed)
    }

    /// `ACL LIST`.
    pub fn list(&self) -> Reply {
        Reply::bulks(
            self.users
                .iter()
                .map(|(name, u)| Bytes::from(format!("user {name} {}", u.describe()))),
        )
    }

    /// `ACL USERS`.
    pub fn users(&self) -> Reply {
        Reply::bulks(self.users.keys().map(|n| Bytes::from(n.clone())))
    }

    /// `ACL GETUSER name`.
    pub fn get_user(&self, name: &Bytes) -> Reply {
        self.users
            .get(String::from_utf8_lossy(name).as_ref())
            .map_or(Reply::Nil, User::getuser_reply)
    }

    /// `ACL CAT [category]`.
    pub fn cat(category: Option<&Bytes>) -> Reply {
        let Some(category) = category else {
            return Reply::bulks(CATEGORIES.iter().map(|c| Bytes::from_static(c.as_bytes())));
        };
        let wanted = String::from_utf8_lossy(category).to_ascii_lowercase();
        if !CATEGORIES.contains(&wanted.as_str()) {
            return Reply::Error(format!(
                "ERR Unknown category '{}'",
                String::from_utf8_lossy(category)
            ));
        }
        Reply::bulks(
            COMMANDS
                .iter()
                .filter(|(_, cats)| cats.contains(&wanted.as_str()))
                .map(|(name, _)| Bytes::from_static(name.as_bytes())),
        )
    }

    /// `ACL DRYRUN user command arg...`.
    pub fn dry_run(&self, name: &Bytes, args: &[Bytes]) -> Reply {
        let key = String::from_utf8_lossy(name).into_owned();
        let Some(user) = self.users.get(&key) else {
            return Reply::Error(format!("ERR User '{key}' not found"));
        };
        let cmd = match Command::parse(args) {
            Ok(cmd) => cmd,
            Err(reply) => return reply,
        };
        match check_user(&key, user, &cmd) {
            Ok(()) => Reply::ok(),
            Err(text) => {
                let text = text.strip_prefix("NOPERM ").unwrap_or(&text).to_owned();
                Reply::Bulk(Bytes::from(text))
            }
        }
    }

    /// `CONFIG SET requirepass p`: the default user's only password, `""` = nopass (A9).
    pub fn set_requirepass(&mut self, password: &Bytes) {
        let user = self
            .users
            .entry(DEFAULT_USER.to_owned())
            .or_insert_with(User::initial_default);
        user.passwords.clear();
        if password.is_empty() {
            user.nopass = true;
        } else {
            user.nopass = false;
            user.passwords.push(hash_password(password));
        }
    }

    /// `--requirepass` at a coordinator's start: sets it only while the default user has no
    /// password yet, so restarts and several coordinators do not fight (A9).
    pub fn requirepass_if_unset(&mut self, password: &Bytes) {
        let unset = self
            .users
            .get(DEFAULT_USER)
            .is_none_or(|u| u.nopass && u.passwords.is_empty());
        if unset {
            self.set_requirepass(password);
        }
    }

    pub(crate) fn write_digest(&self, fnv: &mut Fnv) {
        fnv.write_u64(self.users.len() as u64);
        for (name, user) in &self.users {
            fnv.write_field(name.as_bytes());
            user.write_digest(fnv);
        }
    }
}

/// A4, A5: command and key permissions of an enabled user.
fn check_user(name: &str, user: &User, cmd: &Command) -> Result<(), String> {
    let acl_name = cmd.acl_name();
    if !user.can_run(acl_name) {
        return Err(format!(
            "NOPERM User {name} has no permissions to run the '{acl_name}' command"
        ));
    }
    if user.all_keys {
        return Ok(());
    }
    let (read, write) = cmd.key_access();
    if cmd.keys().iter().any(|k| !user.can_access(k, read, write)) {
        return Err(NOPERM_KEY.to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExecContext, Store};

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn run(store: &mut Store, user: Option<&str>, words: &[&str]) -> Reply {
        let cmd = match Command::parse(&args(words)) {
            Ok(cmd) => cmd,
            Err(reply) => return reply,
        };
        store.execute_as(user, &cmd, &ExecContext::default())
    }

    fn err(text: &str) -> Reply {
        Reply::Error(text.to_owned())
    }

    #[test]
    fn a1_initial_table_describes_like_redis() {
        let store = Store::new();
        assert_eq!(
            store.acl().list(),
            Reply::bulks([Bytes::from("user default on nopass ~* &* +@all")])
        );
        assert!(!store.acl().default_needs_password());
    }

    #[test]
    fn a8_setuser_text_matches_redis() {
        let mut s = Store::new();
        run(
            &mut s,
            None,
            &["acl", "setuser", "alice", "on", ">pw", "+get", "~app:*"],
        );
        run(
            &mut s,
            None,
            &[
                "acl", "setuser", "bob", "on", "nopass", "+@all", "-get", "%R~r:*", "%W~w:*", "&ch",
            ],
        );
        run(
            &mut s,
            None,
            &[
                "acl",
                "setuser",
                "dan",
                "on",
                "nopass",
                "+@all",
                "-@dangerous",
                "allkeys",
            ],
        );
        run(
            &mut s,
            None,
            &["acl", "setuser", "eve", "on", ">a", "reset"],
        );
        run(&mut s, None, &["acl", "setuser", "fay"]);
        let Reply::Array(lines) = s.acl().list() else {
            panic!("array")
        };
        let lines: Vec<String> = lines
            .iter()
            .map(|l| match l {
                Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                _ => panic!("bulk"),
            })
            .collect();
        assert_eq!(
            lines,
            [
                "user alice on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~app:* resetchannels -@all +get",
                "user bob on nopass %R~r:* %W~w:* resetchannels &ch +@all -get",
                "user dan on nopass ~* resetchannels +@all -@dangerous",
                "user default on nopass ~* &* +@all",
                "user eve off sanitize-payload resetchannels -@all",
                "user fay off resetchannels -@all",
            ]
        );
    }

    #[test]
    fn a8_bad_rules_are_refused_whole() {
        let mut s = Store::new();
        assert_eq!(
            run(&mut s, None, &["acl", "setuser", "x", "on", "foo"]),
            err("ERR Error in ACL SETUSER modifier 'foo': Syntax error")
        );
        assert_eq!(
            run(&mut s, None, &["acl", "setuser", "x", "+nosuch"]),
            err(
                "ERR Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL"
            )
        );
        assert_eq!(s.acl().user("x"), None, "nothing applied");
        assert_eq!(
            run(&mut s, None, &["acl", "deluser", "default"]),
            err("ERR The 'default' user cannot be removed")
        );
    }

    #[test]
    fn a5_key_and_command_permissions() {
        let mut s = Store::new();
        run(
            &mut s,
            None,
            &["acl", "setuser", "alice", "on", ">pw", "+get", "~app:*"],
        );
        let alice = Some("alice");
        assert_eq!(run(&mut s, alice, &["get", "app:x"]), Reply::Nil);
        assert_eq!(
            run(&mut s, alice, &["set", "app:x", "1"]),
            err("NOPERM User alice has no permissions to run the 'set' command")
        );
        assert_eq!(run(&mut s, alice, &["get", "other:x"]), err(NOPERM_KEY));
        assert_eq!(
            run(&mut s, alice, &["acl", "list"]),
            err("NOPERM User alice has no permissions to run the 'acl|list' command")
        );
        run(
            &mut s,
            None,
            &["acl", "setuser", "w", "on", "nopass", "+@all", "%W~w:*"],
        );
        assert_eq!(run(&mut s, Some("w"), &["set", "w:1", "v"]), Reply::ok());
        assert_eq!(run(&mut s, Some("w"), &["get", "w:1"]), err(NOPERM_KEY));
    }

    #[test]
    fn a2_a3_a7_auth_and_noauth() {
        let mut s = Store::new();
        assert_eq!(
            run(&mut s, None, &["auth", "x"]),
            err(AUTH_WITHOUT_PASSWORD)
        );
        run(
            &mut s,
            None,
            &["acl", "setuser", "alice", "on", ">pw", "+@all", "~*"],
        );
        assert_eq!(run(&mut s, None, &["auth", "alice", "pw"]), Reply::ok());
        assert_eq!(run(&mut s, None, &["auth", "alice", "no"]), err(WRONGPASS));
        assert_eq!(
            run(&mut s, None, &["config", "set", "requirepass", "sec"]),
            Reply::ok()
        );
        assert_eq!(run(&mut s, None, &["get", "k"]), err(NOAUTH));
        assert_eq!(run(&mut s, None, &["auth", "sec"]), Reply::ok());
        assert_eq!(run(&mut s, Some("default"), &["get", "k"]), Reply::Nil);
        run(&mut s, Some("default"), &["acl", "setuser", "alice", "off"]);
        assert_eq!(run(&mut s, None, &["auth", "alice", "pw"]), err(WRONGPASS));
        assert_eq!(run(&mut s, Some("alice"), &["get", "k"]), err(NOAUTH));
        run(&mut s, Some("default"), &["acl", "deluser", "alice"]);
        assert_eq!(run(&mut s, Some("alice"), &["get", "k"]), err(NOAUTH));
        s.execute(
            &Command::RequirepassIfUnset {
                password: Bytes::from("other"),
            },
            &ExecContext::default(),
        );
        assert_eq!(run(&mut s, None, &["auth", "sec"]), Reply::ok(), "A9: kept");
    }

    #[test]
    fn a1_flushall_keeps_users_and_digest_covers_them() {
        let mut s = Store::new();
        let before = s.digest();
        run(&mut s, None, &["acl", "setuser", "alice"]);
        assert_ne!(s.digest(), before);
        run(&mut s, None, &["flushall"]);
        assert!(s.acl().user("alice").is_some());
    }
}
