//! Opening many connections at a bounded rate, and waiting until they are all ready.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant, MissedTickBehavior};

/// Handshakes allowed in flight at once.
const IN_FLIGHT: usize = 256;

/// Counts connections that finished setting up (or failed to).
#[derive(Default)]
pub struct Gate {
    ready: AtomicUsize,
    failed: AtomicUsize,
    notify: Notify,
}

impl Gate {
    /// Waits until `n` connections are ready or failed, or `limit` passes; returns (ready, failed).
    pub async fn wait(&self, n: usize, limit: Duration) -> (usize, usize) {
        let end = Instant::now() + limit;
        loop {
            let notified = self.notify.notified();
            let (r, f) = (self.ready.load(Ordering::Acquire), self.failed.load(Ordering::Acquire));
            if r + f >= n || Instant::now() >= end {
                return (r, f);
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }
}

/// One task's set-up slot: call [`Setup::ready`] once set up; dropping it unused counts a failure.
pub struct Setup {
    gate: Arc<Gate>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Setup {
    /// Marks this connection ready and frees its set-up slot.
    pub fn ready(mut self) {
        self.permit = None;
        self.gate.ready.fetch_add(1, Ordering::AcqRel);
        self.gate.notify.notify_waiters();
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if self.permit.take().is_some() {
            self.gate.failed.fetch_add(1, Ordering::AcqRel);
            self.gate.notify.notify_waiters();
        }
    }
}

/// Spawns `n` tasks, starting at most `rate` per second with at most [`IN_FLIGHT`] still setting up.
pub async fn spawn_paced<F, Fut, T>(n: usize, rate: u32, gate: &Arc<Gate>, task: F) -> Vec<JoinHandle<T>>
where
    F: Fn(usize, Setup) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        tick.tick().await;
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let setup = Setup { gate: gate.clone(), permit: Some(permit) };
        handles.push(tokio::spawn(task(i, setup)));
    }
    handles
}
