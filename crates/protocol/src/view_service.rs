//! The view service core (rules V1-V9), for many replica groups at once.
//!
//! # How to drive it
//! - Inputs: [`ViewService::handle`] for every `Ping` or `GetView` (it returns the reply to send
//!   back), and [`ViewService::tick`] at least every ping interval.
//! - Outputs: the replies, plus [`ViewService::poll_event`] for the durable decisions taken.
//!
//! # Durable and soft state
//! Decisions that must survive a view-service failover are [`ViewEvent`]s applied to a
//! [`ViewTable`]: "group g has view v" and "the primary acknowledged view v". When each server
//! last pinged is soft state, rebuilt from pings. A later issue proposes the events through a Raft
//! log and applies them on every view-service replica; nothing else needs to be replicated.

use std::collections::{BTreeMap, VecDeque};

use crate::bug::Bug;
use crate::config::ViewServiceConfig;
use crate::ids::{GroupId, Incarnation, ServerId, ViewNum};
use crate::message::{
    Endpoint, GroupStatus, Message, Ping, ServerHealth, Status, Transmit, ViewChange, ViewReply,
};
use crate::time::Now;
use crate::view::View;

/// A durable decision of the view service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewEvent {
    /// `group` moves to `view` (whose number is one more than the current one).
    NewView {
        /// The group.
        group: GroupId,
        /// The new view.
        view: View,
        /// Incarnation of each member when it was put in the view (V4).
        incarnations: BTreeMap<ServerId, Incarnation>,
        /// Why, for operators.
        reason: String,
        /// When (the deciding replica's monotonic ms).
        at_ms: u64,
    },
    /// The primary of `group` acknowledged view `viewnum` (V6).
    Acked {
        /// The group.
        group: GroupId,
        /// The acknowledged view.
        viewnum: ViewNum,
    },
}

/// One past view, with why it was started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The view.
    pub view: View,
    /// Why it replaced the previous one.
    pub reason: String,
    /// When it was decided (monotonic ms).
    pub at_ms: u64,
}

/// The durable part of one group's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupViews {
    /// Current view (`None` before view 1).
    pub view: Option<View>,
    /// Has the primary acknowledged the current view? (V6)
    pub acked: bool,
    /// Incarnation of each member when it joined the current view.
    pub incarnations: BTreeMap<ServerId, Incarnation>,
    /// Recent views, oldest first, bounded by the configured history length.
    pub history: VecDeque<HistoryEntry>,
}

/// Every group's views: the state a replicated view service replicates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewTable {
    groups: BTreeMap<GroupId, GroupViews>,
    history_len: usize,
}

impl ViewTable {
    /// An empty table remembering `history_len` views per group.
    pub fn new(history_len: usize) -> ViewTable {
        ViewTable {
            groups: BTreeMap::new(),
            history_len,
        }
    }

    /// Applies one decision. Asserts the invariants of V1 and V6 on the way.
    pub fn apply(&mut self, event: &ViewEvent) {
        match event {
            ViewEvent::NewView {
                group,
                view,
                incarnations,
                reason,
                at_ms,
            } => {
                let state = self.groups.entry(*group).or_default();
                let current = state.view.as_ref().map_or(ViewNum::NONE, |v| v.num);
                assert_eq!(
                    view.num,
                    current.next(),
                    "V1: views are numbered consecutively"
                );
                assert!(
                    !view.backups.contains(&view.primary),
                    "primary is never its own backup"
                );
                state.view = Some(view.clone());
                state.acked = false;
                state.incarnations = incarnations.clone();
                state.history.push_back(HistoryEntry {
                    view: view.clone(),
                    reason: reason.clone(),
                    at_ms: *at_ms,
                });
                while state.history.len() > self.history_len {
                    state.history.pop_front();
                }
            }
            ViewEvent::Acked { group, viewnum } => {
                let state = self
                    .groups
                    .get_mut(group)
                    .expect("ack for a group without views");
                assert_eq!(
                    state.view.as_ref().map(|v| v.num),
                    Some(*viewnum),
                    "V6: only the current view is acked"
                );
                state.acked = true;
            }
        }
    }

