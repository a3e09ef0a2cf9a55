//! The view service core (rules V1-V9), for many replica groups at once.
//!
//! It is driven like every core (see the crate documentation): `handle` every `Ping`, `GetView`
//! and `GetStatus` (the answer goes to the sender through [`ViewService::poll_transmit`]),
//! `handle_timeout` when [`ViewService::poll_timeout`] is due, then drain `poll_transmit` and
//! [`ViewService::poll_event`] (the durable decisions taken).
//!
//! # Durable and soft state
//! Decisions that must survive a view-service failover are [`ViewEvent`]s applied to a
//! [`ViewTable`]: "group g has view v", "the primary acknowledged view v", and for the sharded
//! keyspace (S2, S3) "the slot map is configuration n", "server s serves clients at address a"
//! and "group g has taken on configuration n". When each server last pinged is soft state,
//! rebuilt from pings.
//!
//! # The slot map (S2, S3)
//! The first group to get a view gets every slot (configuration 1). After that the map changes
//! only by an operator's `ChangeSlots` (a move or a rebalance), and only when every group that
//! owns slots or takes part in the change has reported (`config_done` in its primary's pings)
//! that it took on the current configuration; [`ViewTable::apply`] checks the same rule, so it
//! holds over the committed log whoever led. The cluster map handed to servers and
//! coordinators is built from the applied table only (Q3); its epoch counts the applied
//! decisions that changed it, so every node hands out the same map under the same epoch. A later issue proposes the events through a Raft
//! log and applies them on every view-service replica; nothing else needs to be replicated.
//!
//! # The stall rule: a server is dead only for silence while the view service was running (V3)
//! Liveness is measured on a *running clock*, not on the monotonic clock. On every input the
//! running clock advances by the time since the previous input, but by at most one ping
//! interval; [`ViewService::poll_timeout`] asks to be woken at least once per ping interval, so
//! while the view service runs normally the running clock keeps pace with the monotonic one. When
//! the view service itself stalls (SIGSTOP, a long GC-like pause of its host, a scheduler that
//! starves it), the servers' pings wait in its inbox; without the rule it would wake up, see a
//! long silence from everyone and fail over healthy servers. With it, a stall of any length counts
//! at most one ping interval against the servers, and the pings that waited are read before anyone
//! is judged. The price: a server that really died during the stall is declared dead that much
//! later. Only liveness uses the running clock (last ping, the dead judgment, "missed N pings",
//! ping ages in the status); a history entry's `at_ms` stays on the monotonic clock. A Raft leader
//! of the replicated view service (next issue) starts and keeps its liveness judgments by the same
//! rule: only silence it witnessed while leading and running counts.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::bug::Bug;
use crate::config::ViewServiceConfig;
use crate::ids::{ConfigNum, GroupId, Incarnation, ServerId, ViewNum};
use crate::message::{
    Endpoint, GroupStatus, MembersRefusal, Message, Ping, ServerHealth, SlotsChange, Status,
    Transmit, ViewChange, ViewReply,
};
use crate::shard::{ClusterMap, GroupInfo, ShardConfig, SlotRange};
use crate::time::Now;
use crate::view::{Failure, View, ViewChangeCause, reason};
use tandem_kv::slots::SLOT_COUNT;

/// Most outputs queued. Drivers drain the outbox and the events after every input; the bounds
/// only keep memory finite for one that does not.
const MAX_QUEUED: usize = 4096;

/// A durable decision of the view service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ViewEvent {
    /// `group` moves to `view` (whose number is one more than the current one).
    NewView {
        /// The group.
        group: GroupId,
        /// The new view.
        view: View,
        /// Incarnation of each member when it was put in the view (V4).
        incarnations: BTreeMap<ServerId, Incarnation>,
        /// Why: every cause folded into this change (V8).
        causes: Vec<ViewChangeCause>,
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
    /// The slot map becomes `config` (S2, S3): numbered one more than the current one, well
    /// formed, every owner a group with a view, and gated (every group that owns slots or
    /// takes part in a move has taken on the current configuration).
    Slots {
        /// The next configuration.
        config: ShardConfig,
    },
    /// A member of `group`'s current view announced a new client address (S2), or none.
    ClientAddr {
        /// The server's group.
        group: GroupId,
        /// The server.
        server: ServerId,
        /// Where it serves Redis clients (at most [`MAX_CLIENT_ADDR_BYTES`]).
        addr: Option<String>,
    },
    /// The primary of `group` reported that its group has taken on configuration `num` (S3,
    /// S4). In the log, not soft state, because `apply` gates `Slots` on it.
    ConfigDone {
        /// The group.
        group: GroupId,
        /// The configuration taken on (increasing, at most the current one).
        num: ConfigNum,
    },
}

/// One past view, with why it was started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The view.
    pub view: View,
    /// Why it replaced the previous one.
    pub causes: Vec<ViewChangeCause>,
    /// When it was decided (monotonic ms).
    pub at_ms: u64,
}

impl HistoryEntry {
    /// The causes as one line for people.
    pub fn reason(&self) -> String {
        reason(&self.causes)
    }
}

/// The durable part of one group's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// Every group's views and the slot map: the state a replicated view service replicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewTable {
    groups: BTreeMap<GroupId, GroupViews>,
    history_len: usize,
    /// The current slot configuration (S2): number 0, empty, before the first assignment.
    config: ShardConfig,
    /// The configuration before it (empty before configuration 2).
    previous: ShardConfig,
    /// Client address of members of each group's current view (S2). Pruned to the view's
    /// members on every new view, so it stays as small as the views.
    client_addrs: BTreeMap<GroupId, BTreeMap<ServerId, String>>,
    /// The last configuration each group's primary reported taken on (S3, S4).
    config_done: BTreeMap<GroupId, ConfigNum>,
    /// Applied decisions that changed the cluster map: identical on every node that applied
    /// the same log, so it orders the maps they hand out.
    epoch: u64,
    /// The cluster map built from the above, built on demand and dropped on every change.
    #[serde(skip)]
    map: MapCache,
}

/// A cache that never makes two tables unequal.
#[derive(Clone, Debug, Default)]
struct MapCache(std::sync::OnceLock<Arc<ClusterMap>>);

impl PartialEq for MapCache {
    fn eq(&self, _: &MapCache) -> bool {
        true
    }
}

impl Eq for MapCache {}

/// Longest client address a ping may announce (S2); longer ones are not recorded.
pub const MAX_CLIENT_ADDR_BYTES: usize = 256;

