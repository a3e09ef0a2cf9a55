//! S1, S4: where each command of a server's client goes, and what a refusal of the core
//! becomes for a Redis Cluster client.

use tandem_kv::{Command, Reply};
use tandem_protocol::message::RequestError;
use tandem_protocol::{GroupId, RoleKind};

use super::FrontState;

/// Redis's text for a slot nobody serves (S4).
pub const CLUSTERDOWN: &str = "CLUSTERDOWN Hash slot not served";
/// Redis's text for a multi-key command across slots (S1).
pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";
/// A slot that is moving, or whose owner this server knows but cannot name yet (S4).
pub const TRYAGAIN: &str = "TRYAGAIN the slot is moving or its primary is changing, try again";
/// A keyspace-wide command sent to a server that is not its group's primary.
pub const NOT_PRIMARY: &str =
    "TRYAGAIN this server is not its group's primary; send commands without keys to a primary";

/// Where one command goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Route {
    /// To this server's replica core.
    Local,
    /// Answered here with this error (a redirection or a refusal).
    Refuse(Reply),
}

/// S1, S4: the route of `cmd` on a server in `state`. Only the primary of the group that owns
/// the slot in the newest map executes; backups never serve, even after READONLY (no stale
/// reads).
pub fn route_command(state: &FrontState, cmd: &Command) -> Route {
    let slot = match cmd.slot() {
        Ok(slot) => slot,
        Err(_) => return refuse(CROSSSLOT),
    };
    let primary_here = state.role == RoleKind::Primary;
    let Some(slot) = slot else {
        // Keyspace-wide commands (DBSIZE, SCAN, FLUSHALL, ACL ...) run on this group's primary.
        return if primary_here {
            Route::Local
        } else {
            refuse(NOT_PRIMARY)
        };
    };
    let Some(map) = &state.map else {
        // No map yet: the core judges the slot from its own history (S4).
        return if primary_here {
            Route::Local
        } else {
            refuse(TRYAGAIN)
        };
    };
    match map.serving(slot) {
        None => refuse(CLUSTERDOWN),
        Some(owner) if owner == state.group => {
            if primary_here {
                Route::Local
            } else {
                redirect_in_own_group(state, slot)
            }
        }
        Some(owner) => redirect_to(state, owner, slot),
    }
}

/// The answer to a refusal of the core for a command on `slot` (S4): `WrongGroup` sends the
/// client to the owner in the newest map, or asks it to try again while that map still names
/// this group; `SlotMoving` is `-TRYAGAIN`; `WrongServer` (this server stopped being primary)
/// routes the command again with the newest role and map.
pub fn refusal_reply(state: &FrontState, error: &RequestError, slot: Option<u16>) -> Reply {
    match (error, slot) {
        (RequestError::CrossSlot, _) => Reply::Error(CROSSSLOT.to_owned()),
        (RequestError::WrongGroup { .. }, Some(slot)) => {
            let owner = state.map.as_ref().and_then(|m| m.serving(slot));
            match owner {
                Some(owner) if owner != state.group => match redirect_to(state, owner, slot) {
                    Route::Refuse(reply) => reply,
                    Route::Local => Reply::Error(TRYAGAIN.to_owned()),
                },
                None if state.map.is_some() => Reply::Error(CLUSTERDOWN.to_owned()),
                _ => Reply::Error(TRYAGAIN.to_owned()),
            }
        }
        (RequestError::WrongServer(_), Some(slot)) => match route_command_slot(state, slot) {
            Route::Refuse(reply) => reply,
            Route::Local => Reply::Error(TRYAGAIN.to_owned()),
        },
        (RequestError::WrongServer(_), None) => Reply::Error(NOT_PRIMARY.to_owned()),
        _ => Reply::Error(TRYAGAIN.to_owned()),
    }
}

/// [`route_command`] for a slot already known.
fn route_command_slot(state: &FrontState, slot: u16) -> Route {
    let owner = state.map.as_ref().and_then(|m| m.serving(slot));
    match owner {
        Some(owner) if owner != state.group => redirect_to(state, owner, slot),
        _ if state.role == RoleKind::Primary => Route::Local,
        _ => redirect_in_own_group(state, slot),
    }
}

