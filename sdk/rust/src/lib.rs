//! Server SDK for Sinew (and any Pusher Channels server): publish events, query channels, sign
//! private/presence subscriptions and user sign-ins, verify webhooks, and publish Spine model
//! changes for the Sinew Spine adapter.
//!
//! ```no_run
//! # async fn run() -> Result<(), sinew_sdk::Error> {
//! use sinew_sdk::{Client, ModelChange};
//! let sinew = Client::new("http://127.0.0.1:6001", "1", "app-key", "app-secret")?;
//! let change = ModelChange::update("Page", 1, &serde_json::json!({"title": "Hello"}))?;
//! sinew.publish_change("private-observer", &change, None).await?;
//! # Ok(()) }
//! ```
//!
//! Signatures are computed exactly as the official Node SDK computes them; the crate's tests check
//! that against vectors that SDK produced.

pub mod auth;
mod client;
mod error;
pub mod model;
pub mod sign;
pub mod webhook;

pub use auth::{ChannelAuth, PresenceData, UserAuth};
pub use client::{BatchEvent, Client, MAX_TRIGGER_CHANNELS, TriggerOptions, event_data};
pub use error::{Error, WebhookError};
pub use model::{ChangeKind, ModelChange};
pub use webhook::Webhook;
