//! `cluster-fanout`: many channels over the nodes of a cluster, REST publishes spread over the
//! channels, and what it costs each node: deliveries, latency, and (given the nodes' pids and
//! metrics ports) each node's CPU time and the messages it took from the cluster bus.
//!
//! Channel `c` has `per_channel` subscribers. With the default placement they are all on node
//! `c % N`, so each node holds a disjoint 1/N of the channels; with `--spread` they are dealt over
//! every node, so every node holds part of every channel. Event `m` goes to channel `m % C` as that
//! channel's event number `m / C`, through node `(c / N) % N` (every pair of owning and publishing
//! node equally often when C is a multiple of N squared) or through `--publish-node`. One channel's
//! events always go through one node and one publisher, one at a time, so they must arrive in order.

use super::Env;
use super::chaos::target_for;
use super::client::Target;
use super::fanout::{collect, payload, settle, subscriber};
use super::pool::{Gate, spawn_paced};
use super::report::{GeneratorClock, Report, ServerSample, round, sample};
use super::rest::Publisher;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Duration, Instant, timeout};
use tokio_util::sync::CancellationToken;

/// Options of `cluster-fanout`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterOpts {
    /// The cluster's nodes, `host:port,host:port,...` (REST and WebSocket on the same port).
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<String>,
    /// Each node's metrics port, in the order of `--nodes` (same host): bus messages are counted
    /// from `adapter_messages_received_total` and `adapter_publishes_total` at `/metrics`.
    #[arg(long, value_delimiter = ',')]
    pub metrics_ports: Vec<u16>,
    /// Each node's process id, in the order of `--nodes`: CPU time per node from /proc.
    #[arg(long, value_delimiter = ',')]
    pub server_pids: Vec<u32>,
    /// Other processes whose CPU time to report, such as the Redis or NATS servers.
    #[arg(long, value_delimiter = ',')]
    pub bus_pids: Vec<u32>,
    /// Channels.
    #[arg(long, default_value_t = 360)]
    pub channels: usize,
    /// Subscribers per channel.
    #[arg(long, default_value_t = 10)]
    pub per_channel: usize,
    /// Deal each channel's subscribers over every node instead of putting them all on one.
    #[arg(long)]
    pub spread: bool,
    /// Events to publish in all.
    #[arg(long, default_value_t = 3600)]
    pub messages: u64,
    /// Publishes per second in all (0: each publisher as fast as answers come).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Concurrent publishers; publisher `k` takes the channels `c` with `c % publishers == k`.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Publish everything through this node (an index into `--nodes`).
    #[arg(long)]
    pub publish_node: Option<usize>,
    /// Bytes of padding in each event's data.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
}

impl ClusterOpts {
    /// The node channel `c`'s subscriber `j` connects to.
    fn node_of(&self, c: usize, j: usize) -> usize {
        let n = self.nodes.len();
        if self.spread { (c + j) % n } else { c % n }
    }

    /// The node channel `c`'s events are published through.
    fn publisher_of(&self, c: usize) -> usize {
        let n = self.nodes.len();
        self.publish_node.unwrap_or((c / n) % n)
    }
}

/// The channel of event `m`, and its number on that channel.
fn slot(m: u64, channels: usize) -> (usize, u64) {
    ((m % channels as u64) as usize, m / channels as u64)
}

fn channel_name(c: usize) -> String {
    format!("cluster-{c}")
}

/// Publishes, in order, the events of the channels `c % publishers == k`, each through its node;
/// returns how many each channel had accepted (a refused or failed publish stops nothing, but
/// its channel's subscribers then see a gap).
async fn publish_share(
    o: Arc<ClusterOpts>,
    targets: Arc<Vec<Target>>,
    k: usize,
    start: Instant,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
) -> Vec<u64> {
    let mut accepted = vec![0u64; o.channels];
    let mut publishers: Vec<Option<Publisher>> = (0..targets.len()).map(|_| None).collect();
    let pad = "x".repeat(o.payload);
    for m in 0..o.messages {
        let (c, seq) = slot(m, o.channels);
        if c % o.publishers != k {
            continue;
        }
        if o.rate > 0.0 {
            tokio::time::sleep_until(start + Duration::from_secs_f64(m as f64 / o.rate)).await;
        }
        let node = o.publisher_of(c);
        let p = publishers[node].get_or_insert_with(|| Publisher::new(&targets[node]));
        let why = match p.publish(&channel_name(c), "bench", &payload(seq, &pad)).await {
            Ok(200) => {
                accepted[c] += 1;
                continue;
            }
            Ok(status) => format!("publish {m} through node {node} answered {status}"),
            Err(e) => format!("publish {m} through node {node} failed: {e}"),
        };
        if let Ok(mut f) = failures.lock() {
            f.push(why);
        }
    }
    accepted
}

