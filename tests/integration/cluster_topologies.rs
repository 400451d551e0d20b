//! A cluster on the Redis deployments teams run, each a real `redis-server` of the test's own on
//! free ports (killed on drop):
//! - Sentinel: a master, a replica and three Sentinels. Two Sinew nodes find the master through the
//!   Sentinels; when the master dies and the Sentinels promote the replica, the nodes follow it
//!   without a restart: events cross nodes again and presence is still counted.
//! - TLS with an ACL user: a TLS-only server whose default user is off; two Sinew processes connect
//!   as the ACL user over `rediss://`, verifying the server's certificate against a test CA.

use crate::cluster_support::publish_until_received;
use crate::cluster_support::servers::{free_cluster_port, free_port, query, redis_server, wait_until};
use crate::common::{APP_ID, Client, KEY, Rest, SECRET, TestServer};
use crate::process_support::SinewProcess;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const MASTER: &str = "sinew-test-master";

/// The processes of one test's Redis deployment; every one is killed on drop.
struct Deployment {
    dir: PathBuf,
    master: (u16, Option<Child>),
    replica: (u16, Child),
    sentinels: Vec<(u16, Child)>,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let mut children: Vec<&mut Child> = vec![&mut self.replica.1];
        children.extend(self.master.1.as_mut());
        children.extend(self.sentinels.iter_mut().map(|(_, c)| c));
        for c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Deployment {
    /// A master with one replica, then three Sentinels watching it, each knowing the replica and
    /// the other Sentinels before this returns.
    async fn start() -> Deployment {
        let dir = std::env::temp_dir().join(format!("sinew-sentinel-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
        let (m, r) = (free_port(), free_port());
        let master = redis_server(&[&["--port", &m.to_string()][..], &base].concat());
        let replica = redis_server(
            &[&["--port", &r.to_string(), "--replicaof", "127.0.0.1", &m.to_string()][..], &base].concat(),
        );
        let mut d = Deployment { dir, master: (m, Some(master)), replica: (r, replica), sentinels: Vec::new() };
        wait_until("the replica's link to the master", async || {
            let info: String = query(r, redis::cmd("INFO").arg("replication")).await.unwrap_or_default();
            info.contains("master_link_status:up")
        })
        .await;
        for _ in 0..3 {
            let port = free_port();
            let conf = d.dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\nsentinel monitor {MASTER} 127.0.0.1 {m} 2\n\
                     sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 5000\n"
                ),
            )
            .unwrap();
            let child = redis_server(&[conf.to_str().unwrap(), "--sentinel"]);
            d.sentinels.push((port, child));
        }
        for &(port, _) in &d.sentinels {
            wait_until("each Sentinel to know the replica and the others", async || {
                let replicas: Vec<redis::Value> =
                    query(port, redis::cmd("SENTINEL").arg("replicas").arg(MASTER)).await.unwrap_or_default();
                let others: Vec<redis::Value> =
                    query(port, redis::cmd("SENTINEL").arg("sentinels").arg(MASTER)).await.unwrap_or_default();
                replicas.len() == 1 && others.len() == 2
            })
            .await;
        }
        d
    }

    fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|(p, _)| format!("127.0.0.1:{p}")).collect();
        format!("redis+sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// The master's port as the first Sentinel reports it.
    async fn master_port(&self) -> Option<u16> {
        let addr: Vec<String> =
            query(self.sentinels[0].0, redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg(MASTER)).await.ok()?;
        addr.get(1)?.parse().ok()
    }

    fn kill_master(&mut self) {
        if let Some(mut c) = self.master.1.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn node(url: &str, prefix: &str) -> TestServer {
    let (url, prefix) = (url.to_string(), prefix.to_string());
    let s = TestServer::start(move |c| {
        c.adapter = "redis".into();
        c.redis_url = url;
        c.redis_prefix = prefix;
        c.cluster_node_timeout_seconds = 5;
    })
    .await;
    wait_until("the node to reach the master", async || s.ctx.is_ready()).await;
    s
}

/// Node A takes a `redis+sentinel://` URL; node B, a `sinew` process, the environment contract
/// (`SINEW_REDIS_SENTINELS`, `SINEW_REDIS_MASTER_NAME`). The master is killed while events flow;
/// after the promotion both follow without a restart, and B killed afterwards leaves no member
/// behind on the new master.
#[tokio::test]
async fn nodes_follow_a_sentinel_failover_without_a_restart() {
    let mut redis = Deployment::start().await;
    let prefix = format!("sinew-sentinel-{}", rand::random::<u64>());
    let a = node(&redis.url(), &prefix).await;
    let sentinels: Vec<String> = redis.sentinels.iter().map(|(p, _)| format!("127.0.0.1:{p}")).collect();
    let sentinels = sentinels.join(",");
    let b = SinewProcess::spawn(&[
        ("SINEW_ADAPTER", "redis"),
        ("SINEW_REDIS_SENTINELS", &sentinels),
        ("SINEW_REDIS_MASTER_NAME", MASTER),
        ("SINEW_REDIS_PREFIX", &prefix),
        ("SINEW_CLUSTER_NODE_TIMEOUT_SECONDS", "3"),
    ])
    .await;
    let (rest_a, rest_b) = (a.http(), Rest::at(b.addr));
    let ready_b = format!("http://{}/ready", b.addr);
    wait_until("node B to reach the master", async || reqwest::get(&ready_b).await.is_ok_and(|r| r.status() == 200))
        .await;
    let mut watcher = Client::established(b.addr).await;
    watcher.subscribe("sentinel-news").await;
    let mut member = a.client().await;
    member.subscribe_presence("presence-sentinel", r#"{"user_id":"ada"}"#).await;
    let mut on_b = Client::established(b.addr).await;
    on_b.subscribe_presence("presence-sentinel", r#"{"user_id":"bea"}"#).await;
    assert_eq!(publish_until_received(&rest_a, &mut watcher, "sentinel-news").await, 1);
    async fn users(rest: &Rest) -> serde_json::Value {
        rest.get("/channels/presence-sentinel", &[("info", "user_count")]).await.1["user_count"].clone()
    }
    assert_eq!(users(&rest_b).await, 2);

    // Events flow while the master dies.
    let flowing = tokio::spawn({
        let rest = a.http();
        async move {
            for n in 0.. {
                let _ = rest.trigger("sentinel-flow", "tick", &n.to_string()).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let old = redis.master_port().await;
    redis.kill_master();
    let replica = redis.replica.0;
    wait_until("the Sentinels to promote the replica", async || redis.master_port().await == Some(replica)).await;
    let promoted = Instant::now();
    assert_ne!(old, Some(replica));

    // Both directions work again within 10 s, and the presence members are still counted.
    publish_until_received(&rest_a, &mut watcher, "sentinel-news").await;
    let mut back = a.client().await;
    back.subscribe("sentinel-back").await;
    publish_until_received(&rest_b, &mut back, "sentinel-back").await;
    assert!(promoted.elapsed() < Duration::from_secs(10), "delivery back {:?} after the promotion", promoted.elapsed());
    flowing.abort();
    wait_until("the members to be counted on the new master", async || users(&rest_a).await == 2).await;
    let ev = member.next_within(Duration::from_millis(100)).await;
    assert!(!matches!(&ev, crate::common::Next::Closed(_)), "the member's socket stayed open: {ev:?}");

    // Node B dies: its member is swept on the new master, nobody is left behind.
    b.signal("KILL").await;
    wait_until("node B's member swept", async || users(&rest_a).await == 1).await;
    a.stop().await;
}

/// A test CA and a certificate for 127.0.0.1 signed by it, made with openssl in `dir`.
fn make_certs(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Sinew Test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "redis.key",
        "-out",
        "redis.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "redis.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "redis.pem",
    ]);
}

/// Kills the children and removes the directory on drop.
struct TlsRedis {
    children: Vec<Child>,
    dir: PathBuf,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The arguments of a TLS-only `redis-server` on `port` whose default user is off and whose ACL
/// user `sinew` (password `s3cret`) may do everything; certificates from `dir` (see [`make_certs`]).
fn tls_server_args(dir: &std::path::Path, port: u16) -> Vec<String> {
    let path = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let mut args: Vec<String> =
        ["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"].iter().map(|s| s.to_string()).collect();
    for (k, v) in [
        ("--save", String::new()),
        ("--appendonly", "no".into()),
        ("--tls-cert-file", path("redis.pem")),
        ("--tls-key-file", path("redis.key")),
        ("--tls-ca-cert-file", path("ca.pem")),
        ("--tls-auth-clients", "no".into()),
    ] {
        args.push(k.into());
        args.push(v);
    }
    args.extend(
        ["--user", "default", "off", "--user", "sinew", "on", ">s3cret", "~*", "&*", "+@all"].map(String::from),
    );
    args
}

#[tokio::test]
async fn nodes_reach_redis_over_tls_as_an_acl_user() {
    let dir = std::env::temp_dir().join(format!("sinew-redis-tls-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    make_certs(&dir);
    let port = free_port();
    let args = tls_server_args(&dir, port);
    let child = redis_server(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = dir.join("ca.pem").to_str().unwrap().to_string();
    let redis = TlsRedis { children: vec![child], dir };
    let url = format!("rediss://sinew:s3cret@127.0.0.1:{port}");
    let prefix = format!("sinew-tls-{}", rand::random::<u64>());
    let env = [
        ("SINEW_ADAPTER", "redis"),
        ("SINEW_REDIS_URL", url.as_str()),
        ("SINEW_REDIS_PREFIX", prefix.as_str()),
        ("SSL_CERT_FILE", ca.as_str()),
    ];
    let (a, b) = (SinewProcess::spawn(&env).await, SinewProcess::spawn(&env).await);
    for node in [&a, &b] {
        let ready = format!("http://{}/ready", node.addr);
        wait_until("the node to connect to Redis over TLS", async || {
            reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200)
        })
        .await;
    }
    let mut watcher = Client::connect(b.addr, KEY).await;
    watcher.subscribe("tls-news").await;
    let rest =
        Rest { base: format!("http://{}", a.addr), app_id: APP_ID.into(), key: KEY.into(), secret: SECRET.into() };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(rest.trigger("tls-news", "tick", "1").await.0, 200);
        if let crate::common::Next::Event(ev) = watcher.next_within(Duration::from_millis(300)).await
            && ev["event"] == "tick"
        {
            break;
        }
        assert!(Instant::now() < deadline, "no event crossed the nodes; log of a:\n{}", a.log());
    }
    // A wrong password is refused by Redis: the node says so and is not ready.
    let bad = format!("rediss://sinew:wrong@127.0.0.1:{port}");
    let env = [("SINEW_ADAPTER", "redis"), ("SINEW_REDIS_URL", bad.as_str()), ("SSL_CERT_FILE", ca.as_str())];
    let c = SinewProcess::spawn(&env).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let res = reqwest::get(format!("http://{}/ready", c.addr)).await.unwrap();
    assert_eq!(res.status(), 503);
    drop(redis);
}

/// A Redis Cluster of three TLS-only primaries whose default user is off: two `sinew` processes
/// reach it over `rediss://` as the ACL user, with the seed list of the environment contract.
#[tokio::test]
async fn a_redis_cluster_over_tls_as_an_acl_user() {
    let dir = std::env::temp_dir().join(format!("sinew-cluster-tls-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    make_certs(&dir);
    let ports: Vec<u16> = (0..3).map(|_| free_cluster_port()).collect();
    let mut redis = TlsRedis { children: Vec::new(), dir: dir.clone() };
    for &port in &ports {
        let mut args = tls_server_args(&dir, port);
        let conf = dir.join(format!("nodes-{port}.conf"));
        for a in ["--cluster-enabled", "yes", "--tls-cluster", "yes", "--cluster-config-file", conf.to_str().unwrap()] {
            args.push(a.into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        redis.children.push(redis_server(&args));
    }
    let ca = dir.join("ca.pem").to_str().unwrap().to_string();
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["--tls", "--cacert", &ca, "--user", "sinew", "--pass", "s3cret", "--no-auth-warning"])
            .args(args)
            .output()
            .expect("redis-cli on PATH");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    for &port in &ports {
        let p = port.to_string();
        wait_until("a TLS node to answer", async || cli(&["-p", &p, "PING"]).contains("PONG")).await;
    }
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut create = vec!["--cluster", "create"];
    create.extend(addrs.iter().map(String::as_str));
    create.push("--cluster-yes");
    cli(&create);
    for &port in &ports {
        let p = port.to_string();
        wait_until("the TLS cluster healthy", async || {
            cli(&["-p", &p, "CLUSTER", "INFO"]).contains("cluster_state:ok")
        })
        .await;
    }
    let url = format!("rediss://sinew:s3cret@127.0.0.1:{},rediss://sinew:s3cret@127.0.0.1:{}", ports[0], ports[1]);
    let prefix = format!("sinew-tls-cluster-{}", rand::random::<u64>());
    let env = [
        ("SINEW_ADAPTER", "redis"),
        ("SINEW_REDIS_CLUSTER", "true"),
        ("SINEW_REDIS_URL", url.as_str()),
        ("SINEW_REDIS_PREFIX", prefix.as_str()),
        ("SSL_CERT_FILE", ca.as_str()),
    ];
    let (a, b) = (SinewProcess::spawn(&env).await, SinewProcess::spawn(&env).await);
    for node in [&a, &b] {
        let ready = format!("http://{}/ready", node.addr);
        wait_until("the node to reach the cluster over TLS", async || {
            reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200)
        })
        .await;
    }
    let mut watcher = Client::established(b.addr).await;
    watcher.subscribe("tls-cluster-news").await;
    let mut member = Client::established(a.addr).await;
    member.subscribe_presence("presence-tls", r#"{"user_id":"ada"}"#).await;
    publish_until_received(&Rest::at(a.addr), &mut watcher, "tls-cluster-news").await;
    let (_, info) = Rest::at(b.addr).get("/channels/presence-tls", &[("info", "user_count")]).await;
    assert_eq!(info["user_count"], 1, "the member on node A is counted on node B");
    drop(redis);
}
