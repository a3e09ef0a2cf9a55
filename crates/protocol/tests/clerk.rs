//! The clerk that routes by slot (S1, S4, S8, C1, C3), driven by hand: a cluster map with two
//! groups, answers forged as the view service and the primaries would send them.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use tandem_kv::Command;
use tandem_kv::slots::{SLOT_COUNT, key_slot};
use tandem_protocol::clerk::{Route, route};
use tandem_protocol::locator::DEFAULT_VIEW_SERVICE;
use tandem_protocol::message::{Request, RequestError, Response, ViewReply};
use tandem_protocol::{
    Clerk, ClerkConfig, ClientId, ClusterMap, ConfigNum, Endpoint, GroupId, GroupInfo, Message,
    Now, Outcome, Seq, ServerId, ShardConfig, Transmit, View, ViewNum, VsAddr,
};

const G0: GroupId = GroupId(0);
const G1: GroupId = GroupId(1);
const ME: ClientId = ClientId(42);
/// Slots below this belong to group 0 in [`two_groups`], the others to group 1.
const SPLIT: u16 = SLOT_COUNT / 2;

fn view(num: u64, primary: &str) -> View {
    View {
        num: ViewNum(num),
        primary: ServerId::new(primary),
        backups: Vec::new(),
    }
}

fn view_service() -> Endpoint {
    Endpoint::ViewService(VsAddr::new(DEFAULT_VIEW_SERVICE))
}

fn server(name: &str) -> Endpoint {
    Endpoint::Server(ServerId::new(name))
}

/// A key whose slot is `< SPLIT` (`low`) or `>= SPLIT`.
fn key(low: bool, n: u32) -> Bytes {
    (0..)
        .map(|i| Bytes::from(format!("key:{n}:{i}")))
        .find(|k| (key_slot(k) < SPLIT) == low)
        .expect("some key hashes to each half")
}

fn cmd(args: &[&[u8]]) -> Command {
    let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
    Command::parse(&args).expect("a valid command")
}

fn get(key: &Bytes) -> Arc<Vec<Command>> {
    Arc::new(vec![cmd(&[b"GET", key])])
}

/// Configuration `num` of epoch `epoch`: slots `< split` to group 0, the rest to group 1; group
/// 0's primary is `a`, group 1's is `b`.
fn two_groups(epoch: u64, num: u64, owners: impl Fn(u16) -> GroupId) -> Arc<ClusterMap> {
    let owners: Vec<Option<GroupId>> = (0..SLOT_COUNT).map(|s| Some(owners(s))).collect();
    let mut groups = BTreeMap::new();
    for (group, primary) in [(G0, "a"), (G1, "b")] {
        groups.insert(
            group,
            GroupInfo {
                view: Some(view(1, primary)),
                ..GroupInfo::default()
            },
        );
    }
    Arc::new(ClusterMap {
        epoch,
        config: ShardConfig::from_owners(ConfigNum(num), &owners),
        previous: ShardConfig::default(),
        groups,
    })
}

fn halves(slot: u16) -> GroupId {
    if slot < SPLIT { G0 } else { G1 }
}

fn drain(clerk: &mut Clerk, at_ms: u64) -> Vec<Transmit> {
    std::iter::from_fn(|| clerk.poll_transmit(Now::at_ms(at_ms))).collect()
}

/// The requests among `out`, with where they go.
fn requests(out: &[Transmit]) -> Vec<(ServerId, Request)> {
    out.iter()
        .filter_map(|t| match (&t.to, &t.msg) {
            (Endpoint::Server(s), Message::Request(r)) => Some((s.clone(), r.clone())),
            _ => None,
        })
        .collect()
}

fn asks_for_map(out: &[Transmit]) -> bool {
    out.iter()
        .any(|t| matches!(t.msg, Message::GetCluster { .. }))
}

fn refuse(seq: Seq, error: RequestError) -> Message {
    Message::Response(Response {
        client: ME,
        seq,
        result: Err(error),
    })
}

fn answer(seq: Seq) -> Message {
    Message::Response(Response {
        client: ME,
        seq,
        result: Ok(Arc::new(Vec::new())),
    })
}

/// A clerk that holds the two-group map.
fn routed_clerk() -> Clerk {
    let mut clerk = Clerk::new(ME, G0, ClerkConfig::default());
    clerk.handle(
        Now::at_ms(0),
        view_service(),
        Message::ClusterReply(two_groups(3, 1, halves)),
    );
    drain(&mut clerk, 0);
    clerk
}

