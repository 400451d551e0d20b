//! Transports: how Pusher connections reach the protocol state machine (WebSocket, HTTP fallbacks).

pub mod connection;
pub mod http;
pub mod keepalive;
pub mod prefixed;
pub mod subscriptions;
pub mod wire;
pub mod ws;
