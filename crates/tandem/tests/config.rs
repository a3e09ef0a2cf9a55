//! Configuration as a user meets it: `--config FILE`, `TANDEM_*` variables and flags, in that
//! increasing priority over the defaults (`--print-config` shows the result), and malformed
//! files refused with the file, line and key named.

use std::path::PathBuf;
use std::process::{Command, Output};

fn tandem(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
    command.args(args);
    // The test's own environment must not leak a setting in.
    for (key, _) in std::env::vars() {
        if key.starts_with("TANDEM_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("run tandem")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "tandem failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8")
}

fn write_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tandem-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn precedence_default_then_file_then_env_then_flag() {
    let file = write_file(
        "precedence.toml",
        "listen = \"127.0.0.1:7000\"\nping-interval-ms = 200\ndead-pings = 7\n",
    );
    let file = file.to_str().expect("UTF-8 path");
    let base = ["viewserver", "--print-config"];

    let defaults = stdout(&tandem(
        &[&base[..], &["--listen", "127.0.0.1:1"]].concat(),
        &[],
    ));
    assert!(defaults.contains("ping-interval-ms = 100\n"), "{defaults}");
    assert!(defaults.contains("dead-pings = 5\n"), "{defaults}");

    let from_file = stdout(&tandem(&[&base[..], &["--config", file]].concat(), &[]));
    assert!(
        from_file.contains("listen = \"127.0.0.1:7000\"\n"),
        "{from_file}"
    );
    assert!(
        from_file.contains("ping-interval-ms = 200\n"),
        "{from_file}"
    );
    assert!(from_file.contains("dead-pings = 7\n"), "{from_file}");
    assert!(from_file.contains("backups = 1\n"), "{from_file}");

    let env = [("TANDEM_PING_INTERVAL_MS", "300")];
    let from_env = stdout(&tandem(&[&base[..], &["--config", file]].concat(), &env));
    assert!(from_env.contains("ping-interval-ms = 300\n"), "{from_env}");
    assert!(from_env.contains("dead-pings = 7\n"), "{from_env}");

    let args = [&base[..], &["--config", file, "--ping-interval-ms", "400"]].concat();
    let from_flag = stdout(&tandem(&args, &env));
    assert!(
        from_flag.contains("ping-interval-ms = 400\n"),
        "{from_flag}"
    );
    assert!(from_flag.contains("dead-pings = 7\n"), "{from_flag}");

    // The config file itself can come from the environment.
    let via_env = stdout(&tandem(&base, &[("TANDEM_CONFIG", file)]));
    assert!(via_env.contains("ping-interval-ms = 200\n"), "{via_env}");
}

#[test]
fn every_role_reads_its_file() {
    let server = write_file(
        "server.toml",
        "listen = \"127.0.0.1:7001\"\nviewserver = [\"127.0.0.1:7000\"]\ngroup = 3\n\
         log-format = \"json\"\n",
    );
    let out = stdout(&tandem(
        &[
            "server",
            "--print-config",
            "--config",
            server.to_str().unwrap(),
        ],
        &[],
    ));
    assert!(out.contains("group = 3\n"), "{out}");
    assert!(out.contains("log-format = \"json\"\n"), "{out}");
    let coordinator = write_file(
        "coordinator.toml",
        "listen = \"127.0.0.1:6379\"\nviewserver = [\"127.0.0.1:7000\"]\n\
         request-timeout-ms = 1234\n",
    );
    let out = stdout(&tandem(
        &[
            "coordinator",
            "--print-config",
            "--config",
            coordinator.to_str().unwrap(),
        ],
        &[("TANDEM_ADMIN", "127.0.0.1:9100")],
    ));
    assert!(out.contains("request-timeout-ms = 1234\n"), "{out}");
    assert!(out.contains("admin = \"127.0.0.1:9100\"\n"), "{out}");
}

#[test]
fn examples_are_valid_config_files() {
    for role in ["viewserver", "server", "coordinator"] {
        let example = stdout(&tandem(&["config", "example", role], &[]));
        assert!(example.starts_with('#'), "commented: {example}");
        let path = write_file(&format!("example-{role}.toml"), &example);
        stdout(&tandem(
            &[role, "--print-config", "--config", path.to_str().unwrap()],
            &[],
        ));
    }
}

fn refused(text: &str) -> String {
    let path = write_file("bad.toml", text);
    let output = tandem(
        &[
            "viewserver",
            "--print-config",
            "--config",
            path.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!output.status.success(), "accepted: {text}");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        stderr.contains(path.to_str().unwrap()),
        "names the file: {stderr}"
    );
    stderr
}

#[test]
fn malformed_files_name_file_line_and_key() {
    let unknown = refused("listen = \"127.0.0.1:7000\"\n# comment\nping-intervall-ms = 100\n");
    assert!(unknown.contains("line 3"), "{unknown}");
    assert!(unknown.contains("`ping-intervall-ms`"), "{unknown}");

    let wrong_type = refused("listen = \"127.0.0.1:7000\"\ndead-pings = \"five\"\n");
    assert!(wrong_type.contains("line 2"), "{wrong_type}");
    assert!(wrong_type.contains("`dead-pings`"), "{wrong_type}");

    let syntax = refused("listen = \"127.0.0.1:7000\nbackups = 1\n");
    assert!(syntax.contains("line 1"), "{syntax}");

    let missing = write_file("missing-listen.toml", "backups = 1\n");
    let output = tandem(
        &[
            "viewserver",
            "--print-config",
            "--config",
            missing.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TANDEM_LISTEN"), "{stderr}");
}

/// `--print-config` prints a valid config file for its role: loaded back with `--config`, it
/// prints the same text. Optional settings left unset (no admin endpoint, no advertised
/// address) are left out rather than printed as empty strings, which would not load.
#[test]
fn print_config_output_loads_back_with_config_for_every_role() {
    type Flags = &'static [&'static str];
    let roles: [(&str, Flags, Flags); 3] = [
        (
            "viewserver",
            &["--listen", "127.0.0.1:7000"],
            &[
                "--admin",
                "127.0.0.1:9000",
                "--coordinator-admin",
                "127.0.0.1:9100,127.0.0.1:9101",
                "--dead-pings",
                "7",
                "--log-format",
                "json",
            ],
        ),
        (
            "server",
            &[
                "--listen",
                "127.0.0.1:7001",
                "--viewserver",
                "127.0.0.1:7000",
            ],
            &[
                "--advertise",
                "10.0.0.5:7001",
                "--admin",
                "127.0.0.1:9001",
                "--group",
                "3",
                "--log-level",
                "debug",
            ],
        ),
        (
            "coordinator",
            &[
                "--listen",
                "127.0.0.1:6379",
                "--viewserver",
                "127.0.0.1:7000,127.0.0.1:7010",
            ],
            &["--admin", "127.0.0.1:9100", "--request-timeout-ms", "1234"],
        ),
    ];
    for (role, required, optional) in roles {
        for (variant, extra) in [("unset", &[][..]), ("set", optional)] {
            let args = [&[role, "--print-config"][..], required, extra].concat();
            let printed = stdout(&tandem(&args, &[]));
            let has_key = |key: &str| printed.lines().any(|line| line.starts_with(key));
            if variant == "unset" {
                assert!(!has_key("admin "), "an unset admin is omitted: {printed}");
                assert!(!has_key("advertise "), "unset advertise: {printed}");
            } else {
                assert!(has_key("admin = "), "{printed}");
            }
            let path = write_file(&format!("printed-{role}-{variant}.toml"), &printed);
            let reloaded = stdout(&tandem(
                &[role, "--print-config", "--config", path.to_str().unwrap()],
                &[],
            ));
            assert_eq!(reloaded, printed, "{role} with optional settings {variant}");
        }
    }
}
