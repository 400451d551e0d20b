//! Many HTTP fallback sessions come and go: nothing is left behind and memory stops growing.
//!
//! Its own test crate, not a module of tests/integration: the server runs in the test's process and
//! the memory check reads that process's resident memory (`/usage`), so under `cargo test` another
//! test running alongside in the same process could grow it and fail the check. (nextest runs each
//! test in a process of its own; `cargo test` runs a binary's tests as threads of one.)
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "integration/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "integration/fallback_support/mod.rs"]
mod fallback_support;

use common::{KEY, TestServer};
use fallback_support::{Receiver, fast, subscribe, usage};
use serde_json::{Value, json};
use std::time::Duration;

/// Opens `n` sessions (50 at a time), each subscribing to a channel, then abandons them all.
async fn churn(s: &TestServer, round: usize, n: usize) {
    for batch in 0..n / 50 {
        let mut tasks = Vec::new();
        for i in 0..50 {
            let (addr, session) = (s.addr, format!("{round}/c{batch:03}x{i:03}"));
            tasks.push(tokio::spawn(async move {
                let mut r = Receiver::open_at(addr, KEY, &session, "xhr_streaming").await;
                r.established(true).await;
                let body = serde_json::to_string(&vec![subscribe(&format!("churn-{}", i % 10)).to_string()]).unwrap();
                let url = format!("http://{addr}/pusher/app/{KEY}/{session}/xhr_send");
                let res = reqwest::Client::new().post(url).body(body).send().await.unwrap();
                assert_eq!(res.status(), 204);
                r.event("pusher_internal:subscription_succeeded").await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
}

/// Waits until every session and connection is gone; returns the final usage.
async fn drained(s: &TestServer) -> Value {
    for _ in 0..200 {
        let u = usage(s).await;
        if u["http_sessions"] == 0 && u["connections"] == 0 {
            return u;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sessions were not cleaned up: {}", usage(s).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_come_and_go_without_leftovers() {
    let s = TestServer::start(fast).await;
    let start = usage(&s).await;
    churn(&s, 1, 500).await;
    let mid = usage(&s).await;
    assert!(mid["http_sessions"].as_u64().unwrap() > 0, "sessions were live: {mid}");
    let after_first = drained(&s).await;
    churn(&s, 2, 500).await;
    let after_second = drained(&s).await;
    let (status, channels) = s.http().get("/channels", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(channels["channels"], json!({}), "no channel keeps a subscriber");
    let opened = after_second["connections_opened"].as_u64().unwrap() - start["connections_opened"].as_u64().unwrap();
    let closed = after_second["connections_closed"].as_u64().unwrap() - start["connections_closed"].as_u64().unwrap();
    assert_eq!((opened, closed), (1000, 1000));
    let rss = |u: &Value| u["memory"]["rss"].as_u64().unwrap();
    eprintln!(
        "rss: start {} KiB, after 500 sessions {} KiB, after 1000 sessions {} KiB",
        rss(&start) / 1024,
        rss(&after_first) / 1024,
        rss(&after_second) / 1024
    );
    // A second round of 500 reuses the memory of the first: a leak of 16 KiB per session would show.
    assert!(rss(&after_second) < rss(&after_first) + 8 * 1024 * 1024, "memory kept growing");
    s.stop().await;
}
