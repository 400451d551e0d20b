//! Notes kept in memory and written to a JSON file after every change.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Longest title accepted.
pub const MAX_TITLE_CHARS: usize = 500;

/// One note, as the Spine model `Note` sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Note {
    /// Assigned by the store, sent as a string.
    pub id: String,
    /// The text.
    pub title: String,
    /// Ticked off.
    pub done: bool,
}

/// The fields a client may set.
#[derive(Debug, Deserialize)]
pub struct NoteInput {
    /// The text.
    pub title: String,
    /// Ticked off (default false).
    #[serde(default)]
    pub done: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    next_id: u64,
    notes: BTreeMap<u64, Note>,
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No note with that id.
    #[error("no note {0}")]
    NotFound(String),
    /// The title is empty or too long.
    #[error("title must be 1 to {MAX_TITLE_CHARS} characters")]
    BadTitle,
    /// The data file could not be read or written.
    #[error("data file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
}

/// The notes plus the file they persist to.
pub struct Store {
    path: PathBuf,
    state: Mutex<(u64, Saved)>,
    writer: tokio::sync::Mutex<u64>,
}

fn file_error(path: &std::path::Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::File { path: path.display().to_string(), message: e.to_string() }
}

impl Store {
    /// Loads `path` (an absent file is an empty store).
    pub fn open(path: PathBuf) -> Result<Store, StoreError> {
        let saved = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| file_error(&path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved { next_id: 1, notes: BTreeMap::new() },
            Err(e) => return Err(file_error(&path, e)),
        };
        Ok(Store { path, state: Mutex::new((0, saved)), writer: tokio::sync::Mutex::new(0) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, Saved)> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every note, by id.
    pub fn list(&self) -> Vec<Note> {
        self.lock().1.notes.values().cloned().collect()
    }

    /// Applies `change` under the lock, then persists; returns what `change` returned.
    async fn modify<T>(&self, change: impl FnOnce(&mut Saved) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let (version, text, out) = {
            let mut guard = self.lock();
            let out = change(&mut guard.1)?;
            guard.0 += 1;
            let text = serde_json::to_string_pretty(&guard.1).map_err(|e| file_error(&self.path, e))?;
            (guard.0, text, out)
        };
        let mut written = self.writer.lock().await;
        // A later snapshot may already be on disk.
        if version > *written {
            let tmp = self.path.with_extension("json.tmp");
            if let Some(dir) = self.path.parent() {
                tokio::fs::create_dir_all(dir).await.map_err(|e| file_error(dir, e))?;
            }
            tokio::fs::write(&tmp, text).await.map_err(|e| file_error(&tmp, e))?;
            tokio::fs::rename(&tmp, &self.path).await.map_err(|e| file_error(&self.path, e))?;
            *written = version;
        }
        Ok(out)
    }

    /// Adds a note.
    pub async fn create(&self, input: NoteInput) -> Result<Note, StoreError> {
        let title = checked_title(input.title)?;
        self.modify(|s| {
            let id = s.next_id.max(1);
            s.next_id = id + 1;
            let note = Note { id: id.to_string(), title, done: input.done };
            s.notes.insert(id, note.clone());
            Ok(note)
        })
        .await
    }

    /// Replaces a note's fields.
    pub async fn update(&self, id: &str, input: NoteInput) -> Result<Note, StoreError> {
        let title = checked_title(input.title)?;
        self.modify(|s| {
            let note = parse_id(id).and_then(|n| s.notes.get_mut(&n)).ok_or_else(|| StoreError::NotFound(id.into()))?;
            note.title = title;
            note.done = input.done;
            Ok(note.clone())
        })
        .await
    }

    /// Removes a note.
    pub async fn destroy(&self, id: &str) -> Result<Note, StoreError> {
        self.modify(|s| parse_id(id).and_then(|n| s.notes.remove(&n)).ok_or_else(|| StoreError::NotFound(id.into())))
            .await
    }
}

fn parse_id(id: &str) -> Option<u64> {
    id.parse().ok()
}

fn checked_title(title: String) -> Result<String, StoreError> {
    let trimmed = title.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_TITLE_CHARS {
        return Err(StoreError::BadTitle);
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("sinew-demo-{}-{name}", std::process::id())).join("notes.json")
    }

    fn input(title: &str, done: bool) -> NoteInput {
        NoteInput { title: title.into(), done }
    }

    #[tokio::test]
    async fn changes_survive_a_restart() {
        let path = temp_file("restart");
        let store = Store::open(path.clone()).expect("open");
        let a = store.create(input("  first ", false)).await.expect("create");
        let b = store.create(input("second", false)).await.expect("create");
        assert_eq!((a.id.as_str(), a.title.as_str(), b.id.as_str()), ("1", "first", "2"));
        store.update("1", input("first, edited", true)).await.expect("update");
        store.destroy("2").await.expect("destroy");
        let reopened = Store::open(path.clone()).expect("reopen");
        assert_eq!(reopened.list(), vec![Note { id: "1".into(), title: "first, edited".into(), done: true }]);
        let c = reopened.create(input("third", false)).await.expect("create");
        assert_eq!(c.id, "3", "ids are not reused");
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    #[tokio::test]
    async fn bad_input_is_refused() {
        let store = Store::open(temp_file("bad")).expect("open");
        assert!(matches!(store.create(input("   ", false)).await, Err(StoreError::BadTitle)));
        assert!(matches!(store.create(input(&"x".repeat(501), false)).await, Err(StoreError::BadTitle)));
        assert!(matches!(store.update("9", input("x", false)).await, Err(StoreError::NotFound(_))));
        assert!(matches!(store.destroy("abc").await, Err(StoreError::NotFound(_))));
        assert!(store.list().is_empty());
    }
}
