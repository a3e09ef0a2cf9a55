//! The coordinator core (rules C1, C3): one client session that caches the view, sends each
//! request to the primary, and retries with the same `(client, seq)` until it gets replies or its
//! deadline passes.
//!
//! It is driven like every core (see the crate documentation): [`Clerk::handle`] every
//! `ViewReply` and `Response` addressed to it, [`Clerk::handle_timeout`] when
//! [`Clerk::poll_timeout`] is due, then drain [`Clerk::poll_transmit`] and
//! [`Clerk::poll_completion`]. Its extra inputs: [`Clerk::submit`] a batch of commands when
//! [`Clerk::is_idle`] (one request at a time: P8), and [`Clerk::server_unreachable`] when the
//! transport gives up on a server.

use std::collections::VecDeque;
use std::sync::Arc;

use tandem_kv::{Command, Reply};

use crate::config::ClerkConfig;
use crate::ids::{ClientId, GroupId, Seq, ServerId, VsAddr};
use crate::locator::{DEFAULT_VIEW_SERVICE, Locator};
use crate::message::{Endpoint, Message, Request, RequestError, Response, Transmit, ViewReply};
use crate::time::Now;
use crate::view::View;

/// How a request ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The primary executed it and every backup confirmed it.
    Replies(Arc<Vec<Reply>>),
    /// No answer before the deadline (C3). It may or may not have taken effect.
    TimedOut,
}

/// A finished request.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// Its sequence number.
    pub seq: Seq,
    /// Its outcome.
    pub outcome: Outcome,
}

#[derive(Debug)]
struct InFlight {
    seq: Seq,
    cmds: Arc<Vec<Command>>,
    user: Option<Arc<str>>,
    deadline_ms: u64,
    /// When to (re)send next; `None` while waiting for a view.
    resend_at_ms: Option<u64>,
    /// Sends so far.
    attempts: u32,
    /// The servers this request was sent to, most recent last (at most
    /// [`MAX_TARGETS_REMEMBERED`]): only they may answer it (C4).
    sent_to: Vec<ServerId>,
}

/// Servers a request's answer is accepted from: the last few it was sent to (a late answer from
/// a previous primary is still a true one).
const MAX_TARGETS_REMEMBERED: usize = 8;

/// Statistics for operators and the "view service is not flooded" check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClerkStats {
    /// `GetView` requests sent.
    pub view_queries: u64,
    /// Requests sent (first attempts and retries).
    pub sends: u64,
    /// Errors and timeouts that led to a retry.
    pub retries: u64,
    /// Answers refused: a response from a server the request was not sent to, a view reply
    /// from a node that is not a known view-service node, or an ill-formed view (C4).
    pub refused: u64,
}

/// One coordinator session.
#[derive(Debug)]
pub struct Clerk {
    id: ClientId,
    group: GroupId,
    config: ClerkConfig,
    view: Option<View>,
    next_seq: Seq,
    inflight: Option<InFlight>,
    /// When we last asked the view service, and whether we want to ask again.
    last_query_ms: Option<u64>,
    want_view: bool,
    /// Which view-service node to ask (Q2).
    locator: Locator,
    outbox: VecDeque<Transmit>,
    completions: VecDeque<Completion>,
    stats: ClerkStats,
}

impl Clerk {
    /// A new session.
    pub fn new(id: ClientId, group: GroupId, config: ClerkConfig) -> Clerk {
        Clerk {
            id,
            group,
            config,
            view: None,
            next_seq: Seq(1),
            inflight: None,
            last_query_ms: None,
            want_view: false,
            locator: Locator::new(vec![VsAddr::new(DEFAULT_VIEW_SERVICE)]),
            outbox: VecDeque::new(),
            completions: VecDeque::new(),
            stats: ClerkStats::default(),
        }
    }

    /// The view-service nodes to ask (Q2). Until this is called the clerk asks one node named
    /// [`DEFAULT_VIEW_SERVICE`] (what the unit tests use).
    ///
    /// # Panics
    /// If `addrs` is empty.
    pub fn set_view_services(&mut self, addrs: Vec<VsAddr>) {
        self.locator = Locator::new(addrs);
    }

