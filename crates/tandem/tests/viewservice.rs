//! The view service as a Raft group of real processes (Q1-Q5): its leader killed, partitioned,
//! frozen; all nodes restarted; a rolling restart; a node added and another removed online. Every
//! test runs client threads through the coordinator the whole time and checks their history for
//! linearizability (R2). Waiting is by polling with deadlines.

mod support;

use std::time::{Duration, Instant};

use support::{Cluster, GroupStatus, Load, NodeInfo, wait_for};

/// How long the view must stay the same to count as "no view change": several dead intervals
/// (V3: 5 pings of 100 ms) and election timeouts (Q4).
const QUIET: Duration = Duration::from_secs(2);

/// Asserts that the view stays `before` for [`QUIET`] (polling, so a change fails at once).
fn assert_view_unchanged(cluster: &Cluster, before: &GroupStatus, what: &str) {
    let changed = wait_for(QUIET, || {
        cluster
            .status()
            .is_some_and(|s| s.viewnum != before.viewnum)
    });
    assert!(
        !changed,
        "{what} changed the view: {before:?} -> {:?}\n{}",
        cluster.status(),
        cluster.history()
    );
    let now = cluster.status().expect("status");
    assert_eq!(now.viewnum, before.viewnum, "{what}");
    assert_eq!(now.primary, before.primary, "{what}");
}

/// Waits until the node at `i` says it follows `leader` in `leader`'s current term.
fn wait_follows(cluster: &Cluster, i: usize, leader: usize, deadline: Duration) -> NodeInfo {
    let mut last = None;
    let ok = wait_for(deadline, || {
        let (Some(me), Some(them)) = (cluster.vs.nodes[i].info(), cluster.vs.nodes[leader].info())
        else {
            return false;
        };
        last = Some(me.clone());
        me.role == "follower" && me.term == them.term && me.leader == them.id
    });
    assert!(
        ok,
        "node {} does not follow node {} within {deadline:?}: {last:?} / {:?}",
        cluster.vs.nodes[i].id,
        cluster.vs.nodes[leader].id,
        cluster.vs.infos()
    );
    last.unwrap()
}

/// Waits until the (new) leader hears pings from all `servers` (Q2: they found it).
fn wait_servers_found_leader(cluster: &Cluster, servers: usize) {
    assert!(
        wait_for(Duration::from_secs(10), || cluster
            .status()
            .is_some_and(|s| s.alive.len() >= servers)),
        "Q2: the servers did not find the new leader: {:?}",
        cluster.status()
    );
}

#[test]
fn q1_q4_kill_vs_leader_under_load_no_client_error_and_no_view_change() {
    let mut cluster = Cluster::start(3);
    let load = Load::start(cluster.port, 4);
    let before = cluster.status().expect("status");
    let leader = cluster.vs.leader().expect("a leader");
    let started = Instant::now();
    cluster.vs.kill(leader);
    let new = cluster
        .vs
        .wait_leader(Duration::from_secs(10), Some(leader));
    eprintln!(
        "node {} leads {:?} after the kill",
        cluster.vs.nodes[new].id,
        started.elapsed()
    );
    wait_servers_found_leader(&cluster, 3);
    assert!(load.progress(300, Duration::from_secs(15)), "load goes on");
    assert_view_unchanged(&cluster, &before, "Q4: killing the view-service leader");
    assert_eq!(
        load.errors(),
        0,
        "every client request succeeds while the leader changes"
    );
    assert!(load.finish(cluster.port) > 500);
}

