//! `tandem status`: ask every view-service node for its status (`GetStatus`) and render the
//! nodes (id, role, term, indexes, last contact) and every group's view, acknowledgement and
//! idle servers as JSON or tables. The groups come from the leader's answer (Q1).

use std::time::Duration;

use serde::Serialize;
use tandem_protocol::message::{MemberStatus, NodeStatus};
use tandem_protocol::view_service::map_moving;
use tandem_protocol::{ClientId, ClusterMap, Endpoint, GroupId, Message, Status};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};

use crate::clock::random_u64;
use crate::error::{RuntimeError, parse_view_services};
use crate::net::Exchange;
use crate::tls::PeerTls;

/// What one view-service node answered to `GetStatus`.
#[derive(Clone, Debug)]
pub struct NodeAnswer {
    /// The address asked (as given in the list).
    pub addr: String,
    /// Its status, or why there is none (refused, timed out, ...).
    pub status: Result<Status, String>,
}

/// Every listed view-service node's answer, and which one the groups' views are taken from.
#[derive(Clone, Debug)]
pub struct ClusterStatus {
    /// One per listed address, in the list's order.
    pub nodes: Vec<NodeAnswer>,
    /// Index in `nodes` of the answer the groups come from (see [`choose_source`]).
    pub source: usize,
    /// That answer.
    groups: Status,
}

impl ClusterStatus {
    /// The answer the groups' views come from.
    pub fn groups(&self) -> &Status {
        &self.groups
    }

    /// The answering leader's node status, if a leader answered.
    fn leader(&self) -> Option<&NodeStatus> {
        self.groups().node.as_ref().filter(|n| n.role == "leader")
    }
}

/// Which answer to take the groups' views from (Q1, Q3: only the leader's table is the
/// latest committed one): the leader's (the highest term's if two claim it, a deposed leader not
/// knowing it yet); without a leader, the node that applied the most log entries; a node that
/// reports no Raft state (a single view service) counts as applied 0. `None` if no node answered.
pub fn choose_source(answers: &[Option<&Status>]) -> Option<usize> {
    let leader = answers
        .iter()
        .enumerate()
        .filter_map(|(i, a)| Some((i, a.as_ref()?.node.as_ref()?)))
        .filter(|(_, node)| node.role == "leader")
        .max_by_key(|(i, node)| (node.term, std::cmp::Reverse(*i)))
        .map(|(i, _)| i);
    leader.or_else(|| {
        answers
            .iter()
            .enumerate()
            .filter_map(|(i, a)| Some((i, a.as_ref()?)))
            .max_by_key(|(i, status)| {
                let applied = status.node.as_ref().map_or(0, |n| n.applied);
                (applied, std::cmp::Reverse(*i))
            })
            .map(|(i, _)| i)
    })
}

/// Asks EVERY node of the list for its status at once, each within `timeout`; fails only if
/// the list is malformed or no node answered.
pub async fn cluster_status(
    view_service_addrs: &[String],
    timeout: Duration,
    tls: Option<&PeerTls>,
) -> Result<ClusterStatus, RuntimeError> {
    let list = parse_view_services(view_service_addrs)?;
    let mut tasks = JoinSet::new();
    for (index, addr) in list.iter().enumerate() {
        let addr = addr.as_str().to_owned();
        let tls = tls.cloned();
        tasks.spawn(async move {
            let deadline = Instant::now() + timeout;
            let status = match timeout_at(deadline, ask(&addr, tls.as_ref())).await {
                Ok(Ok(status)) => Ok(status),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
            };
            (index, NodeAnswer { addr, status })
        });
    }
    let mut nodes: Vec<Option<NodeAnswer>> = vec![None; list.len()];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, answer)) = joined {
            nodes[index] = Some(answer);
        }
    }
    let nodes: Vec<NodeAnswer> = nodes
        .into_iter()
        .zip(&list)
        .map(|(answer, addr)| {
            answer.unwrap_or_else(|| NodeAnswer {
                addr: addr.to_string(),
                status: Err("the query task failed".to_owned()),
            })
        })
        .collect();
    let answers: Vec<Option<&Status>> = nodes.iter().map(|n| n.status.as_ref().ok()).collect();
    match choose_source(&answers) {
        Some(source) => {
            let groups = answers[source].cloned().unwrap_or_default();
            Ok(ClusterStatus {
                nodes,
                source,
                groups,
            })
        }
        None => Err(RuntimeError::NoViewService(view_service_addrs.join(","))),
    }
}

