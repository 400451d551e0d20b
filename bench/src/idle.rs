//! `connect`: N idle subscribed connections opened at a bounded rate; memory and CPU per connection.

use super::Env;
use super::client::{Conn, Incoming, source_for};
use super::pool::{Gate, spawn_paced};
use super::report::{GeneratorClock, Report, round, sample};
use std::sync::Arc;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Options of `connect`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectOpts {
    /// Connections to open.
    #[arg(long, default_value_t = 5000)]
    pub connections: usize,
    /// Public channels the connections are spread over.
    #[arg(long, default_value_t = 100)]
    pub channels: usize,
    /// Seconds to wait after the last connection before measuring memory.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,
}

/// What ended an idle connection.
enum Outcome {
    Stopped,
    Closed(Option<u16>),
    Failed(String),
}

/// Opens the connections, measures the server, closes them.
pub async fn connect(env: Arc<Env>, o: ConnectOpts) -> Report {
    let mut report = Report::new("connect");
    report.param("connections", o.connections);
    report.param("channels", o.channels);
    report.param("rate", env.connect_rate);
    report.param("source_addrs", env.sources.max(1));
    let (stop, gate) = (CancellationToken::new(), Arc::new(Gate::default()));
    let before = sample(env.pid);
    let clock = GeneratorClock::start();
    let start = Instant::now();
    let handles = spawn_paced(o.connections, env.connect_rate, &gate, |i, setup| {
        let (env, stop, channel) = (env.clone(), stop.clone(), format!("bench-idle-{}", i % o.channels.max(1)));
        async move {
            let mut conn = match Conn::open(&env.target, source_for(i, env.sources)).await {
                Ok(c) => c,
                Err(e) => return Outcome::Failed(e.to_string()),
            };
            if let Err(e) = conn.subscribe(&channel, None, None, |_| {}).await {
                return Outcome::Failed(e.to_string());
            }
            setup.ready();
            loop {
                tokio::select! {
                    m = conn.next() => if let Incoming::Closed(code) = m { return Outcome::Closed(code) },
                    () = stop.cancelled() => break,
                }
            }
            conn.close().await;
            Outcome::Stopped
        }
    })
    .await;
    let (ready, failed) = gate.wait(o.connections, Duration::from_secs(300)).await;
    let connected = sample(env.pid);
    report.generator(clock.stop());
    let connect_s = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(o.settle)).await;
    let after = sample(env.pid);
    report.figure("ready", ready);
    report.figure("connect_s", round(connect_s, 2));
    report.figure("connections_per_s", round(ready as f64 / connect_s.max(1e-9), 0));
    if let (Some(b), Some(c), Some(a)) = (before, connected, after) {
        report.figure("server_cpu_s", round(c.cpu_s - b.cpu_s, 3));
        if ready > 0 {
            report.figure("server_cpu_us_per_connection", round((c.cpu_s - b.cpu_s) * 1e6 / ready as f64, 2));
            report.figure("server_bytes_per_connection", round((a.rss as f64 - b.rss as f64) / ready as f64, 0));
        }
        report.figure("server_rss_before_bytes", b.rss);
        report.figure("server_rss_after_bytes", a.rss);
    }
    stop.cancel();
    let (mut closed, mut first_error, mut close_code) = (0usize, None, None);
    for h in handles {
        match h.await {
            Ok(Outcome::Closed(code)) => {
                closed += 1;
                close_code = close_code.or(code);
            }
            Ok(Outcome::Failed(e)) => {
                first_error.get_or_insert(e);
            }
            _ => {}
        }
    }
    if failed > 0 || ready < o.connections {
        report.fail(format!(
            "{} of {} connections failed: {}",
            o.connections - ready,
            o.connections,
            first_error.unwrap_or_default()
        ));
    }
    if closed > 0 {
        report.fail(format!("{closed} idle connections were closed by the server (code {close_code:?})"));
    }
    report
}
