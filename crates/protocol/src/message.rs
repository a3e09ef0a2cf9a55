//! Every message the protocol cores exchange. The cores never touch sockets: they take a
//! `Message` from an `Endpoint` as input and queue `Transmit`s as output; the runtime (or the
//! simulator) moves them.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tandem_kv::{Command, Reply};

use crate::ids::{
    ClientId, ConfigNum, GroupId, Incarnation, LogPos, OpIndex, Seq, ServerId, ViewNum, VsAddr,
};
use crate::shard::ClusterMap;
use crate::view::{View, ViewChangeCause};

/// Who sent a message, or where one goes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Endpoint {
    /// One node of the view service, by address (Q1: any node; only the leader decides).
    ViewService(VsAddr),
    /// A replica server.
    Server(ServerId),
    /// A coordinator session (the runtime maps it to the connection it came from).
    Client(ClientId),
}

/// A message and where to send it.
#[derive(Clone, Debug, PartialEq)]
pub struct Transmit {
    /// Destination.
    pub to: Endpoint,
    /// Payload.
    pub msg: Message,
}

/// Everything on the wire between roles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Server -> view service, every ping interval (V2).
    Ping(Ping),
    /// View service -> server: the current view of the server's group (V2).
    PingReply(ViewReply),
    /// Coordinator -> view service: which view is current for `group`? (C1)
    GetView {
        /// The group asked about.
        group: GroupId,
    },
    /// View service -> coordinator.
    ViewReply(ViewReply),
    /// Coordinator -> primary.
    Request(Request),
    /// Primary (or a server refusing) -> coordinator.
    Response(Response),
    /// Primary -> backup: operations in order (P2, P3).
    Forward(Forward),
    /// Backup -> primary.
    ForwardReply(ForwardReply),
    /// Primary -> new backup: one chunk of the state (P6).
    Transfer(Transfer),
    /// New backup -> primary.
    TransferReply(TransferReply),
    /// Operator tool -> view service: every group's view, acknowledgement and idle servers.
    GetStatus {},
    /// View service -> operator tool.
    StatusReply(Status),
    /// A view-service node that is not the leader (or not yet ready to lead) -> a server or
    /// coordinator: ask `leader` instead, or another node when it is `None` (Q2).
    NotLeader {
        /// The leader this node knows of, if any.
        leader: Option<VsAddr>,
    },
    /// View-service node <-> view-service node: one Raft message (protobuf `eraftpb::Message`).
    Raft(Bytes),
    /// Operator tool -> view service: change the Raft membership (Q5).
    ChangeMembers(MemberChange),
    /// View service -> operator tool: the change was proposed (`Ok`) or why not.
    MembersReply(Result<(), MembersRefusal>),
    /// Coordinator or server front end -> view service: the cluster map, if newer than
    /// `epoch` (S2).
    GetCluster {
        /// The epoch of the map the asker holds (0 for none).
        epoch: u64,
    },
    /// View service -> asker: the current cluster map (S2).
    ClusterReply(Arc<ClusterMap>),
    /// Primary of the group giving slots up -> primary of the group taking them: one chunk of
    /// their keys (S5).
    SlotData(SlotData),
    /// Primary of the group taking slots -> primary of the group giving them up (S5).
    SlotDataReply(SlotDataReply),
    /// Operator tool -> view service: change the slot map (S3).
    ChangeSlots(SlotsChange),
    /// View service -> operator tool: the configuration the change made, or why not.
    SlotsReply(Result<ConfigNum, MembersRefusal>),
}

/// An operator's change of the slot map (S3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotsChange {
    /// Move the slots `ranges` (inclusive) to `to`.
    Move {
        /// Inclusive slot ranges.
        ranges: Vec<(u16, u16)>,
        /// The group that takes them.
        to: GroupId,
    },
    /// Spread the slots evenly over the groups that have a view, moving as few as possible.
    Rebalance,
}

/// Where a chunk of a slot move starts, or where the next one does (S5). The taker keeps the
/// one it expects in its replicated state and takes a chunk only if it starts there, so a
/// chunk built by any primary of the giver, before or after a failover, fits exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotCursor {
    /// The last key looked at, in the store's order (`None`: from the start).
    pub key: Option<Bytes>,
    /// Elements (or bytes) of `key`'s value already sent when the value is split (L16).
    pub key_sent: Option<u64>,
    /// Every key was sent: the keys changed during the pre-copy follow (S10).
    pub keys_done: bool,
    /// The last changed ("dirty") key sent, in the dirty set's order (S10).
    #[serde(default)]
    pub dirty: Option<Bytes>,
    /// Elements (or bytes) of `dirty`'s value already sent when the value is split (L16).
    #[serde(default)]
    pub dirty_sent: Option<u64>,
    /// Every dirty key was sent: at-most-once records follow.
    #[serde(default)]
    pub dirty_done: bool,
    /// The last session whose record was sent.
    pub client: Option<ClientId>,
}

