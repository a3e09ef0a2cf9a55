//! The backup side: accepting forwarded entries (P3) and receiving state transfers (P6).

use crate::ids::{LogPos, ServerId, ViewNum};
use crate::message::{Endpoint, Forward, ForwardResult, Message, Transfer, TransferReply};
use crate::replica::state::{RecentLog, ReplicatedState};
use crate::replica::{ProtocolError, Receiving, Replica, Role};
use crate::time::Now;

/// A forward is well formed when its entries follow `prev` one index at a time (R1) with view
/// tags that never decrease and never exceed the forward's view: only the primary of view `v`
/// orders entries tagged `v`. Checked before anything else, so that applying the entries can
/// assert the order it relies on without a peer's bytes ever reaching that assertion.
pub(super) fn check_forward(forward: &Forward) -> Result<(), ProtocolError> {
    let tag_error = |before: LogPos, found: LogPos| ProtocolError::ForwardViewTag {
        before,
        found,
        view: forward.view,
    };
    if forward.prev.view > forward.view {
        return Err(tag_error(forward.prev, forward.prev));
    }
    let mut before = forward.prev;
    for entry in forward.entries.iter() {
        let expected = before.index.checked_next();
        if expected != Some(entry.pos.index) {
            return Err(ProtocolError::ForwardOutOfOrder {
                expected,
                found: entry.pos.index,
            });
        }
        if entry.pos.view < before.view || entry.pos.view > forward.view {
            return Err(tag_error(before, entry.pos));
        }
        before = entry.pos;
    }
    Ok(())
}

impl Replica {
    /// P3: accept only from the primary of our own view, and only as a backup of that view.
    fn accepts_from(&self, from: &Endpoint, view: ViewNum) -> Option<ServerId> {
        let Endpoint::Server(sender) = from else {
            return None;
        };
        let ours = self.view.as_ref()?;
        let ok = matches!(self.role, Role::Backup) && ours.num == view && ours.primary == *sender;
        ok.then(|| sender.clone())
    }

    pub(super) fn on_forward(&mut self, _now: Now, from: Endpoint, fwd: Forward) {
        if let Err(error) = check_forward(&fwd) {
            // No correct primary sends this: ignore it, as if it was lost.
            self.ignore_protocol_error(error);
            return;
        }
        if self.accepts_from(&from, fwd.view).is_none() {
            self.stats.forwards_rejected += 1;
            self.reply_forward(from, ForwardResult::Reject);
            return;
        }
        let last = self.state.last;
        if fwd.prev.index > last.index {
            // A batch before this one was lost or overtaken: ask for what follows our end.
            self.reply_forward(from, ForwardResult::Gap { last });
            return;
        }
        // Find where our history ends inside this batch; apply only what extends it. If our
        // end is not in the batch (diverged, or an old duplicate) we report it unchanged and the
        // primary decides whether our history is a prefix of its own.
        let start = if fwd.prev == last {
            Some(0)
        } else {
            fwd.entries
                .iter()
                .position(|e| e.pos == last)
                .map(|i| i + 1)
        };
        if let Some(start) = start {
            let entries = fwd.entries.clone();
            for entry in &entries[start..] {
                self.apply_as_backup(entry);
            }
        }
        let last = self.state.last;
        self.reply_forward(from, ForwardResult::Ack { last });
    }