#[test]
fn q3_q4_kill_vs_leader_and_primary_together_fails_over_once_a_leader_is_elected() {
    let mut cluster = Cluster::start(3);
    let load = Load::start(cluster.port, 4);
    let before = cluster.status().expect("status");
    let primary = cluster.primary().expect("a primary");
    let leader = cluster.vs.leader().expect("a leader");
    let started = Instant::now();
    cluster.vs.kill(leader);
    cluster.servers[primary].kill();
    let new = cluster
        .vs
        .wait_leader(Duration::from_secs(10), Some(leader));
    let elected = started.elapsed();
    assert!(
        wait_for(Duration::from_secs(15), || cluster.status().is_some_and(
            |s| {
                s.viewnum > before.viewnum
                    && s.acked
                    && s.primary.as_deref() != before.primary.as_deref()
            }
        )),
        "the group failed over under node {}: {:?}\n{}",
        cluster.vs.nodes[new].id,
        cluster.status(),
        cluster.history()
    );
    eprintln!(
        "leader elected after {elected:?}, new primary acknowledged after {:?}",
        started.elapsed()
    );
    assert!(load.progress(300, Duration::from_secs(15)), "load resumed");
    let after = cluster.status().unwrap();
    assert_ne!(cluster.primary(), Some(primary));
    assert!(after.primary.is_some());
    // No acknowledged write lost: the final reads are checked with the rest (R2).
    assert!(load.finish(cluster.port) > 500);
}

/// Cuts the view-service leader off (nothing reaches it: see `support::VsNode::proxy`) under
/// load; returns (old leader, new leader, view before the cut).
fn partition_leader(cluster: &mut Cluster, load: &Load) -> (usize, usize, GroupStatus) {
    let before = cluster.status().expect("status");
    let old = cluster.vs.leader().expect("a leader");
    let old_term = cluster.vs.nodes[old].info().unwrap().term;
    cluster.vs.cut(old);
    let new = cluster.vs.wait_leader(Duration::from_secs(15), Some(old));
    assert!(cluster.vs.nodes[new].info().unwrap().term > old_term);
    // The old leader hears no quorum and stops leading (check-quorum), within a deadline.
    let mut seen = None;
    assert!(
        wait_for(Duration::from_secs(5), || {
            seen = cluster.vs.nodes[old].info();
            seen.as_ref().is_some_and(|n| !n.leads())
        }),
        "Q1: the cut-off leader still says it leads: {seen:?}"
    );
    wait_servers_found_leader(cluster, 3);
    assert!(load.progress(300, Duration::from_secs(15)), "load goes on");
    (old, new, before)
}

#[test]
fn q1_q2_partitioned_leader_stops_leading_and_rejoins_as_follower() {
    let mut cluster = Cluster::start(3);
    let load = Load::start(cluster.port, 4);
    let (old, _, before) = partition_leader(&mut cluster, &load);
    // Q4: the cut-off leader judged nobody from a silence its isolation caused.
    assert_view_unchanged(&cluster, &before, "Q4: partitioning the leader");
    let after_cut = cluster.status().expect("status");
    // Heal: it rejoins as a follower of the new leader.
    cluster.vs.heal(old);
    let new = cluster.vs.wait_leader(Duration::from_secs(10), None);
    assert_ne!(
        new, old,
        "a node that missed entries cannot win an election at once"
    );
    wait_follows(&cluster, old, new, Duration::from_secs(10));
    assert!(load.progress(300, Duration::from_secs(15)), "load goes on");
    assert_view_unchanged(&cluster, &after_cut, "healing the partition");
    assert_eq!(load.errors(), 0, "clients kept succeeding");
    assert!(load.finish(cluster.port) > 500);
}

/// The same cut, with an election timeout (1-2 s) longer than the dead interval (500 ms), so
/// that the cut-off leader would notice the servers' silence before it notices it lost its
/// quorum. Its outbound links still work, so anything it proposed would reach the followers and
/// be committed by the next leader. Q4: a leader judges silence only while a quorum has
/// answered it within half a detection period, so it proposes nothing, and the partition
/// changes no view.
#[test]
fn q4_partitioned_leader_decides_nothing_from_its_silence() {
    let vs = support::ViewService::group_with(3, &["--election-ticks", "20"]);
    let mut cluster = Cluster::with(vs, 3, &[]);
    let load = Load::start(cluster.port, 4);
    let (_, _, before) = partition_leader(&mut cluster, &load);
    assert_view_unchanged(&cluster, &before, "Q4: partitioning the leader");
    assert_eq!(load.errors(), 0, "clients kept succeeding");
    assert!(load.finish(cluster.port) > 500);
}

