//! The load generator against a real server with tiny numbers: every scenario must report that
//! every event arrived once and in order (timings are printed, never asserted).
//!
//! `sinew-bench` is the workspace's `bench` package, so Cargo does not build it for this test (nor
//! set `CARGO_BIN_EXE_sinew-bench`): `cargo build --workspace` must have built it, as
//! ./scripts/test does first. `SINEW_BENCH_BIN` names another binary.

use crate::common::TestServer;
use serde_json::Value;
use std::path::PathBuf;

/// The `sinew-bench` binary: `SINEW_BENCH_BIN`, else the one beside this test's `deps/` folder in
/// the same target directory (`target/debug/sinew-bench`).
fn bench_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SINEW_BENCH_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target directory");
    let bin = dir.join(format!("sinew-bench{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "{} is missing: build it first (cargo build --workspace)", bin.display());
    bin
}

async fn run(server: &TestServer, args: &[&str]) -> Value {
    let dir = std::env::temp_dir().join(format!("sinew-bench-smoke-{}", rand::random::<u64>()));
    let json = dir.with_extension("jsonl");
    let out = tokio::process::Command::new(bench_bin())
        .args(["--port", &server.addr.port().to_string(), "--connect-rate", "500", "--json"])
        .arg(&json)
        .args(args)
        .output()
        .await
        .expect("run sinew-bench");
    let text = std::fs::read_to_string(&json).unwrap_or_default();
    let _ = std::fs::remove_file(&json);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(text.trim()).expect("one JSON report");
    assert_eq!(report["ok"], true, "{report}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_delivers_everything() {
    let server = TestServer::default().await;

    let r = run(&server, &["connect", "--connections", "30", "--channels", "3", "--settle", "0.1"]).await;
    assert_eq!(r["figures"]["ready"], 30);

    let r = run(&server, &["fanout", "--subscribers", "5", "--messages", "20", "--rate", "200"]).await;
    assert_eq!(r["figures"]["delivered"], 100);
    assert_eq!(r["figures"]["expected"], 100);
    assert_eq!(r["figures"]["latency"]["samples"], 100);

    let r = run(
        &server,
        &["throughput", "--channels", "4", "--per-channel", "2", "--publishers", "2", "--duration", "0.5"],
    )
    .await;
    let publishes = r["figures"]["publishes"].as_u64().expect("publishes");
    assert!(publishes > 0);
    assert_eq!(r["figures"]["delivered"].as_u64(), Some(publishes * 2));

    let r = run(&server, &["client-events", "--pairs", "3", "--rate", "5", "--duration", "1"]).await;
    let sent = r["figures"]["pings_sent"].as_u64().expect("pings_sent");
    assert!(sent >= 3);
    assert_eq!(r["figures"]["pongs_delivered"].as_u64(), Some(sent));

    let r =
        run(&server, &["presence-churn", "--watchers", "3", "--churners", "3", "--rate", "5", "--duration", "1"]).await;
    assert!(r["figures"]["joins"].as_u64().unwrap_or(0) >= 3);

    server.stop().await;
}