impl ViewTable {
    /// An empty table remembering `history_len` views per group.
    pub fn new(history_len: usize) -> ViewTable {
        ViewTable {
            history_len,
            ..ViewTable::default()
        }
    }

    /// Applies one decision, or rejects it whole if it breaks V1 (views numbered consecutively,
    /// the primary never its own backup), acknowledges a view that is not current (V6), or
    /// breaks S2/S3 (a slot configuration out of order, malformed, naming a group without a
    /// view, or not gated). Every replica of a replicated view service applies the same log, so
    /// they reject the same entries.
    pub fn apply(&mut self, event: &ViewEvent) -> Result<(), TableError> {
        self.apply_inner(event)?;
        if event.changes_map() {
            self.epoch += 1;
            self.map = MapCache::default();
        }
        Ok(())
    }

    fn apply_inner(&mut self, event: &ViewEvent) -> Result<(), TableError> {
        match event {
            ViewEvent::NewView {
                group,
                view,
                incarnations,
                causes,
                at_ms,
            } => {
                let current = self
                    .groups
                    .get(group)
                    .and_then(|g| g.view.as_ref())
                    .map_or(ViewNum::NONE, |v| v.num);
                if view.num != current.next() {
                    return Err(TableError::NotNext {
                        group: *group,
                        current,
                        proposed: view.num,
                    });
                }
                if view.backups.contains(&view.primary) {
                    return Err(TableError::PrimaryIsBackup { group: *group });
                }
                let state = self.groups.entry(*group).or_default();
                state.view = Some(view.clone());
                state.acked = false;
                state.incarnations = incarnations.clone();
                state.history.push_back(HistoryEntry {
                    view: view.clone(),
                    causes: causes.clone(),
                    at_ms: *at_ms,
                });
                while state.history.len() > self.history_len {
                    state.history.pop_front();
                }
                if let Some(addrs) = self.client_addrs.get_mut(group) {
                    addrs.retain(|server, _| view.contains(server));
                    if addrs.is_empty() {
                        self.client_addrs.remove(group);
                    }
                }
            }
            ViewEvent::Acked { group, viewnum } => {
                let state = self.groups.get_mut(group);
                let current = state
                    .as_ref()
                    .and_then(|s| s.view.as_ref())
                    .map_or(ViewNum::NONE, |v| v.num);
                match state {
                    Some(state) if current == *viewnum => state.acked = true,
                    _ => {
                        return Err(TableError::AckNotCurrent {
                            group: *group,
                            current,
                            acked: *viewnum,
                        });
                    }
                }
            }
            ViewEvent::Slots { config } => {
                let current = self.config.num;
                if config.num != ConfigNum(current.0 + 1) {
                    return Err(TableError::ConfigNotNext {
                        current,
                        proposed: config.num,
                    });
                }
                if !config.is_well_formed() {
                    return Err(TableError::ConfigMalformed { num: config.num });
                }
                if let Some(group) = config
                    .ranges
                    .iter()
                    .map(|r| r.group)
                    .find(|g| self.view(*g).is_none())
                {
                    return Err(TableError::ConfigNoView {
                        num: config.num,
                        group,
                    });
                }
                if let Some((group, done)) = self.ungated(config).into_iter().next() {
                    return Err(TableError::ConfigNotGated {
                        num: config.num,
                        group,
                        done,
                    });
                }
                self.previous = std::mem::replace(&mut self.config, config.clone());
            }
            ViewEvent::ClientAddr {
                group,
                server,
                addr,
            } => {
                if !self.view(*group).is_some_and(|v| v.contains(server)) {
                    return Err(TableError::NotMember {
                        group: *group,
                        server: server.clone(),
                    });
                }
                if addr
                    .as_ref()
                    .is_some_and(|a| a.len() > MAX_CLIENT_ADDR_BYTES)
                {
                    return Err(TableError::AddrTooLong { group: *group });
                }
                let addrs = self.client_addrs.entry(*group).or_default();
                match addr {
                    Some(addr) => {
                        addrs.insert(server.clone(), addr.clone());
                    }
                    None => {
                        addrs.remove(server);
                    }
                }
                if addrs.is_empty() {
                    self.client_addrs.remove(group);
                }
            }
            ViewEvent::ConfigDone { group, num } => {
                let done = self.config_done(*group);
                if self.view(*group).is_none() || *num <= done || *num > self.config.num {
                    return Err(TableError::ConfigDoneOutOfOrder {
                        group: *group,
                        done,
                        reported: *num,
                    });
                }
                self.config_done.insert(*group, *num);
            }
        }
        Ok(())
    }

    /// S3: the groups that must have taken on the current configuration before `next` may
    /// follow it, and have not (with what they reported): every group owning slots now, and
    /// every group giving or taking slots in `next`.
    pub fn ungated(&self, next: &ShardConfig) -> Vec<(GroupId, ConfigNum)> {
        let current = self.config.num;
        let mut involved: BTreeSet<GroupId> = self.config.ranges.iter().map(|r| r.group).collect();
        for m in self.config.moves_to(next) {
            involved.insert(m.from);
            involved.insert(m.to);
        }
        involved
            .into_iter()
            .map(|g| (g, self.config_done(g)))
            .filter(|(_, done)| *done < current)
            .collect()
    }

    /// The groups still taking on the current configuration (a move in progress, S3): those
    /// owning slots in it or moving slots into it whose `config_done` is behind.
    pub fn moving(&self) -> Vec<(GroupId, ConfigNum)> {
        let current = self.config.num;
        let mut involved: BTreeSet<GroupId> = self.config.ranges.iter().map(|r| r.group).collect();
        for m in self.previous.moves_to(&self.config) {
            involved.insert(m.from);
            involved.insert(m.to);
        }
        involved
            .into_iter()
            .map(|g| (g, self.config_done(g)))
            .filter(|(_, done)| *done < current)
            .collect()
    }

    /// The current slot configuration.
    pub fn shard_config(&self) -> &ShardConfig {
        &self.config
    }

    /// The configuration before the current one.
    pub fn previous_config(&self) -> &ShardConfig {
        &self.previous
    }

    /// The last configuration `group` reported taken on.
    pub fn config_done(&self, group: GroupId) -> ConfigNum {
        self.config_done.get(&group).copied().unwrap_or_default()
    }

    /// The client address recorded for `server` of `group`.
    pub fn client_addr(&self, group: GroupId, server: &ServerId) -> Option<&str> {
        self.client_addrs
            .get(&group)
            .and_then(|m| m.get(server))
            .map(String::as_str)
    }