/// Bus counters of one node, read from its Prometheus text: (received, published).
async fn bus_counts(host: &str, port: u16) -> Option<(u64, u64)> {
    let read = async {
        let mut s = TcpStream::connect((host, port)).await.ok()?;
        s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n").as_bytes()).await.ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).await.ok()?;
        Some(body)
    };
    let body = timeout(Duration::from_secs(5), read).await.ok()??;
    let value = |metric: &str| {
        body.lines().find_map(|l| {
            let (name, v) = l.split_once(' ')?;
            let name = name.split('{').next()?;
            name.ends_with(metric).then(|| v.trim().parse::<f64>().ok()).flatten().map(|v| v as u64)
        })
    };
    Some((value("adapter_messages_received_total")?, value("adapter_publishes_total")?))
}

/// What each node's counters and CPU read at one moment.
struct Snapshot {
    bus: Vec<Option<(u64, u64)>>,
    cpu: Vec<Option<ServerSample>>,
    others: Vec<Option<ServerSample>>,
}

async fn snapshot(o: &ClusterOpts, hosts: &[String]) -> Snapshot {
    let mut bus = Vec::new();
    for (host, port) in hosts.iter().zip(&o.metrics_ports) {
        bus.push(bus_counts(host, *port).await);
    }
    Snapshot {
        bus,
        cpu: o.server_pids.iter().map(|p| sample(Some(*p))).collect(),
        others: o.bus_pids.iter().map(|p| sample(Some(*p))).collect(),
    }
}

fn cpu_between(b: Option<&Option<ServerSample>>, a: Option<&Option<ServerSample>>) -> Option<f64> {
    Some(round(a?.as_ref()?.cpu_s - b?.as_ref()?.cpu_s, 3))
}

