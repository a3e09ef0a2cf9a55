//! The backup side: accepting forwarded entries (P3) and receiving state transfers (P6).

use crate::ids::{LogPos, ServerId};
use crate::message::{Endpoint, Forward, ForwardResult, Message, Transfer, TransferReply};
use crate::replica::state::{RecentLog, ReplicatedState};
use crate::replica::{Receiving, Replica, Role};
use crate::time::Now;

impl Replica {
    /// P3: accept only from the primary of our own view, and only as a backup of that view.
    fn accepts_from(&self, from: &Endpoint, view: crate::ids::ViewNum) -> Option<ServerId> {
        let Endpoint::Server(sender) = from else {
            return None;
        };
        let ours = self.view.as_ref()?;
        let ok = matches!(self.role, Role::Backup) && ours.num == view && ours.primary == *sender;
        ok.then(|| sender.clone())
    }

    pub(super) fn on_forward(&mut self, _now: Now, from: Endpoint, fwd: Forward) {
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
        let view = self
            .view
            .as_ref()
            .map_or(crate::ids::ViewNum::NONE, |v| v.num);
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
                Message::TransferReply(reply(Some(t.chunk + 1), Some(installed))),
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
                receiving.state.store.insert_entry(key, entry);
            }
            for (client, record) in t.clients {
                receiving.state.remember(client, record);
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
                    Message::TransferReply(reply(Some(t.chunk + 1), Some(installed))),
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
