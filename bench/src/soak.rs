//! `soak`: a long run of everything that creates and frees server state at once. Churners open a
//! connection, subscribe to a public, a private and a presence channel, read for a moment, leave,
//! and close (politely or by dropping the socket), again and again; a publisher sends REST events
//! with sequence numbers; listeners stay subscribed the whole run and must get every public event
//! exactly once. The server's memory over time is the driver's to sample (`tests/soak/`).

use super::Env;
use super::client::{Conn, Incoming, event};
use super::report::{Report, round, sample};
use super::rest::Publisher;
use anyhow::bail;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::time::{Duration, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

const PRESENCE: &str = "presence-soak";

/// Options of `soak`.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakOpts {
    /// Seconds to run.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Public channels `soak-0..N` (each churner cycle picks one; listeners take them all).
    #[arg(long, default_value_t = 10)]
    pub channels: usize,
    /// Connections that stay the whole run, on every public channel and the presence channel.
    #[arg(long, default_value_t = 20)]
    pub listeners: usize,
    /// Connections opened, subscribed, unsubscribed and closed in a loop, each as its own user.
    #[arg(long, default_value_t = 50)]
    pub churners: usize,
    /// Longest a churner stays connected in one cycle, in milliseconds (it stays 10% to 100% of it).
    #[arg(long, default_value_t = 2000)]
    pub hold_ms: u64,
    /// REST publishes per second (every fifth to a private channel no listener is on).
    #[arg(long, default_value_t = 50.0)]
    pub publish_rate: f64,
    /// Size of each event's data, in bytes.
    #[arg(long, default_value_t = 200)]
    pub event_bytes: usize,
    /// Seconds between progress lines on stderr.
    #[arg(long, default_value_t = 60.0)]
    pub progress: f64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    cycles: AtomicU64,
    subscribes: AtomicU64,
    unsubscribes: AtomicU64,
    dropped_sockets: AtomicU64,
    churn_received: AtomicU64,
    churn_errors: AtomicU64,
    published_ok: AtomicU64,
    published_public_ok: AtomicU64,
    publish_failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Counters {
    fn error(&self, what: String) {
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(what);
        }
    }
}

