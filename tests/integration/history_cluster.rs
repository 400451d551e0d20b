//! Channel history in a cluster, on every topology (a Redis server, a Redis Cluster, NATS with
//! state in Redis): positions count cluster-wide whichever node an event was published on, every
//! subscriber sees them in offset order, and a client that reconnects to another node resumes
//! there exactly; client events are positioned too; a backend reads the history from any node;
//! a channel whose position Redis lost starts a new epoch. And a client whose node was killed
//! (SIGKILL) resumes on the other one; a node cut off from Redis still delivers its own events to
//! its clients (without positions) and says it cannot answer a resume or a read.

use crate::cluster_support::proxy::Partition;
use crate::cluster_support::servers::{OwnRedis, wait_until};
use crate::cluster_support::{Backend, Topology, on_every_topology, stop_all};
use crate::common::{Client, Next, TestServer};
use crate::history::{resume, until};
use crate::process_support::SinewProcess;
use serde_json::{Value, json};
use std::time::Duration;

async fn nodes(backend: &Backend, size: usize) -> Vec<TestServer> {
    let mut out = Vec::new();
    for _ in 0..2 {
        out.push(
            backend
                .node(|c| {
                    c.apps[0].history_channels = vec!["history-".into(), "private-".into()];
                    c.apps[0].history_size = size;
                })
                .await,
        );
    }
    out
}

fn offset(v: &Value) -> u64 {
    v["sinew_position"]["offset"].as_u64().unwrap_or_else(|| panic!("no position: {v}"))
}

async fn a_client_resumes_on_another_node(t: Topology) {
    let backend = Backend::start(t).await;
    let nodes = nodes(&backend, 1000).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut watcher = a.client().await;
    watcher.subscribe("history-feed").await;
    let mut cut = a.client().await;
    cut.subscribe("history-feed").await;
    assert_eq!(b.http().trigger("history-feed", "update", "0").await.0, 200);
    let seen = cut.recv().await;
    let epoch = seen["sinew_position"]["epoch"].clone();
    assert_eq!(offset(&seen), 1, "{seen}");
    drop(cut);
    let mut expected = vec![watcher.recv().await];
    for i in 1..=200 {
        // Published on both nodes in turn: one count for the cluster.
        let node = if i % 2 == 0 { a } else { b };
        assert_eq!(node.http().trigger("history-feed", "update", &i.to_string()).await.0, 200);
    }
    for _ in 1..=200 {
        expected.push(watcher.recv().await);
    }
    let offsets: Vec<u64> = expected.iter().map(offset).collect();
    assert_eq!(offsets, (1..=201).collect::<Vec<u64>>(), "one count, delivered in its order");
    let data: Vec<&str> = expected.iter().map(|e| e["data"].as_str().unwrap_or_default()).collect();
    let published: Vec<String> = (0..=200).map(|i| i.to_string()).collect();
    assert_eq!(data, published, "a publisher waiting for each answer sees its order, whichever node it used");
    assert!(expected.iter().all(|e| e["sinew_position"]["epoch"] == epoch));

    let mut back = b.client().await;
    back.subscribe("history-feed").await;
    resume(&mut back, "history-feed", &epoch, 1).await;
    let (replayed, done) = until(&mut back, "sinew:resumed").await;
    assert_eq!(replayed, expected[1..], "every missed event, as first delivered, in order");
    assert_eq!(done["data"], json!({"epoch": epoch, "offset": 201, "replayed": 200}));
    assert_eq!(a.http().trigger("history-feed", "update", "after").await.0, 200);
    assert_eq!(offset(&back.recv().await), 202);

    // What a backend reads, from either node.
    let (status, page) = a.http().get("/channels/history-feed/history", &[("since", "199"), ("limit", "5")]).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!((&page["epoch"], &page["first"], &page["last"]), (&epoch, &json!(1), &json!(202)));
    let data: Vec<&Value> = page["events"].as_array().unwrap().iter().map(|e| &e["data"]).collect();
    assert_eq!(data, [&json!("199"), &json!("200"), &json!("after")]);
    stop_all(nodes).await;
    backend.cleanup().await;
}

