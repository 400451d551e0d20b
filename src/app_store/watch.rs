//! When a node reads the apps table again, besides lookups of unknown keys (`directory.rs`):
//!
//! - **PostgreSQL** announces every change on a `NOTIFY` channel (Sinew's own writes, and the
//!   trigger `sinew db migrate` adds for changes made by hand); every node `LISTEN`s and reads the
//!   table at once (announcements arriving during a read make one more read, not one each). Once
//!   listening, at first and after the connection was lost and made again, the table is read once,
//!   for whatever was announced meanwhile; a read that fails is tried again a second later.
//! - **MySQL/MariaDB** has no such channel: every `app_store_poll_seconds` the row count and the
//!   latest `updated_at` are asked for (one small query), and the table is read when they moved.
//! - **Every table**, tracked or not (soketi's has no `updated_at`), is read whole every
//!   `app_store_reload_seconds`.

use super::directory::Directory;
use super::{SqlStore, StoreError, schema};
use crate::hub::Hub;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::{MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;

/// How often the watcher reads the table.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    /// Between full reads of the table.
    pub reload: Duration,
    /// Between looks at `updated_at` (MySQL).
    pub poll: Duration,
}

/// Keeps the hub's apps in step with the store until `stop`.
pub async fn run(directory: Arc<Directory>, hub: Hub, every: Intervals, stop: CancellationToken) {
    let Some(store) = directory.store() else { return };
    let listening = store.pg_pool().is_some();
    // Announcements only wake this loop (many announcements while a read runs make one more read).
    let announced = Arc::new(Notify::new());
    if listening {
        let (directory, stop, announced) = (directory.clone(), stop.clone(), announced.clone());
        tokio::spawn(async move { listen(&directory, &stop, &announced).await });
    }
    let mut reload = interval(every.reload);
    let mut poll = interval(every.poll);
    reload.set_missed_tick_behavior(MissedTickBehavior::Delay);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Both first ticks are immediate: the table was just read at start-up.
    reload.tick().await;
    poll.tick().await;
    let mut seen: Option<(i64, Option<String>)> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = reload.tick() => {
                if let Err(e) = directory.refresh(&hub).await {
                    tracing::debug!(error = %e, "app store reload failed");
                }
            }
            () = announced.notified() => {
                if let Err(e) = directory.refresh(&hub).await {
                    // The change is still to be read: try again in a second.
                    tracing::debug!(error = %e, "app store read after a change failed");
                    if pause(&stop).await {
                        return;
                    }
                    announced.notify_one();
                }
            }
            _ = poll.tick(), if !listening => {
                let Some(store) = directory.store() else { return };
                match changed(store, &mut seen).await {
                    Ok(true) => {
                        if let Err(e) = directory.refresh(&hub).await {
                            // Forget the fingerprint: the next poll reads again.
                            seen = None;
                            tracing::debug!(error = %e, "app store read after a change failed");
                        }
                    }
                    Ok(false) => directory.answered(true),
                    Err(e) => {
                        tracing::debug!(error = %e, "app store poll failed");
                        directory.answered(false);
                    }
                }
            }
        }
    }
}

/// Whether the table moved since `seen` (true the first time: the start-up read came before it;
/// false for a table without `updated_at`, which only the full reload follows).
async fn changed(store: &SqlStore, seen: &mut Option<(i64, Option<String>)>) -> Result<bool, StoreError> {
    if seen.is_none() && !store.tracks_changes().await? {
        return Ok(false);
    }
    let now = store.fingerprint().await?;
    let moved = seen.as_ref() != Some(&now);
    *seen = Some(now);
    Ok(moved)
}

/// Listens for PostgreSQL's change announcements and passes each on to `announced`; once
/// listening (at first, and after every reconnection) passes one on too, for what was announced
/// while nobody listened.
async fn listen(directory: &Directory, stop: &CancellationToken, announced: &Notify) {
    let Some(store) = directory.store() else { return };
    let Some(pool) = store.pg_pool() else { return };
    let mut lost = false;
    loop {
        let mut listener = match PgListener::connect_with(pool).await {
            Ok(l) => l,
            Err(e) => {
                lost = lost || warn_lost(&e.to_string());
                if pause(stop).await {
                    return;
                }
                continue;
            }
        };
        if let Err(e) = listener.listen(schema::NOTIFY_CHANNEL).await {
            lost = lost || warn_lost(&e.to_string());
            if pause(stop).await {
                return;
            }
            continue;
        }
        if lost {
            tracing::info!("listening for app changes again");
            lost = false;
        }
        announced.notify_one();
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return,
                next = listener.try_recv() => next,
            };
            match next {
                Ok(Some(n)) if n.payload() == store.table() => announced.notify_one(),
                Ok(Some(_)) => {}
                // The connection was lost (`None`) or failed: listen again on a new one.
                Ok(None) | Err(_) => {
                    let reason = match next {
                        Err(e) => e.to_string(),
                        _ => "connection closed".to_string(),
                    };
                    lost = lost || warn_lost(&reason);
                    directory.answered(false);
                    if pause(stop).await {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

fn warn_lost(reason: &str) -> bool {
    tracing::warn!(reason, "not listening for app changes; the table is read again once back");
    true
}

/// Waits a second before trying again; true when the node stops meanwhile.
async fn pause(stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(Duration::from_secs(1)) => false,
    }
}
