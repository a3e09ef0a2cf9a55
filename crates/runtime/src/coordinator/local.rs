//! Connection-local commands: answered by the front end itself (a coordinator, or a server's
//! client port), without a replica core. On a server's client port the node is in cluster mode
//! (CLUSTER, ASKING, READONLY, HELLO's mode, INFO's `cluster_enabled:1`); a coordinator answers
//! cluster commands as a Redis node without cluster support.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tandem_resp::{Frame, Protocol};

use super::Shared;
use super::connection::{ConnState, reply_frame};

/// The connection-local commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Local {
    Ping,
    Echo,
    Hello,
    Select,
    Quit,
    Command,
    Client,
    Info,
    Config,
    Reset,
    Wait,
    Cluster,
    Asking,
    ReadOnly,
    ReadWrite,
}

/// Which local command `args` is, if any.
pub(crate) fn command(args: &[Bytes]) -> Option<Local> {
    // Every data command passes through here: compare without allocating an uppercase copy.
    const LOCAL: [(&[u8], Local); 15] = [
        (b"PING", Local::Ping),
        (b"ECHO", Local::Echo),
        (b"HELLO", Local::Hello),
        (b"SELECT", Local::Select),
        (b"QUIT", Local::Quit),
        (b"COMMAND", Local::Command),
        (b"CLIENT", Local::Client),
        (b"INFO", Local::Info),
        (b"CONFIG", Local::Config),
        (b"RESET", Local::Reset),
        (b"WAIT", Local::Wait),
        (b"CLUSTER", Local::Cluster),
        (b"ASKING", Local::Asking),
        (b"READONLY", Local::ReadOnly),
        (b"READWRITE", Local::ReadWrite),
    ];
    let name = args.first()?;
    LOCAL
        .iter()
        .find(|(local, _)| local.eq_ignore_ascii_case(name))
        .map(|(_, local)| *local)
}

/// Runs a local command and returns its reply.
pub(crate) fn execute(
    local: Local,
    args: &[Bytes],
    state: &mut ConnState,
    shared: &Shared,
) -> Frame {
    let rest = &args[1..];
    match local {
        Local::Ping => match rest {
            [] => Frame::Simple("PONG".to_owned()),
            [message] => Frame::Bulk(message.clone()),
            _ => arity("ping"),
        },
        Local::Echo => match rest {
            [message] => Frame::Bulk(message.clone()),
            _ => arity("echo"),
        },
        Local::Hello => hello(rest, state, shared.cluster.is_some()),
        Local::Select => match rest {
            [index] => match parse_i64(index) {
                Some(0) => ok(),
                Some(_) if shared.cluster.is_some() => {
                    error("ERR SELECT is not allowed in cluster mode")
                }
                Some(_) => error("ERR DB index is out of range"),
                None => not_integer(),
            },
            _ => arity("select"),
        },
        Local::Quit => ok(),
        Local::Command => command_command(rest),
        Local::Cluster => match &shared.cluster {
            Some(front) => crate::cluster::cluster_command(&front.state.borrow(), rest),
            None => error(CLUSTER_DISABLED),
        },
        // ASKING is a one-shot flag for Redis's incremental migration; tandem never answers
        // -ASK (S4), so there is nothing to remember. READONLY is accepted, but a backup never
        // serves a read (no stale reads): it answers -MOVED to its primary.
        Local::Asking | Local::ReadOnly | Local::ReadWrite => match (&shared.cluster, rest) {
            (None, _) => error(CLUSTER_DISABLED),
            (Some(_), []) => ok(),
            (Some(_), _) => arity(match local {
                Local::Asking => "asking",
                Local::ReadOnly => "readonly",
                _ => "readwrite",
            }),
        },
        Local::Client => client(rest, state),
        Local::Info => match rest {
            [] => info(None, shared),
            [section] => info(Some(&String::from_utf8_lossy(section)), shared),
            _ => error("ERR syntax error"),
        },
        Local::Config => config(rest),
        Local::Reset => {
            state.proto = Protocol::Resp2;
            state.name = None;
            state.user = None; // RESET logs the connection out, as in Redis (A3).
            Frame::Simple("RESET".to_owned())
        }
        Local::Wait => match rest {
            [replicas, timeout] => match (parse_i64(replicas), parse_i64(timeout)) {
                (Some(_), Some(t)) if t >= 0 => {
                    // Every acknowledged write is already on every backup of the view (P2).
                    let backups = shared.view.borrow().as_ref().map_or(0, |v| v.backups.len());
                    Frame::Integer(backups as i64)
                }
                (Some(_), Some(_)) => error("ERR timeout is negative"),
                _ => not_integer(),
            },
            _ => arity("wait"),
        },
    }
}

