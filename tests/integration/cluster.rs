//! Several Sinew nodes on one Redis (`adapter = "redis"`) behave as one server: delivery, socket
//! exclusion, presence, counts, channel lists, cache channels, terminate, webhooks and handover.
//! Needs a Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`); every test uses its own prefix.

use crate::common;
use crate::fallback_support;

use crate::common::{Client, KEY, TestServer, data};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use sinew::config::{Config, WebhookTarget};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A fresh key prefix for one test.
fn prefix() -> String {
    format!("sinew-test-{}", rand::random::<u64>())
}

async fn node(prefix: &str, tweak: impl FnOnce(&mut Config)) -> TestServer {
    let prefix = prefix.to_string();
    let s = TestServer::start(move |c| {
        c.adapter = "redis".into();
        c.redis_url = redis_url();
        c.redis_prefix = prefix;
        c.cluster_node_timeout_seconds = 3;
        c.cluster_handover_seconds = 2;
        c.apps[0].subscription_count = false;
        tweak(c);
    })
    .await;
    for _ in 0..100 {
        if s.ctx.is_ready() {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node did not connect to Redis at {}", redis_url());
}

async fn nodes(prefix: &str, n: usize) -> Vec<TestServer> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(node(prefix, |_| {}).await);
    }
    out
}

/// Deletes every key of a test's prefix.
async fn cleanup(prefix: &str) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut conn).await.unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
    }
}

async fn stop_all(nodes: Vec<TestServer>) {
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test]
async fn rest_events_reach_every_node_once_and_socket_exclusion_works_across_nodes() {
    let p = prefix();
    let n = nodes(&p, 3).await;
    let mut clients: Vec<Client> = Vec::new();
    for s in &n {
        let mut c = s.client().await;
        c.subscribe("news").await;
        clients.push(c);
    }
    let mut other_on_b = n[1].client().await;
    other_on_b.subscribe("news").await;
    let excluded = clients[1].socket_id.clone();
    let (status, _) = n[0]
        .http()
        .post("/events", json!({"name":"created","channel":"news","data":"{\"id\":1}","socket_id":excluded}))
        .await;
    assert_eq!(status, 200);
    for i in [0, 2] {
        assert_eq!(clients[i].recv().await, json!({"event":"created","channel":"news","data":"{\"id\":1}"}));
    }
    assert_eq!(other_on_b.recv().await["event"], "created");
    clients[1].expect_silence().await;
    for c in clients.iter_mut() {
        c.expect_silence().await; // exactly once
    }
    // One REST call for several channels is delivered on each of them.
    let mut d = n[2].client().await;
    d.subscribe("sports").await;
    n[1].http().post("/events", json!({"name":"multi","channels":["news","sports"],"data":"x"})).await;
    assert_eq!(d.recv().await["channel"], "sports");
    assert_eq!(clients[0].recv().await["channel"], "news");
    stop_all(n).await;
    cleanup(&p).await;
}