async fn client_events_are_positioned_across_nodes(t: Topology) {
    let backend = Backend::start(t).await;
    let nodes = nodes(&backend, 100).await;
    let mut x = nodes[0].client().await;
    let mut y = nodes[1].client().await;
    x.subscribe_private("private-room").await;
    y.subscribe_private("private-room").await;
    x.send(json!({"event": "client-typing", "channel": "private-room", "data": {"who": "x"}})).await;
    let got = y.recv().await;
    assert_eq!((&got["event"], &got["data"], offset(&got)), (&json!("client-typing"), &json!({"who": "x"}), 1));
    y.send(json!({"event": "client-typing", "channel": "private-room", "data": {"who": "y"}})).await;
    assert_eq!(offset(&x.recv().await), 2, "one count for both nodes");
    assert!(matches!(x.next_within(Duration::from_millis(200)).await, Next::Nothing), "the sender is left out");
    let mut z = nodes[0].client().await;
    z.subscribe_private("private-room").await;
    resume(&mut z, "private-room", &got["sinew_position"]["epoch"], 0).await;
    let (replayed, _) = until(&mut z, "sinew:resumed").await;
    assert_eq!(replayed.len(), 2);
    assert_eq!(replayed[0], got);
    stop_all(nodes).await;
    backend.cleanup().await;
}

async fn a_position_redis_lost_starts_a_new_epoch(t: Topology) {
    let backend = Backend::start(t).await;
    let nodes = nodes(&backend, 100).await;
    let mut c = nodes[0].client().await;
    c.subscribe("history-x").await;
    assert_eq!(nodes[1].http().trigger("history-x", "e", "1").await.0, 200);
    let old = c.recv().await["sinew_position"]["epoch"].clone();
    let lost: Vec<String> = backend.keys().await.into_iter().filter(|k| k.contains("history-x")).collect();
    assert_eq!(lost.len(), 2, "{lost:?}");
    let mut pipe = redis::pipe();
    for k in &lost {
        pipe.cmd("DEL").arg(k);
    }
    backend.run(&pipe).await;
    assert_eq!(nodes[1].http().trigger("history-x", "e", "2").await.0, 200);
    let v = c.recv().await;
    assert_ne!(v["sinew_position"]["epoch"], old);
    assert_eq!(offset(&v), 1);
    resume(&mut c, "history-x", &old, 1).await;
    let failed = until(&mut c, "sinew:resume_failed").await.1;
    assert_eq!(failed["data"]["reason"], "epoch_changed", "{failed}");
    stop_all(nodes).await;
    backend.cleanup().await;
}

/// From Redis, the same answers as on one node: a gap longer than what is kept is `too_old`, a
/// gap within it is replayed.
#[tokio::test]
async fn a_gap_longer_than_what_redis_keeps_is_too_old() {
    let backend = Backend::start(Topology::Standalone).await;
    let nodes = nodes(&backend, 5).await;
    let mut c = nodes[0].client().await;
    c.subscribe("history-short").await;
    for i in 1..=10 {
        assert_eq!(nodes[1].http().trigger("history-short", "e", &i.to_string()).await.0, 200);
    }
    let mut epoch = Value::Null;
    for _ in 1..=10 {
        epoch = c.recv().await["sinew_position"]["epoch"].clone();
    }
    resume(&mut c, "history-short", &epoch, 4).await;
    let failed = until(&mut c, "sinew:resume_failed").await.1;
    assert_eq!(failed["data"], json!({"reason": "too_old", "epoch": epoch, "offset": 10}));
    resume(&mut c, "history-short", &epoch, 5).await;
    let (replayed, done) = until(&mut c, "sinew:resumed").await;
    assert_eq!(replayed.iter().map(offset).collect::<Vec<_>>(), [6, 7, 8, 9, 10]);
    assert_eq!(done["data"]["replayed"], 5);
    let (status, page) = nodes[1].http().get("/channels/history-short/history", &[("limit", "2")]).await;
    assert_eq!((status, &page["first"], page["events"].as_array().map(Vec::len)), (200, &json!(6), Some(2)));
    stop_all(nodes).await;
    backend.cleanup().await;
}