    /// A group's state, if it has ever had a view.
    pub fn group(&self, group: GroupId) -> Option<&GroupViews> {
        self.groups.get(&group)
    }

    /// Every group, by id.
    pub fn groups(&self) -> impl Iterator<Item = (GroupId, &GroupViews)> {
        self.groups.iter().map(|(g, s)| (*g, s))
    }
}

/// What the view service knows of a server from its pings (soft state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// When it last pinged (monotonic ms).
    pub last_ping_ms: u64,
    /// Its incarnation at that ping.
    pub incarnation: Incarnation,
    /// The view number it reported.
    pub viewnum: ViewNum,
}

/// The view service state machine.
#[derive(Debug)]
pub struct ViewService {
    config: ViewServiceConfig,
    table: ViewTable,
    servers: BTreeMap<GroupId, BTreeMap<ServerId, Liveness>>,
    events: VecDeque<ViewEvent>,
    outbox: VecDeque<Transmit>,
}

impl ViewService {
    /// A view service with no groups yet.
    pub fn new(config: ViewServiceConfig) -> ViewService {
        let table = ViewTable::new(config.history_len);
        ViewService {
            config,
            table,
            servers: BTreeMap::new(),
            events: VecDeque::new(),
            outbox: VecDeque::new(),
        }
    }

    /// The durable table.
    pub fn table(&self) -> &ViewTable {
        &self.table
    }

    /// Servers known per group, with their last ping.
    pub fn liveness(&self, group: GroupId) -> impl Iterator<Item = (&ServerId, &Liveness)> {
        self.servers.get(&group).into_iter().flat_map(|m| m.iter())
    }

    /// The configuration.
    pub fn config(&self) -> &ViewServiceConfig {
        &self.config
    }

    /// The next durable decision taken, for whoever persists or replicates them.
    pub fn poll_event(&mut self) -> Option<ViewEvent> {
        self.events.pop_front()
    }

    /// Current view of `group` (C1: what coordinators ask for).
    pub fn view(&self, group: GroupId) -> ViewReply {
        ViewReply {
            group,
            view: self.table.group(group).and_then(|g| g.view.clone()),
            member_incarnation: None,
        }
    }

    /// Why `group` cannot make progress by the rules, if it cannot: the primary of an
    /// unacknowledged view is gone (V6), or every member of the view is gone (V7). Only the
    /// return of a server with the state (impossible after a crash: R3) unblocks it.
    pub fn stuck_reason(&self, group: GroupId, now: Now) -> Option<String> {
        let state = self.table.group(group)?;
        let view = state.view.as_ref()?;
        let why = self.usable(group, &view.primary, now)?;
        if !state.acked {
            return Some(format!(
                "primary {} of unacknowledged view {} {why} (V6)",
                view.primary, view.num
            ));
        }
        if view
            .backups
            .iter()
            .all(|b| self.usable(group, b, now).is_some())
        {
            return Some(format!(
                "primary {} {why} and no backup of view {} is left (V7)",
                view.primary, view.num
            ));
        }
        None
    }

    /// Every group's view, acknowledgement, idle servers, view history with reasons and ping
    /// health, for operators (`GetStatus`). Groups whose servers pinged but that have no view
    /// yet are listed too.
    pub fn status(&self, now: Now) -> Status {
        let mut ids: Vec<GroupId> = self.table.groups().map(|(g, _)| g).collect();
        ids.extend(self.servers.keys().copied());
        ids.sort();
        ids.dedup();
        let groups = ids
            .into_iter()
            .map(|group| {
                let state = self.table.group(group);
                GroupStatus {
                    group,
                    view: state.and_then(|s| s.view.clone()),
                    acked: state.is_some_and(|s| s.acked),
                    idle: self.idle(group, now),
                    history: state.map_or_else(Vec::new, |s| {
                        s.history
                            .iter()
                            .map(|h| ViewChange {
                                view: h.view.clone(),
                                reason: h.reason.clone(),
                                at_ms: h.at_ms,
                            })
                            .collect()
                    }),
                    servers: self
                        .liveness(group)
                        .map(|(server, live)| ServerHealth {
                            server: server.clone(),
                            last_ping_ago_ms: now.mono_ms.saturating_sub(live.last_ping_ms),
                            viewnum: live.viewnum,
                            alive: self.is_alive(live, now),
                        })
                        .collect(),
                }
            })
            .collect();
        Status {
            groups,
            now_ms: now.mono_ms,
            dead_after_ms: self.config.dead_after_ms(),
        }
    }

