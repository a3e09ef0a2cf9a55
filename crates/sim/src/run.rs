//! One seeded run with every checker, and sweeps over many seeds.
//!
//! A run: warm up, then random client load under a random sequence of fault episodes; then heal
//! everything and check liveness (every pending request finishes within a bound), convergence
//! (every replica of the view holds an identical state), a final read of every key, and
//! linearizability of the whole history. Invariants are checked on every step throughout.
//! With several groups the run starts with a rebalance, moves join the faults, and the end
//! also checks that every move finished and that no two groups executed on a slot at once
//! (`ledger`). A panic inside the run (a core's assertion, a harness bug) is caught and
//! reported as a violation of that seed, so a sweep goes on with the others.

use std::fmt::Write as _;
use std::io;

use tandem_check::{Budget, Verdict};
use tandem_protocol::message::SlotsChange;
use tandem_protocol::{Bugs, ClerkConfig, GroupId, ReplicaConfig, ViewServiceConfig};

use crate::catch::{PanicPrint, catch_panic};
use crate::cluster::{Cluster, ClusterConfig};
use crate::faults::{self, Action};
use crate::model;
use crate::net::NetConfig;
use crate::workload::{self, RandomWorkload};

/// What to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The seed.
    pub seed: u64,
    /// Simulated time under load and faults.
    pub duration_ms: u64,
    /// Planted bugs.
    pub bugs: Bugs,
    /// View-service Raft nodes (1, 3 or 5).
    pub vs_nodes: usize,
    /// Replica groups (S). With more than one, the run starts with a `Rebalance`, clients
    /// route by slot, and slot moves join the fault schedule.
    pub groups: usize,
    /// Whether a panic inside the run also prints the standard panic message (it is reported
    /// as a violation either way).
    pub panic_print: PanicPrint,
    /// Test hook for the harness itself, never set by `tandem sim`: panic once simulated time
    /// reaches this (after the one-second warm-up at the earliest), to prove that a panicking
    /// seed is reported and a sweep goes on. Not part of [`replay_command`].
    pub panic_at_ms: Option<u64>,
}

impl RunOptions {
    /// A run of `seed` with the default length (60 simulated seconds), no bugs and silent
    /// panics.
    pub fn new(seed: u64) -> RunOptions {
        RunOptions {
            seed,
            duration_ms: 60_000,
            bugs: Bugs::NONE,
            vs_nodes: 3,
            groups: 1,
            panic_print: PanicPrint::Silent,
            panic_at_ms: None,
        }
    }
}

/// What a run found.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Digest of the whole trace: the same seed gives the same digest everywhere.
    pub digest: u64,
    /// Everything that went wrong (empty for a passing run).
    pub violations: Vec<String>,
    /// Simulated milliseconds.
    pub simulated_ms: u64,
    /// Client operations issued.
    pub operations: usize,
    /// Of which completed with replies.
    pub completed: usize,
    /// Fault actions applied.
    pub faults: usize,
    /// Keys whose history the checker could not decide within its budget.
    pub undecided_keys: usize,
    /// Events processed.
    pub events: u64,
    /// Slot configurations committed (S2; 1 for a single group: the first assignment).
    pub configs: usize,
    /// Committed executions per group (S4), in group order.
    pub executions_per_group: Vec<usize>,
    /// Set when the run ended with the group stuck by the rules (every holder of the state
    /// crashed): liveness and convergence were not checked, safety was.
    pub stuck: Option<String>,
}

