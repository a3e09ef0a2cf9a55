//! A1 on the deterministic harness: the ACL table is replicated state. After ACL writes, a
//! failover and a state transfer to a new backup, every replica holds the same table and the
//! same state digest, and the new primary enforces it.

use bytes::Bytes;
use tandem_kv::Reply;
use tandem_protocol::ServerId;
use tandem_sim::{Cluster, ClusterConfig};

fn wait_view(c: &mut Cluster, primary: &str, backups: &[&str], deadline_ms: u64) -> bool {
    let until = c.now_ms() + deadline_ms;
    let backups: Vec<ServerId> = backups.iter().map(ServerId::new).collect();
    c.run_until(until, |c| {
        c.view_acked()
            && c.view()
                .is_some_and(|v| v.primary == ServerId::new(primary) && v.backups == backups)
    })
}

#[test]
fn a1_backups_reach_the_primary_s_acl_table_and_digest() {
    let mut c = Cluster::new(ClusterConfig {
        servers: 3,
        clients: 1,
        replica: tandem_protocol::ReplicaConfig {
            max_log_entries: 4, // s3 cannot catch up from the log: a full transfer.
            max_pending_ops: 4,
            ..Default::default()
        },
        ..ClusterConfig::default()
    });
    assert!(wait_view(&mut c, "s1", &["s2"], 3000), "{:?}", c.view());
    let ok = Some(Reply::Simple("OK".into()));
    assert_eq!(c.call(0, "ACL SETUSER alice on >pw +get ~app:*", 2000), ok);
    assert_eq!(c.call(0, "SET app:x 1", 2000), ok);
    assert_eq!(
        c.call(0, "ACL SETUSER bob on nopass +@all -@dangerous", 2000),
        ok
    );
    for i in 0..10 {
        assert_eq!(c.call(0, &format!("SET k{i} v"), 2000), ok);
    }
    // s2 takes over; s3 becomes its backup by state transfer.
    c.crash(0);
    assert!(wait_view(&mut c, "s2", &["s3"], 5000), "{:?}", c.view());
    let until = c.now_ms() + 2000;
    c.run_until(until, |c| {
        let (p, b) = (c.server(1).unwrap(), c.server(2).unwrap());
        p.state().last == b.state().last
    });
    let primary = c.server(1).unwrap().state();
    let backup = c.server(2).unwrap().state();
    assert!(c.server(1).unwrap().stats().transfers_started >= 1);
    assert!(primary.store.acl().user("alice").is_some());
    assert_eq!(primary.store.acl(), backup.store.acl());
    assert_eq!(primary.digest(), backup.digest());
    // The new primary enforces the table.
    assert_eq!(
        c.call(0, "AUTH alice pw", 3000),
        ok,
        "alice's password survived"
    );
    assert_eq!(
        c.call(0, "AUTH alice nope", 3000),
        Some(Reply::Error(
            "WRONGPASS invalid username-password pair or user is disabled.".into()
        ))
    );
    assert_eq!(
        c.call(0, "GET app:x", 3000),
        Some(Reply::Bulk(Bytes::from("1")))
    );
}
