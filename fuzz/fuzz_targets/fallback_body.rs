//! HTTP fallback request bodies and queries: the `xhr_send` body (`transport::http::parse_send_body`,
//! a JSON array of Pusher messages as strings), each message through the client message parsers,
//! the receive requests' query (`ClientQuery`), and the framing the messages go back out in.
//!
//! Input: byte 0 sets the message size limit; the rest is the body, also read as a query string.
//!
//! Checked: no panic; accepted messages are within the limit; a message framed for the fallback
//! stream (`a[...]`) is ASCII and reads back as the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sinew::hub::Frame;
use sinew::protocol::frame::{self, SigninData, SubscribeData, UnsubscribeData};
use sinew::transport::connection::{ClientQuery, check_protocol, check_version};
use sinew::transport::http::framing;
use sinew::transport::http::{SendBodyError, parse_send_body};

fuzz_target!(|data: &[u8]| {
    let [limit, body @ ..] = data else { return };
    let max = usize::from(*limit) * 64;
    match parse_send_body(body, max) {
        Ok(messages) => {
            assert!(!body.is_empty());
            for m in &messages {
                assert!(m.len() <= max);
                if let Ok(msg) = frame::parse_client_message(m) {
                    let _ = frame::decode_data::<SubscribeData>(&msg.event, msg.data);
                    let _ = frame::decode_data::<UnsubscribeData>(&msg.event, msg.data);
                    let _ = frame::decode_data::<SigninData>(&msg.event, msg.data);
                }
            }
            let frames: Vec<Frame> = messages.iter().map(|m| Frame::from(m.as_str())).collect();
            let mut out = String::new();
            framing::push_messages(&mut out, &frames);
            assert!(out.is_ascii());
            if !messages.is_empty() {
                let array = out.strip_prefix('a').and_then(|s| s.strip_suffix('\n')).unwrap();
                let back: Vec<String> = serde_json::from_str(array).unwrap();
                assert_eq!(back, messages);
            }
        }
        Err(SendBodyError::Empty) => assert!(body.is_empty()),
        Err(SendBodyError::Broken | SendBodyError::TooBig) => {}
    }
    if let Ok(query) = std::str::from_utf8(body) {
        let q = ClientQuery::parse(Some(query));
        let _ = check_protocol(q.protocol.as_deref());
        let _ = check_version(q.version.as_deref());
    }
});
