//! The store behind the hub's apps: a key or id this node does not serve is looked for by reading
//! the store's table again, so an app inserted there (by `sinew apps create` or by hand) connects
//! at its first try on every node. The table is read at most once a second however many unknown
//! keys arrive: the lookups queue behind one read and all use it, so a flood of made-up keys costs
//! about one read a second. While the store cannot be read, lookups say so at once (the caller
//! answers "try again", never "no such app") and the store is tried again a second later.

use super::{SqlStore, StoreError};
use crate::hub::{AppState, Hub};
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio::time::{Duration, Instant};

/// The shortest time between two reads of the table.
const MIN_GAP: Duration = Duration::from_secs(1);

/// The last read: when it started, and whether it succeeded.
#[derive(Clone, Copy)]
struct Read {
    started: Instant,
    ok: bool,
}

/// The app store in front of the hub (nothing to look up with the config store).
pub struct Directory {
    store: Option<SqlStore>,
    last: Mutex<Option<Read>>,
}

impl Directory {
    pub fn new(store: Option<SqlStore>) -> Self {
        Directory { store, last: Mutex::new(None) }
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
        self.read(hub, Instant::now()).await?;
        Ok(get(hub))
    }

    /// Reads the table now (or waits for a read that began now or later) and serves what it holds:
    /// what the admin API calls after a change, and the change watcher on every notice.
    pub async fn refresh(&self, hub: &Hub) -> Result<(), StoreError> {
        self.read(hub, Instant::now()).await
    }

    /// A read of the table that began at `asked` or later, shared by every caller that waits for it.
    async fn read(&self, hub: &Hub, asked: Instant) -> Result<(), StoreError> {
        let Some(store) = &self.store else { return Ok(()) };
        let mut last = self.last.lock().await;
        match *last {
            // A read began after this lookup did: it saw every row inserted before.
            Some(read) if read.ok && read.started >= asked => Ok(()),
            Some(read) if !read.ok && read.started.elapsed() < MIN_GAP => {
                Err(StoreError::Unavailable("the app store could not be read a moment ago".into()))
            }
            previous => {
                if let Some(read) = previous {
                    tokio::time::sleep_until(read.started + MIN_GAP).await;
                }
                let started = Instant::now();
                let read = store.all().await;
                *last = Some(Read { started, ok: read.is_ok() });
                for app in read? {
                    hub.add_app(app);
                }
                Ok(())
            }
        }
    }
}
