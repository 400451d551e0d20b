//! What the cluster tests run on: one [`Backend`] per test, of a [`Topology`], and the nodes on it.
//!
//! - `Standalone`: the Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`), under a fresh prefix.
//! - `RedisCluster`: a Redis Cluster of three primaries of the test's own (see [`servers`]).
//! - `Nats`: channel traffic on the NATS at `NATS_URL` (default `nats://127.0.0.1:4222`), state in
//!   the Redis at `REDIS_URL`, under a fresh prefix (which also names the NATS subjects).
//!
//! [`on_every_topology!`] turns test functions taking a `Topology` into one `#[tokio::test]` per
//! topology, so one suite runs on each of them.

pub mod proxy;
pub mod servers;

use crate::common::{Client, Next, Rest, TestServer};
use servers::{RedisCluster, wait_until};
use sinew::config::Config;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Standalone,
    RedisCluster,
    Nats,
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "redis://127.0.0.1:6379".into())
}

pub fn nats_url() -> String {
    std::env::var("NATS_URL").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "nats://127.0.0.1:4222".into())
}

/// A fresh key prefix for one test.
pub fn prefix() -> String {
    format!("sinew-test-{}", rand::random::<u64>())
}

/// The Redis (and NATS) one test's nodes share.
pub struct Backend {
    pub topology: Topology,
    pub prefix: String,
    pub cluster: Option<RedisCluster>,
}

impl Backend {
    pub async fn start(topology: Topology) -> Backend {
        let cluster = match topology {
            Topology::RedisCluster => Some(RedisCluster::start(3, 0).await),
            _ => None,
        };
        Backend { topology, prefix: prefix(), cluster }
    }

    /// A backend on a Redis Cluster the test started (with replicas, say).
    pub fn on_cluster(cluster: RedisCluster) -> Backend {
        Backend { topology: Topology::RedisCluster, prefix: prefix(), cluster: Some(cluster) }
    }

    /// Points a node's configuration at this backend, with short cluster timeouts.
    pub fn configure(&self, c: &mut Config) {
        c.adapter = "redis".into();
        c.redis_url = redis_url();
        c.redis_prefix = self.prefix.clone();
        c.cluster_node_timeout_seconds = 3;
        c.cluster_handover_seconds = 2;
        c.apps[0].subscription_count = false;
        match self.topology {
            Topology::Standalone => {}
            Topology::RedisCluster => {
                c.redis_cluster = true;
                c.redis_url = self.cluster.as_ref().map(RedisCluster::url).unwrap_or_default();
            }
            Topology::Nats => {
                c.adapter = "nats".into();
                c.nats_url = nats_url();
            }
        }
    }

