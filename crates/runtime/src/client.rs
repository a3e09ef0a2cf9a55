//! A Rust client that embeds a [`Clerk`] and talks to the servers directly (no coordinator
//! hop): it asks the view service for the primary and retries across view changes (C1, C3).
//!
//! In a sharded cluster it routes like a coordinator (S1): a pipeline is split by a [`Plan`]
//! (one part per slot for MGET/EXISTS/DEL/MSET across slots, keyspace-wide commands and ACL
//! writes to every group), each run of consecutive parts for one group is one request of the
//! one session, and the replies are merged in order. A pipeline is atomic only within one group.
//!
//! The view service is a list of nodes (Q2): `connect` locates the leader with a [`Locator`]
//! (following `NotLeader` redirects, moving on from a node that does not answer), then hands the
//! list to the clerk, starting at the node that answered; the clerk keeps following redirects.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tandem_kv::{Command, Reply};
use tandem_protocol::locator::{Locator, MAX_UNANSWERED};
use tandem_protocol::router::{Plan, groups_of};
use tandem_protocol::{Clerk, ClerkConfig, ClientId, Endpoint, GroupId, Message, Outcome, VsAddr};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::clock::{Clock, random_u64};
use crate::config::NetConfig;
use crate::error::{RuntimeError, parse_view_services};
use crate::net::{Inbound, Net, Peers};
use crate::shutdown::{ShutdownTrigger, shutdown_channel};

/// How often `connect` re-asks while no view-service node has answered.
const FIRST_VIEW_RETRY_MS: u64 = 100;
/// Most `NotLeader` redirects followed at once (without waiting for the retry) in a row.
const MAX_REDIRECTS_AT_ONCE: u32 = 3;
/// Most times one pipeline is planned again because moves split a run.
const MAX_REPLANS: u32 = 16;
/// Where requests go without a cluster map, and keyless ones by default.
const HOME: GroupId = GroupId(0);

