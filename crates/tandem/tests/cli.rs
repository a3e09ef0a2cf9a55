//! The `tandem` binary's role subcommands: errors are one line with exit code 2,
//! `tandem status --json` prints the documented document, and `tandem sim` behaves in a pipe.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary, in insecure mode (these tests are about the command line, not peer identity;
/// the multi-process tests run on certificates).
fn tandem() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
    command.env("TANDEM_INSECURE", "true");
    command
}

/// Kills the child when the test ends, whatever happens.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_port_in_use_is_a_one_line_error_with_exit_code_2() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = tandem()
        .args(["viewserver", "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim(),
        format!("tandem: cannot listen on {addr}: address in use")
    );
}

#[test]
fn out_of_range_flags_exit_with_code_2() {
    let output = tandem()
        .args(["viewserver", "--listen", "127.0.0.1:0", "--dead-pings", "1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = tandem().args(["server", "--listen", "x"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "missing --viewserver");
}

#[test]
fn status_json_reports_the_view_of_a_running_view_service() {
    // Find a free port, then let the view service take it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let _view_service = Running(
        tandem()
            .args(["viewserver", "--listen", &addr, "--log-level", "warn"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let output = tandem()
            .args(["status", "--viewserver", &addr, "--json"])
            .output()
            .unwrap();
        if output.status.success() {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
            // The groups keep their documented field order, after the nodes.
            assert!(stdout.starts_with(r#"{"nodes":["#), "{stdout}");
            assert!(
                stdout.trim().ends_with(
                    r#","groups":[{"group":0,"viewnum":0,"primary":null,"backups":[],"acked":false,"idle":[],"slots":0,"config_done":0}],"slots":{"epoch":0,"config":0,"unassigned":16384,"groups":[],"moves":[],"moving":[]}}"#
                ),
                "{stdout}"
            );
            let nodes = json["nodes"].as_array().expect("a nodes list");
            assert_eq!(nodes.len(), 1, "{stdout}");
            assert_eq!(nodes[0]["address"], addr.as_str());
            assert_ne!(nodes[0]["role"], "unreachable");
            return;
        }
        assert!(Instant::now() < deadline, "the view service never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn status_lists_an_unreachable_view_service_node_and_still_shows_the_groups() {
    // Two free ports (both held until both are known, so they differ).
    let held = [
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    ];
    let [dead, live] = held.map(|l| l.local_addr().unwrap().to_string());
    let _view_service = Running(
        tandem()
            .args(["viewserver", "--listen", &live, "--log-level", "warn"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let list = format!("{dead},{live}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let output = tandem()
            .args(["status", "--viewserver", &list, "--timeout-ms", "500"])
            .output()
            .unwrap();
        if output.status.success() {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let dead_row = stdout.lines().find(|l| l.contains(&dead)).expect(&stdout);
            assert!(dead_row.contains("unreachable"), "{stdout}");
            let live_row = stdout.lines().find(|l| l.contains(&live)).expect(&stdout);
            assert!(!live_row.contains("unreachable"), "{stdout}");
            assert!(stdout.contains("GROUP"), "{stdout}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the live view service never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing answers: a non-zero exit naming the list.
    let output = tandem()
        .args(["status", "--viewserver", &dead, "--timeout-ms", "500"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains(&dead));
    // A malformed list is refused before anything is asked.
    let output = tandem()
        .args(["status", "--viewserver", &format!("{live},{live}")])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("twice"));
}

#[test]
fn sim_sweep_summarizes_and_exits_zero_when_every_seed_passes() {
    let output = tandem()
        .args([
            "sim",
            "--seeds",
            "2",
            "--duration-ms",
            "2000",
            "--threads",
            "1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.starts_with("2 seeds, 0 failed"), "{stdout}");
}

#[test]
fn sim_trace_into_a_pipe_closed_early_stops_quietly() {
    // An hour of simulated faults writes far more than a pipe buffer holds, so the trace is
    // still being written when the reader goes away.
    let mut child = Running(
        tandem()
            .args([
                "sim",
                "--seed",
                "1",
                "--verbose",
                "--duration-ms",
                "3600000",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut trace = BufReader::new(child.0.stdout.take().unwrap());
    let mut first = String::new();
    trace.read_line(&mut first).unwrap();
    assert!(first.contains("fault"), "{first}");
    drop(trace);
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.0.wait().unwrap();
    assert!(stderr.is_empty(), "{stderr}");
    assert!(status.success(), "{status}");
}

#[test]
fn i2_a_role_without_certificates_or_insecure_refuses_to_start() {
    let roles: [&[&str]; 3] = [
        &["viewserver", "--listen", "127.0.0.1:0"],
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--viewserver",
            "127.0.0.1:1",
        ],
        &[
            "coordinator",
            "--listen",
            "127.0.0.1:0",
            "--viewserver",
            "127.0.0.1:1",
        ],
    ];
    for args in roles {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
        for (key, _) in std::env::vars() {
            if key.starts_with("TANDEM_") {
                command.env_remove(key);
            }
        }
        let output = command.args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("need certificates") && stderr.contains("--insecure"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn i1_certs_create_writes_a_ca_and_one_certificate_per_process_and_never_overwrites() {
    let dir = std::env::temp_dir().join(format!("tandem-certs-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.display().to_string();
    let nodes = "vs1=viewservice@127.0.0.1:7000,s1=server@127.0.0.1:7101,c1=coordinator,ops=admin";
    let create = |extra: &[&str]| {
        tandem()
            .args([
                "certs",
                "create",
                "--out",
                &out,
                "--nodes",
                nodes,
                "--hosts",
                "redis.example",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let output = create(&[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("tandem://server/127.0.0.1:7101"),
        "{stdout}"
    );
    for file in ["ca", "vs1", "s1", "c1", "ops"] {
        assert!(dir.join(format!("{file}.pem")).exists(), "{file}.pem");
        assert!(dir.join(format!("{file}.key")).exists(), "{file}.key");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("s1.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let tls = tandem_runtime::PeerTls::load(
        &dir.join("ca.pem"),
        &dir.join("s1.pem"),
        &dir.join("s1.key"),
    )
    .unwrap();
    assert_eq!(tls.principal().to_string(), "server/127.0.0.1:7101");
    // A second run refuses to replace anything; --force does.
    let again = create(&[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert!(create(&["--force"]).status.success());
    // A malformed spec is refused with the reason.
    let bad = tandem()
        .args(["certs", "create", "--out", &out, "--nodes", "s1=server"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("HOST:PORT"));
    let _ = std::fs::remove_dir_all(&dir);
}