/// One chunk of the keys of slots moving between groups in configuration `config` (S5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlotData {
    /// The configuration that moves them.
    pub config: ConfigNum,
    /// The group giving them up.
    pub from: GroupId,
    /// The group taking them.
    pub to: GroupId,
    /// Chunk number, from 0; applied strictly in order.
    pub chunk: u32,
    /// Where this chunk starts: the taker takes it only if that is where its history ends.
    #[serde(default)]
    pub start: SlotCursor,
    /// Where the next chunk starts.
    #[serde(default)]
    pub end: SlotCursor,
    /// Keys of the moving slots the taker deletes before storing `entries` (S10): a key
    /// changed during the pre-copy is sent again as this tombstone, followed by its current
    /// entry when it still exists.
    #[serde(default)]
    pub deleted: Vec<Bytes>,
    /// Key/value entries of the moving slots.
    pub entries: Vec<(Bytes, tandem_kv::Entry)>,
    /// After the keys: the at-most-once records of the giving group, so a request executed
    /// there is not executed again by the taker when its client retries (S8).
    pub clients: Vec<(ClientId, ClientRecord)>,
    /// True on the last chunk.
    pub done: bool,
}

/// The taking group's answer to a `SlotData` (S5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotDataReply {
    /// The configuration of the move.
    pub config: ConfigNum,
    /// The group giving them up.
    pub from: GroupId,
    /// The group taking them.
    pub to: GroupId,
    /// Chunks the taker holds in its history (the next one it expects).
    pub next_chunk: u32,
    /// Where the next chunk it expects starts: a giver that does not know (its primary failed
    /// over, or the taker's did and holds fewer chunks) resends from here.
    #[serde(default)]
    pub cursor: SlotCursor,
    /// Set once the taker's install is committed in its group: the giver may delete (S6).
    pub installed: bool,
}

/// Slot ranges leaving or reaching a group, with the other group (S5).
pub type GroupSlots = Vec<(GroupId, Vec<(u16, u16)>)>;

/// Why a view-service node did not propose a membership change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MembersRefusal {
    /// This node does not lead: ask `leader`, or again shortly when no leader is known.
    #[error("not the leader{}", match .leader { Some(l) => format!("; the leader is {l}"), None => "; no leader is known yet".to_owned() })]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<VsAddr>,
    },
    /// The leader was asked to remove itself and is handing leadership to node `to`: ask
    /// again shortly (Q5).
    #[error("this node leads: leadership is moving to node {to}; ask again")]
    HandingOver {
        /// The node taking over.
        to: u64,
    },
    /// The change itself is refused (the text says why); asking again will not help.
    #[error("{0}")]
    Invalid(String),
}

/// An online change of the view service's membership (Q5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberChange {
    /// Adds node `id`, reachable at `addr`, as a voter. The node must be running with an empty
    /// data directory; it catches up from the leader.
    Add {
        /// Raft id (non-zero, unused).
        id: u64,
        /// Its address.
        addr: VsAddr,
    },
    /// Removes node `id`.
    Remove {
        /// Raft id.
        id: u64,
    },
}

/// One view-service node as operators see it (in a [`Status`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Raft id.
    pub id: u64,
    /// Address.
    pub addr: String,
    /// "leader", "candidate", "precandidate" or "follower".
    pub role: String,
    /// Current term.
    pub term: u64,
    /// The leader's id, 0 when unknown.
    pub leader: u64,
    /// Highest log index known committed.
    pub commit: u64,
    /// Highest log index applied to the view table.
    pub applied: u64,
    /// Last log index.
    pub last_index: u64,
    /// Entries held in the in-memory log.
    pub log_entries: u64,
    /// Every member: id, address and, from this node, ms since it last heard from it (`None`:
    /// never; for itself 0).
    pub members: Vec<MemberStatus>,
}

/// A member of the view service as one node sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Raft id.
    pub id: u64,
    /// Address.
    pub addr: String,
    /// Ms since this node last received a Raft message from it.
    pub last_contact_ago_ms: Option<u64>,
}

