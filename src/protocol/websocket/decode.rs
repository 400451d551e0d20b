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
mod tests {
    use super::super::{MAX_HEADER, close_frame, encode, header};
    use super::*;

    /// A masked client frame: first byte `b0` (FIN and opcode), then the length with the mask bit
    /// set, the masking key, and `payload` masked with it.
    fn client(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut h = [0; MAX_HEADER];
        let n = header(0, payload.len(), &mut h);
        h[0] = b0;
        h[1] |= 0x80;
        let mut out = h[..n].to_vec();
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn decode_all(d: &mut Decoder, max: usize) -> Vec<Result<Incoming, WireError>> {
        let mut out = Vec::new();
        loop {
            match d.next(max) {
                Ok(Some(m)) => out.push(Ok(m)),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }

    #[test]
    fn headers_by_length() {
        let mut h = [0; MAX_HEADER];
        assert_eq!(header(OP_TEXT, 5, &mut h), 2);
        assert_eq!(&h[..2], &[0x81, 5]);
        assert_eq!(header(OP_TEXT, 300, &mut h), 4);
        assert_eq!(&h[..4], &[0x81, 126, 1, 44]);
        assert_eq!(header(OP_TEXT, 70_000, &mut h), 10);
        assert_eq!(&h[..10], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(header(OP_TEXT, 65_535, &mut h), 4);
        assert_eq!(header(OP_TEXT, 65_536, &mut h), 10);
    }

    #[test]
    fn decodes_byte_by_byte_and_frees_the_buffer() {
        let text = "x".repeat(300);
        let mut bytes = client(0x81, b"hello");
        bytes.extend(client(0x81, text.as_bytes()));
        bytes.extend(client(0x89, b"p"));
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for b in bytes {
            d.buf.push(b);
            got.extend(decode_all(&mut d, 1000));
        }
        assert_eq!(
            got,
            vec![Ok(Incoming::Text("hello".into())), Ok(Incoming::Text(text)), Ok(Incoming::Ping(b"p".to_vec()))]
        );
        assert_eq!(d.buf.capacity(), 0);
    }

    #[test]
    fn joins_fragments_around_control_frames() {
        let mut d = Decoder::new(client(0x01, b"hel"));
        d.buf.extend(client(0x8A, b""));
        d.buf.extend(client(0x80, b"lo"));
        assert_eq!(decode_all(&mut d, 1000), vec![Ok(Incoming::Pong), Ok(Incoming::Text("hello".into()))]);
    }

    #[test]
    fn refuses_bad_streams() {
        let cases: Vec<(Vec<u8>, WireError)> = vec![
            (vec![0x81, 0x05, b'h', b'e', b'l', b'l', b'o'], WireError::Protocol("client frame not masked")),
            (client(0xC1, b"x"), WireError::Protocol("reserved bits set")),
            (client(0x80, b"x"), WireError::Protocol("continuation without a message")),
            (client(0x09, b"x"), WireError::Protocol("fragmented or long control frame")),
            (client(0x83, b"x"), WireError::Protocol("unknown opcode")),
            (client(0x81, &[0xff, 0xfe]), WireError::Utf8),
            (client(0x88, &[3]), WireError::Protocol("close frame with a one-byte payload")),
        ];
        for (bytes, want) in cases {
            let mut d = Decoder::new(bytes);
            assert_eq!(decode_all(&mut d, 1000), vec![Err(want)]);
        }
        // Too big is known from the header alone, before the payload arrives.
        let mut d = Decoder::new(client(0x81, &[b'a'; 2000])[..8].to_vec());
        assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::TooBig)]);
        // A fragmented message over the limit in total.
        let mut d = Decoder::new(client(0x01, &[b'a'; 600]));
        d.buf.extend(client(0x80, &[b'a'; 600]));
        assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::TooBig)]);
    }

    #[test]
    fn close_codes_and_frames() {
        let mut d = Decoder::new(client(0x88, &[0x03, 0xE8, b'b', b'y', b'e']));
        assert_eq!(decode_all(&mut d, 1000), vec![Ok(Incoming::Close(Some(1000)))]);
        let mut d = Decoder::new(client(0x88, b""));
        assert_eq!(decode_all(&mut d, 1000), vec![Ok(Incoming::Close(None))]);
        let long = "é".repeat(100);
        let f = close_frame(4100, &long);
        assert_eq!(f[0], 0x88);
        assert_eq!(f[1] as usize, f.len() - 2);
        assert!(f.len() - 2 <= 125);
        assert!(std::str::from_utf8(&f[4..]).is_ok());
    }

    /// A masked client frame header declaring a 64-bit length, with no payload.
    fn long_header(b0: u8, len: u64) -> Vec<u8> {
        let mut out = vec![b0, 0x80 | 127];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&[1, 2, 3, 4]);
        out
    }

    #[test]
    fn invalid_close_codes_are_protocol_errors() {
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535] {
            let mut d = Decoder::new(client(0x88, &code.to_be_bytes()));
            assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::Protocol("invalid close code"))], "{code}");
            assert_eq!(WireError::Protocol("").close_code(), 1002);
        }
        for code in [1000u16, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4100, 4999] {
            let mut d = Decoder::new(client(0x88, &code.to_be_bytes()));
            assert_eq!(decode_all(&mut d, 1000), vec![Ok(Incoming::Close(Some(code)))], "{code}");
        }
        // A reason that is not UTF-8 is 1007.
        let mut d = Decoder::new(client(0x88, &[0x03, 0xE8, 0xC3, 0x28]));
        assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::Utf8)]);
    }

    #[test]
    fn utf8_split_across_fragments() {
        // "€" (E2 82 AC) cut in every place.
        for cut in 1..3 {
            let euro = "€".as_bytes();
            let mut d = Decoder::new(client(0x01, &euro[..cut]));
            d.buf.extend(client(0x89, b"p"));
            d.buf.extend(client(0x80, &euro[cut..]));
            assert_eq!(
                decode_all(&mut d, 1000),
                vec![Ok(Incoming::Ping(b"p".to_vec())), Ok(Incoming::Text("€".into()))],
                "cut at {cut}"
            );
        }
        // One byte per fragment.
        let text = "aé€𝄞z";
        let bytes = text.as_bytes();
        let mut d = Decoder::new(client(0x01, &bytes[..1]));
        for b in &bytes[1..bytes.len() - 1] {
            d.buf.extend(client(0x00, &[*b]));
        }
        d.buf.extend(client(0x80, &bytes[bytes.len() - 1..]));
        assert_eq!(decode_all(&mut d, 1000), vec![Ok(Incoming::Text(text.into()))]);
        // Refused as soon as a fragment makes it invalid, before the message ends.
        let mut d = Decoder::new(client(0x01, b"ok"));
        d.buf.extend(client(0x00, &[0xE2, 0x28]));
        assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::Utf8)]);
        let mut d = Decoder::new(client(0x01, &[0xE2, 0x82]));
        d.buf.extend(client(0x00, &[0xFF]));
        assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::Utf8)]);
        // A character still cut when the message ends.
        let mut d = Decoder::new(client(0x01, b"a"));
        d.buf.extend(client(0x80, &[0xE2, 0x82]));
        assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::Utf8)]);
        // Binary messages are not checked.
        let mut d = Decoder::new(client(0x02, &[0xFF]));
        d.buf.extend(client(0x80, &[0xFE]));
        assert_eq!(decode_all(&mut d, 1000), vec![Ok(Incoming::Binary)]);
    }

    #[test]
    fn frames_are_refused_from_their_header() {
        // Only the header (with its mask) has arrived in each case.
        let header_only = |frame: Vec<u8>| {
            let n = match frame[1] & 0x7F {
                126 => 8,
                127 => 14,
                _ => 6,
            };
            frame[..n].to_vec()
        };
        let cases: Vec<(Vec<u8>, WireError)> = vec![
            (header_only(client(0x83, b"abc")), WireError::Protocol("unknown opcode")),
            (header_only(client(0x8B, b"abc")), WireError::Protocol("unknown opcode")),
            (header_only(client(0x89, &[0; 126])), WireError::Protocol("fragmented or long control frame")),
            (header_only(client(0x08, b"")), WireError::Protocol("fragmented or long control frame")),
            (header_only(client(0xA1, b"x")), WireError::Protocol("reserved bits set")),
            (long_header(0x81, 1 << 63), WireError::Protocol("payload length with the top bit set")),
            (long_header(0x81, u64::MAX), WireError::Protocol("payload length with the top bit set")),
            (long_header(0x81, 1 << 40), WireError::TooBig),
            (long_header(0x82, 70_000), WireError::TooBig),
            // Lengths not in the fewest bytes (section 5.2).
            (long_header(0x81, 5), WireError::Protocol("payload length not in the fewest bytes")),
            (long_header(0x81, 0xFFFF), WireError::Protocol("payload length not in the fewest bytes")),
            (vec![0x81, 0x80 | 126, 0, 125, 1, 2, 3, 4], WireError::Protocol("payload length not in the fewest bytes")),
            (vec![0x89, 0x80 | 126, 0, 5, 1, 2, 3, 4], WireError::Protocol("payload length not in the fewest bytes")),
        ];
        for (bytes, want) in cases {
            let mut d = Decoder::new(bytes.clone());
            assert_eq!(decode_all(&mut d, 1000), vec![Err(want)], "{bytes:?}");
        }
        // A fragment while another message is open, or a continuation of nothing.
        let mut d = Decoder::new(client(0x01, b"a"));
        d.buf.extend(header_only(client(0x81, b"b")));
        assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::Protocol("new message inside a fragmented one"))]);
        let mut d = Decoder::new(client(0x02, b"a"));
        d.buf.extend(client(0x01, b"b"));
        assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::Protocol("new message inside a fragmented one"))]);
        let mut d = Decoder::new(client(0x81, b"done"));
        d.buf.extend(client(0x00, b"more"));
        assert_eq!(
            decode_all(&mut d, 1000),
            vec![Ok(Incoming::Text("done".into())), Err(WireError::Protocol("continuation without a message"))]
        );
    }

    #[test]
    fn a_declared_length_reserves_nothing() {
        let mut d = Decoder::new(long_header(0x81, 100_000));
        d.buf.shrink_to_fit();
        assert_eq!(decode_all(&mut d, 128 * 1024), vec![]);
        assert!(d.buf.capacity() < 100, "{}", d.buf.capacity());
        // The payload still decodes once it arrives.
        let mut d = Decoder::default();
        for chunk in client(0x81, &[b'a'; 60_000]).chunks(4096) {
            d.buf.extend_from_slice(chunk);
            let got = decode_all(&mut d, 64 * 1024);
            if !got.is_empty() {
                assert_eq!(got, vec![Ok(Incoming::Text("a".repeat(60_000)))]);
                return;
            }
        }
        panic!("the message was not decoded");
    }

    #[test]
    fn pings_carry_their_payload_and_may_sit_inside_a_fragmented_message() {
        let payload: Vec<u8> = (0..125).collect();
        let mut d = Decoder::new(client(0x01, b"ab"));
        d.buf.extend(client(0x89, &payload));
        d.buf.extend(client(0x00, b"cd"));
        d.buf.extend(client(0x89, b""));
        d.buf.extend(client(0x80, b"ef"));
        assert_eq!(
            decode_all(&mut d, 1000),
            vec![Ok(Incoming::Ping(payload)), Ok(Incoming::Ping(Vec::new())), Ok(Incoming::Text("abcdef".into()))]
        );
        let pong = encode(OP_PONG, b"xyz");
        assert_eq!(pong, vec![0x8A, 3, b'x', b'y', b'z']);
    }

    /// Round trips: what the server's encoders write, masked as a client would send it, decodes
    /// to the same message, whole or cut into fragments with control frames between them, and
    /// whatever the chunks the bytes arrive in.
    mod round_trip {
        use super::*;
        use proptest::prelude::*;

        /// A server frame (as `encode` builds it) as a client sends it: the mask bit set, the key
        /// after the length, the payload masked with it.
        fn masked(frame: &[u8], key: [u8; 4]) -> Vec<u8> {
            let head = match frame[1] {
                126 => 4,
                127 => 10,
                _ => 2,
            };
            let mut out = frame[..head].to_vec();
            out[1] |= 0x80;
            out.extend_from_slice(&key);
            out.extend(frame[head..].iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            out
        }

        /// Feeds `bytes` in chunks of the given sizes (cycled) and decodes all, up to the first error.
        fn decode_chunked(bytes: &[u8], sizes: &[usize], max: usize) -> Vec<Result<Incoming, WireError>> {
            let mut d = Decoder::default();
            let mut got = Vec::new();
            let mut at = 0;
            let mut i = 0;
            while at < bytes.len() {
                let n = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(bytes.len()).max(1);
                let end = (at + n).min(bytes.len());
                d.buf.extend_from_slice(&bytes[at..end]);
                at = end;
                i += 1;
                got.extend(decode_all(&mut d, max));
                if matches!(got.last(), Some(Err(_))) {
                    break;
                }
            }
            got
        }

        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                8 => any::<String>(),
                1 => "[a-zé€😀]{100,400}",
                // Lengths around the 16-bit and 64-bit length forms.
                1 => (65_530usize..65_540).prop_map(|n| "x".repeat(n)),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn text_messages(
                s in text(),
                cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
                pings in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..126), 0..4),
                sizes in prop::collection::vec(1usize..300, 1..8),
                key in any::<[u8; 4]>(),
            ) {
                // Fragments cut at any byte, not only between characters.
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(s.len() + 1)).collect();
                cuts.sort_unstable();
                cuts.dedup();
                let mut bounds = vec![0];
                bounds.extend(cuts.into_iter().filter(|&c| c > 0 && c < s.len()));
                bounds.push(s.len());
                let mut bytes = Vec::new();
                let mut want = Vec::new();
                let n = bounds.len() - 1;
                for (i, w) in bounds.windows(2).enumerate() {
                    let mut f = masked(&encode(OP_TEXT, &s.as_bytes()[w[0]..w[1]]), key);
                    if i > 0 {
                        f[0] &= 0xF0; // a continuation
                    }
                    if i + 1 < n {
                        f[0] &= 0x7F; // not the last
                    }
                    bytes.extend(f);
                    // A ping between this fragment and the next one.
                    if let Some(p) = pings.get(i).filter(|_| i + 1 < n) {
                        bytes.extend(masked(&encode(OP_PING, p), key));
                        want.push(Ok(Incoming::Ping(p.clone())));
                    }
                }
                want.push(Ok(Incoming::Text(s.clone())));
                prop_assert_eq!(decode_chunked(&bytes, &sizes, s.len()), want);
                // One byte under the size limit is refused.
                if !s.is_empty() {
                    let got = decode_chunked(&bytes, &sizes, s.len() - 1);
                    prop_assert_eq!(got.last(), Some(&Err(WireError::TooBig)));
                }
            }

            #[test]
            fn control_and_binary_frames(
                ping in prop::collection::vec(any::<u8>(), 0..126),
                code in prop::sample::select(vec![1000u16, 1001, 1002, 1003, 1007, 1008, 1011, 1014, 3000, 4000, 4100, 4999]),
                reason in ".{0,130}",
                binary in prop::collection::vec(any::<u8>(), 0..70_000),
                sizes in prop::collection::vec(1usize..5000, 1..4),
                key in any::<[u8; 4]>(),
            ) {
                let mut bytes = masked(&encode(OP_PING, &ping), key);
                bytes.extend(masked(&encode(OP_PONG, &ping), key));
                bytes.extend(masked(&encode(OP_BINARY, &binary), key));
                bytes.extend(masked(&close_frame(code, &reason), key));
                let want = vec![
                    Ok(Incoming::Ping(ping)),
                    Ok(Incoming::Pong),
                    Ok(Incoming::Binary),
                    Ok(Incoming::Close(Some(code))),
                ];
                prop_assert_eq!(decode_chunked(&bytes, &sizes, 70_000), want);
            }
        }
    }
}
