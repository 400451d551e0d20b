//! An app's REST rate limits: `max_backend_events_per_second` counts each event once per channel
//! it names (single, multi-channel and batch triggers alike) and `max_read_requests_per_second`
//! counts the read endpoints; beyond either, 429 and nothing delivered.

use crate::common::TestServer;
use serde_json::json;
use std::time::Duration;

/// Waits until a new one-second window has opened (the window opens with the first request after
/// the previous one closed).
async fn next_window() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

#[tokio::test]
async fn rest_events_beyond_the_apps_rate_get_429_and_are_not_delivered() {
    let s = TestServer::start(|c| c.apps[0].max_backend_events_per_second = 5).await;
    let mut c = s.client().await;
    c.subscribe("limited").await;
    let http = s.http();
    for i in 0..5 {
        assert_eq!(http.trigger("limited", "e", &i.to_string()).await.0, 200);
    }
    let (status, body) = http.trigger("limited", "e", "over").await;
    assert_eq!(status, 429);
    assert!(body["error"].as_str().unwrap().contains("5 event deliveries"), "{body}");
    for i in 0..5 {
        assert_eq!(c.recv().await["data"], i.to_string());
    }
    c.expect_silence().await;

    // Three channels cost three; a batch costs one per event.
    next_window().await;
    let three = json!({"name":"m","channels":["a","b","limited"],"data":"x"});
    assert_eq!(http.post("/events", three.clone()).await.0, 200);
    assert_eq!(http.post("/events", three).await.0, 429, "3 + 3 > 5");
    let batch = |n: usize| json!({"batch": (0..n).map(|i| json!({"name":"b","channel":"limited","data":i.to_string()})).collect::<Vec<_>>()});
    assert_eq!(http.post("/batch_events", batch(3)).await.0, 429, "3 + 3 > 5");
    assert_eq!(http.post("/batch_events", batch(2)).await.0, 200);
    assert_eq!(c.recv().await["event"], "m");
    assert_eq!(c.recv().await["data"], "0");
    assert_eq!(c.recv().await["data"], "1");
    c.expect_silence().await;

    // Reads are not events.
    assert_eq!(http.get("/channels", &[]).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn rest_reads_beyond_the_apps_rate_get_429() {
    let s = TestServer::start(|c| c.apps[0].max_read_requests_per_second = 3).await;
    let http = s.http();
    assert_eq!(http.get("/channels", &[]).await.0, 200);
    assert_eq!(http.get("/channels/news", &[]).await.0, 200);
    assert_eq!(http.get("/channels/presence-x/users", &[]).await.0, 200);
    let (status, body) = http.get("/channels", &[]).await;
    assert_eq!(status, 429);
    assert!(body["error"].as_str().unwrap().contains("3 reads"), "{body}");
    // Publishing is not a read.
    assert_eq!(http.trigger("news", "e", "1").await.0, 200);
    next_window().await;
    assert_eq!(http.get("/channels/news", &[]).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn limits_are_per_app() {
    let s = TestServer::start(|c| {
        c.apps[0].max_backend_events_per_second = 1;
        let mut other = c.apps[0].clone();
        other.id = "2".into();
        other.key = "other-key".into();
        other.max_backend_events_per_second = 0;
        c.apps.push(other);
    })
    .await;
    let http = s.http();
    assert_eq!(http.trigger("x", "e", "1").await.0, 200);
    assert_eq!(http.trigger("x", "e", "2").await.0, 429);
    let mut other = s.http();
    other.app_id = "2".into();
    other.key = "other-key".into();
    for i in 0..20 {
        assert_eq!(other.trigger("x", "e", &i.to_string()).await.0, 200);
    }
    s.stop().await;
}
