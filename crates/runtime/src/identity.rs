//! Who a peer is, and what it may say (rules I1..I5 in docs/PROTOCOL.md).
//!
//! Every certificate of the cluster CA names one [`Principal`] (I1): a role and, for nodes, the
//! advertised address. [`admit`] decides, for each decoded frame, whether the connection's
//! principal may send it: the frame's `from` must be the principal's own endpoint (I3) and the
//! message kind one its role sends (I4). Pure functions: the transport calls them on every
//! frame, in both directions.

use std::fmt;

use tandem_protocol::{Endpoint, Message};

use crate::wire::Envelope;

/// The URI scheme of principals in certificates.
pub const PRINCIPAL_SCHEME: &str = "tandem://";

/// The role a certificate is issued for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A view-service node, named by its advertised address.
    ViewService,
    /// A replica server, named by its advertised address (its `ServerId`).
    Server,
    /// A coordinator or an embedded Rust client.
    Coordinator,
    /// An operator tool (`tandem status`, `viewserver add-node/remove-node`).
    Admin,
}

impl Role {
    /// The role's name in principals and node specs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ViewService => "viewservice",
            Role::Server => "server",
            Role::Coordinator => "coordinator",
            Role::Admin => "admin",
        }
    }

    /// The role named `name`, if any.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "viewservice" => Some(Role::ViewService),
            "server" => Some(Role::Server),
            "coordinator" => Some(Role::Coordinator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether the role is a node named by its address (view service, server).
    pub fn is_node(self) -> bool {
        matches!(self, Role::ViewService | Role::Server)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a connection's peer proved to be (I1): `tandem://ROLE/NAME`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Principal {
    /// What it is.
    pub role: Role,
    /// For nodes, the advertised `HOST:PORT`; for coordinators and admins, a free name.
    pub name: String,
}

impl Principal {
    /// A principal.
    pub fn new(role: Role, name: impl Into<String>) -> Principal {
        Principal {
            role,
            name: name.into(),
        }
    }

    /// The URI written in certificates.
    pub fn uri(&self) -> String {
        format!("{PRINCIPAL_SCHEME}{}/{}", self.role, self.name)
    }

    /// Parses a `tandem://ROLE/NAME` URI; `None` for anything else (other schemes, unknown
    /// roles, empty or oversized names, control characters).
    pub fn parse_uri(uri: &str) -> Option<Principal> {
        let rest = uri.strip_prefix(PRINCIPAL_SCHEME)?;
        let (role, name) = rest.split_once('/')?;
        let role = Role::parse(role)?;
        if name.is_empty() || name.len() > 255 || name.chars().any(|c| c.is_control()) {
            return None;
        }
        Some(Principal::new(role, name))
    }

    /// The endpoint a node principal sends as (`None` for coordinators and admins, which send
    /// as any `Endpoint::Client`).
    pub fn endpoint(&self) -> Option<Endpoint> {
        match self.role {
            Role::ViewService => Some(Endpoint::ViewService(tandem_protocol::VsAddr::new(
                &self.name,
            ))),
            Role::Server => Some(Endpoint::Server(tandem_protocol::ServerId::new(&self.name))),
            Role::Coordinator | Role::Admin => None,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.role, self.name)
    }
}

/// Why a frame was refused; the connection it came on is closed (I5).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The frame's `from` is not the sender's own endpoint (I3).
    #[error("claims to be {claimed:?}")]
    ForeignSender {
        /// What the frame claimed.
        claimed: Endpoint,
    },
    /// The sender's role never sends this kind of message (I4).
    #[error("a {role} may not send {kind}")]
    ForbiddenKind {
        /// The sender's role.
        role: Role,
        /// The message kind.
        kind: &'static str,
    },
}

/// The message kind's name, for logs.
pub fn kind(msg: &Message) -> &'static str {
    match msg {
        Message::Ping(_) => "Ping",
        Message::PingReply(_) => "PingReply",
        Message::GetView { .. } => "GetView",
        Message::ViewReply(_) => "ViewReply",
        Message::Request(_) => "Request",
        Message::Response(_) => "Response",
        Message::Forward(_) => "Forward",
        Message::ForwardReply(_) => "ForwardReply",
        Message::Transfer(_) => "Transfer",
        Message::TransferReply(_) => "TransferReply",
        Message::GetStatus {} => "GetStatus",
        Message::StatusReply(_) => "StatusReply",
        Message::NotLeader { .. } => "NotLeader",
        Message::Raft(_) => "Raft",
        Message::ChangeMembers(_) => "ChangeMembers",
        Message::MembersReply(_) => "MembersReply",
        Message::GetCluster { .. } => "GetCluster",
        Message::ClusterReply(_) => "ClusterReply",
        Message::SlotData(_) => "SlotData",
        Message::SlotDataReply(_) => "SlotDataReply",
        Message::ChangeSlots(_) => "ChangeSlots",
        Message::SlotsReply(_) => "SlotsReply",
    }
}