fn member(user: &str) -> String {
    format!(r#"{{"user_id":"{user}","user_info":{{"name":"soak {user}"}}}}"#)
}

/// The `seq` inside an event's data, when it has one.
pub fn seq_of(text: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let data: serde_json::Value = serde_json::from_str(v.get("data")?.as_str()?).ok()?;
    data.get("seq")?.as_u64()
}

/// One churner cycle: connect, three subscriptions, read, leave two of them, close.
async fn cycle(
    env: &Env,
    o: &SoakOpts,
    user: &str,
    n: u64,
    c: &Counters,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let mut conn = Conn::open(&env.target, None).await?;
    c.connections.fetch_add(1, Ordering::Relaxed);
    let public = format!("soak-{}", rand::random_range(0..o.channels.max(1)));
    let private = format!("private-{public}");
    conn.subscribe(&public, None, None, |_| {}).await?;
    let auth = env.target.auth_private(&conn.socket_id, &private);
    conn.subscribe(&private, Some(&auth), None, |_| {}).await?;
    let data = member(user);
    let auth = env.target.auth_presence(&conn.socket_id, PRESENCE, &data);
    conn.subscribe(PRESENCE, Some(&auth), Some(&data), |_| {}).await?;
    c.subscribes.fetch_add(3, Ordering::Relaxed);
    let hold = Duration::from_millis(rand::random_range(o.hold_ms / 10..=o.hold_ms.max(1)));
    let end = Instant::now() + hold;
    loop {
        tokio::select! {
            m = conn.next() => match m {
                Incoming::Text(_) => { c.churn_received.fetch_add(1, Ordering::Relaxed); }
                Incoming::Closed(code) => bail!("churner closed by the server ({code:?})"),
            },
            () = tokio::time::sleep_until(end) => break,
            () = stop.cancelled() => break,
        }
    }
    conn.unsubscribe(PRESENCE).await?;
    conn.unsubscribe(&public).await?;
    c.unsubscribes.fetch_add(2, Ordering::Relaxed);
    if n % 2 == 0 {
        conn.close().await;
    } else {
        c.dropped_sockets.fetch_add(1, Ordering::Relaxed);
        drop(conn);
    }
    Ok(())
}

async fn churner(env: Arc<Env>, o: Arc<SoakOpts>, i: usize, c: Arc<Counters>, stop: CancellationToken) {
    let user = format!("c{i}");
    // Spread the first cycles over one hold period.
    tokio::time::sleep(Duration::from_millis(o.hold_ms * i as u64 / o.churners.max(1) as u64)).await;
    let mut n = 0u64;
    while !stop.is_cancelled() {
        match cycle(&env, &o, &user, n, &c, &stop).await {
            Ok(()) => {
                c.cycles.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                c.churn_errors.fetch_add(1, Ordering::Relaxed);
                c.error(format!("churner {i}: {e:#}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        n += 1;
    }
}

#[derive(Default)]
struct Listened {
    /// `seen[seq]`: times the public event `seq` arrived.
    seen: Vec<u8>,
    received: u64,
    member_added: u64,
    member_removed: u64,
    problem: Option<String>,
}

async fn listener(env: Arc<Env>, o: Arc<SoakOpts>, i: usize, done: CancellationToken) -> Listened {
    let mut l = Listened::default();
    let opened = async {
        let mut conn = Conn::open(&env.target, None).await?;
        for k in 0..o.channels {
            conn.subscribe(&format!("soak-{k}"), None, None, |_| {}).await?;
        }
        let data = member(&format!("l{i}"));
        let auth = env.target.auth_presence(&conn.socket_id, PRESENCE, &data);
        conn.subscribe(PRESENCE, Some(&auth), Some(&data), |_| {}).await?;
        anyhow::Ok(conn)
    };
    let mut conn = match opened.await {
        Ok(c) => c,
        Err(e) => {
            l.problem = Some(format!("listener {i}: {e:#}"));
            return l;
        }
    };
    loop {
        tokio::select! {
            m = conn.next() => match m {
                Incoming::Text(text) => match event(&text).map(|e| e.event) {
                    Some(e) if e == "soak" => {
                        l.received += 1;
                        if let Some(seq) = seq_of(&text).and_then(|s| usize::try_from(s).ok()) {
                            if l.seen.len() <= seq {
                                l.seen.resize(seq + 1, 0);
                            }
                            l.seen[seq] = l.seen[seq].saturating_add(1);
                        }
                    }
                    Some(e) if e == "pusher_internal:member_added" => l.member_added += 1,
                    Some(e) if e == "pusher_internal:member_removed" => l.member_removed += 1,
                    _ => {}
                },
                Incoming::Closed(code) => {
                    l.problem = Some(format!("listener {i} closed by the server ({code:?})"));
                    return l;
                }
            },
            () = done.cancelled() => break,
        }
    }
    conn.close().await;
    l
}

/// Publishes at the rate until `stop`; returns which sequence numbers went to public channels
/// and were answered 200.
async fn publisher(env: Arc<Env>, o: Arc<SoakOpts>, c: Arc<Counters>, stop: CancellationToken) -> Vec<bool> {
    let mut p = Publisher::new(&env.target);
    let mut ok_public = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / o.publish_rate.max(0.001)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let pad = "x".repeat(o.event_bytes.saturating_sub(40));
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        let public = seq % 5 != 4;
        let k = seq as usize % o.channels.max(1);
        let channel = if public { format!("soak-{k}") } else { format!("private-soak-{k}") };
        let data = format!(r#"{{"seq":{seq},"pad":"{pad}"}}"#);
        let ok = match p.publish(&channel, "soak", &data).await {
            Ok(200) => true,
            Ok(status) => {
                c.error(format!("publish answered {status}"));
                false
            }
            Err(e) => {
                c.error(format!("publish: {e:#}"));
                false
            }
        };
        if ok {
            c.published_ok.fetch_add(1, Ordering::Relaxed);
            if public {
                c.published_public_ok.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            c.publish_failed.fetch_add(1, Ordering::Relaxed);
        }
        ok_public.push(ok && public);
        seq += 1;
    }
    ok_public
}

fn progress_line(t0: Instant, c: &Counters, pid: Option<u32>) -> String {
    let rss = sample(pid).map_or(String::from("-"), |s| format!("{} KiB", s.rss / 1024));
    format!(
        "soak t={:.0}s connections={} cycles={} subscribes={} published_ok={} churn_errors={} rss={rss}",
        t0.elapsed().as_secs_f64(),
        c.connections.load(Ordering::Relaxed),
        c.cycles.load(Ordering::Relaxed),
        c.subscribes.load(Ordering::Relaxed),
        c.published_ok.load(Ordering::Relaxed),
        c.churn_errors.load(Ordering::Relaxed),
    )
}

/// Runs the soak and checks every listener got every public event once.
pub async fn soak(env: Arc<Env>, o: SoakOpts) -> Report {
    let mut report = Report::new("soak");
    report.param("duration", o.duration);
    report.param("channels", o.channels);
    report.param("listeners", o.listeners);
    report.param("churners", o.churners);
    report.param("hold_ms", o.hold_ms);
    report.param("publish_rate", o.publish_rate);
    report.param("event_bytes", o.event_bytes);
    let o = Arc::new(o);
    let c = Arc::new(Counters::default());
    let (stop, done) = (CancellationToken::new(), CancellationToken::new());
    let listeners: Vec<_> =
        (0..o.listeners).map(|i| tokio::spawn(listener(env.clone(), o.clone(), i, done.clone()))).collect();
    // Listeners subscribe before the first publish (each takes a few round trips).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = sample(env.pid);
    let t0 = Instant::now();
    let churners: Vec<_> =
        (0..o.churners).map(|i| tokio::spawn(churner(env.clone(), o.clone(), i, c.clone(), stop.clone()))).collect();
    let publisher = tokio::spawn(publisher(env.clone(), o.clone(), c.clone(), stop.clone()));
    let end = t0 + Duration::from_secs_f64(o.duration);
    let mut progress = tokio::time::interval_at(
        t0 + Duration::from_secs_f64(o.progress),
        Duration::from_secs_f64(o.progress.max(1.0)),
    );
    loop {
        tokio::select! {
            _ = progress.tick() => eprintln!("{}", progress_line(t0, &c, env.pid)),
            () = tokio::time::sleep_until(end) => break,
        }
    }
    stop.cancel();
    let ok_public = publisher.await.unwrap_or_default();
    for h in churners {
        let _ = h.await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    // The last events reach the listeners.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = sample(env.pid);
    done.cancel();
    let expected = ok_public.iter().filter(|ok| **ok).count() as u64;
    let (mut missing, mut duplicated, mut unexpected, mut problems) = (0u64, 0u64, 0u64, Vec::new());
    let (mut received, mut added, mut removed) = (0u64, 0u64, 0u64);
    for h in listeners {
        let l = h.await.unwrap_or_default();
        received += l.received;
        added += l.member_added;
        removed += l.member_removed;
        problems.extend(l.problem);
        for (seq, ok) in ok_public.iter().enumerate() {
            let times = l.seen.get(seq).copied().unwrap_or(0);
            match (ok, times) {
                (true, 0) => missing += 1,
                (true, n) => duplicated += u64::from(n - 1),
                (false, n) => unexpected += u64::from(n),
            }
        }
    }
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    report.figure("elapsed_s", round(elapsed, 1));
    report.figure("connections_opened", get(&c.connections));
    report.figure("cycles", get(&c.cycles));
    report.figure("cycles_per_s", round(get(&c.cycles) as f64 / elapsed, 1));
    report.figure("subscribes", get(&c.subscribes));
    report.figure("unsubscribes", get(&c.unsubscribes));
    report.figure("sockets_dropped_without_close", get(&c.dropped_sockets));
    report.figure("churn_errors", get(&c.churn_errors));
    report.figure("churn_events_received", get(&c.churn_received));
    report.figure("published_ok", get(&c.published_ok));
    report.figure("published_public_ok", expected);
    report.figure("publish_failed", get(&c.publish_failed));
    report.figure("listener_events_received", received);
    report.figure("listener_events_expected", expected * o.listeners as u64);
    report.figure("listener_events_missing", missing);
    report.figure("listener_events_duplicated", duplicated);
    report.figure("listener_member_added", added);
    report.figure("listener_member_removed", removed);
    report.server(before, after, &[]);
    if let Ok(first) = c.first_error.lock()
        && let Some(e) = first.as_ref()
    {
        report.note(format!("first error: {e}"));
    }
    if missing > 0 || duplicated > 0 || unexpected > 0 {
        report.fail(format!(
            "listeners: {missing} events missing, {duplicated} duplicated, {unexpected} not answered 200 but delivered"
        ));
    }
    if get(&c.churn_errors) > 0 || get(&c.publish_failed) > 0 {
        report.fail(format!(
            "{} churn cycles failed, {} publishes failed",
            get(&c.churn_errors),
            get(&c.publish_failed)
        ));
    }
    if let Some(p) = problems.first() {
        report.fail(format!("{} listeners had problems, first: {p}", problems.len()));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_is_read_from_the_event_data_string() {
        let text = r#"{"event":"soak","channel":"soak-1","data":"{\"seq\":42,\"pad\":\"xx\"}"}"#;
        assert_eq!(seq_of(text), Some(42));
        assert_eq!(seq_of(r#"{"event":"soak","data":"{}"}"#), None);
        assert_eq!(seq_of("not json"), None);
    }
}
