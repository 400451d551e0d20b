//! SockJS-style frames on the receive responses: `o`, `a[...]`, `h`, `c[code,"reason"]`, one per line.
//!
//! Every frame is pure ASCII (non-ASCII characters are written as `\uXXXX` escapes), so the byte count
//! of a response equals the character count pusher-js measures against its 256 KiB stream limit.

use crate::hub::Frame;
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt::Write as _;

/// Characters pusher-js reads from one streaming response before it re-attaches
/// (`MAX_BUFFER_LENGTH` in `http_request.ts`).
pub const CLIENT_STREAM_LIMIT: usize = 256 * 1024;

/// The open frame.
pub const OPEN: &[u8] = b"o\n";

/// The heartbeat frame.
pub const HEARTBEAT: &[u8] = b"h\n";

/// The streaming prelude: 2048 `h` bytes and a newline, which helps proxies start flushing.
pub fn prelude() -> Bytes {
    let mut b = BytesMut::with_capacity(2049);
    b.put_bytes(b'h', 2048);
    b.put_u8(b'\n');
    b.freeze()
}

/// Appends `a[...]\n` carrying each Pusher envelope as a JSON string element. Nothing for no frames.
pub fn push_messages(out: &mut String, frames: &[Frame]) {
    if frames.is_empty() {
        return;
    }
    out.push_str("a[");
    for (i, f) in frames.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        crate::protocol::frame::push_json_str_ascii(out, f.as_str());
    }
    out.push_str("]\n");
}

/// Appends `c[code,"reason"]\n`.
pub fn push_close(out: &mut String, code: u16, reason: &str) {
    let _ = write!(out, "c[{code},");
    crate::protocol::frame::push_json_str_ascii(out, reason);
    out.push_str("]\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_batch_is_an_array_of_json_strings() {
        let mut out = String::new();
        push_messages(&mut out, &[Frame::from(r#"{"event":"a","data":"{\"x\":1}"}"#), Frame::from("é😀\n")]);
        assert!(out.is_ascii());
        assert!(out.starts_with("a[") && out.ends_with("]\n"));
        let parsed: Vec<String> = serde_json::from_str(&out[1..out.len() - 1]).unwrap_or_default();
        assert_eq!(parsed, vec![r#"{"event":"a","data":"{\"x\":1}"}"#.to_string(), "é😀\n".to_string()]);
        let mut empty = String::new();
        push_messages(&mut empty, &[]);
        assert!(empty.is_empty());
    }

    #[test]
    fn close_frame_and_prelude() {
        let mut out = String::new();
        push_close(&mut out, 4009, "You \"were\" terminated");
        assert_eq!(out, "c[4009,\"You \\\"were\\\" terminated\"]\n");
        let p = prelude();
        assert_eq!(p.len(), 2049);
        assert!(p[..2048].iter().all(|&b| b == b'h') && p[2048] == b'\n');
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut out = String::new();
        crate::protocol::frame::push_json_str_ascii(&mut out, "\u{1}\u{7f}");
        assert_eq!(out, "\"\\u0001\\u007f\"");
        assert_eq!(serde_json::from_str::<String>(&out).unwrap_or_default(), "\u{1}\u{7f}");
    }
}
