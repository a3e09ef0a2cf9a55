//! `tandem slots`: show the slot map, move slots to a group, or spread them evenly (S2, S3).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tandem_protocol::GroupId;
use tandem_protocol::message::SlotsChange;
use tandem_runtime::status::{slots_json, slots_table};

use crate::config::ViewServiceList;

/// Redis Cluster's slot count (S1); the view service checks ranges again.
const SLOT_COUNT: u16 = 16_384;

/// Options of `tandem slots`.
#[derive(Args, Debug)]
#[command(after_help = "\
Every change is one configuration of the view service's log. A change is refused while the last
one is still being taken on (a move in progress): wait until `tandem slots show` reports no move
in progress, then try again.

  tandem slots show --viewserver 10.0.0.1:7000
  tandem slots move --slots 0-999,5000 --to 2 --viewserver 10.0.0.1:7000
  tandem slots rebalance --viewserver 10.0.0.1:7000")]
pub struct SlotsArgs {
    #[command(subcommand)]
    action: SlotsCommand,
}

#[derive(Subcommand, Debug)]
enum SlotsCommand {
    /// Print the slot map: each group's slots, primary and client address, the configuration
    /// it took on, and the moves in progress.
    Show(ShowArgs),
    /// Move slots to a group (one configuration change); waits until it is applied.
    Move(MoveArgs),
    /// Spread the slots evenly over every group that has a view, moving as few as possible.
    Rebalance(RebalanceArgs),
}

/// Where the request goes and as whom (shared by every `tandem slots` command).
#[derive(Args, Debug)]
struct Target {
    /// View-service nodes (the leader is found from any of them).
    #[command(flatten)]
    view_service: ViewServiceList,
    /// Give up unless the view service answers (and a change is applied) within this long.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    timeout_ms: u64,
    /// An admin certificate (tandem://admin/NAME), or --insecure.
    #[command(flatten)]
    tls: crate::role::ClusterTlsArgs,
}

#[derive(Args, Debug)]
struct ShowArgs {
    #[command(flatten)]
    target: Target,
    /// Print JSON: {"epoch","config","unassigned","groups":[{"group","slots","ranges",
    /// "primary","client_addr","config_done","moving"}],"moves":[{"from","to","slots",
    /// "ranges"}],"moving":[..groups..]}.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct MoveArgs {
    #[command(flatten)]
    target: Target,
    /// The slots to move: ranges A-B (inclusive) or single slots, comma-separated, within
    /// 0-16383.
    #[arg(long, value_name = "A-B[,C-D]", value_delimiter = ',', required = true, value_parser = parse_range)]
    slots: Vec<(u16, u16)>,
    /// The group that takes them (it must have a view: its servers are running).
    #[arg(long, value_name = "GROUP")]
    to: u32,
}

#[derive(Args, Debug)]
struct RebalanceArgs {
    #[command(flatten)]
    target: Target,
}

/// `A-B` or `A`, within the slot range.
fn parse_range(text: &str) -> Result<(u16, u16), String> {
    let slot = |s: &str| -> Result<u16, String> {
        let n: u16 = s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a slot number"))?;
        if n >= SLOT_COUNT {
            return Err(format!("slot {n} is beyond {}", SLOT_COUNT - 1));
        }
        Ok(n)
    };
    let (a, b) = match text.split_once('-') {
        Some((a, b)) => (slot(a)?, slot(b)?),
        None => {
            let n = slot(text)?;
            (n, n)
        }
    };
    if a > b {
        return Err(format!("{text}: the range ends before it starts"));
    }
    Ok((a, b))
}

/// Runs `tandem slots show|move|rebalance`.
pub fn run(args: SlotsArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (target, change, json) = match args.action {
        SlotsCommand::Show(a) => (a.target, None, a.json),
        SlotsCommand::Move(a) => {
            if a.slots.len() > usize::from(SLOT_COUNT) {
                bail!("--slots: at most {SLOT_COUNT} ranges");
            }
            let change = SlotsChange::Move {
                ranges: a.slots,
                to: GroupId(a.to),
            };
            (a.target, Some(change), false)
        }
        SlotsCommand::Rebalance(a) => (a.target, Some(SlotsChange::Rebalance), false),
    };
    let tls = target.tls.load(None)?;
    let timeout = Duration::from_millis(target.timeout_ms);
    let addrs = target.view_service.addrs;
    let mut out = String::new();
    let map = match change {
        None => runtime
            .block_on(tandem_runtime::view_service::cluster_map(
                &addrs,
                timeout,
                tls.as_ref(),
            ))
            .context("cannot read the slot map")?,
        Some(change) => {
            if let Some(tls) = &tls {
                tandem_runtime::tls::expect_principal(
                    tls,
                    tandem_runtime::identity::Role::Admin,
                    None,
                )?;
            }
            let before = runtime
                .block_on(tandem_runtime::view_service::cluster_map(
                    &addrs,
                    timeout,
                    tls.as_ref(),
                ))
                .context("cannot read the slot map")?;
            let map = runtime
                .block_on(tandem_runtime::view_service::change_slots(
                    &addrs,
                    change,
                    timeout,
                    tls.as_ref(),
                ))
                .context("slot change failed")?;
            let outcome = if map.config.num == before.config.num {
                format!(
                    "nothing to change: configuration {} already does it\n",
                    map.config.num
                )
            } else {
                format!("configuration {} applied\n", map.config.num)
            };
            out.push_str(&outcome);
            map
        }
    };
    if json {
        out.push_str(&slots_json(&map));
        out.push('\n');
    } else {
        out.push_str(&slots_table(&map, None));
    }
    // A reader that stops early (`| head`) is not an error.
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn s3_slot_ranges_parse_and_are_checked() {
        assert_eq!(parse_range("0-99"), Ok((0, 99)));
        assert_eq!(parse_range("5000"), Ok((5000, 5000)));
        assert_eq!(parse_range("16383"), Ok((16383, 16383)));
        assert!(parse_range("16384").is_err());
        assert!(parse_range("10-5").is_err());
        assert!(parse_range("a-b").is_err());
    }
}
