//! The view service core driven directly: one test per V rule, asserting on the exact views and
//! events it produces.

use tandem_protocol::message::{Ping, ViewReply};
use tandem_protocol::{
    Bug, Bugs, Endpoint, Failure, GroupId, Incarnation, Message, Now, ServerId, ViewChangeCause,
    ViewEvent, ViewNum, ViewService, ViewServiceConfig,
};

const G: GroupId = GroupId(0);

fn vs() -> ViewService {
    ViewService::new(ViewServiceConfig::default())
}

fn ping(
    vs: &mut ViewService,
    at_ms: u64,
    server: &str,
    viewnum: u64,
    incarnation: u64,
) -> Option<(u64, String, Vec<String>)> {
    let p = Ping {
        group: G,
        server: ServerId::new(server),
        viewnum: ViewNum(viewnum),
        incarnation: Incarnation(incarnation),
        client_addr: None,
        config_done: tandem_protocol::ConfigNum(0),
        cluster_epoch: 0,
    };
    let reply = ping_reply(vs, at_ms, p);
    reply.view.map(|v| {
        (
            v.num.0,
            v.primary.to_string(),
            v.backups.iter().map(|b| b.to_string()).collect(),
        )
    })
}

/// Hands `ping` to the view service and returns its latest answer to the pinging server (a new
/// view decided after the ping is pushed to it after the direct reply).
fn ping_reply(vs: &mut ViewService, at_ms: u64, ping: Ping) -> ViewReply {
    let now = Now::at_ms(at_ms);
    let from = Endpoint::Server(ping.server.clone());
    vs.handle(now, from.clone(), Message::Ping(ping));
    // As a driver does: judge once the inbox (here, this one ping) is read (V3).
    if vs.poll_timeout().is_some_and(|at| at <= now.mono_ms) {
        vs.handle_timeout(now);
    }
    let mut answer = None;
    while let Some(transmit) = vs.poll_transmit(now) {
        if let (true, Message::PingReply(reply)) = (transmit.to == from, transmit.msg) {
            answer = Some(reply);
        }
    }
    answer.expect("a ping is answered to its sender")
}

fn current(vs: &ViewService) -> tandem_protocol::View {
    vs.view(G).cloned().expect("group has a view")
}

fn view(num: u64, primary: &str, backups: &[&str]) -> Option<(u64, String, Vec<String>)> {
    Some((
        num,
        primary.to_string(),
        backups.iter().map(|b| b.to_string()).collect(),
    ))
}

#[test]
fn v1_v5_first_ping_creates_view_1_with_that_primary() {
    let mut vs = vs();
    // b pings before a, so picking by name would choose the wrong one.
    assert_eq!(ping(&mut vs, 0, "b", 0, 2), view(1, "b", &[]));
    assert!(matches!(vs.poll_event(), Some(ViewEvent::NewView { .. })));
    assert!(!vs.table().group(G).unwrap().acked);
    assert_eq!(
        ping(&mut vs, 1, "a", 0, 1),
        view(1, "b", &[]),
        "a later server does not take over"
    );
}

#[test]
fn v6_primary_acks_by_pinging_with_the_view_number() {
    let mut vs = vs();
    ping(&mut vs, 0, "a", 0, 1);
    ping(&mut vs, 10, "b", 0, 2); // idle, but view 1 is not acked: no view 2 yet
    assert_eq!(current(&vs).num, ViewNum(1));
    assert_eq!(ping(&mut vs, 100, "a", 1, 1), view(2, "a", &["b"]));
}

#[test]
fn v6_no_view_change_before_primary_ack_even_if_primary_dies() {
    let mut vs = vs();
    ping(&mut vs, 0, "a", 0, 1);
    ping(&mut vs, 1, "a", 1, 1);
    ping(&mut vs, 2, "b", 0, 2);
    assert_eq!(current(&vs).num, ViewNum(2));
    // a never acks view 2 and dies; b keeps pinging.
    for t in (100..3000).step_by(100) {
        ping(&mut vs, t, "b", 2, 2);
        vs.handle_timeout(Now::at_ms(t));
    }
    assert_eq!(current(&vs).num, ViewNum(2));
}