    /// The session id.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// The cached view.
    pub fn view(&self) -> Option<&View> {
        self.view.as_ref()
    }

    /// Counters.
    pub fn stats(&self) -> &ClerkStats {
        &self.stats
    }

    /// No request outstanding.
    pub fn is_idle(&self) -> bool {
        self.inflight.is_none()
    }

    /// Starts a request of a connection that never authenticated (A3). Panics if one is
    /// outstanding: a session sends one at a time (P8).
    pub fn submit(&mut self, now: Now, cmds: Arc<Vec<Command>>) -> Seq {
        self.submit_as(now, cmds, None)
    }

    /// Starts a request run as ACL user `user` (`None`: never authenticated; A6).
    pub fn submit_as(&mut self, now: Now, cmds: Arc<Vec<Command>>, user: Option<Arc<str>>) -> Seq {
        assert!(self.inflight.is_none(), "one request at a time per session");
        let seq = self.next_seq;
        self.next_seq = seq.next();
        let deadline_ms = now.mono_ms + self.config.request_timeout_ms;
        self.inflight = Some(InFlight {
            seq,
            cmds,
            user,
            deadline_ms,
            resend_at_ms: Some(now.mono_ms),
            attempts: 0,
            sent_to: Vec::new(),
        });
        self.drive(now);
        seq
    }

    /// Handles a message: a `ViewReply` from the view service or a `Response` from a server.
    /// Anything else, or from anyone else, is ignored rather than trusted.
    pub fn handle(&mut self, now: Now, from: Endpoint, msg: Message) {
        match (from, msg) {
            // C4: views only from a view-service node (proved by the transport, I3/I4).
            (Endpoint::ViewService(node), Message::ViewReply(reply)) => {
                self.locator.answered(&node);
                self.on_view(now, reply);
            }
            (Endpoint::ViewService(node), Message::NotLeader { leader }) => {
                let named = leader.is_some();
                self.locator.redirected(&node, leader);
                self.want_view = true;
                if named {
                    // Ask the leader named at once rather than a ping interval later (an
                    // unnamed one waits: no query storm during an election).
                    self.last_query_ms = None;
                }
                self.drive(now);
            }
            (Endpoint::Server(server), Message::Response(response)) => {
                // C4: only a server the request went to answers it.
                if self
                    .inflight
                    .as_ref()
                    .is_some_and(|i| i.sent_to.contains(&server))
                {
                    self.on_response(now, response);
                } else {
                    self.stats.refused += 1;
                }
            }
            _ => {}
        }
        self.drive(now);
    }

    /// The transport could not reach `server` (connection refused or broken). If our request
    /// went there, treat it like an error: re-ask the view service (C1, rate-limited) and resend
    /// shortly, rather than wait out the attempt timeout.
    pub fn server_unreachable(&mut self, now: Now, server: &ServerId) {
        let Some(inflight) = &mut self.inflight else {
            return;
        };
        if self.view.as_ref().is_none_or(|v| v.primary != *server) {
            return;
        }
        self.stats.retries += 1;
        self.want_view = true;
        let soon = now.mono_ms + (self.config.ping_interval_ms / 4).max(1);
        if inflight.resend_at_ms.is_none_or(|t| t > soon) {
            inflight.resend_at_ms = Some(soon);
        }
        self.drive(now);
    }

    /// Timers: deadlines (C3), attempt timeouts and rate-limited view queries (C1). Calling it
    /// early is harmless.
    pub fn handle_timeout(&mut self, now: Now) {
        self.drive(now);
    }

