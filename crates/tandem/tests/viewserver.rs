//! `tandem viewserver` as an operator meets it: the Raft flags are validated with clear
//! errors, `--print-config` round-trips them, a damaged data directory stops the process with
//! the file named, and `add-node` against nothing fails with a non-zero exit (Q5).

use std::path::PathBuf;
use std::process::{Command, Output};

fn tandem(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("TANDEM_") {
            command.env_remove(key);
        }
    }
    // These tests are about the Raft flags, not peer identity.
    command.env("TANDEM_INSECURE", "true");
    command.output().expect("run tandem")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tandem-vs-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

const PEERS: &str = "1=127.0.0.1:7000,2=127.0.0.1:7001,3=127.0.0.1:7002";

#[test]
fn q5_peers_without_a_data_dir_is_refused_naming_the_flag() {
    let output = tandem(&["viewserver", "--listen", "127.0.0.1:7000", "--peers", PEERS]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--data-dir"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bad_peers_are_refused_with_the_entry() {
    let data = dir("bad-peers");
    let data = data.to_str().expect("UTF-8");
    for (peers, expect) in [
        ("1=127.0.0.1:7000,one=127.0.0.1:7001", "one=127.0.0.1:7001"),
        ("1=127.0.0.1:7000,2=nowhere", "nowhere"),
        ("1=127.0.0.1:7000,1=127.0.0.1:7001", "listed twice"),
        ("0=127.0.0.1:7000", "peers (id)"),
    ] {
        let output = tandem(&[
            "viewserver",
            "--listen",
            "127.0.0.1:7000",
            "--data-dir",
            data,
            "--peers",
            peers,
            "--print-config",
        ]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{peers}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(expect),
            "{peers}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn print_config_round_trips_the_raft_settings() {
    let data = dir("print");
    let data = data.to_str().expect("UTF-8");
    let args = [
        "viewserver",
        "--id",
        "2",
        "--listen",
        "127.0.0.1:7001",
        "--data-dir",
        data,
        "--peers",
        PEERS,
        "--raft-tick-ms",
        "20",
        "--election-ticks",
        "8",
        "--print-config",
    ];
    let output = tandem(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(printed.contains("id = 2\n"), "{printed}");
    assert!(printed.contains("raft-tick-ms = 20\n"), "{printed}");
    assert!(printed.contains("election-ticks = 8\n"), "{printed}");
    assert!(printed.contains("\"2=127.0.0.1:7001\""), "{printed}");
    let file = dir("print-file").join("vs.toml");
    std::fs::write(&file, &printed).expect("write");
    let again = tandem(&[
        "viewserver",
        "--config",
        file.to_str().expect("UTF-8"),
        "--print-config",
    ]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(String::from_utf8(again.stdout).expect("UTF-8"), printed);
}

#[test]
fn q5_a_corrupt_data_dir_exits_non_zero_naming_the_file() {
    let data = dir("corrupt");
    std::fs::write(
        data.join("raft.log"),
        b"garbage, not a raft log, not at all",
    )
    .expect("write");
    let output = tandem(&[
        "viewserver",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().expect("UTF-8"),
    ]);
    assert!(!output.status.success());
    let path = data.join("raft.log");
    assert!(
        stderr(&output).contains(&path.display().to_string()),
        "{}",
        stderr(&output)
    );
}

#[test]
fn add_node_without_a_reachable_view_service_fails() {
    // Port 1 on loopback: nothing listens there.
    let output = tandem(&[
        "viewserver",
        "add-node",
        "--viewserver",
        "127.0.0.1:1",
        "--id",
        "4",
        "--addr",
        "127.0.0.1:7003",
        "--timeout-ms",
        "500",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("membership change failed"),
        "{}",
        stderr(&output)
    );
}
