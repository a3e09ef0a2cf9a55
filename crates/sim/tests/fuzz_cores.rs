//! Time-bounded fuzzing of every core's `handle`, run by CI (README, "Fuzzing"): each core fed
//! hostile messages (mutated copies of real traffic and made-up ones, from senders among the
//! real endpoints) from seeded generators. No input may panic a core or grow its state without
//! bound (P9-P11, C4, V11-V13, Q6). Besides the drivers of `tandem_sim::hostile` (shared with
//! the cargo-fuzz targets in `fuzz/`), a coverage-free mutation loop starts from a corpus of
//! real messages (a view service, three replicas and a clerk talking) and stacks mutations on
//! what it fed before. Every input the cargo-fuzz targets crashed on is replayed from
//! `fuzz/regressions/`.
//!
//! Each test runs for `TANDEM_FUZZ_SECS` seconds (default 10) from seed `TANDEM_FUZZ_SEED`
//! (default: from the clock); a failing seed is printed with the command that replays it.

use std::sync::Arc;

use bytes::Bytes;
use tandem_protocol::locator::DEFAULT_VIEW_SERVICE;
use tandem_protocol::rng::SplitMix64;
use tandem_protocol::{
    Clerk, ClerkConfig, ClientId, Endpoint, GroupId, Incarnation, Message, Now, Replica,
    ReplicaConfig, ServerId, Transmit, ViewService, ViewServiceConfig, VsAddr,
};
use tandem_sim::hostile::{self, ByteSource, Source};

const STEPS_PER_SEED: u64 = 2_000;

/// [`tandem_testkit::fuzz_for`] for this binary.
fn fuzz_for(test: &str, one: impl FnMut(u64)) {
    tandem_testkit::fuzz_for("-p tandem-sim --test fuzz_cores", test, one);
}

#[test]
fn p9_p10_p11_replicas_survive_hostile_peers() {
    fuzz_for("p9_p10_p11_replicas_survive_hostile_peers", |seed| {
        let (a, _b) = hostile::drive_replicas(&mut SplitMix64::new(seed), STEPS_PER_SEED);
        // Bounded: at most one transfer per backup of the (possibly forged) view.
        assert!(a.transfers_in_progress().len() <= tandem_protocol::view::MAX_BACKUPS);
    });
}

#[test]
fn v11_v12_v13_q6_the_view_service_survives_hostile_peers_with_bounded_state() {
    fuzz_for(
        "v11_v12_v13_q6_the_view_service_survives_hostile_peers_with_bounded_state",
        |seed| {
            let mut rng = SplitMix64::new(seed);
            let vs = hostile::drive_standalone_view_service(&mut rng, STEPS_PER_SEED);
            let status = vs.status(Now::at_ms(STEPS_PER_SEED * 10));
            assert!(status.groups.len() <= 16, "{}", status.groups.len());
            for g in &status.groups {
                let members = g.view.as_ref().map_or(0, |v| 1 + v.backups.len());
                assert!(g.servers.len() <= 4 + members, "{g:?}");
            }
            // The replicated node, fed Raft messages from its peers too.
            let replaced = hostile::drive_view_service_node(&mut rng, STEPS_PER_SEED);
            assert!(replaced < STEPS_PER_SEED);
        },
    );
}

#[test]
fn c4_a_clerk_survives_hostile_peers() {
    fuzz_for("c4_a_clerk_survives_hostile_peers", |seed| {
        let clerk = hostile::drive_clerk(&mut SplitMix64::new(seed), STEPS_PER_SEED);
        assert!(clerk.view().is_none_or(|v| v.is_well_formed()));
    });
}

/// The cores of one group: a view service, servers `a`, `b`, `c` and a clerk, as the hostile
/// mutator's cast names them.
struct Group {
    vs: ViewService,
    servers: Vec<Replica>,
    clerk: Clerk,
}

fn vs_endpoint() -> Endpoint {
    Endpoint::ViewService(VsAddr::new(DEFAULT_VIEW_SERVICE))
}

fn set(key: &str) -> Arc<Vec<tandem_kv::Command>> {
    let args = [
        Bytes::from("SET"),
        Bytes::from(key.to_owned()),
        Bytes::from("v"),
    ];
    Arc::new(tandem_kv::Command::parse(&args).ok().into_iter().collect())
}

impl Group {
    fn new() -> Group {
        let server = |name: &str| {
            Replica::new(
                ServerId::new(name),
                GroupId(0),
                Incarnation(1),
                ReplicaConfig::default(),
            )
        };
        let mut clerk = Clerk::new(ClientId(1), GroupId(0), ClerkConfig::default());
        clerk.set_view_services(vec![VsAddr::new(DEFAULT_VIEW_SERVICE)]);
        Group {
            vs: ViewService::new(ViewServiceConfig::default()),
            servers: ["a", "b", "c"].into_iter().map(server).collect(),
            clerk,
        }
    }