#[test]
fn s1_each_request_goes_to_the_primary_of_the_group_owning_its_slot() {
    let mut clerk = routed_clerk();
    for (low, primary, group) in [(true, "a", G0), (false, "b", G1)] {
        let k = key(low, 1);
        let seq = clerk.submit(Now::at_ms(1), get(&k));
        let sent = requests(&drain(&mut clerk, 1));
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, ServerId::new(primary));
        assert_eq!(sent[0].1.group, group);
        clerk.handle(Now::at_ms(2), server(primary), answer(seq));
        assert_eq!(
            clerk.poll_completion().map(|c| c.outcome),
            Some(Outcome::Replies(Arc::new(Vec::new())))
        );
    }
}

#[test]
fn s8_one_client_id_and_one_sequence_across_groups() {
    let mut clerk = routed_clerk();
    let mut seen = Vec::new();
    for (i, low) in [true, false, true, false].into_iter().enumerate() {
        let seq = clerk.submit(Now::at_ms(1), get(&key(low, i as u32)));
        let sent = requests(&drain(&mut clerk, 1));
        let (to, request) = &sent[0];
        seen.push((request.client, request.seq));
        clerk.handle(Now::at_ms(2), Endpoint::Server(to.clone()), answer(seq));
        assert!(clerk.poll_completion().is_some());
    }
    assert_eq!(
        seen,
        vec![(ME, Seq(1)), (ME, Seq(2)), (ME, Seq(3)), (ME, Seq(4))]
    );
}

#[test]
fn s8_a_retry_after_wrong_group_keeps_client_and_seq_and_goes_to_the_new_owner() {
    let mut clerk = routed_clerk();
    let k = key(true, 7);
    let slot = key_slot(&k);
    let seq = clerk.submit(Now::at_ms(10), get(&k));
    let first = requests(&drain(&mut clerk, 10));
    assert_eq!(first[0].0, ServerId::new("a"));
    // The slot moved to group 1 (configuration 2): group 0 refuses.
    clerk.handle(
        Now::at_ms(20),
        server("a"),
        refuse(
            seq,
            RequestError::WrongGroup {
                slot,
                config: ConfigNum(2),
            },
        ),
    );
    let out = drain(&mut clerk, 20);
    assert!(asks_for_map(&out), "a refusal by slot asks for a newer map");
    assert!(
        requests(&out).is_empty(),
        "no resend before the pause or a newer map"
    );
    let moved = two_groups(4, 2, |s| if s == slot { G1 } else { halves(s) });
    clerk.handle(Now::at_ms(25), view_service(), Message::ClusterReply(moved));
    let retry = requests(&drain(&mut clerk, 25));
    assert_eq!(retry.len(), 1, "a newer owner is tried at once");
    assert_eq!(retry[0].0, ServerId::new("b"));
    assert_eq!(retry[0].1.group, G1);
    assert_eq!((retry[0].1.client, retry[0].1.seq), (ME, seq));
    clerk.handle(Now::at_ms(30), server("b"), answer(seq));
    assert_eq!(clerk.poll_completion().map(|c| c.seq), Some(seq));
    assert_eq!(clerk.stats().wrong_group, 1);
}

#[test]
fn s4_slot_moving_refreshes_the_map_and_retries_the_same_request_shortly() {
    let mut clerk = routed_clerk();
    let k = key(false, 3);
    let seq = clerk.submit(Now::at_ms(0), get(&k));
    drain(&mut clerk, 0);
    clerk.handle(
        Now::at_ms(1),
        server("b"),
        refuse(seq, RequestError::SlotMoving { slot: key_slot(&k) }),
    );
    let out = drain(&mut clerk, 1);
    assert!(asks_for_map(&out));
    let config = ClerkConfig::default();
    let due = clerk.poll_timeout().expect("a resend is armed");
    assert!(
        due < 1 + config.ping_interval_ms,
        "a moving slot is retried sooner than a wrong server"
    );
    clerk.handle_timeout(Now::at_ms(due));
    let retry = requests(&drain(&mut clerk, due));
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].0, ServerId::new("b"));
    assert_eq!((retry[0].1.client, retry[0].1.seq), (ME, seq));
}

