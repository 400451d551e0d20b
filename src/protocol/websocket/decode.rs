//! The incremental decoder of client frames.
//!
//! The decoder keeps no buffer while a connection is idle: bytes are held only while a frame or a
//! fragmented message is incomplete.

use super::{OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, close_code_allowed};

/// A message from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A complete text message.
    Text(String),
    /// A complete binary message (its content is not needed).
    Binary,
    /// A ping, with the payload its pong must echo.
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// The client closes, with its close code if it sent one.
    Close(Option<u16>),
}

/// Why the client's byte stream was refused; each maps to a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Malformed framing (1002).
    #[error("WebSocket protocol error: {0}")]
    Protocol(&'static str),
    /// A text message that is not UTF-8 (1007).
    #[error("Text message is not valid UTF-8")]
    Utf8,
    /// A message over the size limit (1009).
    #[error("Message too big")]
    TooBig,
}

impl WireError {
    /// The close code to answer with.
    pub fn close_code(self) -> u16 {
        match self {
            WireError::Protocol(_) => 1002,
            WireError::Utf8 => 1007,
            WireError::TooBig => 1009,
        }
    }
}

/// Incremental decoder of client frames.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Received bytes not decoded yet (unallocated when empty).
    pub buf: Vec<u8>,
    /// A fragmented message in progress (boxed: rare, and every idle connection holds a decoder).
    partial: Option<Box<Partial>>,
}

/// A fragmented message whose last frame has not arrived yet.
#[derive(Debug)]
struct Partial {
    opcode: u8,
    payload: Vec<u8>,
    /// Bytes of a text payload known to be valid UTF-8 (a character may continue past them).
    checked: usize,
}

impl Partial {
    /// Fails as soon as a text message holds bytes that no later fragment can make valid UTF-8; a
    /// character cut at the end of the payload so far may still be completed.
    fn check_utf8(&mut self) -> Result<(), WireError> {
        if self.opcode != OP_TEXT {
            return Ok(());
        }
        match std::str::from_utf8(&self.payload[self.checked..]) {
            Ok(_) => self.checked = self.payload.len(),
            Err(e) if e.error_len().is_none() => self.checked += e.valid_up_to(),
            Err(_) => return Err(WireError::Utf8),
        }
        Ok(())
    }
}

impl Decoder {
    /// A decoder starting with bytes already read from the socket.
    pub fn new(received: Vec<u8>) -> Self {
        Decoder { buf: received, partial: None }
    }

    /// Decodes the next complete message from [`Decoder::buf`], or `None` when more bytes are
    /// needed. Frames are checked as soon as their header is read: a frame that breaks the
    /// protocol, or that would make its message longer than `max`, is refused before its payload
    /// arrives (and no room is reserved for a declared length).
    pub fn next(&mut self, max: usize) -> Result<Option<Incoming>, WireError> {
        loop {
            let Some((b0, len, start)) = parse_header(&self.buf)? else {
                return Ok(None);
            };
            let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0F);
            match (opcode, self.partial.as_deref()) {
                (OP_CLOSE | OP_PING | OP_PONG, _) => {
                    if !fin || len > 125 {
                        return Err(WireError::Protocol("fragmented or long control frame"));
                    }
                }
                (OP_CONTINUATION, None) => return Err(WireError::Protocol("continuation without a message")),
                (OP_TEXT | OP_BINARY, Some(_)) => {
                    return Err(WireError::Protocol("new message inside a fragmented one"));
                }
                (OP_CONTINUATION | OP_TEXT | OP_BINARY, partial) => {
                    let so_far = partial.map_or(0, |p| p.payload.len());
                    if len > max.saturating_sub(so_far) as u64 {
                        return Err(WireError::TooBig);
                    }
                }
                _ => return Err(WireError::Protocol("unknown opcode")),
            }
            // At most `max` (or 125): checked above.
            let end = start + len as usize;
            if self.buf.len() < end {
                return Ok(None);
            }
            let mask = [self.buf[start - 4], self.buf[start - 3], self.buf[start - 2], self.buf[start - 1]];
            let mut payload = self.buf[start..end].to_vec();
            unmask(&mut payload, mask);
            self.consume(end);
            let (opcode, payload) = match (opcode, self.partial.as_mut()) {
                (OP_CONTINUATION, Some(p)) => {
                    p.payload.extend_from_slice(&payload);
                    p.check_utf8()?;
                    if !fin {
                        continue;
                    }
                    match self.partial.take() {
                        Some(p) => (p.opcode, p.payload),
                        None => continue,
                    }
                }
                (OP_TEXT | OP_BINARY, _) if !fin => {
                    let mut p = Partial { opcode, payload, checked: 0 };
                    p.check_utf8()?;
                    self.partial = Some(Box::new(p));
                    continue;
                }
                (OP_CLOSE, _) => return close(&payload).map(Some),
                (OP_PING, _) => return Ok(Some(Incoming::Ping(payload))),
                (OP_PONG, _) => return Ok(Some(Incoming::Pong)),
                (opcode, _) => (opcode, payload),
            };
            return match opcode {
                OP_TEXT => String::from_utf8(payload).map(|s| Some(Incoming::Text(s))).map_err(|_| WireError::Utf8),
                _ => Ok(Some(Incoming::Binary)),
            };
        }
    }

    fn consume(&mut self, n: usize) {
        if n >= self.buf.len() {
            // Idle connections hold no read buffer.
            self.buf = Vec::new();
        } else {
            self.buf.drain(..n);
        }
    }
}

/// A client's close frame: no payload, or a valid close code and a UTF-8 reason.
fn close(payload: &[u8]) -> Result<Incoming, WireError> {
    match payload {
        [] => Ok(Incoming::Close(None)),
        [_] => Err(WireError::Protocol("close frame with a one-byte payload")),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            if !close_code_allowed(code) {
                return Err(WireError::Protocol("invalid close code"));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(WireError::Utf8);
            }
            Ok(Incoming::Close(Some(code)))
        }
    }
}

/// Parses a client frame header: the first byte, the payload length and where the payload starts
/// (the 4-byte mask key ends there). `None` until the whole header is there.
fn parse_header(buf: &[u8]) -> Result<Option<(u8, u64, usize)>, WireError> {
    let [b0, b1, rest @ ..] = buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(WireError::Protocol("reserved bits set"));
    }
    if b1 & 0x80 == 0 {
        return Err(WireError::Protocol("client frame not masked"));
    }
    // RFC 6455 section 5.2: a length in the fewest bytes, so 126 and 127 announce a length that
    // needs them.
    let (len, ext) = match b1 & 0x7F {
        126 => match rest {
            [a, b, ..] => {
                let len = u16::from_be_bytes([*a, *b]);
                if len < 126 {
                    return Err(WireError::Protocol("payload length not in the fewest bytes"));
                }
                (u64::from(len), 2)
            }
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(b) => {
                let mut a = [0; 8];
                a.copy_from_slice(b);
                let len = u64::from_be_bytes(a);
                if len >> 63 != 0 {
                    return Err(WireError::Protocol("payload length with the top bit set"));
                }
                if len <= 0xFFFF {
                    return Err(WireError::Protocol("payload length not in the fewest bytes"));
                }
                (len, 8)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 0),
    };
    let start = 2 + ext + 4;
    if buf.len() < start {
        return Ok(None);
    }
    Ok(Some((*b0, len, start)))
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = payload.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