/// Runs the scenario.
pub async fn cluster_fanout(env: Arc<Env>, o: ClusterOpts) -> Report {
    let mut report = Report::new("cluster-fanout");
    report.param("nodes", o.nodes.len());
    report.param("channels", o.channels);
    report.param("per_channel", o.per_channel);
    report.param("spread", o.spread);
    report.param("messages", o.messages);
    report.param("rate", o.rate);
    report.param("publishers", o.publishers);
    report.param("publish_node", o.publish_node.map_or(json!(null), |n| json!(n)));
    report.param("payload", o.payload);
    let n = o.nodes.len();
    let bad_lists = [(o.metrics_ports.len(), "--metrics-ports"), (o.server_pids.len(), "--server-pids")];
    for (len, what) in bad_lists.iter().filter(|(len, _)| *len != 0 && *len != n) {
        report.fail(format!("{what} lists {len} entries for {n} nodes"));
    }
    if o.channels == 0 || o.publishers == 0 || o.publish_node.is_some_and(|p| p >= n) {
        report.fail("--channels and --publishers must be above 0, --publish-node below the node count".into());
    }
    let targets: Vec<Target> = match o.nodes.iter().map(|a| target_for(&env.target, a)).collect() {
        Ok(t) => t,
        Err(e) => {
            report.fail(format!("{e:#}"));
            return report;
        }
    };
    if !report.ok() {
        return report;
    }
    let hosts: Vec<String> =
        o.nodes.iter().map(|a| a.rsplit_once(':').map_or(a.clone(), |h| h.0.to_string())).collect();
    let envs: Vec<Arc<Env>> = targets
        .iter()
        .map(|t| Arc::new(Env { target: t.clone(), pid: None, connect_rate: env.connect_rate, sources: env.sources }))
        .collect();
    let o = Arc::new(o);
    let subscribers = o.channels * o.per_channel;
    let (total, stop, gate) = (Arc::new(AtomicU64::new(0)), CancellationToken::new(), Arc::new(Gate::default()));
    let sample_every = (o.messages * o.per_channel as u64 / 2_000_000).max(1);
    let handles = spawn_paced(subscribers, env.connect_rate, &gate, |i, setup| {
        let (c, j) = (i % o.channels, i / o.channels);
        let env = envs[o.node_of(c, j)].clone();
        subscriber(env, i, setup, channel_name(c), total.clone(), stop.clone(), sample_every)
    })
    .await;
    let (ready, failed) = gate.wait(subscribers, Duration::from_secs(120)).await;
    if ready < subscribers {
        report.fail(format!("{ready} of {subscribers} subscribers ready ({failed} failed)"));
    }
    // Every node has asked the bus for its channels before `subscription_succeeded`; a moment more
    // lets the subscribe messages and counts on the shared topic settle before counting starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = snapshot(&o, &hosts).await;
    let clock = GeneratorClock::start();
    let start = Instant::now();
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let targets = Arc::new(targets);
    let tasks: Vec<_> = (0..o.publishers)
        .map(|k| tokio::spawn(publish_share(o.clone(), targets.clone(), k, start, failures.clone())))
        .collect();
    let mut accepted = vec![0u64; o.channels];
    for t in tasks {
        match t.await {
            Ok(a) => accepted.iter_mut().zip(a).for_each(|(x, y)| *x += y),
            Err(e) => report.fail(format!("a publisher task failed: {e}")),
        }
    }
    let published_s = start.elapsed().as_secs_f64();
    let expected: u64 = accepted.iter().sum::<u64>() * o.per_channel as u64;
    let last = settle(&total, expected, Duration::from_secs(10)).await;
    report.generator(clock.stop());
    let elapsed = last.duration_since(start).as_secs_f64();
    let after = snapshot(&o, &hosts).await;
    stop.cancel();
    let delivered = collect(&mut report, handles, expected).await;
    let published: u64 = accepted.iter().sum();
    report.figure("published", published);
    report.figure("publishes_per_s", round(published as f64 / published_s.max(1e-9), 0));
    report.figure("deliveries_per_s", round(delivered as f64 / elapsed.max(1e-9), 0));
    if let Ok(f) = failures.lock()
        && !f.is_empty()
    {
        report.fail(format!("{} publishes were refused or failed, the first: {}", f.len(), f[0]));
    }
    let mut nodes = Vec::new();
    let (mut cpu_total, mut cpu_known, mut received_total) = (0.0, true, 0u64);
    for i in 0..n {
        let cpu = cpu_between(before.cpu.get(i), after.cpu.get(i));
        let bus = match (before.bus.get(i).copied().flatten(), after.bus.get(i).copied().flatten()) {
            (Some(b), Some(a)) => Some((a.0.saturating_sub(b.0), a.1.saturating_sub(b.1))),
            _ => None,
        };
        cpu_total += cpu.unwrap_or(0.0);
        cpu_known &= cpu.is_some();
        received_total += bus.map_or(0, |b| b.0);
        if !o.metrics_ports.is_empty() && bus.is_none() {
            report.note(format!("node {i}: no adapter counters at /metrics (a node without a cluster bus?)"));
        }
        nodes.push(json!({"node": o.nodes[i], "cpu_s": cpu, "bus_received": bus.map(|b| b.0),
            "bus_published": bus.map(|b| b.1)}));
    }
    report.figure("per_node", Value::Array(nodes));
    if !o.metrics_ports.is_empty() {
        report.figure("bus_received_total", received_total);
        report.figure("bus_received_per_node", round(received_total as f64 / n as f64, 1));
    }
    if !o.server_pids.is_empty() && cpu_known {
        report.figure("nodes_cpu_s", round(cpu_total, 3));
        // About the number of cores the nodes may use when they were the limit.
        report.figure("nodes_cpu_per_wall_s", round(cpu_total / elapsed.max(1e-9), 2));
        if delivered > 0 {
            report.figure("nodes_cpu_us_per_delivery", round(cpu_total * 1e6 / delivered as f64, 3));
        }
    }
    let others: Vec<Value> = (0..o.bus_pids.len())
        .map(|i| json!({"pid": o.bus_pids[i], "cpu_s": cpu_between(before.others.get(i), after.others.get(i))}))
        .collect();
    if !others.is_empty() {
        report.figure("bus_servers", Value::Array(others));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        o: ClusterOpts,
    }

    fn opts(args: &[&str]) -> ClusterOpts {
        let mut all = vec!["t"];
        all.extend_from_slice(args);
        Wrap::parse_from(all).o
    }

    #[test]
    fn each_node_owns_a_disjoint_share_and_every_pair_publishes() {
        let o = opts(&["--nodes", "a:1,b:2,c:3", "--channels", "9"]);
        let owners: Vec<usize> = (0..9).map(|c| o.node_of(c, 5)).collect();
        assert_eq!(owners, [0, 1, 2, 0, 1, 2, 0, 1, 2], "a channel's subscribers all on one node");
        let mut pairs: Vec<(usize, usize)> = (0..9).map(|c| (o.node_of(c, 0), o.publisher_of(c))).collect();
        pairs.sort_unstable();
        pairs.dedup();
        assert_eq!(pairs.len(), 9, "each owner gets events through each node");
        let o = opts(&["--nodes", "a:1,b:2,c:3", "--spread", "--publish-node", "1"]);
        assert_eq!((0..3).map(|j| o.node_of(4, j)).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(o.publisher_of(7), 1);
    }

    #[test]
    fn events_number_from_zero_on_each_channel() {
        assert_eq!(slot(0, 4), (0, 0));
        assert_eq!(slot(5, 4), (1, 1));
        assert_eq!(slot(11, 4), (3, 2));
    }
}