    /// The number of applied decisions that changed the cluster map.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The cluster map of the applied table (S2), built once per change.
    pub fn cluster_map(&self) -> Arc<ClusterMap> {
        self.map
            .0
            .get_or_init(|| {
                let groups = self
                    .groups
                    .iter()
                    .map(|(g, state)| {
                        let info = GroupInfo {
                            view: state.view.clone(),
                            client_addrs: self.client_addrs.get(g).cloned().unwrap_or_default(),
                            config_done: self.config_done(*g),
                        };
                        (*g, info)
                    })
                    .collect();
                Arc::new(ClusterMap {
                    epoch: self.epoch,
                    config: self.config.clone(),
                    previous: self.previous.clone(),
                    groups,
                })
            })
            .clone()
    }

    fn view(&self, group: GroupId) -> Option<&View> {
        self.groups.get(&group).and_then(|g| g.view.as_ref())
    }

    /// A group's state, if it has ever had a view.
    pub fn group(&self, group: GroupId) -> Option<&GroupViews> {
        self.groups.get(&group)
    }

    /// Number of groups with a view.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// True before any group has a view.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Every group, by id.
    pub fn groups(&self) -> impl Iterator<Item = (GroupId, &GroupViews)> {
        self.groups.iter().map(|(g, s)| (*g, s))
    }
}

/// Why a ping was refused (V11, V12). Counted in [`ViewServiceStats::pings_refused`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
enum PingRefusal {
    /// V11: the ping names another server than the endpoint it came from.
    #[error("the ping names another server than its sender")]
    NotTheSender,
    /// V12: the server id is longer than any address.
    #[error("server id longer than {MAX_SERVER_ID_BYTES} bytes")]
    IdTooLong,
    /// V12: a new group while `max_groups` are known.
    #[error("too many groups")]
    TooManyGroups,
    /// V12: a new server while `max_servers_per_group` servers outside the view are known.
    #[error("too many servers in the group")]
    TooManyServers,
}

/// A decision that does not fit the table it is applied to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// V1: a view whose number does not follow the current one.
    #[error("group {group}: view {proposed} does not follow view {current} (V1)")]
    NotNext {
        /// The group.
        group: GroupId,
        /// Its current view number.
        current: ViewNum,
        /// The number of the rejected view.
        proposed: ViewNum,
    },
    /// A view whose primary is also one of its backups.
    #[error("group {group}: a view's primary is also its backup")]
    PrimaryIsBackup {
        /// The group.
        group: GroupId,
    },
    /// S2: a slot configuration not numbered one more than the current one.
    #[error("configuration {proposed} does not follow configuration {current} (S2)")]
    ConfigNotNext {
        /// The current configuration number.
        current: ConfigNum,
        /// The rejected one.
        proposed: ConfigNum,
    },
    /// S2: overlapping, unsorted or out-of-range slot ranges.
    #[error("configuration {num} is malformed (S2)")]
    ConfigMalformed {
        /// The rejected configuration.
        num: ConfigNum,
    },
    /// S2: a configuration giving slots to a group without a view.
    #[error("configuration {num} gives slots to group {group}, which has no view (S2)")]
    ConfigNoView {
        /// The rejected configuration.
        num: ConfigNum,
        /// The group.
        group: GroupId,
    },
    /// S3: a configuration made while a group it involves has not taken on the current one.
    #[error(
        "configuration {num} involves group {group}, which has taken on only configuration {done} (S3)"
    )]
    ConfigNotGated {
        /// The rejected configuration.
        num: ConfigNum,
        /// The group behind.
        group: GroupId,
        /// What it reported.
        done: ConfigNum,
    },
    /// S2: a client address for a server outside its group's current view.
    #[error("group {group}: {server} is not in the current view")]
    NotMember {
        /// The group.
        group: GroupId,
        /// The server.
        server: ServerId,
    },
    /// S2: a client address longer than [`MAX_CLIENT_ADDR_BYTES`].
    #[error("group {group}: client address longer than {MAX_CLIENT_ADDR_BYTES} bytes")]
    AddrTooLong {
        /// The group.
        group: GroupId,
    },
    /// S3: a `config_done` that does not increase, or names a configuration not yet made.
    #[error("group {group}: reported configuration {reported} taken on after {done} (S3)")]
    ConfigDoneOutOfOrder {
        /// The group.
        group: GroupId,
        /// What it reported before.
        done: ConfigNum,
        /// The rejected report.
        reported: ConfigNum,
    },
    /// V6: an acknowledgement of a view that is not the current one.
    #[error("group {group}: acknowledgement of view {acked} while view {current} is current (V6)")]
    AckNotCurrent {
        /// The group.
        group: GroupId,
        /// Its current view number.
        current: ViewNum,
        /// The view acknowledged.
        acked: ViewNum,
    },
}

impl ViewEvent {
    /// The group the decision is about; `None` for a change of the slot map.
    pub fn group(&self) -> Option<GroupId> {
        match self {
            ViewEvent::NewView { group, .. }
            | ViewEvent::Acked { group, .. }
            | ViewEvent::ClientAddr { group, .. }
            | ViewEvent::ConfigDone { group, .. } => Some(*group),
            ViewEvent::Slots { .. } => None,
        }
    }

    /// Whether applying it changes the cluster map (and so its epoch).
    fn changes_map(&self) -> bool {
        !matches!(self, ViewEvent::Acked { .. })
    }
}

/// How a view service's decisions become durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// One process, no log: a decision is applied as it is taken (unit tests).
    Standalone,
    /// A node of the replicated view service that does not lead: it decides nothing, and its
    /// table changes only through `apply_committed`.
    Follower,
    /// The leader of the replicated view service: a decision is proposed (`poll_proposal`) and
    /// applied only once committed (Q3); until then its group takes no other decision.
    Leader,
}

/// What the view service knows of a server from its pings (soft state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// When it last pinged, on the view service's running clock (see the stall rule).
    pub last_ping_running_ms: u64,
    /// Its incarnation at that ping.
    pub incarnation: Incarnation,
    /// The view number it reported.
    pub viewnum: ViewNum,
}

/// The clock liveness is measured on: time during which the view service was running (see the
/// module documentation's stall rule).
#[derive(Clone, Copy, Debug, Default)]
struct RunningClock {
    /// Running milliseconds at the last input.
    running_ms: u64,
    /// Monotonic milliseconds of the last input; `None` before the first.
    last_input_mono_ms: Option<u64>,
}

