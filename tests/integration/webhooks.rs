//! Webhooks against a real HTTP receiver: transitions fire once, leave delays cancel on a quick
//! rejoin, failures are retried, what cannot be delivered is dead-lettered and replayed.

use crate::common::{SECRET, TestServer};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use sinew::config::{Config, WebhookTarget};
use sinew::protocol::signature;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Receiver {
    bodies: Arc<Mutex<Vec<Value>>>,
    /// Answer 500 to this many requests first.
    fail_first: Arc<AtomicUsize>,
    attempts: Arc<AtomicUsize>,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.attempts.fetch_add(1, Ordering::SeqCst);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-pusher-key"], "app-key");
    let sig = headers["x-pusher-signature"].to_str().unwrap();
    assert!(signature::verify_hex(SECRET, &body, sig), "signature must cover the raw body");
    if r.fail_first.load(Ordering::SeqCst) > 0 {
        r.fail_first.fetch_sub(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    r.bodies.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
    StatusCode::OK
}

impl Receiver {
    async fn start_on(self, addr: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/hook", post(hook)).with_state(self);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (addr, task)
    }

    /// Every event received so far, in order, as (name, channel, user_id).
    fn events(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().iter().flat_map(|b| b["events"].as_array().unwrap().clone()).collect()
    }

    fn names(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| {
                format!("{} {}", e["name"].as_str().unwrap(), e["user_id"].as_str().unwrap_or("")).trim().to_string()
            })
            .collect()
    }

    async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            if self.events().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.events()
    }
}

fn hooked(url: String, tweak: impl FnOnce(&mut Config)) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.apps[0].webhooks = vec![WebhookTarget { url, event_types: vec![], channel_prefix: None }];
        c.webhooks.leave_delay_ms = 300;
        c.webhooks.batch_window_ms = 20;
        c.webhooks.initial_backoff_ms = 50;
        c.webhooks.max_backoff_ms = 200;
        c.webhooks.dead_letter_file =
            std::env::temp_dir().join(format!("sinew-dl-{}.jsonl", rand::random::<u64>())).display().to_string();
        tweak(c);
    }
}

async fn setup(tweak: impl FnOnce(&mut Config)) -> (TestServer, Receiver) {
    let r = Receiver::default();
    let (addr, _) = r.clone().start_on("127.0.0.1:0".parse().unwrap()).await;
    let s = TestServer::start(hooked(format!("http://{addr}/hook"), tweak)).await;
    (s, r)
}

#[tokio::test]
async fn occupied_and_vacated_fire_once_with_the_pusher_body_format() {
    let (s, r) = setup(|_| {}).await;
    let mut a = s.client().await;
    a.subscribe("news").await;
    let mut b = s.client().await;
    b.subscribe("news").await;
    drop(a);
    drop(b);
    let events = r.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.names(), vec!["channel_occupied", "channel_vacated"]);
    assert_eq!(events[0], json!({"name":"channel_occupied","channel":"news"}));
    let time_ms = r.bodies.lock().unwrap()[0]["time_ms"].as_u64().unwrap();
    assert!(time_ms > 1_600_000_000_000);
    s.stop().await;
}

#[tokio::test]
async fn quick_rejoin_cancels_vacated_and_occupied() {
    let (s, r) = setup(|_| {}).await;
    let mut a = s.client().await;
    a.subscribe("page-1").await;
    r.wait_for(1).await;
    a.send(json!({"event":"pusher:unsubscribe","data":{"channel":"page-1"}})).await;
    let mut again = s.client().await;
    again.subscribe("page-1").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(r.names(), vec!["channel_occupied"], "a reload produces neither vacated nor a second occupied");
    s.stop().await;
}

