//! A WebSocket connection over any stream but plain TCP (TLS): its task reads the stream and writes
//! the outbox in batches.

use super::input::{Input, handle_input, linger_reading, read_stream};
use crate::config::Config;
use crate::hub::{Drained, Frame, clock};
use crate::protocol::websocket::{self as wire, Decoder};
use crate::transport::connection::{Connection, Refusal};
use crate::transport::keepalive::WRITE_TIMEOUT;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

/// A stream connection's write buffer is kept between batches up to this size.
const WRITE_BUFFER: usize = 16 * 1024;

/// What a connection task needs from its stream.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Writes `bytes` and flushes; a stream that takes nothing for [`WRITE_TIMEOUT`] fails.
pub(super) async fn write_stream(stream: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> bool {
    matches!(
        timeout(WRITE_TIMEOUT, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await,
        Ok(Ok(()))
    )
}

/// Runs one connection over `stream` (`early`: bytes read past the upgrade request) until the
/// client leaves, the server closes it, or the stream fails. Liveness and the shutdown notice are
/// the keepalive task's, as for every connection; this task reports what it hears.
pub(super) async fn serve_stream(
    config: &Config,
    stream: impl Io,
    early: Vec<u8>,
    opened: Result<Connection, Refusal>,
) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut decoder = Decoder::new(early);
    let max = config.max_message_bytes;
    let mut conn = match opened {
        Ok(c) => c,
        Err(refusal) => {
            let mut out = refusal.frame().wire().to_vec();
            out.extend(wire::close_frame(refusal.code, &refusal.message));
            if write_stream(&mut writer, &out).await {
                linger_stream(&mut reader, &mut writer, Some(&mut decoder), max).await;
            }
            return;
        }
    };
    tracing::debug!(socket_id = conn.socket_id(), app = %conn.app().id(), "connection opened");
    let outbox = conn.outbox().clone();
    let mut input = Input::Open;
    if !decoder.buf.is_empty() {
        input = handle_input(&mut conn, &mut decoder, max).await;
    }
    let mut batch: Vec<Frame> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    loop {
        tokio::select! {
            biased;
            drained = outbox.next_with_control(&mut batch, &mut out) => {
                for f in &batch {
                    out.extend_from_slice(f.wire());
                }
                let stats = conn.app().stats();
                stats.messages_out.fetch_add(batch.len() as u64, Ordering::Relaxed);
                stats.bytes_out.fetch_add(batch.iter().map(|f| f.len() as u64).sum(), Ordering::Relaxed);
                batch.clear();
                let close = match drained { Drained::Close(c) => Some(c), Drained::Frames => None };
                if let Some(c) = &close {
                    out.extend(wire::close_frame(c.code, &c.reason));
                }
                let written = write_stream(&mut writer, &out).await;
                if out.capacity() > WRITE_BUFFER {
                    out = Vec::new();
                } else {
                    out.clear();
                }
                if close.is_some() && written {
                    if input == Input::PeerClosed {
                        // The close handshake is complete: end the server's side (for TLS, its
                        // close_notify) rather than drop the stream with none.
                        let _ = timeout(WRITE_TIMEOUT, writer.shutdown()).await;
                    } else {
                        let decoder = (input == Input::Open).then_some(&mut decoder);
                        linger_stream(&mut reader, &mut writer, decoder, max).await;
                    }
                }
                if close.is_some() || !written {
                    break;
                }
            }
            read = read_stream(&mut reader, &mut decoder.buf), if input == Input::Open => match read {
                Ok(0) => break,
                Ok(_) => {
                    outbox.heard(clock());
                    input = handle_input(&mut conn, &mut decoder, max).await;
                    if decoder.buf.is_empty() {
                        decoder.buf = Vec::new();
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "websocket read failed");
                    break;
                }
            },
        }
    }
    tracing::debug!(socket_id = conn.socket_id(), "connection closed");
}

/// `linger` (`tcp.rs`) for a stream: ends the server's side (for TLS, its close_notify) and reads
/// until the client's close frame, the end of its stream, or [`LINGER`](super::LINGER).
async fn linger_stream(
    reader: &mut (impl AsyncRead + Unpin),
    writer: &mut (impl AsyncWrite + Unpin),
    decoder: Option<&mut Decoder>,
    max: usize,
) {
    if !matches!(timeout(WRITE_TIMEOUT, writer.shutdown()).await, Ok(Ok(()))) {
        return;
    }
    linger_reading(reader, decoder, max).await;
}
