//! Sinew: a self-hosted realtime gateway that speaks the Pusher Channels protocol.
//!
//! # Layout
//! - [`cli`]: the command line (serve, apps new, config check/print, sign, webhooks replay).
//! - [`config`]: TOML file plus `SINEW_*` overrides, validated at start-up.
//! - [`protocol`]: pure wire format: messages, channel names, signatures.
//! - [`hub`]: shared state: channels, presence members, users, cache, per-connection outboxes.
//! - [`adapter`]: scale-out over Redis: cluster-wide state, the bus between nodes, node liveness.
//! - [`transport`]: the per-connection state machine, the WebSocket transport and the HTTP fallbacks.
//! - [`api`]: the signed REST API and the token-based auth endpoints.
//! - [`jwt`]: JSON Web Token verification (secret, PEM, JWKS) and channel grants.
//! - [`webhooks`]: batched, signed, retried webhooks with a dead-letter file.
//! - [`debug_console`]: the opt-in live console at `/debug`.
//! - [`fd_limit`]: raises the open-files limit at start-up.
//! - [`ops`]: `/up`, `/ready`, `/usage`.
//! - [`server`]: binds, routes, shuts down.
//! - [`tls`]: rustls for `wss://` and `https://` on the main port, with certificate reload.

pub mod adapter;
pub mod api;
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