/// The node a client was on is killed; the events published meanwhile on the other node are
/// all replayed to the client there.
#[tokio::test]
async fn a_client_of_a_killed_node_resumes_on_another() {
    let backend = Backend::start(Topology::Standalone).await;
    let survivor = nodes(&backend, 1000).await.remove(0);
    let mut env = backend.env();
    env.push(("SINEW_APP_HISTORY_CHANNELS", "history-".into()));
    env.push(("SINEW_APP_HISTORY_SIZE", "1000".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let doomed = SinewProcess::spawn(&env).await;
    let ready = format!("http://{}/ready", doomed.addr);
    wait_until("the process to join", async || reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200)).await;
    let mut victim = Client::established(doomed.addr).await;
    victim.subscribe("history-kill").await;
    assert_eq!(survivor.http().trigger("history-kill", "e", "0").await.0, 200);
    let seen = victim.recv().await;
    doomed.signal("KILL").await;
    for i in 1..=200 {
        assert_eq!(survivor.http().trigger("history-kill", "e", &i.to_string()).await.0, 200);
    }
    let mut back = survivor.client().await;
    back.subscribe("history-kill").await;
    resume(&mut back, "history-kill", &seen["sinew_position"]["epoch"], offset(&seen)).await;
    let (replayed, done) = until(&mut back, "sinew:resumed").await;
    let data: Vec<String> = replayed.iter().map(|e| e["data"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(data, (1..=200).map(|i| i.to_string()).collect::<Vec<_>>());
    assert_eq!(done["data"]["replayed"], 200);
    survivor.stop().await;
    backend.cleanup().await;
}

#[tokio::test]
async fn a_node_cut_off_from_redis_delivers_without_positions_and_says_it_cannot_resume() {
    let redis = OwnRedis::start().await;
    let link = Partition::start(redis.addr()).await;
    let backend = Backend::start(Topology::Standalone).await;
    let via_link = format!("redis://{}", link.addr);
    let node = backend
        .node(move |c| {
            c.redis_url = via_link;
            c.apps[0].history_channels = vec!["history-".into()];
        })
        .await;
    let mut c = node.client().await;
    c.subscribe("history-cut").await;
    assert_eq!(node.http().trigger("history-cut", "e", "1").await.0, 200);
    let before = c.recv().await;
    assert_eq!(offset(&before), 1);

    link.cut();
    assert_eq!(node.http().trigger("history-cut", "e", "2").await.0, 200);
    let during = c.recv().await;
    assert_eq!(during, json!({"event": "e", "channel": "history-cut", "data": "2"}), "delivered here, unpositioned");
    resume(&mut c, "history-cut", &before["sinew_position"]["epoch"], 1).await;
    let failed = until(&mut c, "sinew:resume_failed").await.1;
    assert_eq!(failed["data"]["reason"], "unavailable", "{failed}");
    assert_eq!(node.http().get("/channels/history-cut/history", &[]).await.0, 503);

    link.heal();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        assert_eq!(node.http().trigger("history-cut", "e", "3").await.0, 200);
        let v = c.recv().await;
        if v.get("sinew_position").is_some() {
            assert_eq!(v["sinew_position"]["epoch"], before["sinew_position"]["epoch"], "Redis kept the history");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "positions came back after healing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    node.stop().await;
}

on_every_topology!(
    a_client_resumes_on_another_node,
    client_events_are_positioned_across_nodes,
    a_position_redis_lost_starts_a_new_epoch
);
