//! The client side of the WebSocket wire format (RFC 6455): the upgrade handshake, the masked
//! frames a client sends, and the headers of the frames it reads from the server. Pure data, no I/O; [`crate::client`] reads
//! and writes the bytes.
//!
//! The server's own framing (`sinew::protocol::websocket`) only writes unmasked frames and decodes
//! masked ones; this is the other half, kept here so the server carries nothing only a client uses.

use anyhow::{Context as _, bail};
use base64::Engine as _;

/// The upgrade request to app `app_key` at `authority` (`host:port`), and its `Sec-WebSocket-Key`
/// (made from `nonce`), which the answer must acknowledge.
pub fn upgrade_request(app_key: &str, authority: &str, nonce: &[u8; 16]) -> (String, String) {
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    let request = format!(
        "GET /app/{app_key}?protocol=7&client=js&version=8.6.0&flash=false HTTP/1.1\r\nHost: {authority}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    (request, key)
}

/// Checks the answer to an upgrade request sent with `key`, read so far into `buf`: `Ok(None)`
/// while its head is incomplete, then the head's length if it is a `101` with the right
/// `Sec-WebSocket-Accept` (bytes after the head are the first frames), an error otherwise.
pub fn upgrade_answer(buf: &[u8], key: &str) -> anyhow::Result<Option<usize>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(end) = res.parse(buf).context("bad upgrade answer")? else {
        return Ok(None);
    };
    if res.code != Some(101) {
        bail!("upgrade answered {:?} {:?}", res.code, res.reason);
    }
    let expected = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let accept = res.headers.iter().find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"));
    if accept.map(|h| h.value) != Some(expected.as_bytes()) {
        bail!("upgrade answer without the right Sec-WebSocket-Accept");
    }
    Ok(Some(end))
}

/// A frame header from the server: FIN, opcode, header length, payload length, masking key.
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    /// The frame ends its message.
    pub fin: bool,
    /// The frame's opcode.
    pub opcode: u8,
    /// Bytes before the payload.
    pub head_len: usize,
    /// Payload bytes.
    pub payload: usize,
    /// The masking key, if the frame is masked (a server's frames should not be).
    pub mask: Option<[u8; 4]>,
}

/// Parses a frame header at the start of `buf`; `None` until the whole header is there.
pub fn header(buf: &[u8]) -> Option<Header> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    let (mut head_len, payload) = match b1 & 0x7F {
        126 => (4, u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize),
        127 => (10, u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize),
        n => (2, n as usize),
    };
    let mask = if b1 & 0x80 != 0 {
        let m: [u8; 4] = buf.get(head_len..head_len + 4)?.try_into().ok()?;
        head_len += 4;
        Some(m)
    } else {
        None
    };
    Some(Header { fin: b0 & 0x80 != 0, opcode: b0 & 0x0F, head_len, payload, mask })
}

/// XORs `payload` with `mask` (masking and unmasking are the same operation).
pub fn apply_mask(payload: &mut [u8], mask: [u8; 4]) {
    payload.iter_mut().enumerate().for_each(|(i, b)| *b ^= mask[i % 4]);
}

/// A frame as a client sends it: first byte `b0` (FIN and opcode), then the length with the mask
/// bit set, `mask`, and `payload` masked with it.
pub fn masked(b0: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let len = payload.len();
    let mut out = Vec::with_capacity(14 + len);
    out.push(b0);
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(0x80 | 126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sinew::protocol::websocket::{Decoder, Incoming};

    /// Unmasks a client frame the way a server does: (opcode, payload).
    fn unmask(frame: &[u8]) -> (u8, Vec<u8>) {
        let h = header(frame).unwrap_or_else(|| panic!("incomplete header"));
        assert!(h.fin);
        assert_eq!(frame.len(), h.head_len + h.payload, "frame length");
        let m = h.mask.unwrap_or_else(|| panic!("client frames are masked"));
        let mut payload = frame[h.head_len..].to_vec();
        apply_mask(&mut payload, m);
        (h.opcode, payload)
    }

    #[test]
    fn client_frames_are_masked_and_sized_at_each_length_form() {
        for n in [0usize, 1, 125, 126, 65_535, 65_536] {
            let payload: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let frame = masked(0x81, &payload, [1, 2, 3, 4]);
            let header_len = match n {
                0..=125 => 6,
                126..=65_535 => 8,
                _ => 14,
            };
            assert_eq!(frame.len(), header_len + n, "{n} bytes");
            assert_eq!(unmask(&frame), (0x1, payload), "{n} bytes");
        }
    }

    #[test]
    fn the_servers_decoder_reads_client_frames() {
        for n in [0usize, 1, 125, 126, 65_535, 65_536] {
            let text: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let mut bytes = masked(0x81, text.as_bytes(), [0x12, 0x34, 0x56, 0x78]);
            bytes.extend(masked(0x89, b"hi", [9, 8, 7, 6]));
            bytes.extend(masked(0x88, &4100u16.to_be_bytes(), [1, 0, 0, 1]));
            let mut d = Decoder::new(bytes);
            assert_eq!(d.next(1 << 20), Ok(Some(Incoming::Text(text))), "{n} bytes");
            assert_eq!(d.next(1 << 20), Ok(Some(Incoming::Ping(b"hi".to_vec()))));
            assert_eq!(d.next(1 << 20), Ok(Some(Incoming::Close(Some(4100)))));
            assert_eq!(d.next(1 << 20), Ok(None));
        }
    }

    #[test]
    fn upgrade_answers_are_checked_once_their_head_is_complete() {
        // RFC 6455's example key and accept value.
        let nonce = *b"the sample nonce";
        let (request, key) = upgrade_request("k", "127.0.0.1:6001", &nonce);
        assert_eq!(key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert!(request.starts_with("GET /app/k?protocol=7&"), "{request}");
        assert!(request.contains("\r\nHost: 127.0.0.1:6001\r\n"), "{request}");
        assert!(request.contains("\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\n"));
        let head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                    Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        let mut answer = head.as_bytes().to_vec();
        answer.extend(masked(0x81, b"first frame", [1, 2, 3, 4]));
        for cut in 0..head.len() {
            assert!(matches!(upgrade_answer(&answer[..cut], &key), Ok(None)), "{cut} bytes");
        }
        assert_eq!(upgrade_answer(&answer, &key).ok(), Some(Some(head.len())));
        let wrong = head.replace("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert!(upgrade_answer(wrong.as_bytes(), &key).is_err());
        assert!(upgrade_answer(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", &key).is_err());
    }

    #[test]
    fn server_headers_parse_only_when_complete() {
        let mut frame = vec![0x81, 126, 0x01, 0x00];
        frame.extend(std::iter::repeat_n(b'x', 256));
        assert_eq!(header(&frame[..3]), None);
        assert_eq!(header(&frame), Some(Header { fin: true, opcode: 1, head_len: 4, payload: 256, mask: None }));
        let long = [0x01, 127, 0, 0, 0, 0, 0, 1, 0, 0];
        assert_eq!(header(&long[..9]), None);
        assert_eq!(header(&long), Some(Header { fin: false, opcode: 1, head_len: 10, payload: 65_536, mask: None }));
        assert_eq!(header(&[0x88, 0x02]), Some(Header { fin: true, opcode: 8, head_len: 2, payload: 2, mask: None }));
    }
}
