//! `client-events`: pairs of connections on private channels; one side sends `client-ping`, the
//! other answers `client-pong`; round-trip time and server CPU per relayed event.

use super::Env;
use super::client::{Conn, Incoming, source_for};
use super::fanout::marker;
use super::pool::{Gate, Setup, spawn_paced};
use super::report::{GeneratorClock, Report, latency, now_us, round, sample};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Barrier;
use tokio::time::{Duration, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Options of `client-events`.
#[derive(Debug, Clone, clap::Args)]
pub struct PairOpts {
    /// Pairs of connections, each pair on its own private channel.
    #[arg(long, default_value_t = 500)]
    pub pairs: usize,
    /// Round trips per second per pair (stay under the servers' per-connection client event limit).
    #[arg(long, default_value_t = 4.0)]
    pub rate: f64,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
}

#[derive(Default)]
struct Side {
    sent: u64,
    received: u64,
    out_of_order: u64,
    rtt: Vec<u32>,
    problem: Option<String>,
}

fn client_event(name: &str, channel: &str, data: &str) -> String {
    format!(r#"{{"event":"{name}","channel":"{channel}","data":"{data}"}}"#)
}

/// One side of a pair. Side 0 pings on a timer after `start`; side 1 echoes.
#[allow(clippy::too_many_arguments)]
async fn side(
    env: Arc<Env>,
    i: usize,
    setup: Setup,
    start: Arc<Barrier>,
    stop: CancellationToken,
    done: CancellationToken,
    relayed: Arc<AtomicU64>,
    rate: f64,
) -> Side {
    let mut s = Side::default();
    let channel = format!("private-bench-pair-{}", i / 2);
    let pinger = i % 2 == 0;
    let conn = async {
        let mut c = Conn::open(&env.target, source_for(i, env.sources)).await?;
        let auth = env.target.auth_private(&c.socket_id, &channel);
        c.subscribe(&channel, Some(&auth), None, |_| {}).await?;
        anyhow::Ok(c)
    };
    let mut conn = match conn.await {
        Ok(c) => c,
        Err(e) => {
            s.problem = Some(e.to_string());
            start.wait().await;
            return s;
        }
    };
    setup.ready();
    start.wait().await;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Spread the pairs' pings over the first period.
    tokio::time::sleep(Duration::from_secs_f64((i / 2 % 1000) as f64 / 1000.0 / rate)).await;
    let mut next_seq = 0u64;
    loop {
        tokio::select! {
            biased;
            m = conn.next() => match m {
                Incoming::Text(t) => {
                    let Some((seq, sent)) = marker(&t) else { continue };
                    s.received += 1;
                    relayed.fetch_add(1, Ordering::Relaxed);
                    if seq != next_seq {
                        s.out_of_order += 1;
                    }
                    next_seq = seq + 1;
                    if pinger {
                        s.rtt.push(now_us().saturating_sub(sent).min(u64::from(u32::MAX)) as u32);
                    } else {
                        let data = format!("sb|{seq}|{sent}|");
                        if conn.send(client_event("client-pong", &channel, &data)).await.is_err() {
                            s.problem = Some("echo failed".into());
                            break;
                        }
                        s.sent += 1;
                    }
                }
                Incoming::Closed(code) => {
                    s.problem = Some(format!("closed by the server ({code:?})"));
                    return s;
                }
            },
            _ = tick.tick(), if pinger && !stop.is_cancelled() => {
                let data = format!("sb|{}|{}|", s.sent, now_us());
                if conn.send(client_event("client-ping", &channel, &data)).await.is_err() {
                    s.problem = Some("send failed".into());
                    break;
                }
                s.sent += 1;
            }
            () = done.cancelled(), if !pinger => break,
            () = tokio::time::sleep(Duration::from_secs(10)), if stop.is_cancelled() => break,
        }
        if pinger && stop.is_cancelled() && s.received >= s.sent {
            break;
        }
    }
    conn.close().await;
    s
}

/// Runs the pairs and reports round trips, delivery and server CPU per relayed event.
pub async fn client_events(env: Arc<Env>, o: PairOpts) -> Report {
    let mut report = Report::new("client-events");
    report.param("pairs", o.pairs);
    report.param("rate", o.rate);
    report.param("duration", o.duration);
    let n = o.pairs * 2;
    let (stop, done) = (CancellationToken::new(), CancellationToken::new());
    let (gate, relayed) = (Arc::new(Gate::default()), Arc::new(AtomicU64::new(0)));
    let start = Arc::new(Barrier::new(n + 1));
    let handles = spawn_paced(n, env.connect_rate, &gate, |i, setup| {
        side(env.clone(), i, setup, start.clone(), stop.clone(), done.clone(), relayed.clone(), o.rate)
    })
    .await;
    gate.wait(n, Duration::from_secs(120)).await;
    let before = sample(env.pid);
    let clock = GeneratorClock::start();
    let t0 = Instant::now();
    start.wait().await;
    tokio::time::sleep(Duration::from_secs_f64(o.duration)).await;
    // Pingers stop sending now; echoers stop once the pingers have their last pong.
    let mut pingers = Vec::new();
    let mut echoers = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        if i % 2 == 0 { pingers.push(h) } else { echoers.push(h) }
    }
    stop.cancel();
    let mut sides = Vec::new();
    for h in pingers {
        sides.push((true, h.await.unwrap_or_default()));
    }
    let after = sample(env.pid);
    report.generator(clock.stop());
    let elapsed = t0.elapsed().as_secs_f64();
    done.cancel();
    for h in echoers {
        sides.push((false, h.await.unwrap_or_default()));
    }
    let (mut sent, mut echoed, mut back, mut disorder, mut rtt, mut problems) = (0, 0, 0, 0, Vec::new(), Vec::new());
    for (pinger, s) in sides {
        if pinger {
            sent += s.sent;
            back += s.received;
            rtt.extend(s.rtt);
        } else {
            echoed += s.received;
        }
        disorder += s.out_of_order;
        problems.extend(s.problem);
    }
    report.figure("pings_sent", sent);
    report.figure("pings_delivered", echoed);
    report.figure("pongs_delivered", back);
    report.figure("round_trip", latency(rtt));
    let events = relayed.load(Ordering::Relaxed);
    report.figure("relayed_per_s", round(events as f64 / elapsed, 0));
    if echoed != sent || back != sent {
        report.fail(format!("sent {sent} pings, {echoed} arrived, {back} pongs came back"));
    }
    if disorder > 0 {
        report.fail(format!("{disorder} client events arrived out of order"));
    }
    if let Some(p) = problems.first() {
        report.fail(format!("{} connections had problems, first: {p}", problems.len()));
    }
    report.server(before, after, &[("client_event", events)]);
    report
}