impl RunReport {
    /// Did every checker pass?
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// How long after healing the cluster must serve every pending request again (liveness).
const LIVENESS_BOUND_MS: u64 = 30_000;
/// Checker steps per key before it gives up (Unknown, reported but not a failure).
const CHECK_BUDGET_STEPS: u64 = 5_000_000;

fn cluster_config(options: &RunOptions) -> ClusterConfig {
    let mut rng = tandem_protocol::rng::SplitMix64::new(options.seed ^ 0x5eed_5eed_5eed_5eed);
    let servers = 3 + rng.below(2) as usize;
    let backups = if rng.below(3) == 0 { 2 } else { 1 };
    ClusterConfig {
        seed: options.seed,
        groups: options.groups.max(1),
        servers,
        clients: 3 + rng.below(6) as usize,
        vs_nodes: options.vs_nodes,
        view_service: ViewServiceConfig {
            backups,
            bugs: options.bugs,
            ..ViewServiceConfig::default()
        },
        replica: ReplicaConfig {
            bugs: options.bugs,
            ..ReplicaConfig::default()
        },
        clerk: ClerkConfig {
            request_timeout_ms: 20_000,
            ..ClerkConfig::default()
        },
        clock_skew_max_ms: 200,
        net: NetConfig {
            delay_min_ms: 1,
            delay_max_ms: 2 + rng.below(5),
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            hostile_per_mille: 0,
        },
    }
}

/// Runs one seed with every checker.
pub fn run_seed(options: &RunOptions) -> RunReport {
    run_seed_traced(options, &mut io::sink()).expect("writing to a sink never fails")
}

/// Runs one seed with every checker and writes every fault to `trace` as it is applied, with
/// the cluster's state (for replaying a failure). A write error ends the run early and is
/// returned (a reader that went away, as with `| head`, is not a failure of the seed).
pub fn run_seed_traced(options: &RunOptions, trace: &mut dyn io::Write) -> io::Result<RunReport> {
    // Built outside the catch so that a run that panicked still reports the digest, time and
    // history it reached.
    let mut cluster = Cluster::new(cluster_config(options));
    let mut faults_applied = 0;
    let findings = catch_panic(options.panic_print, || {
        exercise(&mut cluster, options, trace, &mut faults_applied)
    });
    let (violations, stuck, undecided_keys) = match findings {
        Ok(findings) => {
            let findings = findings?;
            (findings.violations, findings.stuck, findings.undecided_keys)
        }
        Err(panic) => {
            // The history stops mid-event, so no end-of-run check would be meaningful; the
            // invariants broken before the panic are still worth reading.
            let mut violations = vec![panic.to_string()];
            violations.extend(cluster.violations().iter().cloned());
            (violations, None, 0)
        }
    };
    let history = cluster.history();
    Ok(RunReport {
        seed: options.seed,
        digest: cluster.trace_digest(),
        violations,
        simulated_ms: cluster.now_ms(),
        operations: history.len(),
        completed: history.iter().filter(|op| op.ret.is_some()).count(),
        faults: faults_applied,
        undecided_keys,
        events: cluster.events_processed(),
        configs: cluster.ledger().configs().count(),
        executions_per_group: cluster
            .groups()
            .iter()
            .map(|g| {
                let list = cluster.ledger().executions();
                list.iter().filter(|e| e.group == *g).count()
            })
            .collect(),
        stuck,
    })
}

/// What the checkers of a run that did not panic found.
struct Findings {
    violations: Vec<String>,
    stuck: Option<String>,
    undecided_keys: usize,
}

/// Drives the run (load, faults, healing) and runs every checker.
fn exercise(
    cluster: &mut Cluster,
    options: &RunOptions,
    trace: &mut dyn io::Write,
    faults_applied: &mut usize,
) -> io::Result<Findings> {
    let mut violations = Vec::new();
    cluster.run_for(1000);
    if let Some(at_ms) = options.panic_at_ms {
        cluster.run_until(at_ms, |_| false);
        panic!("planted by RunOptions::panic_at_ms at {at_ms} ms");
    }
    let tags = workload_tags(options);
    cluster.set_watched_slots(
        tags.iter()
            .map(|t| tandem_kv::slots::key_slot(t.as_bytes()))
            .collect(),
    );
    if options.groups > 1 {
        rebalance(cluster, &mut violations);
        cluster.set_workload(Some(Box::new(RandomWorkload::sharded(20, tags.clone()))));
    } else {
        cluster.set_workload(Some(Box::new(RandomWorkload::new(20))));
    }

    // Faults: episodes one after another until the fault phase ends.
    let fault_end = cluster.now_ms() + options.duration_ms;
    let mut pending: Vec<(u64, u64, Action)> = Vec::new();
    let mut order = 0;
    let mut next_episode = cluster.now_ms() + 200 + cluster.rng().below(1500);
    loop {
        let next_action = pending.iter().map(|(t, _, _)| *t).min();
        let next = next_action.unwrap_or(u64::MAX).min(next_episode);
        if next >= fault_end {
            break;
        }
        cluster.run_until(next, |_| false);
        if next == next_episode {
            for (delay, action) in faults::next_episode(cluster) {
                pending.push((cluster.now_ms() + delay, order, action));
                order += 1;
            }
            next_episode = cluster.now_ms() + 500 + cluster.rng().below(3000);
            continue;
        }
        pending.sort_by_key(|(t, o, _)| (*t, *o));
        let (_, _, action) = pending.remove(0);
        writeln!(
            trace,
            "{:>8} ms  fault {action:?}  ({})",
            cluster.now_ms(),
            describe(cluster)
        )?;
        faults::apply(cluster, &action);
        *faults_applied += 1;
    }
    cluster.run_until(fault_end, |_| false);

    // Heal: network back to normal, every server up again.
    faults::apply(cluster, &Action::HealNetwork);
    faults::apply(cluster, &Action::RestartAll);
    faults::apply(cluster, &Action::RestartAllVs);
    cluster.set_workload(None);
    // Give the view service time to notice restarts, then ask whether the rules allow progress:
    // when every server holding the state crashed, V6/V7 keep the group stuck (never wrong).
    // A view-service leader first (a paused or crashed majority may still be coming back); it
    // knows every server's liveness a detection period after its election (Q4).
    let until = cluster.now_ms() + LIVENESS_BOUND_MS;
    cluster.run_until(until, |c| c.leader().is_some());
    cluster.run_for(cluster.config().view_service.dead_after_ms() + 500);
    let stuck = stuck_reason(cluster);
    if stuck.is_none() {
        let bound = cluster.now_ms() + LIVENESS_BOUND_MS;
        let all_idle = |c: &Cluster| (0..c.client_count()).all(|i| c.client_idle(i));
        if !cluster.run_until(bound, all_idle) {
            violations.push(format!(
                "liveness: requests still pending {LIVENESS_BOUND_MS} ms after healing: {}",
                describe(cluster)
            ));
        }
        check_convergence(cluster, &mut violations);
        // Every move started ends (S5, S6): every group takes on the current configuration.
        let bound = cluster.now_ms() + LIVENESS_BOUND_MS;
        if !cluster.run_until(bound, Cluster::configs_settled) {
            violations.push(format!(
                "liveness: moves still in progress {LIVENESS_BOUND_MS} ms after healing: {}",
                describe_map(cluster)
            ));
        }

        // A final read of every key, part of the checked history: acknowledged writes must be
        // there. Sharded: one request per tag (one slot each).
        for reads in final_reads(&tags) {
            let index = cluster.submit(0, reads);
            if cluster.wait(index, LIVENESS_BOUND_MS).is_none() {
                violations.push("liveness: the final read did not complete".to_string());
                break;
            }
        }
    }

    violations.extend(cluster.violations().iter().cloned());
    violations.extend(cluster.ledger().check());
    let undecided_keys = check_linearizability(cluster, &tags, &mut violations);
    Ok(Findings {
        violations,
        stuck,
        undecided_keys,
    })
}

/// The operator spreads the slots over every group (S3) once each has a view: asked again
/// until the view service takes it (it refuses while the first assignment is being taken on).
fn rebalance(cluster: &mut Cluster, violations: &mut Vec<String>) {
    let until = cluster.now_ms() + LIVENESS_BOUND_MS;
    let groups = cluster.groups();
    let all_viewed = |c: &Cluster| groups.iter().all(|g| c.group_view_acked(*g));
    if !cluster.run_until(until, all_viewed) {
        violations.push(format!(
            "liveness: not every group had a view {LIVENESS_BOUND_MS} ms after the start: {}",
            describe(cluster)
        ));
        return;
    }
    while cluster.now_ms() < until {
        if let Some(Ok(_)) = cluster.change_slots(SlotsChange::Rebalance) {
            return;
        }
        cluster.run_for(100);
    }
    violations.push(format!(
        "liveness: the view service did not take the rebalance within {LIVENESS_BOUND_MS} ms: {}",
        describe_map(cluster)
    ));
}

/// The slot map and each group's progress, for failure reports.
pub fn describe_map(cluster: &Cluster) -> String {
    let Some(map) = cluster.cluster_map() else {
        return "no view-service table".to_string();
    };
    let mut out = format!("configuration {}:", map.config.num);
    for (g, info) in &map.groups {
        let _ = write!(
            out,
            " group {g} owns {:?} (config_done {})",
            map.config.slots_of(*g),
            info.config_done
        );
    }
    for i in 0..cluster.server_count() {
        if let Some(r) = cluster.server(i) {
            let shard = &r.state().shard;
            if shard.moving() {
                let _ = write!(
                    out,
                    "; {} {:?} taken_on={} target={} out={:?} in={:?}",
                    cluster.server_id(i),
                    r.role(),
                    shard.taken_on,
                    shard.target,
                    shard.outgoing,
                    shard.incoming.keys().collect::<Vec<_>>()
                );
            }
        }
    }
    out
}

/// The hash tags of the workload: a few for one group, one per part of the slot space for
/// several.
fn workload_tags(options: &RunOptions) -> Vec<String> {
    if options.groups > 1 {
        workload::spread_tags(workload::SHARDED_TAGS)
    } else {
        workload::spread_tags(workload::SINGLE_GROUP_TAGS)
    }
}

/// The final read of every key: one request (one group, one slot) per tag.
fn final_reads(tags: &[String]) -> Vec<Vec<tandem_kv::Command>> {
    let lines = |k: &dyn Fn(&str) -> String| {
        [
            format!("MGET {} {} {}", k("s0"), k("s1"), k("s2")),
            format!("LRANGE {} 0 -1", k("l0")),
            format!("LRANGE {} 0 -1", k("l1")),
            format!("HGETALL {}", k("h0")),
            format!("HGETALL {}", k("h1")),
        ]
        .iter()
        .map(|l| workload::parse_line(l))
        .collect::<Vec<_>>()
    };
    tags.iter()
        .map(|t| lines(&|name| workload::tagged(t, name)))
        .collect()
}

/// Why some group cannot make progress by the rules, if one cannot (named by group when there
/// are several).
fn stuck_reason(cluster: &Cluster) -> Option<String> {
    if cluster.group_count() == 1 {
        return cluster.stuck_reason();
    }
    cluster.groups().into_iter().find_map(|g| {
        cluster
            .group_stuck_reason(g)
            .map(|why| format!("group {g}: {why}"))
    })
}

/// After healing, every member of every group's view must end with the same state (R1).
fn check_convergence(cluster: &mut Cluster, violations: &mut Vec<String>) {
    for group in cluster.groups() {
        check_group_convergence(cluster, group, violations);
    }
}

fn check_group_convergence(cluster: &mut Cluster, group: GroupId, violations: &mut Vec<String>) {
    let until = cluster.now_ms() + LIVENESS_BOUND_MS;
    let caught_up = |c: &Cluster| {
        let Some(view) = c.group_view(group) else {
            return false;
        };
        let members: Vec<_> = view
            .members()
            .map(|id| c.server(c.server_index(id)))
            .collect();
        c.group_view_acked(group)
            && members.iter().all(|r| r.is_some())
            && members
                .windows(2)
                .all(|w| w[0].map(|r| r.state().last) == w[1].map(|r| r.state().last))
    };
    let of_group = if cluster.group_count() > 1 {
        format!(" of group {group}")
    } else {
        String::new()
    };
    if !cluster.run_until(until, caught_up) {
        violations.push(format!(
            "liveness: replicas of the view{of_group} did not catch up within {LIVENESS_BOUND_MS} ms: {}",
            describe(cluster)
        ));
        return;
    }
    let view = cluster.group_view(group).expect("view");
    let mut digests = String::new();
    let mut first = None;
    let mut differ = false;
    for id in view.members() {
        let digest = cluster
            .server(cluster.server_index(id))
            .expect("up")
            .state()
            .digest();
        let _ = write!(digests, " {id}={digest:016x}");
        differ |= first.is_some_and(|f| f != digest);
        first.get_or_insert(digest);
    }
    if differ {
        violations.push(format!(
            "R1: replicas of view {}{of_group} hold different states:{digests}",
            view.num
        ));
    }
}

/// The view and every server's standing, for failure reports.
pub fn describe(cluster: &Cluster) -> String {
    let mut out = String::new();
    for group in cluster.groups() {
        if group != GroupId(0) {
            let _ = write!(out, "; group {group} ");
        }
        let _ = write!(
            out,
            "view {:?} acked={}",
            cluster.group_view(group),
            cluster.group_view_acked(group)
        );
    }
    for v in 0..cluster.vs_count() {
        match cluster.vs_node(v) {
            None => {
                let _ = write!(out, "; vs{} down", v + 1);
            }
            Some(n) => {
                let _ = write!(
                    out,
                    "; vs{} term={} leader={} deciding={} applied={}{}",
                    v + 1,
                    n.term(),
                    n.leader_id(),
                    n.is_leader(),
                    n.applied(),
                    if cluster.is_vs_paused(v) {
                        " paused"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    if let Some(vs) = cluster.view_service() {
        for group in cluster.groups() {
            if let Some(g) = vs.table().group(group) {
                let _ = write!(out, " joined={:?}", g.incarnations);
            }
            for (id, live) in vs.liveness(group) {
                let _ = write!(out, " {id}:{:?}", live);
            }
        }
    }
    for i in 0..cluster.server_count() {
        match cluster.server(i) {
            None => {
                let _ = write!(out, "; s{} down", i + 1);
            }
            Some(r) => {
                let _ = write!(
                    out,
                    "; s{} {:?} view={:?} ping={} last={:?} commit={:?}",
                    i + 1,
                    r.role(),
                    r.view().map(|v| v.num),
                    r.ping_viewnum(),
                    r.state().last,
                    r.commit_index()
                );
                out.push_str(&r.progress_summary());
            }
        }
    }
    out
}

/// Checks every key's history; returns how many keys the checker could not decide.
fn check_linearizability(
    cluster: &Cluster,
    tags: &[String],
    violations: &mut Vec<String>,
) -> usize {
    let mut undecided = 0;
    for (model, ops) in model::partition(cluster.history(), &workload::universe_tagged(tags)) {
        match tandem_check::check(
            &model,
            &ops,
            Budget {
                max_steps: CHECK_BUDGET_STEPS,
            },
        ) {
            Verdict::Linearizable => {}
            Verdict::Unknown => undecided += 1,
            Verdict::NotLinearizable(counterexample) => {
                let stuck: Vec<String> = counterexample
                    .stuck_at
                    .iter()
                    .take(4)
                    .map(|i| {
                        let op = &ops[*i];
                        format!(
                            "client {} at {} ms: {:?}",
                            op.client,
                            op.call,
                            op.input.steps.iter().map(|s| &s.0).collect::<Vec<_>>()
                        )
                    })
                    .collect();
                violations.push(format!(
                    "R2: history of key {:?} is not linearizable (longest linearizable prefix {} ops; stuck at {})",
                    model_key(&model),
                    counterexample.longest_prefix.len(),
                    stuck.join(" | ")
                ));
            }
        }
    }
    undecided
}

fn model_key(model: &model::KeyModel) -> String {
    format!("{model:?}")
}

/// The command that replays `options` exactly.
pub fn replay_command(options: &RunOptions) -> String {
    let mut cmd = format!(
        "tandem sim --seed {} --duration-ms {} --vs-nodes {}",
        options.seed, options.duration_ms, options.vs_nodes
    );
    if options.groups > 1 {
        let _ = write!(cmd, " --groups {}", options.groups);
    }
    for bug in tandem_protocol::Bug::ALL {
        if options.bugs.has(bug) {
            let _ = write!(cmd, " --inject-bug {bug}");
        }
    }
    cmd
}
