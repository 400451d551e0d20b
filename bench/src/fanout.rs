//! `fanout` (one channel, many subscribers, paced publishes) and `throughput` (many channels,
//! publishers as fast as the server accepts).

use super::Env;
use super::client::{Conn, Incoming, source_for};
use super::pool::{Gate, Setup, spawn_paced};
use super::report::{GeneratorClock, Report, latency, now_us, round, sample};
use super::rest::Publisher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The data of a benchmark event: `sb|seq|sent_us|padding`.
pub fn payload(seq: u64, pad: &str) -> String {
    format!("sb|{seq}|{}|{pad}", now_us())
}

/// Finds `sb|seq|sent_us|` in a received frame.
pub fn marker(text: &str) -> Option<(u64, u64)> {
    let rest = &text[text.find("sb|")? + 3..];
    let mut parts = rest.splitn(3, '|');
    let seq = parts.next()?.parse().ok()?;
    let sent = parts.next()?.parse().ok()?;
    Some((seq, sent))
}

/// What one subscriber saw.
#[derive(Default)]
pub struct Seen {
    /// Benchmark events received.
    pub received: u64,
    /// Events whose sequence number was not the previous one plus one.
    pub out_of_order: u64,
    /// Latencies in microseconds (every `sample_every`th event).
    pub latencies: Vec<u32>,
    /// The close code, if the server closed the connection.
    pub closed: Option<Option<u16>>,
    /// Set-up error.
    pub error: Option<String>,
}

/// Connects, subscribes to `channel`, then records benchmark events until `stop`.
pub async fn subscriber(
    env: Arc<Env>,
    i: usize,
    setup: Setup,
    channel: String,
    total: Arc<AtomicU64>,
    stop: CancellationToken,
    sample_every: u64,
) -> Seen {
    let mut seen = Seen::default();
    let mut conn = match Conn::open(&env.target, source_for(i, env.sources)).await {
        Ok(c) => c,
        Err(e) => {
            seen.error = Some(e.to_string());
            return seen;
        }
    };
    if let Err(e) = conn.subscribe(&channel, None, None, |_| {}).await {
        seen.error = Some(e.to_string());
        return seen;
    }
    setup.ready();
    let mut next_seq = 0u64;
    // Registered once: a fresh `cancelled()` per message would join and leave the token's waiter
    // list every time, a cost on the load generator's core at high delivery rates.
    let cancelled = stop.cancelled();
    tokio::pin!(cancelled);
    loop {
        let text = tokio::select! {
            biased;
            m = conn.next() => match m {
                Incoming::Text(t) => t,
                Incoming::Closed(code) => {
                    seen.closed = Some(code);
                    return seen;
                }
            },
            () = &mut cancelled => break,
        };
        if let Some((seq, sent)) = marker(&text) {
            if seq != next_seq {
                seen.out_of_order += 1;
            }
            next_seq = seq + 1;
            if seen.received % sample_every == 0 {
                seen.latencies.push(now_us().saturating_sub(sent).min(u64::from(u32::MAX)) as u32);
            }
            seen.received += 1;
            total.fetch_add(1, Ordering::Relaxed);
        }
    }
    conn.close().await;
    seen
}

