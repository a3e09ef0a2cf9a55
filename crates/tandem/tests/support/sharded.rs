//! Groups of servers in direct cluster mode (S4): a view service and N groups of
//! [`GROUP_SIZE`] servers, each with a Redis client port, the slots spread over the groups.

use std::time::Duration;

use tandem_resp::Frame;

use super::{Proc, RespClient, ViewService, certs, free_port, wait_for};

/// Servers per group.
pub const GROUP_SIZE: usize = 2;

/// A view service and `groups` groups of [`GROUP_SIZE`] servers, each with a client port.
/// Server `i` belongs to group `i / GROUP_SIZE`.
pub struct Sharded {
    pub vs: ViewService,
    pub servers: Vec<Proc>,
    /// Client port of each server, in the order of `servers`.
    pub client_ports: Vec<u16>,
    pub groups: usize,
}

impl Sharded {
    /// Starts everything, spreads the slots over the groups (as `tandem slots rebalance`
    /// does), and waits until every server's `CLUSTER INFO` says every slot is served by
    /// `groups` groups.
    pub fn start(groups: usize) -> Sharded {
        let sharded = Sharded::launch(groups);
        sharded.rebalance();
        let ports = sharded.client_ports.clone();
        let ok = wait_for(Duration::from_secs(60), || {
            ports.iter().all(|&port| {
                let info = cluster_text(port, "INFO");
                info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_size:{groups}\r\n"))
            })
        });
        assert!(
            ok,
            "every server reports the slots served by {groups} groups: {}",
            cluster_text(ports[0], "INFO")
        );
        sharded
    }

    /// Starts the view service and the servers, without slots; returns once every client
    /// port answers.
    pub fn launch(groups: usize) -> Sharded {
        let vs = ViewService::single();
        let tag = super::cluster_tag();
        let mut sharded = Sharded {
            vs,
            servers: Vec::new(),
            client_ports: Vec::new(),
            groups,
        };
        for group in 0..groups {
            for member in 0..GROUP_SIZE {
                let (port, client_port) = (free_port(), free_port());
                let args: Vec<String> = vec![
                    "server".into(),
                    "--listen".into(),
                    format!("127.0.0.1:{port}"),
                    "--viewserver".into(),
                    sharded.vs.list(),
                    "--group".into(),
                    group.to_string(),
                    "--client-listen".into(),
                    format!("127.0.0.1:{client_port}"),
                ];
                let name = format!("{tag}-g{group}-s{member}");
                sharded.servers.push(Proc::spawn(&name, &args));
                sharded.client_ports.push(client_port);
            }
        }
        let ports = sharded.client_ports.clone();
        let answering = wait_for(Duration::from_secs(30), || {
            ports.iter().all(|&port| {
                RespClient::connect(port)
                    .and_then(|mut c| c.call(&["PING"]))
                    .is_ok()
            })
        });
        assert!(answering, "every client port answers");
        sharded
    }

    /// Spreads the slots over the groups once each has a view (S3), as `tandem slots
    /// rebalance` does.
    pub fn rebalance(&self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let list: Vec<String> = self.vs.list().split(',').map(str::to_owned).collect();
        let spread = runtime.block_on(tandem_runtime::dev::spread_slots(
            &list,
            self.groups,
            Some(certs().admin()),
            Duration::from_secs(60),
        ));
        assert!(spread.is_ok(), "slots spread: {spread:?}");
    }

    /// Index of the running server of `group` whose client port answers `CLUSTER NODES`
    /// with `myself,master`.
    pub fn primary_of(&self, group: usize) -> Option<usize> {
        (group * GROUP_SIZE..(group + 1) * GROUP_SIZE).find(|&i| {
            self.servers[i].is_running()
                && cluster_text(self.client_ports[i], "NODES")
                    .lines()
                    .any(|l| l.contains("myself,master"))
        })
    }

    /// `DBSIZE` on the primary of `group`.
    pub fn keys_in(&self, group: usize) -> i64 {
        let primary = self.primary_of(group).expect("a primary");
        match RespClient::connect(self.client_ports[primary]).and_then(|mut c| c.call(&["DBSIZE"]))
        {
            Ok(Frame::Integer(n)) => n,
            other => panic!("DBSIZE of group {group}: {other:?}"),
        }
    }
}

/// A CLUSTER subcommand whose answer is text (INFO, NODES), or "" if the server does not
/// answer.
pub fn cluster_text(port: u16, sub: &str) -> String {
    match RespClient::connect(port).and_then(|mut c| c.call(&["CLUSTER", sub])) {
        Ok(Frame::Bulk(bytes) | Frame::Verbatim(_, bytes)) => {
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => String::new(),
    }
}
