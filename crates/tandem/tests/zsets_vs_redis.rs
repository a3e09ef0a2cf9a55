//! Sorted sets against a real redis-server (issue 14): the same commands sent to a tandem
//! cluster and to redis-server give the same replies, errors included, in RESP2 and in RESP3
//! (after `HELLO 3`: doubles, pairs as two-element arrays).
//!
//! RESP2 compares the exact text of every score (Redis 7.0 prints `%.17g`); RESP3 compares
//! doubles by value (tandem writes the shortest text that parses back to the same double, as
//! Redis 7.2 does). Keys share the hash tag `{z}` so every multi-key command stays in one slot.

mod support;

use support::{Cluster, RedisServer, RespClient};
use tandem_resp::Frame;

/// Commands whose replies are deterministic; run in order against both servers.
const SCRIPT: &[&[&str]] = &[
    // ZADD and its options.
    &["ZADD", "{z}a", "1", "one", "2", "two", "3", "three"],
    &["ZADD", "{z}a", "1", "one"],
    &["ZADD", "{z}a", "CH", "5", "one", "2", "two", "9", "nine"],
    &["ZADD", "{z}a", "NX", "100", "one", "4", "four"],
    &["ZADD", "{z}a", "XX", "100", "one", "4", "forty"],
    &["ZADD", "{z}a", "GT", "CH", "1", "one", "200", "two"],
    &["ZADD", "{z}a", "LT", "CH", "1", "one", "300", "two"],
    &["ZADD", "{z}a", "XX", "NX", "1", "one"],
    &["ZADD", "{z}a", "GT", "LT", "1", "one"],
    &["ZADD", "{z}a", "NX", "GT", "1", "one"],
    &["ZADD", "{z}a", "INCR", "1", "one", "2", "two"],
    &["ZADD", "{z}a", "1", "one", "2"],
    &["ZADD", "{z}a", "NX"],
    &["ZADD", "{z}a", "x", "one"],
    &["ZADD", "{z}a", "nan", "one"],
    &["ZADD", "{z}a", "1e400", "one"],
    &["ZADD", "{z}a", " 1", "one"],
    &["ZADD", "{z}a", "INCR", "2.5", "one"],
    &["ZADD", "{z}a", "INCR", "NX", "2.5", "one"],
    &["ZADD", "{z}a", "INCR", "XX", "2.5", "newcomer"],
    &["ZADD", "{z}a", "INCR", "GT", "-1", "one"],
    &["ZADD", "{z}missing", "XX", "1", "x"],
    &["EXISTS", "{z}missing"],
    &[
        "ZADD", "{z}inf", "inf", "top", "-inf", "bottom", "0", "zero", "-0", "negzero",
    ],
    &["ZADD", "{z}inf", "INCR", "-inf", "top"],
    &["ZINCRBY", "{z}inf", "inf", "bottom"],
    &["ZINCRBY", "{z}inf", "1.5", "zero"],
    &["ZINCRBY", "{z}inf", "abc", "zero"],
    &["ZRANGE", "{z}inf", "0", "-1", "WITHSCORES"],
    &["ZSCORE", "{z}inf", "negzero"],
    // Reads.
    &["ZSCORE", "{z}a", "one"],
    &["ZSCORE", "{z}a", "nobody"],
    &["ZSCORE", "{z}nokey", "one"],
    &["ZMSCORE", "{z}a", "one", "nobody", "two"],
    &["ZMSCORE", "{z}nokey", "one"],
    &["ZCARD", "{z}a"],
    &["ZCARD", "{z}nokey"],
    &["ZCOUNT", "{z}a", "-inf", "+inf"],
    &["ZCOUNT", "{z}a", "(1", "9"],
    &["ZCOUNT", "{z}a", "(3.5", "(9"],
    &["ZCOUNT", "{z}a", "9", "1"],
    &["ZCOUNT", "{z}a", "x", "1"],
    &["ZCOUNT", "{z}a", "", ""],
    &["ZRANGE", "{z}a", "0", "-1"],
    &["ZRANGE", "{z}a", "0", "-1", "WITHSCORES"],
    &["ZRANGE", "{z}a", "-2", "-1", "WITHSCORES"],
    &["ZRANGE", "{z}a", "1", "100"],
    &["ZRANGE", "{z}a", "5", "1"],
    &["ZRANGE", "{z}a", "100", "200"],
    &["ZRANGE", "{z}a", "0", "-1", "REV"],
    &["ZRANGE", "{z}a", "0", "1", "REV", "WITHSCORES"],
    &["ZRANGE", "{z}a", "0", "-1", "LIMIT", "1", "2"],
    &["ZRANGE", "{z}a", "0", "-1", "LIMIT", "1", "-1"],
    &["ZRANGE", "{z}a", "a", "1"],
    &["ZRANGE", "{z}a", "0", "-1", "BYSCORE", "BYLEX"],
    &["ZRANGE", "{z}a", "0", "-1", "FOO"],
    &["ZRANGE", "{z}a", "-inf", "+inf", "BYSCORE"],
    &["ZRANGE", "{z}a", "(2", "9", "BYSCORE", "WITHSCORES"],
    &["ZRANGE", "{z}a", "9", "(2", "BYSCORE", "REV", "WITHSCORES"],
    &["ZRANGE", "{z}a", "(2", "9", "BYSCORE", "REV"],
    &[
        "ZRANGE", "{z}a", "-inf", "+inf", "BYSCORE", "LIMIT", "1", "2",
    ],
    &[
        "ZRANGE", "{z}a", "-inf", "+inf", "BYSCORE", "LIMIT", "10", "2",
    ],
    &[
        "ZRANGE", "{z}a", "-inf", "+inf", "BYSCORE", "LIMIT", "-1", "2",
    ],
    &[
        "ZRANGE", "{z}a", "-inf", "+inf", "BYSCORE", "LIMIT", "0", "-5",
    ],
    &[
        "ZRANGE", "{z}a", "-inf", "+inf", "BYSCORE", "LIMIT", "0", "0",
    ],
    &[
        "ZRANGE", "{z}a", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "1", "1",
    ],
    &["ZRANGE", "{z}a", "x", "1", "BYSCORE"],
    &["ZRANGE", "{z}a", "-", "+", "BYLEX", "WITHSCORES"],
    &["ZRANGE", "{z}a", "0", "-1", "LIMIT", "1"],
    &["ZRANGE", "{z}nokey", "0", "-1"],
    &["ZRANGEBYSCORE", "{z}a", "-inf", "+inf", "WITHSCORES"],
    &[
        "ZRANGEBYSCORE",
        "{z}a",
        "2",
        "4",
        "LIMIT",
        "0",
        "1",
        "WITHSCORES",
    ],
    &["ZRANGEBYSCORE", "{z}a", "2", "4", "REV"],
    &["ZRANGEBYSCORE", "{z}a", "(2", "(2"],
    &["ZREVRANGEBYSCORE", "{z}a", "+inf", "-inf", "WITHSCORES"],
    &["ZREVRANGEBYSCORE", "{z}a", "4", "(2"],
    &["ZREVRANGEBYSCORE", "{z}a", "2", "4"],
    &[
        "ZREVRANGEBYSCORE",
        "{z}a",
        "+inf",
        "-inf",
        "LIMIT",
        "1",
        "2",
    ],
    &["ZREVRANGE", "{z}a", "0", "-1", "WITHSCORES"],
    &["ZREVRANGE", "{z}a", "0", "1", "LIMIT", "0", "1"],
    &["ZRANK", "{z}a", "two"],
    &["ZRANK", "{z}a", "nobody"],
    &["ZRANK", "{z}nokey", "two"],
    &["ZREVRANK", "{z}a", "two"],
    &["ZREVRANK", "{z}a", "nine"],
    // Lex ranges (equal scores).
    &[
        "ZADD", "{z}lex", "0", "a", "0", "b", "0", "c", "0", "d", "0", "e", "0", "ff",
    ],
    &["ZRANGEBYLEX", "{z}lex", "-", "+"],
    &["ZRANGEBYLEX", "{z}lex", "[b", "(e"],
    &["ZRANGEBYLEX", "{z}lex", "(b", "[e", "LIMIT", "1", "2"],
    &["ZRANGEBYLEX", "{z}lex", "[f", "+"],
    &["ZRANGEBYLEX", "{z}lex", "+", "-"],
    &["ZRANGEBYLEX", "{z}lex", "b", "e"],
    &["ZRANGEBYLEX", "{z}lex", "-", "+", "WITHSCORES"],
    &["ZRANGEBYLEX", "{z}lex", "[", "[c"],
    &["ZREVRANGEBYLEX", "{z}lex", "+", "-"],
    &["ZREVRANGEBYLEX", "{z}lex", "(e", "[b"],
    &["ZREVRANGEBYLEX", "{z}lex", "+", "-", "LIMIT", "2", "10"],
    &["ZRANGE", "{z}lex", "[e", "-", "BYLEX", "REV"],
    &["ZRANGE", "{z}lex", "-", "[c", "BYLEX", "LIMIT", "1", "5"],
    &["ZLEXCOUNT", "{z}lex", "-", "+"],
    &["ZLEXCOUNT", "{z}lex", "(a", "[d"],
    &["ZLEXCOUNT", "{z}lex", "a", "[d"],
    &["ZLEXCOUNT", "{z}nokey", "-", "+"],
    // ZRANGESTORE.
    &["ZRANGESTORE", "{z}dst", "{z}a", "0", "1"],
    &["ZRANGE", "{z}dst", "0", "-1", "WITHSCORES"],
    &[
        "ZRANGESTORE",
        "{z}dst",
        "{z}a",
        "+inf",
        "(2",
        "BYSCORE",
        "REV",
        "LIMIT",
        "0",
        "2",
    ],
    &["ZRANGE", "{z}dst", "0", "-1", "WITHSCORES"],
    &["ZRANGESTORE", "{z}dst", "{z}lex", "[b", "[d", "BYLEX"],
    &["ZRANGE", "{z}dst", "0", "-1"],
    &["ZRANGESTORE", "{z}dst", "{z}a", "0", "-1", "WITHSCORES"],
    &["ZRANGESTORE", "{z}dst", "{z}nokey", "0", "-1"],
    &["EXISTS", "{z}dst"],
    // Removal.
    &[
        "ZADD", "{z}r", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e", "6", "f",
    ],
    &["ZREM", "{z}r", "a", "nobody", "a"],
    &["ZREM", "{z}nokey", "a"],
    &["ZREMRANGEBYRANK", "{z}r", "0", "0"],
    &["ZREMRANGEBYRANK", "{z}r", "-1", "-1"],
    &["ZREMRANGEBYRANK", "{z}r", "5", "10"],
    &["ZREMRANGEBYRANK", "{z}r", "x", "1"],
    &["ZREMRANGEBYSCORE", "{z}r", "(3", "4"],
    &["ZREMRANGEBYSCORE", "{z}r", "x", "4"],
    &["ZRANGE", "{z}r", "0", "-1", "WITHSCORES"],
    &["ZREMRANGEBYLEX", "{z}lex", "[a", "(c"],
    &["ZREMRANGEBYLEX", "{z}lex", "a", "(c"],
    &["ZRANGE", "{z}lex", "0", "-1"],
    &["ZREMRANGEBYSCORE", "{z}r", "-inf", "+inf"],
    &["EXISTS", "{z}r"],
    // Pops.
    &[
        "ZADD", "{z}p", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e",
    ],
    &["ZPOPMIN", "{z}p"],
    &["ZPOPMAX", "{z}p"],
    &["ZPOPMIN", "{z}p", "2"],
    &["ZPOPMAX", "{z}p", "0"],
    &["ZPOPMIN", "{z}p", "-1"],
    &["ZPOPMIN", "{z}p", "x"],
    &["ZPOPMIN", "{z}p", "1", "2"],
    &["ZPOPMAX", "{z}p", "10"],
    &["EXISTS", "{z}p"],
    &["ZPOPMIN", "{z}nokey"],
    &["ZPOPMIN", "{z}nokey", "3"],
    &["ZADD", "{z}p", "1", "a", "2", "b", "3", "c"],
    &["ZMPOP", "2", "{z}nokey", "{z}p", "MIN"],
    &["ZMPOP", "2", "{z}nokey", "{z}p", "MAX", "COUNT", "5"],
    &["ZMPOP", "1", "{z}p", "MIN"],
    &["ZMPOP", "0", "{z}p", "MIN"],
    &["ZMPOP", "3", "{z}p", "MIN"],
    &["ZMPOP", "1", "{z}p", "SIDEWAYS"],
    &["ZMPOP", "1", "{z}p", "MIN", "COUNT", "0"],
    &["ZMPOP", "1", "{z}p", "MIN", "COUNT"],
    &["ZMPOP", "x", "{z}p", "MIN"],
    // Set operations.
    &["ZADD", "{z}s1", "1", "a", "2", "b", "3", "c"],
    &["ZADD", "{z}s2", "10", "b", "20", "c", "30", "d"],
    &["ZADD", "{z}s3", "inf", "c", "-inf", "d"],
    &["ZUNION", "2", "{z}s1", "{z}s2"],
    &["ZUNION", "2", "{z}s1", "{z}s2", "WITHSCORES"],
    &[
        "ZUNION",
        "2",
        "{z}s1",
        "{z}s2",
        "WEIGHTS",
        "2",
        "0.5",
        "WITHSCORES",
    ],
    &[
        "ZUNION",
        "2",
        "{z}s1",
        "{z}s2",
        "AGGREGATE",
        "MIN",
        "WITHSCORES",
    ],
    &[
        "ZUNION",
        "2",
        "{z}s1",
        "{z}s2",
        "AGGREGATE",
        "MAX",
        "WITHSCORES",
    ],
    &["ZUNION", "3", "{z}s1", "{z}s2", "{z}s3", "WITHSCORES"],
    &[
        "ZUNION",
        "2",
        "{z}s3",
        "{z}s3",
        "WEIGHTS",
        "1",
        "-1",
        "WITHSCORES",
    ],
    &[
        "ZUNION",
        "2",
        "{z}s3",
        "{z}s1",
        "WEIGHTS",
        "0",
        "1",
        "WITHSCORES",
    ],
    &["ZUNION", "2", "{z}s1", "{z}s2", "WEIGHTS", "1"],
    &["ZUNION", "2", "{z}s1", "{z}s2", "WEIGHTS", "1", "2", "3"],
    &["ZUNION", "2", "{z}s1", "{z}s2", "WEIGHTS", "1", "x"],
    &["ZUNION", "2", "{z}s1", "{z}s2", "AGGREGATE", "AVG"],
    &["ZUNION", "2", "{z}s1", "{z}s2", "AGGREGATE"],
    &["ZUNION", "0", "{z}s1"],
    &["ZUNION", "3", "{z}s1", "{z}s2"],
    &["ZUNION", "x", "{z}s1"],
    &["ZUNION", "2", "{z}s1", "{z}nokey", "WITHSCORES"],
    &["ZINTER", "2", "{z}s1", "{z}s2", "WITHSCORES"],
    &[
        "ZINTER",
        "2",
        "{z}s1",
        "{z}s2",
        "WEIGHTS",
        "3",
        "1",
        "AGGREGATE",
        "MAX",
        "WITHSCORES",
    ],
    &["ZINTER", "3", "{z}s1", "{z}s2", "{z}s3", "WITHSCORES"],
    &["ZINTER", "2", "{z}s1", "{z}nokey"],
    &["ZDIFF", "2", "{z}s1", "{z}s2", "WITHSCORES"],
    // A plain set is an input of score 1.
    &["SADD", "{z}plain", "a", "d", "e"],
    &["ZUNION", "2", "{z}s1", "{z}plain", "WITHSCORES"],
    &[
        "ZINTER",
        "2",
        "{z}plain",
        "{z}s2",
        "WEIGHTS",
        "2",
        "3",
        "WITHSCORES",
    ],
    &["ZDIFF", "2", "{z}plain", "{z}s1", "WITHSCORES"],
    &["ZINTERCARD", "2", "{z}plain", "{z}s1"],
    &["ZUNIONSTORE", "{z}fromplain", "1", "{z}plain"],
    &["ZRANGE", "{z}fromplain", "0", "-1", "WITHSCORES"],
    &["ZDIFF", "1", "{z}s1"],
    &["ZDIFF", "2", "{z}nokey", "{z}s1"],
    &["ZDIFF", "2", "{z}s1", "{z}s2", "WEIGHTS", "1", "2"],
    &["ZDIFF", "2", "{z}s1", "{z}s2", "AGGREGATE", "MIN"],
    &[
        "ZUNIONSTORE",
        "{z}out",
        "2",
        "{z}s1",
        "{z}s2",
        "WEIGHTS",
        "1",
        "2",
    ],
    &["ZRANGE", "{z}out", "0", "-1", "WITHSCORES"],
    &["ZUNIONSTORE", "{z}out", "2", "{z}s1", "{z}s2", "WITHSCORES"],
    &[
        "ZINTERSTORE",
        "{z}out",
        "2",
        "{z}s1",
        "{z}s2",
        "AGGREGATE",
        "MIN",
    ],
    &["ZRANGE", "{z}out", "0", "-1", "WITHSCORES"],
    &["ZINTERSTORE", "{z}out", "2", "{z}s1", "{z}nokey"],
    &["EXISTS", "{z}out"],
    &["ZDIFFSTORE", "{z}out", "2", "{z}s2", "{z}s1"],
    &["ZRANGE", "{z}out", "0", "-1", "WITHSCORES"],
    &["ZUNIONSTORE", "{z}s1", "2", "{z}s1", "{z}s2"],
    &["ZRANGE", "{z}s1", "0", "-1", "WITHSCORES"],
    &["ZUNIONSTORE", "{z}out", "0", "{z}s1"],
    &["ZINTERSTORE", "{z}out", "0", "{z}s1"],
    &["ZDIFFSTORE", "{z}out", "0", "{z}s1"],
    &["ZINTERCARD", "2", "{z}s1", "{z}s2"],
    &["ZINTERCARD", "2", "{z}s1", "{z}s2", "LIMIT", "1"],
    &["ZINTERCARD", "2", "{z}s1", "{z}s2", "LIMIT", "0"],
    &["ZINTERCARD", "2", "{z}s1", "{z}s2", "LIMIT", "-1"],
    &["ZINTERCARD", "2", "{z}s1", "{z}nokey"],
    &["ZINTERCARD", "0", "{z}s1"],
    &["ZINTERCARD", "2", "{z}s1"],
    &["ZINTERCARD", "1", "{z}s1", "WITHSCORES"],
    // ZRANDMEMBER: only the answers that do not depend on the random draw.
    &["ZRANDMEMBER", "{z}nokey"],
    &["ZRANDMEMBER", "{z}nokey", "3"],
    &["ZRANDMEMBER", "{z}s2", "0"],
    &["ZRANDMEMBER", "{z}s2", "10"],
    &["ZRANDMEMBER", "{z}s2", "3", "WITHSCORES"],
    &["ZRANDMEMBER", "{z}s2", "x"],
    &["ZRANDMEMBER", "{z}s2", "1", "SCORES"],
    &["ZRANDMEMBER", "{z}s2", "-9223372036854775807", "WITHSCORES"],
    // ZSCAN (a small set comes whole, in score order).
    &[
        "ZADD",
        "{z}scan",
        "1.5",
        "x",
        "2",
        "y",
        "123456789012345678",
        "big",
        "0.25",
        "q",
    ],
    &["ZSCAN", "{z}scan", "0"],
    &["ZSCAN", "{z}scan", "0", "MATCH", "b*"],
    &["ZSCAN", "{z}scan", "0", "COUNT", "1"],
    &["ZSCAN", "{z}scan", "0", "COUNT", "0"],
    &["ZSCAN", "{z}scan", "0", "NOVALUES"],
    &["ZSCAN", "{z}scan", "x"],
    &["ZSCAN", "{z}nokey", "0"],
    // Wrong types, TYPE, arity.
    &["SET", "{z}str", "v"],
    &["ZADD", "{z}str", "1", "a"],
    &["ZSCORE", "{z}str", "a"],
    &["ZRANGE", "{z}str", "0", "-1"],
    &["ZUNION", "2", "{z}s2", "{z}str"],
    &["ZUNIONSTORE", "{z}out", "1", "{z}str"],
    &["ZRANGESTORE", "{z}out", "{z}str", "0", "-1"],
    &["ZMPOP", "1", "{z}str", "MIN"],
    &["ZINTERCARD", "1", "{z}str"],
    &["ZRANDMEMBER", "{z}str"],
    &["ZSCAN", "{z}str", "0"],
    &["ZPOPMIN", "{z}str"],
    &["LPUSH", "{z}s2", "x"],
    &["ZUNIONSTORE", "{z}str", "1", "{z}s2"],
    &["TYPE", "{z}str"],
    &["TYPE", "{z}s2"],
    &["ZADD", "{z}a"],
    &["ZSCORE", "{z}a"],
    &["ZCARD"],
    &["ZRANGE", "{z}a", "0"],
    &["ZINCRBY", "{z}a", "1"],
    &["ZREMRANGEBYRANK", "{z}a", "0"],
];