/// Asks every node of the list (see [`cluster_status`]) and returns the groups' status from
/// the leader's answer (or the most up-to-date node's).
pub async fn status(
    view_service_addrs: &[String],
    timeout: Duration,
    tls: Option<&PeerTls>,
) -> Result<Status, RuntimeError> {
    let cluster = cluster_status(view_service_addrs, timeout, tls).await?;
    Ok(cluster.groups().clone())
}

async fn ask(addr: &str, tls: Option<&PeerTls>) -> std::io::Result<Status> {
    let mut exchange = Exchange::connect(addr, tls).await?;
    exchange
        .send(
            Endpoint::Client(ClientId(random_u64())),
            Message::GetStatus {},
        )
        .await?;
    loop {
        if let Message::StatusReply(status) = exchange.recv().await? {
            return Ok(status);
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
    /// Slots the group owns in the current configuration (S2).
    slots: u32,
    /// The last configuration the group reported taken on (S3).
    config_done: u64,
}

fn json_groups(status: &Status) -> Vec<JsonGroup<'_>> {
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
            slots: status
                .cluster
                .as_ref()
                .map_or(0, |m| slot_count(m, g.group)),
            config_done: status
                .cluster
                .as_ref()
                .and_then(|m| m.groups.get(&g.group))
                .map_or(0, |i| i.config_done.0),
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
            slots: 0,
            config_done: 0,
        });
    }
    groups
}

/// The groups' `--json` form, exactly
/// `{"groups":[{"group":0,"viewnum":N,"primary":"HOST:PORT"|null,"backups":[..],"acked":..,
/// "idle":[..],"slots":N,"config_done":N}]}`. A view service that knows no group yet reports group 0 without a view.
pub fn status_json(status: &Status) -> String {
    let groups = json_groups(status);
    serde_json::to_string(&JsonStatus { groups }).expect("plain data serializes")
}

/// One view-service node as `tandem status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeRow {
    /// Raft id (from its answer, or from the leader's member list), if known.
    pub id: Option<u64>,
    /// The address asked.
    pub address: String,
    /// "leader", "follower", "candidate", "precandidate", "single" (a view service without
    /// Raft state), "unreachable", or "not asked" (a member the leader knows that the list
    /// does not name).
    pub role: String,
    /// Its term.
    pub term: Option<u64>,
    /// Highest log index it knows committed.
    pub commit: Option<u64>,
    /// Highest log index it applied.
    pub applied: Option<u64>,
    /// The leader's id as it knows it (`None`: unknown).
    pub leader: Option<u64>,
    /// Ms since the leader last heard from it (from the leader's member list; 0 for the leader).
    pub last_contact_ms: Option<u64>,
    /// Why it did not answer.
    pub error: Option<String>,
}

/// One row per listed node (in the list's order), then one per member of the leader's list that
/// the list does not name; the last-contact column comes from the answering leader's member list,
/// matched by id, or by address for a node that did not answer.
pub fn node_rows(cluster: &ClusterStatus) -> Vec<NodeRow> {
    let members = cluster.leader().map_or(&[][..], |l| &l.members[..]);
    let mut rows = listed_rows(cluster, members);
    // Members the leader knows that the list does not name (added online): shown, not asked.
    for member in members {
        let listed = cluster.nodes.iter().any(|n| n.addr == member.addr)
            || rows.iter().any(|r| r.id == Some(member.id));
        if !listed {
            rows.push(NodeRow {
                id: Some(member.id),
                address: member.addr.clone(),
                role: "not asked".to_owned(),
                term: None,
                commit: None,
                applied: None,
                leader: None,
                last_contact_ms: member.last_contact_ago_ms,
                error: None,
            });
        }
    }
    rows
}

