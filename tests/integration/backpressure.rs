//! A client that stops reading is disconnected with 4100 and nobody else is slowed down.

use crate::common;

use crate::common::TestServer;
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

/// Small frames go to the socket one `send` each while it takes them whole; once it is full, the
/// frame it took only part of and those queued behind it follow when the client reads again, whole,
/// in order and counted once.
#[tokio::test]
async fn small_frames_split_by_a_full_socket_arrive_whole_and_in_order() {
    const BATCH: usize = 10;
    const MAX_EVENTS: usize = 40_000;
    let s = TestServer::start(|c| {
        c.outbox_max_messages = MAX_EVENTS;
        c.outbox_max_bytes = 64 << 20;
    })
    .await;
    let mut reader = s.client().await;
    reader.subscribe("stream").await;
    // Lone frames go out with one `send`, queued ones in a vectored write; lengths vary (headers of
    // 4 bytes, texts around 300 to 460 bytes) so that the socket fills at different offsets of a frame.
    let data = |n: usize| format!("{n:06}{}", "y".repeat(280 + n % 161));
    let before = s.ctx.hub.stats();
    let rest = s.http();
    let (mut published, mut held_back_at) = (0, None);
    // The client does not read: publish until the socket holds frames back, then a little more.
    while held_back_at.is_none_or(|at| published < at + 20 * BATCH) {
        assert!(published < MAX_EVENTS, "the socket took {published} frames without the client reading");
        let batch: Vec<_> = (published..published + BATCH)
            .map(|n| json!({"channel": "stream", "name": "e", "data": data(n)}))
            .collect();
        assert_eq!(rest.post("/batch_events", json!({ "batch": batch })).await.0, 200);
        published += BATCH;
        let sent_whole = s.ctx.hub.stats().messages_out - before.messages_out;
        if held_back_at.is_none() && sent_whole < published as u64 {
            held_back_at = Some(published);
        }
    }
    let mut payload_bytes = 0;
    for n in 0..published {
        let ev = reader.recv().await;
        let expected = format!(r#"{{"event":"e","channel":"stream","data":"{}"}}"#, data(n));
        payload_bytes += expected.len() as u64;
        assert_eq!((ev["event"].as_str(), ev["data"].as_str()), (Some("e"), Some(data(n).as_str())), "event {n}");
    }
    let after = s.ctx.hub.stats();
    assert_eq!(after.messages_out - before.messages_out, published as u64);
    assert_eq!(after.bytes_out - before.bytes_out, payload_bytes);
    s.stop().await;
}
