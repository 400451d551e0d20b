//! The first request head of a plain TCP connection: `transport::ws::direct_upgrade`, which
//! decides whether Sinew answers a WebSocket upgrade itself or hands the connection to hyper, and
//! the client query (`protocol`, `version`) and the `Origin` header it reads.
//!
//! Input: byte 0 picks the path prefix; the rest is the head as the client sent it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sinew::transport::connection::{ClientQuery, check_protocol, check_version};
use sinew::transport::ws::direct_upgrade;

const PREFIXES: [&str; 4] = ["", "/ws", "/realtime/pusher", "/a"];

fuzz_target!(|data: &[u8]| {
    let [pick, head @ ..] = data else { return };
    let prefix = PREFIXES[usize::from(*pick) % PREFIXES.len()];
    let accepted = direct_upgrade(head, prefix);
    if let Some(up) = &accepted {
        // Only a GET head is answered directly (empty lines before the request line are skipped,
        // as RFC 9112 section 2.2 allows).
        let start = head.iter().position(|b| !matches!(b, b'\r' | b'\n')).unwrap_or(head.len());
        assert!(head[start..].starts_with(b"GET "));
        // The `Origin` the connection is checked against is read from the head itself.
        if let Some(origin) = up.origin(head) {
            assert!(origin.is_empty() || head.windows(origin.len()).any(|w| w == origin.as_bytes()));
        }
    }
    // The query string of the request line, as the connection reads it.
    if let Some(line) = head.split(|&b| b == b'\n').next()
        && let Ok(line) = std::str::from_utf8(line)
        && let Some((_, query)) = line.split_once('?')
    {
        let query = query.split(' ').next();
        let q = ClientQuery::parse(query);
        let _ = check_protocol(q.protocol.as_deref());
        let _ = check_version(q.version.as_deref());
    }
});