/// Whether `role` sends messages of this kind (I4).
pub fn may_send(role: Role, msg: &Message) -> bool {
    use Role::{Admin, Coordinator, Server, ViewService};
    match msg {
        Message::Ping(_)
        | Message::Forward(_)
        | Message::ForwardReply(_)
        | Message::Transfer(_)
        | Message::TransferReply(_)
        | Message::SlotData(_)
        | Message::SlotDataReply(_)
        | Message::Response(_) => role == Server,
        Message::Request(_) => role == Coordinator,
        Message::PingReply(_)
        | Message::ViewReply(_)
        | Message::NotLeader { .. }
        | Message::StatusReply(_)
        | Message::MembersReply(_)
        | Message::ClusterReply(_)
        | Message::SlotsReply(_)
        | Message::Raft(_) => role == ViewService,
        Message::GetView { .. } | Message::GetCluster { .. } => {
            matches!(role, Server | Coordinator | Admin)
        }
        Message::GetStatus {} => true,
        Message::ChangeMembers(_) | Message::ChangeSlots(_) => role == Admin,
    }
}

/// Whether a frame may be delivered (I3, I4). `principal` is the peer proved at the TLS
/// handshake; `None` in insecure mode, where only the kind is checked against the role the
/// frame claims (a `Client` sender counts as a coordinator or an admin).
pub fn admit(principal: Option<&Principal>, envelope: &Envelope) -> Result<(), Refusal> {
    let msg = &envelope.msg;
    let forbidden = |role: Role| Refusal::ForbiddenKind {
        role,
        kind: kind(msg),
    };
    let Some(principal) = principal else {
        return match &envelope.from {
            Endpoint::ViewService(_) if may_send(Role::ViewService, msg) => Ok(()),
            Endpoint::ViewService(_) => Err(forbidden(Role::ViewService)),
            Endpoint::Server(_) if may_send(Role::Server, msg) => Ok(()),
            Endpoint::Server(_) => Err(forbidden(Role::Server)),
            Endpoint::Client(_) if may_send(Role::Coordinator, msg) => Ok(()),
            Endpoint::Client(_) => match may_send(Role::Admin, msg) {
                true => Ok(()),
                false => Err(forbidden(Role::Coordinator)),
            },
        };
    };
    let own = match (principal.endpoint(), &envelope.from) {
        (Some(endpoint), from) => endpoint == *from,
        (None, Endpoint::Client(_)) => true,
        (None, _) => false,
    };
    if !own {
        return Err(Refusal::ForeignSender {
            claimed: envelope.from.clone(),
        });
    }
    if !may_send(principal.role, msg) {
        return Err(forbidden(principal.role));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tandem_protocol::{ClientId, ServerId, VsAddr};

    use super::*;

    fn server(addr: &str) -> Endpoint {
        Endpoint::Server(ServerId::new(addr))
    }

    fn envelope(from: Endpoint, msg: Message) -> Envelope {
        Envelope { from, msg }
    }

    fn raft() -> Message {
        Message::Raft(bytes::Bytes::from_static(b"x"))
    }

    #[test]
    fn i1_principal_uris_round_trip_and_reject_garbage() {
        for role in [
            Role::ViewService,
            Role::Server,
            Role::Coordinator,
            Role::Admin,
        ] {
            let p = Principal::new(role, "127.0.0.1:7000");
            assert_eq!(Principal::parse_uri(&p.uri()), Some(p));
        }
        for bad in [
            "tandem://server/",
            "tandem://root/x",
            "https://server/a:1",
            "tandem://server",
            "tandem://server/a\nb",
        ] {
            assert_eq!(Principal::parse_uri(bad), None, "{bad}");
        }
    }

    #[test]
    fn i3_a_node_may_only_send_as_itself() {
        let a = Principal::new(Role::Server, "127.0.0.1:1");
        let status = || Message::GetStatus {};
        assert_eq!(
            admit(Some(&a), &envelope(server("127.0.0.1:1"), status())),
            Ok(())
        );
        assert!(matches!(
            admit(Some(&a), &envelope(server("127.0.0.1:2"), status())),
            Err(Refusal::ForeignSender { .. })
        ));
        assert!(matches!(
            admit(Some(&a), &envelope(Endpoint::Client(ClientId(1)), status())),
            Err(Refusal::ForeignSender { .. })
        ));
        let vs = Principal::new(Role::ViewService, "127.0.0.1:1");
        assert!(
            admit(
                Some(&vs),
                &envelope(Endpoint::ViewService(VsAddr::new("127.0.0.1:1")), raft())
            )
            .is_ok()
        );
        assert!(admit(Some(&vs), &envelope(server("127.0.0.1:1"), raft())).is_err());
        let coordinator = Principal::new(Role::Coordinator, "c1");
        assert!(
            admit(
                Some(&coordinator),
                &envelope(Endpoint::Client(ClientId(7)), status())
            )
            .is_ok()
        );
        assert!(admit(Some(&coordinator), &envelope(server("c1"), status())).is_err());
    }

    #[test]
    fn i4_each_role_sends_only_its_own_kinds() {
        use Role::*;
        let get_view = Message::GetView {
            group: tandem_protocol::GroupId(0),
        };
        let change =
            Message::ChangeMembers(tandem_protocol::message::MemberChange::Remove { id: 2 });
        let cases = [
            (raft(), vec![ViewService]),
            (
                Message::GetStatus {},
                vec![ViewService, Server, Coordinator, Admin],
            ),
            (get_view, vec![Server, Coordinator, Admin]),
            (change, vec![Admin]),
            (Message::NotLeader { leader: None }, vec![ViewService]),
            // S2, S3: the map is asked by whoever routes; only an admin changes it.
            (
                Message::GetCluster { epoch: 0 },
                vec![Server, Coordinator, Admin],
            ),
            (
                Message::ChangeSlots(tandem_protocol::message::SlotsChange::Rebalance),
                vec![Admin],
            ),
        ];
        for (msg, allowed) in cases {
            for role in [ViewService, Server, Coordinator, Admin] {
                assert_eq!(
                    may_send(role, &msg),
                    allowed.contains(&role),
                    "{role} {msg:?}"
                );
            }
        }
        let coordinator = Principal::new(Coordinator, "c1");
        let refused = admit(
            Some(&coordinator),
            &envelope(Endpoint::Client(ClientId(1)), raft()),
        );
        assert_eq!(
            refused,
            Err(Refusal::ForbiddenKind {
                role: Coordinator,
                kind: "Raft"
            })
        );
    }

    #[test]
    fn s7_i4_slot_chunks_and_their_replies_come_only_from_servers() {
        use tandem_protocol::message::{SlotCursor, SlotData, SlotDataReply};
        use tandem_protocol::{ConfigNum, GroupId};
        let data = Message::SlotData(SlotData {
            config: ConfigNum(2),
            from: GroupId(1),
            to: GroupId(2),
            chunk: 0,
            start: SlotCursor::default(),
            end: SlotCursor::default(),
            deleted: Vec::new(),
            entries: Vec::new(),
            clients: Vec::new(),
            done: true,
        });
        let reply = Message::SlotDataReply(SlotDataReply {
            config: ConfigNum(2),
            from: GroupId(1),
            to: GroupId(2),
            next_chunk: 1,
            cursor: SlotCursor::default(),
            installed: true,
        });
        for msg in [data, reply] {
            for role in [Role::ViewService, Role::Coordinator, Role::Admin] {
                assert!(!may_send(role, &msg), "{role} {msg:?}");
            }
            let server_principal = Principal::new(Role::Server, "127.0.0.1:1");
            let from_server = envelope(server("127.0.0.1:1"), msg.clone());
            assert_eq!(admit(Some(&server_principal), &from_server), Ok(()));
            let coordinator = Principal::new(Role::Coordinator, "c1");
            let from_coordinator = envelope(Endpoint::Client(ClientId(1)), msg.clone());
            assert!(admit(Some(&coordinator), &from_coordinator).is_err());
            assert!(admit(None, &from_coordinator).is_err(), "insecure mode too");
        }
    }

    #[test]
    fn i4_insecure_mode_still_checks_kinds_against_the_claimed_sender() {
        let from_client = envelope(Endpoint::Client(ClientId(1)), raft());
        assert!(admit(None, &from_client).is_err());
        let from_vs = envelope(Endpoint::ViewService(VsAddr::new("a:1")), raft());
        assert!(admit(None, &from_vs).is_ok());
        let change =
            Message::ChangeMembers(tandem_protocol::message::MemberChange::Remove { id: 2 });
        assert!(
            admit(
                None,
                &envelope(Endpoint::Client(ClientId(1)), change.clone())
            )
            .is_ok()
        );
        assert!(admit(None, &envelope(server("a:1"), change)).is_err());
    }
}
