//! What an operator does to the apps of the store (the `sinew apps` commands): list, create,
//! update, enable or disable, rotate the secret, delete. Every change is checked like an app of the
//! config file before it is written; secrets are printed only where they are made.

use super::{SqlStore, StoreError, write};
use crate::config::AppConfig;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// Why an admin operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No app has this id.
    #[error("no app with id `{0}`")]
    NotFound(String),
    /// The id or key is taken.
    #[error("an app with {0} already exists")]
    Taken(String),
    /// The settings do not make a valid app.
    #[error("{0}")]
    Invalid(String),
}

/// Fresh random credentials: a numeric id, a 20-hex-digit key and secret.
pub fn fresh_credentials() -> (String, String, String) {
    let id = rand::random_range(100_000u32..1_000_000_000).to_string();
    (id, hex::encode(rand::random::<[u8; 10]>()), fresh_secret())
}

fn fresh_secret() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// `settings` (app keys as in `[[apps]]`) laid over `app`; `id` and `secret` cannot be set this way.
pub fn with_changes(app: &AppConfig, settings: &Map<String, Value>) -> Result<AppConfig, AdminError> {
    if let Some(k) = settings.keys().find(|k| matches!(k.as_str(), "id" | "secret")) {
        return Err(AdminError::Invalid(format!("`{k}` cannot be changed here (the secret is rotated with `rotate`)")));
    }
    let Ok(Value::Object(mut base)) = serde_json::to_value(app) else {
        return Err(AdminError::Invalid("the app cannot be read".into()));
    };
    base.extend(settings.clone());
    let changed: AppConfig =
        serde_json::from_value(Value::Object(base)).map_err(|e| AdminError::Invalid(e.to_string()))?;
    checked(changed)
}

fn checked(app: AppConfig) -> Result<AppConfig, AdminError> {
    app.validate(0, &mut HashSet::new(), &mut HashSet::new())
        .map_err(|e| AdminError::Invalid(e.to_string().replace("apps[0].", "")))?;
    Ok(app)
}

impl SqlStore {
    /// Creates an app from `settings` (`id` and `key` may be given; the secret is always made here).
    pub async fn create_app(&self, settings: &Map<String, Value>) -> Result<AppConfig, AdminError> {
        let (id, key, secret) = fresh_credentials();
        let mut given = settings.clone();
        let id = match given.remove("id") {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => id,
        };
        let start = AppConfig { id, key, secret, ..AppConfig::default() };
        let app = with_changes(&start, &given)?;
        if self.by_id(&app.id).await?.is_some() {
            return Err(AdminError::Taken(format!("id `{}`", app.id)));
        }
        if self.by_key(&app.key).await?.is_some() {
            return Err(AdminError::Taken(format!("key `{}`", app.key)));
        }
        self.write(&app, true, &[]).await?;
        Ok(app)
    }

    async fn existing(&self, id: &str) -> Result<AppConfig, AdminError> {
        self.by_id(id).await?.ok_or_else(|| AdminError::NotFound(id.into()))
    }

    /// Changes the app's settings. Only what can change is written: the secret never (it is
    /// rotated on its own), `enabled` only when `settings` names it, so a change made meanwhile to
    /// either is not undone.
    pub async fn update_app(&self, id: &str, settings: &Map<String, Value>) -> Result<AppConfig, AdminError> {
        let app = with_changes(&self.existing(id).await?, settings)?;
        if let Some(other) = self.by_key(&app.key).await?
            && other.id != app.id
        {
            return Err(AdminError::Taken(format!("key `{}`", app.key)));
        }
        let leave: &[&str] = if settings.contains_key("enabled") { &["secret"] } else { &["secret", "enabled"] };
        if self.write(&app, false, leave).await? == 0 {
            return Err(AdminError::NotFound(id.into()));
        }
        Ok(app)
    }

    /// Enables or disables the app.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<AppConfig, AdminError> {
        let mut change = Map::new();
        change.insert("enabled".into(), Value::Bool(enabled));
        self.update_app(id, &change).await
    }

    /// Gives the app a new random secret and returns the app with it.
    pub async fn rotate_secret(&self, id: &str) -> Result<AppConfig, AdminError> {
        let mut app = self.existing(id).await?;
        app.secret = fresh_secret();
        if self.write(&app, false, &["enabled"]).await? == 0 {
            return Err(AdminError::NotFound(id.into()));
        }
        Ok(app)
    }

    /// Deletes the app.
    pub async fn delete_app(&self, id: &str) -> Result<(), AdminError> {
        if self.delete(id).await? { Ok(()) } else { Err(AdminError::NotFound(id.into())) }
    }
}

/// One line per app for `sinew apps list`: everything but the secret.
pub fn describe(app: &AppConfig) -> String {
    let settings = write::settings_of(app);
    let limit = |n: u64| if n == 0 { "unlimited".to_string() } else { n.to_string() };
    format!(
        "{} key={} enabled={} client_events={} max_connections={} max_backend_events_per_second={} max_read_requests_per_second={} webhooks={}{}",
        app.id,
        app.key,
        app.enabled,
        app.client_events,
        limit(app.max_connections),
        limit(app.max_backend_events_per_second.into()),
        limit(app.max_read_requests_per_second.into()),
        app.webhooks.len(),
        if settings.is_empty() { String::new() } else { format!(" settings={}", Value::Object(settings)) },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_checked_and_cannot_touch_id_or_secret() {
        let app = AppConfig::development();
        let set = |json: &str| serde_json::from_str::<Map<String, Value>>(json).unwrap();
        let changed = with_changes(&app, &set(r#"{"max_connections":5,"client_events":false}"#)).unwrap();
        assert_eq!((changed.max_connections, changed.client_events), (5, false));
        assert!(matches!(with_changes(&app, &set(r#"{"secret":"x"}"#)), Err(AdminError::Invalid(_))));
        assert!(
            matches!(with_changes(&app, &set(r#"{"max_batch_size":0}"#)), Err(AdminError::Invalid(m)) if m.contains("max_batch_size"))
        );
        assert!(matches!(with_changes(&app, &set(r#"{"nope":1}"#)), Err(AdminError::Invalid(m)) if m.contains("nope")));
        assert!(!describe(&app).contains(&app.secret));
    }
}
