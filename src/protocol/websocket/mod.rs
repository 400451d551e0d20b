//! The WebSocket wire format (RFC 6455) as pure data: the frames the server sends, built once in
//! one buffer, and an incremental decoder of what clients send. Nothing here does I/O; the
//! connection loops in `transport` read and write the bytes.
//!
//! Hand-written rather than tungstenite's codec: a decoder holds no buffer while a connection is
//! idle, which is what keeps an idle connection near 1.2 KB (BENCHMARKS.md); the frame header is
//! written once per message, not once per subscriber.

mod decode;

pub use decode::{Decoder, Incoming, WireError};

/// Opcodes the server sends.
pub const OP_TEXT: u8 = 0x1;
/// Close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Pong frame.
pub const OP_PONG: u8 = 0xA;

const OP_CONTINUATION: u8 = 0x0;
const OP_BINARY: u8 = 0x2;
const OP_PING: u8 = 0x9;

/// The longest header of an unmasked (server) frame.
const MAX_HEADER: usize = 10;

/// Writes the header of a final, unmasked frame into `out`; returns its length.
fn header(opcode: u8, len: usize, out: &mut [u8; MAX_HEADER]) -> usize {
    out[0] = 0x80 | opcode;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// A complete final, unmasked frame: header and payload in one buffer (every message's wire form
/// is built here once, see [`crate::hub::Frame`]; control frames too).
pub fn encode(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = [0; MAX_HEADER];
    let n = header(opcode, payload.len(), &mut h);
    let mut out = Vec::with_capacity(n + payload.len());
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(payload);
    out
}

/// A close frame; the reason is cut to the 123 bytes a control frame allows.
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode(OP_CLOSE, &payload)
}

/// The `Sec-WebSocket-Accept` value answering a `Sec-WebSocket-Key` (RFC 6455 section 4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Close codes a peer may send (RFC 6455 section 7.4, and the private range 3000-4999).
pub fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_is_the_rfc_6455_example() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
