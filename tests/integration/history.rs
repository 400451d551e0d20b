//! Channel history and resume on one node: events on a channel the app keeps history for carry
//! `sinew_position`, other channels' do not; a socket subscribed again gets, after `sinew:resume`,
//! every event it missed exactly as first delivered and then `sinew:resumed`; a lost epoch, a gap
//! longer than the history, a channel without history and a channel the socket is not subscribed
//! to get their answers.

use crate::common::{Client, Next, TestServer};
use serde_json::{Value, json};
use std::time::Duration;

async fn server(size: usize) -> TestServer {
    TestServer::start(|c| {
        c.apps[0].history_channels = vec!["history-".into(), "private-".into()];
        c.apps[0].history_size = size;
    })
    .await
}

/// Reads until an event named `name` arrives; the events before it that are not pusher's own.
pub async fn until(c: &mut Client, name: &str) -> (Vec<Value>, Value) {
    let mut before = Vec::new();
    loop {
        let v = c.recv().await;
        if v["event"] == name {
            return (before, v);
        }
        if !v["event"].as_str().is_some_and(|e| e.starts_with("pusher")) {
            before.push(v);
        }
    }
}

pub async fn resume(c: &mut Client, channel: &str, epoch: &Value, offset: u64) {
    c.send(json!({"event": "sinew:resume", "channel": channel, "data": {"epoch": epoch, "offset": offset}})).await;
}

#[tokio::test]
async fn positions_are_on_history_channels_only() {
    let s = server(100).await;
    let mut c = s.client().await;
    c.subscribe("history-a").await;
    c.subscribe("plain").await;
    let rest = s.http();
    for (channel, i) in [("history-a", "1"), ("plain", "1"), ("history-a", "2")] {
        assert_eq!(rest.trigger(channel, "e", i).await.0, 200);
    }
    let first = c.recv().await;
    assert_eq!(first["sinew_position"]["offset"], 1, "{first}");
    assert!(first["sinew_position"]["epoch"].as_str().is_some_and(|e| e.len() == 8));
    let plain = c.recv().await;
    assert_eq!(plain, json!({"event": "e", "channel": "plain", "data": "1"}), "no position without history");
    let second = c.recv().await;
    assert_eq!(second["sinew_position"]["offset"], 2);
    assert_eq!(second["sinew_position"]["epoch"], first["sinew_position"]["epoch"]);
    s.stop().await;
}

#[tokio::test]
async fn a_socket_subscribed_again_gets_every_missed_event_once_in_order() {
    let s = server(1000).await;
    let rest = s.http();
    let mut watcher = s.client().await;
    watcher.subscribe("history-feed").await;
    let mut cut = s.client().await;
    cut.subscribe("history-feed").await;
    assert_eq!(rest.trigger("history-feed", "update", "0").await.0, 200);
    let seen = cut.recv().await;
    let (epoch, offset) = (seen["sinew_position"]["epoch"].clone(), seen["sinew_position"]["offset"].as_u64().unwrap());
    drop(cut);
    let mut expected = vec![watcher.recv().await];
    for i in 1..=200 {
        assert_eq!(rest.trigger("history-feed", "update", &i.to_string()).await.0, 200);
    }
    for _ in 1..=200 {
        expected.push(watcher.recv().await);
    }

    let mut back = s.client().await;
    back.subscribe("history-feed").await;
    resume(&mut back, "history-feed", &epoch, offset).await;
    let (replayed, done) = until(&mut back, "sinew:resumed").await;
    assert_eq!(replayed, expected[1..], "every missed event, as first delivered, in order");
    assert_eq!(done["channel"], "history-feed");
    assert_eq!(done["data"], json!({"epoch": epoch, "offset": 201, "replayed": 200}));
    // Live events go on after the answer.
    assert_eq!(rest.trigger("history-feed", "update", "after").await.0, 200);
    assert_eq!(back.recv().await["sinew_position"]["offset"], 202);
    s.stop().await;
}

