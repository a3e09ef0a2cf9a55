//! `tandem status`: ask the view service for every group's view, acknowledgement and idle
//! servers (`GetStatus`), and render it as JSON or a table.

use std::time::Duration;

use bytes::BytesMut;
use serde::Serialize;
use tandem_protocol::{ClientId, Endpoint, Message, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::clock::random_u64;
use crate::config::NetConfig;
use crate::error::RuntimeError;
use crate::wire::{Envelope, decode_frame, encode_frame};

/// Asks each view service address in turn; the first answer wins.
pub async fn status(
    view_service_addrs: &[String],
    timeout: Duration,
) -> Result<Status, RuntimeError> {
    for addr in view_service_addrs {
        let deadline = Instant::now() + timeout;
        match timeout_at(deadline, ask(addr)).await {
            Ok(Ok(status)) => return Ok(status),
            Ok(Err(error)) => tracing::debug!(%addr, %error, "status query failed"),
            Err(_) => tracing::debug!(%addr, "status query timed out"),
        }
    }
    Err(RuntimeError::NoViewService(view_service_addrs.join(",")))
}

async fn ask(addr: &str) -> std::io::Result<Status> {
    let max = NetConfig::default().max_frame_bytes;
    let mut stream = TcpStream::connect(addr).await?;
    let envelope = Envelope {
        from: Endpoint::Client(ClientId(random_u64())),
        msg: Message::GetStatus {},
    };
    let frame = encode_frame(&envelope, max).map_err(std::io::Error::other)?;
    stream.write_all(&frame).await?;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        while let Some(envelope) = decode_frame(&mut buf, max).map_err(std::io::Error::other)? {
            if let Message::StatusReply(status) = envelope.msg {
                return Ok(status);
            }
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// The `--json` document, fields in the documented order.
#[derive(Serialize)]
struct JsonStatus<'a> {
    groups: Vec<JsonGroup<'a>>,
}

#[derive(Serialize)]
struct JsonGroup<'a> {
    group: u32,
    viewnum: u64,
    primary: Option<&'a str>,
    backups: Vec<&'a str>,
    acked: bool,
    idle: Vec<&'a str>,
}

/// The `--json` form, exactly
/// `{"groups":[{"group":0,"viewnum":N,"primary":"HOST:PORT"|null,"backups":[..],"acked":..,
/// "idle":[..]}]}`. A view service that knows no group yet reports group 0 without a view.
pub fn status_json(status: &Status) -> String {
    let mut groups: Vec<JsonGroup<'_>> = status
        .groups
        .iter()
        .map(|g| JsonGroup {
            group: g.group.0,
            viewnum: g.view.as_ref().map_or(0, |v| v.num.0),
            primary: g.view.as_ref().map(|v| v.primary.as_str()),
            backups: g
                .view
                .iter()
                .flat_map(|v| &v.backups)
                .map(|b| b.as_str())
                .collect(),
            acked: g.acked,
            idle: g.idle.iter().map(|s| s.as_str()).collect(),
        })
        .collect();
    if groups.is_empty() {
        groups.push(JsonGroup {
            group: 0,
            viewnum: 0,
            primary: None,
            backups: Vec::new(),
            acked: false,
            idle: Vec::new(),
        });
    }
    serde_json::to_string(&JsonStatus { groups }).expect("plain data serializes")
}

/// A readable table, one line per group.
pub fn status_table(status: &Status) -> String {
    let mut out = format!(
        "{:<6} {:<8} {:<22} {:<6} {:<40} {}\n",
        "GROUP", "VIEW", "PRIMARY", "ACKED", "BACKUPS", "IDLE"
    );
    if status.groups.is_empty() {
        out.push_str("(no server has pinged the view service yet)\n");
    }
    for g in &status.groups {
        let list = |ids: Vec<&str>| {
            if ids.is_empty() {
                "-".to_owned()
            } else {
                ids.join(",")
            }
        };
        let backups = list(
            g.view
                .iter()
                .flat_map(|v| &v.backups)
                .map(|b| b.as_str())
                .collect(),
        );
        let idle = list(g.idle.iter().map(|s| s.as_str()).collect());
        out.push_str(&format!(
            "{:<6} {:<8} {:<22} {:<6} {:<40} {}\n",
            g.group.0,
            g.view.as_ref().map_or(0, |v| v.num.0),
            g.view.as_ref().map_or("-", |v| v.primary.as_str()),
            if g.acked { "yes" } else { "no" },
            backups,
            idle
        ));
    }
    out
}

/// The `--history` table: every group's recent views, newest first, each with when it started
/// (relative to the view service's clock) and why.
pub fn status_history(status: &Status) -> String {
    let mut out = String::new();
    if status.groups.is_empty() {
        out.push_str("(no server has pinged the view service yet)\n");
    }
    for g in &status.groups {
        out.push_str(&format!("group {}\n", g.group.0));
        out.push_str(&format!(
            "  {:<6} {:<10} {:<22} {:<40} {}\n",
            "VIEW", "AGO", "PRIMARY", "BACKUPS", "REASON"
        ));
        for h in g.history.iter().rev() {
            let ago_ms = status.now_ms.saturating_sub(h.at_ms);
            let backups: Vec<&str> = h.view.backups.iter().map(|b| b.as_str()).collect();
            out.push_str(&format!(
                "  {:<6} {:<10} {:<22} {:<40} {}\n",
                h.view.num.0,
                format!("{:.1}s", ago_ms as f64 / 1000.0),
                h.view.primary.as_str(),
                if backups.is_empty() {
                    "-".to_owned()
                } else {
                    backups.join(",")
                },
                h.reason()
            ));
        }
    }
    out
}

/// The `--json --history` document: `{"groups":[{"group":0,"history":[{"viewnum","primary",
/// "backups","ago_ms","reason"}]}]}`, newest view first.
pub fn status_history_json(status: &Status) -> String {
    let groups: Vec<serde_json::Value> = status
        .groups
        .iter()
        .map(|g| {
            let history: Vec<serde_json::Value> = g
                .history
                .iter()
                .rev()
                .map(|h| {
                    serde_json::json!({
                        "viewnum": h.view.num.0,
                        "primary": h.view.primary.as_str(),
                        "backups": h.view.backups.iter().map(|b| b.as_str()).collect::<Vec<_>>(),
                        "ago_ms": status.now_ms.saturating_sub(h.at_ms),
                        "reason": h.reason(),
                    })
                })
                .collect();
            serde_json::json!({ "group": g.group.0, "history": history })
        })
        .collect();
    serde_json::json!({ "groups": groups }).to_string()
}
