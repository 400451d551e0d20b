//! `sinew-bench`: a load generator for Pusher-protocol servers (Sinew or any other).
//!
//! It connects as Pusher clients over WebSocket, publishes through the signed REST API, checks that
//! every event arrives once and in order, and reports latency, rates and, given `--server-pid`, the
//! server's CPU time and resident memory from `/proc`. Output: a readable table, plus JSON with `--json`.

mod chaos;
mod client;
mod cluster;
mod fanout;
mod framing;
mod idle;
mod pairs;
mod pool;
mod presence;
mod report;
mod rest;
mod soak;
mod storm;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

/// Load generator for Pusher-protocol servers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1", global = true)]
    host: String,
    /// Server port (WebSocket and REST).
    #[arg(long, default_value_t = 6001, global = true)]
    port: u16,
    /// App id (REST paths).
    #[arg(long, default_value = "1", global = true)]
    app_id: String,
    /// App key.
    #[arg(long, default_value = "app-key", global = true)]
    key: String,
    /// App secret (signs REST calls and channel auth).
    #[arg(long, default_value = "app-secret", global = true)]
    secret: String,
    /// The server's process id: its CPU time and memory are read from /proc.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// New connections per second while setting up.
    #[arg(long, default_value_t = 1000, global = true)]
    connect_rate: u32,
    /// Source addresses 127.0.0.1..=127.0.0.N to spread connections over (0 = one per 25k connections).
    #[arg(long, default_value_t = 0, global = true)]
    source_addrs: usize,
    /// Append the report as one JSON line to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Label stored in the JSON report (e.g. the server's name).
    #[arg(long, default_value = "", global = true)]
    label: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Idle subscribed connections: memory and CPU per connection.
    Connect(idle::ConnectOpts),
    /// One channel, many subscribers, paced publishes: delivery, latency, CPU per delivery.
    Fanout(fanout::FanoutOpts),
    /// Many channels, publishers as fast as accepted: publishes per second.
    Throughput(fanout::ThroughputOpts),
    /// Pairs on private channels exchanging client events: round trip, CPU per event.
    ClientEvents(pairs::PairOpts),
    /// Members joining and leaving a presence channel while others watch.
    PresenceChurn(presence::ChurnOpts),
    /// A long run of connection churn, subscriptions, presence and publishes (tests/soak/).
    Soak(soak::SoakOpts),
    /// Subscribers on every node of a cluster, numbered REST publishes through each, and a count
    /// of every event sent and received while something breaks (tests/soak/chaos.py).
    ChaosCount(chaos::ChaosOpts),
    /// Subscribers that stop reading while events are published to them, and a few that read.
    Storm(storm::StormOpts),
    /// Channels held by different nodes of a cluster, REST publishes over them: deliveries,
    /// latency, and each node's CPU time and cluster-bus messages.
    ClusterFanout(cluster::ClusterOpts),
}

/// Settings shared by every scenario.
pub struct Env {
    target: client::Target,
    pid: Option<u32>,
    connect_rate: u32,
    sources: usize,
}

impl Scenario {
    fn connections(&self) -> usize {
        match self {
            Scenario::Connect(o) => o.connections,
            Scenario::Fanout(o) => o.subscribers,
            Scenario::Throughput(o) => o.channels * o.per_channel,
            Scenario::ClientEvents(o) => o.pairs * 2,
            Scenario::PresenceChurn(o) => o.watchers + o.churners,
            Scenario::Soak(o) => o.listeners + o.churners,
            Scenario::ChaosCount(o) => o.nodes.len() * o.subscribers_per_node,
            Scenario::Storm(o) => o.slow + o.readers,
            Scenario::ClusterFanout(o) => o.channels * o.per_channel,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    report::now_us();
    let authority = format!("{}:{}", cli.host, cli.port);
    let addr = tokio::net::lookup_host(&authority)
        .await
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("no address for {authority}"))?;
    let sources = match cli.source_addrs {
        0 => cli.scenario.connections().div_ceil(25_000).max(1),
        n => n,
    };
    let env = Arc::new(Env {
        target: client::Target { addr, authority, app_id: cli.app_id, key: cli.key, secret: cli.secret },
        pid: cli.server_pid,
        connect_rate: cli.connect_rate,
        sources,
    });
    let mut report = match cli.scenario {
        Scenario::Connect(o) => idle::connect(env, o).await,
        Scenario::Fanout(o) => fanout::fanout(env, o).await,
        Scenario::Throughput(o) => fanout::throughput(env, o).await,
        Scenario::ClientEvents(o) => pairs::client_events(env, o).await,
        Scenario::PresenceChurn(o) => presence::presence_churn(env, o).await,
        Scenario::Soak(o) => soak::soak(env, o).await,
        Scenario::ChaosCount(o) => chaos::chaos_count(env, o).await,
        Scenario::Storm(o) => storm::storm(env, o).await,
        Scenario::ClusterFanout(o) => cluster::cluster_fanout(env, o).await,
    };
    if !cli.label.is_empty() {
        report.param("label", cli.label.as_str());
    }
    print!("{}", report.table());
    if let Some(path) = cli.json {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        writeln!(f, "{}", report.json())?;
    }
    if !report.ok() {
        std::process::exit(2);
    }
    Ok(())
}
