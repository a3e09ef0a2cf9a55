//! `tandem slots show|move|rebalance` and the slot map in `tandem status` against a real view
//! service and real servers of two groups (S2, S3), on certificates: changes are an admin's.
//! The servers take the moves on (S4-S6), so the test sees each configuration finish.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{Proc, ViewService, certs, free_port, wait_for};
use tandem_protocol::GroupId;
use tandem_runtime::identity::Role;

/// Runs `tandem <args> --viewserver <list>` as an admin: (success, stdout and stderr).
fn tandem(vs: &ViewService, args: &[&str]) -> (bool, String) {
    let mut full: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    full.extend(["--viewserver".into(), vs.list(), "--timeout-ms".into()]);
    full.push("5000".into());
    full.extend(certs().flags(Role::Admin, "tests"));
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(&full)
        .output()
        .expect("run tandem");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `tandem slots show --json`, parsed.
fn show(vs: &ViewService) -> Value {
    let (ok, out) = tandem(vs, &["slots", "show", "--json"]);
    assert!(ok, "slots show: {out}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn group(map: &Value, g: u64) -> Value {
    map["groups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|x| x["group"] == g))
        .cloned()
        .unwrap_or(Value::Null)
}

fn server(vs: &ViewService, name: &str, group: u32) -> Proc {
    let args = vec![
        "server".into(),
        "--listen".into(),
        format!("127.0.0.1:{}", free_port()),
        "--viewserver".into(),
        vs.list(),
        "--group".into(),
        group.to_string(),
    ];
    Proc::spawn(name, &args)
}

fn has_primary(vs: &ViewService, g: u32) -> bool {
    vs.status().is_some_and(|s| {
        s.groups
            .iter()
            .any(|x| x.group == GroupId(g) && x.acked && x.view.is_some())
    })
}

#[test]
fn s2_s3_tandem_slots_show_move_and_rebalance_against_a_real_view_service() {
    let vs = ViewService::single();
    let _s0 = server(&vs, "slots-s0", 0);
    assert!(
        wait_for(Duration::from_secs(15), || has_primary(&vs, 0)),
        "group 0 has no primary: {:?}",
        vs.status()
    );
    // S2: the first group with a view owns every slot, with no command.
    let map = show(&vs);
    assert_eq!(map["config"], 1, "{map}");
    assert_eq!(group(&map, 0)["slots"], 16384, "{map}");
    assert_eq!(group(&map, 0)["ranges"], serde_json::json!([[0, 16383]]));
    let (ok, text) = tandem(&vs, &["slots", "show"]);
    assert!(ok && text.contains("slot configuration 1"), "{text}");

    let _s1 = server(&vs, "slots-s1", 1);
    assert!(
        wait_for(Duration::from_secs(15), || has_primary(&vs, 1)),
        "group 1 has no primary: {:?}",
        vs.status()
    );
    // Refused with the reason, exit code 2: a group without a view, a slot out of range.
    let (ok, text) = tandem(&vs, &["slots", "move", "--slots", "0-99", "--to", "7"]);
    assert!(!ok && text.contains("group 7 has no view"), "{text}");
    let (ok, text) = tandem(&vs, &["slots", "move", "--slots", "0-16384", "--to", "1"]);
    assert!(!ok && text.contains("16384"), "{text}");
    // `tandem status` shows each group's slots.
    let (ok, text) = tandem(&vs, &["status"]);
    assert!(ok && text.contains("slot configuration 1"), "{text}");
    let (ok, text) = tandem(&vs, &["status", "--json"]);
    assert!(ok, "{text}");
    let status: Value = serde_json::from_str(text.trim()).expect("status JSON");
    assert_eq!(status["slots"]["config"], 1, "{status}");
    let owner = if group(&map, 0)["slots"] == 16384 {
        0
    } else {
        1
    };
    assert_eq!(status["groups"][owner]["slots"], 16384, "{status}");

    // S3: a change is made only once both groups took on configuration 1 (their primaries
    // report it in their pings); then a rebalance moves half the slots and waits until applied.
    assert!(
        wait_for(Duration::from_secs(10), || {
            let map = show(&vs);
            group(&map, 0)["config_done"] == 1 && group(&map, 1)["config_done"] == 1
        }),
        "the groups did not report configuration 1: {}",
        show(&vs)
    );
    let (ok, text) = tandem(&vs, &["slots", "rebalance"]);
    assert!(ok && text.contains("configuration 2 applied"), "{text}");
    let map = show(&vs);
    assert_eq!(map["config"], 2, "{map}");
    assert_eq!(group(&map, 0)["slots"], 8192, "{map}");
    assert_eq!(group(&map, 1)["slots"], 8192, "{map}");
    assert_eq!(map["moves"].as_array().map(Vec::len), Some(1), "{map}");
    // The groups finish the move (S5, S6) and report configuration 2: no move in progress.
    assert!(
        wait_for(Duration::from_secs(15), || show(&vs)["moving"]
            .as_array()
            .is_some_and(Vec::is_empty)),
        "the move did not finish: {}",
        show(&vs)
    );
    // A move of single slots and a range to the other group.
    let taker = if owner == 0 { "1" } else { "0" };
    let (ok, text) = tandem(&vs, &["slots", "move", "--slots", "0-9,100", "--to", taker]);
    assert!(ok && text.contains("configuration 3 applied"), "{text}");
    let map = show(&vs);
    let moves = &map["moves"][0];
    assert_eq!(moves["slots"], 11, "{map}");
    assert_eq!(
        moves["ranges"],
        serde_json::json!([[0, 9], [100, 100]]),
        "{map}"
    );
    let (ok, text) = tandem(&vs, &["slots", "show"]);
    assert!(ok && text.contains("slot configuration 3"), "{text}");
}