/// The view service's state as operators see it (the answer to `GetStatus`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Every group that has pinged, by id.
    pub groups: Vec<GroupStatus>,
    /// The view service's monotonic clock when it answered, in ms: the reference point of every
    /// `at_ms` in the history.
    pub now_ms: u64,
    /// Silence after which the view service considers a server dead (V3), in ms.
    pub dead_after_ms: u64,
    /// The answering node of a replicated view service. Only the leader knows ping health:
    /// another node's `servers` lists are empty.
    pub node: Option<NodeStatus>,
    /// The cluster map of the answering node's applied table (S2): the slot map, and each
    /// group's client addresses and `config_done`.
    #[serde(default)]
    pub cluster: Option<Arc<ClusterMap>>,
}

/// One group's entry in a [`Status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    /// The group.
    pub group: GroupId,
    /// Its current view, `None` before view 1.
    pub view: Option<View>,
    /// Whether the primary acknowledged the current view (V6).
    pub acked: bool,
    /// Live servers of the group that are in no view (V9).
    pub idle: Vec<ServerId>,
    /// Recent views, oldest first, each with why it was started (bounded by the view
    /// service's `history_len`).
    pub history: Vec<ViewChange>,
    /// Every server that pinged for this group, with how long ago, in id order.
    pub servers: Vec<ServerHealth>,
}

/// One view change as operators see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    /// The view started.
    pub view: View,
    /// Why: every cause folded into the change (V8).
    pub causes: Vec<ViewChangeCause>,
    /// When it was decided, on the view service's monotonic clock (ms).
    pub at_ms: u64,
}

impl ViewChange {
    /// The causes as one line for people, e.g. "primary 127.0.0.1:7101 missed 5 pings;
    /// promoted backup 127.0.0.1:7102".
    pub fn reason(&self) -> String {
        crate::view::reason(&self.causes)
    }
}

/// What the view service knows of one server's pings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHealth {
    /// The server.
    pub server: ServerId,
    /// Time since its last ping during which the view service was running, in ms (a stall of
    /// the view service counts at most one ping interval: V3).
    pub last_ping_ago_ms: u64,
    /// The view number its last ping carried.
    pub viewnum: ViewNum,
    /// Whether it pinged within the dead interval (V3).
    pub alive: bool,
}

/// A server's heartbeat (V2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Group the server serves.
    pub group: GroupId,
    /// The pinging server.
    pub server: ServerId,
    /// The view the server operates in; for a primary, the last view it acknowledges (V6).
    pub viewnum: ViewNum,
    /// Changes when the process restarts (V4).
    pub incarnation: Incarnation,
    /// Where this server serves Redis clients (`--client-listen`), if it does (S2).
    #[serde(default)]
    pub client_addr: Option<String>,
    /// For a primary: the last configuration its group has fully taken on (S4).
    #[serde(default)]
    pub config_done: ConfigNum,
    /// The epoch of the cluster map the server holds; the reply carries a newer one (S2).
    #[serde(default)]
    pub cluster_epoch: u64,
}

/// The view service's answer about one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewReply {
    /// The group.
    pub group: GroupId,
    /// Its current view, `None` before view 1 (V1).
    pub view: Option<View>,
    /// In a reply to a member's ping: the incarnation the view service put in the view. A
    /// server whose own incarnation differs restarted since, and must not act in the view (V4).
    pub member_incarnation: Option<Incarnation>,
    /// In a reply to a ping: the cluster map, when newer than the one the server holds (S2).
    #[serde(default)]
    pub cluster: Option<Arc<ClusterMap>>,
}

/// A coordinator's request: a batch of commands executed in order, atomically with respect to
/// other requests, identified for at-most-once execution by `(client, seq)` (P8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Target group.
    pub group: GroupId,
    /// Session.
    pub client: ClientId,
    /// Sequence number; a session has at most one request outstanding.
    pub seq: Seq,
    /// The commands, in order.
    pub cmds: Arc<Vec<Command>>,
    /// The ACL user the coordinator authenticated the connection as; `None` if it never
    /// authenticated (A3). Trusted: coordinators are peers, authenticated themselves (A6).
    #[serde(default)]
    pub user: Option<Arc<str>>,
}

/// The answer to a `Request`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Session.
    pub client: ClientId,
    /// Sequence number of the request answered.
    pub seq: Seq,
    /// One reply per command, or why the request was not executed (yet).
    pub result: Result<Arc<Vec<Reply>>, RequestError>,
}

