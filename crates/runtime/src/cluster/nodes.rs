//! The CLUSTER commands of a server's client port, rendered from the newest cluster map (S2)
//! the way redis-server 7 shapes them, so that every caught-up server gives the same answer:
//! `CLUSTER SLOTS` (one entry per range, the primary then its backups), `CLUSTER NODES`
//! (one line per server with a client address, exactly one `myself`), `CLUSTER SHARDS`,
//! `CLUSTER INFO`, `CLUSTER KEYSLOT`, `CLUSTER MYID`.
//!
//! A node is a server that announced a client address and is in its group's view; node ids
//! are 40 hex characters derived from the server id (stable across restarts and the same on
//! every server). `CLUSTER NODES`'s config epoch is the configuration number; its bus port is
//! the server's internal port.

use std::fmt::Write as _;

use bytes::Bytes;
use tandem_kv::slots::{SLOT_COUNT, key_slot};
use tandem_protocol::{ClusterMap, GroupId, ServerId, ShardConfig};
use tandem_resp::Frame;

use super::FrontState;

/// A stable 40-hex-character node id for `server` (Redis node ids are 160-bit).
pub(crate) fn node_id(server: &ServerId) -> String {
    let mut id = String::with_capacity(40);
    for part in 0u8..5 {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&[part]);
        hasher.update(b"tandem-node-id:");
        hasher.update(server.as_str().as_bytes());
        let _ = write!(id, "{:08x}", hasher.finalize());
    }
    id
}

/// One server as clients see it.
#[derive(Clone, Debug, PartialEq)]
struct Node {
    id: String,
    host: String,
    port: u16,
    /// The internal port, shown as the bus port.
    bus_port: u16,
    server: ServerId,
    group: GroupId,
    primary: bool,
    /// The primary's node id, for a backup.
    primary_id: Option<String>,
}

/// `HOST:PORT` split at the last colon (IPv6 hosts keep theirs).
fn split_addr(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_owned(), port.parse().ok()?))
}

/// Every node of `map`, group by group, each primary before its backups.
fn nodes(map: &ClusterMap) -> Vec<Node> {
    let mut out = Vec::new();
    for (group, info) in &map.groups {
        let Some(view) = &info.view else { continue };
        let primary_id = node_id(&view.primary);
        for server in view.members() {
            let Some((host, port)) = info.client_addrs.get(server).and_then(|a| split_addr(a))
            else {
                continue;
            };
            let is_primary = *server == view.primary;
            out.push(Node {
                id: node_id(server),
                host,
                port,
                bus_port: split_addr(server.as_str()).map_or(0, |(_, p)| p),
                server: server.clone(),
                group: *group,
                primary: is_primary,
                primary_id: (!is_primary).then(|| primary_id.clone()),
            });
        }
    }
    out
}

/// The nodes, with this server added as a primary without slots if the map does not list it
/// (yet): Lettuce needs exactly one `myself` line.
fn nodes_with_me(state: &FrontState) -> Vec<Node> {
    let mut all = state.map.as_deref().map(nodes).unwrap_or_default();
    if !all.iter().any(|n| n.server == state.me)
        && let Some((host, port)) = split_addr(&state.client_addr)
    {
        all.push(Node {
            id: node_id(&state.me),
            host,
            port,
            bus_port: split_addr(state.me.as_str()).map_or(0, |(_, p)| p),
            server: state.me.clone(),
            group: state.group,
            primary: true,
            primary_id: None,
        });
    }
    all
}

/// The slot ranges a client can be served on: served now (`serving`, from
/// [`ClusterMap::serving_config`]) by a group whose primary has a client address.
fn served_ranges(serving: &ShardConfig, nodes: &[Node]) -> Vec<(u16, u16, GroupId)> {
    serving
        .ranges
        .iter()
        .filter(|r| nodes.iter().any(|n| n.group == r.group && n.primary))
        .map(|r| (r.start, r.end, r.group))
        .collect()
}

/// `CLUSTER <sub> ...` on a server.
pub(crate) fn cluster_command(state: &FrontState, rest: &[Bytes]) -> Frame {
    let Some((sub, args)) = rest.split_first() else {
        return Frame::Error("ERR wrong number of arguments for 'cluster' command".to_owned());
    };
    match (sub.to_ascii_uppercase().as_slice(), args) {
        (b"SLOTS", []) => slots(state),
        (b"NODES", []) => Frame::Verbatim("txt".to_owned(), Bytes::from(nodes_text(state))),
        (b"SHARDS", []) => shards(state),
        (b"INFO", []) => Frame::Verbatim("txt".to_owned(), Bytes::from(info_text(state))),
        (b"MYID", []) => Frame::Bulk(Bytes::from(node_id(&state.me))),
        (b"KEYSLOT", [key]) => Frame::Integer(i64::from(key_slot(key))),
        (b"SLOTS" | b"NODES" | b"SHARDS" | b"INFO" | b"MYID" | b"KEYSLOT", _) => {
            Frame::Error(format!(
                "ERR wrong number of arguments for 'cluster|{}' command",
                String::from_utf8_lossy(sub).to_ascii_lowercase()
            ))
        }
        _ => Frame::Error(format!(
            "ERR unknown subcommand '{}'. Try CLUSTER HELP.",
            String::from_utf8_lossy(sub)
        )),
    }
}

