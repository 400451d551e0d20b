//! Transports: how Pusher connections reach the protocol state machine.

pub mod connection;
pub mod ws;
