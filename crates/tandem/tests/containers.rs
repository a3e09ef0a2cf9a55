//! The cluster in Docker containers on a private network (deploy/docker-compose.yml): the
//! primary is cut off with `docker network disconnect`, and the test checks failover and that no
//! acknowledged write is lost or read stale. The test reaches the cluster only through the
//! coordinator's port published on 127.0.0.1. Where the build found docker or docker-compose
//! missing the test is ignored with the reason (crates/tandem/build.rs); under CI, and where
//! they are installed but the daemon does not answer, it fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{RespClient, free_port, wait_for};
use tandem_resp::Frame;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn run(cmd: &mut Command) -> (bool, String) {
    match cmd.output() {
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        }
        Err(e) => (false, e.to_string()),
    }
}

/// Tears the compose project and image down however the test ends.
struct Deployment {
    project: String,
    image: String,
    port: u16,
}

impl Deployment {
    fn compose(&self, args: &[&str]) -> (bool, String) {
        let file = workspace().join("deploy/docker-compose.yml");
        run(Command::new("docker-compose")
            .args(["-p", &self.project, "-f", file.to_str().unwrap()])
            .args(args)
            .env("TANDEM_IMAGE", &self.image)
            .env("TANDEM_PORT", self.port.to_string()))
    }

    fn container(&self, service: &str) -> String {
        format!("{}_{}_1", self.project, service)
    }

    fn status(&self) -> Option<(Option<String>, bool, u64)> {
        let (ok, text) = run(Command::new("docker").args([
            "exec",
            &self.container("coordinator"),
            "/tandem",
            "status",
            "--viewserver",
            "10.231.77.10:7000",
            "--json",
        ]));
        if !ok {
            return None;
        }
        let primary = text.split("\"primary\":").nth(1)?;
        let primary = if primary.starts_with("null") {
            None
        } else {
            primary.split('"').nth(1).map(str::to_string)
        };
        let acked = text.contains("\"acked\":true");
        let viewnum = text
            .split("\"viewnum\":")
            .nth(1)?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()?;
        Some((primary, acked, viewnum))
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let (_, logs) = self.compose(&["logs", "--no-color", "--tail", "30"]);
        eprintln!("container logs (tail):\n{logs}");
        self.compose(&["down", "-v", "--timeout", "2"]);
        run(Command::new("docker").args(["rmi", "-f", &self.image]));
    }
}

#[test]
#[cfg_attr(
    not(all(has_docker, has_docker_compose)),
    ignore = "needs docker and docker-compose on PATH (Debian packages docker.io, docker-compose)"
)]
fn container_cluster_fails_over_when_the_primary_is_disconnected() {
    let (docker_ok, why) =
        run(Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]));
    assert!(
        docker_ok,
        "`docker info` must succeed (Debian package docker.io, with its daemon running): {}",
        why.trim()
    );
    let (compose_ok, why) = run(Command::new("docker-compose").arg("version"));
    assert!(
        compose_ok,
        "`docker-compose version` must succeed (Debian package docker-compose): {}",
        why.trim()
    );
    let image = format!("tandem:test-{}", std::process::id());
    let (built, log) = run(Command::new(workspace().join("deploy/build-image.sh")).arg(&image));
    assert!(built, "image build failed:\n{log}");
    let deployment = Deployment {
        project: format!("tandemtest{}", std::process::id()),
        image,
        port: free_port(),
    };
    let (up, log) = deployment.compose(&["up", "-d"]);
    assert!(up, "compose up failed:\n{log}");

    let port = deployment.port;
    let serving = || {
        RespClient::connect(port)
            .and_then(|mut c| c.call(&["SET", "ready", "1"]))
            .is_ok_and(|f| f == Frame::Simple("OK".into()))
    };
    assert!(
        wait_for(Duration::from_secs(60), serving),
        "the containerized cluster serves"
    );
    assert!(wait_for(Duration::from_secs(30), || deployment
        .status()
        .is_some_and(|(p, acked, _)| p.is_some() && acked)));

    let mut client = RespClient::connect(port).unwrap();
    for i in 0..100 {
        let reply = client
            .call(&["SET", &format!("k{i}"), &format!("before{i}")])
            .unwrap();
        assert_eq!(reply, Frame::Simple("OK".into()));
    }
    let (primary, _, viewnum) = deployment.status().unwrap();
    let primary = primary.unwrap();
    let service = match primary.split(':').next().unwrap() {
        "10.231.77.11" => "server1",
        "10.231.77.12" => "server2",
        "10.231.77.13" => "server3",
        other => panic!("unexpected primary {other}"),
    };
    let network = format!("{}_tandem", deployment.project);
    let (cut, log) = run(Command::new("docker").args([
        "network",
        "disconnect",
        &network,
        &deployment.container(service),
    ]));
    assert!(cut, "disconnect failed: {log}");

    assert!(
        wait_for(Duration::from_secs(30), || deployment.status().is_some_and(
            |(p, acked, v)| v > viewnum && acked && p.as_deref() != Some(primary.as_str())
        )),
        "a new primary took over: {:?}",
        deployment.status()
    );
    let mut client = RespClient::connect(port).unwrap();
    for i in 0..100 {
        assert_eq!(
            client.call(&["GET", &format!("k{i}")]).unwrap(),
            Frame::Bulk(format!("before{i}").into()),
            "k{i} survived"
        );
        assert_eq!(
            client
                .call(&["SET", &format!("k{i}"), &format!("after{i}")])
                .unwrap(),
            Frame::Simple("OK".into())
        );
    }
    for i in 0..100 {
        assert_eq!(
            client.call(&["GET", &format!("k{i}")]).unwrap(),
            Frame::Bulk(format!("after{i}").into()),
            "no stale k{i}"
        );
    }
}
