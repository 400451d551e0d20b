//! Transports: how Pusher connections reach the protocol state machine (WebSocket, HTTP fallbacks).

pub mod connection;
pub mod http;
pub mod keepalive;
pub mod prefixed;
pub mod subscriptions;
pub mod wire;
pub mod ws;

use tokio::net::TcpStream;

/// Writes all of `bytes` to a plain TCP socket, waiting for it as needed.
pub(crate) async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
