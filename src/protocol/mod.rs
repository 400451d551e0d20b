//! The Pusher wire protocol as pure data: message parsing and encoding, channel names, signatures.
//! Nothing here does I/O.

pub mod channel;
pub mod frame;
pub mod signature;
pub mod websocket;
