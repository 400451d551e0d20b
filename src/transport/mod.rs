//! Transports: how Pusher connections reach the protocol state machine (WebSocket, HTTP fallbacks).

pub mod connection;
pub mod http;
pub mod keepalive;
pub mod prefixed;
pub mod subscriptions;
pub mod ws;

use tokio::net::TcpStream;

/// Writes all of `bytes` to a plain TCP socket, waiting for it as needed.
pub(crate) async fn write_all(stream: &TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    write_with(stream, bytes, |b| stream.try_write(b)).await
}

/// Writes all of `bytes` with `write` (a non-blocking write to `stream`), waiting for the socket
/// whenever it takes nothing.
async fn write_with(
    stream: &TcpStream,
    mut bytes: &[u8],
    mut write: impl FnMut(&[u8]) -> std::io::Result<usize>,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