/// `list` with `node` first (it answered: the leader, or the node a single view service is), the
/// others after in their order.
fn answering_first(list: &[VsAddr], node: &VsAddr) -> Vec<VsAddr> {
    std::iter::once(node.clone())
        .chain(list.iter().filter(|a| *a != node).cloned())
        .collect()
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A command was refused before it was sent (unknown command, wrong arity, ...); the text
    /// is the Redis error reply.
    #[error("{0}")]
    Rejected(String),
    /// No answer within the request timeout (C3); the commands may or may not have run.
    #[error("request timed out: no primary answered")]
    TimedOut,
    /// The client could not start.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// A session with a tandem cluster: every group of a sharded one, routed by slot (S1), or
/// replica group 0 without a cluster map. One request at a time (P8): `call` and `pipeline`
/// take `&mut self`.
#[derive(Debug)]
pub struct Client {
    clerk: Clerk,
    clock: Clock,
    peers: Peers,
    inbox: mpsc::Receiver<Inbound>,
    view_services: Vec<VsAddr>,
    me: Endpoint,
    /// Dropping the client stops its connection tasks.
    _stop: ShutdownTrigger,
}

impl Client {
    /// Connects with default settings; fails if the view service does not answer.
    pub async fn connect(view_service_addrs: &[String]) -> Result<Client, ClientError> {
        Client::connect_with(
            ClerkConfig::default(),
            NetConfig::default(),
            view_service_addrs,
        )
        .await
    }

    /// Connects with the given settings; fails if the list is malformed (see
    /// [`parse_view_services`]) or no view-service node gives a view within the request
    /// timeout.
    pub async fn connect_with(
        config: ClerkConfig,
        net_config: NetConfig,
        view_service_addrs: &[String],
    ) -> Result<Client, ClientError> {
        config.validate().map_err(RuntimeError::from)?;
        net_config.validate().map_err(RuntimeError::from)?;
        let view_services = parse_view_services(view_service_addrs)?;
        let (stop, shutdown) = shutdown_channel();
        let (inbox_sender, inbox) = mpsc::channel(net_config.inbox_messages);
        let net = Net::new(net_config, inbox_sender, shutdown);
        let id = ClientId(random_u64());
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let mut client = Client {
            clerk: Clerk::new(id, HOME, config),
            clock: Clock::new(),
            peers: Peers::new(net),
            inbox,
            view_services,
            me: Endpoint::Client(id),
            _stop: stop,
        };
        client.first_view(timeout).await?;
        Ok(client)
    }

    /// Asks the view service's leader for the cluster map (every group's view) until one
    /// answers (Q2), then gives the clerk the map and the list, the answering node first.
    async fn first_view(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let deadline = Instant::now() + timeout;
        let mut locator = Locator::new(self.view_services.clone());
        // Refused connections, to leave a dead node without waiting for MAX_UNANSWERED retries.
        let mut unreachable = self.peers.net().subscribe_unreachable();
        let mut redirects_in_a_row = 0;
        let mut next_ask = Instant::now();
        loop {
            if Instant::now() >= next_ask {
                locator.sent();
                self.send(locator.target(), Message::GetCluster { epoch: 0 });
                next_ask = Instant::now() + Duration::from_millis(FIRST_VIEW_RETRY_MS);
            }
            tokio::select! {
                inbound = self.inbox.recv() => {
                    let Some(inbound) = inbound else { break };
                    let Endpoint::ViewService(node) = &inbound.from else { continue };
                    match inbound.msg {
                        Message::ClusterReply(_) => {
                            // An answer naming a node outside the list: start from the node
                            // asked (a leader added online that a redirect named is both).
                            let first = if self.view_services.contains(node) {
                                node.clone()
                            } else {
                                locator.target_addr().clone()
                            };
                            self.clerk
                                .set_view_services(answering_first(&self.view_services, &first));
                            self.clerk.handle(self.clock.now(), inbound.from, inbound.msg);
                            return Ok(());
                        }
                        Message::NotLeader { leader } => {
                            // Q2: ask a leader named at once (a few times in a row at most:
                            // stale nodes naming each other must not make a loop); without one
                            // (an election), the next node at the normal pace.
                            let before = locator.target_addr().clone();
                            let named = leader.is_some();
                            locator.redirected(node, leader);
                            if named
                                && *locator.target_addr() != before
                                && redirects_in_a_row < MAX_REDIRECTS_AT_ONCE
                            {
                                redirects_in_a_row += 1;
                                next_ask = Instant::now();
                            }
                        }
                        _ => {}
                    }
                }
                Some(addr) = unreachable.recv() => {
                    // A refused connection: the node will not answer; move on (asked at the
                    // normal pace, so a list of dead nodes is not cycled through in a loop).
                    for _ in 0..=MAX_UNANSWERED {
                        if locator.target_addr().as_str() != addr {
                            break;
                        }
                        locator.sent();
                    }
                }
                _ = sleep_until(next_ask.min(deadline)) => {}
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        let list: Vec<&str> = self.view_services.iter().map(VsAddr::as_str).collect();
        Err(RuntimeError::NoViewService(list.join(",")).into())
    }

    /// Runs one command, e.g. `client.call(&[b"SET", b"k", b"v"])`.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Reply, ClientError> {
        let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        let mut replies = self.pipeline(vec![args]).await?;
        Ok(replies.pop().unwrap_or(Reply::Nil))
    }

    /// Runs commands in order; one reply per command. The batch is atomic when its keys are
    /// owned by one group (always without sharding); across groups each group's run is (S1).
    /// A command whose part did not complete in time answers `-TRYAGAIN`; when no part did, the
    /// call fails with [`ClientError::TimedOut`].
    pub async fn pipeline(&mut self, commands: Vec<Vec<Bytes>>) -> Result<Vec<Reply>, ClientError> {
        let cmds = commands
            .iter()
            .map(|args| Command::parse(args))
            .collect::<Result<Vec<_>, Reply>>()
            .map_err(|reply| match reply {
                Reply::Error(text) => ClientError::Rejected(text),
                other => ClientError::Rejected(format!("{other:?}")),
            })?;
        let random = if cmds.iter().any(|c| matches!(c, Command::RandomKey)) {
            random_u64()
        } else {
            0
        };
        let plan = Plan::new(
            cmds,
            &groups_of(self.clerk.map().map(|m| m.as_ref()), HOME),
            random,
        );
        let mut replies: Vec<Option<Reply>> = vec![None; plan.parts().len()];
        let (mut next, mut replans) = (0, 0);
        while next < plan.parts().len() {
            let run = plan.run_at(next, self.clerk.map().map(|m| m.as_ref()), HOME);
            let cmds: Vec<Command> = plan.parts()[run.parts.clone()]
                .iter()
                .map(|p| p.cmd.clone())
                .collect();
            let now = self.clock.now();
            match run.group {
                Some(group) if run.named => self.clerk.submit_to(now, Arc::new(cmds), None, group),
                _ => self.clerk.submit_as(now, Arc::new(cmds), None),
            };
            match self.wait().await {
                Outcome::Replies(got) => {
                    for (slot, reply) in replies[run.parts.clone()].iter_mut().zip(got.iter()) {
                        *slot = Some(reply.clone());
                    }
                    next = run.parts.end;
                }
                Outcome::CrossGroup if replans < MAX_REPLANS => replans += 1,
                Outcome::CrossGroup | Outcome::TimedOut => break,
            }
        }
        if replies.iter().all(Option::is_none) && !replies.is_empty() {
            return Err(ClientError::TimedOut);
        }
        Ok(plan.merge(replies))
    }

    /// Drives the clerk until its request completes.
    async fn wait(&mut self) -> Outcome {
        loop {
            while let Some(transmit) = self.clerk.poll_transmit(self.clock.now()) {
                self.send(transmit.to, transmit.msg);
            }
            if let Some(completion) = self.clerk.poll_completion() {
                return completion.outcome;
            }
            let wake = self
                .clock
                .instant_at(self.clerk.poll_timeout().unwrap_or(u64::MAX / 4));
            tokio::select! {
                inbound = self.inbox.recv() => {
                    // The inbox sender lives in our own transport state: never closed here.
                    if let Some(inbound) = inbound {
                        self.clerk.handle(self.clock.now(), inbound.from, inbound.msg);
                    }
                }
                _ = sleep_until(wake.into()) => self.clerk.handle_timeout(self.clock.now()),
            }
        }
    }

    fn send(&mut self, to: Endpoint, msg: Message) {
        let Some(frame) = self.peers.net().encode(&self.me, msg) else {
            return;
        };
        match to {
            Endpoint::ViewService(addr) => self.peers.send(addr.as_str(), frame),
            Endpoint::Server(id) => self.peers.send(id.as_str(), frame),
            Endpoint::Client(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q2_the_answering_node_comes_first_and_the_rest_keep_their_order() {
        let list: Vec<VsAddr> = ["a:1", "b:1", "c:1"].into_iter().map(VsAddr::new).collect();
        let names = |v: Vec<VsAddr>| v.iter().map(|a| a.as_str().to_owned()).collect::<Vec<_>>();
        assert_eq!(
            names(answering_first(&list, &VsAddr::new("b:1"))),
            ["b:1", "a:1", "c:1"]
        );
        // A leader outside the list (added online) is asked first, the list kept after it.
        assert_eq!(
            names(answering_first(&list, &VsAddr::new("d:1"))),
            ["d:1", "a:1", "b:1", "c:1"]
        );
    }
}