/// Redis's answer to a cluster command on a node without cluster support.
const CLUSTER_DISABLED: &str = "ERR This instance has cluster support disabled";

fn hello(rest: &[Bytes], state: &mut ConnState, cluster: bool) -> Frame {
    let mut proto = state.proto;
    let mut name = None;
    if let Some((version, mut options)) = rest.split_first() {
        proto = match parse_i64(version) {
            Some(2) => Protocol::Resp2,
            Some(3) => Protocol::Resp3,
            Some(_) => return error("NOPROTO unsupported protocol version"),
            None => return error("ERR Protocol version is not an integer or out of range"),
        };
        while let Some((option, tail)) = options.split_first() {
            match (option.to_ascii_uppercase().as_slice(), tail) {
                (b"SETNAME", [value, tail @ ..]) => {
                    name = Some(value.clone());
                    options = tail;
                }
                // auth.rs checked the pair through the cluster before calling here (A2).
                (b"AUTH", [_, _, tail @ ..]) => options = tail,
                _ => return error("ERR syntax error"),
            }
        }
    }
    state.proto = proto;
    if name.is_some() {
        state.name = name;
    }
    let proto_number = match proto {
        Protocol::Resp2 => 2,
        Protocol::Resp3 => 3,
    };
    Frame::Map(vec![
        (bulk("server"), bulk("tandem")),
        (bulk("version"), bulk(env!("CARGO_PKG_VERSION"))),
        (bulk("proto"), Frame::Integer(proto_number)),
        (bulk("id"), Frame::Integer(state.id as i64)),
        (
            bulk("mode"),
            bulk(if cluster { "cluster" } else { "standalone" }),
        ),
        (bulk("role"), bulk("master")),
        (bulk("modules"), Frame::Array(Vec::new())),
    ])
}

/// `COMMAND [COUNT | INFO name... | DOCS [name...] | LIST [FILTERBY ...] | GETKEYS cmd...]`
/// from the command table of `tandem_kv::commands` (Redis 7's metadata).
fn command_command(rest: &[Bytes]) -> Frame {
    use tandem_kv::commands::{COMMAND_TABLE, get_keys, lookup};
    let Some((sub, args)) = rest.split_first() else {
        return Frame::Array(
            COMMAND_TABLE
                .iter()
                .map(|c| reply_frame(&c.reply()))
                .collect(),
        );
    };
    match (sub.to_ascii_uppercase().as_slice(), args) {
        (b"COUNT", []) => Frame::Integer(COMMAND_TABLE.len() as i64),
        (b"INFO", []) => Frame::Array(
            COMMAND_TABLE
                .iter()
                .map(|c| reply_frame(&c.reply()))
                .collect(),
        ),
        (b"INFO", names) => Frame::Array(
            names
                .iter()
                .map(|name| lookup(name).map_or(Frame::Null, |c| reply_frame(&c.reply())))
                .collect(),
        ),
        (b"DOCS", names) => {
            let entries: Vec<_> = if names.is_empty() {
                COMMAND_TABLE.iter().collect()
            } else {
                names.iter().filter_map(|name| lookup(name)).collect()
            };
            Frame::Map(
                entries
                    .into_iter()
                    .filter_map(|c| match reply_frame(&c.docs()) {
                        Frame::Array(mut pair) if pair.len() == 2 => {
                            let docs = pair.pop().expect("two elements");
                            Some((pair.pop().expect("two elements"), docs))
                        }
                        _ => None,
                    })
                    .collect(),
            )
        }
        (b"LIST", filter) => command_list(filter),
        (b"GETKEYS", [_, ..]) => match get_keys(args) {
            Ok(keys) => Frame::Array(keys.into_iter().map(Frame::Bulk).collect()),
            Err(error) => Frame::Error(error.text().to_owned()),
        },
        (b"GETKEYS", []) => arity("command|getkeys"),
        (b"COUNT", _) => arity("command|count"),
        _ => unknown_subcommand(sub, "COMMAND"),
    }
}