#[test]
fn q4_sigstopped_leader_past_the_election_timeout_does_not_lead_after_sigcont() {
    let mut cluster = Cluster::start(3);
    let load = Load::start(cluster.port, 4);
    let before = cluster.status().expect("status");
    let old = cluster.vs.leader().expect("a leader");
    cluster.vs.stop(old);
    let new = cluster.vs.wait_leader(Duration::from_secs(10), Some(old));
    let new_term = cluster.vs.nodes[new].info().unwrap().term;
    wait_servers_found_leader(&cluster, 3);
    cluster.vs.cont(old);
    // It may still call itself leader of its old term until the new leader's messages reach
    // it, but it cannot decide anything there (no quorum, Q1/Q3: checked by the view staying
    // the same below); it must move to the new term as a follower.
    let mut stale = None;
    let followed = wait_for(Duration::from_secs(10), || {
        let Some(me) = cluster.vs.nodes[old].info() else {
            return false;
        };
        if me.leads() {
            assert!(me.term < new_term, "two leaders in one term: {me:?}");
            stale = Some(me.clone());
        }
        me.role == "follower" && me.term >= new_term
    });
    if let Some(stale) = stale {
        eprintln!("the resumed node briefly reported its old leadership: {stale:?}");
    }
    assert!(
        followed,
        "the resumed node did not move to the new term: {:?}",
        cluster.vs.infos()
    );
    let now = cluster.vs.leader().expect("a leader");
    assert_ne!(now, old, "the resumed node leads again");
    assert!(load.progress(300, Duration::from_secs(15)), "load goes on");
    assert_view_unchanged(&cluster, &before, "Q4: freezing the leader");
    assert!(load.finish(cluster.port) > 500);
}

#[test]
fn q5_restart_of_every_vs_node_at_once_keeps_the_table() {
    let mut cluster = Cluster::start(3);
    let load = Load::start(cluster.port, 4);
    let before = cluster.status().expect("status");
    for i in 0..3 {
        cluster.vs.kill(i);
    }
    // The servers keep serving without any view service (nothing needs a new view).
    assert!(
        load.progress(100, Duration::from_secs(10)),
        "served with the view service down"
    );
    for i in 0..3 {
        cluster.vs.restart(i);
    }
    let leader = cluster.vs.wait_leader(Duration::from_secs(15), None);
    let table = cluster.status().expect("status after the restart");
    assert_eq!(
        (table.viewnum, &table.primary, &table.backups, table.acked),
        (
            before.viewnum,
            &before.primary,
            &before.backups,
            before.acked
        ),
        "Q5: the table read back from the data dirs (leader node {})",
        cluster.vs.nodes[leader].id
    );
    wait_servers_found_leader(&cluster, 3);
    assert!(load.progress(300, Duration::from_secs(15)), "load goes on");
    assert_view_unchanged(&cluster, &before, "Q4: restarting the view service");
    assert!(load.finish(cluster.port) > 500);
}

#[test]
fn q2_q5_rolling_restart_of_the_vs_nodes_under_load_fails_no_request() {
    let mut cluster = Cluster::start(3);
    let load = Load::start(cluster.port, 4);
    let before = cluster.status().expect("status");
    for i in 0..3 {
        cluster.vs.kill(i);
        let leader = cluster.vs.wait_leader(Duration::from_secs(10), Some(i));
        let commit = cluster.vs.nodes[leader].info().unwrap().commit;
        cluster.vs.restart(i);
        // Rejoined: a member again, caught up with what was committed before it came back.
        let leader = cluster.vs.wait_leader(Duration::from_secs(10), None);
        let mut seen = None;
        assert!(
            wait_for(Duration::from_secs(15), || {
                seen = cluster.vs.nodes[i].info();
                seen.as_ref().is_some_and(|n| {
                    n.applied >= commit && (n.leads() || n.leader == cluster.vs.nodes[leader].id)
                })
            }),
            "node {} did not rejoin: {seen:?}",
            cluster.vs.nodes[i].id
        );
        wait_servers_found_leader(&cluster, 3);
        assert!(load.progress(200, Duration::from_secs(10)), "load goes on");
    }
    assert_view_unchanged(&cluster, &before, "Q4: a rolling restart");
    assert_eq!(load.errors(), 0, "no client request failed");
    assert!(load.finish(cluster.port) > 500);
}

