//! Redis Cluster clients against tandem servers' client ports (`--client-listen`): three
//! groups of two servers each, the slots spread over them, then redis-py's `RedisCluster`,
//! `redis-cli -c` and `redis-benchmark --cluster` used unchanged (S1, S4, S8), the CLUSTER
//! commands compared with each other, the command table with redis-server's, and a primary
//! killed under a cluster client.
//!
//! Outside tools (redis-cli, redis-benchmark, redis-server, python3 with redis-py) are probed
//! by the build script: a test whose tool is missing is ignored with the reason, and fails under
//! CI (ARCHITECTURE.md).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::sharded::{GROUP_SIZE, Sharded, cluster_text};
use support::{RedisServer, RespClient, wait_for};
use tandem_resp::Frame;

fn run(program: &str, args: &[String]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn python(args: &[String]) -> (bool, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster_clients.py");
    let mut full = vec![script.to_owned()];
    full.extend_from_slice(args);
    run("python3", &full)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The indexes a `write` run of the helper acknowledged.
fn acknowledged(output: &str) -> BTreeSet<u64> {
    output
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
#[cfg_attr(
    not(all(has_redis_py, has_redis_cli, has_redis_benchmark)),
    ignore = "needs python3 with redis-py, redis-cli and redis-benchmark (redis-tools)"
)]
fn s4_cluster_clients_work_unchanged_against_three_groups() {
    let cluster = Sharded::start(3);
    let port = cluster.client_ports[0];

    // S1, S4: redis-py's RedisCluster writes and reads back 1,000 keys spread over every
    // group, and a pipeline over many slots.
    let (ok, out) = python(&strings(&["write", &port.to_string(), "0", "1000", "60"]));
    assert!(ok, "{out}");
    assert_eq!(
        acknowledged(&out).len(),
        1000,
        "every write acknowledged: {out}"
    );
    let (ok, out) = python(&strings(&["check", &port.to_string(), "0", "1000", "30"]));
    assert!(
        ok && out.contains("DONE") && !out.contains("MISSING"),
        "{out}"
    );
    let (ok, out) = python(&strings(&["pipeline", &port.to_string()]));
    assert!(ok && out.contains("DONE"), "{out}");
    // Every group holds some of them: the keys really are spread.
    for group in 0..cluster.groups {
        let primary = cluster.primary_of(group).expect("a primary");
        let mut client = RespClient::connect(cluster.client_ports[primary]).unwrap();
        match client.call(&["DBSIZE"]).unwrap() {
            Frame::Integer(n) => assert!(n > 100, "group {group} holds {n} keys"),
            other => panic!("DBSIZE: {other:?}"),
        }
    }

    // redis-cli -c follows a MOVED: ask a server that does not own key:0's slot.
    let slot = match RespClient::connect(port)
        .unwrap()
        .call(&["CLUSTER", "KEYSLOT", "key:0"])
        .unwrap()
    {
        Frame::Integer(slot) => slot,
        other => panic!("KEYSLOT: {other:?}"),
    };
    let elsewhere = cluster
        .client_ports
        .iter()
        .copied()
        .find(|&p| {
            RespClient::connect(p)
                .and_then(|mut c| c.call(&["GET", "key:0"]))
                .is_ok_and(
                    |f| matches!(f, Frame::Error(e) if e.starts_with(&format!("MOVED {slot} "))),
                )
        })
        .expect("some server answers MOVED for key:0");
    let (ok, out) = run(
        "redis-cli",
        &strings(&["-c", "-p", &elsewhere.to_string(), "GET", "key:0"]),
    );
    assert!(ok && out.trim() == "value:0", "redis-cli -c: {out}");
    let (ok, out) = run(
        "redis-cli",
        &strings(&["-c", "-p", &elsewhere.to_string(), "SET", "key:0", "again"]),
    );
    assert!(ok && out.trim() == "OK", "redis-cli -c SET: {out}");

    // redis-benchmark --cluster: 20,000 SETs and GETs with no error.
    let (ok, out) = run(
        "redis-benchmark",
        &strings(&[
            "--cluster",
            "-p",
            &port.to_string(),
            "-t",
            "set,get",
            "-n",
            "20000",
            "-c",
            "20",
            "-q",
        ]),
    );
    assert!(ok, "redis-benchmark: {out}");
    assert!(
        out.contains("SET:") && out.contains("GET:") && !out.contains("rror"),
        "redis-benchmark output: {out}"
    );
}

/// Parses `CLUSTER NODES`: node id -> (address, flags, primary id, slot ranges).
fn parse_nodes(text: &str) -> BTreeMap<String, (String, String, String, Vec<String>)> {
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            assert!(fields.len() >= 8, "CLUSTER NODES line: {line}");
            let addr = fields[1].split('@').next().unwrap().to_owned();
            (
                fields[0].to_owned(),
                (
                    addr,
                    fields[2].replace("myself,", ""),
                    fields[3].to_owned(),
                    fields[8..].iter().map(|s| s.to_string()).collect(),
                ),
            )
        })
        .collect()
}

