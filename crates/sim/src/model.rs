//! The key/value store as a sequential specification, one key at a time, for the
//! linearizability checker. The model *is* the real `tandem_kv::Store` run on a single key:
//! an operation's projection onto a key is executed on a one-key store and its reply compared
//! with what the client saw. Multi-key commands are projected per key (MSET, MGET, KEYS,
//! FLUSHDB); counts that cannot be split per key (multi-key DEL/EXISTS, DBSIZE) are not checked.

use std::collections::BTreeMap;

use bytes::Bytes;
use tandem_check::{Model, Operation};
use tandem_kv::{Command, ExecContext, Reply, Store};

use crate::history::HistoryOp;

/// The wall clock the model executes at. Workload expiry times are long (minutes), so nothing
/// expires during a run and the model's fixed clock gives the same answers as the replicas'
/// clocks, except for remaining-TTL values, compared loosely.
const MODEL_NOW_MS: u64 = 1_700_000_000_000;

/// How to compare the model's reply with the client's.
#[derive(Clone, Debug)]
pub enum Check {
    /// Equal replies (TTL/PTTL: same sign class, client's value no larger).
    Exact(Reply),
    /// Not comparable per key: only the effect counts.
    Unchecked,
}

/// One operation projected onto one key: commands in request order, each with its check.
#[derive(Clone, Debug)]
pub struct KeyInput {
    /// The commands, each restricted to this key.
    pub steps: Vec<(Command, Check)>,
}

/// The state of one key: its serialized entry, or `None` if absent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyState(Option<Vec<u8>>);

/// The per-key model.
#[derive(Clone, Debug)]
pub struct KeyModel {
    key: Bytes,
}

impl KeyModel {
    fn load(&self, state: &KeyState) -> Store {
        let mut store = Store::new();
        if let Some(bytes) = &state.0 {
            let entry: tandem_kv::Entry = postcard::from_bytes(bytes).expect("model state decodes");
            store.insert_entry(self.key.clone(), entry);
        }
        store
    }

    fn save(&self, store: &Store) -> KeyState {
        let chunk = store.chunk_after(None, usize::MAX, 2);
        debug_assert!(chunk.entries.len() <= 1, "one key per model");
        KeyState(
            chunk
                .entries
                .into_iter()
                .next()
                .map(|(_, e)| postcard::to_stdvec(&e).expect("encodes")),
        )
    }
}

fn ttl_like(cmd: &Command) -> bool {
    matches!(cmd.name(), "ttl" | "pttl")
}

fn matches(cmd: &Command, expected: &Reply, actual: &Reply) -> bool {
    if ttl_like(cmd)
        && let (Reply::Integer(e), Reply::Integer(a)) = (expected, actual)
    {
        return if *e < 0 { e == a } else { *a >= 0 && a <= e };
    }
    expected == actual
}

impl Model for KeyModel {
    type State = KeyState;
    type Input = KeyInput;
    type Output = ();

    fn init(&self) -> KeyState {
        KeyState(None)
    }

    fn step(&self, state: &KeyState, input: &KeyInput, _output: &()) -> Option<KeyState> {
        let mut store = self.load(state);
        let ctx = ExecContext {
            now_ms: MODEL_NOW_MS,
            random: 0,
            ..ExecContext::default()
        };
        for (cmd, check) in &input.steps {
            let reply = store.execute(cmd, &ctx);
            if let Check::Exact(expected) = check
                && !matches(cmd, &reply, expected)
            {
                return None;
            }
        }
        Some(self.save(&store))
    }

    fn is_read_only(&self, input: &KeyInput) -> bool {
        input.steps.iter().all(|(cmd, _)| !cmd.is_write())
    }

    fn step_unobserved(&self, state: &KeyState, input: &KeyInput) -> Vec<KeyState> {
        let mut store = self.load(state);
        let ctx = ExecContext {
            now_ms: MODEL_NOW_MS,
            random: 0,
            ..ExecContext::default()
        };
        for (cmd, _) in &input.steps {
            store.execute(cmd, &ctx);
        }
        vec![self.save(&store)]
    }
}