#[test]
fn v3_v8_dead_primary_replaced_by_first_backup() {
    let mut vs = vs();
    ping(&mut vs, 0, "a", 0, 1);
    ping(&mut vs, 1, "a", 1, 1);
    ping(&mut vs, 2, "b", 0, 2);
    ping(&mut vs, 3, "a", 2, 1);
    let dead_after = ViewServiceConfig::default().dead_after_ms();
    for t in (100..=600).step_by(100) {
        ping(&mut vs, t, "b", 2, 2);
        vs.handle_timeout(Now::at_ms(t));
        if t < 3 + dead_after {
            assert_eq!(
                current(&vs).num,
                ViewNum(2),
                "V3: a is not dead after {t} ms of silence"
            );
        }
    }
    assert_eq!(
        vs.view(G).map(|v| (v.num, v.primary.clone())),
        Some((ViewNum(3), ServerId::new("b")))
    );
}

#[test]
fn v4_ping_zero_with_new_incarnation_is_a_restart() {
    let mut vs = vs();
    ping(&mut vs, 0, "a", 0, 1);
    ping(&mut vs, 1, "a", 1, 1);
    ping(&mut vs, 2, "b", 0, 2);
    ping(&mut vs, 3, "a", 2, 1);
    ping(&mut vs, 4, "b", 2, 2);
    // a restarts (new incarnation, view 0) before it could be declared dead.
    assert_eq!(ping(&mut vs, 50, "a", 0, 99), view(3, "b", &["a"]));
}

#[test]
fn v4_ping_zero_from_new_backup_with_same_incarnation_is_not_a_restart() {
    let mut vs = vs();
    ping(&mut vs, 0, "a", 0, 1);
    ping(&mut vs, 1, "a", 1, 1);
    ping(&mut vs, 2, "b", 0, 2);
    // a acknowledges view 2, so only the rules below keep the view service from moving on (V6
    // would otherwise hide a wrong restart decision).
    ping(&mut vs, 3, "a", 2, 1);
    // b has not heard of view 2 yet and pings 0 again: still the same process.
    assert_eq!(ping(&mut vs, 4, "b", 0, 2), view(2, "a", &["b"]));
    vs.handle_timeout(Now::at_ms(5));
    assert_eq!(current(&vs).num, ViewNum(2));
}

/// View 1 (a alone) is acknowledged, then a dies; c starts pinging only once a is dead, so it is
/// never a backup of an acknowledged view. Returns the primary the view service ends with.
fn primary_after_only_an_idle_server_outlives_the_view(bugs: Bugs) -> ServerId {
    let mut vs = ViewService::new(ViewServiceConfig {
        bugs,
        ..ViewServiceConfig::default()
    });
    ping(&mut vs, 0, "a", 0, 1);
    ping(&mut vs, 1, "a", 1, 1);
    let dead_after = ViewServiceConfig::default().dead_after_ms();
    // The view service runs (V3 counts only its own running time) while a is silent.
    for t in (100..=dead_after + 100).step_by(100) {
        vs.handle_timeout(Now::at_ms(t));
    }
    for t in (dead_after + 200..dead_after + 2000).step_by(100) {
        ping(&mut vs, t, "c", 0, 3);
        vs.handle_timeout(Now::at_ms(t));
    }
    current(&vs).primary
}

#[test]
fn v7_never_promotes_a_server_outside_the_previous_view() {
    assert_eq!(
        primary_after_only_an_idle_server_outlives_the_view(Bugs::NONE),
        ServerId::new("a"),
        "stuck with a dead primary rather than promoting c"
    );
}

#[test]
fn v7_planted_bug_promotes_uninitialized_server() {
    assert_eq!(
        primary_after_only_an_idle_server_outlives_the_view(Bugs::only(
            Bug::PromoteUninitializedServer
        )),
        ServerId::new("c")
    );
}