#[test]
fn q5_add_node_and_remove_node_online_then_kill_the_leader() {
    let mut cluster = Cluster::start(3);
    let load = Load::start(cluster.port, 4);
    let before = cluster.status().expect("status");
    // A fourth node starts empty and waits to be added.
    let fourth = cluster.vs.start_joining(4);
    let addr = cluster.vs.nodes[fourth].advertised();
    let (ok, out) = cluster
        .vs
        .admin(&["add-node", "--id", "4", "--addr", &addr]);
    assert!(ok, "add-node failed: {out}");
    let leader = cluster.vs.wait_leader(Duration::from_secs(10), None);
    assert!(
        wait_for(Duration::from_secs(10), || cluster.vs.nodes[leader]
            .info()
            .is_some_and(|n| n.members.contains(&4))),
        "node 4 is a member: {:?}",
        cluster.vs.infos()
    );
    // It catches up with the table (a snapshot, then the log).
    let mut seen = None;
    assert!(
        wait_for(Duration::from_secs(15), || {
            let target = cluster.vs.nodes[leader]
                .info()
                .map_or(u64::MAX, |n| n.commit);
            seen = cluster.vs.nodes[fourth].info();
            seen.as_ref()
                .is_some_and(|n| n.applied >= target && n.members.contains(&4))
        }),
        "node 4 caught up: {seen:?} / {:?}",
        cluster.vs.infos()
    );
    let table = support::group_of(cluster.vs.nodes[fourth].status().as_ref()).unwrap();
    assert_eq!(table.viewnum, before.viewnum, "node 4 has the table");

    // Remove a follower (one of the first three).
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let id = cluster.vs.nodes[follower].id.to_string();
    let (ok, out) = cluster.vs.admin(&["remove-node", "--id", &id]);
    assert!(ok, "remove-node failed: {out}");
    let removed = cluster.vs.nodes[follower].id;
    assert!(
        wait_for(Duration::from_secs(10), || cluster
            .vs
            .leader()
            .and_then(|l| cluster.vs.nodes[l].info())
            .is_some_and(
                |n| !n.members.contains(&removed) && n.members.len() == 3
            )),
        "node {removed} removed: {:?}",
        cluster.vs.infos()
    );
    cluster.vs.kill(follower);
    assert!(load.progress(200, Duration::from_secs(10)), "load goes on");
    assert_view_unchanged(&cluster, &before, "adding and removing a node");

    // Three members left (two of the first and node 4): killing the leader leaves a majority.
    let leader = cluster.vs.leader().expect("a leader");
    cluster.vs.kill(leader);
    let new = cluster
        .vs
        .wait_leader(Duration::from_secs(10), Some(leader));
    eprintln!("node {} leads the new membership", cluster.vs.nodes[new].id);
    wait_servers_found_leader(&cluster, 3);
    assert!(load.progress(300, Duration::from_secs(15)), "load goes on");
    // Two of the servers' three addresses are now dead nodes (the removed one and the old
    // leader), and a server that finds no leader moves down its list one silent node at a
    // time: it may reach the new leader after the detection period Q4 gives it, and then
    // fail over. The group must serve on; a failover is reported, not judged.
    let after = cluster.status().expect("status");
    if after.viewnum != before.viewnum {
        eprintln!(
            "the view changed after the leader kill (servers' lists mostly dead nodes):\n{}",
            cluster.history()
        );
    }
    assert!(after.acked && after.primary.is_some());
    assert!(load.finish(cluster.port) > 500);
}
