//! `storm`: many subscribers that stop reading (slow consumers) and a few that keep reading, on
//! one channel, while REST events are published to it. The server must close the slow ones (4100
//! once their outbox is over its bounds, or drop them when a write takes no bytes) and keep
//! delivering every event to the readers. The server's peak memory is the driver's to read.

use super::Env;
use super::client::{Conn, Incoming, event};
use super::pool::{Gate, spawn_paced};
use super::report::{Report, round, sample};
use super::rest::Publisher;
use super::soak::seq_of;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::{Duration, Instant, MissedTickBehavior, timeout};
use tokio_util::sync::CancellationToken;

const CHANNEL: &str = "storm";

/// Options of `storm`.
#[derive(Debug, Clone, clap::Args)]
pub struct StormOpts {
    /// Subscribers that read nothing after subscribing.
    #[arg(long, default_value_t = 1000)]
    pub slow: usize,
    /// Subscribers that keep reading and must get every event.
    #[arg(long, default_value_t = 20)]
    pub readers: usize,
    /// REST publishes per second.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Size of each event's data, in bytes.
    #[arg(long, default_value_t = 2000)]
    pub event_bytes: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Publishing connections, sharing the rate.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Receive buffer of the slow subscribers' sockets, in bytes (0: the kernel's default, which
    /// lets the kernel hold megabytes per connection before the server's outbox fills).
    #[arg(long, default_value_t = 8192)]
    pub slow_recv_buffer: u32,
}

/// Publishes at `rate` until `end`; records which sequence numbers were answered 200.
async fn publish(
    env: Arc<Env>,
    rate: f64,
    pad: Arc<String>,
    end: Instant,
    next: Arc<AtomicU64>,
    ok: Arc<Mutex<Vec<bool>>>,
) -> u64 {
    let mut p = Publisher::new(&env.target);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failed = 0;
    while Instant::now() < end {
        tick.tick().await;
        let seq = next.fetch_add(1, Ordering::Relaxed);
        let data = format!(r#"{{"seq":{seq},"pad":"{pad}"}}"#);
        let good = matches!(p.publish(CHANNEL, "storm", &data).await, Ok(200));
        failed += u64::from(!good);
        if let Ok(mut ok) = ok.lock() {
            let i = seq as usize;
            if ok.len() <= i {
                ok.resize(i + 1, false);
            }
            ok[i] = good;
        }
    }
    failed
}

#[derive(Default)]
struct Reader {
    seen: Vec<u8>,
    problem: Option<String>,
}

async fn reader(conn: anyhow::Result<Conn>, done: CancellationToken) -> Reader {
    let mut r = Reader::default();
    let mut conn = match conn {
        Ok(c) => c,
        Err(e) => {
            r.problem = Some(format!("{e:#}"));
            return r;
        }
    };
    loop {
        tokio::select! {
            m = conn.next() => match m {
                Incoming::Text(text) => {
                    if event(&text).is_some_and(|e| e.event == "storm")
                        && let Some(seq) = seq_of(&text).and_then(|s| usize::try_from(s).ok())
                    {
                        if r.seen.len() <= seq {
                            r.seen.resize(seq + 1, 0);
                        }
                        r.seen[seq] = r.seen[seq].saturating_add(1);
                    }
                }
                Incoming::Closed(code) => {
                    r.problem = Some(format!("reader closed by the server ({code:?})"));
                    return r;
                }
            },
            () = done.cancelled() => break,
        }
    }
    conn.close().await;
    r
}

/// How a slow subscriber ended, read once the storm is over: its close code, `dropped` (the
/// connection ended without one), or `open`; and how many events it could still read.
async fn slow_end(conn: Conn) -> (String, u64) {
    let mut conn = conn;
    let mut events = 0u64;
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        match timeout(end.saturating_duration_since(Instant::now()).min(Duration::from_secs(3)), conn.next()).await {
            Ok(Incoming::Text(_)) => events += 1,
            Ok(Incoming::Closed(Some(code))) => return (code.to_string(), events),
            Ok(Incoming::Closed(None)) => return ("dropped".into(), events),
            Err(_) => return ("open".into(), events),
        }
    }
}

