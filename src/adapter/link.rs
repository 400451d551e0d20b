//! The link to Redis that the adapter handle and its background tasks share: the settings, the
//! connection, the key names, this node's id, the counters, and whether the bus subscription and
//! the state writes currently work. Also the helpers that read Redis replies.
//!
//! The handle ([`super::RedisAdapter`]) and every task hold an `Arc` of one [`Link`]; the tasks never
//! see the handle.
//!
//! Behind Sentinels the master can move: [`Link::follow_master`] (run every second by
//! [`follow_sentinels`]) asks them where it is and, when it moved, connects there and tells the
//! bus reader (`master_moved`) to subscribe again.
//!
//! On a Redis Cluster, [`Conn::Cluster`] routes each command to the shard that owns its keys (the
//! state keys all share one hash tag, see [`super::keys`]) and follows failovers and slot moves
//! itself; the bus reader makes its own connection ([`Link::cluster_subscriber`]).

use super::error::{ClusterError, OP_TIMEOUT};
use super::keys::Keys;
use super::nats::{NatsLink, channel_subject};
use crate::config::{SentinelSettings, Topology};
use redis::Value;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, TlsMode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use tokio::sync::{OnceCell, watch};
use tokio::time::{Duration, timeout};

/// Settings of the Redis adapter.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where Redis is.
    pub topology: Topology,
    /// Prefix of every key and of the bus channel.
    pub prefix: String,
    /// A node silent for this long is swept by the others.
    pub node_timeout: Duration,
    /// How long a gracefully stopped node's members are kept for their clients to reconnect.
    pub handover: Duration,
    /// The webhook leave delay: a departure's webhook waits this long and is dropped if the
    /// member or channel came back anywhere in the cluster meanwhile.
    pub leave_delay: Duration,
    /// NATS server URL(s) when channel traffic goes over NATS (`adapter = "nats"`).
    pub nats: Option<String>,
}

/// Counters of the adapter, exported as metrics.
#[derive(Debug, Default)]
pub struct AdapterStats {
    /// Messages published to the bus.
    pub published: AtomicU64,
    /// Messages received from other nodes.
    pub received: AtomicU64,
    /// Failed Redis round trips (and undecodable bus messages).
    pub errors: AtomicU64,
    /// Reconnections of the bus subscriber after a loss.
    pub reconnects: AtomicU64,
    /// Messages not published because the outgoing queue was full.
    pub dropped: AtomicU64,
}

/// What the adapter handle and its tasks share.
pub(super) struct Link {
    node: u32,
    pub(super) keys: Keys,
    pub(super) settings: Settings,
    /// The server commands go to (the master, behind Sentinels), and the shared connection to it,
    /// re-made whenever it drops. `None` until the Sentinels have named a master.
    master: RwLock<Option<Master>>,
    /// Asks the Sentinels where the master is (`None` for a standalone server).
    sentinels: Option<tokio::sync::Mutex<SentinelClient>>,
    /// A Redis Cluster's seed nodes and the shared connection to it, made on first use.
    cluster: Option<ClusterLink>,
    /// NATS, when channel traffic goes there.
    pub(super) nats: Option<NatsLink>,
    /// Bumped whenever the master moved.
    master_moved: watch::Sender<u64>,
    pub(super) stats: Arc<AdapterStats>,
    bus_up: AtomicBool,
    store_up: AtomicBool,
}

/// A connection for commands: to one server (the master), or to a Redis Cluster.
#[derive(Clone)]
pub(super) enum Conn {
    /// One server.
    Single(ConnectionManager),
    /// A Redis Cluster: each command (and each pipeline, whose keys must share a slot) goes to the
    /// shard owning its keys.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A Redis Cluster: where to find it, and the shared connection.
struct ClusterLink {
    seeds: Vec<String>,
    conn: OnceCell<ClusterConnection>,
}

impl ClusterLink {
    fn builder(&self) -> ClusterClientBuilder {
        ClusterClientBuilder::new(self.seeds.clone())
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(OP_TIMEOUT)
            .retries(3)
            .max_retry_wait(500)
    }
}

/// The server commands go to.
#[derive(Clone)]
struct Master {
    /// Makes the bus subscriber's dedicated connections.
    client: redis::Client,
    /// The shared connection for commands.
    conn: ConnectionManager,
}

impl Master {
    fn new(client: redis::Client) -> Result<Master, ClusterError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Master { client, conn })
    }
}

