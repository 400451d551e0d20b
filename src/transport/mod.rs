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

/// Writes all of `bytes` to a plain TCP socket, then ends the sending side (FIN). On Linux the
/// bytes are held back (`MSG_MORE`) until the shutdown, so that a short answer and the FIN leave in
/// one segment instead of two: one packet less for both ends of every `Connection: close` request.
pub(crate) async fn write_all_and_finish(stream: &TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    write_all_more(stream, bytes).await?;
    #[cfg(not(target_os = "linux"))]
    write_all(stream, bytes).await?;
    socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write)
}

/// [`write_all`] with `MSG_MORE`: the kernel holds a short last segment until more data, a
/// shutdown or a close.
#[cfg(target_os = "linux")]
async fn write_all_more(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    use rustix::net::{SendFlags, send};
    while !bytes.is_empty() {
        stream.writable().await?;
        let sent = stream.try_io(tokio::io::Interest::WRITABLE, || {
            send(stream, bytes, SendFlags::MORE).map_err(std::io::Error::from)
        });
        match sent {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