#[test]
fn c3_a_request_nobody_answers_times_out_at_its_deadline() {
    let config = ClerkConfig::default();
    let mut clerk = routed_clerk();
    clerk.submit(Now::at_ms(100), get(&key(true, 1)));
    let mut now = 100;
    let mut sends = 0;
    while clerk.poll_completion().is_none() {
        now = clerk.poll_timeout().expect("a timer while a request waits");
        clerk.handle_timeout(Now::at_ms(now));
        sends += requests(&drain(&mut clerk, now)).len();
    }
    assert_eq!(now, 100 + config.request_timeout_ms);
    assert!(sends >= 2, "resent after each attempt timeout");
    assert!(clerk.is_idle());
}

#[test]
fn c3_a_timed_out_request_ends_timed_out_not_cross_group() {
    let mut clerk = routed_clerk();
    let k = key(true, 11);
    let other = key(true, 12);
    let cmds = Arc::new(vec![cmd(&[b"SET", &k, b"1"]), cmd(&[b"SET", &other, b"2"])]);
    let seq = clerk.submit(Now::at_ms(0), cmds);
    assert_eq!(requests(&drain(&mut clerk, 0)).len(), 1);
    // The first attempt goes unanswered (it may have run), then the map splits the two keys.
    let resend = clerk.poll_timeout().expect("armed");
    clerk.handle_timeout(Now::at_ms(resend));
    drain(&mut clerk, resend);
    let split = two_groups(9, 2, |s| if s == key_slot(&other) { G1 } else { halves(s) });
    clerk.handle(
        Now::at_ms(resend + 1),
        view_service(),
        Message::ClusterReply(split),
    );
    clerk.handle(
        Now::at_ms(resend + 2),
        server("a"),
        refuse(
            seq,
            RequestError::WrongGroup {
                slot: key_slot(&other),
                config: ConfigNum(2),
            },
        ),
    );
    let mut targets = Vec::new();
    let outcome = loop {
        if let Some(completion) = clerk.poll_completion() {
            break completion.outcome;
        }
        let now = clerk.poll_timeout().expect("armed while a request waits");
        clerk.handle_timeout(Now::at_ms(now));
        targets.extend(
            requests(&drain(&mut clerk, now))
                .into_iter()
                .map(|(s, _)| s),
        );
    };
    assert_eq!(
        outcome,
        Outcome::TimedOut,
        "never CrossGroup once it may have run"
    );
    assert!(!targets.is_empty());
    assert!(
        targets.iter().all(|s| *s == ServerId::new("a")),
        "kept going to the group it went to: {targets:?}"
    );
}

#[test]
fn s1_a_request_split_by_a_move_before_any_attempt_ran_ends_cross_group() {
    let mut clerk = routed_clerk();
    let a = key(true, 21);
    let b = key(true, 22);
    let cmds = Arc::new(vec![cmd(&[b"GET", &a]), cmd(&[b"GET", &b])]);
    let seq = clerk.submit(Now::at_ms(0), cmds);
    assert_eq!(requests(&drain(&mut clerk, 0)).len(), 1);
    clerk.handle(
        Now::at_ms(1),
        server("a"),
        refuse(
            seq,
            RequestError::WrongGroup {
                slot: key_slot(&b),
                config: ConfigNum(2),
            },
        ),
    );
    let split = two_groups(9, 2, |s| if s == key_slot(&b) { G1 } else { halves(s) });
    clerk.handle(Now::at_ms(2), view_service(), Message::ClusterReply(split));
    assert_eq!(
        clerk.poll_completion(),
        Some(tandem_protocol::Completion {
            seq,
            outcome: Outcome::CrossGroup
        })
    );
    // Spanning groups from the start: never sent.
    let spanning = Arc::new(vec![cmd(&[b"GET", &a]), cmd(&[b"GET", &key(false, 1)])]);
    clerk.submit(Now::at_ms(3), spanning);
    assert!(requests(&drain(&mut clerk, 3)).is_empty());
    assert_eq!(
        clerk.poll_completion().map(|c| c.outcome),
        Some(Outcome::CrossGroup)
    );
}

#[test]
fn s1_a_request_without_keys_goes_to_the_group_named() {
    let mut clerk = routed_clerk();
    for (group, primary) in [(G1, "b"), (G0, "a")] {
        let seq = clerk.submit_to(
            Now::at_ms(1),
            Arc::new(vec![cmd(&[b"DBSIZE"])]),
            None,
            group,
        );
        let sent = requests(&drain(&mut clerk, 1));
        assert_eq!(sent[0].0, ServerId::new(primary));
        assert_eq!(sent[0].1.group, group);
        clerk.handle(Now::at_ms(2), server(primary), answer(seq));
        assert!(clerk.poll_completion().is_some());
    }
    // Without a group named, the home group.
    clerk.submit(Now::at_ms(3), Arc::new(vec![cmd(&[b"DBSIZE"])]));
    assert_eq!(requests(&drain(&mut clerk, 3))[0].1.group, G0);
}

