//! The admin endpoints of a running in-process cluster: `/metrics` parsed with a Prometheus
//! text-format parser and checked to move as traffic flows, `/status` of each role, the
//! health probes, and the view history with reasons through `GetStatus`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{RespClient, TestCluster, wait_until};
use prometheus_parse::{Scrape, Value};
use tandem_runtime::{DevAdmin, DevOptions, http_get};

const TIMEOUT: Duration = Duration::from_secs(5);

async fn with_admin() -> anyhow::Result<TestCluster> {
    let mut options = DevOptions {
        port: 0,
        admin: Some("127.0.0.1:0".to_owned()),
        ..DevOptions::default()
    };
    options.coordinator.clerk.request_timeout_ms = 2000;
    TestCluster::start_with(options).await
}

/// The admin endpoint of the view-service node that leads (Q1): only the leader receives the
/// pings and knows the servers' health.
async fn leader_admin(admin: &DevAdmin) -> anyhow::Result<String> {
    let nodes: Vec<String> = admin
        .view_services
        .iter()
        .map(ToString::to_string)
        .collect();
    wait_until("a view-service node leads", || {
        let nodes = nodes.clone();
        async move {
            for addr in nodes {
                let (_, body) = http_get(&addr, "/status", TIMEOUT).await.ok()?;
                let status: serde_json::Value = serde_json::from_str(&body).ok()?;
                if status["node"]["role"] == "leader" {
                    return Some(addr);
                }
            }
            None
        }
    })
    .await
}

/// Scrapes `addr`'s `/metrics` and parses it; every sample keyed by name and sorted labels.
async fn scrape(addr: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    let (code, body) = http_get(addr, "/metrics", TIMEOUT).await?;
    anyhow::ensure!(code == 200, "GET /metrics: HTTP {code}");
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = Scrape::parse(lines)?;
    let mut samples = BTreeMap::new();
    for sample in scrape.samples {
        let mut labels: Vec<String> = sample
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        let value = match sample.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            Value::Histogram(buckets) => {
                // One entry per histogram: its +Inf bucket is the observation count.
                buckets.last().map_or(0.0, |b| b.count)
            }
            Value::Summary(_) => continue,
        };
        samples.insert(format!("{}{{{}}}", sample.metric, labels.join(",")), value);
    }
    Ok(samples)
}

