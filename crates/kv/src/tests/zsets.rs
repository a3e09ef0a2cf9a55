//! Sorted sets: replies (RESP-independent), memory accounting (L10), determinism of
//! ZRANDMEMBER (P5), the digest and state transfer, and the input bound of set operations.

use std::time::Instant;

use bytes::Bytes;

use super::*;
use crate::limits::value_bytes;
use crate::{Chunk, MAX_ZSET_OP_ELEMENTS, Value};

fn double(value: f64) -> Reply {
    Reply::Double(value)
}

fn pairs(items: &[(&str, f64)]) -> Reply {
    Reply::Pairs(items.iter().map(|(m, s)| (bulk(m), double(*s))).collect())
}

#[test]
fn zadd_options_and_replies() {
    let mut kv = Kv::new();
    assert_eq!(kv.call("zadd z 1 a 2 b"), int(2));
    assert_eq!(kv.call("zadd z ch 3 a 2 b 4 c"), int(2));
    assert_eq!(kv.call("zadd z nx 9 a 5 d"), int(1));
    assert_eq!(kv.call("zadd z xx 9 e"), int(0));
    assert_eq!(kv.call("zadd z gt ch 1 a 10 b"), int(1));
    assert_eq!(kv.call("zadd z incr 0.5 a"), double(3.5));
    assert_eq!(kv.call("zadd z incr nx 1 a"), Reply::Nil);
    assert_eq!(kv.call("zadd z incr lt 1 a"), Reply::Nil);
    assert_eq!(kv.call("zincrby z -1 a"), double(2.5));
    assert_eq!(
        kv.call("zrange z 0 -1 withscores"),
        pairs(&[("a", 2.5), ("c", 4.0), ("d", 5.0), ("b", 10.0)])
    );
    assert_eq!(kv.call("zadd nokey xx 1 a"), int(0));
    assert_eq!(kv.call("exists nokey"), int(0));
    assert_eq!(kv.call("type z"), Reply::Simple("zset".into()));
    assert_eq!(
        kv.call("zadd z nx xx 1 a"),
        err("ERR XX and NX options at the same time are not compatible")
    );
    assert_eq!(kv.call("zadd z 1 a 2"), err(SYNTAX));
    assert_eq!(
        kv.call("zadd z nan a"),
        err("ERR value is not a valid float")
    );
    kv.setup(&["zadd inf inf top"]);
    assert_eq!(
        kv.call("zincrby inf -inf top"),
        err("ERR resulting score is not a number (NaN)")
    );
    kv.setup(&["set s v"]);
    assert_eq!(kv.call("zadd s 1 a"), err(WRONGTYPE));
}

#[test]
fn ranges_by_rank_score_and_lex() {
    let mut kv = Kv::new();
    kv.setup(&["zadd z 1 a 2 b 3 c 4 d", "zadd l 0 a 0 b 0 c 0 d"]);
    assert_eq!(kv.call("zrange z 1 2"), bulks(&["b", "c"]));
    assert_eq!(kv.call("zrange z 0 0 rev"), bulks(&["d"]));
    assert_eq!(kv.call("zrangebyscore z (1 3"), bulks(&["b", "c"]));
    assert_eq!(kv.call("zrevrangebyscore z 3 (1"), bulks(&["c", "b"]));
    assert_eq!(
        kv.call("zrange z +inf -inf byscore rev limit 1 2"),
        bulks(&["c", "b"])
    );
    assert_eq!(kv.call("zrangebylex l [b (d"), bulks(&["b", "c"]));
    assert_eq!(kv.call("zrevrangebylex l + (b"), bulks(&["d", "c"]));
    assert_eq!(kv.call("zlexcount l - +"), int(4));
    assert_eq!(kv.call("zcount z -inf (3"), int(2));
    assert_eq!(kv.call("zrank z c"), int(2));
    assert_eq!(
        kv.call("zrevrank z c withscore"),
        Reply::Array(vec![int(1), double(3.0)])
    );
    assert_eq!(
        kv.call("zrange z 0 1 limit 0 1"),
        err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    );
    assert_eq!(kv.call("zrangestore d z 2 3 byscore"), int(2));
    assert_eq!(kv.call("zrange d 0 -1"), bulks(&["b", "c"]));
    assert_eq!(kv.call("zremrangebyrank z 0 1"), int(2));
    assert_eq!(kv.call("zremrangebylex l - [b"), int(2));
    assert_eq!(kv.call("zremrangebyscore z -inf +inf"), int(2));
    assert_eq!(kv.call("exists z"), int(0));
}