fn listed_rows(cluster: &ClusterStatus, members: &[MemberStatus]) -> Vec<NodeRow> {
    cluster
        .nodes
        .iter()
        .map(|answer| match &answer.status {
            Ok(status) => match &status.node {
                Some(node) => NodeRow {
                    id: Some(node.id),
                    address: answer.addr.clone(),
                    role: node.role.clone(),
                    term: Some(node.term),
                    commit: Some(node.commit),
                    applied: Some(node.applied),
                    leader: (node.leader != 0).then_some(node.leader),
                    last_contact_ms: members
                        .iter()
                        .find(|m| m.id == node.id)
                        .and_then(|m| m.last_contact_ago_ms),
                    error: None,
                },
                None => NodeRow {
                    id: None,
                    address: answer.addr.clone(),
                    role: "single".to_owned(),
                    term: None,
                    commit: None,
                    applied: None,
                    leader: None,
                    last_contact_ms: None,
                    error: None,
                },
            },
            Err(error) => {
                let member = members.iter().find(|m| m.addr == answer.addr);
                NodeRow {
                    id: member.map(|m| m.id),
                    address: answer.addr.clone(),
                    role: "unreachable".to_owned(),
                    term: None,
                    commit: None,
                    applied: None,
                    leader: None,
                    last_contact_ms: member.and_then(|m| m.last_contact_ago_ms),
                    error: Some(error.clone()),
                }
            }
        })
        .collect()
}

/// `tandem status --json`: `{"nodes":[{"id","address","role","term","commit","applied",
/// "leader","last_contact_ms","error"}],"groups":[..as in [`status_json`]..],
/// "slots":{..as in [`slots_json`]..}|null}`.
pub fn cluster_status_json(cluster: &ClusterStatus) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        nodes: Vec<NodeRow>,
        groups: Vec<JsonGroup<'a>>,
        slots: Option<SlotsSummary>,
    }
    let doc = Doc {
        nodes: node_rows(cluster),
        groups: json_groups(cluster.groups()),
        slots: cluster.groups().cluster.as_deref().map(slots_summary),
    };
    serde_json::to_string(&doc).expect("plain data serializes")
}

/// `tandem status`: the view-service nodes' table, then the groups' (see [`status_table`]).
pub fn cluster_status_table(cluster: &ClusterStatus) -> String {
    let dash = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut out = format!(
        "{:<4} {:<22} {:<12} {:<6} {:<8} {:<8} {:<7} {}\n",
        "ID", "ADDRESS", "ROLE", "TERM", "COMMIT", "APPLIED", "LEADER", "LAST CONTACT"
    );
    for row in node_rows(cluster) {
        let contact = row.last_contact_ms.map_or_else(
            || "-".to_owned(),
            |ms| format!("{:.1}s ago", ms as f64 / 1000.0),
        );
        out.push_str(&format!(
            "{:<4} {:<22} {:<12} {:<6} {:<8} {:<8} {:<7} {}\n",
            dash(row.id),
            row.address,
            row.role,
            dash(row.term),
            dash(row.commit),
            dash(row.applied),
            dash(row.leader),
            contact
        ));
    }
    if cluster.leader().is_none() && cluster.groups().node.is_some() {
        out.push_str(&format!(
            "(no leader answered: groups as seen by {})\n",
            cluster.nodes[cluster.source].addr
        ));
    }
    out.push('\n');
    out.push_str(&status_table(cluster.groups()));
    if let Some(map) = cluster.groups().cluster.as_deref()
        && map.config.num.0 > 0
    {
        out.push('\n');
        out.push_str(&slots_table(map, Some(6)));
    }
    out
}

