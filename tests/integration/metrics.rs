//! `/metrics` on its own port moves while real clients connect, publish and leave.

use crate::common;

use crate::common::TestServer;
use serde_json::json;

async fn scrape(s: &TestServer) -> String {
    let addr = s.metrics_addr.expect("metrics listener");
    reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap()
}

/// The value of the sample line starting with `prefix` (name and labels).
fn value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {prefix} in\n{text}"))
}

#[tokio::test]
async fn counters_move_with_traffic() {
    let s = TestServer::default().await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe("news").await;
    b.subscribe("news").await;
    for _ in 0..3 {
        assert_eq!(s.http().trigger("news", "e", "payload").await.0, 200);
    }
    a.recv().await;
    b.recv().await;
    let m = scrape(&s).await;
    assert_eq!(value(&m, "sinew_connected{app_id=\"1\"}"), 2.0);
    assert_eq!(value(&m, "sinew_new_connections_total{app_id=\"1\"}"), 2.0);
    assert_eq!(value(&m, "sinew_events_published_total{app_id=\"1\"}"), 3.0);
    assert_eq!(value(&m, "sinew_deliveries_total{app_id=\"1\"}"), 6.0);
    assert!(value(&m, "sinew_ws_messages_received_total{app_id=\"1\"}") >= 2.0);
    assert!(value(&m, "sinew_socket_transmitted_bytes{app_id=\"1\"}") > 0.0);
    assert_eq!(
        value(&m, "sinew_http_calls_received_total{endpoint=\"POST /apps/{app_id}/events\",status=\"200\"}"),
        3.0
    );
    assert!(m.contains("sinew_rest_publish_duration_seconds_bucket"), "{m}");

    // A bad signature is counted under its status; a disconnect moves the gauge.
    let wrong = common::Rest { secret: "x".into(), ..s.http() };
    assert_eq!(wrong.post("/events", json!({"name":"e","channel":"c","data":"d"})).await.0, 401);
    drop(a);
    let mut ok = false;
    for _ in 0..50 {
        let m = scrape(&s).await;
        if value(&m, "sinew_connected{app_id=\"1\"}") == 1.0 {
            assert_eq!(value(&m, "sinew_new_disconnections_total{app_id=\"1\"}"), 1.0);
            assert_eq!(
                value(&m, "sinew_http_calls_received_total{endpoint=\"POST /apps/{app_id}/events\",status=\"401\"}"),
                1.0
            );
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(ok, "the connected gauge went back to 1");
    s.stop().await;
}

#[tokio::test]
async fn prefix_is_configurable() {
    let s = TestServer::start(|c| c.metrics_prefix = "pusher_".into()).await;
    let _c = s.client().await;
    let m = scrape(&s).await;
    assert_eq!(value(&m, "pusher_connected{app_id=\"1\"}"), 1.0);
    assert!(!m.contains("sinew_"));
    s.stop().await;
}
