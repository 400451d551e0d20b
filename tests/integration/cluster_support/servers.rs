//! The servers a cluster test starts for itself, on free loopback ports, each killed (SIGKILL) and
//! reaped on drop: a standalone `redis-server`, a Redis Cluster created with
//! `redis-cli --cluster create`, and a `nats-server`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A free port for a Redis Cluster node, whose cluster bus listens on the port + 10000.
pub fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port <= 55000 && std::net::TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

pub fn redis_server(args: &[&str]) -> Child {
    Command::new("redis-server").args(args).stdout(Stdio::null()).spawn().expect("redis-server on PATH")
}

/// Runs one command on the Redis at `port` (one second to connect).
pub async fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut conn = tokio::time::timeout(Duration::from_secs(1), client.get_multiplexed_async_connection())
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "timeout")))??;
    cmd.query_async(&mut conn).await
}

/// Waits up to 30 seconds for `check` to hold.
pub async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A `redis-server` of one test's own, without persistence.
pub struct OwnRedis {
    child: Child,
    pub url: String,
}

impl OwnRedis {
    pub async fn start() -> OwnRedis {
        let port = free_port();
        let child =
            redis_server(&["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        // Owned at once, so the process is killed and reaped on every path.
        let own = OwnRedis { child, url: format!("redis://127.0.0.1:{port}") };
        wait_until("redis-server to answer", async || query::<String>(port, &redis::cmd("PING")).await.is_ok()).await;
        own
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.url.trim_start_matches("redis://").parse().unwrap()
    }

    /// Sends a signal (`STOP`, `CONT`) to the server process.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success(), "kill -{name}");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// A Redis Cluster: primaries, each with its replicas, all slots covered.
pub struct RedisCluster {
    dir: PathBuf,
    nodes: Vec<(u16, Option<Child>)>,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            if let Some(c) = child.as_mut() {
                kill(c);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One cluster-enabled `redis-server` answering on a free port. A port found free can be taken
/// by another test before the server binds it (the server then exits): it is tried again on
/// another port.
async fn cluster_node(dir: &std::path::Path) -> (u16, Child) {
    for _ in 0..5 {
        let port = free_cluster_port();
        let conf = format!("nodes-{port}.conf");
        let mut child = redis_server(&[
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            "1000",
            // A replica syncs at once (the default waits 5 s for more replicas); until it has,
            // it could not take over.
            "--repl-diskless-sync-delay",
            "0",
            "--cluster-config-file",
            &conf,
            "--dir",
            dir.to_str().unwrap(),
        ]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if query::<String>(port, &redis::cmd("PING")).await.is_ok() {
                return (port, child);
            }
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        kill(&mut child);
    }
    panic!("no cluster node answered on any of five ports");
}

impl RedisCluster {
    /// Starts `primaries` primaries with `replicas` replicas each (a node timeout of one second, so
    /// a replica is promoted within seconds of its primary's death) and returns once every node
    /// reports the cluster healthy.
    pub async fn start(primaries: usize, replicas: usize) -> RedisCluster {
        let dir = std::env::temp_dir().join(format!("sinew-cluster-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = RedisCluster { dir, nodes: Vec::new() };
        for _ in 0..primaries * (1 + replicas) {
            let node = cluster_node(&cluster.dir).await;
            cluster.nodes.push((node.0, Some(node.1)));
        }
        let addrs: Vec<String> = cluster.nodes.iter().map(|(p, _)| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("redis-cli on PATH");
        assert!(out.status.success(), "redis-cli --cluster create: {}", String::from_utf8_lossy(&out.stdout));
        for (port, _) in &cluster.nodes {
            let port = *port;
            wait_until("every node to see the cluster healthy", async || {
                let info: String = query(port, redis::cmd("CLUSTER").arg("INFO")).await.unwrap_or_default();
                info.contains("cluster_state:ok")
            })
            .await;
            wait_until("every replica to sync with its primary", async || {
                let info: String = query(port, redis::cmd("INFO").arg("replication")).await.unwrap_or_default();
                info.contains("role:master") || info.contains("master_link_status:up")
            })
            .await;
        }
        cluster
    }

    /// The seed-node list Sinew takes as `redis_url` (two of the nodes).
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes.iter().take(2).map(|(p, _)| format!("redis://127.0.0.1:{p}")).collect();
        seeds.join(",")
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().filter(|(_, c)| c.is_some()).map(|(p, _)| *p).collect()
    }

    /// The hash slot of a key or topic.
    pub async fn slot(&self, key: &str) -> u16 {
        let port = self.ports()[0];
        query(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).await.unwrap()
    }

    /// The port of the primary serving `slot`, as a live node reports it.
    pub async fn primary_of(&self, slot: u16) -> Option<u16> {
        for port in self.ports() {
            let Ok(ranges) = query::<Vec<redis::Value>>(port, redis::cmd("CLUSTER").arg("SLOTS")).await else {
                continue;
            };
            for range in ranges {
                let redis::Value::Array(parts) = range else { continue };
                let int = |v: Option<&redis::Value>| match v {
                    Some(redis::Value::Int(i)) => *i,
                    _ => -1,
                };
                let (from, to) = (int(parts.first()), int(parts.get(1)));
                if (from..=to).contains(&i64::from(slot))
                    && let Some(redis::Value::Array(primary)) = parts.get(2)
                {
                    return u16::try_from(int(primary.get(1))).ok();
                }
            }
        }
        None
    }

    /// Kills (SIGKILL) the node on `port`.
    pub fn kill(&mut self, port: u16) {
        for (p, child) in &mut self.nodes {
            if *p == port
                && let Some(mut c) = child.take()
            {
                kill(&mut c);
            }
        }
    }
}

/// A `nats-server` of one test's own; it can be killed and started again on the same port.
pub struct OwnNats {
    port: u16,
    child: Option<Child>,
}

impl OwnNats {
    pub async fn start() -> OwnNats {
        let mut nats = OwnNats { port: free_port(), child: None };
        nats.restart().await;
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c);
        }
    }

    /// Starts the server (again) on its port and waits until it accepts connections.
    pub async fn restart(&mut self) {
        self.kill();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on PATH");
        self.child = Some(child);
        let port = self.port;
        wait_until("nats-server to listen", async || tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok())
            .await;
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.kill();
    }
}
