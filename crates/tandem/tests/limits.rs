//! Limits on data through real processes (L13, L14, L16, L17): big values, big replies and
//! big requests never cost a failover, and what a client can store can be read and copied.

mod support;

use std::time::{Duration, Instant};

use support::{Cluster, Proc, RespClient, free_port, wait_for};
use tandem_resp::Frame;

const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
const REPLY_TOO_BIG: &str = "ERR reply exceeds the maximum reply size (max-reply-bytes)";

/// Runs `work` on `threads` threads while polling the view: returns the views seen.
fn views_while(cluster: &Cluster, threads: usize, work: impl Fn(usize) + Sync) -> Vec<u64> {
    let mut seen = Vec::new();
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (0..threads).map(|i| scope.spawn(move || work(i))).collect();
        while !handles.iter().all(|h| h.is_finished()) {
            if let Some(status) = cluster.status()
                && seen.last() != Some(&status.viewnum)
            {
                seen.push(status.viewnum);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for handle in handles {
            handle.join().expect("client thread");
        }
    });
    seen
}

#[test]
fn l17_ten_exists_of_a_million_arguments_keep_the_view() {
    let cluster = Cluster::start(2);
    let before = cluster.status().expect("status").viewnum;
    let keys: Vec<String> = (0..(1 << 20) - 1).map(|i| format!("k{i}")).collect();
    let mut args: Vec<&str> = vec!["EXISTS"];
    args.extend(keys.iter().map(String::as_str));
    let started = Instant::now();
    let views = views_while(&cluster, 10, |_| {
        let mut client = cluster.client();
        let reply = client.call(&args).expect("an answer");
        assert!(
            matches!(reply, Frame::Integer(0)) || matches!(reply, Frame::Error(_)),
            "{reply:?}"
        );
    });
    eprintln!("10 EXISTS x 1M answered in {:?}", started.elapsed());
    assert_eq!(
        views,
        vec![before],
        "no view change:\n{}",
        cluster.history()
    );
    let mut client = cluster.client();
    assert_eq!(
        client.call(&["SET", "after", "1"]).expect("set"),
        Frame::Simple("OK".into())
    );
}

#[test]
fn l14_mget_of_a_16_mb_key_60_times_answers_an_error_and_keeps_the_view() {
    let cluster = Cluster::start(2);
    let before = cluster.status().expect("status").viewnum;
    let big = "m".repeat(16_000_000);
    let mut client = cluster.client();
    assert_eq!(
        client.call(&["SET", "big", &big]).expect("set"),
        Frame::Simple("OK".into())
    );
    let mut args = vec!["MGET"];
    args.extend(std::iter::repeat_n("big", 60));
    let views = views_while(&cluster, 4, |_| {
        let mut client = cluster.client();
        for _ in 0..3 {
            let reply = client.call(&args).expect("an answer");
            assert_eq!(reply, Frame::Error(REPLY_TOO_BIG.into()));
        }
    });
    assert_eq!(
        views,
        vec![before],
        "no view change:\n{}",
        cluster.history()
    );
    // What fits in a reply is still served.
    match client.call(&["MGET", "big", "big"]).expect("mget") {
        Frame::Array(items) => assert_eq!(items.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn l13_l16_a_117_mb_value_cannot_be_built_and_a_16_mb_one_reaches_a_new_backup() {
    let mut cluster = Cluster::start(2);
    let big = "a".repeat(16_000_000);
    let mut client = cluster.client();
    assert_eq!(
        client.call(&["SET", "big", &big]).expect("set"),
        Frame::Simple("OK".into())
    );
    for _ in 0..6 {
        assert_eq!(
            client.call(&["APPEND", "big", &big]).expect("append"),
            Frame::Error(TOO_BIG.into())
        );
    }
    match client.call(&["GET", "big"]).expect("get") {
        Frame::Bulk(value) => assert_eq!(value.len(), 16_000_000),
        other => panic!("{other:?}"),
    }
    for i in 0..70 {
        let element = "e".repeat(1 << 20);
        let reply = client.call(&["RPUSH", "list", &element]).expect("rpush");
        assert_eq!(reply, Frame::Integer(i + 1));
    }
    // The backup is replaced by a new server: it must receive everything, in chunks.
    let primary = cluster.primary().expect("a primary");
    let backup = 1 - primary;
    cluster.servers[backup].kill();
    let port = free_port();
    let args = vec![
        "server".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--viewserver".into(),
        cluster.vs.list(),
    ];
    let mut fresh = Proc::spawn(&format!("limits-fresh-{port}"), &args);
    let joined = wait_for(Duration::from_secs(60), || {
        cluster
            .status()
            .is_some_and(|s| s.acked && s.backups.iter().any(|b| b.ends_with(&format!(":{port}"))))
    });
    assert!(
        joined,
        "the new backup was copied and the view acknowledged:\n{}",
        cluster.history()
    );
    let mut client = RespClient::connect(cluster.port).expect("connect");
    assert_eq!(
        client.call(&["LLEN", "list"]).expect("llen"),
        Frame::Integer(70)
    );
    fresh.kill();
}
