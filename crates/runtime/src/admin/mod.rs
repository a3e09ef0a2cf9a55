//! The admin HTTP endpoint every role can serve (`--admin HOST:PORT`, off by default), with
//! axum:
//!
//! - `GET /status`: the role's state as JSON ([`AdminSource::status`]).
//! - `GET /metrics`: Prometheus text format (version 0.0.4), encoded by prometheus-client
//!   ([`AdminSource::metrics`]).
//! - `GET /healthz`: 200 while the process serves; `GET /readyz`: 200 once the role can do its
//!   job (a server in a view, a coordinator that knows a primary), 503 with the reason before.
//! - `GET /`: the dashboard, only on the view service: one HTML page (no external assets)
//!   that polls `/status` of the same endpoint.
//!
//! Access (rule L8 of docs/PROTOCOL.md): a bare port binds loopback; a non-loopback address
//! is refused unless a bearer token is configured (`--admin-token`). With a token, every route
//! but `/healthz` needs `Authorization: Bearer TOKEN`, or the cookie the dashboard link
//! `/?token=TOKEN` sets (so the page's own fetches of `/status` carry it); else 401.
//!
//! Each role implements [`AdminSource`] over state it already shares or a snapshot its task
//! publishes a few times a second, so a scrape never waits for (or slows) the role's task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use crate::error::{RuntimeError, bind};
use crate::metrics::{CONTENT_TYPE, Exposition};
use crate::net::NetStats;
use crate::shutdown::Shutdown;

/// The dashboard page: plain HTML, CSS and JavaScript, embedded in the binary.
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// What a role exposes on its admin endpoint.
pub trait AdminSource: Send + Sync + 'static {
    /// The `/status` document.
    fn status(&self) -> serde_json::Value;
    /// Adds the role's metric families to `out`.
    fn metrics(&self, out: &mut Exposition);
    /// `Ok` when ready to serve, else why not.
    fn ready(&self) -> Result<(), String>;
    /// Whether `GET /` serves the dashboard (the view service only).
    fn dashboard(&self) -> bool {
        false
    }
}

/// Normalizes an `--admin` value: a bare port means loopback (`127.0.0.1:PORT`).
pub fn admin_addr(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        format!("127.0.0.1:{value}")
    } else {
        value.to_owned()
    }
}

/// The cookie the dashboard link `/?token=TOKEN` sets (L8).
pub const TOKEN_COOKIE: &str = "tandem_admin_token";
/// Longest admin token accepted.
pub const MAX_ADMIN_TOKEN_BYTES: usize = 256;

/// Checks an admin token: 1 to [`MAX_ADMIN_TOKEN_BYTES`] characters of `A-Z a-z 0-9 - . _ ~
/// + / =` (HTTP's token68, so it fits a header, a cookie and a query string unescaped).
pub fn check_admin_token(token: &str) -> Result<(), RuntimeError> {
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || b"-._~+/=".contains(&byte);
    if token.is_empty() || token.len() > MAX_ADMIN_TOKEN_BYTES || !token.bytes().all(allowed) {
        return Err(RuntimeError::Setting {
            key: "admin-token",
            reason: format!(
                "must be 1 to {MAX_ADMIN_TOKEN_BYTES} characters of A-Z a-z 0-9 - . _ ~ + / ="
            ),
        });
    }
    Ok(())
}

/// A bound admin endpoint, not yet serving.
#[derive(Debug)]
pub struct AdminListener {
    listener: TcpListener,
    token: Option<Arc<str>>,
}

impl AdminListener {
    /// Binds `addr` (see [`admin_addr`]) with no token: only a loopback address (L8).
    pub async fn bind(addr: &str) -> Result<AdminListener, RuntimeError> {
        AdminListener::bind_with_token(addr, None).await
    }

    /// Binds `addr` (see [`admin_addr`]); with `token`, every route but `/healthz` asks for
    /// it. Without one, an address that is not loopback is refused (L8).
    pub async fn bind_with_token(
        addr: &str,
        token: Option<&str>,
    ) -> Result<AdminListener, RuntimeError> {
        if let Some(token) = token {
            check_admin_token(token)?;
        }
        let listener = bind(&admin_addr(addr)).await?;
        let local = listener.local_addr()?;
        if token.is_none() && !local.ip().is_loopback() {
            return Err(RuntimeError::Setting {
                key: "admin",
                reason: format!(
                    "{addr} is not a loopback address: anyone who can reach it could read the \
                     cluster's state; set --admin-token, or bind 127.0.0.1"
                ),
            });
        }
        Ok(AdminListener {
            listener,
            token: token.map(Arc::from),
        })
    }