impl Link {
    /// Prepares the link for node `node` without connecting yet. Must run inside a Tokio runtime.
    pub(super) fn new(settings: Settings, node: u32) -> Result<Self, ClusterError> {
        let (master, sentinels, cluster) = match &settings.topology {
            Topology::Standalone(url) => (Some(Master::new(redis::Client::open(url.as_str())?)?), None, None),
            Topology::Sentinel(s) => (None, Some(tokio::sync::Mutex::new(sentinel_client(s)?)), None),
            Topology::Cluster(seeds) => {
                let cluster = ClusterLink { seeds: seeds.clone(), conn: OnceCell::new() };
                // Checks the seed URLs now rather than on first use.
                cluster.builder().build()?;
                (None, None, Some(cluster))
            }
        };
        Ok(Link {
            node,
            nats: settings.nats.clone().map(NatsLink::new),
            keys: Keys::new(settings.prefix.clone(), cluster.is_some()),
            settings,
            master: RwLock::new(master),
            sentinels,
            cluster,
            master_moved: watch::Sender::new(0),
            stats: Arc::new(AdapterStats::default()),
            bus_up: AtomicBool::new(false),
            store_up: AtomicBool::new(false),
        })
    }

    fn current(&self) -> Result<Master, ClusterError> {
        self.master
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| ClusterError::Unavailable("no Sentinel has named the Redis master yet".into()))
    }

    /// The shared connection for commands.
    pub(super) async fn conn(&self) -> Result<Conn, ClusterError> {
        let Some(cluster) = &self.cluster else {
            return self.current().map(|m| Conn::Single(m.conn));
        };
        let conn = cluster
            .conn
            .get_or_try_init(|| async {
                match timeout(OP_TIMEOUT, cluster.builder().build()?.get_async_connection()).await {
                    Ok(conn) => Ok(conn?),
                    Err(_) => Err(ClusterError::Unavailable("the Redis Cluster did not answer in time".into())),
                }
            })
            .await?;
        Ok(Conn::Cluster(conn.clone()))
    }

    /// True on a Redis Cluster: channel traffic then uses sharded pub/sub.
    pub(super) fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// A client of the server commands go to, for a dedicated (subscriber) connection (not on a
    /// Redis Cluster: see [`Link::cluster_subscriber`]).
    pub(super) fn client(&self) -> Result<redis::Client, ClusterError> {
        self.current().map(|m| m.client)
    }

    /// On a Redis Cluster: a connection of its own for the bus reader, which hands every pub/sub
    /// message (and the news of a lost connection) to `pushes`.
    pub(super) async fn cluster_subscriber(
        &self,
        pushes: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> Result<ClusterConnection, ClusterError> {
        let cluster = self.cluster.as_ref().ok_or_else(|| ClusterError::Unavailable("not a Redis Cluster".into()))?;
        let client = cluster.builder().use_protocol(redis::ProtocolVersion::RESP3).push_sender(pushes).build()?;
        match timeout(OP_TIMEOUT, client.get_async_connection()).await {
            Ok(conn) => Ok(conn?),
            Err(_) => Err(ClusterError::Unavailable("the Redis Cluster did not answer in time".into())),
        }
    }

    /// Changes whenever the master moved (behind Sentinels).
    pub(super) fn master_moved(&self) -> watch::Receiver<u64> {
        self.master_moved.subscribe()
    }

    /// Behind Sentinels: asks them for the master and, when it is not the one in use, connects
    /// there. True when the master moved. A standalone server never moves.
    pub(super) async fn follow_master(&self) -> Result<bool, ClusterError> {
        let Some(sentinels) = &self.sentinels else { return Ok(false) };
        let client = timeout(OP_TIMEOUT, async { sentinels.lock().await.async_get_client().await })
            .await
            .map_err(|_| ClusterError::Unavailable("the Sentinels did not answer in time".into()))??;
        let addr = client.get_connection_info().addr().to_string();
        let same = self.current().is_ok_and(|m| m.client.get_connection_info().addr().to_string() == addr);
        if same {
            return Ok(false);
        }
        let master = Master::new(client)?;
        *self.master.write().unwrap_or_else(PoisonError::into_inner) = Some(master);
        self.master_moved.send_modify(|n| *n += 1);
        tracing::info!(master = %addr, "following the Redis master the Sentinels name");
        Ok(true)
    }

    /// This node's id.
    pub(super) fn node(&self) -> u32 {
        self.node
    }

    /// The topic (Redis) or subject (NATS) of one channel's traffic.
    pub(super) fn channel_topic(&self, app: &str, channel: &str) -> String {
        match &self.nats {
            Some(_) => channel_subject(&self.settings.prefix, app, channel),
            None => self.keys.channel_topic(app, channel),
        }
    }

    /// True while the bus subscription works (and NATS is connected, when channel traffic goes
    /// there).
    pub(super) fn bus_is_up(&self) -> bool {
        self.bus_up.load(Ordering::Acquire) && self.nats.as_ref().is_none_or(NatsLink::is_up)
    }

    /// Records whether the bus subscription works.
    pub(super) fn set_bus_up(&self, up: bool) {
        self.bus_up.store(up, Ordering::Release);
    }

    /// True while the state writes work.
    pub(super) fn store_is_up(&self) -> bool {
        self.store_up.load(Ordering::Acquire)
    }

    /// Records whether the state writes work.
    pub(super) fn set_store_up(&self, up: bool) {
        self.store_up.store(up, Ordering::Release);
    }

    /// Runs a pipeline of reads (or simple writes) on the shared connection, counting failures.
    pub(super) async fn query(&self, pipe: &redis::Pipeline) -> Result<Vec<Value>, ClusterError> {
        let mut conn = self.conn().await?;
        match timeout(OP_TIMEOUT, pipe.query_async::<Vec<Value>>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                Err(e.into())
            }
            Err(_) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                Err(ClusterError::Unavailable("Redis did not answer in time".into()))
            }
        }
    }
}