#[test]
fn pops_and_set_operations() {
    let mut kv = Kv::new();
    kv.setup(&["zadd a 1 x 2 y 3 z", "zadd b 10 y 20 z 30 w"]);
    assert_eq!(
        kv.call("zpopmin a"),
        Reply::Array(vec![bulk("x"), double(1.0)])
    );
    assert_eq!(kv.call("zpopmax a 1"), pairs(&[("z", 3.0)]));
    assert_eq!(
        kv.call("zmpop 2 nokey b max count 2"),
        Reply::Array(vec![
            bulk("b"),
            Reply::Array(vec![
                Reply::Array(vec![bulk("w"), double(30.0)]),
                Reply::Array(vec![bulk("z"), double(20.0)]),
            ]),
        ])
    );
    kv.setup(&["zadd a 1 x 3 z", "zadd b 30 w 20 z"]);
    assert_eq!(
        kv.call("zunion 2 a b weights 2 1 withscores"),
        pairs(&[("x", 2.0), ("y", 14.0), ("z", 26.0), ("w", 30.0)])
    );
    assert_eq!(
        kv.call("zinter 2 a b aggregate max withscores"),
        pairs(&[("y", 10.0), ("z", 20.0)])
    );
    assert_eq!(kv.call("zdiff 2 a b"), bulks(&["x"]));
    assert_eq!(kv.call("zinterstore out 2 a b"), int(2));
    assert_eq!(kv.call("zintercard 2 a b limit 1"), int(1));
    assert_eq!(kv.call("zunion 2 a b weights 1"), err(SYNTAX));
    assert_eq!(
        kv.call("zunion 0 a"),
        err("ERR at least 1 input key is needed for 'zunion' command")
    );
}

/// The primary's random number decides every draw; the same number gives the same reply.
#[test]
fn p5_zrandmember_depends_only_on_the_context() {
    let mut kv = Kv::new();
    let members: Vec<String> = (0..50).map(|i| format!("{i} m{i}")).collect();
    kv.setup(&[&format!("zadd z {}", members.join(" "))]);
    let mut draws = std::collections::BTreeSet::new();
    for random in [1u64, 2, 3, 0xdead_beef] {
        kv.random = random;
        let first = kv.call("zrandmember z 5");
        assert_eq!(kv.call("zrandmember z 5"), first, "same context, same draw");
        let Reply::Array(items) = &first else {
            panic!("an array: {first:?}")
        };
        let distinct: std::collections::BTreeSet<_> =
            items.iter().map(|i| format!("{i:?}")).collect();
        assert_eq!(distinct.len(), 5, "distinct members for a positive count");
        let Reply::Array(repeats) = kv.call("zrandmember z -80") else {
            panic!("an array")
        };
        assert_eq!(repeats.len(), 80);
        draws.insert(format!("{first:?}"));
    }
    assert!(draws.len() > 1, "different contexts draw differently");
}

#[test]
fn l10_memory_accounting_follows_every_change() {
    let mut kv = Kv::new();
    let lines = [
        "zadd z 1 a 2 bb 3 ccc",
        "zadd z 5 a",
        "zincrby z 1 dddd",
        "zrem z bb nobody",
        "zpopmin z",
        "zunionstore u 2 z z",
        "zrangestore r z 0 0",
        "zremrangebyscore u -inf 2",
        "zmpop 1 r min",
        "zadd z incr 1 eeeee",
    ];
    for line in lines {
        kv.call(line);
        assert_eq!(
            kv.store.used_memory(),
            kv.store.approx_bytes(),
            "after {line}"
        );
    }
}

fn zset_store() -> Kv {
    let mut kv = Kv::new();
    for i in 0..40 {
        let members: Vec<String> = (0..i).map(|j| format!("{}.5 member-{j}", j * i)).collect();
        if !members.is_empty() {
            kv.setup(&[&format!("zadd z{i} {}", members.join(" "))]);
        }
    }
    kv.setup(&["zadd inf -inf low inf high 0 zero"]);
    kv
}

#[test]
fn zsets_transfer_in_chunks_to_an_identical_digest() {
    let kv = zset_store();
    for max_bytes in [1, 100, 4096] {
        let (mut target, mut after, mut sent) = (Store::new(), None, None);
        loop {
            let Chunk {
                entries,
                last_key,
                last_sent,
                done,
            } = kv.store.chunk_from(after.as_ref(), sent, max_bytes, 1000);
            sent = last_sent;
            for (key, entry) in entries {
                target.insert_piece(key, entry);
            }
            if done {
                break;
            }
            after = last_key;
        }
        assert_eq!(target.digest(), kv.store.digest(), "max_bytes {max_bytes}");
        assert_eq!(target.used_memory(), kv.store.used_memory());
    }
}

