//! The view service core driven directly: one test per V rule, asserting on the exact views and
//! events it produces.

use tandem_protocol::message::Ping;
use tandem_protocol::{
    Bug, Bugs, GroupId, Incarnation, Now, ServerId, ViewEvent, ViewNum, ViewService,
    ViewServiceConfig,
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
    };
    let reply = vs.handle_ping(Now::at_ms(at_ms), &p);
    reply.view.map(|v| {
        (
            v.num.0,
            v.primary.to_string(),
            v.backups.iter().map(|b| b.to_string()).collect(),
        )
    })
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
    assert_eq!(vs.view(G).view.unwrap().num, ViewNum(1));
    assert_eq!(ping(&mut vs, 100, "a", 1, 1), view(2, "a", &["b"]));
}

#[test]
fn v6_no_view_change_before_primary_ack_even_if_primary_dies() {
    let mut vs = vs();
    ping(&mut vs, 0, "a", 0, 1);
    ping(&mut vs, 1, "a", 1, 1);
    ping(&mut vs, 2, "b", 0, 2);
    assert_eq!(vs.view(G).view.unwrap().num, ViewNum(2));
    // a never acks view 2 and dies; b keeps pinging.
    for t in (100..3000).step_by(100) {
        ping(&mut vs, t, "b", 2, 2);
        vs.tick(Now::at_ms(t));
    }
    assert_eq!(vs.view(G).view.unwrap().num, ViewNum(2));
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
        vs.tick(Now::at_ms(t));
        if t < 3 + dead_after {
            assert_eq!(
                vs.view(G).view.unwrap().num,
                ViewNum(2),
                "V3: a is not dead after {t} ms of silence"
            );
        }
    }
    assert_eq!(
        vs.view(G).view.map(|v| (v.num, v.primary)),
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
    vs.tick(Now::at_ms(5));
    assert_eq!(vs.view(G).view.unwrap().num, ViewNum(2));
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
    for t in (dead_after + 100..dead_after + 2000).step_by(100) {
        ping(&mut vs, t, "c", 0, 3);
        vs.tick(Now::at_ms(t));
    }
    vs.view(G).view.unwrap().primary
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
    };
    let reply = vs.handle_ping(Now::at_ms(1), &p);
    assert_eq!(reply.view.unwrap().primary, ServerId::new("x"));
    assert_eq!(vs.view(G).view.unwrap().primary, ServerId::new("a"));
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
    assert!(
        history.back().unwrap().reason.contains("restarted"),
        "{history:?}"
    );
}
