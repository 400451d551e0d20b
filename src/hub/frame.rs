//! [`Frame`]: one outbound Pusher message, encoded once and shared by every recipient.

use crate::protocol::websocket as wire;
use bytes::Bytes;

/// One outbound message as a complete WebSocket text frame (header, then the JSON text) in one
/// buffer, built once when the message is. Cloning bumps a reference count, so a fan-out sends the
/// very same bytes to every subscriber with no framing or copying per subscriber.
#[derive(Clone)]
pub struct Frame {
    wire: Bytes,
    /// Length of the frame header: the text starts here.
    head: u8,
}

impl Frame {
    /// The message's JSON text. (Checked as UTF-8 on each call, which `unsafe` would skip: the
    /// text was a `&str` when the frame was built. The callers are off the fan-out path: the bus,
    /// the HTTP fallback's framing, which escapes the text anyway, and tests.)
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.text_bytes()).unwrap_or_default()
    }

    fn text_bytes(&self) -> &[u8] {
        self.wire.get(usize::from(self.head)..).unwrap_or_default()
    }

    /// The complete WebSocket text frame: header, then the text.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// Length of the text in bytes (what queue limits and byte counters count).
    pub fn len(&self) -> usize {
        self.wire.len() - usize::from(self.head)
    }

    /// True for an empty text.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn build(text: &str) -> Self {
        let wire = wire::encode(wire::OP_TEXT, text.as_bytes());
        // At most 10 bytes (`wire::encode` writes a final frame's header).
        let head = u8::try_from(wire.len() - text.len()).unwrap_or(u8::MAX);
        Frame { wire: Bytes::from(wire), head }
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        Frame::build(&text)
    }
}

impl From<&str> for Frame {
    fn from(text: &str) -> Self {
        Frame::build(text)
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        self.text_bytes() == other.text_bytes()
    }
}

impl Eq for Frame {}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Frame").field(&self.as_str()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_is_a_final_unmasked_text_frame_around_the_text() {
        for len in [0, 1, 125, 126, 65_535, 65_536] {
            let text = "x".repeat(len);
            let f = Frame::from(text.as_str());
            assert_eq!(f.as_str(), text);
            assert_eq!(f.len(), len);
            let head = match len {
                0..126 => vec![0x81, len as u8],
                126..=65_535 => vec![0x81, 126, (len >> 8) as u8, len as u8],
                _ => [vec![0x81, 127], (len as u64).to_be_bytes().to_vec()].concat(),
            };
            assert_eq!(f.wire(), [head, text.clone().into_bytes()].concat(), "length {len}");
        }
    }

    #[test]
    fn the_text_is_the_tail_of_the_wire_buffer_and_clones_share_it() {
        let f = Frame::from("{\"event\":\"e\"}".to_string());
        assert_eq!(f.as_str().as_ptr(), f.wire()[2..].as_ptr());
        let g = f.clone();
        assert_eq!(f.wire().as_ptr(), g.wire().as_ptr());
        assert_eq!(f.as_str().as_ptr(), g.as_str().as_ptr());
        assert_eq!(f, g);
        assert_eq!(std::mem::size_of::<Frame>(), 40, "a queued frame is one buffer handle and its header length");
    }
}
