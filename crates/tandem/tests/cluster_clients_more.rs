//! More Redis Cluster client libraries against tandem servers' client ports (issue 13, beside
//! redis-py, redis-cli and redis-benchmark in `cluster_clients.rs`): the ones Debian packages,
//! since this machine and CI reach no npm, Maven Central or Go module proxy.
//!
//! - go-redis v5's `ClusterClient` and redisc (over redigo): `cluster_clients_go/main.go`,
//!   compiled in GOPATH mode from `/usr/share/gocode` (Debian's Go sources);
//! - phpredis's `RedisCluster`: `cluster_clients.php`;
//! - redis-rb 4's cluster client: `cluster_clients.rb`.
//!
//! Each runs the same scenario against three groups of two servers, through one client object
//! built from ONE seed port (S4): 300 keys SET and read back (spread over every group, so
//! `-MOVED` is followed), MSET/MGET in one hash tag (S1), an MGET across slots that the client
//! sends as one command (the server's `-CROSSSLOT`), the keys read again through a second
//! client in the library's replica-read mode (`READONLY`; a backup never serves and answers
//! `-MOVED` to its primary, which the client follows), then the test SIGKILLs group 1's primary
//! and the same client object writes 300 more keys and reads all 600 back: it must find the new
//! primary by itself, and no acknowledged write may be lost (S8). The programs retry each
//! command until a deadline and print one result line per step; the judging is done here.
//!
//! A test whose interpreter or library is missing is ignored with the Debian package to
//! install (the build script probes them); under CI it runs and fails.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use support::sharded::{GROUP_SIZE, Sharded};
use support::wait_for;

/// Groups.
const GROUPS: usize = 3;
/// Keys each program writes before the kill (`key:i`) and after it (`after:i`).
const KEYS: usize = 300;
/// The group whose primary is killed.
const VICTIM_GROUP: usize = 1;

/// A client program running the scenario: its stdout lines arrive on a channel (so reading
/// has a deadline), its stderr is collected for failure messages; killed when dropped.
struct ClientRun {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Collects stderr until the program ends; taken once.
    stderr: Option<std::thread::JoinHandle<String>>,
    /// Every stdout line read so far.
    seen: Vec<String>,
}

impl ClientRun {
    fn spawn(mut command: Command) -> ClientRun {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?} starts: {e}"));
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        ClientRun {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: Some(stderr),
            seen: Vec::new(),
        }
    }

    /// Reads stdout lines until `last` (included) or the deadline; returns those lines.
    fn until(&mut self, last: &str, deadline: Duration) -> Vec<String> {
        let end = Instant::now() + deadline;
        let mut lines = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    let done = line == last;
                    lines.push(line);
                    if done {
                        return lines;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("no {last:?} within {deadline:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("the program ended before {last:?}"))
                }
            }
        }
    }

    /// Lets the program go on past READY.
    fn resume(&mut self) {
        let mut stdin = self.stdin.take().expect("not resumed yet");
        stdin.write_all(b"go\n").unwrap();
    }

    /// The program's stderr, once it has ended (or been killed).
    fn stderr(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|collector| collector.join().ok())
            .unwrap_or_default()
    }

    /// Panics with `why`, the program's output so far and its stderr.
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self.stderr();
        panic!(
            "{why}\nstdout:\n{}\nstderr:\n{stderr}",
            self.seen.join("\n")
        );
    }

    /// Asserts `lines` holds `expected`.
    fn assert_line(&mut self, lines: &[String], expected: &str) {
        if !lines.iter().any(|l| l == expected) {
            self.fail(&format!("expected the line {expected:?}"));
        }
    }
}

