//! The replicated state of a group: the key/value store, the at-most-once table (P8), where
//! the history ends, and the history's clock. Every replica applies the same entries in the same
//! order to it (R1).

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use imbl::{OrdMap, OrdSet};
use tandem_kv::{Command, ExecContext, Reply, Store, reply_bytes, reply_too_large};

use crate::bug::{Bug, Bugs};
use crate::ids::{ClientId, LogPos, OpIndex, Seq};
use crate::message::{ClientRecord, LogEntry, Op};
use crate::replica::shard::{Giving, InstallChunk, ShardState, TakeOn};

/// Mixes the primary's random value with a command's position in its batch, so that each
/// command of a batch gets its own value while staying deterministic (P5).
fn command_random(random: u64, position: usize) -> u64 {
    random ^ (position as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A request that changes nothing: a backup only records its place in the history (P4).
fn is_read_only(cmds: &[Command]) -> bool {
    cmds.iter().all(|cmd| !cmd.is_write())
}

/// Everything replicated. `Clone` is cheap (persistent maps): a primary snapshots it to start a
/// state transfer while it keeps serving.
#[derive(Clone, Debug, Default)]
pub struct ReplicatedState {
    /// The data.
    pub store: Store,
    /// At-most-once records by session (P8).
    pub clients: OrdMap<ClientId, ClientRecord>,
    /// The same sessions ordered by last use, to forget idle ones (derived from `clients`).
    pub clients_by_age: OrdSet<(u64, ClientId)>,
    /// End of the history this state results from.
    pub last: LogPos,
    /// Largest `now_ms` applied: the primary never orders an operation before it, so time never
    /// runs backwards across a failover to a server with a slower clock.
    pub clock_ms: u64,
    /// The group's share of the sharded keyspace (S4).
    pub shard: ShardState,
}

impl ReplicatedState {
    /// Applies the next entry of the history as the primary that ordered it, and returns the
    /// replies (empty for internal operations).
    pub fn apply_as_primary(&mut self, entry: &LogEntry, bugs: Bugs) -> Arc<Vec<Reply>> {
        self.advance_to(entry);
        match &entry.op {
            Op::Client {
                client,
                seq,
                cmds,
                user,
            } => {
                if let Some(saved) = self.duplicate_of(*client, *seq, cmds, bugs) {
                    return saved;
                }
                self.execute(entry, *client, *seq, cmds, user.as_deref(), entry.now_ms)
            }
            Op::Expire { keys } => {
                self.expire(keys, entry.now_ms);
                Arc::new(Vec::new())
            }
            Op::Evict { keys } => {
                self.evict(keys);
                Arc::new(Vec::new())
            }
            Op::ForgetClients { idle_before_ms } => {
                self.forget_clients(*idle_before_ms);
                Arc::new(Vec::new())
            }
            op => {
                self.apply_shard_op(entry, op, true);
                Arc::new(Vec::new())
            }
        }
    }

    /// The ops of slot moves (S5, S6, S9, S10), the same on the primary and its backups,
    /// except under the planted bug `move-state-only-on-primary` (`give_here` false: backups
    /// neither freeze nor pre-copy what their group gives).
    fn apply_shard_op(&mut self, entry: &LogEntry, op: &Op, give_here: bool) {
        match op {
            Op::TakeOn {
                config,
                serve,
                give,
                take,
                release,
            }
            | Op::PreCopy {
                config,
                serve,
                give,
                take,
                release,
            } => {
                let take_on = TakeOn {
                    config: *config,
                    serve,
                    give,
                    take,
                    release,
                };
                let giving = match op {
                    _ if !give_here => Giving::Ignore,
                    Op::PreCopy { .. } => Giving::PreCopy,
                    _ => Giving::Freeze,
                };
                self.take_on(entry, &take_on, giving);
            }
            Op::Freeze { config, to } => self.freeze(entry, *config, *to),
            Op::InstallChunk {
                config,
                from,
                chunk,
                end,
                deleted,
                entries,
                clients,
            } => {
                let chunk = InstallChunk {
                    config: *config,
                    from: *from,
                    chunk: *chunk,
                    end,
                    deleted,
                    entries,
                    clients,
                };
                self.install_chunk(entry, &chunk);
            }
            Op::Install { config, from } => self.install(entry, *config, *from),
            Op::DropKeys { config, to, keys } => self.drop_keys(*config, *to, keys),
            Op::Drop { config, to } => self.drop_slots(entry, *config, *to),
            Op::Client { .. } | Op::Expire { .. } | Op::Evict { .. } | Op::ForgetClients { .. } => {
            }
        }
    }

    /// Applies the next entry of the history as a backup. A backup does not execute read-only
    /// requests (see [`ClientRecord::replies`]) and answers nobody, so nothing is returned.
    /// `own_clock_ms` is this server's wall clock, used only with the planted bug
    /// `backup-uses-own-clock` (P5: a correct backup uses the time the primary decided).
    pub fn apply_as_backup(&mut self, entry: &LogEntry, bugs: Bugs, own_clock_ms: u64) {
        self.advance_to(entry);
        let now_ms = if bugs.has(Bug::BackupUsesOwnClock) {
            own_clock_ms
        } else {
            entry.now_ms
        };
        match &entry.op {
            Op::Client {
                client,
                seq,
                cmds,
                user,
            } => {
                if self.duplicate_of(*client, *seq, cmds, bugs).is_some() {
                    return;
                }
                if is_read_only(cmds) {
                    // P4: the backup confirms the read by accepting its place in the history;
                    // executing it would change nothing.
                    let record = ClientRecord {
                        seq: *seq,
                        index: entry.pos.index,
                        replies: None,
                        at_ms: now_ms,
                    };
                    self.remember(*client, record);
                    return;
                }
                self.execute(entry, *client, *seq, cmds, user.as_deref(), now_ms);
            }
            Op::Expire { keys } => self.expire(keys, now_ms),
            Op::Evict { keys } => self.evict(keys),
            Op::ForgetClients { idle_before_ms } => self.forget_clients(*idle_before_ms),
            op => {
                let give_here = !bugs.has(Bug::MoveStateOnlyOnPrimary);
                self.apply_shard_op(entry, op, give_here);
            }
        }
    }

    /// Moves the end of the history to `entry`. Both callers only pass the entry that extends
    /// this history: the primary orders it there, a backup applies a forward only after checking
    /// that its entries follow one another (`check_forward`), so a peer's bytes never reach
    /// these assertions.
    fn advance_to(&mut self, entry: &LogEntry) {
        assert_eq!(
            entry.pos.index,
            self.last.index.next(),
            "R1: entries are applied in order, without gaps"
        );
        assert!(
            entry.pos.view >= self.last.view,
            "R1: view tags never decrease along a history"
        );
        self.last = entry.pos;
        self.clock_ms = self.clock_ms.max(entry.now_ms);
    }

    /// The saved replies if `(client, seq)` was already applied and must not run again (P8).
    /// The primary filters duplicates before ordering them, so this only guards the invariant.
    /// A read is ordered again only when its replies were not kept (`ClientRecord::replies`),
    /// and every replica applies it again, whether or not it kept them, so that the records
    /// stay equal.
    fn duplicate_of(
        &self,
        client: ClientId,
        seq: Seq,
        cmds: &[Command],
        bugs: Bugs,
    ) -> Option<Arc<Vec<Reply>>> {
        if bugs.has(Bug::NoDuplicateDetection) {
            return None;
        }
        let record = self.clients.get(&client)?;
        let already_applied = record.seq > seq || (record.seq == seq && !is_read_only(cmds));
        already_applied.then(|| record.replies.clone().unwrap_or_default())
    }

    /// Executes a request's commands as its ACL user (A6) with the history's time and
    /// randomness (P5) and records its replies for retries (P8).
    fn execute(
        &mut self,
        entry: &LogEntry,
        client: ClientId,
        seq: Seq,
        cmds: &[Command],
        user: Option<&str>,
        now_ms: u64,
    ) -> Arc<Vec<Reply>> {
        // L14: the replies of one request travel in one frame, so their sum is bounded too; a
        // command whose reply would pass the bound still runs (a write is applied the same way
        // on every replica) and answers an error instead, which is what counts towards the sum.
        let max_reply = usize::try_from(entry.limits.max_reply_bytes).unwrap_or(usize::MAX);
        let mut reply_total = 0usize;
        let replies: Vec<Reply> = cmds
            .iter()
            .enumerate()
            .map(|(position, cmd)| {
                let ctx = ExecContext {
                    now_ms,
                    random: command_random(entry.random, position),
                    limits: entry.limits,
                };
                let mut reply = self.store.execute_as(user, cmd, &ctx);
                let mut size = reply_bytes(&reply);
                if max_reply > 0 && reply_total.saturating_add(size) > max_reply {
                    reply = reply_too_large();
                    size = reply_bytes(&reply);
                }
                reply_total = reply_total.saturating_add(size);
                reply
            })
            .collect();
        // S9: every key a write names may have changed (a failed write too: recording it is
        // harmless, the delta only sends the key's current entry again).
        for cmd in cmds.iter().filter(|cmd| cmd.is_write()) {
            for key in cmd.keys() {
                self.shard.note_changed(key);
            }
        }
        let replies = Arc::new(replies);
        let record = ClientRecord {
            seq,
            index: entry.pos.index,
            replies: Some(replies.clone()),
            at_ms: now_ms,
        };
        self.remember(client, record);
        replies
    }

    /// P5: expiry reaches every replica as this explicit delete, decided by the primary.
    fn expire(&mut self, keys: &[Bytes], now_ms: u64) {
        self.store.purge_expired(keys, now_ms);
        keys.iter().for_each(|key| self.shard.note_changed(key));
    }

    /// L12: the primary's eviction victims, deleted on every replica.
    fn evict(&mut self, keys: &[Bytes]) {
        self.store.evict(keys);
        keys.iter().for_each(|key| self.shard.note_changed(key));
    }

    /// Drops the at-most-once records of sessions last used before `idle_before_ms` (P8).
    fn forget_clients(&mut self, idle_before_ms: u64) {
        while let Some((at_ms, client)) = self.clients_by_age.get_min().copied() {
            if at_ms >= idle_before_ms {
                break;
            }
            self.clients_by_age.remove(&(at_ms, client));
            self.clients.remove(&client);
        }
    }

    /// Records a session's latest request (P8), keeping the age index in step.
    pub fn remember(&mut self, client: ClientId, record: ClientRecord) {
        let at_ms = record.at_ms;
        if let Some(old) = self.clients.insert(client, record) {
            self.clients_by_age.remove(&(old.at_ms, client));
        }
        self.clients_by_age.insert((at_ms, client));
    }

    /// The last-use time before which sessions should be forgotten: those idle longer than
    /// `idle_ms`, and the oldest beyond `max_clients`. `None` if nothing needs forgetting.
    pub fn forget_horizon(&self, now_ms: u64, idle_ms: u64, max_clients: usize) -> Option<u64> {
        let mut horizon = now_ms.saturating_sub(idle_ms);
        if self.clients.len() > max_clients {
            let excess = self.clients.len() - max_clients;
            if let Some((at_ms, _)) = self.clients_by_age.iter().nth(excess - 1) {
                horizon = horizon.max(at_ms + 1);
            }
        }
        let oldest = self.clients_by_age.get_min()?.0;
        (oldest < horizon).then_some(horizon)
    }

    /// A digest of the whole replicated state, equal on replicas that applied the same history.
    pub fn digest(&self) -> u64 {
        let mut hash = self.store.digest()
            ^ self.last.index.0.rotate_left(17)
            ^ self.last.view.0.rotate_left(41)
            ^ self.shard.digest().rotate_left(7);
        for (client, record) in &self.clients {
            hash = hash.rotate_left(5)
                ^ client.0
                ^ record.seq.0.wrapping_mul(31)
                ^ record.index.0
                ^ record.at_ms.rotate_left(23);
        }
        hash
    }
}

/// The most recent entries of the history, kept by every replica: a primary resends from it, and
/// a backup that gets promoted can bring lagging backups up to date from it without a full
/// transfer. `base` is the position just before `entries[0]`.
#[derive(Clone, Debug, Default)]
pub struct RecentLog {
    base: LogPos,
    entries: VecDeque<LogEntry>,
}

impl RecentLog {
    /// An empty log that starts after `base`.
    pub fn starting_after(base: LogPos) -> RecentLog {
        RecentLog {
            base,
            entries: VecDeque::new(),
        }
    }

    /// Appends the entry just applied.
    pub fn push(&mut self, entry: LogEntry) {
        // Every push follows an apply, which checked the same order on the state.
        assert_eq!(
            entry.pos.index,
            self.last().index.next(),
            "R1: the recent log grows in history order"
        );
        self.entries.push_back(entry);
    }

    /// Position of the last entry (or the base).
    pub fn last(&self) -> LogPos {
        self.entries.back().map_or(self.base, |e| e.pos)
    }

    /// Position just before the first retained entry.
    pub fn base(&self) -> LogPos {
        self.base
    }

    /// Number of entries retained.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no entry is retained.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The position at `index`, if it is the base or a retained entry.
    pub fn pos_at(&self, index: OpIndex) -> Option<LogPos> {
        if index == self.base.index {
            return Some(self.base);
        }
        // Not the base and not before it: at least one past it, the first retained entry.
        let after_base = self.base.index.checked_distance_to(index)?;
        self.entries
            .get(usize::try_from(after_base - 1).ok()?)
            .map(|e| e.pos)
    }

    /// Does the history this log belongs to contain `pos`? Only the primary of view `v` orders
    /// entries tagged `v`, so equal positions mean equal prefixes.
    pub fn contains(&self, pos: LogPos) -> bool {
        pos == LogPos::EMPTY && self.base == LogPos::EMPTY || self.pos_at(pos.index) == Some(pos)
    }

    /// Up to `max` entries after `index` (which must be retained or the base: the primary
    /// asks only after `pos_at(index)` found it).
    pub fn after(&self, index: OpIndex, max: usize) -> Vec<LogEntry> {
        assert!(
            index >= self.base.index,
            "P2: entries after {index} are asked of a log that starts after {:?}",
            self.base
        );
        let skip = usize::try_from(self.base.index.distance_to(index)).unwrap_or(usize::MAX);
        self.entries.iter().skip(skip).take(max).cloned().collect()
    }

    /// Forgets entries up to and including `index`.
    pub fn trim_through(&mut self, index: OpIndex) {
        while let Some(first) = self.entries.front() {
            if first.pos.index > index {
                break;
            }
            self.base = first.pos;
            self.entries.pop_front();
        }
    }

    /// Keeps at most `max` entries.
    pub fn trim_to_len(&mut self, max: usize) {
        while self.entries.len() > max {
            let first = self.entries.pop_front().expect("non-empty");
            self.base = first.pos;
        }
    }
}
