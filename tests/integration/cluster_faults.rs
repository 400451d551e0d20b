//! Faults on real servers of the test's own: a Redis paused (SIGSTOP) longer than the node timeout,
//! a presence join while Redis is unreachable, a node cut off from Redis by a partition, a Redis
//! Cluster shard's primary killed (SIGKILL) with its replica promoted, NATS restarted, and, on every
//! topology, a node killed (SIGKILL). (The Sentinel failover is in `cluster_topologies`.)

use crate::cluster_support::proxy::Partition;
use crate::cluster_support::servers::{OwnNats, OwnRedis, RedisCluster, wait_until};
use crate::cluster_support::{Backend, Topology, on_every_topology, publish_until_received, stop_all};
use crate::common::{Client, Next, TestServer, data};
use crate::process_support::SinewProcess;
use serde_json::json;
use std::time::{Duration, Instant};

async fn own_node(backend: &Backend, redis: &OwnRedis) -> crate::common::TestServer {
    let url = redis.url.clone();
    backend.node(move |c| c.redis_url = url).await
}

#[tokio::test]
async fn a_redis_pause_longer_than_the_node_timeout_sweeps_nobody() {
    let redis = OwnRedis::start().await;
    let backend = Backend::start(Topology::Standalone).await;
    let a = own_node(&backend, &redis).await;
    let b = own_node(&backend, &redis).await;
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
    let backend = Backend::start(Topology::Standalone).await;
    let a = own_node(&backend, &redis).await;
    let b = own_node(&backend, &redis).await;
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
    // …and then gets the whole member list: the other node's member was not swept meanwhile.
    let mut again = a.client().await;
    let ok = again.subscribe_presence("presence-outage", r#"{"user_id":"late"}"#).await;
    assert_eq!(data(&ok)["presence"]["count"], 2, "{ok}");
    stop_all(vec![a, b]).await;
}

async fn ready(s: &TestServer) -> u16 {
    reqwest::get(format!("http://{}/ready", s.addr)).await.map_or(0, |r| r.status().as_u16())
}

async fn user_ids(s: &TestServer, channel: &str) -> Vec<String> {
    let (_, users) = s.http().get(&format!("/channels/{channel}/users"), &[]).await;
    let mut ids: Vec<String> = users["users"]
        .as_array()
        .map(|u| u.iter().filter_map(|u| u["id"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_node_cut_off_from_redis_serves_its_clients_and_catches_up_when_it_heals() {
    let redis = OwnRedis::start().await;
    let link = Partition::start(redis.addr()).await;
    let backend = Backend::start(Topology::Standalone).await;
    let via_link = format!("redis://{}", link.addr);
    let a = backend.node(move |c| c.redis_url = via_link).await;
    let b = own_node(&backend, &redis).await;
    let mut on_a = a.client().await;
    on_a.subscribe("news").await;
    on_a.subscribe_presence("presence-cut", r#"{"user_id":"ann"}"#).await;
    let mut on_b = b.client().await;
    on_b.subscribe("news").await;
    on_b.subscribe_presence("presence-cut", r#"{"user_id":"bob"}"#).await;
    assert_eq!(on_a.recv_event("pusher_internal:member_added").await["data"], json!({"user_id":"bob"}).to_string());
    assert_eq!(publish_until_received(&b.http(), &mut on_a, "news").await, 1);
    assert_eq!(publish_until_received(&a.http(), &mut on_b, "news").await, 1);
    assert_eq!(on_a.recv_event("tick").await["data"], "1", "a node's own clients get its events");

    // Node A loses Redis: it says it is not ready, and goes on serving its own clients.
    link.cut();
    wait_until("node A to report itself not ready", async || ready(&a).await == 503).await;
    assert_eq!(ready(&b).await, 200);
    let (status, _) = a.http().trigger("news", "local", "1").await;
    assert_eq!(status, 200);
    assert_eq!(on_a.recv_event("local").await["data"], "1");
    let mut late = a.client().await;
    late.subscribe("news").await;
    // Past the node timeout node B cannot tell A from a dead node and sweeps it.
    let removed = on_b.recv_event("pusher_internal:member_removed").await;
    assert_eq!(data(&removed), json!({"user_id":"ann"}));

    // Healed: A is ready again, writes its state back, and events cross both ways again.
    link.heal();
    wait_until("node A to be ready again", async || ready(&a).await == 200).await;
    let added = on_b.recv_event("pusher_internal:member_added").await;
    assert_eq!(data(&added), json!({"user_id":"ann"}));
    wait_until("both members listed on B", async || user_ids(&b, "presence-cut").await == ["ann", "bob"]).await;
    publish_until_received(&b.http(), &mut late, "news").await;
    publish_until_received(&a.http(), &mut on_b, "news").await;
    stop_all(vec![a, b]).await;
}

/// A channel whose topic lives on the shard that holds the cluster state, so one primary's death
/// hits both.
async fn channel_on_state_shard(cluster: &RedisCluster, prefix: &str) -> String {
    let state = cluster.primary_of(cluster.slot(&format!("{{{prefix}}}")).await).await;
    for i in 0.. {
        let channel = format!("failover-{i}");
        if cluster.primary_of(cluster.slot(&format!("{prefix}:ch:1:{channel}")).await).await == state {
            return channel;
        }
    }
    unreachable!()
}

#[tokio::test]
async fn a_redis_cluster_shard_failover_is_followed_without_a_restart() {
    let backend = Backend::on_cluster(RedisCluster::start(3, 1).await);
    let (a, b) = (backend.node(|_| {}).await, backend.node(|_| {}).await);
    let Some(cluster) = &backend.cluster else { unreachable!() };
    let channel = channel_on_state_shard(cluster, &backend.prefix).await;
    let mut watcher = b.client().await;
    watcher.subscribe(&channel).await;
    let mut member = a.client().await;
    member.subscribe_presence("presence-failover", r#"{"user_id":"ada"}"#).await;
    assert_eq!(publish_until_received(&a.http(), &mut watcher, &channel).await, 1);

    let slot = cluster.slot(&format!("{{{}}}", backend.prefix)).await;
    let old = cluster.primary_of(slot).await.unwrap();
    let mut backend = backend;
    let Some(cluster) = backend.cluster.as_mut() else { unreachable!() };
    cluster.kill(old);
    wait_until("a replica to take the slot over", async || cluster.primary_of(slot).await.is_some_and(|p| p != old))
        .await;
    let promoted = Instant::now();

    publish_until_received(&a.http(), &mut watcher, &channel).await;
    let mut back = a.client().await;
    back.subscribe("failover-back").await;
    publish_until_received(&b.http(), &mut back, "failover-back").await;
    assert!(promoted.elapsed() < Duration::from_secs(10), "delivery back {:?} after the promotion", promoted.elapsed());
    wait_until("the member still listed", async || user_ids(&b, "presence-failover").await == ["ada"]).await;
    // Nobody is left behind: the member's departure is recorded on the new primary.
    drop(member);
    wait_until("the member gone", async || user_ids(&b, "presence-failover").await.is_empty()).await;
    stop_all(vec![a, b]).await;
}

#[tokio::test]
async fn a_nats_restart_is_followed_within_five_seconds() {
    let mut nats = OwnNats::start().await;
    let backend = Backend::start(Topology::Nats).await;
    let url = nats.url();
    let (a, b) = (backend.node(|c| c.nats_url = url.clone()).await, backend.node(|c| c.nats_url = url.clone()).await);
    let mut watcher = b.client().await;
    watcher.subscribe("nats-news").await;
    assert_eq!(publish_until_received(&a.http(), &mut watcher, "nats-news").await, 1);

    nats.kill();
    wait_until("the nodes to report the bus down", async || ready(&a).await == 503 && ready(&b).await == 503).await;
    nats.restart().await;
    let restarted = Instant::now();
    publish_until_received(&a.http(), &mut watcher, "nats-news").await;
    assert!(restarted.elapsed() < Duration::from_secs(5), "delivery back {:?} after the restart", restarted.elapsed());
    wait_until("both nodes ready", async || ready(&a).await == 200 && ready(&b).await == 200).await;
    // A channel first subscribed after the restart works too.
    let mut fresh = a.client().await;
    fresh.subscribe("nats-after").await;
    publish_until_received(&b.http(), &mut fresh, "nats-after").await;
    let ev = watcher.next_within(Duration::from_millis(100)).await;
    assert!(!matches!(ev, Next::Closed(_)), "the watcher's socket stayed open");
    stop_all(vec![a, b]).await;
    backend.cleanup().await;
}

/// A `sinew` process configured by the environment contract alone joins the cluster, and once it
/// is killed its presence member is swept: nobody is left behind.
async fn a_killed_node_leaves_no_member_behind(t: Topology) {
    let backend = Backend::start(t).await;
    let a = backend.node(|_| {}).await;
    let env = backend.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let doomed = SinewProcess::spawn(&env).await;
    let status = format!("http://{}/ready", doomed.addr);
    wait_until("the process to join", async || reqwest::get(&status).await.is_ok_and(|r| r.status() == 200)).await;
    let mut watcher = a.client().await;
    watcher.subscribe_presence("presence-kill", r#"{"user_id":"watcher"}"#).await;
    let mut victim = Client::established(doomed.addr).await;
    victim.subscribe_presence("presence-kill", r#"{"user_id":"victim"}"#).await;
    victim.subscribe("kill-news").await;
    assert_eq!(data(&watcher.recv_event("pusher_internal:member_added").await), json!({"user_id":"victim"}));
    publish_until_received(&a.http(), &mut victim, "kill-news").await;

    doomed.signal("KILL").await;
    let killed = Instant::now();
    wait_until("the killed node's member swept", async || user_ids(&a, "presence-kill").await == ["watcher"]).await;
    eprintln!("swept {:?} after the kill", killed.elapsed());
    let removed = watcher.recv_event("pusher_internal:member_removed").await;
    assert_eq!(data(&removed), json!({"user_id":"victim"}));
    let (_, info) = a.http().get("/channels/kill-news", &[]).await;
    assert_eq!(info, json!({"occupied":false}));
    stop_all(vec![a]).await;
    backend.cleanup().await;
}

on_every_topology!(a_killed_node_leaves_no_member_behind);