impl RunningClock {
    /// The running clock at `now`, counting at most `cap_ms` of the gap since the last input.
    fn at(&self, now: Now, cap_ms: u64) -> u64 {
        match self.last_input_mono_ms {
            None => self.running_ms,
            Some(last) => self.running_ms + now.mono_ms.saturating_sub(last).min(cap_ms),
        }
    }

    /// Moves the clock to `now` on an input.
    fn advance(&mut self, now: Now, cap_ms: u64) {
        self.running_ms = self.at(now, cap_ms);
        let last = self.last_input_mono_ms.unwrap_or(now.mono_ms);
        self.last_input_mono_ms = Some(last.max(now.mono_ms));
    }
}

/// Longest server id a ping may carry (a `HOST:PORT` or a name): longer ones are refused (V12).
pub const MAX_SERVER_ID_BYTES: usize = 255;

/// Counters for operators and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewServiceStats {
    /// Pings refused without creating state (V11, V12): sent by another endpoint than the
    /// server they name, naming a group beyond `max_groups`, a server beyond
    /// `max_servers_per_group`, or an over-long server id.
    pub pings_refused: u64,
    /// Servers outside every view forgotten after a long silence (V13).
    pub servers_forgotten: u64,
}

/// The view service state machine.
#[derive(Debug)]
pub struct ViewService {
    config: ViewServiceConfig,
    stats: ViewServiceStats,
    /// Running-clock time of the next sweep for servers to forget (V13).
    next_forget_running_ms: u64,
    table: ViewTable,
    servers: BTreeMap<GroupId, BTreeMap<ServerId, Liveness>>,
    clock: RunningClock,
    /// A ping changed what the view service knows since it last judged. The judgment waits for
    /// the next `handle_timeout`, which the driver calls only after every message already
    /// delivered (V3: no server is judged while its ping waits unread).
    judgment_due: bool,
    mode: Mode,
    /// Groups with a proposed decision not yet committed (replicated mode).
    pending: BTreeSet<GroupId>,
    /// A slot configuration is proposed and not yet committed (replicated mode).
    slots_pending: bool,
    /// Decisions to propose through the log (replicated mode, leader only).
    proposals: VecDeque<ViewEvent>,
    events: VecDeque<ViewEvent>,
    outbox: VecDeque<Transmit>,
}

impl ViewService {
    /// A standalone view service with no groups yet: each decision is applied as it is taken.
    pub fn new(config: ViewServiceConfig) -> ViewService {
        let table = ViewTable::new(config.history_len);
        ViewService {
            config,
            stats: ViewServiceStats::default(),
            next_forget_running_ms: 0,
            table,
            servers: BTreeMap::new(),
            clock: RunningClock::default(),
            judgment_due: false,
            mode: Mode::Standalone,
            pending: BTreeSet::new(),
            slots_pending: false,
            proposals: VecDeque::new(),
            events: VecDeque::new(),
            outbox: VecDeque::new(),
        }
    }

    /// The decision logic of one node of the replicated view service, starting as a follower
    /// with `table` (the state machine as of its snapshot).
    pub fn replicated(config: ViewServiceConfig, table: ViewTable) -> ViewService {
        let mut vs = ViewService::new(config);
        vs.table = table;
        vs.mode = Mode::Follower;
        vs
    }

    // ---- replicated mode (driven by `consensus::ViewServiceNode`) ----

    /// This node became the leader and has applied every entry committed before its term: it
    /// starts deciding (Q3). It knows nothing of recent pings, so every member of every view
    /// gets a full detection period from now before it can be declared dead (Q4): a leader
    /// change never causes a view change by itself.
    pub fn lead(&mut self, now: Now) {
        self.advance(now);
        self.mode = Mode::Leader;
        self.pending.clear();
        self.slots_pending = false;
        self.proposals.clear();
        self.servers.clear();
        self.judgment_due = false;
        if self.config.bugs.has(Bug::NewLeaderJudgesImmediately) {
            return;
        }
        let running_ms = self.clock.running_ms;
        for (group, state) in &self.table.groups {
            let Some(view) = &state.view else { continue };
            for member in view.members() {
                let incarnation = state
                    .incarnations
                    .get(member)
                    .copied()
                    .unwrap_or(Incarnation(0));
                self.servers.entry(*group).or_default().insert(
                    member.clone(),
                    Liveness {
                        last_ping_running_ms: running_ms,
                        incarnation,
                        viewnum: ViewNum::NONE,
                    },
                );
            }
        }
    }

    /// This node no longer leads: it forgets pings and proposals (a later leadership starts
    /// afresh, Q4).
    pub fn follow(&mut self) {
        if self.mode == Mode::Standalone {
            return;
        }
        self.mode = Mode::Follower;
        self.pending.clear();
        self.slots_pending = false;
        self.proposals.clear();
        self.servers.clear();
        self.outbox.clear();
        self.judgment_due = false;
    }

    /// Whether this node takes decisions (standalone, or the ready leader).
    pub fn is_deciding(&self) -> bool {
        self.mode != Mode::Follower
    }

    /// The next decision to propose through the log (replicated leader only).
    #[must_use]
    pub fn poll_proposal(&mut self) -> Option<ViewEvent> {
        self.proposals.pop_front()
    }

    /// Applies a committed decision (every node, in log order). On the leader, a new view is
    /// pushed to its members now that it is committed (Q3).
    pub fn apply_committed(&mut self, event: &ViewEvent) -> Result<(), TableError> {
        match event.group() {
            Some(group) => {
                self.pending.remove(&group);
            }
            None => self.slots_pending = false,
        }
        let applied = self.table.apply(event);
        if applied.is_ok() {
            self.push_event(event.clone());
            if self.mode == Mode::Leader {
                if let ViewEvent::NewView { group, .. } = event {
                    self.notify_members(*group);
                }
                // A committed decision may allow the next one (an ack, then a failover).
                self.judgment_due = true;
            }
        }
        applied
    }

    /// Replaces the table (a snapshot installed from the leader).
    pub fn restore(&mut self, table: ViewTable) {
        self.table = table;
        self.pending.clear();
        self.slots_pending = false;
        self.proposals.clear();
    }

    // ---- inputs ----