    /// Binds `addr` if one is configured (the admin endpoint is off by default), asking for
    /// `token` if one is given.
    pub async fn bind_configured(
        addr: Option<&str>,
        token: Option<&str>,
    ) -> Result<Option<AdminListener>, RuntimeError> {
        match addr {
            Some(addr) => Ok(Some(AdminListener::bind_with_token(addr, token).await?)),
            None => Ok(None),
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// Serves `source` as a task until `shutdown`.
    pub fn spawn(self, source: Arc<dyn AdminSource>, mut shutdown: Shutdown) {
        let addr = self.local_addr();
        let router = Router::new()
            .route("/", get(dashboard))
            .route("/status", get(status))
            .route("/metrics", get(metrics))
            .route("/readyz", get(ready))
            .route_layer(middleware::from_fn_with_state(
                self.token.clone(),
                require_token,
            ))
            // Liveness stays open: it tells nothing but "the process runs".
            .route("/healthz", get(|| async { "ok\n" }))
            .with_state(source);
        info!(admin = %addr, token = self.token.is_some(), "admin endpoint started");
        tokio::spawn(async move {
            let served = axum::serve(self.listener, router)
                .with_graceful_shutdown(async move { shutdown.wait().await })
                .await;
            if let Err(error) = served {
                warn!(admin = %addr, %error, "admin endpoint failed");
            }
        });
    }
}

type Source = State<Arc<dyn AdminSource>>;

/// Lets a request through when no token is configured or it carries the token (L8): as
/// `Authorization: Bearer`, as the [`TOKEN_COOKIE`] cookie, or (the dashboard link only) as
/// `?token=` on `/`, which then sets the cookie for the page's own requests.
async fn require_token(
    State(token): State<Option<Arc<str>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return next.run(request).await;
    };
    let from_query = request.uri().path() == "/" && query_token(request.uri()) == Some(&*token);
    if !(from_query || carries_token(request.headers(), &token)) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "admin token required: Authorization: Bearer TOKEN\n",
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    if from_query {
        let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
        if let Ok(cookie) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
    }
    response
}

/// Whether `headers` carry `token` as a bearer token or in the cookie.
fn carries_token(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.strip_prefix("Bearer "))
        .any(|given| same(given.trim(), token));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, given)| name == TOKEN_COOKIE && same(given, token));
    bearer || cookie
}

/// The `token` query parameter of `uri`.
fn query_token(uri: &Uri) -> Option<&str> {
    uri.query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "token")
        .map(|(_, value)| value)
}

/// Compares without stopping at the first differing byte.
fn same(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

async fn dashboard(State(source): Source) -> Response {
    if source.dashboard() {
        Html(DASHBOARD_HTML).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            "the dashboard is served by the view service's admin endpoint; try /status or /metrics\n",
        )
            .into_response()
    }
}

async fn status(State(source): Source) -> Response {
    let body = serde_json::to_string_pretty(&source.status()).expect("JSON values serialize");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn metrics(State(source): Source) -> Response {
    let mut out = Exposition::new();
    source.metrics(&mut out);
    match out.finish() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            warn!(%error, "metrics could not be encoded");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics could not be encoded\n",
            )
                .into_response()
        }
    }
}

async fn ready(State(source): Source) -> Response {
    match source.ready() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

/// The transport's error counters, shared by every role.
pub(crate) fn render_net(out: &mut Exposition, stats: &NetStats) {
    use std::sync::atomic::Ordering::Relaxed;
    out.family(
        "tandem_net_errors_total",
        "counter",
        "Internal transport errors, by kind.",
    )
    .sample(
        "tandem_net_errors_total",
        &[("kind", "dropped_frame")],
        stats.dropped_frames.load(Relaxed) as f64,
    )
    .sample(
        "tandem_net_errors_total",
        &[("kind", "bad_frame")],
        stats.bad_frames.load(Relaxed) as f64,
    )
    .sample(
        "tandem_net_errors_total",
        &[("kind", "refused_frame")],
        stats.refused_frames.load(Relaxed) as f64,
    )
    .sample(
        "tandem_net_errors_total",
        &[("kind", "refused_connection")],
        stats.refused_connections.load(Relaxed) as f64,
    )
    .sample(
        "tandem_net_errors_total",
        &[("kind", "stalled_frame")],
        stats.stalled_frames.load(Relaxed) as f64,
    );
}

/// `GET path` over plain HTTP/1.1 on `addr`, within `timeout`: the status code and body. A
/// minimal client (no chunked encoding: the admin endpoints answer with a length) used by the
/// view service to read coordinators' `/status`, and by tests.
pub async fn http_get(addr: &str, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    http_get_with_token(addr, path, None, timeout).await
}

/// [`http_get`] with `Authorization: Bearer TOKEN` when a token is given (L8).
pub async fn http_get_with_token(
    addr: &str,
    path: &str,
    token: Option<&str>,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let authorization = token
            .map(|token| format!("Authorization: Bearer {token}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Connection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        parse_response(&raw)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

fn parse_response(raw: &[u8]) -> std::io::Result<(u16, String)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status code"))?;
    Ok((code, body.to_owned()))
}