/// Sends `args` to both servers; a difference is described in `mismatches`.
fn compare(
    ours: &mut RespClient,
    theirs: &mut RespClient,
    args: &[&str],
    proto: &str,
    mismatches: &mut Vec<String>,
) {
    let mine = ours.call(args).unwrap();
    let redis = theirs.call(args).unwrap();
    if mine != redis {
        mismatches.push(format!(
            "RESP{proto} {args:?}\n  tandem: {mine:?}\n  redis:  {redis:?}"
        ));
    }
}

/// The number of elements of an array reply.
fn array_len(frame: &Frame) -> usize {
    match frame {
        Frame::Array(items) => items.len(),
        other => panic!("not an array: {other:?}"),
    }
}

#[test]
#[cfg_attr(
    not(has_redis_server),
    ignore = "needs redis-server on PATH (Debian package redis-server)"
)]
fn sorted_sets_match_redis_server_in_resp2_and_resp3() {
    let redis = RedisServer::start();
    let cluster = Cluster::start(2);
    for proto in ["2", "3"] {
        let (mut ours, mut theirs) = (cluster.client(), redis.client());
        for client in [&mut ours, &mut theirs] {
            assert!(!matches!(
                client.call(&["HELLO", proto]).unwrap(),
                Frame::Error(_)
            ));
            assert_eq!(
                client.call(&["FLUSHALL"]).unwrap(),
                Frame::Simple("OK".into())
            );
        }
        let mut mismatches = Vec::new();
        for args in SCRIPT {
            compare(&mut ours, &mut theirs, args, proto, &mut mismatches);
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
        if proto == "3" {
            let score = ours.call(&["ZSCORE", "{z}scan", "x"]).unwrap();
            assert_eq!(score, Frame::Double(1.5), "RESP3 answers a double");
        }
        // Random draws: compare their shape, not their members.
        for args in [
            &["ZRANDMEMBER", "{z}scan"][..],
            &["ZRANDMEMBER", "{z}scan", "2"],
            &["ZRANDMEMBER", "{z}scan", "-7"],
            &["ZRANDMEMBER", "{z}scan", "-7", "WITHSCORES"],
        ] {
            let (mine, redis) = (ours.call(args).unwrap(), theirs.call(args).unwrap());
            match (&mine, &redis) {
                (Frame::Bulk(_), Frame::Bulk(_)) => {}
                _ => assert_eq!(array_len(&mine), array_len(&redis), "{proto} {args:?}"),
            }
        }
        let distinct = ours.call(&["ZRANDMEMBER", "{z}scan", "3"]).unwrap();
        let Frame::Array(members) = distinct else {
            panic!("ZRANDMEMBER with a count answers an array: {distinct:?}");
        };
        let unique: std::collections::BTreeSet<_> =
            members.iter().map(|m| format!("{m:?}")).collect();
        assert_eq!(unique.len(), 3, "a positive count draws distinct members");
    }
}
