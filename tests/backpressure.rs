//! A client that stops reading is disconnected with 4100 and nobody else is slowed down.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::TestServer;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn slow_reader_is_dropped_with_4100_others_keep_receiving() {
    let s = TestServer::start(|c| {
        c.outbox_max_messages = 50;
        c.outbox_max_bytes = 256 * 1024;
        c.apps[0].max_event_data_bytes = 64 * 1024;
    })
    .await;
    let mut slow = s.client().await;
    slow.subscribe("firehose").await;
    let mut fast = s.client().await;
    fast.subscribe("firehose").await;

    // The slow client never reads; its socket buffers fill, then its outbox overflows.
    let payload = "x".repeat(64 * 1024);
    let mut received = 0;
    for _ in 0..400 {
        assert_eq!(s.http().trigger("firehose", "e", &payload).await.0, 200);
        while let common::Next::Event(_) = fast.next_within(Duration::from_millis(1)).await {
            received += 1;
        }
        if s.ctx.hub.stats().outbox_overflows > 0 {
            break;
        }
    }
    assert!(s.ctx.hub.stats().outbox_overflows >= 1);
    // The fast client gets everything that was published.
    let published = s.ctx.hub.stats().events_published as usize;
    while received < published {
        fast.recv().await;
        received += 1;
    }
    // The slow one, once it reads, finds the 4100 close after what it had buffered.
    assert_eq!(slow.expect_close().await, Some(4100));
    s.stop().await;
}

/// Small frames go to the socket one `send` each while it takes them; once it is full, the frame it
/// took only part of and those queued behind it follow when the client reads again, whole and in
/// order.
#[tokio::test]
async fn small_frames_split_by_a_full_socket_arrive_whole_and_in_order() {
    const EVENTS: usize = 16000;
    let s = TestServer::start(|c| {
        c.outbox_max_messages = EVENTS;
        c.outbox_max_bytes = 64 << 20;
    })
    .await;
    let mut reader = s.client().await;
    reader.subscribe("stream").await;
    // Payload lengths vary so that the socket fills at different offsets of a frame.
    let data = |n: usize| format!("{n:06}{}", "y".repeat(300 + n % 181));
    let rest = s.http();
    for first in (0..EVENTS).step_by(10) {
        let batch: Vec<_> =
            (first..first + 10).map(|n| json!({"channel": "stream", "name": "e", "data": data(n)})).collect();
        assert_eq!(rest.post("/batch_events", json!({ "batch": batch })).await.0, 200);
    }
    // The client has not read: the socket stopped taking whole frames before the end.
    let sent_whole = s.ctx.hub.stats().messages_out;
    assert!(sent_whole < EVENTS as u64, "every frame went out at once ({sent_whole}); the socket never filled");
    for n in 0..EVENTS {
        let ev = reader.recv().await;
        assert_eq!((ev["event"].as_str(), ev["data"].as_str()), (Some("e"), Some(data(n).as_str())), "event {n}");
    }
    s.stop().await;
}
