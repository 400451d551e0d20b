//! Several Sinew nodes on one cluster bus behave as one server: delivery, socket exclusion,
//! presence, counts, channel lists, cache channels, terminate, webhooks and handover. Each test runs
//! on every topology (see [`crate::cluster_support`]): standalone Redis, a Redis Cluster of its own,
//! and NATS with state in Redis.

use crate::common;
use crate::fallback_support;

use crate::cluster_support::{Backend, Topology, on_every_topology, stop_all};
use crate::common::{Client, KEY, data};
use serde_json::{Value, json};
use std::time::Duration;

async fn rest_events_reach_every_node_once_and_socket_exclusion_works_across_nodes(t: Topology) {
    let backend = Backend::start(t).await;
    let n = backend.nodes(3).await;
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
    backend.cleanup().await;
}

async fn presence_members_counts_and_users_are_cluster_wide(t: Topology) {
    let backend = Backend::start(t).await;
    let n = backend.nodes(3).await;
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
    backend.cleanup().await;
}

/// Joins that overlap across nodes: a member event that reaches a node while one of its joins
/// waits for Redis is held back until after that join's `subscription_succeeded`, and dropped when
/// the member list it got already says the same. Every member ends with the whole list, each
/// member once.
async fn overlapping_presence_joins_give_every_member_one_complete_view(t: Topology) {
    const USERS: usize = 12;
    const CHANNEL: &str = "presence-overlap";
    let backend = Backend::start(t).await;
    let n = backend.nodes(2).await;
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
    backend.cleanup().await;
}

async fn presence_member_limit_is_cluster_wide(t: Topology) {
    let backend = Backend::start(t).await;
    let a = backend.node(|c| c.apps[0].max_presence_members = 1).await;
    let b = backend.node(|c| c.apps[0].max_presence_members = 1).await;
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
    backend.cleanup().await;
}

async fn client_events_cross_nodes_and_skip_the_sender(t: Topology) {
    let backend = Backend::start(t).await;
    let n = backend.nodes(2).await;
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
    backend.cleanup().await;
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

async fn channel_lists_and_subscription_counts_are_cluster_wide(t: Topology) {
    let backend = Backend::start(t).await;
    let a = backend.node(|c| c.apps[0].subscription_count = true).await;
    let b = backend.node(|c| c.apps[0].subscription_count = true).await;
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
    backend.cleanup().await;
}

async fn cache_channels_share_their_last_event(t: Topology) {
    let backend = Backend::start(t).await;
    let n = backend.nodes(2).await;
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
    backend.cleanup().await;
}

async fn terminate_and_send_to_user_reach_every_node(t: Topology) {
    let backend = Backend::start(t).await;
    let n = backend.nodes(2).await;
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
    backend.cleanup().await;
}

async fn http_fallback_sessions_take_part_in_the_cluster(t: Topology) {
    let backend = Backend::start(t).await;
    let a = backend.node(fallback_support::fast).await;
    let b = backend.node(fallback_support::fast).await;
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
    backend.cleanup().await;
}

async fn adapter_state_shows_in_ready_usage_and_metrics(t: Topology) {
    let backend = Backend::start(t).await;
    let a = backend.node(|_| {}).await;
    let b = backend.node(|_| {}).await;
    let mut c = b.client().await;
    c.subscribe("m").await;
    a.http().trigger("m", "e", "1").await;
    c.recv().await;
    let ready: Value = reqwest::get(format!("http://{}/ready", a.addr)).await.unwrap().json().await.unwrap();
    assert_eq!(ready, json!({"ready":true,"adapter":"connected"}));
    let usage: Value = reqwest::get(format!("http://{}/usage", b.addr)).await.unwrap().json().await.unwrap();
    assert_eq!(usage["adapter"]["kind"], if t == Topology::Nats { "nats" } else { "redis" });
    assert!(usage["adapter"]["received"].as_u64().unwrap() >= 1);
    let text = reqwest::get(format!("http://{}/metrics", a.metrics_addr.unwrap())).await.unwrap().text().await.unwrap();
    let value =
        |name: &str| -> f64 { text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(-1.0) };
    assert_eq!(value("sinew_adapter_connected "), 1.0);
    assert!(value("sinew_adapter_publishes_total ") >= 1.0, "{text}");
    stop_all(vec![a, b]).await;
    backend.cleanup().await;
}

async fn the_last_node_to_stop_leaves_no_state_behind(t: Topology) {
    let backend = Backend::start(t).await;
    let a = backend.node(|c| c.cluster_handover_seconds = 60).await;
    let b = backend.node(|c| c.cluster_handover_seconds = 60).await;
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
    assert_eq!(backend.keys().await, Vec::<String>::new());
    backend.cleanup().await;
}

async fn sweeping_a_dead_node_updates_counts_of_channels_it_shared(t: Topology) {
    let backend = Backend::start(t).await;
    let a = backend.node(|c| c.apps[0].subscription_count = true).await;
    let mut c = a.client().await;
    c.subscribe("room").await;
    count_reaches(&mut c, 1).await;
    // A node that died holding two subscriptions of the same channel (its deadline long past).
    let p = backend.key_prefix();
    let mut pipe = redis::pipe();
    pipe.cmd("HINCRBY").arg(format!("{p}:app:1:subs")).arg("room").arg(2).ignore();
    pipe.cmd("HSET").arg(format!("{p}:node:4242:subs")).arg("1\nroom").arg(2).ignore();
    pipe.cmd("ZADD").arg(format!("{p}:nodes")).arg(1).arg(4242).ignore();
    backend.run(&pipe).await;
    let (_, info) = a.http().get("/channels/room", &[("info", "subscription_count")]).await;
    assert_eq!(info["subscription_count"], 3);
    // Swept once node A has been healthy for a node timeout: the survivor learns the new count.
    count_reaches(&mut c, 1).await;
    let (_, info) = a.http().get("/channels/room", &[("info", "subscription_count")]).await;
    assert_eq!(info["subscription_count"], 1);
    stop_all(vec![a]).await;
    backend.cleanup().await;
}

on_every_topology!(
    rest_events_reach_every_node_once_and_socket_exclusion_works_across_nodes,
    presence_members_counts_and_users_are_cluster_wide,
    overlapping_presence_joins_give_every_member_one_complete_view,
    presence_member_limit_is_cluster_wide,
    client_events_cross_nodes_and_skip_the_sender,
    channel_lists_and_subscription_counts_are_cluster_wide,
    cache_channels_share_their_last_event,
    terminate_and_send_to_user_reach_every_node,
    http_fallback_sessions_take_part_in_the_cluster,
    adapter_state_shows_in_ready_usage_and_metrics,
    the_last_node_to_stop_leaves_no_state_behind,
    sweeping_a_dead_node_updates_counts_of_channels_it_shared,
);