#[test]
fn v8_target_of_two_backups_fills_both() {
    let mut vs = ViewService::new(ViewServiceConfig {
        backups: 2,
        ..ViewServiceConfig::default()
    });
    ping(&mut vs, 0, "a", 0, 1);
    ping(&mut vs, 1, "b", 0, 2);
    ping(&mut vs, 2, "c", 0, 3);
    assert_eq!(ping(&mut vs, 3, "a", 1, 1), view(2, "a", &["b", "c"]));
}

#[test]
fn v9_idle_servers_are_listed() {
    let mut vs = vs();
    ping(&mut vs, 0, "a", 0, 1);
    ping(&mut vs, 1, "a", 1, 1);
    ping(&mut vs, 2, "b", 0, 2);
    ping(&mut vs, 3, "c", 0, 3);
    assert_eq!(vs.idle(G, Now::at_ms(4)), vec![ServerId::new("c")]);
}

#[test]
fn groups_are_independent() {
    let mut vs = vs();
    ping(&mut vs, 0, "a", 0, 1);
    let p = Ping {
        group: GroupId(7),
        server: ServerId::new("x"),
        viewnum: ViewNum(0),
        incarnation: Incarnation(5),
        client_addr: None,
        config_done: tandem_protocol::ConfigNum(0),
        cluster_epoch: 0,
    };
    let reply = ping_reply(&mut vs, 1, p);
    assert_eq!(reply.view.unwrap().primary, ServerId::new("x"));
    assert_eq!(current(&vs).primary, ServerId::new("a"));
}

#[test]
fn history_records_reasons_and_is_bounded() {
    let mut vs = ViewService::new(ViewServiceConfig {
        history_len: 2,
        ..ViewServiceConfig::default()
    });
    ping(&mut vs, 0, "a", 0, 1);
    ping(&mut vs, 1, "a", 1, 1);
    ping(&mut vs, 2, "b", 0, 2);
    ping(&mut vs, 3, "a", 2, 1);
    ping(&mut vs, 4, "a", 0, 9); // restart
    let history = &vs.table().group(G).unwrap().history;
    assert_eq!(history.len(), 2);
    let newest = history.back().unwrap();
    assert!(
        newest.causes.contains(&ViewChangeCause::PrimaryFailed {
            server: ServerId::new("a"),
            failure: Failure::Restarted,
        }),
        "{history:?}"
    );
    assert!(
        newest.reason().contains("primary a restarted"),
        "{history:?}"
    );
}

#[test]
fn get_view_and_get_status_are_answered_to_their_sender() {
    let mut vs = vs();
    ping(&mut vs, 0, "a", 0, 1);
    let now = Now::at_ms(5);
    let coordinator = Endpoint::Client(tandem_protocol::ClientId(9));
    vs.handle(now, coordinator.clone(), Message::GetView { group: G });
    vs.handle(now, coordinator.clone(), Message::GetStatus {});
    let answers: Vec<_> = std::iter::from_fn(|| vs.poll_transmit(now)).collect();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert!(answers.iter().all(|t| t.to == coordinator), "{answers:?}");
    assert!(
        matches!(&answers[0].msg, Message::ViewReply(r) if r.view.as_ref().is_some_and(|v| v.num == ViewNum(1)))
    );
    assert!(matches!(&answers[1].msg, Message::StatusReply(s) if s.groups.len() == 1));
}

#[test]
fn v3_poll_timeout_wakes_at_least_every_ping_interval_and_at_the_next_death() {
    let mut vs = vs();
    assert_eq!(vs.poll_timeout(), None, "nothing to judge before any input");
    ping(&mut vs, 0, "a", 0, 1);
    ping(&mut vs, 1, "a", 1, 1);
    ping(&mut vs, 2, "b", 0, 2);
    ping(&mut vs, 3, "a", 2, 1);
    // Inputs every 40 ms: the next wake-up is one ping interval after the last input.
    assert_eq!(vs.poll_timeout(), Some(103));
    // a stops pinging; b pings every 100 ms. A driver that sleeps until the next ping or
    // poll_timeout declares a dead exactly when its dead interval ends, at 3 + 500.
    let mut now_ms: u64 = 3;
    while current(&vs).primary == ServerId::new("a") && now_ms < 2_000 {
        let timeout_ms = vs.poll_timeout().expect("armed");
        assert!(
            timeout_ms <= now_ms + 100,
            "woken at least every ping interval"
        );
        let next_ping_ms = (now_ms + 1).next_multiple_of(100);
        now_ms = timeout_ms.min(next_ping_ms);
        if now_ms == next_ping_ms {
            ping(&mut vs, now_ms, "b", 2, 2);
        }
        if now_ms >= timeout_ms {
            vs.handle_timeout(Now::at_ms(now_ms));
        }
    }
    assert_eq!(current(&vs).primary, ServerId::new("b"));
    assert_eq!(
        now_ms, 503,
        "judged dead exactly when the dead interval ended"
    );
}