#[tokio::test]
async fn presence_members_once_per_user_and_removal_delayed() {
    let (s, r) = setup(|_| {}).await;
    let mut a1 = s.client().await;
    a1.subscribe_presence("presence-room", r#"{"user_id":"alice"}"#).await;
    let mut a2 = s.client().await;
    a2.subscribe_presence("presence-room", r#"{"user_id":"alice"}"#).await;
    let mut b = s.client().await;
    b.subscribe_presence("presence-room", r#"{"user_id":7}"#).await;
    r.wait_for(3).await;
    drop(a1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(a2);
    // Removal waits for the leave delay.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(r.names(), vec!["channel_occupied", "member_added alice", "member_added 7"]);
    r.wait_for(4).await;
    assert_eq!(r.names(), vec!["channel_occupied", "member_added alice", "member_added 7", "member_removed alice"]);
    s.stop().await;
}

#[tokio::test]
async fn client_events_and_cache_misses() {
    let (s, r) = setup(|_| {}).await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe_presence("presence-chat", r#"{"user_id":"u1"}"#).await;
    b.subscribe_presence("presence-chat", r#"{"user_id":"u2"}"#).await;
    a.send(json!({"event":"client-typing","channel":"presence-chat","data":{"on":true}})).await;
    b.recv_event("client-typing").await;
    let mut c = s.client().await;
    c.subscribe("cache-x").await;
    let mut d = s.client().await;
    d.subscribe("cache-x").await;
    let events = r.wait_for(6).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ce = events.iter().find(|e| e["name"] == "client_event").unwrap();
    assert_eq!(
        ce,
        &json!({"name":"client_event","channel":"presence-chat","event":"client-typing","data":"{\"on\":true}","socket_id":a.socket_id,"user_id":"u1"})
    );
    let misses = r.events().iter().filter(|e| e["name"] == "cache_miss").count();
    assert_eq!(misses, 1, "cache misses are de-duplicated per channel");
    s.stop().await;
}

#[tokio::test]
async fn filters_by_event_type_and_channel_prefix() {
    let r = Receiver::default();
    let (addr, _) = r.clone().start_on("127.0.0.1:0".parse().unwrap()).await;
    let url = format!("http://{addr}/hook");
    let s = TestServer::start(hooked(url.clone(), move |c| {
        c.apps[0].webhooks = vec![WebhookTarget {
            url,
            event_types: vec!["channel_occupied".into()],
            channel_prefix: Some("private-".into()),
        }];
    }))
    .await;
    let mut a = s.client().await;
    a.subscribe("public-one").await;
    a.subscribe_private("private-one").await;
    drop(a);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(r.events(), vec![json!({"name":"channel_occupied","channel":"private-one"})]);
    s.stop().await;
}

#[tokio::test]
async fn failures_are_retried_until_delivered_once() {
    let (s, r) = setup(|_| {}).await;
    r.fail_first.store(3, Ordering::SeqCst);
    let mut a = s.client().await;
    a.subscribe("retry-me").await;
    let events = r.wait_for(1).await;
    assert_eq!(events, vec![json!({"name":"channel_occupied","channel":"retry-me"})]);
    assert_eq!(r.attempts.load(Ordering::SeqCst), 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.events().len(), 1, "delivered exactly once");
    let (_, usage) = s.http().raw("GET", "/usage", "").await;
    assert_eq!(usage["webhooks"]["retried"], 3);
    assert_eq!(usage["webhooks"]["sent"], 1);
    s.stop().await;
}

#[tokio::test]
async fn receiver_down_then_back_loses_nothing() {
    // Reserve a port, close it, start Sinew pointing there; bring the receiver up later.
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let s = TestServer::start(hooked(format!("http://{addr}/hook"), |_| {})).await;
    let mut a = s.client().await;
    for ch in ["d1", "d2", "d3"] {
        a.subscribe(ch).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = Receiver::default();
    let (_, _task) = r.clone().start_on(addr).await;
    let events = r.wait_for(3).await;
    let mut channels: Vec<_> = events.iter().map(|e| e["channel"].as_str().unwrap().to_string()).collect();
    channels.sort();
    assert_eq!(channels, vec!["d1", "d2", "d3"]);
    s.stop().await;
}

#[tokio::test]
async fn undeliverable_batches_are_dead_lettered_then_replayed() {
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let url = format!("http://{addr}/hook");
    let s = TestServer::start(hooked(url, |c| c.webhooks.retry_window_seconds = 1)).await;
    let file = s.ctx.config.webhooks.dead_letter_file.clone();
    let mut a = s.client().await;
    a.subscribe("lost").await;
    let mut text = String::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = std::fs::read_to_string(&file).unwrap_or_default();
        if !text.is_empty() {
            break;
        }
    }
    let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["events"], json!([{"name":"channel_occupied","channel":"lost"}]));
    assert_eq!(line["app_id"], "1");
    assert!(line["reason"].as_str().unwrap().contains("request failed"), "{line}");
    let (_, usage) = s.http().raw("GET", "/usage", "").await;
    assert_eq!(usage["webhooks"]["dead_lettered"], 1);
    let config = (*s.ctx.config).clone();
    s.stop().await;

    // Shutdown could not deliver the vacated event either: it joined the file.
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[1]["events"], json!([{"name":"channel_vacated","channel":"lost"}]));

    // The receiver comes back: replay delivers each line once and empties the file.
    let r = Receiver::default();
    let (_, _task) = r.clone().start_on(addr).await;
    let summary = sinew::webhooks::replay(&config, std::path::Path::new(&file)).await.unwrap();
    assert_eq!((summary.delivered, summary.remaining), (2, 0));
    assert_eq!(r.names(), vec!["channel_occupied", "channel_vacated"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap_or_default(), "", "nothing remains to replay");
}

#[tokio::test]
async fn shutdown_flushes_delayed_events() {
    let (s, r) = setup(|c| c.webhooks.leave_delay_ms = 60_000).await;
    let mut a = s.client().await;
    a.subscribe("bye").await;
    r.wait_for(1).await;
    s.stop().await;
    assert_eq!(r.names(), vec!["channel_occupied", "channel_vacated"], "the vacated delay is cut short on shutdown");
}