#[tokio::test]
async fn presence_members_counts_and_users_are_cluster_wide() {
    let p = prefix();
    let n = nodes(&p, 3).await;
    let mut alice = n[0].client().await;
    let ok = alice.subscribe_presence("presence-room", r#"{"user_id":"alice","user_info":{"name":"A"}}"#).await;
    assert_eq!(data(&ok)["presence"]["count"], 1);

    let mut bob = n[1].client().await;
    let ok = bob.subscribe_presence("presence-room", r#"{"user_id":"bob"}"#).await;
    let presence = &data(&ok)["presence"];
    assert_eq!(presence["count"], 2);
    assert_eq!(presence["hash"]["alice"], json!({"name":"A"}));
    let added = alice.recv().await;
    assert_eq!(added["event"], "pusher_internal:member_added");
    assert_eq!(data(&added), json!({"user_id":"bob"}));

    // Alice's second socket, on a third node: no member_added for anyone.
    let mut alice2 = n[2].client().await;
    let ok = alice2.subscribe_presence("presence-room", r#"{"user_id":"alice","user_info":{"name":"A"}}"#).await;
    assert_eq!(data(&ok)["presence"]["count"], 2);
    bob.expect_silence().await;
    alice.expect_silence().await;

    for s in &n {
        let (_, users) = s.http().get("/channels/presence-room/users", &[]).await;
        let mut ids: Vec<&str> = users["users"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect();
        ids.sort();
        assert_eq!(ids, vec!["alice", "bob"]);
        let (_, info) = s.http().get("/channels/presence-room", &[("info", "user_count,subscription_count")]).await;
        assert_eq!(info, json!({"occupied":true,"user_count":2,"subscription_count":3}));
    }

    // Alice leaves one socket: nothing. Leaves the last one: member_removed once, on every node.
    drop(alice);
    bob.expect_silence().await;
    alice2.send(json!({"event":"pusher:unsubscribe","data":{"channel":"presence-room"}})).await;
    let removed = bob.recv().await;
    assert_eq!(removed["event"], "pusher_internal:member_removed");
    assert_eq!(data(&removed), json!({"user_id":"alice"}));
    bob.expect_silence().await;
    let (_, info) = n[2].http().get("/channels/presence-room", &[("info", "user_count")]).await;
    assert_eq!(info["user_count"], 1);
    stop_all(n).await;
    cleanup(&p).await;
}

/// Joins that overlap across nodes: a member event that reaches a node while one of its joins
/// waits for Redis is held back until after that join's `subscription_succeeded`, and dropped when
/// the member list it got already says the same. Every member ends with the whole list, each
/// member once.
#[tokio::test]
async fn overlapping_presence_joins_give_every_member_one_complete_view() {
    const USERS: usize = 12;
    const CHANNEL: &str = "presence-overlap";
    let p = prefix();
    let n = nodes(&p, 2).await;
    let mut clients = Vec::new();
    for i in 0..USERS {
        clients.push(n[i % 2].client().await);
    }
    // Every subscribe is sent before any answer is read.
    for (i, c) in clients.iter_mut().enumerate() {
        let channel_data = format!(r#"{{"user_id":"u{i}"}}"#);
        let auth = common::auth_presence(&c.socket_id, CHANNEL, &channel_data);
        c.send(json!({"event":"pusher:subscribe","data":{"auth":auth,"channel":CHANNEL,"channel_data":channel_data}}))
            .await;
    }
    let everyone: std::collections::BTreeSet<String> = (0..USERS).map(|i| format!("u{i}")).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let mut view: Option<std::collections::BTreeSet<String>> = None;
        while view.as_ref() != Some(&everyone) {
            let ev = c.recv().await;
            match ev["event"].as_str() {
                Some("pusher_internal:subscription_succeeded") => {
                    assert!(view.is_none(), "client {i}: a second subscription_succeeded");
                    let ids = data(&ev)["presence"]["ids"].as_array().cloned().unwrap_or_default();
                    view = Some(ids.iter().filter_map(|id| id.as_str().map(str::to_string)).collect());
                }
                Some("pusher_internal:member_added") => {
                    let Some(view) = view.as_mut() else {
                        panic!("client {i}: member_added before subscription_succeeded: {ev}");
                    };
                    let user = data(&ev)["user_id"].as_str().unwrap_or_default().to_string();
                    assert!(view.insert(user.clone()), "client {i}: member_added for {user}, already listed");
                }
                _ => panic!("client {i}: unexpected {ev}"),
            }
        }
        c.expect_silence().await;
    }
    stop_all(n).await;
    cleanup(&p).await;
}

#[tokio::test]
async fn presence_member_limit_is_cluster_wide() {
    let p = prefix();
    let a = node(&p, |c| c.apps[0].max_presence_members = 1).await;
    let b = node(&p, |c| c.apps[0].max_presence_members = 1).await;
    let mut x = a.client().await;
    x.subscribe_presence("presence-full", r#"{"user_id":"x"}"#).await;
    let mut y = b.client().await;
    let auth = common::auth_presence(&y.socket_id, "presence-full", r#"{"user_id":"y"}"#);
    y.send(json!({"event":"pusher:subscribe","data":{"auth":auth,"channel":"presence-full","channel_data":"{\"user_id\":\"y\"}"}}))
        .await;
    let err = y.recv().await;
    assert_eq!(err["event"], "pusher:subscription_error");
    assert_eq!(err["data"]["status"], 403);
    x.expect_silence().await;
    stop_all(vec![a, b]).await;
    cleanup(&p).await;
}

#[tokio::test]
async fn client_events_cross_nodes_and_skip_the_sender() {
    let p = prefix();
    let n = nodes(&p, 2).await;
    let mut a = n[0].client().await;
    let mut b = n[1].client().await;
    a.subscribe_private("private-chat").await;
    b.subscribe_private("private-chat").await;
    a.send(json!({"event":"client-typing","channel":"private-chat","data":{"who":"a"}})).await;
    let got = b.recv().await;
    assert_eq!(got["event"], "client-typing");
    assert_eq!(got["data"], json!({"who":"a"}));
    a.expect_silence().await;
    stop_all(n).await;
    cleanup(&p).await;
}

/// Waits for a `subscription_count` of `n` (a count decided just before this subscriber joined may
/// arrive first).
async fn count_reaches(c: &mut Client, n: u64) {
    loop {
        let ev = c.recv_event("pusher_internal:subscription_count").await;
        if data(&ev)["subscription_count"] == n {
            return;
        }
    }
}

#[tokio::test]
async fn channel_lists_and_subscription_counts_are_cluster_wide() {
    let p = prefix();
    let a = node(&p, |c| c.apps[0].subscription_count = true).await;
    let b = node(&p, |c| c.apps[0].subscription_count = true).await;
    let mut c1 = a.client().await;
    c1.subscribe("room-1").await;
    assert_eq!(data(&c1.recv_event("pusher_internal:subscription_count").await)["subscription_count"], 1);
    let mut c2 = b.client().await;
    c2.subscribe("room-1").await;
    // Both subscribers, on both nodes, learn the cluster-wide count.
    count_reaches(&mut c1, 2).await;
    count_reaches(&mut c2, 2).await;
    let mut c3 = b.client().await;
    c3.subscribe("other-2").await;
    for s in [&a, &b] {
        let (_, list) = s.http().get("/channels", &[("info", "subscription_count")]).await;
        assert_eq!(list, json!({"channels":{"room-1":{"subscription_count":2},"other-2":{"subscription_count":1}}}));
        let (_, list) = s.http().get("/channels", &[("filter_by_prefix", "room-")]).await;
        assert_eq!(list, json!({"channels":{"room-1":{}}}));
    }
    drop(c2);
    assert_eq!(data(&c1.recv_event("pusher_internal:subscription_count").await)["subscription_count"], 1);
    let (_, info) = a.http().get("/channels/room-1", &[("info", "subscription_count")]).await;
    assert_eq!(info, json!({"occupied":true,"subscription_count":1}));
    drop(c3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, info) = a.http().get("/channels/other-2", &[]).await;
    assert_eq!(info, json!({"occupied":false}));
    stop_all(vec![a, b]).await;
    cleanup(&p).await;
}

#[tokio::test]
async fn cache_channels_share_their_last_event() {
    let p = prefix();
    let n = nodes(&p, 2).await;
    n[0].http().trigger("cache-prices", "tick", "42").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = n[1].client().await;
    c.subscribe("cache-prices").await;
    assert_eq!(c.recv().await, json!({"event":"tick","channel":"cache-prices","data":"42"}));
    let (_, info) = n[1].http().get("/channels/cache-prices", &[("info", "cache")]).await;
    assert_eq!(info["cache"]["event"], "tick");
    assert_eq!(info["cache"]["data"], "42");
    let mut miss = n[0].client().await;
    miss.subscribe("cache-empty").await;
    assert_eq!(miss.recv().await["event"], "pusher:cache_miss");
    stop_all(n).await;
    cleanup(&p).await;
}

#[tokio::test]
async fn terminate_and_send_to_user_reach_every_node() {
    let p = prefix();
    let n = nodes(&p, 2).await;
    let mut u = n[1].client().await;
    assert_eq!(u.sign_in(r#"{"id":"carol"}"#).await["event"], "pusher:signin_success");
    u.subscribe("#server-to-user-carol").await;
    n[0].http().trigger("#server-to-user-carol", "hello", "hi").await;
    assert_eq!(u.recv().await["event"], "hello");
    let (status, _) = n[0].http().post("/users/carol/terminate_connections", json!({})).await;
    assert_eq!(status, 200);
    let err = u.recv().await;
    assert_eq!(err["event"], "pusher:error");
    assert_eq!(err["data"]["code"], 4009);
    assert_eq!(u.expect_close().await, Some(4009));
    stop_all(n).await;
    cleanup(&p).await;
}

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

#[tokio::test]
async fn webhooks_fire_once_per_cluster_transition() {
    let p = prefix();
    let hooks = Hooks::default();
    let url = hooks.start().await;
    let a = node(&p, hooked(&url)).await;
    let b = node(&p, hooked(&url)).await;
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
    cleanup(&p).await;
}

#[tokio::test]
async fn a_quick_return_on_another_node_cancels_the_departure_webhooks() {
    let p = prefix();
    let hooks = Hooks::default();
    let url = hooks.start().await;
    let delayed = |url: &str| {
        let hooked = hooked(url);
        move |c: &mut Config| {
            hooked(c);
            c.webhooks.leave_delay_ms = 1000;
        }
    };
    let a = node(&p, delayed(&url)).await;
    let b = node(&p, delayed(&url)).await;
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
    cleanup(&p).await;
}

#[tokio::test]
async fn graceful_stop_hands_members_over_without_flapping() {
    let p = prefix();
    let hooks = Hooks::default();
    let url = hooks.start().await;
    let a = node(&p, hooked(&url)).await;
    let b = node(&p, hooked(&url)).await;
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
    cleanup(&p).await;
}

#[tokio::test]
async fn http_fallback_sessions_take_part_in_the_cluster() {
    let p = prefix();
    let a = node(&p, fallback_support::fast).await;
    let b = node(&p, fallback_support::fast).await;
    // A streaming session on node A (the load balancer keeps a session's requests on one node).
    let session = "9/clustera";
    let mut r = fallback_support::Receiver::open(&a, KEY, session, "xhr_streaming").await;
    let sid = r.established(true).await;
    let data_json = r#"{"user_id":"streamer"}"#;
    let auth = common::auth_presence(&sid, "presence-mixed", data_json);
    fallback_support::send_msgs(&a, session, &[fallback_support::subscribe("news")]).await;
    r.event("pusher_internal:subscription_succeeded").await;
    let subscribe_presence =
        json!({"event":"pusher:subscribe","data":{"auth":auth,"channel":"presence-mixed","channel_data":data_json}});
    fallback_support::send_msgs(&a, session, &[subscribe_presence]).await;
    r.event("pusher_internal:subscription_succeeded").await;
    // A WebSocket client on node B sees the fallback member and is seen by it.
    let mut ws = b.client().await;
    let ok = ws.subscribe_presence("presence-mixed", r#"{"user_id":"socket"}"#).await;
    assert_eq!(data(&ok)["presence"]["count"], 2);
    assert_eq!(data(&r.event("pusher_internal:member_added").await)["user_id"], "socket");
    // Published on node B, delivered to the session on node A.
    b.http().trigger("news", "tick", "1").await;
    assert_eq!(r.event("tick").await["data"], "1");
    // A request for the session reaching the wrong node is refused, never silently dropped.
    assert_eq!(fallback_support::send(&b, KEY, session, "[]").await, 404);
    stop_all(vec![a, b]).await;
    cleanup(&p).await;
}

#[tokio::test]
async fn adapter_state_shows_in_ready_usage_and_metrics() {
    let p = prefix();
    let a = node(&p, |_| {}).await;
    let b = node(&p, |_| {}).await;
    let mut c = b.client().await;
    c.subscribe("m").await;
    a.http().trigger("m", "e", "1").await;
    c.recv().await;
    let ready: Value = reqwest::get(format!("http://{}/ready", a.addr)).await.unwrap().json().await.unwrap();
    assert_eq!(ready, json!({"ready":true,"adapter":"connected"}));
    let usage: Value = reqwest::get(format!("http://{}/usage", b.addr)).await.unwrap().json().await.unwrap();
    assert_eq!(usage["adapter"]["kind"], "redis");
    assert!(usage["adapter"]["received"].as_u64().unwrap() >= 1);
    let text = reqwest::get(format!("http://{}/metrics", a.metrics_addr.unwrap())).await.unwrap().text().await.unwrap();
    let value =
        |name: &str| -> f64 { text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(-1.0) };
    assert_eq!(value("sinew_adapter_connected "), 1.0);
    assert!(value("sinew_adapter_publishes_total ") >= 1.0, "{text}");
    stop_all(vec![a, b]).await;
    cleanup(&p).await;
}

async fn keys_of(prefix: &str) -> Vec<String> {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut conn).await.unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn the_last_node_to_stop_leaves_no_state_behind() {
    let p = prefix();
    let a = node(&p, |c| c.cluster_handover_seconds = 60).await;
    let b = node(&p, |c| c.cluster_handover_seconds = 60).await;
    let mut x = a.client().await;
    x.subscribe_presence("presence-end", r#"{"user_id":"x"}"#).await;
    let mut y = b.client().await;
    y.subscribe_presence("presence-end", r#"{"user_id":"y"}"#).await;
    y.subscribe("plain").await;
    // A stops while B runs: A's member is handed over (kept for the long handover period).
    a.stop().await;
    let (_, users) = b.http().get("/channels/presence-end/users", &[]).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2);
    // B is the last node: nobody is left to take clients over, so everything is removed now.
    b.stop().await;
    assert_eq!(keys_of(&p).await, Vec::<String>::new());
    cleanup(&p).await;
}

/// A `redis-server` of one test's own, on a free port, without persistence; killed on drop.
struct OwnRedis {
    child: std::process::Child,
    url: String,
}

impl OwnRedis {
    async fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        // Owned at once, so the process is killed and reaped on every path.
        let own = OwnRedis { child, url: format!("redis://127.0.0.1:{port}") };
        let client = redis::Client::open(own.url.as_str()).unwrap();
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok()
            {
                return own;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {port} did not start");
    }

    /// Sends a signal (`STOP`, `CONT`) to the server process.
    fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_redis_pause_longer_than_the_node_timeout_sweeps_nobody() {
    let redis = OwnRedis::start().await;
    let p = prefix();
    let on_own = |c: &mut Config| c.redis_url = redis.url.clone();
    let a = node(&p, on_own).await;
    let b = node(&p, on_own).await;
    let mut watcher = a.client().await;
    watcher.subscribe_presence("presence-steady", r#"{"user_id":"watcher"}"#).await;
    let mut member = b.client().await;
    member.subscribe_presence("presence-steady", r#"{"user_id":"member"}"#).await;
    assert_eq!(watcher.recv().await["event"], "pusher_internal:member_added");

    // Redis stops answering for longer than the node timeout (3 s) but keeps its data: every
    // node's deadline passes, yet no node died.
    redis.signal("STOP");
    tokio::time::sleep(Duration::from_secs(5)).await;
    redis.signal("CONT");
    for s in [&a, &b] {
        for _ in 0..200 {
            if s.ctx.is_ready() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(s.ctx.is_ready(), "node ready again after the pause");
    }
    // Longer than a node timeout of heartbeats: nobody is swept, nobody leaves.
    tokio::time::sleep(Duration::from_secs(4)).await;
    watcher.expect_silence().await;
    member.expect_silence().await;
    let (_, users) = a.http().get("/channels/presence-steady/users", &[]).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2);
    stop_all(vec![a, b]).await;
}

#[tokio::test]
async fn a_presence_join_while_redis_is_unreachable_is_asked_to_reconnect_once_it_is_back() {
    let redis = OwnRedis::start().await;
    let p = prefix();
    let on_own = |c: &mut Config| c.redis_url = redis.url.clone();
    let a = node(&p, on_own).await;
    let b = node(&p, on_own).await;
    let mut remote = b.client().await;
    remote.subscribe_presence("presence-outage", r#"{"user_id":"remote"}"#).await;

    redis.signal("STOP");
    // Served from what node A knows: only itself.
    let mut late = a.client().await;
    let ok = late.subscribe_presence("presence-outage", r#"{"user_id":"late"}"#).await;
    assert_eq!(data(&ok)["presence"]["count"], 1);
    redis.signal("CONT");
    // Once node A's state is back in Redis, the client is told to reconnect (pusher-js does at once)…
    loop {
        let ev = late.recv().await;
        if ev["event"] == "pusher:error" {
            assert_eq!(ev["data"]["code"], 4200);
            break;
        }
    }
    assert_eq!(late.expect_close().await, Some(4200));
    // …and then gets the whole member list.
    let mut again = a.client().await;
    let ok = again.subscribe_presence("presence-outage", r#"{"user_id":"late"}"#).await;
    assert_eq!(data(&ok)["presence"]["count"], 2);
    stop_all(vec![a, b]).await;
}

#[tokio::test]
async fn sweeping_a_dead_node_updates_counts_of_channels_it_shared() {
    let p = prefix();
    let a = node(&p, |c| c.apps[0].subscription_count = true).await;
    let mut c = a.client().await;
    c.subscribe("room").await;
    count_reaches(&mut c, 1).await;
    // A node that died holding two subscriptions of the same channel (its deadline long past).
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::pipe()
        .cmd("HINCRBY")
        .arg(format!("{p}:app:1:subs"))
        .arg("room")
        .arg(2)
        .ignore()
        .cmd("HSET")
        .arg(format!("{p}:node:4242:subs"))
        .arg("1\nroom")
        .arg(2)
        .ignore()
        .cmd("ZADD")
        .arg(format!("{p}:nodes"))
        .arg(1)
        .arg(4242)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let (_, info) = a.http().get("/channels/room", &[("info", "subscription_count")]).await;
    assert_eq!(info["subscription_count"], 3);
    // Swept once node A has been healthy for a node timeout: the survivor learns the new count.
    count_reaches(&mut c, 1).await;
    let (_, info) = a.http().get("/channels/room", &[("info", "subscription_count")]).await;
    assert_eq!(info["subscription_count"], 1);
    stop_all(vec![a]).await;
    cleanup(&p).await;
}