    /// The environment a `sinew` process needs to join this backend: the documented contract
    /// (`SINEW_ADAPTER`, `SINEW_REDIS_URL`, `SINEW_REDIS_CLUSTER`, `SINEW_NATS_URL`,
    /// `SINEW_REDIS_PREFIX`), with the short node timeout of [`Backend::configure`].
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("SINEW_ADAPTER", "redis".to_string()),
            ("SINEW_REDIS_URL", redis_url()),
            ("SINEW_REDIS_PREFIX", self.prefix.clone()),
            ("SINEW_CLUSTER_NODE_TIMEOUT_SECONDS", "3".to_string()),
        ];
        match self.topology {
            Topology::Standalone => {}
            Topology::RedisCluster => {
                env[1].1 = self.cluster.as_ref().map(RedisCluster::url).unwrap_or_default();
                env.push(("SINEW_REDIS_CLUSTER", "true".to_string()));
            }
            Topology::Nats => {
                env[0].1 = "nats".to_string();
                env.push(("SINEW_NATS_URL", nats_url()));
            }
        }
        env
    }

    /// A node on this backend, adjusted by `tweak`, once it is ready.
    pub async fn node(&self, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let s = TestServer::start(|c| {
            self.configure(c);
            tweak(c);
        })
        .await;
        wait_until("the node to connect to its cluster bus", async || s.ctx.is_ready()).await;
        s
    }

    pub async fn nodes(&self, n: usize) -> Vec<TestServer> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(self.node(|_| {}).await);
        }
        out
    }

    /// The ports of the Redis servers holding this backend's state.
    fn state_ports(&self) -> Vec<u16> {
        match &self.cluster {
            Some(cluster) => cluster.ports(),
            None => {
                vec![redis_url().rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).unwrap_or(6379)]
            }
        }
    }

    /// What this backend's state keys start with (the prefix as a hash tag on a Redis Cluster).
    pub fn key_prefix(&self) -> String {
        match self.topology {
            Topology::RedisCluster => format!("{{{}}}", self.prefix),
            _ => self.prefix.clone(),
        }
    }

    /// Every key of this backend, sorted (on a Redis Cluster, channel histories are in their
    /// topics' slots, `{prefix:ch:...}`).
    pub async fn keys(&self) -> Vec<String> {
        let mut keys = BTreeSet::new();
        let mut patterns = vec![format!("{}:*", self.key_prefix())];
        if self.cluster.is_some() {
            patterns.push(format!("{{{}:*", self.prefix));
        }
        for port in self.state_ports() {
            for pattern in &patterns {
                let found: Vec<String> =
                    servers::query(port, redis::cmd("KEYS").arg(pattern)).await.unwrap_or_default();
                keys.extend(found);
            }
        }
        keys.into_iter().collect()
    }

    /// Runs a pipeline on the Redis (or the cluster shard) holding this backend's state.
    pub async fn run(&self, pipe: &redis::Pipeline) {
        match &self.cluster {
            Some(cluster) => {
                let seeds: Vec<String> = cluster.ports().iter().map(|p| format!("redis://127.0.0.1:{p}")).collect();
                let client = redis::cluster::ClusterClient::new(seeds).unwrap();
                let mut conn = client.get_async_connection().await.unwrap();
                pipe.query_async::<()>(&mut conn).await.unwrap();
            }
            None => {
                let client = redis::Client::open(redis_url()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                pipe.query_async::<()>(&mut conn).await.unwrap();
            }
        }
    }

    /// Deletes every key of this backend (a Redis Cluster of the test's own goes with it).
    pub async fn cleanup(&self) {
        if self.cluster.is_some() {
            return;
        }
        let keys = self.keys().await;
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            pipe.cmd("DEL").arg(keys).ignore();
            self.run(&pipe).await;
        }
    }
}

pub async fn stop_all(nodes: Vec<TestServer>) {
    for n in nodes {
        n.stop().await;
    }
}

/// Publishes on `from` until `to` receives one of the events (the bus may need a moment after a
/// failover); returns how many publishes it took.
pub async fn publish_until_received(from: &Rest, to: &mut Client, channel: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    for n in 1.. {
        let (status, _) = from.trigger(channel, "tick", &n.to_string()).await;
        if status == 200
            && let Next::Event(ev) = to.next_within(Duration::from_millis(300)).await
            && ev["event"] == "tick"
        {
            return n;
        }
        assert!(Instant::now() < deadline, "no event crossed the nodes (last REST status {status})");
    }
    unreachable!()
}

/// One `#[tokio::test]` per topology for each listed `async fn name(t: Topology)`, in modules
/// `standalone`, `redis_cluster` and `nats` beside the functions.
macro_rules! on_every_topology {
    ($($name:ident),* $(,)?) => {
        mod standalone {
            $(#[tokio::test] async fn $name() { super::$name($crate::cluster_support::Topology::Standalone).await })*
        }
        mod redis_cluster {
            $(#[tokio::test] async fn $name() { super::$name($crate::cluster_support::Topology::RedisCluster).await })*
        }
        mod nats {
            $(#[tokio::test] async fn $name() { super::$name($crate::cluster_support::Topology::Nats).await })*
        }
    };
}
pub(crate) use on_every_topology;
