//! The benchmark against an in-test fake Redis server.

mod common;

use std::time::Duration;

use clap::Parser;
use common::{Mode, start};
use tandem_bench::{BenchArgs, BenchConfig, BenchError, ConfigError, Report, run};
use tokio::time::{Instant, timeout};

/// A run that must finish well within this, or the test fails instead of hanging.
const TEST_DEADLINE: Duration = Duration::from_secs(30);

fn config(addr: &str) -> BenchConfig {
    BenchConfig {
        addr: addr.to_string(),
        connections: 4,
        requests: Some(1000),
        keyspace: 100,
        value_size: 16,
        progress: false,
        ..BenchConfig::default()
    }
}

async fn bench(config: &BenchConfig) -> Report {
    timeout(TEST_DEADLINE, run(config))
        .await
        .expect("the run ends")
        .expect("the run succeeds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_exactly_the_requested_number() {
    let server = start(Mode::Normal).await;
    let config = BenchConfig {
        requests: Some(1237),
        connections: 7,
        ..config(&server.addr)
    };
    let report = bench(&config).await;
    assert_eq!(report.requests, 1237);
    assert_eq!(report.errors, 0);
    assert_eq!(report.cut_off, 0);
    assert_eq!(server.seen.commands(), 1237);
    assert!(report.ops_per_sec > 0.0);
    let latency = report.latency_us;
    assert!(latency.p50 >= 1 && latency.p50 <= latency.p99 && latency.p99 <= latency.max);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipelining_sends_batches_and_reads_every_reply() {
    let server = start(Mode::Normal).await;
    // 1001 is not a multiple of 16: the last batch is partial.
    let config = BenchConfig {
        requests: Some(1001),
        pipeline: 16,
        connections: 3,
        read_ratio: 0.5,
        ..config(&server.addr)
    };
    let report = bench(&config).await;
    assert_eq!(report.requests, 1001);
    assert_eq!(report.errors, 0);
    assert_eq!(server.seen.commands(), 1001);
    // Commands do arrive together, and never more than one batch at a time.
    assert!(server.seen.largest_batch() > 1);
    assert!(server.seen.largest_batch() <= 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn error_replies_are_counted_and_not_successes() {
    let server = start(Mode::ErrorOnGet).await;
    let config = BenchConfig {
        read_ratio: 0.5,
        pipeline: 4,
        ..config(&server.addr)
    };
    let report = bench(&config).await;
    assert_eq!(report.requests, 1000);
    assert_eq!(report.errors, server.seen.gets());
    assert!(report.errors > 0 && report.errors < 1000);
    assert_eq!(report.failed_connections, 0);
    let first = report.first_error.as_deref().unwrap();
    assert!(first.starts_with("-ERR reads are switched off"), "{first}");
    let successes = (report.requests - report.errors) as f64;
    let expected_rate = successes / report.elapsed.as_secs_f64();
    assert!((report.ops_per_sec - expected_rate).abs() < 1e-6 * expected_rate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_reads_and_all_writes() {
    let server = start(Mode::Normal).await;
    let report = bench(&config(&server.addr)).await;
    assert_eq!((report.requests, server.seen.gets()), (1000, 0));

    let server = start(Mode::Normal).await;
    let config = BenchConfig {
        read_ratio: 1.0,
        ..config(&server.addr)
    };
    let report = bench(&config).await;
    assert_eq!((report.requests, server.seen.gets()), (1000, 1000));
    assert_eq!(server.seen.get_misses(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn warmup_sets_every_key_before_measuring() {
    let server = start(Mode::Normal).await;
    let config = BenchConfig {
        read_ratio: 1.0,
        warmup_keys: true,
        keyspace: 333,
        pipeline: 8,
        ..config(&server.addr)
    };
    let report = bench(&config).await;
    assert_eq!(report.requests, 1000);
    assert_eq!(server.seen.commands(), 333 + 1000);
    assert_eq!(server.seen.gets(), 1000);
    assert_eq!(server.seen.get_misses(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn warmup_fails_when_the_server_does_not_answer() {
    let server = start(Mode::Hang).await;
    let config = BenchConfig {
        warmup_keys: true,
        read_timeout: Duration::from_millis(200),
        ..config(&server.addr)
    };
    let error = timeout(TEST_DEADLINE, run(&config))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(error, BenchError::Warmup(_)), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duration_stops_on_time() {
    let server = start(Mode::Normal).await;
    let config = BenchConfig {
        requests: None,
        duration: Some(Duration::from_millis(700)),
        ..config(&server.addr)
    };
    let began = Instant::now();
    let report = bench(&config).await;
    let took = began.elapsed();
    assert!(report.elapsed >= Duration::from_millis(700), "{report:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(report.requests > 0);
    assert_eq!(report.errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duration_stops_on_time_even_if_the_server_hangs() {
    let server = start(Mode::Hang).await;
    let config = BenchConfig {
        requests: None,
        duration: Some(Duration::from_millis(500)),
        pipeline: 3,
        ..config(&server.addr)
    };
    // The read timeout (10 s) is far beyond the deadline: the deadline must win.
    let began = Instant::now();
    let report = bench(&config).await;
    assert!(began.elapsed() < Duration::from_secs(3), "{report:?}");
    assert_eq!((report.requests, report.errors), (0, 0));
    assert_eq!(report.cut_off, 4 * 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_timeout_counts_errors_and_ends_the_run() {
    let server = start(Mode::Hang).await;
    let config = BenchConfig {
        pipeline: 5,
        read_timeout: Duration::from_millis(300),
        ..config(&server.addr)
    };
    let report = bench(&config).await;
    // Each connection's first batch times out, and the connection gives up.
    assert_eq!(report.requests, 4 * 5);
    assert_eq!(report.errors, 4 * 5);
    assert_eq!(report.failed_connections, 4);
    assert!(report.first_error.unwrap().contains("timed out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn protocol_error_closes_the_connection_with_a_clear_error() {
    let server = start(Mode::Garbage).await;
    let report = bench(&config(&server.addr)).await;
    assert_eq!(report.failed_connections, 4);
    assert_eq!(report.requests, 4);
    assert_eq!(report.errors, 4);
    let first = report.first_error.unwrap();
    assert!(first.contains("protocol error"), "{first}");
}

#[tokio::test]
async fn unreachable_server_is_a_connect_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let error = run(&config(&addr)).await.unwrap_err();
    assert!(matches!(error, BenchError::Connect { .. }), "{error}");
    assert!(error.to_string().contains(&addr), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_report_parses_with_every_field() {
    let server = start(Mode::Normal).await;
    let report = bench(&config(&server.addr)).await;
    let text = report.to_json().to_string();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["requests"], 1000);
    assert_eq!(json["errors"], 0);
    assert!(json["ops_per_sec"].as_f64().unwrap() > 0.0);
    assert!(json["elapsed_secs"].as_f64().unwrap() > 0.0);
    for field in ["p50_us", "p90_us", "p99_us", "p999_us", "max_us"] {
        assert!(json[field].as_u64().unwrap() >= 1, "{field}");
    }
    assert!(json["mean_us"].as_f64().unwrap() > 0.0);
    assert_eq!(json["config"]["addr"], server.addr.as_str());
    assert_eq!(json["config"]["connections"], 4);
    assert_eq!(json["config"]["requests"], 1000);
    assert!(json["config"]["duration_secs"].is_null());
    // The table names the same numbers.
    let table = report.to_string();
    assert!(table.contains("requests      1000"), "{table}");
    assert!(table.contains("p99.9"), "{table}");
}

#[test]
fn validate_rejects_each_bound() {
    let ok = BenchConfig::default();
    assert_eq!(ok.validate(), Ok(()));
    let cases = [
        (
            BenchConfig {
                addr: " ".into(),
                ..ok.clone()
            },
            ConfigError::EmptyAddr,
        ),
        (
            BenchConfig {
                connections: 0,
                ..ok.clone()
            },
            ConfigError::Connections(0),
        ),
        (
            BenchConfig {
                connections: 10_001,
                ..ok.clone()
            },
            ConfigError::Connections(10_001),
        ),
        (
            BenchConfig {
                pipeline: 0,
                ..ok.clone()
            },
            ConfigError::Pipeline(0),
        ),
        (
            BenchConfig {
                pipeline: 1025,
                ..ok.clone()
            },
            ConfigError::Pipeline(1025),
        ),
        (
            BenchConfig {
                keyspace: 0,
                ..ok.clone()
            },
            ConfigError::Keyspace,
        ),
        (
            BenchConfig {
                value_size: 16 * 1024 * 1024 + 1,
                ..ok.clone()
            },
            ConfigError::ValueSize(16 * 1024 * 1024 + 1),
        ),
        (
            BenchConfig {
                value_size: 16 * 1024 * 1024,
                pipeline: 17,
                ..ok.clone()
            },
            ConfigError::BatchTooLarge {
                pipeline: 17,
                value_size: 16 * 1024 * 1024,
            },
        ),
        (
            BenchConfig {
                read_ratio: 1.5,
                ..ok.clone()
            },
            ConfigError::ReadRatio(1.5),
        ),
        (
            BenchConfig {
                requests: None,
                ..ok.clone()
            },
            ConfigError::StopCondition,
        ),
        (
            BenchConfig {
                duration: Some(Duration::from_secs(1)),
                ..ok.clone()
            },
            ConfigError::StopCondition,
        ),
        (
            BenchConfig {
                requests: None,
                duration: Some(Duration::ZERO),
                ..ok.clone()
            },
            ConfigError::ZeroDuration,
        ),
        (
            BenchConfig {
                requests: Some(0),
                ..ok.clone()
            },
            ConfigError::ZeroRequests,
        ),
        (
            BenchConfig {
                read_timeout: Duration::ZERO,
                ..ok.clone()
            },
            ConfigError::ZeroReadTimeout,
        ),
    ];
    for (config, expected) in cases {
        assert_eq!(config.validate(), Err(expected));
    }
    let nan = BenchConfig {
        read_ratio: f64::NAN,
        ..ok.clone()
    };
    assert!(matches!(nan.validate(), Err(ConfigError::ReadRatio(_))));
    let extremes = BenchConfig {
        connections: 10_000,
        pipeline: 1024,
        value_size: 0,
        keyspace: 1,
        read_ratio: 1.0,
        ..ok
    };
    assert_eq!(extremes.validate(), Ok(()));
}

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

fn parse(args: &[&str]) -> Result<BenchConfig, clap::Error> {
    let argv = std::iter::once("bench").chain(args.iter().copied());
    Cli::try_parse_from(argv).map(|cli| cli.args.to_config())
}

#[test]
fn cli_defaults_match_the_config_defaults() {
    assert_eq!(parse(&[]).unwrap(), BenchConfig::default());
}

#[test]
fn cli_flags_reach_the_config() {
    let config = parse(&[
        "--addr",
        "10.0.0.1:7000",
        "-c",
        "8",
        "-P",
        "32",
        "--keyspace",
        "10",
        "-d",
        "3",
        "--read-ratio",
        "0.9",
        "-n",
        "5000",
        "--no-progress",
        "--warmup",
        "--timeout-secs",
        "2",
    ])
    .unwrap();
    let expected = BenchConfig {
        addr: "10.0.0.1:7000".into(),
        connections: 8,
        pipeline: 32,
        keyspace: 10,
        value_size: 3,
        read_ratio: 0.9,
        duration: None,
        requests: Some(5000),
        progress: false,
        warmup_keys: true,
        read_timeout: Duration::from_secs(2),
        wait_replicas: 0,
    };
    assert_eq!(config, expected);
    let timed = parse(&["--duration-secs", "30"]).unwrap();
    assert_eq!(
        (timed.duration, timed.requests),
        (Some(Duration::from_secs(30)), None)
    );
    assert!(parse(&["--duration-secs", "30", "-n", "10"]).is_err());
    assert!(parse(&["-n", "0"]).is_err());
}