#[test]
fn s2_cluster_slots_nodes_shards_and_info_agree() {
    let cluster = Sharded::start(3);
    let port = cluster.client_ports[1];
    let nodes_text = cluster_text(port, "NODES");
    assert_eq!(
        nodes_text.lines().filter(|l| l.contains("myself")).count(),
        1,
        "{nodes_text}"
    );
    let nodes = parse_nodes(&nodes_text);
    assert_eq!(nodes.len(), 6, "{nodes_text}");
    let mut client = RespClient::connect(port).unwrap();
    // CLUSTER MYID names this server's line.
    let Frame::Bulk(myid) = client.call(&["CLUSTER", "MYID"]).unwrap() else {
        panic!("MYID")
    };
    let myid = String::from_utf8(myid.to_vec()).unwrap();
    assert!(
        nodes_text
            .lines()
            .any(|l| l.starts_with(&myid) && l.contains("myself"))
    );
    assert!(nodes[&myid].0.ends_with(&format!(":{port}")));

    // CLUSTER SLOTS: full coverage, ascending, each range's primary and backup as NODES says.
    let Frame::Array(ranges) = client.call(&["CLUSTER", "SLOTS"]).unwrap() else {
        panic!("SLOTS")
    };
    let mut next = 0;
    let mut from_slots: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for range in &ranges {
        let Frame::Array(entry) = range else {
            panic!("range")
        };
        let (Frame::Integer(start), Frame::Integer(end)) = (&entry[0], &entry[1]) else {
            panic!("bounds: {entry:?}")
        };
        assert_eq!(*start, next, "no hole, no overlap");
        next = end + 1;
        assert_eq!(
            entry.len(),
            2 + GROUP_SIZE,
            "a primary and its backup: {entry:?}"
        );
        let mut members = Vec::new();
        for node in &entry[2..] {
            let Frame::Array(node) = node else {
                panic!("node")
            };
            let (Frame::Bulk(host), Frame::Integer(node_port), Frame::Bulk(id)) =
                (&node[0], &node[1], &node[2])
            else {
                panic!("node shape: {node:?}")
            };
            let id = String::from_utf8(id.to_vec()).unwrap();
            let addr = format!("{}:{node_port}", String::from_utf8_lossy(host));
            assert_eq!(nodes[&id].0, addr, "same address in SLOTS and NODES");
            members.push(id);
        }
        let primary = &members[0];
        assert_eq!(nodes[primary].1, "master");
        assert_eq!(nodes[&members[1]].1, "slave");
        assert_eq!(
            &nodes[&members[1]].2, primary,
            "the backup names its primary"
        );
        let label = if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        };
        from_slots.entry(primary.clone()).or_default().push(label);
    }
    assert_eq!(next, 16384, "CLUSTER SLOTS covers every slot");
    for (id, (_, flags, _, slots)) in &nodes {
        if flags == "master" {
            // A primary serving no slot (yet) has none in either.
            assert_eq!(
                from_slots.get(id).cloned().unwrap_or_default(),
                *slots,
                "NODES and SLOTS agree on {id}"
            );
        }
    }

    // CLUSTER SHARDS: one shard per group, with the same nodes.
    let Frame::Array(shards) = client.call(&["CLUSTER", "SHARDS"]).unwrap() else {
        panic!("SHARDS")
    };
    assert_eq!(shards.len(), 3);
    let mut shard_ids = BTreeSet::new();
    for shard in &shards {
        let Frame::Array(flat) = shard else {
            panic!("shard")
        };
        let Frame::Array(members) = &flat[3] else {
            panic!("shard nodes: {flat:?}")
        };
        for member in members {
            let Frame::Array(fields) = member else {
                panic!("member")
            };
            let Frame::Bulk(id) = &fields[1] else {
                panic!("id")
            };
            shard_ids.insert(String::from_utf8(id.to_vec()).unwrap());
        }
    }
    assert_eq!(shard_ids, nodes.keys().cloned().collect());

    // CLUSTER INFO.
    let info = cluster_text(port, "INFO");
    for line in [
        "cluster_enabled:1",
        "cluster_state:ok",
        "cluster_slots_assigned:16384",
        "cluster_slots_ok:16384",
        "cluster_known_nodes:6",
        "cluster_size:3",
    ] {
        assert!(info.contains(&format!("{line}\r\n")), "{line} in {info}");
    }
    // Every server gives the same map.
    for &other in &cluster.client_ports {
        let theirs = parse_nodes(&cluster_text(other, "NODES"));
        assert_eq!(theirs, nodes, "server on {other} agrees");
    }
}