#[test]
fn digest_hashes_scores_to_the_bit() {
    let (mut a, mut b) = (Kv::new(), Kv::new());
    a.setup(&["zadd z 0.30000000000000004 m"]);
    b.setup(&["zadd z 0.3 m"]);
    assert_ne!(a.store.digest(), b.store.digest());
    b.setup(&["zadd z 0.30000000000000004 m"]);
    assert_eq!(a.store.digest(), b.store.digest());
}

/// A zset from a peer is decoded with its bounds, and a NaN score is refused, not stored.
#[test]
fn zset_serde_round_trips_and_refuses_nan() {
    let kv = zset_store();
    let entry = kv
        .store
        .live(&Bytes::from("z7"), kv.now_ms)
        .expect("z7 exists");
    let encoded = postcard::to_allocvec(&entry.value).expect("encodes");
    let decoded: Value = postcard::from_bytes(&encoded).expect("decodes");
    assert_eq!(decoded, entry.value);
    assert_eq!(value_bytes(&decoded), value_bytes(&entry.value));
    // The ZSet variant's tag (as an empty one encodes), one member "m" with a NaN score.
    let empty = postcard::to_allocvec(&Value::ZSet(Box::default())).expect("encodes");
    let tag = empty[0];
    let mut bytes = vec![tag, 1, 1, b'm'];
    bytes.extend_from_slice(&f64::NAN.to_le_bytes());
    assert!(postcard::from_bytes::<Value>(&bytes).is_err());
    let mut good = vec![tag, 1, 1, b'm'];
    good.extend_from_slice(&1.5f64.to_le_bytes());
    assert!(postcard::from_bytes::<Value>(&good).is_ok());
}

#[test]
fn commands_round_trip_through_their_arguments() {
    for line in [
        "zadd k nx ch 1.5 a -inf b",
        "zadd k xx gt incr 2 a",
        "zincrby k 0.1 m",
        "zmscore k a b",
        "zcount k (1 +inf",
        "zlexcount k [a (b",
        "zrange k 0 -1 withscores",
        "zrange k 5 (1 byscore rev limit 1 2 withscores",
        "zrange k [z - bylex rev",
        "zrange k 0 -1 rev limit 3 -1",
        "zrevrange k 0 3 withscores",
        "zrangebyscore k -inf (2 withscores limit 0 5",
        "zrevrangebyscore k 10 1e300",
        "zrangebylex k - +",
        "zrevrangebylex k + [a limit 1 1",
        "zrangestore d k 1 (5 byscore rev",
        "zrank k m withscore",
        "zrevrank k m",
        "zrem k a b",
        "zremrangebyrank k 0 -1",
        "zremrangebyscore k 1 2",
        "zremrangebylex k - (c",
        "zpopmin k",
        "zpopmax k 3",
        "zmpop 2 a b max count 4",
        "zunion 2 a b weights 1 0.5 aggregate min withscores",
        "zinterstore d 2 a b aggregate max",
        "zdiffstore d 1 a",
        "zintercard 2 a b limit 3",
        "zrandmember k -3 withscores",
        "zscan k 5 match a* count 7",
    ] {
        let original = cmd(line);
        let again = Command::parse(&original.to_args());
        assert_eq!(again, Ok(original.clone()), "{line}");
        assert!(!original.keys().is_empty(), "{line} has keys");
    }
    assert_eq!(
        cmd("zunionstore d 2 a b").keys(),
        vec![&Bytes::from("d"), &Bytes::from("a"), &Bytes::from("b")]
    );
}

/// Issue 14's performance rule: the largest set operation tandem allows, timed; one element
/// more is refused before any work.
#[test]
fn zunionstore_at_the_input_bound_is_timed() {
    let mut kv = Kv::new();
    let half = MAX_ZSET_OP_ELEMENTS / 2;
    for (key, offset) in [("a", 0), ("b", half / 2)] {
        for batch in 0..half / 10_000 {
            let members: Vec<String> = (0..10_000)
                .map(|i| {
                    let n = offset + batch * 10_000 + i;
                    format!("{n} m{n}")
                })
                .collect();
            kv.setup(&[&format!("zadd {key} {}", members.join(" "))]);
        }
    }
    let started = Instant::now();
    let reply = kv.call("zunionstore out 2 a b");
    let elapsed = started.elapsed();
    assert_eq!(reply, int((half + half / 2) as i64));
    eprintln!(
        "zunionstore of {} input elements took {elapsed:?}",
        2 * half
    );
    kv.setup(&["zadd b -1 one-more"]);
    assert_eq!(
        kv.call("zunionstore out 2 a b"),
        err(&format!(
            "ERR sorted set operation over more than {MAX_ZSET_OP_ELEMENTS} elements (tandem's bound per command)"
        ))
    );
}