    /// Handles one message: a server's `Ping` (V2), a coordinator's `GetView` (C1) or
    /// `GetCluster` (S2), an operator's `GetStatus` or `ChangeSlots` (S3; the driver admits it
    /// from admins only). The answer goes to `from` through [`ViewService::poll_transmit`].
    /// Messages not addressed to a view service are ignored rather than trusted.
    pub fn handle(&mut self, now: Now, from: Endpoint, msg: Message) {
        self.advance(now);
        let reply = match msg {
            Message::Ping(ping) => {
                if let Err(why) = self.admit(&from, &ping) {
                    let _ = why; // The reason documents the rule; operators see the count.
                    self.stats.pings_refused += 1;
                    return;
                }
                Message::PingReply(self.on_ping(now, &ping))
            }
            Message::GetView { group } => Message::ViewReply(ViewReply {
                group,
                view: self.view(group).cloned(),
                member_incarnation: None,
                cluster: None,
            }),
            Message::GetStatus {} => Message::StatusReply(self.status(now)),
            Message::GetCluster { .. } => Message::ClusterReply(self.table.cluster_map()),
            Message::ChangeSlots(change) => Message::SlotsReply(self.change_slots(&change)),
            Message::PingReply(_)
            | Message::ViewReply(_)
            | Message::Request(_)
            | Message::Response(_)
            | Message::Forward(_)
            | Message::ForwardReply(_)
            | Message::Transfer(_)
            | Message::TransferReply(_)
            | Message::StatusReply(_)
            | Message::NotLeader { .. }
            | Message::Raft(_)
            | Message::ChangeMembers(_)
            | Message::MembersReply(_)
            | Message::ClusterReply(_)
            | Message::SlotData(_)
            | Message::SlotDataReply(_)
            | Message::SlotsReply(_) => return,
        };
        self.send(from, reply);
    }

    /// Timers: declares servers dead (V3) and changes views where V6 allows (V8). Calling it
    /// early is harmless.
    pub fn handle_timeout(&mut self, now: Now) {
        self.advance(now);
        self.judgment_due = false;
        if self.mode == Mode::Follower {
            return;
        }
        self.forget_silent();
        let groups: Vec<GroupId> = self.table.groups().map(|(g, _)| g).collect();
        for group in groups {
            self.reconsider(group, now);
        }
        self.assign_first();
    }

    /// V11, V12: whether a ping may be taken. Checked before it changes anything.
    fn admit(&self, from: &Endpoint, ping: &Ping) -> Result<(), PingRefusal> {
        if *from != Endpoint::Server(ping.server.clone()) {
            return Err(PingRefusal::NotTheSender);
        }
        if ping.server.as_str().len() > MAX_SERVER_ID_BYTES {
            return Err(PingRefusal::IdTooLong);
        }
        let known_group =
            self.table.group(ping.group).is_some() || self.servers.contains_key(&ping.group);
        if !known_group && self.group_count() >= self.config.max_groups {
            return Err(PingRefusal::TooManyGroups);
        }
        let tracked = self.servers.get(&ping.group);
        let known_server = tracked.is_some_and(|m| m.contains_key(&ping.server))
            || self
                .view(ping.group)
                .is_some_and(|v| v.contains(&ping.server));
        let outside_views = tracked.map_or(0, |m| {
            let view = self.view(ping.group);
            m.keys()
                .filter(|s| !view.is_some_and(|v| v.contains(s)))
                .count()
        });
        if !known_server && outside_views >= self.config.max_servers_per_group {
            return Err(PingRefusal::TooManyServers);
        }
        Ok(())
    }

    /// Groups known: with a view, or with pings.
    fn group_count(&self) -> usize {
        let without_view = self
            .servers
            .keys()
            .filter(|g| self.table.group(**g).is_none())
            .count();
        self.table.len() + without_view
    }

    /// V13: forgets servers outside every view whose silence reached `forget_after_ms`, at most
    /// once per dead interval. Liveness is the deciding node's soft state (a follower holds
    /// none, a new leader starts from the views' members only: Q4), so nothing needs the log.
    fn forget_silent(&mut self) {
        let running_ms = self.clock.running_ms;
        if running_ms < self.next_forget_running_ms {
            return;
        }
        self.next_forget_running_ms = running_ms.saturating_add(self.config.dead_after_ms());
        let forget_after_ms = self.config.forget_after_ms();
        let mut forgotten = 0;
        for (group, servers) in self.servers.iter_mut() {
            let view = self.table.group(*group).and_then(|g| g.view.as_ref());
            servers.retain(|id, live| {
                let keep = view.is_some_and(|v| v.contains(id))
                    || running_ms.saturating_sub(live.last_ping_running_ms) < forget_after_ms;
                forgotten += u64::from(!keep);
                keep
            });
        }
        self.servers.retain(|_, servers| !servers.is_empty());
        self.stats.servers_forgotten += forgotten;
    }

    // ---- outputs ----