fn node_frame(node: &Node) -> Frame {
    Frame::Array(vec![
        Frame::Bulk(Bytes::from(node.host.clone())),
        Frame::Integer(i64::from(node.port)),
        Frame::Bulk(Bytes::from(node.id.clone())),
        Frame::Map(Vec::new()),
    ])
}

/// `CLUSTER SLOTS`: `[start, end, primary, backups...]` per range, ascending.
fn slots(state: &FrontState) -> Frame {
    let Some(map) = &state.map else {
        return Frame::Array(Vec::new());
    };
    let all = nodes(map);
    let entries = served_ranges(&map.serving_config(), &all)
        .into_iter()
        .map(|(start, end, group)| {
            let mut entry = vec![
                Frame::Integer(i64::from(start)),
                Frame::Integer(i64::from(end)),
            ];
            let members = all.iter().filter(|n| n.group == group);
            let (primaries, backups): (Vec<&Node>, Vec<&Node>) = members.partition(|n| n.primary);
            entry.extend(primaries.into_iter().chain(backups).map(node_frame));
            Frame::Array(entry)
        })
        .collect();
    Frame::Array(entries)
}

/// `CLUSTER NODES`: Redis's line layout, every line ending in a newline.
fn nodes_text(state: &FrontState) -> String {
    let epoch = state.map.as_ref().map_or(0, |m| m.config.num.0);
    let serving = state.map.as_ref().map(|m| m.serving_config());
    let mut out = String::new();
    for node in nodes_with_me(state) {
        let role = if node.primary { "master" } else { "slave" };
        let flags = if node.server == state.me {
            format!("myself,{role}")
        } else {
            role.to_owned()
        };
        let _ = write!(
            out,
            "{} {}:{}@{} {} {} 0 0 {} connected",
            node.id,
            node.host,
            node.port,
            node.bus_port,
            flags,
            node.primary_id.as_deref().unwrap_or("-"),
            epoch
        );
        if node.primary
            && let Some(serving) = &serving
        {
            for (start, end) in serving.slots_of(node.group) {
                if start == end {
                    let _ = write!(out, " {start}");
                } else {
                    let _ = write!(out, " {start}-{end}");
                }
            }
        }
        out.push('\n');
    }
    out
}

/// `CLUSTER SHARDS`: per group, its slots and its nodes.
fn shards(state: &FrontState) -> Frame {
    let all = nodes_with_me(state);
    let mut groups: Vec<GroupId> = all.iter().map(|n| n.group).collect();
    groups.dedup();
    let bulk = |text: &str| Frame::Bulk(Bytes::copy_from_slice(text.as_bytes()));
    let serving = state.map.as_ref().map(|m| m.serving_config());
    let shards = groups
        .into_iter()
        .map(|group| {
            let slots = serving
                .as_ref()
                .map(|m| m.slots_of(group))
                .unwrap_or_default()
                .into_iter()
                .flat_map(|(start, end)| {
                    [
                        Frame::Integer(i64::from(start)),
                        Frame::Integer(i64::from(end)),
                    ]
                })
                .collect();
            let members = all
                .iter()
                .filter(|n| n.group == group)
                .map(|n| {
                    Frame::Map(vec![
                        (bulk("id"), bulk(&n.id)),
                        (bulk("port"), Frame::Integer(i64::from(n.port))),
                        (bulk("ip"), bulk(&n.host)),
                        (bulk("endpoint"), bulk(&n.host)),
                        (
                            bulk("role"),
                            bulk(if n.primary { "master" } else { "replica" }),
                        ),
                        (bulk("replication-offset"), Frame::Integer(0)),
                        (bulk("health"), bulk("online")),
                    ])
                })
                .collect();
            Frame::Map(vec![
                (bulk("slots"), Frame::Array(slots)),
                (bulk("nodes"), Frame::Array(members)),
            ])
        })
        .collect();
    Frame::Array(shards)
}

