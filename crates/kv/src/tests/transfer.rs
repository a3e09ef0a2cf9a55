use bytes::Bytes;

use super::*;
use crate::{Chunk, Entry, Value};

/// A store with every value type, expiries, and an expired-but-unpurged key.
fn populated() -> Kv {
    let mut kv = Kv::new();
    for i in 0..200 {
        kv.setup(&[
            &format!("set s{i} value-{i}"),
            &format!("rpush l{i} a b {i}"),
            &format!("hset h{i} f {i} g x"),
        ]);
        if i % 3 == 0 {
            kv.setup(&[
                &format!("expire s{i} {}", i + 1),
                &format!("pexpire h{i} 1"),
            ]);
        }
    }
    kv.now_ms += 1;
    kv
}

fn copy_in_chunks(source: &Store, max_bytes: usize, max_entries: usize) -> (Store, usize) {
    let (mut target, mut after, mut sent, mut chunks) = (Store::new(), None, None, 0);
    loop {
        let Chunk {
            entries,
            last_key,
            last_sent,
            done,
        } = source.chunk_from(after.as_ref(), sent, max_bytes, max_entries);
        sent = last_sent;
        assert!(
            done || !entries.is_empty(),
            "a chunk that is not the last is never empty"
        );
        assert!(entries.len() <= max_entries.max(1));
        for (key, entry) in entries {
            target.insert_piece(key, entry);
        }
        chunks += 1;
        if done {
            return (target, chunks);
        }
        after = last_key;
    }
}

#[test]
fn chunks_rebuild_identical_digest() {
    let kv = populated();
    for (max_bytes, max_entries) in [(1, 1000), (500, 7), (usize::MAX, 65_536), (4096, 1)] {
        let (copy, chunks) = copy_in_chunks(&kv.store, max_bytes, max_entries);
        assert_eq!(
            copy.digest(),
            kv.store.digest(),
            "bytes {max_bytes} entries {max_entries}"
        );
        assert_eq!(copy.len(), kv.store.len());
        assert!(chunks >= 1);
        let now = kv.now_ms;
        assert_eq!(
            copy.expired_keys(now, 1000),
            kv.store.expired_keys(now, 1000),
            "expiries copied too"
        );
    }
}

#[test]
fn chunk_respects_byte_budget_but_always_moves_forward() {
    let kv = populated();
    let first = kv.store.chunk_after(None, 1, 100);
    assert_eq!(
        first.entries.len(),
        1,
        "an entry larger than max_bytes still goes alone"
    );
    assert_eq!(first.last_key.as_ref(), Some(&first.entries[0].0));
    assert!(!first.done);
    let second = kv.store.chunk_after(first.last_key.as_ref(), 300, 100);
    assert!(!second.entries.is_empty());
    assert_ne!(second.entries[0].0, first.entries[0].0);
}

#[test]
fn chunk_of_empty_store_is_done() {
    let chunk = Store::new().chunk_after(None, 100, 100);
    assert_eq!(
        chunk,
        Chunk {
            entries: Vec::new(),
            last_key: None,
            last_sent: None,
            done: true
        }
    );
}

#[test]
fn snapshot_clone_is_independent_of_later_writes() {
    let mut kv = populated();
    let snapshot = kv.store.clone();
    let digest = snapshot.digest();
    kv.setup(&["set s1 changed", "del l2", "hset h3 new field"]);
    assert_eq!(snapshot.digest(), digest);
    assert_ne!(kv.store.digest(), digest);
}

#[test]
fn digest_depends_on_contents_and_expiry() {
    let mut a = Kv::new();
    let mut b = Kv::new();
    a.setup(&["set k v"]);
    b.setup(&["set k v"]);
    assert_eq!(a.store.digest(), b.store.digest());
    b.setup(&["expire k 100"]);
    assert_ne!(a.store.digest(), b.store.digest());
    b.setup(&["persist k"]);
    assert_eq!(a.store.digest(), b.store.digest());
    b.setup(&["rpush k2 v"]);
    a.setup(&["set k2 v"]);
    assert_ne!(
        a.store.digest(),
        b.store.digest(),
        "same bytes, different type"
    );
    assert_ne!(Store::new().digest(), a.store.digest());
}

#[test]
fn digest_is_independent_of_insertion_order() {
    let mut a = Kv::new();
    let mut b = Kv::new();
    a.setup(&["set x 1", "set y 2", "hset h a 1 b 2"]);
    b.setup(&["hset h b 2 a 1", "set y 2", "set x 1"]);
    assert_eq!(a.store.digest(), b.store.digest());
}

#[test]
fn insert_entry_replaces_and_indexes_expiry() {
    let mut store = Store::new();
    let entry = Entry {
        value: Value::Str(Bytes::from("v")),
        expires_at_ms: Some(10),
    };
    store.insert_entry(Bytes::from("k"), entry);
    store.insert_entry(
        Bytes::from("k"),
        Entry::persistent(Value::Str(Bytes::from("w"))),
    );
    assert_eq!(store.len(), 1);
    assert!(store.expired_keys(100, 10).is_empty());
    assert!(store.approx_bytes() > 2);
}

#[test]
fn entries_and_commands_survive_postcard_round_trip() {
    let kv = populated();
    let chunk = kv.store.chunk_after(None, usize::MAX, 1000);
    let decoded: Chunk = postcard::from_bytes(&postcard::to_stdvec(&chunk).unwrap()).unwrap();
    assert_eq!(decoded, chunk);
    let command = cmd("set k v nx get px 5");
    let decoded: Command = postcard::from_bytes(&postcard::to_stdvec(&command).unwrap()).unwrap();
    assert_eq!(decoded, command);
    let reply = Reply::Map(vec![(bulk("f"), Reply::Array(vec![int(-1), Reply::Nil]))]);
    let decoded: Reply = postcard::from_bytes(&postcard::to_stdvec(&reply).unwrap()).unwrap();
    assert_eq!(decoded, reply);
}