#[test]
#[cfg_attr(
    not(has_redis_py),
    ignore = "needs python3 with redis-py (pip package redis)"
)]
fn s4_s8_a_cluster_client_survives_a_primary_killed_and_loses_no_acknowledged_key() {
    let mut cluster = Sharded::start(3);
    let port = cluster.client_ports[0];
    let (ok, out) = python(&strings(&["write", &port.to_string(), "0", "500", "60"]));
    assert!(ok && acknowledged(&out).len() == 500, "{out}");
    // SIGKILL the primary of group 1, then keep writing through the same kind of client
    // (started on another group's server), retrying each key until a deadline.
    let victim = cluster.primary_of(1).expect("group 1 has a primary");
    cluster.servers[victim].kill();
    let survivor = cluster.client_ports[0];
    let (ok, out) = python(&strings(&[
        "write",
        &survivor.to_string(),
        "500",
        "500",
        "90",
    ]));
    assert!(ok, "{out}");
    let acked = acknowledged(&out);
    assert!(
        acked.len() >= 450,
        "the client kept working after the failover: {} of 500 acknowledged\n{out}",
        acked.len()
    );
    // Every acknowledged key is there, before and after the kill (a write that was not
    // acknowledged may or may not have happened).
    let (ok, out) = python(&strings(&[
        "check",
        &survivor.to_string(),
        "0",
        "1000",
        "60",
    ]));
    assert!(ok && out.contains("DONE"), "{out}");
    let lost: Vec<u64> = out
        .lines()
        .filter_map(|l| l.strip_prefix("MISSING "))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .filter(|i| *i < 500 || acked.contains(i))
        .collect();
    assert!(lost.is_empty(), "acknowledged keys lost: {lost:?}\n{out}");
    // The new primary of group 1 is its other server, and the map says so.
    let promoted = (GROUP_SIZE..2 * GROUP_SIZE).find(|&i| i != victim).unwrap();
    assert!(wait_for(Duration::from_secs(30), || {
        cluster.primary_of(1) == Some(promoted)
    }));
}

#[test]
#[cfg_attr(
    not(has_redis_server),
    ignore = "needs redis-server on PATH (Debian package redis-server)"
)]
fn command_info_matches_redis_server_7() {
    let redis = RedisServer::start();
    let cluster = Sharded::launch(1);
    let ours = cluster.client_ports[0];
    let mut tandem = RespClient::connect(ours).unwrap();
    let mut redis_client = redis.client();
    let Frame::Array(table) = tandem.call(&["COMMAND"]).unwrap() else {
        panic!("COMMAND")
    };
    assert_eq!(
        tandem.call(&["COMMAND", "COUNT"]).unwrap(),
        Frame::Integer(table.len() as i64)
    );
    for entry in &table {
        let Frame::Array(fields) = entry else {
            panic!("entry")
        };
        assert_eq!(fields.len(), 10, "Redis 7 entries have ten fields");
        let Frame::Bulk(name) = &fields[0] else {
            panic!("name")
        };
        let name = String::from_utf8(name.to_vec()).unwrap();
        let Frame::Array(theirs) = redis_client.call(&["COMMAND", "INFO", &name]).unwrap() else {
            panic!("COMMAND INFO {name}")
        };
        let Frame::Array(theirs) = &theirs[0] else {
            panic!("redis-server knows {name}")
        };
        // Everything but the subcommands (tandem lists only those it answers) is Redis's.
        assert_eq!(fields[..9], theirs[..9], "COMMAND INFO {name}");
        let Frame::Array(subs) = &fields[9] else {
            panic!("subcommands")
        };
        let Frame::Array(their_subs) = &theirs[9] else {
            panic!("subcommands")
        };
        for sub in subs {
            assert!(
                their_subs.contains(sub),
                "{name}: {sub:?} as redis-server has it"
            );
        }
    }
    for args in [
        &["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"][..],
        &["COMMAND", "GETKEYS", "GET", "k"],
        &["COMMAND", "GETKEYS", "PING", "x"],
        &["COMMAND", "GETKEYS", "GET", "a", "b"],
        &["COMMAND", "GETKEYS", "NOSUCH", "x"],
        &["COMMAND", "INFO", "get", "nosuch"],
    ] {
        assert_eq!(
            tandem.call(args).unwrap(),
            redis_client.call(args).unwrap(),
            "{args:?}"
        );
    }
}
