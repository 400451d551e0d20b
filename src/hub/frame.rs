//! [`Frame`]: one outbound Pusher message, encoded once and shared by every recipient.

use crate::transport::wire;
use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// One outbound message: its JSON text, and the same text as a complete WebSocket text frame
/// (header and payload in one buffer). Both are built once, when the message is; cloning bumps two
/// reference counts, so a fan-out sends the very same bytes to every plain TCP subscriber with one
/// `send` each and no framing or copying per subscriber.
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

    /// The message's JSON text as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.text.as_bytes()
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
}

impl From<Utf8Bytes> for Frame {
    fn from(text: Utf8Bytes) -> Self {
        let wire = Bytes::from(wire::encode(wire::OP_TEXT, text.as_bytes()));
        Frame { text, wire }
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        Frame::from(Utf8Bytes::from(text))
    }
}

impl From<&str> for Frame {
    fn from(text: &str) -> Self {
        Frame::from(Utf8Bytes::from(text))
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
    fn clones_share_both_buffers() {
        let f = Frame::from("{\"event\":\"e\"}".to_string());
        let g = f.clone();
        assert_eq!(f.wire().as_ptr(), g.wire().as_ptr());
        assert_eq!(f.as_str().as_ptr(), g.as_str().as_ptr());
        assert_eq!(f, g);
    }
}