/// One group's part of the slot map (S2, S3), as `tandem status` and `tandem slots show` print
/// it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupSlots {
    /// The group.
    pub group: u32,
    /// How many slots it owns.
    pub slots: u32,
    /// Its slot ranges, inclusive.
    pub ranges: Vec<[u16; 2]>,
    /// Its primary, if it has a view.
    pub primary: Option<String>,
    /// The primary's client (Redis) address, if it announced one.
    pub client_addr: Option<String>,
    /// The last configuration it reported taken on.
    pub config_done: u64,
    /// Still taking on the current configuration (S3).
    pub moving: bool,
}

/// Slots changing owner from the previous configuration to the current one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MoveSummary {
    /// The giver.
    pub from: u32,
    /// The taker.
    pub to: u32,
    /// How many slots.
    pub slots: u32,
    /// Which, inclusive ranges.
    pub ranges: Vec<[u16; 2]>,
}

/// The slot map for operators: configuration numbers, each group's share, the last change's
/// moves and whether it is still being taken on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlotsSummary {
    /// The cluster map's epoch.
    pub epoch: u64,
    /// The current configuration.
    pub config: u64,
    /// Slots no group owns.
    pub unassigned: u32,
    /// Every group the view service knows, by id.
    pub groups: Vec<GroupSlots>,
    /// The moves of the last change (from the previous configuration).
    pub moves: Vec<MoveSummary>,
    /// Groups still taking on the current configuration: a move in progress (S3).
    pub moving: Vec<u32>,
}

fn range_count(ranges: &[(u16, u16)]) -> u32 {
    ranges.iter().map(|(a, b)| u32::from(b - a) + 1).sum()
}

fn slot_count(map: &ClusterMap, group: GroupId) -> u32 {
    range_count(&map.config.slots_of(group))
}

/// Summarizes `map` (see [`SlotsSummary`]).
pub fn slots_summary(map: &ClusterMap) -> SlotsSummary {
    let moving: Vec<u32> = map_moving(map).into_iter().map(|(g, _)| g.0).collect();
    let groups = map
        .groups
        .iter()
        .map(|(g, info)| {
            let ranges = map.config.slots_of(*g);
            let primary = info.view.as_ref().map(|v| &v.primary);
            GroupSlots {
                group: g.0,
                slots: range_count(&ranges),
                ranges: ranges.iter().map(|(a, b)| [*a, *b]).collect(),
                primary: primary.map(ToString::to_string),
                client_addr: primary.and_then(|p| info.client_addrs.get(p).cloned()),
                config_done: info.config_done.0,
                moving: moving.contains(&g.0),
            }
        })
        .collect();
    let moves = map
        .previous
        .moves_to(&map.config)
        .into_iter()
        .map(|m| MoveSummary {
            from: m.from.0,
            to: m.to.0,
            slots: range_count(&m.slots),
            ranges: m.slots.iter().map(|(a, b)| [*a, *b]).collect(),
        })
        .collect();
    let assigned: u32 = map
        .config
        .ranges
        .iter()
        .map(|r| u32::from(r.end - r.start) + 1)
        .sum();
    SlotsSummary {
        epoch: map.epoch,
        config: map.config.num.0,
        unassigned: u32::from(tandem_kv::slots::SLOT_COUNT) - assigned,
        groups,
        moves,
        moving,
    }
}

/// `tandem slots show --json`: the [`SlotsSummary`] as one JSON object.
pub fn slots_json(map: &ClusterMap) -> String {
    serde_json::to_string(&slots_summary(map)).expect("plain data serializes")
}

