//! `chaos-count`: subscribers on every node of a cluster, REST publishes with sequence numbers
//! spread over the nodes, and an account of every event: published (answered 200 or not) against
//! received, per subscriber. Meant to run while something breaks the cluster (`tests/soak/chaos.py`
//! kills Redis or a node, or cuts a node off): subscribers reconnect and subscribe again whenever
//! they are closed, and each lost event is put down as published while that subscriber was not
//! subscribed (Pusher has no replay: expected) or while it was (the cluster lost it).

use super::Env;
use super::client::{Conn, Incoming, Target, event};
use super::report::{Report, round};
use super::rest::Publisher;
use super::soak::seq_of;
use anyhow::Context as _;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::time::{Duration, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Options of `chaos-count`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChaosOpts {
    /// The cluster's nodes, `host:port,host:port,...` (REST and WebSocket on the same port).
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<String>,
    /// Subscribers on each node.
    #[arg(long, default_value_t = 3)]
    pub subscribers_per_node: usize,
    /// REST publishes per second in all, taken in turn by the nodes.
    #[arg(long, default_value_t = 40.0)]
    pub rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 40.0)]
    pub duration: f64,
    /// Seconds to wait after the last publish before counting.
    #[arg(long, default_value_t = 3.0)]
    pub drain: f64,
    /// Channel every subscriber is on.
    #[arg(long, default_value = "chaos")]
    pub channel: String,
    /// A lost event counts as published while subscribed only if the subscription lasted this
    /// many milliseconds past the publish's answer.
    #[arg(long, default_value_t = 500)]
    pub margin_ms: u64,
}

/// Milliseconds since the Unix epoch (the driver aligns its own actions on this clock).
fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// One publish and how it went.
#[derive(Debug, Clone)]
struct Published {
    node: usize,
    sent_ms: u64,
    answered_ms: u64,
    /// The HTTP status, or `None` when the exchange failed.
    status: Option<u16>,
}

/// What one subscriber saw.
#[derive(Default)]
struct Heard {
    node: usize,
    /// Subscribed from, until (None: still subscribed at the end).
    intervals: Vec<(u64, Option<u64>)>,
    /// `seen[seq]`: times the event `seq` arrived.
    seen: Vec<u8>,
    /// `first_ms[seq]`: when the event `seq` first arrived.
    first_ms: Vec<u64>,
    /// Close codes (or `null` for a dropped connection) and failed (re)connects.
    closes: Vec<Option<u16>>,
    failed_connects: u64,
    first_error: Option<String>,
}

