//! Sinew: a self-hosted realtime gateway that speaks the Pusher Channels protocol.
//!
//! # Layout
//! Imports point one way, from the edges down; `ARCHITECTURE.md` (in the repository) names the file
//! that owns each Pusher feature and follows a REST publish and a client event from socket to socket.
//!
//! - Edges: [`server`] (binds, routes, shuts down), [`background`] (the tasks that run beside it), [`api`] (the signed REST API and the token auth
//!   endpoints), [`transport`] (WebSocket over plain TCP or TLS, HTTP fallbacks, the connection state
//!   machine with a file per client message, the keepalive sweep), [`ops`] (`/up`, `/ready`,
//!   `/usage`), [`debug_console`] (`/debug`), [`admin_api`] (`/admin/apps`), [`cli`], [`tls`],
//!   [`signals`], [`fd_limit`].
//! - [`state`]: the context the edges share, built from the pieces below.
//! - [`telemetry`]: logs, `/metrics`, the process's own figures.
//! - [`hub`]: apps, channels, presence members, users, cache, per-connection outboxes, and the one
//!   publish path.
//! - [`adapter`]: scale-out, local or over Redis (cluster state, the bus, node liveness);
//!   [`webhooks`]: batched, signed, retried webhooks with a dead-letter file.
//! - Pure rules: [`protocol`] (WebSocket framing, Pusher messages, channel names, signatures),
//!   [`jwt`], [`rate_limit`], [`config`].
//! - [`app_store`]: apps kept in PostgreSQL or MySQL (soketi's table as it is, or Sinew's), and
//!   the watch that keeps the hub's apps in step with them.

pub mod adapter;
pub mod admin_api;
pub mod api;
pub mod app_store;
pub mod background;
pub mod cli;
pub mod config;
pub mod debug_console;
pub mod fd_limit;
pub mod hub;
pub mod jwt;
pub mod ops;
pub mod protocol;
pub mod rate_limit;
pub mod server;
pub mod signals;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod transport;
pub mod webhooks;