/// This server's group owns `slot` but this server is not its primary: `-MOVED` to the
/// primary, or `-TRYAGAIN` while no other primary is known.
fn redirect_in_own_group(state: &FrontState, slot: u16) -> Route {
    let primary = state.own_view().map(|v| &v.primary);
    match primary {
        Some(primary) if *primary != state.me => match state.client_addr_of(state.group, primary) {
            Some(addr) => moved(slot, addr),
            None => refuse(TRYAGAIN),
        },
        _ => refuse(TRYAGAIN),
    }
}

/// `slot` belongs to `owner`, another group: `-MOVED` to its primary's client address, or
/// `-CLUSTERDOWN` when it has no primary a client can reach (S4).
fn redirect_to(state: &FrontState, owner: GroupId, slot: u16) -> Route {
    let Some(map) = &state.map else {
        return refuse(TRYAGAIN);
    };
    match map.primary_client_addr(slot) {
        Some(addr) if map.serving(slot) == Some(owner) => moved(slot, addr),
        _ => refuse(CLUSTERDOWN),
    }
}

fn moved(slot: u16, addr: &str) -> Route {
    Route::Refuse(Reply::Error(format!("MOVED {slot} {addr}")))
}

fn refuse(text: &str) -> Route {
    Route::Refuse(Reply::Error(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use bytes::Bytes;
    use tandem_kv::slots::key_slot;
    use tandem_protocol::ids::ConfigNum;
    use tandem_protocol::{ClusterMap, GroupInfo, ServerId, ShardConfig, View, ViewNum};

    use super::*;

    fn view(num: u64, primary: &str, backup: &str) -> View {
        View {
            num: ViewNum(num),
            primary: ServerId::new(primary),
            backups: vec![ServerId::new(backup)],
        }
    }

    /// Group 1 owns slots 0..8191 (servers a, b), group 2 the rest (c, d); e is unassigned.
    fn map() -> Arc<ClusterMap> {
        let mut owners = vec![Some(GroupId(1)); 8192];
        owners.extend(vec![Some(GroupId(2)); 8192]);
        let mut groups = BTreeMap::new();
        for (group, primary, backup) in [(1, "a:1", "b:1"), (2, "c:1", "d:1")] {
            let mut client_addrs = BTreeMap::new();
            for server in [primary, backup] {
                let port = 7000 + server.as_bytes()[0] as u32;
                client_addrs.insert(ServerId::new(server), format!("127.0.0.1:{port}"));
            }
            groups.insert(
                GroupId(group),
                GroupInfo {
                    view: Some(view(3, primary, backup)),
                    client_addrs,
                    config_done: ConfigNum(1),
                },
            );
        }
        Arc::new(ClusterMap {
            epoch: 4,
            config: ShardConfig::from_owners(ConfigNum(1), &owners),
            previous: ShardConfig::default(),
            groups,
        })
    }

    fn state(me: &str, group: u32, role: RoleKind) -> FrontState {
        let map = map();
        let view = map.groups[&GroupId(group)].view.clone();
        FrontState {
            me: ServerId::new(me),
            group: GroupId(group),
            role,
            view,
            map: Some(map),
            client_addr: format!("127.0.0.1:{}", 7000 + me.as_bytes()[0] as u32),
        }
    }

    fn get(key: &str) -> Command {
        Command::Get {
            key: Bytes::from(key.to_owned()),
        }
    }

    /// A key of `slot`'s half: "{a}" hashes to 15495 (group 2), "{b}" to 3300 (group 1).
    const LOW_KEY: &str = "{b}x";
    const HIGH_KEY: &str = "{a}x";

    fn error(route: Route) -> String {
        match route {
            Route::Refuse(Reply::Error(text)) => text,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn s4_primary_of_the_owner_executes_and_sends_other_slots_to_their_owner() {
        assert!(key_slot(LOW_KEY.as_bytes()) < 8192 && key_slot(HIGH_KEY.as_bytes()) >= 8192);
        let primary = state("a:1", 1, RoleKind::Primary);
        assert_eq!(route_command(&primary, &get(LOW_KEY)), Route::Local);
        let slot = key_slot(HIGH_KEY.as_bytes());
        assert_eq!(
            error(route_command(&primary, &get(HIGH_KEY))),
            format!("MOVED {slot} 127.0.0.1:7099")
        );
    }

    #[test]
    fn s4_a_backup_never_serves_and_sends_to_its_primary() {
        let backup = state("b:1", 1, RoleKind::Backup);
        let slot = key_slot(LOW_KEY.as_bytes());
        assert_eq!(
            error(route_command(&backup, &get(LOW_KEY))),
            format!("MOVED {slot} 127.0.0.1:7097")
        );
        let mut alone = backup.clone();
        alone.view = Some(view(3, "b:1", "a:1"));
        alone.role = RoleKind::Idle;
        alone.map = Some(Arc::new(ClusterMap {
            groups: BTreeMap::new(),
            ..(*map()).clone()
        }));
        assert_eq!(error(route_command(&alone, &get(LOW_KEY))), TRYAGAIN);
    }

    #[test]
    fn s4_unassigned_slots_and_owners_without_primary_are_clusterdown() {
        let mut primary = state("a:1", 1, RoleKind::Primary);
        let mut unassigned = (*map()).clone();
        unassigned.config = ShardConfig::from_owners(ConfigNum(2), &vec![None; 16384]);
        primary.map = Some(Arc::new(unassigned));
        assert_eq!(error(route_command(&primary, &get(LOW_KEY))), CLUSTERDOWN);
        let mut headless = (*map()).clone();
        headless.groups.get_mut(&GroupId(2)).unwrap().view = None;
        primary.map = Some(Arc::new(headless));
        assert_eq!(error(route_command(&primary, &get(HIGH_KEY))), CLUSTERDOWN);
    }

    #[test]
    fn s1_multi_key_commands_across_slots_are_crossslot() {
        let primary = state("a:1", 1, RoleKind::Primary);
        let mget = Command::MGet {
            keys: vec![Bytes::from_static(b"{b}1"), Bytes::from_static(b"{a}1")],
        };
        assert_eq!(error(route_command(&primary, &mget)), CROSSSLOT);
        let same = Command::MGet {
            keys: vec![Bytes::from_static(b"{b}1"), Bytes::from_static(b"{b}2")],
        };
        assert_eq!(route_command(&primary, &same), Route::Local);
    }

    #[test]
    fn s4_core_refusals_become_moved_or_tryagain() {
        let primary = state("a:1", 1, RoleKind::Primary);
        let high = key_slot(HIGH_KEY.as_bytes());
        let low = key_slot(LOW_KEY.as_bytes());
        let wrong_group = RequestError::WrongGroup {
            slot: high,
            config: ConfigNum(1),
        };
        assert_eq!(
            refusal_reply(&primary, &wrong_group, Some(high)),
            Reply::Error(format!("MOVED {high} 127.0.0.1:7099"))
        );
        // The core refuses a slot the newest map still names as ours: the map is behind.
        assert_eq!(
            refusal_reply(&primary, &wrong_group, Some(low)),
            Reply::Error(TRYAGAIN.to_owned())
        );
        assert_eq!(
            refusal_reply(&primary, &RequestError::SlotMoving { slot: low }, Some(low)),
            Reply::Error(TRYAGAIN.to_owned())
        );
    }

    #[test]
    fn keyless_commands_run_on_a_primary_only() {
        assert_eq!(
            route_command(&state("a:1", 1, RoleKind::Primary), &Command::DbSize),
            Route::Local
        );
        assert_eq!(
            error(route_command(
                &state("b:1", 1, RoleKind::Backup),
                &Command::DbSize
            )),
            NOT_PRIMARY
        );
    }
}