impl Drop for ClientRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The scenario of this file's documentation, for the client that `program` starts given the
/// seed port.
fn scenario(program: impl Fn(u16) -> Command) {
    let mut cluster = Sharded::start(GROUPS);
    // The seed is group 0's backup: the client must learn every primary from the map.
    let primary = cluster.primary_of(0).expect("group 0 has a primary");
    let backup = (0..GROUP_SIZE).find(|&i| i != primary).unwrap();
    let seed = cluster.client_ports[backup];
    let mut run = ClientRun::spawn(program(seed));

    let before = run.until("READY", Duration::from_secs(120));
    run.assert_line(&before, &format!("set {KEYS}"));
    run.assert_line(&before, &format!("get {KEYS}"));
    run.assert_line(&before, "tagged 1 2");
    run.assert_line(&before, &format!("replica-get {KEYS}"));
    // The server's own text: the client sent the command and passed the error on.
    if !before
        .iter()
        .any(|l| l.starts_with("crossslot") && l.contains("CROSSSLOT Keys in request"))
    {
        run.fail("expected the server's CROSSSLOT for an MGET across slots");
    }
    // The keys really are spread: every group holds some (about a third each).
    for group in 0..GROUPS {
        let n = cluster.keys_in(group);
        assert!(n >= 50, "group {group} holds {n} of the {KEYS} keys");
    }

    // SIGKILL group 1's primary under the client, then let it go on.
    let victim = cluster.primary_of(VICTIM_GROUP).expect("a primary");
    cluster.servers[victim].kill();
    run.resume();
    let after = run.until("DONE", Duration::from_secs(240));
    run.assert_line(&after, &format!("after-set {KEYS}"));
    run.assert_line(&after, &format!("after-get {}", 2 * KEYS));

    // The group's other server took over, and the map says so.
    let promoted = (VICTIM_GROUP * GROUP_SIZE..(VICTIM_GROUP + 1) * GROUP_SIZE)
        .find(|&i| i != victim)
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || cluster.primary_of(VICTIM_GROUP)
            == Some(promoted)),
        "server {promoted} is group {VICTIM_GROUP}'s primary"
    );
    let status = run.child.wait().unwrap();
    assert!(status.success(), "the program exits cleanly: {status}");
    // What the client retried, for `--nocapture`.
    eprintln!("the client's retries:\n{}", run.stderr());
}

fn tests_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests"))
}

/// The Go program, compiled once per test process against Debian's Go sources.
fn go_program() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cluster_clients_go");
        let build = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(tests_dir().join("cluster_clients_go/main.go"))
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOCACHE", out.with_extension("cache"))
            .output()
            .expect("go runs");
        assert!(
            build.status.success(),
            "go build: {}",
            String::from_utf8_lossy(&build.stderr)
        );
        out
    })
}

fn go_client(library: &'static str) -> impl Fn(u16) -> Command {
    move |seed| {
        let mut command = Command::new(go_program());
        command.arg(library).arg(seed.to_string());
        command
    }
}

#[test]
#[cfg_attr(
    not(has_go_cluster_clients),
    ignore = "needs go and Debian packages golang-gopkg-redis.v5-dev, golang-github-mna-redisc-dev"
)]
fn s4_s8_go_redis_v5_cluster_client_follows_moved_and_survives_a_primary_killed() {
    scenario(go_client("go-redis"));
}

#[test]
#[cfg_attr(
    not(has_go_cluster_clients),
    ignore = "needs go and Debian packages golang-gopkg-redis.v5-dev, golang-github-mna-redisc-dev"
)]
fn s4_s8_redisc_cluster_client_follows_moved_and_survives_a_primary_killed() {
    scenario(go_client("redisc"));
}

#[test]
#[cfg_attr(
    not(has_php_redis),
    ignore = "needs php with phpredis (Debian packages php-cli, php-redis)"
)]
fn s4_s8_phpredis_cluster_client_follows_moved_and_survives_a_primary_killed() {
    scenario(|seed| {
        let mut command = Command::new("php");
        command
            .arg(tests_dir().join("cluster_clients.php"))
            .arg(seed.to_string());
        command
    });
}

#[test]
#[cfg_attr(
    not(has_ruby_redis_cluster),
    ignore = "needs ruby with redis-rb 4.x (Debian packages ruby, ruby-redis)"
)]
fn s4_s8_redis_rb_cluster_client_follows_moved_and_survives_a_primary_killed() {
    scenario(|seed| {
        let mut command = Command::new("ruby");
        command
            .arg(tests_dir().join("cluster_clients.rb"))
            .arg(seed.to_string());
        command
    });
}