/// A client that asks the Sentinels for the current master.
fn sentinel_client(s: &SentinelSettings) -> redis::RedisResult<SentinelClient> {
    let addrs = s.sentinels.iter().map(|(host, port)| {
        if s.tls {
            ConnectionAddr::TcpTls { host: host.clone(), port: *port, insecure: false, tls_params: None }
        } else {
            ConnectionAddr::Tcp(host.clone(), *port)
        }
    });
    let mut b = SentinelClientBuilder::new(addrs, &s.master, SentinelServerType::Master)?.set_client_to_redis_db(s.db);
    if s.tls {
        b = b.set_client_to_redis_tls_mode(TlsMode::Secure).set_client_to_sentinel_tls_mode(TlsMode::Secure);
    }
    if let Some(u) = &s.username {
        b = b.set_client_to_redis_username(u);
    }
    if let Some(p) = &s.password {
        b = b.set_client_to_redis_password(p);
    }
    if let Some(p) = &s.sentinel_password {
        b = b.set_client_to_sentinel_password(p);
    }
    b.build()
}

/// How often the Sentinels are asked where the master is.
const SENTINEL_POLL: Duration = Duration::from_secs(1);

/// Behind Sentinels: keeps the link on the master they name, asking every [`SENTINEL_POLL`]
/// (also what finds the master at start). Returns at once for a standalone server.
pub(super) async fn follow_sentinels(link: Arc<Link>) {
    if link.sentinels.is_none() {
        return;
    }
    let mut failing = false;
    loop {
        match link.follow_master().await {
            Ok(_) if failing => {
                tracing::info!("the Sentinels answer again");
                failing = false;
            }
            Ok(_) => {}
            Err(e) => {
                link.stats.errors.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    tracing::error!(error = %e, "cannot ask the Sentinels for the Redis master; retrying");
                    failing = true;
                }
            }
        }
        tokio::time::sleep(SENTINEL_POLL).await;
    }
}

/// A Redis integer or numeric string as a count (0 for anything else).
pub(super) fn as_count(v: &Value) -> u64 {
    as_int(v).max(0) as u64
}

/// A Redis integer or numeric string (0 for anything else).
pub(super) fn as_int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        Value::BulkString(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(0),
        _ => 0,
    }
}

/// A Redis string reply as UTF-8.
pub(super) fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The field/value pairs of an `HGETALL` reply (RESP2 array or RESP3 map).
pub(super) fn pairs(v: Option<&Value>) -> Vec<(String, String)> {
    match v {
        Some(Value::Array(items)) => {
            items.chunks(2).filter_map(|c| Some((as_string(c.first()?)?, as_string(c.get(1)?)?))).collect()
        }
        Some(Value::Map(entries)) => entries.iter().filter_map(|(k, v)| Some((as_string(k)?, as_string(v)?))).collect(),
        _ => Vec::new(),
    }
}
