//! [`Frame`]: one outbound Pusher message, encoded once and shared by every recipient.

use crate::protocol::websocket as wire;
use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// One outbound message as a complete WebSocket text frame (header, then the JSON text) in one
/// buffer, built once when the message is, with a second handle on the text part of that buffer.
/// Cloning bumps a reference count per handle, so a fan-out sends the very same bytes to every plain
/// TCP subscriber with one `send` each and no framing or copying per subscriber.
#[derive(Clone)]
pub struct Frame {
    text: Utf8Bytes,
    wire: Bytes,
}

impl Frame {
    /// The message's JSON text.
    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }

    /// The text as tungstenite's message payload (for connections tungstenite writes).
    pub fn text(&self) -> Utf8Bytes {
        self.text.clone()
    }

    /// The complete WebSocket text frame: header, then the text.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// Length of the text in bytes (what queue limits and byte counters count).
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// True for an empty text.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    fn build<T: AsRef<str> + Into<Utf8Bytes>>(text: T) -> Self {
        let wire = Bytes::from(wire::encode(wire::OP_TEXT, text.as_ref().as_bytes()));
        let start = wire.len() - text.as_ref().len();
        // The tail of `wire` is a copy of `text`, so it is UTF-8 and the check passes; the check
        // (cheap, once per message) is what building it without `unsafe` costs. Were it ever to
        // fail, the text would be kept in a buffer of its own.
        let text = Utf8Bytes::try_from(wire.slice(start..)).unwrap_or_else(|_| text.into());
        Frame { text, wire }
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        Frame::build(text)
    }
}

impl From<&str> for Frame {
    fn from(text: &str) -> Self {
        Frame::build(text)
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
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
    }
}
