//! `presence-churn`: members that stay on a presence channel watch others join and leave.

use super::Env;
use super::client::{Conn, Incoming, event, source_for};
use super::pool::{Gate, Setup, spawn_paced};
use super::report::{GeneratorClock, Report, latency, now_us, round, sample};
use std::sync::Arc;
use tokio::sync::Barrier;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const CHANNEL: &str = "presence-bench-churn";

/// Options of `presence-churn`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChurnOpts {
    /// Members that stay subscribed and count member_added / member_removed.
    #[arg(long, default_value_t = 10)]
    pub watchers: usize,
    /// Connections that join and leave in a loop, each as its own user.
    #[arg(long, default_value_t = 40)]
    pub churners: usize,
    /// Join/leave cycles per second per churner.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// Seconds to churn.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
}

#[derive(Default)]
struct Tally {
    joins: u64,
    /// `member_added` for churners.
    added: u64,
    /// `member_added` for watchers that joined after this one.
    watchers_added: u64,
    /// `member_removed` for churners.
    removed: u64,
    join_us: Vec<u32>,
    problem: Option<String>,
}

/// True when a member event is about a watcher (user ids `w{i}`; churners are `c{i}`).
fn is_watcher(text: &str) -> bool {
    let user_id = || -> Option<bool> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let data: serde_json::Value = serde_json::from_str(v.get("data")?.as_str()?).ok()?;
        Some(data.get("user_id")?.as_str()?.starts_with('w'))
    };
    user_id().unwrap_or(false)
}

fn member(user: &str) -> String {
    format!(r#"{{"user_id":"{user}","user_info":{{"name":"bench {user}"}}}}"#)
}

async fn join(conn: &mut Conn, env: &Env, data: &str) -> anyhow::Result<()> {
    let auth = env.target.auth_presence(&conn.socket_id, CHANNEL, data);
    conn.subscribe(CHANNEL, Some(&auth), Some(data), |_| {}).await
}

#[allow(clippy::too_many_arguments)]
async fn member_task(
    env: Arc<Env>,
    i: usize,
    watchers: usize,
    setup: Setup,
    start: Arc<Barrier>,
    stop: CancellationToken,
    done: CancellationToken,
    rate: f64,
) -> Tally {
    let mut t = Tally::default();
    let watcher = i < watchers;
    let data = member(&format!("{}{i}", if watcher { "w" } else { "c" }));
    let opened = async {
        let mut c = Conn::open(&env.target, source_for(i, env.sources)).await?;
        if watcher {
            join(&mut c, &env, &data).await?;
        }
        anyhow::Ok(c)
    };
    let mut conn = match opened.await {
        Ok(c) => c,
        Err(e) => {
            t.problem = Some(e.to_string());
            start.wait().await;
            return t;
        }
    };
    setup.ready();
    start.wait().await;
    if watcher {
        loop {
            tokio::select! {
                m = conn.next() => match m {
                    Incoming::Text(text) => match event(&text).map(|e| e.event) {
                        Some(e) if e == "pusher_internal:member_added" => {
                            if is_watcher(&text) {
                                t.watchers_added += 1;
                            } else {
                                t.added += 1;
                            }
                        }
                        // Other watchers leave while the run is torn down: only churners'
                        // departures count.
                        Some(e) if e == "pusher_internal:member_removed" && !is_watcher(&text) => t.removed += 1,
                        _ => {}
                    },
                    Incoming::Closed(code) => {
                        t.problem = Some(format!("watcher closed by the server ({code:?})"));
                        return t;
                    }
                },
                () = done.cancelled() => break,
            }
        }
    } else {
        let period = Duration::from_secs_f64(1.0 / rate);
        tokio::time::sleep(period.mul_f64((i % 100) as f64 / 100.0)).await;
        while !stop.is_cancelled() {
            let begin = Instant::now();
            let sent = now_us();
            if let Err(e) = join(&mut conn, &env, &data).await {
                t.problem = Some(e.to_string());
                break;
            }
            t.join_us.push((now_us() - sent).min(u64::from(u32::MAX)) as u32);
            t.joins += 1;
            if let Err(e) = conn.unsubscribe(CHANNEL).await {
                t.problem = Some(e.to_string());
                break;
            }
            tokio::time::sleep_until(begin + period).await;
        }
    }
    conn.close().await;
    t
}

/// Runs the churn and checks every watcher saw every join and leave.
pub async fn presence_churn(env: Arc<Env>, o: ChurnOpts) -> Report {
    let mut report = Report::new("presence-churn");
    report.param("watchers", o.watchers);
    report.param("churners", o.churners);
    report.param("rate", o.rate);
    report.param("duration", o.duration);
    let n = o.watchers + o.churners;
    let (stop, done, gate) = (CancellationToken::new(), CancellationToken::new(), Arc::new(Gate::default()));
    let start = Arc::new(Barrier::new(n + 1));
    let handles = spawn_paced(n, env.connect_rate, &gate, |i, setup| {
        member_task(env.clone(), i, o.watchers, setup, start.clone(), stop.clone(), done.clone(), o.rate)
    })
    .await;
    gate.wait(n, Duration::from_secs(120)).await;
    let before = sample(env.pid);
    let clock = GeneratorClock::start();
    let t0 = Instant::now();
    start.wait().await;
    tokio::time::sleep(Duration::from_secs_f64(o.duration)).await;
    stop.cancel();
    let mut watchers = Vec::new();
    let (mut joins, mut join_us, mut problems) = (0u64, Vec::new(), Vec::new());
    for (i, h) in handles.into_iter().enumerate() {
        if i < o.watchers {
            watchers.push(h);
            continue;
        }
        let t = h.await.unwrap_or_default();
        joins += t.joins;
        join_us.extend(t.join_us);
        problems.extend(t.problem);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    // The generator's window is the churn's, as for `joins_per_s`.
    let used = clock.stop();
    // Churners have closed; give the last member_removed events a moment to reach the watchers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = sample(env.pid);
    report.generator(used);
    done.cancel();
    // Each watcher also sees the watchers that joined after it: W(W-1)/2 extra member_added in all.
    let (mut short, mut extra, mut first_short) = (0usize, 0u64, None);
    for h in watchers {
        let t = h.await.unwrap_or_default();
        if t.added != joins || t.removed != joins {
            short += 1;
            first_short.get_or_insert((t.added, t.removed));
        }
        extra += t.watchers_added;
        problems.extend(t.problem);
    }
    let w = o.watchers as u64;
    if extra != w * w.saturating_sub(1) / 2 {
        report.fail(format!(
            "watchers saw {extra} member_added events from other watchers, expected {}",
            w * w.saturating_sub(1) / 2
        ));
    }
    report.figure("joins", joins);
    report.figure("joins_per_s", round(joins as f64 / elapsed, 0));
    report.figure("join", latency(join_us));
    if let Some((added, removed)) = first_short {
        report.fail(format!(
            "{short} watchers did not see one member_added and one member_removed per join \
             (first: {added} added, {removed} removed, for {joins} joins)"
        ));
    }
    if let Some(p) = problems.first() {
        report.fail(format!("{} connections had problems, first: {p}", problems.len()));
    }
    report.server(before, after, &[("join_leave", joins)]);
    report
}
