//! What a run records: every client operation with its call and return times, and the
//! invariants checked while the run goes on (TigerBeetle-style: asserted on every step).

use std::collections::BTreeMap;
use std::sync::Arc;

use tandem_kv::{Command, Reply};
use tandem_protocol::{GroupId, Seq, ServerId, ViewChangeCause, ViewEvent, ViewNum};

/// One client operation.
#[derive(Clone, Debug)]
pub struct HistoryOp {
    /// Client session index.
    pub client: usize,
    /// Its sequence number.
    pub seq: Seq,
    /// The commands (one request).
    pub cmds: Arc<Vec<Command>>,
    /// When it was submitted (virtual ms).
    pub call_ms: u64,
    /// When it returned and with what; `None` if it timed out or is still pending.
    pub ret: Option<(u64, Arc<Vec<Reply>>)>,
    /// Finished (replied or timed out).
    pub done: bool,
}

/// Invariants checked on every step.
#[derive(Debug, Default)]
pub struct Invariants {
    /// Violations found, in the order found.
    pub violations: Vec<String>,
    server_views: BTreeMap<ServerId, ViewNum>,
    answering: BTreeMap<ViewNum, ServerId>,
    group_views: BTreeMap<GroupId, (tandem_protocol::View, bool)>,
}

impl Invariants {
    /// Records a violation (bounded).
    pub fn violate(&mut self, what: String) {
        if self.violations.len() < 100 {
            self.violations.push(what);
        }
    }

    /// View numbers a server acts in only grow (P1, V1).
    pub fn server_view(&mut self, server: &ServerId, viewnum: ViewNum) {
        let previous = self
            .server_views
            .insert(server.clone(), viewnum)
            .unwrap_or(ViewNum::NONE);
        if viewnum < previous {
            self.violate(format!(
                "view number of {server} went back from {previous} to {viewnum}"
            ));
        }
    }

    /// A restarted server starts again from no view.
    pub fn server_restarted(&mut self, server: &ServerId) {
        self.server_views.remove(server);
    }

    /// At most one server answers clients successfully per view (P1).
    pub fn answered(&mut self, server: &ServerId, viewnum: ViewNum) {
        match self.answering.get(&viewnum) {
            Some(other) if other != server => {
                let other = other.clone();
                self.violate(format!(
                    "P1: both {other} and {server} answered clients in view {viewnum}"
                ));
            }
            _ => {
                self.answering.insert(viewnum, server.clone());
            }
        }
    }

    /// V3: no healthy server is declared dead. `healthy_for_ms` is how long (in view-service
    /// running time) the server named by `cause` has been up, unpaused and connected to the
    /// view service (`None`: it is down or paused now); a server healthy for the whole detection
    /// window `window_ms` never went silent.
    pub fn declared_dead(
        &mut self,
        cause: &ViewChangeCause,
        at_ms: u64,
        healthy_for_ms: Option<u64>,
        window_ms: u64,
    ) {
        if let Some(healthy_ms) = healthy_for_ms
            && healthy_ms >= window_ms
        {
            self.violate(format!(
                "V3: healthy server declared dead at {at_ms} ms ({cause}): up, unpaused and \
                 connected to the view service for the last {healthy_ms} ms of its running time"
            ));
        }
    }

    /// V6, V7 on every decision of the view service.
    pub fn view_event(&mut self, event: &ViewEvent) {
        match event {
            ViewEvent::NewView { group, view, .. } => {
                if let Some((previous, acked)) = self.group_views.get(group).cloned() {
                    if !acked {
                        self.violate(format!(
                            "V6: view {} started before view {} was acknowledged",
                            view.num, previous.num
                        ));
                    }
                    if !previous.contains(&view.primary) {
                        self.violate(format!(
                            "V7: primary {} of view {} was not in view {}",
                            view.primary, view.num, previous.num
                        ));
                    }
                    if view.num != previous.num.next() {
                        self.violate(format!(
                            "V1: view {} followed view {}",
                            view.num, previous.num
                        ));
                    }
                }
                self.group_views.insert(*group, (view.clone(), false));
            }
            ViewEvent::Acked { group, viewnum } => {
                if let Some((view, acked)) = self.group_views.get_mut(group)
                    && view.num == *viewnum
                {
                    *acked = true;
                }
            }
            ViewEvent::Slots { .. }
            | ViewEvent::ClientAddr { .. }
            | ViewEvent::ConfigDone { .. } => {}
        }
    }
}
