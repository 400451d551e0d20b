//! A client that stops reading is disconnected with 4100 and nobody else is slowed down.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::TestServer;
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
