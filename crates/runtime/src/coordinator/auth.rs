//! Client authentication at the coordinator (PROTOCOL.md A2, A3, A9, A10): the per-connection
//! AUTH state, the commands a connection may run before it authenticates, protected mode, and
//! the cached "default user needs a password" flag.
//!
//! The coordinator decides nothing about permissions: AUTH is checked by the primary against
//! the replicated ACL table, and every data command is checked there again with the user the
//! connection authenticated as (A6). The cached flag only decides, for commands the
//! coordinator answers itself, whether a connection that never authenticated gets `-NOAUTH`,
//! and whether protected mode refuses a non-loopback client. A stale flag never lets a data
//! command through.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tandem_kv::acl::{DEFAULT_USER, NOAUTH};
use tandem_kv::{Command, Reply};
use tandem_protocol::{ClientId, Outcome};
use tandem_resp::Frame;
use tokio::sync::{Notify, oneshot};
use tracing::{info, warn};

use super::Shared;
use super::connection::ConnState;
use super::hub::HubRequest;
use crate::clock::random_u64;
use crate::shutdown::Shutdown;

/// How often the cached flag is refreshed without a reason (A3).
pub(crate) const REFRESH_INTERVAL_MS: u64 = 1000;
/// Pause between attempts to set `--requirepass` while the cluster does not answer.
const REQUIREPASS_RETRY_MS: u64 = 200;

/// Redis's protected-mode refusal, byte for byte (A10).
pub(crate) const DENIED: &str = "DENIED Redis is running in protected mode because protected \
mode is enabled and no password is set for the default user. In this mode connections are only \
accepted from the loopback interface. If you want to connect from external computers to Redis you \
may adopt one of the following solutions: 1) Just disable protected mode sending the command \
'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same \
host the server is running, however MAKE SURE Redis is not publicly accessible from internet if \
you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just \
disable the protected mode by editing the Redis configuration file, and setting the protected \
mode option to 'no', and then restarting the server. 3) If you started the server manually just \
for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication \
password for the default user. NOTE: You only need to do one of the above things in order for \
the server to start accepting connections from the outside.";

/// HELLO without AUTH on a connection that must authenticate first.
const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, \
otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and \
select the RESP protocol version at the same time";

/// The coordinator's cached view of the ACL table (A3).
#[derive(Debug)]
pub(crate) struct AclCache {
    needs_password: AtomicBool,
    refresh: Notify,
}

impl AclCache {
    /// Before the first answer, assume what `--requirepass` will make true.
    pub(crate) fn new(requirepass: bool) -> AclCache {
        AclCache {
            needs_password: AtomicBool::new(requirepass),
            refresh: Notify::new(),
        }
    }

    /// Whether a connection that never authenticated must (as last read from the cluster).
    pub(crate) fn default_needs_password(&self) -> bool {
        self.needs_password.load(Ordering::Relaxed)
    }

    /// Asks for a refresh now (after an ACL write or an AUTH).
    pub(crate) fn refresh_soon(&self) {
        self.refresh.notify_one();
    }
}

/// Whether a command may change the ACL table, so the cache should be refreshed after it.
pub(crate) fn changes_acl(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::AclSetUser { .. }
            | Command::AclDelUser { .. }
            | Command::ConfigSetRequirepass { .. }
    )
}

/// A10: the refusal for a client connecting from `peer`, if protected mode refuses it.
pub(crate) fn protected_refusal(peer: SocketAddr, shared: &Shared) -> Option<Frame> {
    refuses(
        shared.config.protected_mode,
        shared.auth.default_needs_password(),
        peer,
    )
    .then(|| Frame::Error(DENIED.to_owned()))
}

/// The protected-mode decision: on, no password needed, and the peer is not loopback.
pub(crate) fn refuses(protected_mode: bool, needs_password: bool, peer: SocketAddr) -> bool {
    let loopback = match peer.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        ip => ip.is_loopback(),
    };
    protected_mode && !needs_password && !loopback
}

/// What the connection does with one request before its usual handling.
pub(crate) enum Intercept {
    /// Nothing to do here: handle it as usual.
    Pass,
    /// Answered here, in its place among the replies.
    Reply(Frame),
    /// AUTH or HELLO ... AUTH: check the pair through the cluster; on success the connection
    /// becomes `user`, then `hello` (HELLO without its AUTH option) runs locally.
    Auth {
        cmd: Command,
        user: Arc<str>,
        hello: Option<Vec<Bytes>>,
    },
    /// A command the coordinator usually answers that goes to the cluster here (CONFIG SET).
    Cluster(Command),
}