/// Why a server did not (yet) answer a request with replies. The coordinator retries on every
/// one of these with the same `(client, seq)` (C1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RequestError {
    /// This server is not the primary of the view it knows (P1).
    #[error("not the primary (view {0})")]
    WrongServer(ViewNum),
    /// A backup rejected the operation or could not be reached in time (P4).
    #[error("a backup did not confirm the operation")]
    BackupUnconfirmed,
    /// Too many operations are waiting for backups; try again shortly.
    #[error("primary busy")]
    Busy,
    /// The session already moved past this sequence number (a stale duplicate).
    #[error("stale request")]
    Stale,
    /// The request's slot is not this group's in configuration `config` (S4): ask the view
    /// service for a newer map and go to the owner.
    #[error("slot {slot} is not served by this group (configuration {config})")]
    WrongGroup {
        /// The slot.
        slot: u16,
        /// The configuration the server judged by.
        config: ConfigNum,
    },
    /// The request's slot is moving into or out of this group: try again shortly (S4).
    #[error("slot {slot} is moving")]
    SlotMoving {
        /// The slot.
        slot: u16,
    },
    /// The request's keys hash to more than one slot (S1).
    #[error("keys in request don't hash to the same slot")]
    CrossSlot,
}

/// One operation of a group's history, with every non-deterministic value the primary decided
/// (P5): a backup applies it using only these fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Position in the history.
    pub pos: LogPos,
    /// The primary's wall clock (Unix ms) when it ordered the operation; never decreases along a
    /// history.
    pub now_ms: u64,
    /// A random value chosen by the primary (RANDOMKEY and any future random choice).
    pub random: u64,
    /// The limits the primary applies to this operation's commands (L11, L13, L14): they
    /// travel with it so every replica refuses or accepts the same commands.
    pub limits: tandem_kv::Limits,
    /// What to do.
    pub op: Op,
}

/// The replicated operations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// A coordinator request (P8 table updated too).
    Client {
        /// Session.
        client: ClientId,
        /// Sequence number.
        seq: Seq,
        /// Commands, in order.
        cmds: Arc<Vec<Command>>,
        /// The request's ACL user (A6): every replica checks the commands against the same
        /// table, so a refusal is part of the history like any reply.
        #[serde(default)]
        user: Option<Arc<str>>,
    },
    /// Keys the primary found expired: deleted on every replica (P5).
    Expire {
        /// The expired keys.
        keys: Vec<Bytes>,
    },
    /// Keys the primary chose to evict to get under `maxmemory` (L12): deleted on every
    /// replica, so backups never choose victims themselves.
    Evict {
        /// The keys to delete.
        keys: Vec<Bytes>,
    },
    /// Forget at-most-once records of sessions idle since before `idle_before_ms` (history
    /// clock), so the table stays bounded as coordinator sessions come and go (P8).
    ForgetClients {
        /// Records last used before this time are dropped.
        idle_before_ms: u64,
    },
    /// The start of taking on configuration `config` (S4, S5): `serve` (newly assigned slots
    /// nobody held) are served at once, `give` are frozen (no longer executed) until dropped,
    /// `take` are expected from their giver, `release` (slots left unassigned) are no longer
    /// served and their keys deleted.
    TakeOn {
        /// The configuration taken on.
        config: ConfigNum,
        /// Slots served from this entry on.
        serve: Vec<(u16, u16)>,
        /// Slots frozen, by taker.
        give: GroupSlots,
        /// Slots expected, by giver.
        take: GroupSlots,
        /// Slots no longer served by anyone.
        release: Vec<(u16, u16)>,
    },
    /// One chunk of arriving slots, written into the store (not served yet) (S6): `deleted`
    /// first, then `entries`.
    InstallChunk {
        /// The configuration of the move.
        config: ConfigNum,
        /// The giver.
        from: GroupId,
        /// Its chunk number.
        chunk: u32,
        /// Where the next chunk starts.
        end: SlotCursor,
        /// Keys deleted first (S10: keys changed during the pre-copy).
        deleted: Vec<Bytes>,
        /// Keys and values.
        entries: Vec<(Bytes, tandem_kv::Entry)>,
        /// At-most-once records of the giver (S8): the higher `seq` per session is kept.
        clients: Vec<(ClientId, ClientRecord)>,
    },
    /// The arriving slots from `from` are served from this entry on (S6).
    Install {
        /// The configuration of the move.
        config: ConfigNum,
        /// The giver.
        from: GroupId,
    },
    /// The taker installed the slots frozen for it: these keys of them are deleted (S6). The
    /// primary finds them in bounded batches, so no entry holds the replicas for long.
    DropKeys {
        /// The configuration of the move.
        config: ConfigNum,
        /// The taker.
        to: GroupId,
        /// Keys of the slots frozen for `to`.
        keys: Vec<Bytes>,
    },
    /// The last `DropKeys` of a move was ordered: the move is over at the giver (S6).
    Drop {
        /// The configuration of the move.
        config: ConfigNum,
        /// The taker.
        to: GroupId,
    },
    /// The start of taking on configuration `config` by a group that gives slots away (S9):
    /// as `TakeOn`, except that the slots in `give` stay served while their keys are copied to
    /// the taker, and every key of them changed from this entry on is recorded (the dirty
    /// set).
    PreCopy {
        /// The configuration taken on.
        config: ConfigNum,
        /// Slots served from this entry on.
        serve: Vec<(u16, u16)>,
        /// Slots pre-copied, by taker (still served).
        give: GroupSlots,
        /// Slots expected, by giver.
        take: GroupSlots,
        /// Slots no longer served by anyone.
        release: Vec<(u16, u16)>,
    },
    /// The end of the pre-copy to `to` (S10): its slots are frozen from this entry on, and
    /// the keys recorded as changed are sent again after the rest.
    Freeze {
        /// The configuration of the move.
        config: ConfigNum,
        /// The taker.
        to: GroupId,
    },
}

