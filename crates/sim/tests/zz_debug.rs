use tandem_sim::{Cluster, ClusterConfig};
#[test]
fn dbg() {
    let mut c = Cluster::new(ClusterConfig { servers: 2, clients: 1, ..ClusterConfig::default() });
    c.run_for(3000);
    for line in ["SET a 1", "GET a", "MGET a b", "KEYS *", "SET b 2", "DBSIZE"] {
        let t0 = c.now_ms();
        let r = c.call(0, line, 10000);
        println!("{line}: {r:?} after {} ms; {}", c.now_ms() - t0, tandem_sim::run::describe(&c).chars().take(300).collect::<String>());
    }
    let r = c.server(0).unwrap();
    println!("{:?}", r.state().shard);
}