/// Waits until `total` reaches `expected`, or nothing arrived for `idle`; returns the last progress time.
pub async fn settle(total: &AtomicU64, expected: u64, idle: Duration) -> Instant {
    let (mut last, mut at) = (total.load(Ordering::Relaxed), Instant::now());
    loop {
        let now = total.load(Ordering::Relaxed);
        if now != last {
            (last, at) = (now, Instant::now());
        }
        if now >= expected || at.elapsed() > idle {
            return at;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sums subscribers' results into the report and checks delivered == expected, in order, no closes.
pub async fn collect(report: &mut Report, handles: Vec<tokio::task::JoinHandle<Seen>>, expected: u64) -> u64 {
    let (mut delivered, mut out_of_order, mut closed, mut errors) = (0u64, 0u64, 0usize, 0usize);
    let mut lat = Vec::new();
    let mut first_error = None;
    for h in handles {
        let Ok(s) = h.await else { continue };
        delivered += s.received;
        out_of_order += s.out_of_order;
        closed += usize::from(s.closed.is_some());
        if let Some(e) = s.error {
            errors += 1;
            first_error.get_or_insert(e);
        }
        lat.extend(s.latencies);
    }
    report.figure("delivered", delivered);
    report.figure("expected", expected);
    report.figure("latency", latency(lat));
    if delivered != expected {
        report.fail(format!("delivered {delivered} of {expected} events"));
    }
    if out_of_order > 0 {
        report.fail(format!("{out_of_order} events arrived out of order"));
    }
    if closed > 0 {
        report.fail(format!("{closed} subscribers were closed by the server"));
    }
    if errors > 0 {
        report.fail(format!("{errors} subscribers failed to set up: {}", first_error.unwrap_or_default()));
    }
    delivered
}

/// Options of `fanout`.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutOpts {
    /// Subscribers on the channel.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Events to publish.
    #[arg(long, default_value_t = 100)]
    pub messages: u64,
    /// Publishes per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Bytes of padding in each event's data.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
}

/// S subscribers on one channel, M paced publishes; delivery, order, latency, server CPU.
pub async fn fanout(env: Arc<Env>, o: FanoutOpts) -> Report {
    let mut report = Report::new("fanout");
    report.param("subscribers", o.subscribers);
    report.param("messages", o.messages);
    report.param("rate", o.rate);
    report.param("payload", o.payload);
    let (total, stop, gate) = (Arc::new(AtomicU64::new(0)), CancellationToken::new(), Arc::new(Gate::default()));
    let sample_every = (o.messages * o.subscribers as u64 / 2_000_000).max(1);
    let handles = spawn_paced(o.subscribers, env.connect_rate, &gate, |i, setup| {
        subscriber(env.clone(), i, setup, "bench-fanout".into(), total.clone(), stop.clone(), sample_every)
    })
    .await;
    let (ready, _) = gate.wait(o.subscribers, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut publisher = Publisher::new(&env.target);
    let pad = "x".repeat(o.payload);
    let before = sample(env.pid);
    let clock = GeneratorClock::start();
    let start = Instant::now();
    let mut rest_errors = 0u64;
    for m in 0..o.messages {
        tokio::time::sleep_until(start + Duration::from_secs_f64(m as f64 / o.rate)).await;
        match publisher.publish("bench-fanout", "bench", &payload(m, &pad)).await {
            Ok(200) => {}
            Ok(status) => {
                rest_errors += 1;
                report.fail(format!("publish {m} answered {status}"));
            }
            Err(e) => {
                rest_errors += 1;
                report.fail(format!("publish {m} failed: {e}"));
            }
        }
    }
    let expected = (o.messages - rest_errors) * ready as u64;
    let last = settle(&total, expected, Duration::from_secs(10)).await;
    let after = sample(env.pid);
    report.generator(clock.stop());
    let elapsed = last.duration_since(start).as_secs_f64();
    stop.cancel();
    let delivered = collect(&mut report, handles, expected).await;
    report.figure("deliveries_per_s", round(delivered as f64 / elapsed.max(1e-9), 0));
    report.server(before, after, &[("delivery", delivered), ("publish", o.messages)]);
    report
}

/// Options of `throughput`.
#[derive(Debug, Clone, clap::Args)]
pub struct ThroughputOpts {
    /// Channels.
    #[arg(long, default_value_t = 1000)]
    pub channels: usize,
    /// Subscribers per channel.
    #[arg(long, default_value_t = 10)]
    pub per_channel: usize,
    /// Concurrent publishers, each with its own HTTP connection and its own channels.
    #[arg(long, default_value_t = 8)]
    pub publishers: usize,
    /// Seconds to publish for.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Bytes of padding in each event's data.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Each publish on a new connection with `Connection: close`, as the official Node SDK sends
    /// them unless it is given `keepAlive`.
    #[arg(long)]
    pub new_connections: bool,
}

/// Publishers as fast as accepted over many channels; publishes/s, delivery and server CPU.
pub async fn throughput(env: Arc<Env>, o: ThroughputOpts) -> Report {
    let mut report = Report::new("throughput");
    report.param("channels", o.channels);
    report.param("per_channel", o.per_channel);
    report.param("publishers", o.publishers);
    report.param("duration", o.duration);
    report.param("new_connections", o.new_connections);
    let n = o.channels * o.per_channel;
    let (total, stop, gate) = (Arc::new(AtomicU64::new(0)), CancellationToken::new(), Arc::new(Gate::default()));
    let handles = spawn_paced(n, env.connect_rate, &gate, |i, setup| {
        let channel = format!("bench-tp-{}", i % o.channels);
        subscriber(env.clone(), i, setup, channel, total.clone(), stop.clone(), 16)
    })
    .await;
    let (ready, failed) = gate.wait(n, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = sample(env.pid);
    let clock = GeneratorClock::start();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(o.duration);
    let pad = Arc::new("x".repeat(o.payload));
    let mut pubs = Vec::new();
    for p in 0..o.publishers.max(1) {
        let (env, pad, channels, step) = (env.clone(), pad.clone(), o.channels, o.publishers.max(1));
        let close = o.new_connections;
        pubs.push(tokio::spawn(async move {
            let mut publisher = Publisher::new(&env.target).closing(close);
            let mine: Vec<usize> = (p..channels).step_by(step).collect();
            let mut seqs = vec![0u64; mine.len()];
            let (mut accepted, mut refused) = (0u64, 0u64);
            let mut k = 0;
            while Instant::now() < end && !mine.is_empty() {
                let channel = format!("bench-tp-{}", mine[k]);
                match publisher.publish(&channel, "bench", &payload(seqs[k], &pad)).await {
                    Ok(200) => {
                        accepted += 1;
                        seqs[k] += 1;
                    }
                    _ => refused += 1,
                }
                k = (k + 1) % mine.len();
            }
            (accepted, refused)
        }));
    }
    let (mut accepted, mut refused) = (0u64, 0u64);
    for p in pubs {
        if let Ok((a, r)) = p.await {
            accepted += a;
            refused += r;
        }
    }
    let published_s = start.elapsed().as_secs_f64();
    // Every subscriber of a channel gets each accepted publish (a channel's subscribers all set up).
    let expected =
        if failed == 0 { accepted * o.per_channel as u64 } else { accepted * ready as u64 / o.channels as u64 };
    settle(&total, expected, Duration::from_secs(10)).await;
    let after = sample(env.pid);
    report.generator(clock.stop());
    stop.cancel();
    let delivered = collect(&mut report, handles, expected).await;
    report.figure("publishes", accepted);
    report.figure("publishes_refused", refused);
    report.figure("publishes_per_s", round(accepted as f64 / published_s, 0));
    if refused > 0 {
        report.fail(format!("{refused} publishes were refused or failed"));
    }
    report.server(before, after, &[("publish", accepted), ("delivery", delivered)]);
    report
}