/// Ranges as `0-99,200,300-310`, at most `limit` of them (then `... (N more)`).
fn ranges_text(ranges: &[[u16; 2]], limit: Option<usize>) -> String {
    if ranges.is_empty() {
        return "-".to_owned();
    }
    let shown = limit.unwrap_or(usize::MAX).min(ranges.len());
    let mut text: Vec<String> = ranges[..shown]
        .iter()
        .map(|[a, b]| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    if shown < ranges.len() {
        text.push(format!("... ({} more)", ranges.len() - shown));
    }
    text.join(",")
}

/// The slot map as a table: the configuration, one line per group (slots, primary and its
/// client address, reported configuration, ranges, at most `limit` of them), and the moves of
/// the last change with whether they are done.
pub fn slots_table(map: &ClusterMap, limit: Option<usize>) -> String {
    let summary = slots_summary(map);
    let state = if summary.moving.is_empty() {
        "no move in progress".to_owned()
    } else {
        let groups: Vec<String> = summary.moving.iter().map(u32::to_string).collect();
        format!(
            "move in progress: still being taken on by group(s) {}",
            groups.join(",")
        )
    };
    let mut out = format!(
        "slot configuration {} (epoch {}): {state}\n",
        summary.config, summary.epoch
    );
    out.push_str(&format!(
        "{:<6} {:<6} {:<22} {:<22} {:<5} {}\n",
        "GROUP", "SLOTS", "PRIMARY", "CLIENT ADDR", "DONE", "RANGES"
    ));
    for g in &summary.groups {
        out.push_str(&format!(
            "{:<6} {:<6} {:<22} {:<22} {:<5} {}\n",
            g.group,
            g.slots,
            g.primary.as_deref().unwrap_or("-"),
            g.client_addr.as_deref().unwrap_or("-"),
            format!("{}{}", g.config_done, if g.moving { "*" } else { "" }),
            ranges_text(&g.ranges, limit)
        ));
    }
    if summary.unassigned > 0 {
        out.push_str(&format!("unassigned slots: {}\n", summary.unassigned));
    }
    for m in &summary.moves {
        out.push_str(&format!(
            "configuration {}: {} slots from group {} to group {}: {}\n",
            summary.config,
            m.slots,
            m.from,
            m.to,
            ranges_text(&m.ranges, limit)
        ));
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u64, role: &str, term: u64, applied: u64) -> Status {
        Status {
            node: Some(NodeStatus {
                id,
                addr: format!("n{id}:7000"),
                role: role.to_owned(),
                term,
                leader: if role == "leader" { id } else { 0 },
                commit: applied,
                applied,
                members: (1..=4)
                    .map(|m| MemberStatus {
                        id: m,
                        addr: format!("n{m}:7000"),
                        last_contact_ago_ms: Some(if m == id { 0 } else { 10 * m }),
                    })
                    .collect(),
                ..NodeStatus::default()
            }),
            ..Status::default()
        }
    }

    #[test]
    fn s3_slots_table_shows_shares_moves_and_who_is_behind() {
        use std::collections::BTreeMap;
        use tandem_protocol::{ConfigNum, GroupInfo, ServerId, ShardConfig, View, ViewNum};
        let owners = |split: usize| -> Vec<Option<GroupId>> {
            (0..16384)
                .map(|s| Some(GroupId(u32::from(s < split))))
                .collect()
        };
        let info = |primary: &str, addr: Option<&str>, done: u64| GroupInfo {
            view: Some(View {
                num: ViewNum(1),
                primary: ServerId::new(primary),
                backups: Vec::new(),
            }),
            client_addrs: addr
                .map(|a| BTreeMap::from([(ServerId::new(primary), a.to_owned())]))
                .unwrap_or_default(),
            config_done: ConfigNum(done),
        };
        let map = ClusterMap {
            epoch: 9,
            config: ShardConfig::from_owners(ConfigNum(2), &owners(100)),
            previous: ShardConfig::from_owners(ConfigNum(1), &owners(0)),
            groups: BTreeMap::from([
                (GroupId(0), info("s0:7000", Some("s0:6379"), 2)),
                (GroupId(1), info("s1:7000", None, 1)),
            ]),
        };
        let table = slots_table(&map, None);
        assert!(
            table.contains(
                "configuration 2 (epoch 9): move in progress: still being taken on by group(s) 1"
            ),
            "{table}"
        );
        assert!(table.contains("100-16383"), "{table}");
        assert!(table.contains("s0:6379"), "{table}");
        assert!(
            table.contains("configuration 2: 100 slots from group 0 to group 1: 0-99"),
            "{table}"
        );
        let summary = slots_summary(&map);
        assert_eq!(summary.moving, vec![1]);
        assert_eq!(
            summary.groups.iter().map(|g| g.slots).collect::<Vec<_>>(),
            vec![16284, 100]
        );
        assert_eq!(summary.unassigned, 0);
    }

    #[test]
    fn q1_status_comes_from_the_leader_or_else_the_most_applied_node() {
        let (f1, l2, f3) = (
            node(1, "follower", 3, 9),
            node(2, "leader", 3, 7),
            node(3, "follower", 3, 8),
        );
        assert_eq!(choose_source(&[Some(&f1), Some(&l2), Some(&f3)]), Some(1));
        // No leader answered: the node that applied the most.
        assert_eq!(choose_source(&[Some(&f1), None, Some(&f3)]), Some(0));
        assert_eq!(choose_source(&[None, None, Some(&f3)]), Some(2));
        // Two claim to lead (a deposed one does not know yet): the higher term wins.
        let stale = node(1, "leader", 2, 9);
        assert_eq!(choose_source(&[Some(&stale), Some(&l2)]), Some(1));
        // A single view service (no Raft state) is taken when it is all there is.
        let single = Status::default();
        assert_eq!(choose_source(&[None, Some(&single)]), Some(1));
        assert_eq!(choose_source(&[None, None]), None);
    }

    #[test]
    fn unreachable_nodes_are_listed_with_the_leaders_last_contact() {
        let cluster = ClusterStatus {
            nodes: vec![
                NodeAnswer {
                    addr: "n1:7000".into(),
                    status: Err("connection refused".into()),
                },
                NodeAnswer {
                    addr: "n2:7000".into(),
                    status: Ok(node(2, "leader", 4, 12)),
                },
                NodeAnswer {
                    addr: "n3:7000".into(),
                    status: Ok(node(3, "follower", 4, 11)),
                },
            ],
            source: 1,
            groups: node(2, "leader", 4, 12),
        };
        let rows = node_rows(&cluster);
        assert_eq!(rows[0].role, "unreachable");
        assert_eq!(rows[0].id, Some(1), "id from the leader's member list");
        assert_eq!(rows[0].last_contact_ms, Some(10));
        assert_eq!(rows[0].error.as_deref(), Some("connection refused"));
        assert_eq!(
            (
                rows[1].role.as_str(),
                rows[1].leader,
                rows[1].last_contact_ms
            ),
            ("leader", Some(2), Some(0))
        );
        assert_eq!(
            (rows[2].applied, rows[2].last_contact_ms),
            (Some(11), Some(30))
        );
        let table = cluster_status_table(&cluster);
        let line = table.lines().nth(1).expect("first node row");
        assert!(
            line.contains("n1:7000") && line.contains("unreachable"),
            "{table}"
        );
        assert!(!table.contains("no leader answered"), "{table}");
        assert_eq!(
            rows.len(),
            4,
            "member 4 is known to the leader but not listed"
        );
        assert_eq!((rows[3].id, rows[3].role.as_str()), (Some(4), "not asked"));
        let json: serde_json::Value =
            serde_json::from_str(&cluster_status_json(&cluster)).expect("valid JSON");
        assert_eq!(json["nodes"][0]["role"], "unreachable");
        assert_eq!(json["nodes"][1]["term"], 4);
        assert_eq!(json["groups"][0]["group"], 0);
    }
}