#[tokio::test]
async fn client_events_get_positions_and_are_replayed_with_their_user() {
    let s = server(100).await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe_private("private-room").await;
    b.subscribe_private("private-room").await;
    a.send(json!({"event": "client-typing", "channel": "private-room", "data": {"who": "a"}})).await;
    let got = b.recv().await;
    assert_eq!(got["event"], "client-typing");
    assert_eq!(got["data"], json!({"who": "a"}));
    assert_eq!(got["sinew_position"]["offset"], 1);
    let mut c = s.client().await;
    c.subscribe_private("private-room").await;
    resume(&mut c, "private-room", &got["sinew_position"]["epoch"], 0).await;
    let (replayed, _) = until(&mut c, "sinew:resumed").await;
    assert_eq!(replayed, vec![got]);
    s.stop().await;
}

#[tokio::test]
async fn resumes_that_cannot_be_answered_say_why() {
    let s = server(50).await;
    let rest = s.http();
    let mut c = s.client().await;
    c.subscribe("history-b").await;
    c.subscribe("plain").await;
    for i in 0..60 {
        assert_eq!(rest.trigger("history-b", "e", &i.to_string()).await.0, 200);
    }
    let mut epoch = Value::Null;
    for _ in 0..60 {
        epoch = c.recv().await["sinew_position"]["epoch"].clone();
    }
    let failed = |v: &Value| v["data"]["reason"].as_str().map(str::to_string);

    resume(&mut c, "history-b", &epoch, 5).await;
    let v = until(&mut c, "sinew:resume_failed").await.1;
    assert_eq!(failed(&v).as_deref(), Some("too_old"), "60 events, 50 kept: 6 to 10 are gone");
    assert_eq!(v["data"]["offset"], 60);
    resume(&mut c, "history-b", &json!("someother"), 59).await;
    assert_eq!(failed(&until(&mut c, "sinew:resume_failed").await.1).as_deref(), Some("epoch_changed"));
    resume(&mut c, "plain", &epoch, 1).await;
    assert_eq!(failed(&until(&mut c, "sinew:resume_failed").await.1).as_deref(), Some("history_off"));
    resume(&mut c, "history-elsewhere", &epoch, 1).await;
    let e = until(&mut c, "pusher:error").await.1;
    assert!(e["data"]["message"].as_str().is_some_and(|m| m.contains("not subscribed")), "{e}");
    c.send(json!({"event": "sinew:resume", "channel": "history-b", "data": {"offset": "x"}})).await;
    assert_eq!(until(&mut c, "pusher:error").await.1["event"], "pusher:error");
    // The socket is still open and served.
    resume(&mut c, "history-b", &epoch, 60).await;
    let v = until(&mut c, "sinew:resumed").await.1;
    assert_eq!(v["data"]["replayed"], 0);
    assert!(matches!(c.next_within(Duration::from_millis(200)).await, Next::Nothing));
    s.stop().await;
}

#[tokio::test]
async fn a_backend_reads_the_history_signed_and_paged() {
    let s = server(100).await;
    let rest = s.http();
    for i in 1..=5 {
        assert_eq!(rest.trigger("history-log", "e", &i.to_string()).await.0, 200);
    }
    let (status, page) = rest.get("/channels/history-log/history", &[("since", "2"), ("limit", "2")]).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!((page["first"].clone(), page["last"].clone()), (json!(1), json!(5)));
    let offsets: Vec<&Value> = page["events"].as_array().unwrap().iter().map(|e| &e["offset"]).collect();
    assert_eq!(offsets, [&json!(3), &json!(4)]);
    assert_eq!(page["events"][0]["data"], "3");
    assert!(page["events"][0].get("sinew_position").is_none());
    assert_eq!(rest.get("/channels/plain/history", &[]).await.0, 400, "no history there");
    assert_eq!(rest.get("/channels/history-log/history", &[("limit", "0")]).await.0, 400);
    let unsigned = reqwest::get(format!("http://{}/apps/1/channels/history-log/history", s.addr)).await.unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    s.stop().await;
}