/// A2, A3: decides what happens to `args` given the connection's state.
pub(crate) fn intercept(args: &[Bytes], state: &ConnState, shared: &Shared) -> Intercept {
    let Some(name) = args.first() else {
        return Intercept::Pass;
    };
    let name = name.to_ascii_uppercase();
    let must_auth = state.user.is_none() && shared.auth.default_needs_password();
    match name.as_slice() {
        b"AUTH" => match Command::parse(args) {
            Ok(cmd) => {
                let user = match &cmd {
                    Command::Auth { user: Some(u), .. } => Arc::from(String::from_utf8_lossy(u)),
                    _ => Arc::from(DEFAULT_USER),
                };
                Intercept::Auth {
                    cmd,
                    user,
                    hello: None,
                }
            }
            Err(reply) => Intercept::Reply(super::connection::reply_frame(&reply)),
        },
        b"HELLO" => hello(args, must_auth),
        b"QUIT" | b"RESET" => Intercept::Pass,
        _ if must_auth => Intercept::Reply(Frame::Error(NOAUTH.to_owned())),
        b"CONFIG" if args.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"SET")) => {
            match Command::parse(args) {
                Ok(cmd) => Intercept::Cluster(cmd),
                Err(reply) => Intercept::Reply(super::connection::reply_frame(&reply)),
            }
        }
        _ => Intercept::Pass,
    }
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`: splits off the AUTH option.
fn hello(args: &[Bytes], must_auth: bool) -> Intercept {
    let position = args
        .iter()
        .skip(2)
        .position(|a| a.eq_ignore_ascii_case(b"AUTH"))
        .map(|p| p + 2);
    let Some(at) = position.filter(|at| at + 2 < args.len()) else {
        if must_auth {
            return Intercept::Reply(Frame::Error(HELLO_NOAUTH.to_owned()));
        }
        return Intercept::Pass;
    };
    let (user, password) = (args[at + 1].clone(), args[at + 2].clone());
    let mut rest = args[..at].to_vec();
    rest.extend_from_slice(&args[at + 3..]);
    Intercept::Auth {
        user: Arc::from(String::from_utf8_lossy(&user)),
        cmd: Command::Auth {
            user: Some(user),
            password,
        },
        hello: Some(rest),
    }
}

/// The outcome of an AUTH round trip: `Ok` if the connection is now `user`, else the reply.
pub(crate) fn auth_outcome(outcome: &Outcome) -> Result<(), Frame> {
    match outcome {
        Outcome::Replies(replies) => match replies.first() {
            Some(Reply::Simple(_)) => Ok(()),
            Some(reply) => Err(super::connection::reply_frame(reply)),
            None => Err(Frame::Error("ERR missing reply".to_owned())),
        },
        // The hub splits again what a move split (CrossGroup never reaches a connection).
        Outcome::TimedOut | Outcome::CrossGroup => {
            Err(Frame::Error(super::connection::TRYAGAIN.to_owned()))
        }
    }
}

/// Sends one internal command through the hub and waits for its reply.
async fn ask(shared: &Shared, client: ClientId, cmd: Command) -> Option<Reply> {
    let (done, outcome) = oneshot::channel();
    let request = HubRequest::Submit {
        client,
        cmds: vec![cmd],
        user: None,
        done,
    };
    shared.hub.send(request).ok()?;
    match outcome.await.ok()? {
        Outcome::Replies(replies) => replies.first().cloned(),
        Outcome::TimedOut | Outcome::CrossGroup => None,
    }
}

/// The coordinator's background task (A3, A9): sets `--requirepass` through the cluster once,
/// then keeps the cached flag fresh every [`REFRESH_INTERVAL_MS`] and when asked.
pub(crate) async fn maintain(shared: Arc<Shared>, mut shutdown: Shutdown) {
    let client = ClientId(random_u64());
    if let Some(password) = shared.config.requirepass.clone() {
        let cmd = Command::RequirepassIfUnset {
            password: Bytes::from(password),
        };
        loop {
            let answered = tokio::select! {
                _ = shutdown.wait() => return,
                reply = ask(&shared, client, cmd.clone()) => reply.is_some(),
            };
            if answered {
                info!(
                    event = "requirepass_applied",
                    "the default user has a password (A9)"
                );
                break;
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(Duration::from_millis(REQUIREPASS_RETRY_MS)) => {}
            }
        }
    }
    loop {
        let reply = tokio::select! {
            _ = shutdown.wait() => return,
            reply = ask(&shared, client, Command::AclDefaultState) => reply,
        };
        match reply {
            Some(Reply::Integer(flag)) => shared
                .auth
                .needs_password
                .store(flag != 0, Ordering::Relaxed),
            // A server's backup refuses keyspace-wide commands: like no answer.
            Some(Reply::Error(_)) => {}
            Some(other) => warn!(?other, "unexpected answer to the ACL state query"),
            None => {} // No primary yet: keep the last value.
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = shared.auth.refresh.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(REFRESH_INTERVAL_MS)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::refuses;

    #[test]
    fn a10_protected_mode_refuses_only_non_loopback_without_password() {
        let remote = "192.0.2.7:5000".parse().unwrap();
        let local = "127.0.0.1:5000".parse().unwrap();
        let mapped = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let local6 = "[::1]:5000".parse().unwrap();
        assert!(refuses(true, false, remote));
        assert!(!refuses(true, true, remote), "a password lifts it");
        assert!(!refuses(false, false, remote), "--protected-mode no");
        assert!(!refuses(true, false, local));
        assert!(!refuses(true, false, mapped));
        assert!(!refuses(true, false, local6));
    }
}