fn get(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_parse_and_counters_move_with_traffic() -> anyhow::Result<()> {
    let test = with_admin().await?;
    let admin = test.cluster.admin.clone().expect("admin endpoints");
    let coordinator = admin.coordinator.to_string();
    let view_service = leader_admin(&admin).await?;

    let before = scrape(&coordinator).await?;
    let vs_before = scrape(&view_service).await?;
    let mut client = RespClient::connect(test.coordinator()).await?;
    for i in 0..50 {
        let key = format!("k{i}");
        client.call(&[b"SET", key.as_bytes(), b"v"]).await?;
        client.call(&[b"GET", key.as_bytes()]).await?;
    }
    client.call(&[b"LPUSH", b"k0", b"x"]).await?; // WRONGTYPE: an error reply
    let after = scrape(&coordinator).await?;

    let set_ok = "tandem_coordinator_commands_total{command=set,outcome=ok}";
    let get_ok = "tandem_coordinator_commands_total{command=get,outcome=ok}";
    let lpush_error = "tandem_coordinator_commands_total{command=lpush,outcome=error}";
    assert!(
        get(&after, set_ok) >= get(&before, set_ok) + 50.0,
        "{after:?}"
    );
    assert_eq!(get(&after, get_ok), get(&before, get_ok) + 50.0);
    assert_eq!(get(&after, lpush_error), get(&before, lpush_error) + 1.0);
    let latency = "tandem_coordinator_request_duration_seconds{}";
    assert!(
        get(&after, latency) >= get(&before, latency) + 101.0,
        "{after:?}"
    );
    assert!(get(&after, "tandem_coordinator_connections{}") >= 1.0);

    // The primary applied and forwarded the writes; the view service keeps receiving pings.
    // The server publishes its core's counters periodically: wait for a snapshot that includes
    // the traffic.
    let primary_admin = wait_until("a primary reports the writes it applied", || {
        let servers = admin.servers.clone();
        async move {
            for server in servers {
                let samples = scrape(&server.to_string()).await.ok()?;
                if get(&samples, "tandem_server_role{role=primary}") == 1.0
                    && get(&samples, "tandem_server_applied_ops_total{}") >= 100.0
                {
                    return Some((server.to_string(), samples));
                }
            }
            None
        }
    })
    .await?;
    let (primary, samples) = primary_admin;
    assert!(
        get(&samples, "tandem_server_applied_ops_total{}") >= 100.0,
        "{samples:?}"
    );
    assert!(
        get(&samples, "tandem_server_forward_batch_ops{}") >= 1.0,
        "{samples:?}"
    );
    assert!(get(&samples, "tandem_server_pings_sent_total{}") >= 1.0);
    let vs_pings = "tandem_viewservice_pings_total{}";
    wait_until("pings are counted", || {
        let view_service = view_service.clone();
        let before = get(&vs_before, vs_pings);
        async move {
            let now = scrape(&view_service).await.ok()?;
            (get(&now, vs_pings) > before).then_some(())
        }
    })
    .await?;
    let vs = scrape(&view_service).await?;
    assert!(
        get(
            &vs,
            "tandem_viewservice_view_changes_total{reason=first_primary}"
        ) == 1.0
    );
    assert!(
        get(
            &vs,
            "tandem_viewservice_view_changes_total{reason=backup_added}"
        ) >= 1.0
    );

    // The primary's /status JSON.
    let (code, body) = http_get(&primary, "/status", TIMEOUT).await?;
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(status["role"], "server");
    assert_eq!(status["view_role"], "primary");
    Ok(())
}

#[tokio::test]
async fn probes_status_and_dashboard() -> anyhow::Result<()> {
    let test = with_admin().await?;
    let admin = test.cluster.admin.clone().expect("admin endpoints");
    let vs = leader_admin(&admin).await?;
    for addr in [vs.clone(), admin.coordinator.to_string()] {
        assert_eq!(http_get(&addr, "/healthz", TIMEOUT).await?.0, 200);
        let ready = wait_until("ready", || {
            let addr = addr.clone();
            async move { (http_get(&addr, "/readyz", TIMEOUT).await.ok()?.0 == 200).then_some(()) }
        });
        ready.await?;
    }
    let (code, page) = http_get(&vs, "/", TIMEOUT).await?;
    assert_eq!(code, 200);
    assert!(page.contains("<title>tandem dashboard</title>"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no external assets"
    );
    assert_eq!(
        http_get(&admin.coordinator.to_string(), "/", TIMEOUT)
            .await?
            .0,
        404
    );

    let (_, body) = http_get(&vs, "/status", TIMEOUT).await?;
    let status: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(status["role"], "viewservice");
    let group = &status["groups"][0];
    assert!(group["history"].as_array().is_some_and(|h| !h.is_empty()));
    assert_eq!(group["servers"].as_array().map(Vec::len), Some(3));

    // The coordinator's counters reach the view service's status (for the dashboard).
    let mut client = RespClient::connect(test.coordinator()).await?;
    client.call(&[b"SET", b"a", b"1"]).await?;
    wait_until("the view service read the coordinator's counters", || {
        let vs = vs.clone();
        async move {
            let (_, body) = http_get(&vs, "/status", TIMEOUT).await.ok()?;
            let status: serde_json::Value = serde_json::from_str(&body).ok()?;
            (status["coordinators"][0]["commands_total"].as_u64()? >= 1).then_some(())
        }
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn status_history_carries_reasons() -> anyhow::Result<()> {
    let test = with_admin().await?;
    let status = tandem_runtime::status(&test.view_service(), TIMEOUT, test.admin_tls()).await?;
    let history = &status.groups[0].history;
    assert!(
        matches!(
            history[0].causes.as_slice(),
            [tandem_protocol::ViewChangeCause::FirstPrimary { .. }]
        ),
        "{history:?}"
    );
    assert!(
        history[0].reason().starts_with("first server"),
        "{history:?}"
    );
    assert!(
        history.iter().any(|h| h
            .causes
            .iter()
            .any(|c| matches!(c, tandem_protocol::ViewChangeCause::IdleAdded { .. }))),
        "{history:?}"
    );
    assert!(
        history.iter().any(|h| h.reason().contains("as backup")),
        "{history:?}"
    );
    let table = tandem_runtime::status_history(&status);
    assert!(table.contains("first server"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&tandem_runtime::status_history_json(&status))?;
    assert_eq!(
        json["groups"][0]["history"][0]["viewnum"].as_u64(),
        Some(history.len() as u64)
    );
    Ok(())
}