    /// Idle servers of `group`: alive, pinging, in no view (V9), in id order.
    pub fn idle(&self, group: GroupId, now: Now) -> Vec<ServerId> {
        let view = self.table.group(group).and_then(|g| g.view.as_ref());
        self.liveness(group)
            .filter(|(id, live)| self.is_alive(live, now) && !view.is_some_and(|v| v.contains(id)))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Handles a ping (V2): records liveness, takes any view decision it allows, and returns the
    /// group's current view.
    pub fn handle_ping(&mut self, now: Now, ping: &Ping) -> ViewReply {
        let group = ping.group;
        self.servers.entry(group).or_default().insert(
            ping.server.clone(),
            Liveness {
                last_ping_ms: now.mono_ms,
                incarnation: ping.incarnation,
                viewnum: ping.viewnum,
            },
        );
        let state = self.table.group(group);
        if state.and_then(|s| s.view.as_ref()).is_none() {
            // V5: the first server to ping a group that has no view becomes primary of view 1.
            let view = View {
                num: ViewNum(1),
                primary: ping.server.clone(),
                backups: Vec::new(),
            };
            let reason = format!("first server {} became primary", ping.server);
            self.decide(group, view, reason, now);
        }
        let state = self.table.group(group).expect("group has a view");
        let view = state.view.as_ref().expect("group has a view");
        if view.primary == ping.server
            && ping.viewnum == view.num
            && !state.acked
            && !self.restarted(group, &ping.server)
        {
            // V6: the primary acknowledges view N by pinging with N.
            let viewnum = view.num;
            self.record(ViewEvent::Acked { group, viewnum });
        }
        self.reconsider(group, now);
        let mut reply = self.view(group);
        reply.member_incarnation = self
            .table
            .group(group)
            .and_then(|g| g.incarnations.get(&ping.server))
            .copied();
        reply
    }

    /// Periodic work: declares servers dead (V3) and changes views where V6 allows (V8).
    pub fn tick(&mut self, now: Now) {
        let groups: Vec<GroupId> = self.table.groups().map(|(g, _)| g).collect();
        for group in groups {
            self.reconsider(group, now);
        }
    }

    fn is_alive(&self, live: &Liveness, now: Now) -> bool {
        now.mono_ms.saturating_sub(live.last_ping_ms) < self.config.dead_after_ms()
    }

    /// V4: a member whose incarnation changed since it joined the view restarted and lost its
    /// state (its pings carry view 0 again): it is treated exactly like a dead server.
    fn restarted(&self, group: GroupId, server: &ServerId) -> bool {
        let joined = self
            .table
            .group(group)
            .and_then(|g| g.incarnations.get(server));
        let live = self.servers.get(&group).and_then(|m| m.get(server));
        match (joined, live) {
            (Some(joined), Some(live)) => *joined != live.incarnation,
            _ => false,
        }
    }

    fn usable(&self, group: GroupId, server: &ServerId, now: Now) -> Option<String> {
        match self.servers.get(&group).and_then(|m| m.get(server)) {
            None => Some("never pinged".to_string()),
            Some(live) if !self.is_alive(live, now) => {
                let missed =
                    now.mono_ms.saturating_sub(live.last_ping_ms) / self.config.ping_interval_ms;
                Some(format!("missed {missed} pings"))
            }
            Some(_) if self.restarted(group, server) => Some("restarted".to_string()),
            Some(_) => None,
        }
    }

    /// V6-V8: decides the next view of `group`, if any change is needed and allowed.
    fn reconsider(&mut self, group: GroupId, now: Now) {
        let Some(state) = self.table.group(group) else {
            return;
        };
        let Some(view) = state.view.clone() else {
            return;
        };
        if !state.acked && !self.config.bugs.has(Bug::SkipViewAckWait) {
            return; // V6: keep returning view N until its primary acknowledged it.
        }
        let mut reasons = Vec::new();
        let mut backups = Vec::new();
        for backup in &view.backups {
            match self.usable(group, backup, now) {
                None => backups.push(backup.clone()),
                Some(why) => reasons.push(format!("backup {backup} {why}")),
            }
        }
        let primary = match self.usable(group, &view.primary, now) {
            None => view.primary.clone(),
            Some(why) => {
                reasons.push(format!("primary {} {why}", view.primary));
                if backups.is_empty() {
                    match self.promote_uninitialized(group, &view, now) {
                        Some(idle) => idle,
                        // V7: nobody with the state is alive: stay stuck, never wrong.
                        None => return,
                    }
                } else {
                    // V7, V8: promote the first live backup of the acknowledged view.
                    let promoted = backups.remove(0);
                    reasons.push(format!("promoted backup {promoted}"));
                    promoted
                }
            }
        };
        // V8, V9: fill up with idle servers. A member that restarted is alive again as a new,
        // empty server, so it may rejoin in the same view change (it gets a full state transfer).
        let candidates: Vec<ServerId> = self
            .liveness(group)
            .filter(|(id, live)| {
                self.is_alive(live, now) && **id != primary && !backups.contains(id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for server in candidates {
            if backups.len() >= self.config.backups {
                break;
            }
            reasons.push(format!("added idle server {server} as backup"));
            backups.push(server);
        }
        if reasons.is_empty() {
            return;
        }
        let next = View {
            num: view.num.next(),
            primary,
            backups,
        };
        self.decide(group, next, reasons.join("; "), now);
    }

    /// Only with the planted bug: an idle server becomes primary with no state (breaks V7).
    fn promote_uninitialized(&self, group: GroupId, view: &View, now: Now) -> Option<ServerId> {
        if !self.config.bugs.has(Bug::PromoteUninitializedServer) {
            return None;
        }
        self.idle(group, now)
            .into_iter()
            .find(|s| *s != view.primary)
    }

    /// Unsolicited replies: the view service tells every member of a new view at once instead
    /// of at its next ping, which shortens failover by up to a ping interval. Delivering them is
    /// an optimization only; a lost one is repaired by the next ping (V2).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    fn decide(&mut self, group: GroupId, view: View, reason: String, now: Now) {
        let live = self.servers.get(&group);
        let incarnations = view
            .members()
            .map(|s| {
                (
                    s.clone(),
                    live.and_then(|m| m.get(s))
                        .map_or(Incarnation(0), |l| l.incarnation),
                )
            })
            .collect();
        self.record(ViewEvent::NewView {
            group,
            view,
            incarnations,
            reason,
            at_ms: now.mono_ms,
        });
        self.notify_members(group);
    }

    fn notify_members(&mut self, group: GroupId) {
        let Some(state) = self.table.group(group) else {
            return;
        };
        let Some(view) = state.view.clone() else {
            return;
        };
        for member in view.members() {
            let reply = ViewReply {
                group,
                view: Some(view.clone()),
                member_incarnation: state.incarnations.get(member).copied(),
            };
            self.outbox.push_back(Transmit {
                to: Endpoint::Server(member.clone()),
                msg: Message::PingReply(reply),
            });
        }
        while self.outbox.len() > 4096 {
            self.outbox.pop_front();
        }
    }

    fn record(&mut self, event: ViewEvent) {
        self.table.apply(&event);
        self.events.push_back(event);
        while self.events.len() > 4096 {
            // Nobody is draining events (a standalone view service): keep memory bounded.
            self.events.pop_front();
        }
    }
}
