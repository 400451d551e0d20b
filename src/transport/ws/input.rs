//! What a client sends, for either kind of connection: reads from a stream, its messages handled as
//! they are decoded, and the reads after the server's close frame.

use super::{LINGER, READ_CHUNK};
use crate::hub::Frame;
use crate::protocol::frame;
use crate::protocol::websocket::{self as wire, Decoder, Incoming};
use crate::transport::connection::Connection;
use std::io;
use std::sync::atomic::Ordering;
use std::task::Poll;
use tokio::io::AsyncRead;
use tokio::time::timeout;

/// The reading half of a linger, whatever the stream: decodes what it reads until the client's
/// close frame, or (once nothing more can be decoded) just reads, until the end of the stream, a
/// failed read, or [`LINGER`].
pub(super) async fn linger_reading(
    reader: &mut (impl AsyncRead + Unpin),
    mut decoder: Option<&mut Decoder>,
    max: usize,
) {
    let mut scratch = Vec::new();
    let _ = timeout(LINGER, async {
        loop {
            if let Some(d) = decoder.as_deref_mut() {
                let decodable = loop {
                    match d.next(max) {
                        Ok(Some(Incoming::Close(_))) => return,
                        Ok(Some(_)) => {}
                        Ok(None) => break true,
                        Err(_) => break false,
                    }
                };
                if !decodable {
                    d.buf = Vec::new();
                    decoder = None;
                }
            }
            let buf = match decoder.as_deref_mut() {
                Some(d) => &mut d.buf,
                None => {
                    scratch.clear();
                    &mut scratch
                }
            };
            match read_stream(reader, buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// Where the client's stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Input {
    /// Still read.
    Open,
    /// The client sent its close frame.
    PeerClosed,
    /// The client broke the protocol; nothing more is decoded.
    Broken,
}

/// Decodes and handles every complete message in `decoder`, until more bytes are needed or the
/// client's stream has ended (a close frame or a protocol error), after which nothing more is read.
pub(super) async fn handle_input(conn: &mut Connection, decoder: &mut Decoder, max: usize) -> Input {
    loop {
        match decoder.next(max) {
            Ok(Some(Incoming::Text(text))) => {
                let stats = conn.app().stats();
                stats.messages_in.fetch_add(1, Ordering::Relaxed);
                stats.bytes_in.fetch_add(text.len() as u64, Ordering::Relaxed);
                conn.handle_text(&text).await;
            }
            Ok(Some(Incoming::Binary)) => {
                conn.outbox().push(&Frame::from(frame::error(None, "Binary frames are not supported")));
            }
            Ok(Some(Incoming::Ping(payload))) => conn.outbox().push_control(&wire::encode(wire::OP_PONG, &payload)),
            Ok(Some(Incoming::Pong)) => {}
            Ok(Some(Incoming::Close(code))) => {
                // Answer with the client's code once what is queued is written.
                conn.outbox().close(None, code.unwrap_or(1000), "");
                return Input::PeerClosed;
            }
            Ok(None) => return Input::Open,
            Err(e) => {
                tracing::debug!(error = %e, "websocket read failed");
                conn.outbox().close(None, e.close_code(), &e.to_string());
                return Input::Broken;
            }
        }
    }
}

/// Appends what `stream` has to `buf` (up to [`READ_CHUNK`] bytes), waiting for bytes. The read
/// space is on the stack only while a read is tried, so a waiting connection holds no buffer.
pub(super) async fn read_stream(stream: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> io::Result<usize> {
    std::future::poll_fn(|cx| {
        let mut space = [0u8; READ_CHUNK];
        let mut read = tokio::io::ReadBuf::new(&mut space);
        match std::pin::Pin::new(&mut *stream).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => {
                buf.extend_from_slice(read.filled());
                Poll::Ready(Ok(read.filled().len()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}