/// `COMMAND LIST [FILTERBY ACLCAT category | PATTERN pattern | MODULE name]`.
fn command_list(filter: &[Bytes]) -> Frame {
    use tandem_kv::commands::COMMAND_TABLE;
    let names = COMMAND_TABLE
        .iter()
        .flat_map(|c| std::iter::once(c.name).chain(c.subcommands.iter().map(|s| s.name)));
    let keep: Box<dyn Fn(&str) -> bool> = match filter {
        [] => Box::new(|_| true),
        [by, kind, value] if by.eq_ignore_ascii_case(b"FILTERBY") => {
            let value = value.clone();
            match kind.to_ascii_uppercase().as_slice() {
                b"ACLCAT" => Box::new(move |name: &str| {
                    tandem_kv::commands::lookup(name.as_bytes()).is_some_and(|c| {
                        c.categories
                            .iter()
                            .any(|cat| cat.as_bytes().eq_ignore_ascii_case(&value))
                    })
                }),
                b"PATTERN" => Box::new(move |name: &str| glob_match(&value, name.as_bytes())),
                b"MODULE" => Box::new(|_| false),
                _ => return error("ERR syntax error"),
            }
        }
        _ => return error("ERR syntax error"),
    };
    Frame::Array(names.filter(|n| keep(n)).map(bulk).collect())
}

fn client(rest: &[Bytes], state: &mut ConnState) -> Frame {
    let Some((sub, args)) = rest.split_first() else {
        return arity("client");
    };
    match (sub.to_ascii_uppercase().as_slice(), args) {
        (b"SETNAME", [name]) => {
            state.name = (!name.is_empty()).then(|| name.clone());
            ok()
        }
        (b"GETNAME", []) => state.name.clone().map_or(Frame::Null, Frame::Bulk),
        (b"ID", []) => Frame::Integer(state.id as i64),
        (b"SETINFO", [_, _]) => ok(),
        (b"INFO" | b"LIST", _) => Frame::Bulk(Bytes::from(client_line(state))),
        (b"SETNAME" | b"GETNAME" | b"ID" | b"SETINFO", _) => arity("client|subcommand"),
        _ => unknown_subcommand(sub, "CLIENT"),
    }
}

fn client_line(state: &ConnState) -> String {
    let name = state
        .name
        .as_ref()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default();
    let resp = match state.proto {
        Protocol::Resp2 => 2,
        Protocol::Resp3 => 3,
    };
    format!(
        "id={} addr={} name={} db=0 resp={}\n",
        state.id, state.peer, name, resp
    )
}

