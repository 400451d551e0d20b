//! One task that keeps every connection honest, whatever its transport (WebSocket over plain TCP
//! or TLS, HTTP fallback session): it pings clients that went quiet, closes those that do not
//! answer (4201), drops plain TCP sockets that do not catch up with what is queued for them, and
//! tells every connection to reconnect (4200) when the server shuts down. Transports only report
//! that they heard the client ([`crate::hub::Outbox::heard`]).
//!
//! Each connection's task could do this with its own timer and shutdown waiter, but those hold
//! 184 bytes in every idle connection; a sweep over all connections a few times per timeout costs
//! a lock per connection per tick instead. The rules themselves are [`Outbox::keepalive`]'s.

use super::connection::shut_down;
use crate::hub::{Checked, Frame, Liveness, clock};
use crate::protocol::frame;
use crate::state::Context;
use tokio::time::{Duration, MissedTickBehavior, interval};
use tokio_util::task::AbortOnDropHandle;

/// How long a socket may stay behind before it is dropped; also the limit for a single write of
/// the handshake, a refusal or a close.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The sweep interval for these timeouts: a quarter of the shorter one (counted as at least 1 s),
/// at most 1 s. (`clock` is the standard monotonic clock, so the sweep runs in real time even
/// where tokio's clock is paused.)
pub fn tick(activity_secs: u64, pong_secs: u64) -> Duration {
    let shorter = Duration::from_secs(activity_secs.min(pong_secs).max(1));
    (shorter / 4).min(Duration::from_secs(1))
}

/// Runs [`run`] until aborted, starting it again if it panics: without it, connections would get
/// no pings, no 4201 and no stall drops.
pub async fn run_supervised(ctx: Context) {
    restart_on_panic("keepalive", move || run(ctx.clone())).await;
}

/// Runs the task `start` makes until it returns, starting a new one after a panic (one second
/// later). Aborting this future aborts the running task.
async fn restart_on_panic<F, Fut>(name: &str, mut start: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match AbortOnDropHandle::new(tokio::spawn(start())).await {
            Err(e) if e.is_panic() => {
                tracing::error!(task = name, "task panicked; starting it again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => return,
        }
    }
}

/// Runs until aborted: sweeps every connection each tick, and asks all of them to reconnect once
/// the server shuts down (sweeping on, so that sockets that do not take the close are dropped).
async fn run(ctx: Context) {
    let config = &ctx.config;
    let rules = Liveness {
        activity: config.activity_timeout.saturating_mul(1000),
        pong: config.pong_timeout.saturating_mul(1000),
        write: u64::try_from(WRITE_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
    };
    let ping = Frame::from(frame::ping());
    let mut ticks = interval(tick(config.activity_timeout, config.pong_timeout));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut shut = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = ctx.shutdown.cancelled(), if !shut => {
                shut = true;
                for app in ctx.hub.apps() {
                    app.connections().for_each_live(shut_down);
                }
                continue;
            }
        }
        let now = clock();
        let (mut pinged, mut dropped) = (0u32, 0u32);
        for app in ctx.hub.apps() {
            app.connections().for_each_live(|o| match o.keepalive(now, &rules, &ping) {
                Checked::Pinged => pinged += 1,
                Checked::Dropped => dropped += 1,
                Checked::Alive | Checked::Closed => {}
            });
        }
        if pinged > 0 || dropped > 0 {
            tracing::debug!(pinged, dropped, "keepalive sweep");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_started_again_until_it_returns() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU32, Ordering};
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        restart_on_panic("test", move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move { assert!(n >= 2, "start {n} fails") }
        })
        .await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn aborting_the_supervisor_aborts_the_task() {
        use std::sync::Arc;
        let alive = Arc::new(());
        let held = alive.clone();
        let sup = tokio::spawn(restart_on_panic("test", move || {
            let held = held.clone();
            async move {
                let _held = held;
                std::future::pending::<()>().await;
            }
        }));
        tokio::task::yield_now().await;
        assert_eq!(Arc::strong_count(&alive), 3);
        sup.abort();
        let _ = sup.await;
        tokio::task::yield_now().await;
        assert_eq!(Arc::strong_count(&alive), 1);
    }

    #[test]
    fn tick_is_a_quarter_of_the_shorter_timeout_within_bounds() {
        assert_eq!(tick(120, 30), Duration::from_secs(1));
        assert_eq!(tick(2, 1), Duration::from_millis(250));
        assert_eq!(tick(0, 0), Duration::from_millis(250));
        assert_eq!(tick(1, 1), Duration::from_millis(250));
    }
}
