//! SETRANGE, GETRANGE and SUBSTR against a real redis-server (L13 names SETRANGE): the same
//! commands sent to a tandem cluster and to redis-server give the same replies, errors
//! included, and leave the same values.

mod support;

use support::{Cluster, RedisServer};

#[test]
#[cfg_attr(
    not(has_redis_server),
    ignore = "needs redis-server on PATH (Debian package redis-server)"
)]
fn l13_setrange_and_getrange_match_redis_server() {
    let redis = RedisServer::start();
    let cluster = Cluster::start(2);
    let (mut ours, mut theirs) = (cluster.client(), redis.client());
    // Redis's proto-max-bulk-len is 512 MB, tandem's value limit 16 MiB: both refuse an
    // offset + length above 512 MB, and an overflowing one; between the two they differ by
    // configuration, not by semantics (crates/kv tests the limit itself).
    let commands: &[&[&str]] = &[
        &["SETRANGE", "k", "3", "abc"],
        &["GET", "k"],
        &["SETRANGE", "k", "1", "XY"],
        &["SETRANGE", "k", "5", "tail"],
        &["GET", "k"],
        &["STRLEN", "k"],
        &["SETRANGE", "k", "0", ""],
        &["SETRANGE", "empty", "10", ""],
        &["EXISTS", "empty"],
        &["SETRANGE", "k", "-1", "a"],
        &["SETRANGE", "k", "x", "a"],
        &["SETRANGE", "k", "9223372036854775808", "a"],
        &["SETRANGE", "k", "536870911", "ab"],
        &["SETRANGE", "k", "9223372036854775807", "a"],
        &["SETRANGE", "k", "1"],
        &["SETRANGE", "big", "100000", "end"],
        &["STRLEN", "big"],
        &["GETRANGE", "big", "99998", "-1"],
        &["RPUSH", "list", "a"],
        &["SETRANGE", "list", "0", "a"],
        &["SETRANGE", "list", "-1", "a"],
        &["SETRANGE", "list", "0", ""],
        &["GETRANGE", "list", "0", "1"],
        &["SET", "h", "Hello World"],
        &["GETRANGE", "h", "0", "4"],
        &["GETRANGE", "h", "-5", "-1"],
        &["GETRANGE", "h", "-1", "-5"],
        &["GETRANGE", "h", "5", "1"],
        &["GETRANGE", "h", "-100", "2"],
        &["GETRANGE", "h", "3", "-100"],
        &["GETRANGE", "h", "100", "200"],
        &["GETRANGE", "h", "0", "-1"],
        &["GETRANGE", "missing", "0", "-1"],
        &["GETRANGE", "h", "a", "1"],
        &["GETRANGE", "h", "0"],
        &["SUBSTR", "h", "6", "-1"],
        &["SET", "e", ""],
        &["GETRANGE", "e", "0", "-1"],
        &["SETRANGE", "e", "2", "x"],
        &["GET", "e"],
        &["SET", "ttl", "abc", "EX", "1000"],
        &["SETRANGE", "ttl", "1", "Z"],
        &["GET", "ttl"],
    ];
    for args in commands {
        let mine = ours.call(args).unwrap();
        let redis = theirs.call(args).unwrap();
        assert_eq!(mine, redis, "{args:?}");
    }
    let ttl = ours.call(&["TTL", "ttl"]).unwrap();
    assert!(
        matches!(ttl, tandem_resp::Frame::Integer(t) if t > 900),
        "SETRANGE keeps the TTL: {ttl:?}"
    );
}