fn info(section: Option<&str>, shared: &Shared) -> Frame {
    let section = section.map(str::to_ascii_lowercase);
    let wanted = |name: &str| match section.as_deref() {
        None | Some("all" | "everything" | "default") => true,
        Some(s) => s == name,
    };
    let mut out = String::new();
    let cluster = shared.cluster.is_some();
    if wanted("server") {
        let _ = write!(
            out,
            "# Server\r\nredis_version:7.2.0\r\ntandem_version:{}\r\nredis_mode:{}\r\n\
             process_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            if cluster { "cluster" } else { "standalone" },
            std::process::id(),
            shared.listen.port(),
            shared.started.elapsed().as_secs()
        );
    }
    if wanted("clients") {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n",
            shared.connected.load(Ordering::Relaxed),
            shared.config.max_connections
        );
    }
    if wanted("persistence") {
        // ioredis waits while `loading` is not 0.
        out.push_str("# Persistence\r\nloading:0\r\naof_enabled:0\r\n\r\n");
    }
    if wanted("replication") {
        out.push_str("# Replication\r\nrole:master\r\n");
        match shared.view.borrow().as_ref() {
            Some(view) => {
                let backups: Vec<&str> = view.backups.iter().map(|b| b.as_str()).collect();
                let _ = write!(
                    out,
                    "viewnum:{}\r\nprimary:{}\r\nbackups:{}\r\n",
                    view.num,
                    view.primary,
                    backups.join(",")
                );
                for (i, server) in view.members().enumerate() {
                    let role = if i == 0 { "primary" } else { "backup" };
                    let _ = write!(out, "server{i}:addr={server},role={role}\r\n");
                }
            }
            None => out.push_str("viewnum:0\r\nprimary:\r\nbackups:\r\n"),
        }
        out.push_str("\r\n");
    }
    if wanted("cluster") {
        let _ = write!(
            out,
            "# Cluster\r\ncluster_enabled:{}\r\n\r\n",
            u8::from(cluster)
        );
    }
    Frame::Bulk(Bytes::from(out))
}

/// The few settings tools ask about, with the values that describe tandem.
const SETTINGS: &[(&str, &str)] = &[("save", ""), ("appendonly", "no"), ("databases", "1")];

fn config(rest: &[Bytes]) -> Frame {
    let Some((sub, patterns)) = rest.split_first() else {
        return arity("config");
    };
    if !sub.eq_ignore_ascii_case(b"GET") {
        return unknown_subcommand(sub, "CONFIG");
    }
    if patterns.is_empty() {
        return arity("config|get");
    }
    let mut pairs = Vec::new();
    for (name, value) in SETTINGS {
        if patterns.iter().any(|p| glob_match(p, name.as_bytes())) {
            pairs.push((bulk(name), bulk(value)));
        }
    }
    Frame::Map(pairs)
}

/// `*` and `?` glob matching, case-insensitive (CONFIG GET patterns).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.split_first(), text.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            glob_match(rest, text) || (!text.is_empty() && glob_match(pattern, &text[1..]))
        }
        (Some((b'?', rest)), Some((_, text_rest))) => glob_match(rest, text_rest),
        (Some((p, rest)), Some((t, text_rest))) => {
            p.eq_ignore_ascii_case(t) && glob_match(rest, text_rest)
        }
        _ => false,
    }
}

fn parse_i64(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

fn bulk(text: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

fn ok() -> Frame {
    Frame::Simple("OK".to_owned())
}

fn error(text: &str) -> Frame {
    Frame::Error(text.to_owned())
}

fn not_integer() -> Frame {
    error("ERR value is not an integer or out of range")
}

fn arity(name: &str) -> Frame {
    Frame::Error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

fn unknown_subcommand(sub: &[u8], command: &str) -> Frame {
    Frame::Error(format!(
        "ERR unknown subcommand '{}'. Try {command} HELP.",
        String::from_utf8_lossy(sub)
    ))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob_patterns() {
        assert!(glob_match(b"save", b"save"));
        assert!(glob_match(b"SAVE", b"save"));
        assert!(glob_match(b"*", b"appendonly"));
        assert!(glob_match(b"append*", b"appendonly"));
        assert!(glob_match(b"s?ve", b"save"));
        assert!(!glob_match(b"save", b"saves"));
        assert!(!glob_match(b"x*", b"save"));
    }
}