/// Primary a and backup b in acknowledged view 2, both pinging every 100 ms until `until_ms`.
fn steady_pair(vs: &mut ViewService, until_ms: u64) {
    ping(vs, 0, "a", 0, 1);
    ping(vs, 1, "a", 1, 1);
    ping(vs, 2, "b", 0, 2);
    for t in (100..=until_ms).step_by(100) {
        ping(vs, t, "a", 2, 1);
        ping(vs, t + 1, "b", 2, 2);
        vs.handle_timeout(Now::at_ms(t + 2));
    }
    assert_eq!(current(vs).num, ViewNum(2));
    assert!(vs.table().group(G).unwrap().acked);
}

#[test]
fn v3_a_stall_of_the_view_service_counts_at_most_one_ping_interval() {
    for stall_ms in [800, 2_000, 60_000] {
        let mut vs = vs();
        steady_pair(&mut vs, 1_000);
        // The view service stalls; both servers keep pinging and their pings wait in its
        // inbox. After the stall it reads a's ping and runs its timers before it gets to b's.
        let resume_ms = 1_002 + stall_ms;
        ping(&mut vs, resume_ms, "a", 2, 1);
        vs.handle_timeout(Now::at_ms(resume_ms + 1));
        ping(&mut vs, resume_ms + 2, "b", 2, 2);
        vs.handle_timeout(Now::at_ms(resume_ms + 3));
        assert_eq!(current(&vs).num, ViewNum(2), "stall of {stall_ms} ms");
        let status = vs.status(Now::at_ms(resume_ms + 3));
        let ages: Vec<u64> = status.groups[0]
            .servers
            .iter()
            .map(|s| s.last_ping_ago_ms)
            .collect();
        assert!(ages.iter().all(|age| *age <= 3), "{ages:?}");
    }
}

#[test]
fn v3_a_server_silent_while_the_view_service_runs_is_still_declared_dead() {
    let mut vs = vs();
    steady_pair(&mut vs, 1_000);
    // A stall, then b stays silent for the dead interval while the view service runs.
    vs.handle_timeout(Now::at_ms(3_000));
    for t in (3_000..=3_600).step_by(50) {
        ping(&mut vs, t, "a", 2, 1);
        vs.handle_timeout(Now::at_ms(t + 1));
    }
    let view = current(&vs);
    assert_eq!((view.num, view.backups), (ViewNum(3), vec![]));
    let causes = &vs.table().group(G).unwrap().history.back().unwrap().causes;
    assert!(
        matches!(
            causes.as_slice(),
            [ViewChangeCause::BackupFailed { failure: Failure::MissedPings { count }, .. }]
                if *count == 5
        ),
        "{causes:?}"
    );
}

#[test]
fn v3_planted_bug_counts_the_stall_against_the_servers() {
    let mut vs = ViewService::new(ViewServiceConfig {
        bugs: Bugs::only(Bug::VsJudgesAfterStall),
        ..ViewServiceConfig::default()
    });
    steady_pair(&mut vs, 1_000);
    let resume_ms = 1_002 + 800;
    ping(&mut vs, resume_ms, "a", 2, 1);
    assert_eq!(
        current(&vs).num,
        ViewNum(3),
        "the healthy backup b was dropped"
    );
    let causes = &vs.table().group(G).unwrap().history.back().unwrap().causes;
    assert!(
        matches!(causes.as_slice(), [ViewChangeCause::BackupFailed { server, .. }] if server.as_str() == "b"),
        "{causes:?}"
    );
}