fn one_key_command(name: &str, key: &Bytes, rest: &[Bytes]) -> Command {
    let mut args = vec![Bytes::copy_from_slice(name.as_bytes()), key.clone()];
    args.extend_from_slice(rest);
    Command::parse(&args).expect("projection is a valid command")
}

/// Projects one command and its reply (if seen) onto the keys of `universe`.
fn project(
    cmd: &Command,
    reply: Option<&Reply>,
    universe: &[Bytes],
    out: &mut BTreeMap<Bytes, Vec<(Command, Check)>>,
) {
    let check = |r: Option<Reply>| r.map_or(Check::Unchecked, Check::Exact);
    let args = cmd.to_args();
    match cmd.name() {
        "mset" => {
            for pair in args[1..].chunks(2) {
                let c = one_key_command("mset", &pair[0], &pair[1..]);
                out.entry(pair[0].clone())
                    .or_default()
                    .push((c, check(reply.cloned())));
            }
        }
        "mget" => {
            for (i, key) in args[1..].iter().enumerate() {
                let element = match reply {
                    Some(Reply::Array(items)) => {
                        items.get(i).cloned().map(|x| Reply::Array(vec![x]))
                    }
                    _ => None,
                };
                out.entry(key.clone())
                    .or_default()
                    .push((one_key_command("mget", key, &[]), check(element)));
            }
        }
        "del" | "exists" if args.len() > 2 => {
            for key in &args[1..] {
                out.entry(key.clone())
                    .or_default()
                    .push((one_key_command(cmd.name(), key, &[]), Check::Unchecked));
            }
        }
        "keys" => {
            for key in universe {
                let seen = match reply {
                    Some(Reply::Array(items)) => Some(items.contains(&Reply::Bulk(key.clone()))),
                    _ => None,
                };
                let expected = seen.map(|s| {
                    Reply::Array(if s {
                        vec![Reply::Bulk(key.clone())]
                    } else {
                        Vec::new()
                    })
                });
                let pattern = args[1..].to_vec();
                let c = Command::parse(&[&[Bytes::from_static(b"keys")][..], &pattern].concat())
                    .expect("valid");
                out.entry(key.clone())
                    .or_default()
                    .push((c, check(expected)));
            }
        }
        "flushdb" | "flushall" => {
            for key in universe {
                out.entry(key.clone())
                    .or_default()
                    .push((cmd.clone(), check(reply.cloned())));
            }
        }
        _ => {
            let keys = cmd.keys();
            if keys.len() == 1 {
                out.entry(keys[0].clone())
                    .or_default()
                    .push((cmd.clone(), check(reply.cloned())));
            }
            // Keyless reads (DBSIZE, SCAN, RANDOMKEY) are not checked per key.
        }
    }
}

/// Splits a history into per-key histories for the checker.
pub fn partition(
    history: &[HistoryOp],
    universe: &[Bytes],
) -> Vec<(KeyModel, Vec<Operation<KeyInput, ()>>)> {
    let mut per_key: BTreeMap<Bytes, Vec<Operation<KeyInput, ()>>> = BTreeMap::new();
    for op in history {
        let mut projected = BTreeMap::new();
        for (i, cmd) in op.cmds.iter().enumerate() {
            let reply = op.ret.as_ref().map(|(_, replies)| &replies[i]);
            project(cmd, reply, universe, &mut projected);
        }
        for (key, steps) in projected {
            let ret = op.ret.as_ref().map(|(t, _)| (*t, ()));
            let call = op.call_ms;
            per_key.entry(key).or_default().push(Operation {
                client: op.client as u64,
                input: KeyInput { steps },
                call,
                ret,
            });
        }
    }
    per_key
        .into_iter()
        .map(|(key, ops)| (KeyModel { key }, ops))
        .collect()
}