    /// Delivers `msg` from `from` to the core `to` names (nothing for a stranger).
    fn deliver(&mut self, now: Now, from: Endpoint, to: &Endpoint, msg: Message) {
        match to {
            Endpoint::ViewService(_) => self.vs.handle(now, from, msg),
            Endpoint::Server(id) => {
                if let Some(s) = self.servers.iter_mut().find(|s| s.id() == id) {
                    s.handle(now, from, msg);
                }
            }
            Endpoint::Client(_) => self.clerk.handle(now, from, msg),
        }
    }

    /// Runs every core's timers and delivers what they send, `rounds` times; returns every
    /// message sent, with its sender and destination.
    fn exchange(&mut self, now: Now, rounds: usize) -> Vec<(Endpoint, Transmit)> {
        let mut all = Vec::new();
        for _ in 0..rounds {
            self.vs.handle_timeout(now);
            self.servers.iter_mut().for_each(|s| s.handle_timeout(now));
            self.clerk.handle_timeout(now);
            let mut sent = Vec::new();
            while let Some(t) = self.vs.poll_transmit(now) {
                sent.push((vs_endpoint(), t));
            }
            for s in &mut self.servers {
                let me = Endpoint::Server(s.id().clone());
                while let Some(t) = s.poll_transmit(now) {
                    sent.push((me.clone(), t));
                }
            }
            while let Some(t) = self.clerk.poll_transmit(now) {
                sent.push((Endpoint::Client(ClientId(1)), t));
            }
            while self.clerk.poll_completion().is_some() {}
            for (from, t) in &sent {
                self.deliver(now, from.clone(), &t.to, t.msg.clone());
            }
            all.extend(sent);
        }
        all
    }
}

/// Real traffic: the group forming, then the clerk writing through it.
fn real_corpus() -> Vec<(Endpoint, Transmit)> {
    let mut group = Group::new();
    let mut corpus = Vec::new();
    for step in 0..400u64 {
        let now = Now::at_ms(step * 50);
        if group.clerk.is_idle() {
            group.clerk.submit(now, set(&format!("k{}", step % 7)));
        }
        corpus.extend(group.exchange(now, 2));
    }
    corpus
}

#[test]
fn p9_c4_v11_every_core_survives_mutations_stacked_on_real_traffic() {
    let corpus = real_corpus();
    let kinds: std::collections::HashSet<_> = corpus
        .iter()
        .map(|(_, t)| std::mem::discriminant(&t.msg))
        .collect();
    assert!(
        kinds.len() >= 6,
        "the real corpus has {} kinds of message",
        kinds.len()
    );
    let mutator = hostile::default_mutator();
    fuzz_for(
        "p9_c4_v11_every_core_survives_mutations_stacked_on_real_traffic",
        |seed| {
            let mut rng = SplitMix64::new(seed);
            let mut group = Group::new();
            // What this seed fed, mutated again later: mutations stack.
            let mut fed: Vec<(Endpoint, Endpoint, Message)> = Vec::new();
            for step in 0..STEPS_PER_SEED {
                let now = Now::at_ms(step * 10);
                let (to, from, msg) = if !fed.is_empty() && rng.below(3) == 0 {
                    fed[rng.below(fed.len() as u64) as usize].clone()
                } else {
                    let (from, t) = &corpus[rng.below(corpus.len() as u64) as usize];
                    (t.to.clone(), from.clone(), t.msg.clone())
                };
                let (from, msg) = if rng.below(8) == 0 {
                    (from, msg) // Replayed as it was: a duplicate or a stale message.
                } else {
                    mutator.mutate(&mut rng, &msg)
                };
                // Mostly to the core it was meant for; sometimes to another one.
                let to = match rng.below(6) {
                    0 => vs_endpoint(),
                    1 => Endpoint::Client(ClientId(1)),
                    2 => Endpoint::Server(ServerId::new(["a", "b", "c"][rng.below(3) as usize])),
                    _ => to,
                };
                group.deliver(now, from.clone(), &to, msg.clone());
                if fed.len() < 1024 {
                    fed.push((to, from, msg));
                } else {
                    fed[rng.below(1024) as usize] = (to, from, msg);
                }
                if group.clerk.is_idle() {
                    group.clerk.submit(now, set("k"));
                }
                group.exchange(now, 1);
            }
            for s in &group.servers {
                assert!(s.transfers_in_progress().len() <= tandem_protocol::view::MAX_BACKUPS);
            }
            assert!(group.clerk.view().is_none_or(|v| v.is_well_formed()));
        },
    );
}

/// Every input a cargo-fuzz target crashed on (`fuzz/regressions/TARGET/*`), replayed.
#[test]
fn fuzz_regressions_replay_without_panic() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    for target in ["replica_handle", "view_service_handle"] {
        let Ok(dir) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for file in dir.flatten() {
            let data = std::fs::read(file.path()).expect("readable regression input");
            let mut source = ByteSource::new(&data);
            assert!(!source.is_exhausted() || data.is_empty());
            match target {
                "replica_handle" => {
                    hostile::drive_replicas(&mut source, 256);
                }
                _ => hostile::drive_view_service(&mut source, 256),
            }
        }
    }
}
