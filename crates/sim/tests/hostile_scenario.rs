//! The hostile-peer fault on a live cluster: half of the messages between servers and the view
//! service are followed by a mutated copy sent as from another real server (P9-P11, V11). Every
//! acknowledged write must survive, including across a failover.

use tandem_kv::Reply;
use tandem_sim::{Cluster, ClusterConfig, NetConfig};

#[test]
fn p9_p10_p11_v11_acknowledged_writes_survive_a_hostile_peer_and_a_failover() {
    let mut c = Cluster::new(ClusterConfig {
        servers: 3,
        clients: 1,
        net: NetConfig {
            hostile_per_mille: 500,
            ..NetConfig::default()
        },
        clerk: tandem_protocol::ClerkConfig {
            request_timeout_ms: 120_000,
            ..tandem_protocol::ClerkConfig::default()
        },
        ..ClusterConfig::default()
    });
    assert!(c.run_until(c.now_ms() + 10_000, |c| c.view_acked()
        && c.view().is_some_and(|v| !v.backups.is_empty())));
    let mut expected = String::new();
    for i in 0..100 {
        let token = format!("x{i}.");
        expected.push_str(&token);
        let reply = c.call(0, &format!("APPEND log {token}"), 20_000);
        assert_eq!(
            reply,
            Some(Reply::Integer(expected.len() as i64)),
            "append {i}"
        );
    }
    assert!(c.hostile_injected() > 20, "{}", c.hostile_injected());
    let primary = c.view().expect("a view").primary.clone();
    let index = (0..3)
        .find(|i| format!("s{}", i + 1) == primary.as_str())
        .expect("a server of the cluster");
    c.crash(index);
    assert_eq!(
        c.call(0, "GET log", 30_000),
        Some(Reply::Bulk(bytes::Bytes::from(expected)))
    );
}