/// Primary -> backup: entries that follow `prev` in the primary's history (P2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forward {
    /// The sender's view; the backup must be a backup in exactly this view (P3).
    pub view: ViewNum,
    /// The position just before `entries[0]` (or the primary's last position for a probe).
    pub prev: LogPos,
    /// Operations in order; may be empty (a probe).
    pub entries: Arc<Vec<LogEntry>>,
}

/// Backup -> primary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForwardReply {
    /// The view the backup is in.
    pub view: ViewNum,
    /// Outcome.
    pub result: ForwardResult,
}

/// Outcome of a forward at a backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardResult {
    /// Applied what extends its history; the backup's history now ends at `last`. If `last` is
    /// not in the primary's history, the primary starts a state transfer (P6).
    Ack {
        /// End of the backup's history.
        last: LogPos,
    },
    /// `prev` is beyond the backup's history (a lost or reordered batch): resend after `last`.
    Gap {
        /// End of the backup's history.
        last: LogPos,
    },
    /// The backup is not a backup of the sender's view, or the sender is not its primary (P3).
    Reject,
}

/// Primary -> new backup: a chunk of the state at snapshot position `snapshot` (P6).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    /// The sender's view.
    pub view: ViewNum,
    /// Identifies this transfer (a restarted transfer gets a new id).
    pub transfer_id: u64,
    /// Chunk number, from 0; the backup applies chunks strictly in order.
    pub chunk: u32,
    /// Key/value entries.
    pub entries: Vec<(Bytes, tandem_kv::Entry)>,
    /// At-most-once records (P8: part of the replicated state).
    pub clients: Vec<(ClientId, ClientRecord)>,
    /// Present on the last chunk: where the snapshot's history ends and its clock.
    pub done: Option<SnapshotEnd>,
    /// Present on the last chunk: the snapshot's ACL table (A1).
    #[serde(default)]
    pub acl: Option<tandem_kv::Acl>,
    /// Present on the last chunk: the snapshot's shard state (S4).
    #[serde(default)]
    pub shard: Option<crate::replica::ShardState>,
}

/// The end of a state snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEnd {
    /// History position of the snapshot.
    pub last: LogPos,
    /// The history's clock (largest `now_ms` applied).
    pub clock_ms: u64,
}

/// New backup -> primary: chunks received so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferReply {
    /// The backup's view.
    pub view: ViewNum,
    /// The transfer acknowledged.
    pub transfer_id: u64,
    /// Number of chunks applied (the next one expected), or `None` if rejected (P3 rules).
    pub next_chunk: Option<u32>,
    /// Set when the whole snapshot is installed: the backup's history now ends here.
    pub installed: Option<LogPos>,
}

/// The at-most-once record of one session (P8), replicated with the data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// Last sequence number executed.
    pub seq: Seq,
    /// Where in the history it was executed (the primary answers only once that is confirmed).
    pub index: OpIndex,
    /// The replies it produced; `None` for a read-only request applied by a backup. A backup
    /// does not execute reads: P4 only needs it to confirm the read's place in the history, and
    /// a read changes nothing. A retry of such a request is executed again, which is as if the
    /// client had issued it at that later moment, still within its wait (linearizable).
    pub replies: Option<Arc<Vec<Reply>>>,
    /// History clock when it was executed (for forgetting idle sessions).
    pub at_ms: u64,
}