/// Runs the storm.
pub async fn storm(env: Arc<Env>, o: StormOpts) -> Report {
    let mut report = Report::new("storm");
    report.param("slow", o.slow);
    report.param("readers", o.readers);
    report.param("rate", o.rate);
    report.param("event_bytes", o.event_bytes);
    report.param("duration", o.duration);
    report.param("publishers", o.publishers);
    report.param("slow_recv_buffer", o.slow_recv_buffer);
    let gate = Arc::new(Gate::default());
    let n = o.slow + o.readers;
    let every = (n / o.readers.max(1)).max(1);
    let is_reader = |i: usize| o.readers > 0 && i % every == 0 && i / every < o.readers;
    let handles = spawn_paced(n, env.connect_rate, &gate, |i, setup| {
        let env = env.clone();
        let buffer = (!is_reader(i) && o.slow_recv_buffer > 0).then_some(o.slow_recv_buffer);
        async move {
            let r = async {
                let mut c = Conn::open_with(&env.target, None, buffer).await?;
                c.subscribe(CHANNEL, None, None, |_| {}).await?;
                anyhow::Ok(c)
            }
            .await;
            if r.is_ok() {
                setup.ready();
            }
            r
        }
    })
    .await;
    let (ready, failed) = gate.wait(n, Duration::from_secs(120)).await;
    report.figure("subscribed", ready);
    report.figure("subscribe_failed", failed);
    let mut slow = Vec::new();
    let mut readers = Vec::new();
    let done = CancellationToken::new();
    for (i, h) in handles.into_iter().enumerate() {
        let conn = match h.await {
            Ok(c) => c,
            Err(e) => Err(anyhow::anyhow!("task: {e}")),
        };
        if is_reader(i) {
            readers.push(tokio::spawn(reader(conn, done.clone())));
        } else if let Ok(c) = conn {
            slow.push(c);
        }
    }
    let before = sample(env.pid);
    let pad = Arc::new("x".repeat(o.event_bytes.saturating_sub(40)));
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(o.duration);
    let (next, oks) = (Arc::new(AtomicU64::new(0)), Arc::new(Mutex::new(Vec::new())));
    let publishers: Vec<_> = (0..o.publishers.max(1))
        .map(|_| {
            let rate = o.rate / o.publishers.max(1) as f64;
            tokio::spawn(publish(env.clone(), rate, pad.clone(), end, next.clone(), oks.clone()))
        })
        .collect();
    let mut failed_publishes = 0u64;
    for p in publishers {
        failed_publishes += p.await.unwrap_or(0);
    }
    let seqs_ok: Vec<bool> = oks.lock().map(|v| v.clone()).unwrap_or_default();
    let ok = seqs_ok.iter().filter(|g| **g).count() as u64;
    let elapsed = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = sample(env.pid);
    done.cancel();
    let (mut missing, mut duplicated, mut problems) = (0u64, 0u64, Vec::new());
    for h in readers {
        let r = h.await.unwrap_or_default();
        problems.extend(r.problem);
        for (s, good) in seqs_ok.iter().enumerate() {
            let times = r.seen.get(s).copied().unwrap_or(0);
            match (good, times) {
                (true, 0) => missing += 1,
                (_, t) if t > 1 => duplicated += u64::from(t - 1),
                _ => {}
            }
        }
    }
    let ends: Vec<_> = slow.into_iter().map(|c| tokio::spawn(slow_end(c))).collect();
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    let mut slow_events = Vec::new();
    for e in ends {
        let (code, events) = e.await.unwrap_or_else(|_| ("task failed".into(), 0));
        *codes.entry(code).or_default() += 1;
        slow_events.push(events);
    }
    slow_events.sort_unstable();
    report.figure("published_200", ok);
    report.figure("publish_failed", failed_publishes);
    report.figure("publishes_per_s", round(ok as f64 / elapsed, 1));
    report.figure("reader_events_missing", missing);
    report.figure("reader_events_duplicated", duplicated);
    report.figure("slow_ends", serde_json::to_value(&codes).unwrap_or_default());
    if let (Some(min), Some(max)) = (slow_events.first(), slow_events.last()) {
        report.figure("slow_events_read_after_the_storm_min", *min);
        report.figure("slow_events_read_after_the_storm_median", slow_events[slow_events.len() / 2]);
        report.figure("slow_events_read_after_the_storm_max", *max);
    }
    report.server(before, after, &[]);
    if missing > 0 || duplicated > 0 {
        report.fail(format!("readers: {missing} events missing, {duplicated} duplicated"));
    }
    if let Some(p) = problems.first() {
        report.fail(format!("{} readers had problems, first: {p}", problems.len()));
    }
    if failed_publishes > 0 {
        report.fail(format!("{failed_publishes} publishes not answered 200"));
    }
    report
}