    pub(super) fn on_transfer(&mut self, _now: Now, from: Endpoint, t: Transfer) {
        let view = self.view.as_ref().map_or(ViewNum::NONE, |v| v.num);
        let Some(after_chunk) = t.chunk.checked_add(1) else {
            // No transfer has that many chunks; the replies below name the chunk after it.
            self.ignore_protocol_error(ProtocolError::TransferChunkOutOfRange { chunk: t.chunk });
            return;
        };
        if let Some(end) = t.done
            && end.last.view > t.view
        {
            // Only the primary of view `v` orders entries tagged `v`: installing this would
            // leave our history ending after any forward that can follow it.
            self.ignore_protocol_error(ProtocolError::SnapshotAfterItsView {
                snapshot: end.last,
                view: t.view,
            });
            return;
        }
        let reply = |next_chunk, installed| TransferReply {
            view,
            transfer_id: t.transfer_id,
            next_chunk,
            installed,
        };
        if self.accepts_from(&from, t.view).is_none() {
            self.send(from, Message::TransferReply(reply(None, None)));
            return;
        }
        if let Some((id, installed)) = self.installed_transfer
            && id == t.transfer_id
        {
            // Our "installed" answer was lost and the primary resent a chunk: answer again.
            self.send(
                from,
                Message::TransferReply(reply(Some(after_chunk), Some(installed))),
            );
            return;
        }
        let fresh = self
            .receiving
            .as_ref()
            .is_none_or(|r| r.id != t.transfer_id || r.view != t.view);
        if fresh {
            if t.chunk != 0 {
                // A chunk of a transfer we never saw start: ask for it from the beginning.
                self.send(from, Message::TransferReply(reply(Some(0), None)));
                return;
            }
            self.receiving = Some(Receiving {
                id: t.transfer_id,
                view: t.view,
                next_chunk: 0,
                state: ReplicatedState::default(),
            });
        }
        let receiving = self.receiving.as_mut().expect("receiving");
        if t.chunk == receiving.next_chunk {
            for (key, entry) in t.entries {
                // L16: a value bigger than a chunk comes in pieces, appended in order.
                receiving.state.store.insert_piece(key, entry);
            }
            for (client, record) in t.clients {
                receiving.state.remember(client, record);
            }
            if let Some(acl) = t.acl {
                receiving.state.store.set_acl(acl); // A1: users move with the data.
            }
            if let Some(shard) = t.shard {
                receiving.state.shard = shard; // S4: so is the group's share of the slots.
            }
            receiving.next_chunk += 1;
            if let Some(end) = t.done {
                let mut state = self.receiving.take().expect("receiving").state;
                state.last = end.last;
                state.clock_ms = end.clock_ms;
                self.install(state);
                let installed: LogPos = self.state.last;
                self.installed_transfer = Some((t.transfer_id, installed));
                self.send(
                    from,
                    Message::TransferReply(reply(Some(after_chunk), Some(installed))),
                );
                return;
            }
        }
        let next = self.receiving.as_ref().map_or(0, |r| r.next_chunk);
        self.send(from, Message::TransferReply(reply(Some(next), None)));
    }

    /// Replaces our whole state with a completed transfer (P6).
    fn install(&mut self, state: ReplicatedState) {
        self.log = RecentLog::starting_after(state.last);
        self.state = state;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ids::OpIndex;
    use crate::message::{LogEntry, Op};

    fn pos(index: u64, view: u64) -> LogPos {
        LogPos {
            index: OpIndex(index),
            view: ViewNum(view),
        }
    }

    fn forward(view: u64, prev: LogPos, entries: &[LogPos]) -> Forward {
        let entries = entries
            .iter()
            .map(|&pos| LogEntry {
                pos,
                now_ms: 0,
                random: 0,
                limits: tandem_kv::Limits::default(),
                op: Op::ForgetClients { idle_before_ms: 0 },
            })
            .collect();
        Forward {
            view: ViewNum(view),
            prev,
            entries: Arc::new(entries),
        }
    }

    #[test]
    fn r1_a_probe_and_consecutive_entries_are_well_formed() {
        assert_eq!(check_forward(&forward(2, pos(3, 1), &[])), Ok(()));
        let entries = [pos(4, 1), pos(5, 2), pos(6, 2)];
        assert_eq!(check_forward(&forward(2, pos(3, 1), &entries)), Ok(()));
        assert_eq!(
            check_forward(&forward(1, LogPos::EMPTY, &[pos(1, 1)])),
            Ok(())
        );
    }

    #[test]
    fn r1_entries_that_do_not_follow_one_another_are_malformed() {
        let cases: [&[LogPos]; 4] = [
            &[pos(2, 1), pos(1, 1)],
            &[pos(1, 1), pos(3, 1)],
            &[pos(1, 1), pos(1, 1)],
            &[pos(2, 1)],
        ];
        for entries in cases {
            assert!(
                matches!(
                    check_forward(&forward(1, LogPos::EMPTY, entries)),
                    Err(ProtocolError::ForwardOutOfOrder { .. })
                ),
                "{entries:?}"
            );
        }
    }

    #[test]
    fn r1_an_entry_past_the_end_of_the_index_range_is_malformed() {
        let end = pos(u64::MAX, 1);
        assert_eq!(
            check_forward(&forward(1, end, &[pos(0, 1)])),
            Err(ProtocolError::ForwardOutOfOrder {
                expected: None,
                found: OpIndex(0),
            })
        );
    }

    #[test]
    fn p3_view_tags_that_decrease_or_exceed_the_forward_s_view_are_malformed() {
        let cases = [
            forward(2, pos(3, 2), &[pos(4, 1)]),
            forward(2, pos(3, 1), &[pos(4, 2), pos(5, 1)]),
            forward(2, pos(3, 1), &[pos(4, 3)]),
            forward(2, pos(3, 3), &[]),
        ];
        for forward in cases {
            assert!(
                matches!(
                    check_forward(&forward),
                    Err(ProtocolError::ForwardViewTag { .. })
                ),
                "{forward:?}"
            );
        }
    }
}