async fn subscriber(target: Target, node: usize, channel: String, done: CancellationToken) -> Heard {
    let mut h = Heard { node, ..Heard::default() };
    while !done.is_cancelled() {
        let opened = async {
            let mut c = Conn::open(&target, None).await?;
            c.subscribe(&channel, None, None, |_| {}).await?;
            anyhow::Ok(c)
        };
        let mut conn = tokio::select! {
            r = opened => match r {
                Ok(c) => c,
                Err(e) => {
                    h.failed_connects += 1;
                    h.first_error.get_or_insert_with(|| format!("{e:#}"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
            () = done.cancelled() => break,
        };
        h.intervals.push((epoch_ms(), None));
        loop {
            tokio::select! {
                m = conn.next() => match m {
                    Incoming::Text(text) => {
                        if event(&text).is_some_and(|e| e.event == "chaos")
                            && let Some(seq) = seq_of(&text).and_then(|s| usize::try_from(s).ok())
                        {
                            if h.seen.len() <= seq {
                                h.seen.resize(seq + 1, 0);
                                h.first_ms.resize(seq + 1, 0);
                            }
                            if h.seen[seq] == 0 {
                                h.first_ms[seq] = epoch_ms();
                            }
                            h.seen[seq] = h.seen[seq].saturating_add(1);
                        }
                    }
                    Incoming::Closed(code) => {
                        if let Some(last) = h.intervals.last_mut() {
                            last.1 = Some(epoch_ms());
                        }
                        h.closes.push(code);
                        break;
                    }
                },
                () = done.cancelled() => {
                    conn.close().await;
                    return h;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h
}

async fn publisher(
    target: Target,
    node: usize,
    nodes: usize,
    o: Arc<ChaosOpts>,
    next_seq: Arc<AtomicU64>,
    log: Arc<Mutex<Vec<Option<Published>>>>,
    stop: CancellationToken,
) {
    let mut p = Publisher::new(&target);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(nodes as f64 / o.rate.max(0.001)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let seq = next_seq.fetch_add(1, Ordering::Relaxed);
        let sent_ms = epoch_ms();
        let data = format!(r#"{{"seq":{seq},"via":{node}}}"#);
        let status = p.publish(&o.channel, "chaos", &data).await.ok();
        let record = Published { node, sent_ms, answered_ms: epoch_ms(), status };
        if let Ok(mut log) = log.lock() {
            let i = seq as usize;
            if log.len() <= i {
                log.resize(i + 1, None);
            }
            log[i] = Some(record);
        }
    }
}

/// Consecutive sequence numbers as `[first_s, last_s, count]` ranges of their send times
/// (seconds after `t0_ms`): where in the run the losses were.
fn ranges(lost: &[(usize, u64)], t0_ms: u64) -> Vec<Value> {
    let mut out: Vec<(usize, usize, u64, u64, u64)> = Vec::new();
    for &(seq, sent) in lost {
        match out.last_mut() {
            Some(r) if seq <= r.1 + 3 => {
                r.1 = seq;
                r.3 = sent;
                r.4 += 1;
            }
            _ => out.push((seq, seq, sent, sent, 1)),
        }
    }
    let s = |ms: u64| round(ms.saturating_sub(t0_ms) as f64 / 1000.0, 2);
    out.iter().map(|r| json!([s(r.2), s(r.3), r.4])).collect()
}

/// `base` with another node's address.
pub fn target_for(base: &Target, authority: &str) -> anyhow::Result<Target> {
    use std::net::ToSocketAddrs as _;
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("no address for {authority}"))?;
    Ok(Target { addr, authority: authority.to_string(), ..base.clone() })
}

/// Runs the count.
pub async fn chaos_count(env: Arc<Env>, o: ChaosOpts) -> Report {
    let mut report = Report::new("chaos-count");
    report.param("nodes", o.nodes.join(","));
    report.param("subscribers_per_node", o.subscribers_per_node);
    report.param("rate", o.rate);
    report.param("duration", o.duration);
    report.param("channel", o.channel.as_str());
    let targets: Vec<Target> = match o.nodes.iter().map(|n| target_for(&env.target, n)).collect() {
        Ok(t) => t,
        Err(e) => {
            report.fail(format!("{e:#}"));
            return report;
        }
    };
    let o = Arc::new(o);
    let (stop, done) = (CancellationToken::new(), CancellationToken::new());
    let mut subs = Vec::new();
    for (node, t) in targets.iter().enumerate() {
        for _ in 0..o.subscribers_per_node {
            subs.push(tokio::spawn(subscriber(t.clone(), node, o.channel.clone(), done.clone())));
        }
    }
    // Subscribers are on before the first publish (a few round trips each).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t0_ms = epoch_ms();
    report.figure("start_epoch_ms", t0_ms);
    let next_seq = Arc::new(AtomicU64::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let pubs: Vec<_> = targets
        .iter()
        .enumerate()
        .map(|(node, t)| {
            tokio::spawn(publisher(
                t.clone(),
                node,
                targets.len(),
                o.clone(),
                next_seq.clone(),
                log.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(o.duration)).await;
    stop.cancel();
    for p in pubs {
        let _ = p.await;
    }
    tokio::time::sleep(Duration::from_secs_f64(o.drain)).await;
    done.cancel();
    let log: Vec<Option<Published>> = log.lock().map(|l| l.clone()).unwrap_or_default();
    // Per publishing node.
    let mut by_node = Vec::new();
    for node in 0..targets.len() {
        let mine: Vec<(usize, &Published)> =
            log.iter().enumerate().filter_map(|(s, p)| p.as_ref().filter(|p| p.node == node).map(|p| (s, p))).collect();
        let ok = mine.iter().filter(|(_, p)| p.status == Some(200)).count();
        let errors = mine.iter().filter(|(_, p)| p.status.is_none()).count();
        let failed: Vec<(usize, u64)> =
            mine.iter().filter(|(_, p)| p.status != Some(200)).map(|(s, p)| (*s, p.sent_ms)).collect();
        by_node.push(json!({"node": o.nodes[node], "published": mine.len(), "answered_200": ok,
            "answered_other": mine.len() - ok - errors, "failed_exchange": errors,
            "not_200_at_s": ranges(&failed, t0_ms)}));
    }
    report.figure("publishers", Value::Array(by_node));
    let published = log.iter().flatten().count();
    let ok_total = log.iter().flatten().filter(|p| p.status == Some(200)).count();
    report.figure("published", published);
    report.figure("published_200", ok_total);
    let mut subscribers = Vec::new();
    let (mut lost_subscribed_total, mut duplicated_total) = (0usize, 0usize);
    for h in subs {
        let h = match h.await {
            Ok(h) => h,
            Err(e) => {
                report.fail(format!("a subscriber task failed: {e}"));
                continue;
            }
        };
        let covered = |p: &Published| {
            h.intervals
                .iter()
                .any(|&(from, until)| from <= p.sent_ms && until.is_none_or(|u| u >= p.answered_ms + o.margin_ms))
        };
        let (mut received_200, mut received_other, mut duplicated) = (0usize, 0usize, 0usize);
        let (mut lost_unsubscribed, mut lost_same, mut lost_other) = (0usize, 0usize, 0usize);
        let mut lost_at = Vec::new();
        // Events that arrived more than a second after their publish was answered.
        let (mut late_at, mut max_delay_ms) = (Vec::new(), 0u64);
        for (seq, p) in log.iter().enumerate() {
            let Some(p) = p else { continue };
            let times = h.seen.get(seq).copied().unwrap_or(0) as usize;
            duplicated += times.saturating_sub(1);
            match (p.status == Some(200), times > 0) {
                (true, true) => {
                    received_200 += 1;
                    let at = h.first_ms.get(seq).copied().unwrap_or(0);
                    max_delay_ms = max_delay_ms.max(at.saturating_sub(p.sent_ms));
                    if at > p.answered_ms + 1000 {
                        late_at.push((seq, p.sent_ms));
                    }
                }
                (false, true) => received_other += 1,
                (false, false) => {}
                (true, false) if !covered(p) => lost_unsubscribed += 1,
                (true, false) => {
                    if p.node == h.node {
                        lost_same += 1;
                    } else {
                        lost_other += 1;
                    }
                    lost_at.push((seq, p.sent_ms));
                }
            }
        }
        lost_subscribed_total += lost_same + lost_other;
        duplicated_total += duplicated;
        subscribers.push(json!({
            "node": o.nodes[h.node],
            "received_of_200": received_200,
            "received_not_200": received_other,
            "lost_while_not_subscribed": lost_unsubscribed,
            "lost_while_subscribed_published_on_same_node": lost_same,
            "lost_while_subscribed_published_on_other_node": lost_other,
            "lost_while_subscribed_at_s": ranges(&lost_at, t0_ms),
            "duplicated": duplicated,
            "late_over_1s": late_at.len(),
            "late_over_1s_at_s": ranges(&late_at, t0_ms),
            "max_delay_ms": max_delay_ms,
            "subscriptions": h.intervals.len(),
            "closes": h.closes,
            "failed_connects": h.failed_connects,
            "unsubscribed_at_s": h.intervals.windows(2).map(|w| {
                let s = |ms: u64| round(ms.saturating_sub(t0_ms) as f64 / 1000.0, 2);
                json!([w[0].1.map(s), s(w[1].0)])
            }).collect::<Vec<_>>(),
            "first_error": h.first_error,
        }));
    }
    report.figure("subscribers", Value::Array(subscribers));
    report.figure("lost_while_subscribed", lost_subscribed_total);
    report.figure("duplicated", duplicated_total);
    // Losses are what this counts, not failures of the run: the driver judges them.
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_close_in_sequence_make_one_range() {
        // Seqs 5..=7 and 9 (a gap of one: the other node's publish in between) are one range;
        // 20 starts another.
        let lost = [(5, 11_000), (6, 11_050), (7, 11_100), (9, 11_200), (20, 15_000)];
        let r = ranges(&lost, 1_000);
        assert_eq!(r, vec![json!([10.0, 10.2, 4]), json!([14.0, 14.0, 1])]);
        assert!(ranges(&[], 0).is_empty());
    }
}
