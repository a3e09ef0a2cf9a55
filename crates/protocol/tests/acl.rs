//! The ACL table is replicated state (A1): a backup reaches the primary's table byte for byte,
//! through state transfer and through forwarded writes, and every replica decides a request's
//! permissions the same way (A6).

use std::sync::Arc;

use bytes::Bytes;
use tandem_kv::{Command, Reply};
use tandem_protocol::message::{Request, ViewReply};
use tandem_protocol::{
    ClientId, Endpoint, GroupId, Incarnation, Message, Now, Replica, ReplicaConfig, Seq, ServerId,
    View, ViewNum, VsAddr,
};

const GROUP: GroupId = GroupId(0);
const INCARNATION: Incarnation = Incarnation(1);

fn replica(name: &str) -> Replica {
    Replica::new(
        ServerId::new(name),
        GROUP,
        INCARNATION,
        ReplicaConfig::default(),
    )
}

fn give_view(replica: &mut Replica, at_ms: u64, num: u64, primary: &str, backups: &[&str]) {
    let view = View {
        num: ViewNum(num),
        primary: ServerId::new(primary),
        backups: backups.iter().map(ServerId::new).collect(),
    };
    let reply = ViewReply {
        group: GROUP,
        view: Some(view),
        member_incarnation: Some(INCARNATION),
        cluster: None,
    };
    replica.handle(
        Now::at_ms(at_ms),
        Endpoint::ViewService(VsAddr::new(tandem_protocol::locator::DEFAULT_VIEW_SERVICE)),
        Message::PingReply(reply),
    );
}

fn cmd(words: &[&str]) -> Command {
    let args: Vec<Bytes> = words
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect();
    Command::parse(&args).expect("valid")
}

/// Moves messages between the replicas until none is left; returns the replies to clients.
fn settle(replicas: &mut [&mut Replica], at_ms: u64) -> Vec<Arc<Vec<Reply>>> {
    let mut replies = Vec::new();
    for _ in 0..100 {
        let mut moved = false;
        for i in 0..replicas.len() {
            while let Some(t) = replicas[i].poll_transmit(Now::at_ms(at_ms)) {
                moved = true;
                let from = Endpoint::Server(replicas[i].id().clone());
                match (&t.to, t.msg) {
                    (Endpoint::Server(to), msg) => {
                        if let Some(r) = replicas.iter_mut().find(|r| r.id() == to) {
                            r.handle(Now::at_ms(at_ms), from, msg);
                        }
                    }
                    (Endpoint::Client(_), Message::Response(resp)) => {
                        if let Ok(r) = resp.result {
                            replies.push(r);
                        }
                    }
                    _ => {}
                }
            }
        }
        if !moved {
            break;
        }
    }
    replies
}

fn request(a: &mut Replica, at_ms: u64, seq: u64, user: Option<&str>, cmds: Vec<Command>) {
    let req = Request {
        group: GROUP,
        client: ClientId(7),
        seq: Seq(seq),
        cmds: Arc::new(cmds),
        user: user.map(Arc::from),
    };
    a.handle(
        Now::at_ms(at_ms),
        Endpoint::Client(ClientId(7)),
        Message::Request(req),
    );
}

#[test]
fn a1_acl_table_reaches_backups_by_transfer_and_forward() {
    let mut a = replica("a");
    let mut b = replica("b");
    give_view(&mut a, 0, 1, "a", &[]);
    settle(&mut [&mut a], 0);
    request(
        &mut a,
        1,
        1,
        None,
        vec![
            cmd(&["acl", "setuser", "alice", "on", ">pw", "+get", "~app:*"]),
            cmd(&["config", "set", "requirepass", "sec"]),
        ],
    );
    let replies = settle(&mut [&mut a], 1);
    assert_eq!(
        replies.last().map(|r| r.as_slice()),
        Some(&[Reply::ok(), Reply::ok()][..])
    );
    // A new backup gets the table by state transfer (A1).
    give_view(&mut a, 10, 2, "a", &["b"]);
    give_view(&mut b, 10, 2, "a", &["b"]);
    settle(&mut [&mut a, &mut b], 10);
    assert_eq!(b.state().store.acl(), a.state().store.acl());
    assert!(b.state().store.acl().user("alice").is_some());
    // Then by forwarded writes, refusals included (A6).
    request(
        &mut a,
        20,
        2,
        Some("alice"),
        vec![cmd(&["set", "app:x", "1"]), cmd(&["get", "app:x"])],
    );
    let mut replies = settle(&mut [&mut a, &mut b], 20);
    request(&mut a, 21, 3, None, vec![cmd(&["get", "app:x"])]);
    replies.extend(settle(&mut [&mut a, &mut b], 21));
    request(
        &mut a,
        22,
        4,
        Some("default"),
        vec![cmd(&[
            "acl", "setuser", "bob", "on", "nopass", "+@all", "~*",
        ])],
    );
    replies.extend(settle(&mut [&mut a, &mut b], 22));
    let flat: Vec<Reply> = replies.iter().flat_map(|r| r.iter().cloned()).collect();
    assert!(flat.len() == 4, "{flat:?}");
    assert!(flat.contains(&Reply::Error(
        "NOPERM User alice has no permissions to run the 'set' command".to_owned()
    )));
    assert!(flat.contains(&Reply::Error("NOAUTH Authentication required.".to_owned())));
    assert!(b.state().store.acl().user("bob").is_some());
    assert_eq!(b.state().store.acl(), a.state().store.acl());
    assert_eq!(b.state().digest(), a.state().digest());
}
