//! The store behind the hub's apps: a key or id this node does not serve is looked for by reading
//! the store's table again, so an app inserted there (by `sinew apps create` or by hand) connects
//! at its first try on every node. Every read is served whole: apps added, changed, disabled or
//! deleted in the table are added, changed, closed or removed here (`watch.rs` decides when to
//! read besides lookups); an app of the config file is never touched by the store. The table is read at most once a second however many unknown
//! keys arrive: the lookups queue behind one read and all use it, so a flood of made-up keys costs
//! about one read a second. While the store cannot be read, lookups say so at once (the caller
//! answers "try again", never "no such app") and the store is tried again a second later.

use super::{Snapshot, SqlStore, StoreError};
use crate::hub::{AppState, Hub};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Mutex;
use tokio::time::{Duration, Instant};

/// The shortest time between two reads of the table for lookups of unknown keys (a flood of them
/// costs one read a second).
const MIN_GAP: Duration = Duration::from_secs(1);

/// The shortest time between two reads announced as changes (a change is served within this of
/// the previous read, however many come close together).
const CHANGE_GAP: Duration = Duration::from_millis(100);

/// The last read: when it started, and whether it succeeded.
#[derive(Clone, Copy)]
struct Read {
    started: Instant,
    finished: Instant,
    ok: bool,
}

/// The app store in front of the hub (nothing to look up with the config store).
pub struct Directory {
    store: Option<SqlStore>,
    last: Mutex<Option<Read>>,
    /// How long a rotated secret still signs.
    grace: std::time::Duration,
    /// Whether the store answered its last query.
    reachable: AtomicBool,
}

impl Directory {
    /// The directory of `store`; a secret rotated there stays valid for `grace`.
    pub fn new(store: Option<SqlStore>, grace: std::time::Duration) -> Self {
        Directory { store, last: Mutex::new(None), grace, reachable: AtomicBool::new(true) }
    }

    /// Whether the store answered its last query (always true for the config store).
    pub fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Records whether the store answered (the change watcher's queries count too).
    pub(super) fn answered(&self, ok: bool) {
        if self.reachable.swap(ok, Ordering::Relaxed) != ok {
            if ok {
                tracing::info!("app store reachable again");
            } else {
                tracing::warn!("app store unreachable: the apps in memory are served as they were");
            }
        }
    }

    /// The store, if apps come from a database.
    pub fn store(&self) -> Option<&SqlStore> {
        self.store.as_ref()
    }

    /// The app with this key: served already, or found in the store now.
    pub async fn find_key(&self, hub: &Hub, key: &str) -> Result<Option<Arc<AppState>>, StoreError> {
        self.find(hub, |h| h.app_by_key(key)).await
    }

    /// The app with this id: served already, or found in the store now.
    pub async fn find_id(&self, hub: &Hub, id: &str) -> Result<Option<Arc<AppState>>, StoreError> {
        self.find(hub, |h| h.app_by_id(id)).await
    }

    async fn find(
        &self,
        hub: &Hub,
        get: impl Fn(&Hub) -> Option<Arc<AppState>>,
    ) -> Result<Option<Arc<AppState>>, StoreError> {
        if let Some(app) = get(hub) {
            return Ok(Some(app));
        }
        if self.store.is_none() {
            return Ok(None);
        }
        self.read(hub, Instant::now(), MIN_GAP).await?;
        Ok(get(hub))
    }

    /// Reads the table now (or waits for a read that began now or later) and serves what it holds:
    /// what the admin API calls after a change, and the change watcher on every notice.
    pub async fn refresh(&self, hub: &Hub) -> Result<(), StoreError> {
        self.read(hub, Instant::now(), CHANGE_GAP).await
    }

    /// A read of the table that began at `asked` or later, shared by every caller that waits for it.
    async fn read(&self, hub: &Hub, asked: Instant, gap: Duration) -> Result<(), StoreError> {
        let Some(store) = &self.store else { return Ok(()) };
        let mut last = self.last.lock().await;
        let failed = || Err(StoreError::Unavailable("the app store could not be read a moment ago".into()));
        match *last {
            // A read began after this lookup did: it saw every row inserted before (or failed, and
            // so would this one: a database that does not answer is not asked once per waiter).
            Some(read) if read.started >= asked => {
                if read.ok {
                    Ok(())
                } else {
                    failed()
                }
            }
            Some(read) if !read.ok && read.finished.elapsed() < gap => failed(),
            previous => {
                if let Some(read) = previous {
                    tokio::time::sleep_until(read.started + gap).await;
                }
                let started = Instant::now();
                let read = store.snapshot().await;
                *last = Some(Read { started, finished: Instant::now(), ok: read.is_ok() });
                self.answered(read.is_ok());
                self.serve(hub, read?);
                Ok(())
            }
        }
    }

    /// Makes the hub serve what the table holds: apps gone from the table removed, changed ones
    /// replaced, new ones added, in that order (so a key freed by a deletion or a change can be
    /// taken by another app in the same read). A row that cannot be served leaves its app as it was.
    fn serve(&self, hub: &Hub, snapshot: Snapshot) {
        let mut listed: HashSet<&str> = snapshot.unservable.iter().map(String::as_str).collect();
        listed.extend(snapshot.apps.iter().map(|a| a.id.as_str()));
        for served in hub.apps() {
            if served.config().from_store && !listed.contains(served.id()) {
                hub.remove_app(served.id());
            }
        }
        let mut new = Vec::new();
        for app in snapshot.apps {
            match hub.app_by_id(&app.id) {
                Some(served) if served.config().from_store => {
                    hub.change_app(app, self.grace);
                }
                // The config file's app of this id wins (said at start-up).
                Some(_) => {}
                None => new.push(app),
            }
        }
        for app in new {
            let id = app.id.clone();
            if !hub.add_app(app) {
                tracing::warn!(app = %id, "app in the store has the key of another served app; not served");
            }
        }
    }
}
