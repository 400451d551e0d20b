//! Webhooks and handover in a cluster, on every topology: one webhook per cluster transition, a
//! quick return on another node cancels the departure, a graceful stop hands members over.

use crate::cluster_support::{Backend, Topology, on_every_topology, stop_all};
use crate::common::data;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use sinew::config::{Config, WebhookTarget};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Hooks(Arc<Mutex<Vec<Value>>>);

impl Hooks {
    async fn start(&self) -> String {
        async fn hook(State(h): State<Hooks>, body: Bytes) -> &'static str {
            let v: Value = serde_json::from_slice(&body).unwrap();
            h.0.lock().unwrap().extend(v["events"].as_array().unwrap().iter().cloned());
            "ok"
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/hook", post(hook)).with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}/hook")
    }

    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {} {}",
                    e["name"].as_str().unwrap(),
                    e["channel"].as_str().unwrap(),
                    e["user_id"].as_str().unwrap_or("")
                )
                .trim()
                .to_string()
            })
            .collect();
        v.sort();
        v
    }
}

fn hooked(url: &str) -> impl FnOnce(&mut Config) + use<> {
    let url = url.to_string();
    move |c: &mut Config| {
        c.apps[0].webhooks = vec![WebhookTarget { url, event_types: vec![], channel_prefix: None }];
        c.webhooks.leave_delay_ms = 0;
        c.webhooks.batch_window_ms = 10;
    }
}

async fn webhooks_fire_once_per_cluster_transition(t: Topology) {
    let backend = Backend::start(t).await;
    let hooks = Hooks::default();
    let url = hooks.start().await;
    let a = backend.node(hooked(&url)).await;
    let b = backend.node(hooked(&url)).await;
    let mut x = a.client().await;
    let mut y = b.client().await;
    x.subscribe_presence("presence-team", r#"{"user_id":"u1"}"#).await;
    y.subscribe_presence("presence-team", r#"{"user_id":"u1"}"#).await;
    let mut z = b.client().await;
    z.subscribe_presence("presence-team", r#"{"user_id":"u2"}"#).await;
    drop(x);
    drop(z);
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(y);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        hooks.names(),
        vec![
            "channel_occupied presence-team",
            "channel_vacated presence-team",
            "member_added presence-team u1",
            "member_added presence-team u2",
            "member_removed presence-team u1",
            "member_removed presence-team u2",
        ]
    );
    stop_all(vec![a, b]).await;
    backend.cleanup().await;
}

async fn a_quick_return_on_another_node_cancels_the_departure_webhooks(t: Topology) {
    let backend = Backend::start(t).await;
    let hooks = Hooks::default();
    let url = hooks.start().await;
    let delayed = |url: &str| {
        let hooked = hooked(url);
        move |c: &mut Config| {
            hooked(c);
            c.webhooks.leave_delay_ms = 1000;
        }
    };
    let a = backend.node(delayed(&url)).await;
    let b = backend.node(delayed(&url)).await;
    let mut x = a.client().await;
    x.subscribe_presence("presence-hop", r#"{"user_id":"u1"}"#).await;
    // u1 leaves node A and is back on node B well within the leave delay.
    drop(x);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut y = b.client().await;
    y.subscribe_presence("presence-hop", r#"{"user_id":"u1"}"#).await;
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(hooks.names(), vec!["channel_occupied presence-hop", "member_added presence-hop u1"]);
    // A real departure is reported once the delay has passed.
    drop(y);
    for _ in 0..100 {
        if hooks.names().len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        hooks.names(),
        vec![
            "channel_occupied presence-hop",
            "channel_vacated presence-hop",
            "member_added presence-hop u1",
            "member_removed presence-hop u1",
        ]
    );
    stop_all(vec![a, b]).await;
    backend.cleanup().await;
}

async fn graceful_stop_hands_members_over_without_flapping(t: Topology) {
    let backend = Backend::start(t).await;
    let hooks = Hooks::default();
    let url = hooks.start().await;
    let a = backend.node(hooked(&url)).await;
    let b = backend.node(hooked(&url)).await;
    let mut watcher = b.client().await;
    watcher.subscribe_presence("presence-lobby", r#"{"user_id":"watcher"}"#).await;
    let mut mover = a.client().await;
    mover.subscribe_presence("presence-lobby", r#"{"user_id":"mover"}"#).await;
    assert_eq!(watcher.recv().await["event"], "pusher_internal:member_added");
    let mut leaver = a.client().await;
    leaver.subscribe_presence("presence-lobby", r#"{"user_id":"leaver"}"#).await;
    assert_eq!(watcher.recv().await["event"], "pusher_internal:member_added");

    // Node A stops: its clients get 4200; "mover" reconnects to B at once, "leaver" does not.
    a.stop().await;
    assert_eq!(mover.expect_close().await, Some(4200));
    let mut moved = b.client().await;
    let ok = moved.subscribe_presence("presence-lobby", r#"{"user_id":"mover"}"#).await;
    assert_eq!(data(&ok)["presence"]["count"], 3, "the handed-over members are still present");
    // After the handover period the node is swept: only "leaver" is removed.
    let removed = watcher.recv_event("pusher_internal:member_removed").await;
    assert_eq!(data(&removed), json!({"user_id":"leaver"}));
    watcher.expect_silence().await;
    let (_, users) = b.http().get("/channels/presence-lobby/users", &[]).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2);
    let names = hooks.names();
    assert_eq!(names.iter().filter(|n| n.contains("mover")).count(), 1, "{names:?}");
    assert!(names.contains(&"member_removed presence-lobby leaver".to_string()), "{names:?}");
    b.stop().await;
    backend.cleanup().await;
}

on_every_topology!(
    webhooks_fire_once_per_cluster_transition,
    a_quick_return_on_another_node_cancels_the_departure_webhooks,
    graceful_stop_hands_members_over_without_flapping,
);