#[test]
fn c1_until_a_map_assigns_slots_everything_goes_to_the_home_group_as_before_sharding() {
    let mut clerk = Clerk::new(ME, G0, ClerkConfig::default());
    let seq = clerk.submit(Now::at_ms(0), get(&key(false, 5)));
    let out = drain(&mut clerk, 0);
    assert!(requests(&out).is_empty());
    let asked: Vec<&Message> = out.iter().map(|t| &t.msg).collect();
    assert_eq!(asked, vec![&Message::GetCluster { epoch: 0 }]);
    assert_eq!(clerk.stats().view_queries, 1);
    clerk.handle(
        Now::at_ms(1),
        view_service(),
        Message::ViewReply(ViewReply {
            group: G0,
            view: Some(view(1, "a")),
            member_incarnation: None,
            cluster: None,
        }),
    );
    let sent = requests(&drain(&mut clerk, 1));
    assert_eq!(sent[0].0, ServerId::new("a"));
    assert_eq!(sent[0].1.group, G0);
    clerk.handle(Now::at_ms(2), server("a"), answer(seq));
    assert!(clerk.poll_completion().is_some());
    // A map of configuration 0 assigns nothing: still the home group (a view alone, as a hub
    // hands it, is enough).
    let empty = Arc::new(ClusterMap {
        epoch: 1,
        ..ClusterMap::default()
    });
    assert_eq!(
        route(Some(&empty), G0, None, &[SPLIT + 1]),
        Route::Group(G0)
    );
    assert_eq!(route(None, G1, None, &[0, SPLIT + 1]), Route::Group(G1));
}

#[test]
fn c1_once_a_map_arrived_only_newer_maps_are_asked_for() {
    let mut clerk = routed_clerk();
    let seq = clerk.submit(Now::at_ms(0), get(&key(true, 2)));
    drain(&mut clerk, 0);
    clerk.handle(
        Now::at_ms(1),
        server("a"),
        refuse(seq, RequestError::WrongServer(ViewNum(1))),
    );
    let asked: Vec<Message> = drain(&mut clerk, 1)
        .into_iter()
        .filter(|t| matches!(t.to, Endpoint::ViewService(_)))
        .map(|t| t.msg)
        .collect();
    assert_eq!(asked, vec![Message::GetCluster { epoch: 3 }]);
    // An older map changes nothing; a newer one with a new primary is used at once.
    let mut older = (*two_groups(2, 1, halves)).clone();
    older.groups.get_mut(&G0).expect("group 0").view = Some(view(5, "z"));
    clerk.handle(
        Now::at_ms(2),
        view_service(),
        Message::ClusterReply(Arc::new(older)),
    );
    assert!(requests(&drain(&mut clerk, 2)).is_empty());
    let mut newer = (*two_groups(4, 1, halves)).clone();
    newer.groups.get_mut(&G0).expect("group 0").view = Some(view(2, "c"));
    clerk.handle(
        Now::at_ms(3),
        view_service(),
        Message::ClusterReply(Arc::new(newer)),
    );
    let retry = requests(&drain(&mut clerk, 3));
    assert_eq!(retry[0].0, ServerId::new("c"));
    assert_eq!(retry[0].1.seq, seq);
}

#[test]
fn c4_maps_only_from_the_view_service_and_well_formed() {
    let mut clerk = Clerk::new(ME, G0, ClerkConfig::default());
    clerk.handle(
        Now::at_ms(0),
        server("mallory"),
        Message::ClusterReply(two_groups(3, 1, halves)),
    );
    assert!(clerk.map().is_none(), "a map from a server is not a map");
    let mut bad = (*two_groups(3, 1, halves)).clone();
    bad.groups.get_mut(&G1).expect("group 1").view = Some(view(0, "b"));
    clerk.handle(
        Now::at_ms(0),
        view_service(),
        Message::ClusterReply(Arc::new(bad)),
    );
    assert!(clerk.map().is_none(), "an ill-formed view in a map");
    assert_eq!(clerk.stats().refused, 1);
}
