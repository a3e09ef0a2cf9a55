//! Executes a connection's batch on a server: each command is routed (S1, S4); the commands
//! this server executes go to its replica core as ONE `Request` of the connection's session
//! (`Endpoint::Client(id)`, seq increasing), handed to the server task over a channel, and the
//! core's `Response` comes back the same way, without a network hop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tandem_kv::{Command, Reply};
use tandem_protocol::message::{Request, RequestError, Response};
use tandem_protocol::{ClientId, Outcome, Seq};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::route::{Route, TRYAGAIN, refusal_reply, route_command};
use super::{FrontState, ServerFront};

/// A request of a local client for the server task, and where its response goes.
#[derive(Debug)]
pub(crate) struct CoreRequest {
    /// The request, from `Endpoint::Client(request.client)`.
    pub request: Request,
    /// Where the core's answer goes.
    pub done: oneshot::Sender<Response>,
}

/// Pause before resending a request the core answered `Busy` or `BackupUnconfirmed`.
const RETRY_PAUSE_MS: u64 = 10;

impl ServerFront {
    /// A front end fed by `state`, submitting to the server task through `core`; a request
    /// the core has not answered after `request_timeout_ms` is answered `-TRYAGAIN`.
    pub(crate) fn new(
        state: watch::Receiver<FrontState>,
        core: mpsc::Sender<CoreRequest>,
        request_timeout_ms: u64,
    ) -> ServerFront {
        ServerFront {
            state,
            core,
            next_seq: AtomicU64::new(1),
            request_timeout_ms,
        }
    }

    /// Runs one batch of a connection: one reply per command, in order (Redis semantics
    /// inside a pipeline: each command is redirected or executed on its own).
    pub(crate) async fn execute(
        &self,
        client: ClientId,
        cmds: Vec<Command>,
        user: Option<Arc<str>>,
    ) -> Outcome {
        let state = self.state.borrow().clone();
        let mut replies: Vec<Option<Reply>> = vec![None; cmds.len()];
        let mut local = Vec::new();
        for (i, cmd) in cmds.into_iter().enumerate() {
            match route_command(&state, &cmd) {
                Route::Local => local.push((i, cmd)),
                Route::Refuse(reply) => replies[i] = Some(reply),
            }
        }
        if !local.is_empty() {
            let batch: Vec<Command> = local.iter().map(|(_, cmd)| cmd.clone()).collect();
            match self.submit(client, batch, &user).await {
                Ok(answers) => {
                    for ((i, _), answer) in local.iter().zip(answers.iter()) {
                        replies[*i] = Some(answer.clone());
                    }
                }
                Err(Some(RequestError::WrongGroup { .. } | RequestError::SlotMoving { .. }))
                    if local.len() > 1 =>
                {
                    // One slot of the batch is not served here: every command on its own, so
                    // the others still run (each gets its own answer, as from Redis).
                    for (i, cmd) in local {
                        replies[i] = Some(self.execute_one(client, cmd, &user).await);
                    }
                }
                Err(error) => {
                    let state = self.state.borrow().clone();
                    for (i, cmd) in local {
                        replies[i] = Some(failure_reply(&state, error.as_ref(), &cmd));
                    }
                }
            }
        }
        let replies = replies
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Reply::Error("ERR missing reply".to_owned())))
            .collect();
        Outcome::Replies(Arc::new(replies))
    }

    async fn execute_one(&self, client: ClientId, cmd: Command, user: &Option<Arc<str>>) -> Reply {
        match self.submit(client, vec![cmd.clone()], user).await {
            Ok(answers) => answers
                .first()
                .cloned()
                .unwrap_or_else(|| Reply::Error("ERR missing reply".to_owned())),
            Err(error) => failure_reply(&self.state.borrow().clone(), error.as_ref(), &cmd),
        }
    }

    /// Submits `cmds` as one request and waits for the core's replies; `Err(None)` when the
    /// core did not answer in time or the server is stopping.
    async fn submit(
        &self,
        client: ClientId,
        cmds: Vec<Command>,
        user: &Option<Arc<str>>,
    ) -> Result<Arc<Vec<Reply>>, Option<RequestError>> {
        let deadline = Instant::now() + Duration::from_millis(self.request_timeout_ms);
        let request = Request {
            group: self.state.borrow().group,
            client,
            seq: Seq(self.next_seq.fetch_add(1, Ordering::Relaxed)),
            cmds: Arc::new(cmds),
            user: user.clone(),
        };
        loop {
            let (done, answer) = oneshot::channel();
            let sent = CoreRequest {
                request: request.clone(),
                done,
            };
            if self.core.send(sent).await.is_err() {
                return Err(None);
            }
            let response = match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(response)) => response,
                _ => return Err(None),
            };
            match response.result {
                Ok(replies) => return Ok(replies),
                // The same (client, seq) again: answered from the at-most-once table if it ran
                // (P8).
                Err(RequestError::Busy | RequestError::BackupUnconfirmed) => {
                    let pause = Instant::now() + Duration::from_millis(RETRY_PAUSE_MS);
                    if pause >= deadline {
                        return Err(None);
                    }
                    tokio::time::sleep_until(pause).await;
                }
                Err(error) => return Err(Some(error)),
            }
        }
    }
}

/// The reply to `cmd` when its request failed with `error` (`None`: no answer in time).
fn failure_reply(state: &FrontState, error: Option<&RequestError>, cmd: &Command) -> Reply {
    match error {
        Some(error) => refusal_reply(state, error, cmd.slot().ok().flatten()),
        None => Reply::Error(TRYAGAIN.to_owned()),
    }
}