    /// When [`ViewService::handle_timeout`] must be called next (monotonic ms): when the next
    /// member of a view would be dead, and at least once per ping interval so that the running
    /// clock keeps pace while the view service runs (the stall rule). `None` before any input.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.mode == Mode::Follower {
            return None;
        }
        let last_input_ms = self.clock.last_input_mono_ms?;
        if self.judgment_due {
            return Some(last_input_ms);
        }
        let running_ms = self.clock.running_ms;
        let mut at = last_input_ms + self.config.ping_interval_ms;
        for (group, state) in self.table.groups() {
            let Some(view) = &state.view else { continue };
            for member in view.members() {
                let Some(live) = self.servers.get(&group).and_then(|m| m.get(member)) else {
                    continue;
                };
                let dead_at_running_ms = live.last_ping_running_ms + self.config.dead_after_ms();
                // A member already dead was judged at the last input (or V6 holds the change
                // back until an acknowledging ping): only a death still to come needs a wake-up.
                if dead_at_running_ms > running_ms {
                    at = at.min(last_input_ms + (dead_at_running_ms - running_ms));
                }
            }
        }
        Some(at)
    }

    /// The next message to send: answers to the senders of handled messages, and a new view
    /// pushed to every member at once instead of at its next ping, which shortens failover by
    /// up to a ping interval (a lost push is repaired by the next ping: V2). Drain it until
    /// `None` after every input.
    #[must_use]
    pub fn poll_transmit(&mut self, _now: Now) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next durable decision taken, for whoever persists or replicates them.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ViewEvent> {
        self.events.pop_front()
    }

    // ---- read-only accessors (status, admin, tests; never used to answer messages) ----

    /// The durable table.
    pub fn table(&self) -> &ViewTable {
        &self.table
    }

    /// Servers known per group, with their last ping.
    pub fn liveness(&self, group: GroupId) -> impl Iterator<Item = (&ServerId, &Liveness)> {
        self.servers.get(&group).into_iter().flat_map(|m| m.iter())
    }

    /// Counters.
    pub fn stats(&self) -> &ViewServiceStats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &ViewServiceConfig {
        &self.config
    }

    /// Current view of `group`, `None` before view 1.
    pub fn view(&self, group: GroupId) -> Option<&View> {
        self.table.group(group).and_then(|g| g.view.as_ref())
    }

    /// Why `group` cannot make progress by the rules, if it cannot: the primary of an
    /// unacknowledged view is gone (V6), or every member of the view is gone (V7). Only the
    /// return of a server with the state (impossible after a crash: R3) unblocks it.
    #[must_use]
    pub fn stuck_reason(&self, group: GroupId, now: Now) -> Option<String> {
        let running_ms = self.running_at(now);
        let state = self.table.group(group)?;
        let view = state.view.as_ref()?;
        let why = self.usable(group, &view.primary, running_ms)?;
        if !state.acked {
            return Some(format!(
                "primary {} of unacknowledged view {} {why} (V6)",
                view.primary, view.num
            ));
        }
        if view
            .backups
            .iter()
            .all(|b| self.usable(group, b, running_ms).is_some())
        {
            return Some(format!(
                "primary {} {why} and no backup of view {} is left (V7)",
                view.primary, view.num
            ));
        }
        None
    }

    /// Every group's view, acknowledgement, idle servers, view history with reasons and ping
    /// health, for operators. Groups whose servers pinged but that have no view yet are listed
    /// too. Ping ages are on the running clock (the silence counted against each server).
    pub fn status(&self, now: Now) -> Status {
        let running_ms = self.running_at(now);
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
                    idle: self.idle_at(group, running_ms),
                    history: state.map_or_else(Vec::new, |s| {
                        s.history
                            .iter()
                            .map(|h| ViewChange {
                                view: h.view.clone(),
                                causes: h.causes.clone(),
                                at_ms: h.at_ms,
                            })
                            .collect()
                    }),
                    servers: self
                        .liveness(group)
                        .map(|(server, live)| ServerHealth {
                            server: server.clone(),
                            last_ping_ago_ms: running_ms.saturating_sub(live.last_ping_running_ms),
                            viewnum: live.viewnum,
                            alive: self.is_alive(live, running_ms),
                        })
                        .collect(),
                }
            })
            .collect();
        Status {
            groups,
            now_ms: now.mono_ms,
            dead_after_ms: self.config.dead_after_ms(),
            node: None,
        }
    }

    /// Idle servers of `group`: alive, pinging, in no view (V9), in id order.
    pub fn idle(&self, group: GroupId, now: Now) -> Vec<ServerId> {
        self.idle_at(group, self.running_at(now))
    }

    // ---- the rules ----

    fn idle_at(&self, group: GroupId, running_ms: u64) -> Vec<ServerId> {
        let view = self.view(group);
        self.liveness(group)
            .filter(|(id, live)| {
                self.is_alive(live, running_ms) && !view.is_some_and(|v| v.contains(id))
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The most of a gap between two inputs that counts as running time (the stall rule).
    fn stall_cap_ms(&self) -> u64 {
        if self.config.bugs.has(Bug::VsJudgesAfterStall) {
            u64::MAX
        } else {
            self.config.ping_interval_ms
        }
    }

    fn advance(&mut self, now: Now) {
        let cap_ms = self.stall_cap_ms();
        self.clock.advance(now, cap_ms);
    }

    /// The running clock at `now`, as the next input would set it.
    fn running_at(&self, now: Now) -> u64 {
        self.clock.at(now, self.stall_cap_ms())
    }

    /// A ping (V2): records liveness, takes any view decision it allows, and returns the
    /// group's current view.
    fn on_ping(&mut self, now: Now, ping: &Ping) -> ViewReply {
        let group = ping.group;
        self.servers.entry(group).or_default().insert(
            ping.server.clone(),
            Liveness {
                last_ping_running_ms: self.clock.running_ms,
                incarnation: ping.incarnation,
                viewnum: ping.viewnum,
            },
        );
        if self.view(group).is_none() && !self.pending.contains(&group) {
            // V5: the first server to ping a group that has no view becomes primary of view 1.
            let view = View {
                num: ViewNum(1),
                primary: ping.server.clone(),
                backups: Vec::new(),
            };
            let cause = ViewChangeCause::FirstPrimary {
                server: ping.server.clone(),
            };
            self.decide(group, view, vec![cause], now);
        }
        // V6: the primary acknowledges view N by pinging with N (once the view is committed:
        // in replicated mode the table holds only committed decisions).
        let ack = self.table.group(group).and_then(|state| {
            let view = state.view.as_ref()?;
            (view.primary == ping.server
                && ping.viewnum == view.num
                && !state.acked
                && !self.pending.contains(&group)
                && !self.restarted(group, &ping.server))
            .then_some(view.num)
        });
        if let Some(viewnum) = ack {
            self.record(ViewEvent::Acked { group, viewnum });
        }
        self.learn_from_ping(ping);
        self.assign_first();
        // V3: judge once every delivered ping is read (the driver calls `handle_timeout` after
        // draining its inbox); a new view reaches the members through `notify_members`.
        self.judgment_due = true;
        ViewReply {
            group,
            view: self.view(group).cloned(),
            member_incarnation: self
                .table
                .group(group)
                .and_then(|g| g.incarnations.get(&ping.server))
                .copied(),
            // S2: the map only to a server holding another one (keeps replies small).
            cluster: (ping.cluster_epoch != self.table.epoch()).then(|| self.table.cluster_map()),
        }
    }

    /// S2, S3: what a ping from a member of the current view tells the table: a new client
    /// address, or (from the primary) a configuration its group has taken on. One decision
    /// per group at a time, like views (Q3): a later ping proposes what waited.
    fn learn_from_ping(&mut self, ping: &Ping) {
        let group = ping.group;
        if self.pending.contains(&group) || self.restarted(group, &ping.server) {
            return;
        }
        let Some(view) = self.view(group) else {
            return;
        };
        if !view.contains(&ping.server) {
            return;
        }
        let is_primary = view.primary == ping.server && ping.viewnum == view.num;
        let addr = ping
            .client_addr
            .clone()
            .filter(|a| a.len() <= MAX_CLIENT_ADDR_BYTES);
        if addr.as_deref() != self.table.client_addr(group, &ping.server) {
            self.record(ViewEvent::ClientAddr {
                group,
                server: ping.server.clone(),
                addr,
            });
        } else if is_primary
            && ping.config_done > self.table.config_done(group)
            && ping.config_done <= self.table.shard_config().num
        {
            self.record(ViewEvent::ConfigDone {
                group,
                num: ping.config_done,
            });
        }
    }

    /// S2: while nothing is assigned, the first group with a view gets every slot
    /// (configuration 1), so a single group serves the whole keyspace with no command.
    fn assign_first(&mut self) {
        if self.mode == Mode::Follower
            || self.slots_pending
            || self.table.shard_config().num != ConfigNum(0)
        {
            return;
        }
        let Some(group) = self
            .table
            .groups()
            .find(|(_, s)| s.view.is_some())
            .map(|(g, _)| g)
        else {
            return;
        };
        let config = ShardConfig {
            num: ConfigNum(1),
            ranges: vec![SlotRange {
                start: 0,
                end: SLOT_COUNT - 1,
                group,
            }],
        };
        self.record(ViewEvent::Slots { config });
    }

    /// S3: an operator's change of the slot map, checked against the applied table and
    /// proposed as the next configuration. The answer is the configuration number once
    /// proposed (standalone: applied); a change that changes nothing answers the current one.
    fn change_slots(&mut self, change: &SlotsChange) -> Result<ConfigNum, MembersRefusal> {
        if self.mode == Mode::Follower {
            return Err(MembersRefusal::NotLeader { leader: None });
        }
        if self.slots_pending {
            return Err(MembersRefusal::Invalid(
                "another slot change is being committed; try again in a moment".to_owned(),
            ));
        }
        let current = self.table.shard_config().clone();
        if current.num == ConfigNum(0) {
            return Err(MembersRefusal::Invalid(
                "no slot configuration yet: no group has a view".to_owned(),
            ));
        }
        let moving = self.table.moving();
        if !moving.is_empty() {
            return Err(MembersRefusal::Invalid(format!(
                "a move is in progress: configuration {} is not yet taken on by {}; wait until \
                 it is done (tandem slots show) and try again",
                current.num,
                describe_behind(&moving)
            )));
        }
        let with_view: Vec<GroupId> = self
            .table
            .groups()
            .filter(|(_, s)| s.view.is_some())
            .map(|(g, _)| g)
            .collect();
        let owners = match change {
            SlotsChange::Move { ranges, to } => {
                if ranges.is_empty() || ranges.len() > usize::from(SLOT_COUNT) {
                    return Err(MembersRefusal::Invalid(format!(
                        "give 1 to {SLOT_COUNT} slot ranges"
                    )));
                }
                if let Some((a, b)) = ranges.iter().find(|(a, b)| a > b || *b >= SLOT_COUNT) {
                    return Err(MembersRefusal::Invalid(format!(
                        "slot range {a}-{b} is not within 0-{}",
                        SLOT_COUNT - 1
                    )));
                }
                if !with_view.contains(to) {
                    return Err(MembersRefusal::Invalid(format!(
                        "group {to} has no view: start its servers first"
                    )));
                }
                let mut owners = current.owners();
                for (a, b) in ranges {
                    for slot in *a..=*b {
                        owners[usize::from(slot)] = Some(*to);
                    }
                }
                owners
            }
            SlotsChange::Rebalance => rebalanced(&current, &with_view),
        };
        let next = ShardConfig::from_owners(ConfigNum(current.num.0 + 1), &owners);
        if next.ranges == current.ranges {
            return Ok(current.num);
        }
        let behind = self.table.ungated(&next);
        if !behind.is_empty() {
            return Err(MembersRefusal::Invalid(format!(
                "{} not yet reported configuration {} (a group's primary reports it in its \
                 next pings); try again in a moment",
                describe_behind(&behind),
                current.num
            )));
        }
        let num = next.num;
        self.record(ViewEvent::Slots { config: next });
        Ok(num)
    }

    fn is_alive(&self, live: &Liveness, running_ms: u64) -> bool {
        running_ms.saturating_sub(live.last_ping_running_ms) < self.config.dead_after_ms()
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

    /// How `server` failed, if it cannot keep its place in a view.
    fn usable(&self, group: GroupId, server: &ServerId, running_ms: u64) -> Option<Failure> {
        match self.servers.get(&group).and_then(|m| m.get(server)) {
            None => Some(Failure::NeverPinged),
            Some(live) if !self.is_alive(live, running_ms) => {
                let silent_ms = running_ms.saturating_sub(live.last_ping_running_ms);
                Some(Failure::MissedPings {
                    count: silent_ms / self.config.ping_interval_ms,
                })
            }
            Some(_) if self.restarted(group, server) => Some(Failure::Restarted),
            Some(_) => None,
        }
    }

    /// V6-V8: decides the next view of `group`, if any change is needed and allowed.
    fn reconsider(&mut self, group: GroupId, now: Now) {
        let running_ms = self.clock.running_ms;
        if self.pending.contains(&group) {
            return; // One decision at a time per group: the last one is not committed yet.
        }
        let Some(state) = self.table.group(group) else {
            return;
        };
        let Some(view) = state.view.clone() else {
            return;
        };
        if !state.acked && !self.config.bugs.has(Bug::SkipViewAckWait) {
            return; // V6: keep returning view N until its primary acknowledged it.
        }
        let mut causes = Vec::new();
        let mut backups = Vec::new();
        for backup in &view.backups {
            match self.usable(group, backup, running_ms) {
                None => backups.push(backup.clone()),
                Some(failure) => causes.push(ViewChangeCause::BackupFailed {
                    server: backup.clone(),
                    failure,
                }),
            }
        }
        let primary = match self.usable(group, &view.primary, running_ms) {
            None => view.primary.clone(),
            Some(failure) => {
                causes.push(ViewChangeCause::PrimaryFailed {
                    server: view.primary.clone(),
                    failure,
                });
                if backups.is_empty() {
                    match self.promote_uninitialized(group, &view, running_ms) {
                        Some(idle) => idle,
                        // V7: nobody with the state is alive: stay stuck, never wrong.
                        None => return,
                    }
                } else {
                    // V7, V8: promote the first live backup of the acknowledged view.
                    let promoted = backups.remove(0);
                    causes.push(ViewChangeCause::BackupPromoted {
                        server: promoted.clone(),
                    });
                    promoted
                }
            }
        };
        // V8, V9: fill up with idle servers. A member that restarted is alive again as a new,
        // empty server, so it may rejoin in the same view change (it gets a full state transfer).
        let candidates: Vec<ServerId> = self
            .liveness(group)
            .filter(|(id, live)| {
                self.is_alive(live, running_ms) && **id != primary && !backups.contains(id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for server in candidates {
            if backups.len() >= self.config.backups {
                break;
            }
            causes.push(ViewChangeCause::IdleAdded {
                server: server.clone(),
            });
            backups.push(server);
        }
        if causes.is_empty() {
            return;
        }
        let next = View {
            num: view.num.next(),
            primary,
            backups,
        };
        self.decide(group, next, causes, now);
    }

    /// Only with the planted bug: an idle server becomes primary with no state (breaks V7).
    fn promote_uninitialized(
        &self,
        group: GroupId,
        view: &View,
        running_ms: u64,
    ) -> Option<ServerId> {
        if !self.config.bugs.has(Bug::PromoteUninitializedServer) {
            return None;
        }
        self.idle_at(group, running_ms)
            .into_iter()
            .find(|s| *s != view.primary)
    }

    fn decide(&mut self, group: GroupId, view: View, causes: Vec<ViewChangeCause>, now: Now) {
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
        let event = ViewEvent::NewView {
            group,
            view,
            incarnations,
            causes,
            at_ms: now.mono_ms,
        };
        if self.mode == Mode::Leader && self.config.bugs.has(Bug::RevealUncommittedView) {
            // Planted: the members hear of the view before it is committed (breaks Q3).
            self.push_view(&event);
        }
        self.record(event);
        if self.mode == Mode::Standalone {
            self.notify_members(group);
        }
    }

    /// Only with the planted bug `reveal-uncommitted-view`: pushes a proposed view.
    fn push_view(&mut self, event: &ViewEvent) {
        let ViewEvent::NewView {
            group,
            view,
            incarnations,
            ..
        } = event
        else {
            return;
        };
        for member in view.members() {
            let msg = Message::PingReply(ViewReply {
                group: *group,
                view: Some(view.clone()),
                member_incarnation: incarnations.get(member).copied(),
                cluster: None,
            });
            self.send(Endpoint::Server(member.clone()), msg);
        }
    }

    fn notify_members(&mut self, group: GroupId) {
        let Some(state) = self.table.group(group) else {
            return;
        };
        let Some(view) = state.view.clone() else {
            return;
        };
        let pushes: Vec<Transmit> = view
            .members()
            .map(|member| Transmit {
                to: Endpoint::Server(member.clone()),
                msg: Message::PingReply(ViewReply {
                    group,
                    view: Some(view.clone()),
                    member_incarnation: state.incarnations.get(member).copied(),
                    cluster: Some(self.table.cluster_map()),
                }),
            })
            .collect();
        for push in pushes {
            self.send(push.to, push.msg);
        }
    }

    fn send(&mut self, to: Endpoint, msg: Message) {
        self.outbox.push_back(Transmit { to, msg });
        while self.outbox.len() > MAX_QUEUED {
            self.outbox.pop_front();
        }
    }

    /// A decision taken: applied now (standalone), or proposed through the log (leader).
    fn record(&mut self, event: ViewEvent) {
        match self.mode {
            Mode::Standalone => {
                self.table
                    .apply(&event)
                    .expect("a standalone view service decides by the rules");
                self.push_event(event);
            }
            Mode::Leader => {
                if matches!(event, ViewEvent::Acked { .. })
                    && self.config.bugs.has(Bug::AckBeforeCommit)
                {
                    // Planted: the acknowledgement counts at once and is never logged (Q3).
                    let _ = self.table.apply(&event);
                    return;
                }
                match event.group() {
                    Some(group) => {
                        self.pending.insert(group);
                    }
                    None => self.slots_pending = true,
                }
                self.proposals.push_back(event);
                while self.proposals.len() > MAX_QUEUED {
                    self.proposals.pop_front();
                }
            }
            Mode::Follower => {}
        }
    }

    fn push_event(&mut self, event: ViewEvent) {
        self.events.push_back(event);
        while self.events.len() > MAX_QUEUED {
            // Nobody is draining events: keep memory bounded.
            self.events.pop_front();
        }
    }
}

/// "group 1 (at configuration 3), group 2 (at 2)" for refusals.
fn describe_behind(behind: &[(GroupId, ConfigNum)]) -> String {
    let names: Vec<String> = behind
        .iter()
        .map(|(g, done)| format!("group {g} (it reported configuration {done})"))
        .collect();
    names.join(", ")
}

/// S3: one owner per slot spreading every slot over `groups` (each gets `SLOT_COUNT / n` or one
/// more), moving as few as possible: the groups owning most keep the larger shares, each group
/// keeps its lowest slots up to its share, and the rest (with unassigned slots) goes to groups
/// under their share, in slot and group order.
pub fn rebalanced(current: &ShardConfig, groups: &[GroupId]) -> Vec<Option<GroupId>> {
    let mut owners = current.owners();
    if groups.is_empty() {
        return owners;
    }
    let n = groups.len();
    let base = usize::from(SLOT_COUNT) / n;
    let extra = usize::from(SLOT_COUNT) % n;
    let mut counts: BTreeMap<GroupId, usize> = groups.iter().map(|g| (*g, 0)).collect();
    for owner in owners.iter().flatten() {
        if let Some(c) = counts.get_mut(owner) {
            *c += 1;
        }
    }
    let mut by_size: Vec<GroupId> = groups.to_vec();
    by_size.sort_by_key(|g| (std::cmp::Reverse(counts[g]), *g));
    let quota: BTreeMap<GroupId, usize> = by_size
        .iter()
        .enumerate()
        .map(|(i, g)| (*g, base + usize::from(i < extra)))
        .collect();
    let mut kept: BTreeMap<GroupId, usize> = groups.iter().map(|g| (*g, 0)).collect();
    let mut free = Vec::new();
    for (slot, owner) in owners.iter_mut().enumerate() {
        match owner.and_then(|g| kept.get_mut(&g).map(|k| (g, k))) {
            Some((g, k)) if *k < quota[&g] => *k += 1,
            _ => {
                *owner = None;
                free.push(slot);
            }
        }
    }
    let mut free = free.into_iter();
    for g in groups {
        let missing = quota[g] - kept[g];
        for slot in free.by_ref().take(missing) {
            owners[slot] = Some(*g);
        }
    }
    owners
}