/// `CLUSTER INFO`: `cluster_state:ok` when every slot is served by a reachable primary.
fn info_text(state: &FrontState) -> String {
    let all = nodes_with_me(state);
    let (assigned, served, size, epoch, config) = match &state.map {
        Some(map) => {
            let assigned: u32 = map
                .config
                .ranges
                .iter()
                .map(|r| u32::from(r.end - r.start) + 1)
                .sum();
            let mapped = nodes(map);
            let serving = map.serving_config();
            let served_ranges = served_ranges(&serving, &mapped);
            let served: u32 = served_ranges
                .iter()
                .map(|(s, e, _)| u32::from(e - s) + 1)
                .sum();
            // Redis's cluster_size: the primaries serving at least one slot, now.
            let mut owners: Vec<GroupId> = serving.ranges.iter().map(|r| r.group).collect();
            owners.sort();
            owners.dedup();
            (assigned, served, owners.len(), map.epoch, map.config.num.0)
        }
        None => (0, 0, 0, 0, 0),
    };
    let ok = served == u32::from(SLOT_COUNT);
    format!(
        "cluster_enabled:1\r\ncluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\n\
         cluster_slots_ok:{served}\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:{}\r\n\
         cluster_known_nodes:{}\r\ncluster_size:{size}\r\ncluster_current_epoch:{epoch}\r\n\
         cluster_my_epoch:{config}\r\ncluster_stats_messages_sent:0\r\n\
         cluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n",
        if ok { "ok" } else { "fail" },
        assigned - served,
        all.len(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use tandem_protocol::ids::ConfigNum;
    use tandem_protocol::{GroupInfo, RoleKind, ShardConfig, View, ViewNum};

    use super::*;

    fn state() -> FrontState {
        let mut owners = vec![Some(GroupId(1)); 5461];
        owners.extend(vec![Some(GroupId(2)); 16384 - 5461]);
        let mut groups = BTreeMap::new();
        for (group, primary, backup) in [
            (1, "10.0.0.1:7001", "10.0.0.2:7001"),
            (2, "10.0.0.3:7001", "10.0.0.4:7001"),
        ] {
            let client_addrs = [primary, backup]
                .iter()
                .map(|s| (ServerId::new(*s), s.replace(":7001", ":6379")))
                .collect();
            groups.insert(
                GroupId(group),
                GroupInfo {
                    view: Some(View {
                        num: ViewNum(2),
                        primary: ServerId::new(primary),
                        backups: vec![ServerId::new(backup)],
                    }),
                    client_addrs,
                    config_done: ConfigNum(2),
                },
            );
        }
        FrontState {
            me: ServerId::new("10.0.0.2:7001"),
            group: GroupId(1),
            role: RoleKind::Backup,
            view: None,
            map: Some(Arc::new(ClusterMap {
                epoch: 5,
                config: ShardConfig::from_owners(ConfigNum(2), &owners),
                previous: ShardConfig::default(),
                groups,
            })),
            client_addr: "10.0.0.2:6379".to_owned(),
        }
    }

    #[test]
    fn node_ids_are_stable_40_hex_characters() {
        let id = node_id(&ServerId::new("10.0.0.1:7001"));
        assert_eq!(id.len(), 40);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(id, node_id(&ServerId::new("10.0.0.1:7001")));
        assert_ne!(id, node_id(&ServerId::new("10.0.0.2:7001")));
    }

    #[test]
    fn cluster_nodes_has_redis_layout_and_one_myself_line() {
        let text = nodes_text(&state());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(text.ends_with('\n'));
        assert_eq!(lines.iter().filter(|l| l.contains("myself")).count(), 1);
        let first: Vec<&str> = lines[0].split(' ').collect();
        assert_eq!(first[1], "10.0.0.1:6379@7001");
        assert_eq!(first[2], "master");
        assert_eq!(first[3], "-");
        assert_eq!(&first[4..9], &["0", "0", "2", "connected", "0-5460"]);
        let second: Vec<&str> = lines[1].split(' ').collect();
        assert_eq!(second[2], "myself,slave");
        assert_eq!(second[3], first[0]);
        assert_eq!(second.len(), 8, "a backup lists no slots");
    }

    #[test]
    fn cluster_slots_covers_the_map_with_primaries_first() {
        let Frame::Array(entries) = slots(&state()) else {
            panic!("an array")
        };
        assert_eq!(entries.len(), 2);
        let Frame::Array(first) = &entries[0] else {
            panic!("an array")
        };
        assert_eq!(first[0], Frame::Integer(0));
        assert_eq!(first[1], Frame::Integer(5460));
        let Frame::Array(primary) = &first[2] else {
            panic!("an array")
        };
        assert_eq!(primary[0], Frame::Bulk(Bytes::from_static(b"10.0.0.1")));
        assert_eq!(primary[1], Frame::Integer(6379));
        assert_eq!(first.len(), 4);
    }

    #[test]
    fn cluster_info_is_ok_only_when_every_slot_is_served() {
        let mut s = state();
        assert!(info_text(&s).contains("cluster_state:ok\r\n"));
        assert!(info_text(&s).contains("cluster_known_nodes:4\r\n"));
        assert!(info_text(&s).contains("cluster_size:2\r\n"));
        let mut map = (**s.map.as_ref().unwrap()).clone();
        map.groups.get_mut(&GroupId(2)).unwrap().view = None;
        s.map = Some(Arc::new(map));
        let text = info_text(&s);
        assert!(text.contains("cluster_state:fail\r\n"));
        assert!(text.contains("cluster_slots_ok:5461\r\n"));
    }
}
