//! Executes a connection's batch on a server: each command is routed (S1, S4); the commands
//! this server executes go to its replica core as ONE `Request` of the connection's session
//! (`Endpoint::Client(id)`, seq increasing), handed to the server task over a channel, and the
//! core's `Response` comes back the same way, without a network hop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tandem_kv::{Command, Reply};
use tandem_protocol::message::{Request, RequestError, Response};
use tandem_protocol::{ClientId, GroupId, Outcome, Seq};
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
    ///
    /// The connection's task calls this itself (no hop through another task), and the common
    /// batch, every command served here, goes to the core without a copy and comes back as
    /// the core's own replies.
    pub(crate) async fn execute(
        &self,
        client: ClientId,
        cmds: Vec<Command>,
        user: Option<Arc<str>>,
    ) -> Outcome {
        // Routed under one borrow of the published state, released before any wait.
        let (group, refused) = {
            let state = self.state.borrow();
            let mut refused: Vec<Option<Reply>> = Vec::new();
            for (i, cmd) in cmds.iter().enumerate() {
                if let Route::Refuse(reply) = route_command(&state, cmd) {
                    refused.resize(cmds.len(), None);
                    refused[i] = Some(reply);
                }
            }
            (state.group, refused)
        };
        if refused.is_empty() {
            let cmds = Arc::new(cmds);
            return match self.submit(group, client, cmds.clone(), &user).await {
                Ok(replies) => Outcome::Replies(replies),
                Err(error) => {
                    let replies = self.after_failure(client, &cmds, error, &user).await;
                    Outcome::Replies(Arc::new(replies))
                }
            };
        }
        let (local, positions): (Vec<Command>, Vec<usize>) = cmds
            .into_iter()
            .enumerate()
            .filter(|(i, _)| refused[*i].is_none())
            .map(|(i, cmd)| (cmd, i))
            .unzip();
        let mut replies = refused;
        if !local.is_empty() {
            let local = Arc::new(local);
            let answers = match self.submit(group, client, local.clone(), &user).await {
                Ok(answers) => answers.to_vec(),
                Err(error) => self.after_failure(client, &local, error, &user).await,
            };
            for (i, answer) in positions.into_iter().zip(answers) {
                replies[i] = Some(answer);
            }
        }
        let replies = replies
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Reply::Error("ERR missing reply".to_owned())))
            .collect();
        Outcome::Replies(Arc::new(replies))
    }

    /// The replies to `cmds` when their request failed with `error`.
    async fn after_failure(
        &self,
        client: ClientId,
        cmds: &[Command],
        error: Option<RequestError>,
        user: &Option<Arc<str>>,
    ) -> Vec<Reply> {
        match error {
            Some(RequestError::WrongGroup { .. } | RequestError::SlotMoving { .. })
                if cmds.len() > 1 =>
            {
                // One slot of the batch is not served here: every command on its own, so the
                // others still run (each gets its own answer, as from Redis).
                let mut replies = Vec::with_capacity(cmds.len());
                for cmd in cmds {
                    replies.push(self.execute_one(client, cmd, user).await);
                }
                replies
            }
            error => {
                let state = self.state.borrow();
                let failed = |cmd: &Command| failure_reply(&state, error.as_ref(), cmd);
                cmds.iter().map(failed).collect()
            }
        }
    }

    async fn execute_one(&self, client: ClientId, cmd: &Command, user: &Option<Arc<str>>) -> Reply {
        let group = self.state.borrow().group;
        match self
            .submit(group, client, Arc::new(vec![cmd.clone()]), user)
            .await
        {
            Ok(answers) => answers
                .first()
                .cloned()
                .unwrap_or_else(|| Reply::Error("ERR missing reply".to_owned())),
            Err(error) => failure_reply(&self.state.borrow(), error.as_ref(), cmd),
        }
    }

    /// Submits `cmds` as one request of `group` and waits for the core's replies;
    /// `Err(None)` when the core did not answer in time or the server is stopping.
    async fn submit(
        &self,
        group: GroupId,
        client: ClientId,
        cmds: Arc<Vec<Command>>,
        user: &Option<Arc<str>>,
    ) -> Result<Arc<Vec<Reply>>, Option<RequestError>> {
        let deadline = Instant::now() + Duration::from_millis(self.request_timeout_ms);
        let request = Request {
            group,
            client,
            seq: Seq(self.next_seq.fetch_add(1, Ordering::Relaxed)),
            cmds,
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