    /// When [`Clerk::handle_timeout`] must be called next (monotonic ms); `None` while idle.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        let inflight = self.inflight.as_ref()?;
        let mut at = inflight.deadline_ms;
        if let Some(resend) = inflight.resend_at_ms {
            at = at.min(resend);
        }
        if self.want_view {
            at = at.min(self.next_query_ms());
        }
        Some(at)
    }

    /// The next message to send.
    #[must_use]
    pub fn poll_transmit(&mut self, _now: Now) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next finished request.
    #[must_use]
    pub fn poll_completion(&mut self) -> Option<Completion> {
        self.completions.pop_front()
    }

    fn next_query_ms(&self) -> u64 {
        self.last_query_ms
            .map_or(0, |t| t + self.config.ping_interval_ms)
    }

    fn on_view(&mut self, now: Now, reply: ViewReply) {
        if reply.group != self.group {
            return;
        }
        let Some(view) = reply.view else { return };
        if !view.is_well_formed() {
            self.stats.refused += 1;
            return;
        }
        let newer = self.view.as_ref().is_none_or(|v| view.num > v.num);
        if !newer {
            return;
        }
        let primary_changed = self.view.as_ref().is_none_or(|v| v.primary != view.primary);
        self.view = Some(view);
        self.want_view = false;
        if primary_changed && let Some(inflight) = &mut self.inflight {
            // A new primary: resend right away.
            inflight.resend_at_ms = Some(now.mono_ms);
        }
    }

    fn on_response(&mut self, now: Now, response: Response) {
        let Some(inflight) = &mut self.inflight else {
            return;
        };
        if response.seq != inflight.seq || response.client != self.id {
            return; // An answer to an earlier attempt of a finished request.
        }
        match response.result {
            Ok(replies) => {
                let seq = inflight.seq;
                self.inflight = None;
                self.completions.push_back(Completion {
                    seq,
                    outcome: Outcome::Replies(replies),
                });
            }
            Err(error) => {
                self.stats.retries += 1;
                // C1: on an error, re-ask the view service; resend once it answers or after a
                // pause (the primary may just be waiting for its backup).
                let pause = match error {
                    RequestError::Busy => (self.config.ping_interval_ms / 10).max(1),
                    _ => self.config.ping_interval_ms,
                };
                inflight.resend_at_ms = Some(now.mono_ms + pause);
                self.want_view = true;
            }
        }
    }

    fn drive(&mut self, now: Now) {
        let Some(inflight) = &mut self.inflight else {
            self.want_view = false;
            return;
        };
        if now.mono_ms >= inflight.deadline_ms {
            // C3: a clear failure, never a guess.
            let seq = inflight.seq;
            self.inflight = None;
            self.completions.push_back(Completion {
                seq,
                outcome: Outcome::TimedOut,
            });
            return;
        }
        if inflight.resend_at_ms.is_some_and(|t| now.mono_ms >= t) {
            if inflight.attempts > 0 {
                // C1: an error or a silent attempt: the view may have changed.
                self.want_view = true;
            }
            match &self.view {
                Some(view) => {
                    let request = Request {
                        group: self.group,
                        client: self.id,
                        seq: inflight.seq,
                        cmds: inflight.cmds.clone(),
                        user: inflight.user.clone(),
                    };
                    if !inflight.sent_to.contains(&view.primary) {
                        if inflight.sent_to.len() >= MAX_TARGETS_REMEMBERED {
                            inflight.sent_to.remove(0);
                        }
                        inflight.sent_to.push(view.primary.clone());
                    }
                    let to = Endpoint::Server(view.primary.clone());
                    self.outbox.push_back(Transmit {
                        to,
                        msg: Message::Request(request),
                    });
                    self.stats.sends += 1;
                    inflight.attempts += 1;
                    inflight.resend_at_ms = Some(now.mono_ms + self.config.attempt_timeout_ms);
                }
                None => {
                    self.want_view = true;
                    inflight.resend_at_ms = Some(now.mono_ms + self.config.ping_interval_ms);
                }
            }
        }
        // C1: at most one view query per ping interval.
        if self.want_view && now.mono_ms >= self.next_query_ms() {
            self.outbox.push_back(Transmit {
                to: self.locator.target(),
                msg: Message::GetView { group: self.group },
            });
            self.stats.view_queries += 1;
            self.locator.sent();
            self.last_query_ms = Some(now.mono_ms);
            self.want_view = false;
        }
    }
}
