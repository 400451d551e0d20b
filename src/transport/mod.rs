//! Transports: how Pusher connections reach the protocol state machine (WebSocket, HTTP fallbacks).

pub mod connection;
pub mod http;
pub mod keepalive;
pub mod prefixed;
pub mod subscriptions;
pub mod ws;

#[cfg(target_os = "linux")]
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Writes all of `bytes` to a plain TCP socket, waiting for it as needed.
pub(crate) async fn write_all(stream: &TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    write_with(stream, bytes, |b| stream.try_write(b)).await
}

/// Writes all of `bytes` to a plain TCP socket, then ends the sending side (FIN). On Linux the
/// bytes are held back (`MSG_MORE`) until the shutdown, so that a short answer and the FIN leave in
/// one segment instead of two: one packet less for both ends of every `Connection: close` request.
pub(crate) async fn write_all_and_finish(stream: &TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::net::{SendFlags, send};
        let flags = SendFlags::MORE | SendFlags::NOSIGNAL;
        write_with(stream, bytes, |b| {
            stream.try_io(Interest::WRITABLE, || send(stream, b, flags).map_err(std::io::Error::from))
        })
        .await?;
    }
    #[cfg(not(target_os = "linux"))]
    write_all(stream, bytes).await?;
    socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write)
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
