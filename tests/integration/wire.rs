//! The WebSocket wire format, checked with a raw client on plain TCP and through TLS alike (each
//! test taking a [`Transport`] runs as `plain::{name}` and `tls::{name}`): the upgrade handshake,
//! close codes for broken streams, control frames; and, on plain TCP only, the order of frames
//! written by publishing threads and by the connection's task, and the write timeouts. The RFC 6455
//! requirements these cover are listed in `rfc6455.rs`.

use crate::common::KEY;
use crate::common::raw::{
    Raw, SAMPLE_ACCEPT, SAMPLE_KEY, Served, Transport, WAIT, header, masked, on_both_transports, request, text,
    upgrade_headers, with_mask,
};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

on_both_transports!(
    handshake_accept_key_and_connection_token_lists,
    oversized_heads_and_too_many_fields_get_431,
    upgrades_are_answered_however_the_request_arrives,
    a_connection_that_sends_nothing_does_not_hold_up_shutdown,
    handshake_requires_version_13_and_a_valid_key,
    frames_sent_with_the_upgrade_request_are_handled,
    broken_streams_are_closed_with_their_code,
    a_client_close_is_answered_once_with_its_code,
    pings_are_echoed_even_inside_fragmented_messages,
);

async fn handshake_accept_key_and_connection_token_lists(t: Transport) {
    let s = Served::default(t).await;
    let headers = format!(
        "Connection: keep-alive, UPGRADE\r\nUpgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {SAMPLE_KEY}\r\n"
    );
    let (head, mut raw) = s.connect(&request(&headers), &[]).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(header(&head, "sec-websocket-accept"), Some(SAMPLE_ACCEPT));
    assert_eq!(raw.event().await["event"], "pusher:connection_established");
    // Closed by the client, so that stopping the server does not wait for it to answer a close.
    drop(raw);
    s.stop().await;
}

/// Request heads are bounded as a production HTTP server bounds them: 16 KiB and 100 header
/// fields; beyond either, an upgrade (or any request) is refused with 431, on its first request
/// or on a later one of a kept-alive connection.
async fn oversized_heads_and_too_many_fields_get_431(t: Transport) {
    let s = Served::default(t).await;
    let big = format!("Cookie: session={}\r\n", "x".repeat(17 * 1024));
    let (head, _raw) = s.connect(&request(&format!("{big}{}", upgrade_headers())), &[]).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    let many: String = (0..101).map(|i| format!("X-Field-{i}: {i}\r\n")).collect();
    let (head, _raw) = s.connect(&request(&format!("{many}{}", upgrade_headers())), &[]).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    // Just under both bounds: answered.
    let fields: String = (0..90).map(|i| format!("X-Field-{i}: {i}\r\n")).collect();
    let cookie = format!("Cookie: session={}\r\n", "x".repeat(14 * 1024));
    let (head, mut raw) = s.connect(&request(&format!("{cookie}{fields}{}", upgrade_headers())), &[]).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(raw.event().await["event"], "pusher:connection_established");
    // Closed by the client, so that stopping the server does not wait for it to answer a close.
    drop(raw);
    // The second request of a kept-alive connection, through the HTTP server.
    let (head, mut raw) = s.connect("GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n", &[]).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    raw.response_body(&head).await;
    let (head, _raw) = Raw::open(raw.stream, &request(&format!("{big}{}", upgrade_headers())), &[]).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    s.stop().await;
}

async fn upgrades_are_answered_however_the_request_arrives(t: Transport) {
    let s = Served::start(t, |c| c.path_prefix = "/realtime".into()).await;
    // The head in two writes, with a pause between them.
    let req = request(&upgrade_headers());
    let mut stream = s.stream().await;
    stream.write_all(&req.as_bytes()[..20]).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (head, mut raw) = Raw::open(stream, &req[20..], &[]).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(header(&head, "sec-websocket-accept"), Some(SAMPLE_ACCEPT));
    assert_eq!(raw.event().await["event"], "pusher:connection_established");
    drop(raw);
    // A head longer than what is read before choosing a server.
    let cookie = format!("Cookie: session={}\r\n", "x".repeat(6000));
    let (head, mut raw) = s.connect(&request(&format!("{cookie}{}", upgrade_headers())), &[]).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(raw.event().await["event"], "pusher:connection_established");
    drop(raw);
    // An upgrade after a plain request on the same connection.
    let (head, mut raw) = s.connect("GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n", &[]).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    raw.response_body(&head).await;
    let (head, mut raw) = Raw::open(raw.stream, &request(&upgrade_headers()), &[]).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(raw.event().await["event"], "pusher:connection_established");
    drop(raw);
    // With a trailing slash, and under the path prefix.
    for path in [format!("/app/{KEY}/"), format!("/realtime/app/{KEY}")] {
        let req = format!("GET {path}?protocol=7 HTTP/1.1\r\nHost: localhost\r\n{}\r\n", upgrade_headers());
        let (head, mut raw) = s.connect(&req, &[]).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{path}: {head}");
        assert_eq!(raw.event().await["event"], "pusher:connection_established");
    }
    // An unknown key is refused inside the WebSocket, as Pusher does.
    let req = format!("GET /app/nope?protocol=7 HTTP/1.1\r\nHost: localhost\r\n{}\r\n", upgrade_headers());
    let (head, mut raw) = s.connect(&req, &[]).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let refused = raw.event().await;
    assert_eq!(refused["event"], "pusher:error");
    assert_eq!(refused["data"]["code"], 4001);
    assert_eq!(raw.close_code().await, 4001);
    // Closed by the client, so that stopping the server does not wait for it to answer a close.
    drop(raw);
    s.stop().await;
}

async fn a_connection_that_sends_nothing_does_not_hold_up_shutdown(t: Transport) {
    let s = Served::default(t).await;
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    let mut established = s.established().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    s.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown waited for a silent connection");
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(WAIT, silent.read(&mut byte)).await.expect("the silent connection stays open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert_eq!(established.event().await["event"], "pusher:error");
}

async fn handshake_requires_version_13_and_a_valid_key(t: Transport) {
    let s = Served::default(t).await;
    let base = "Connection: Upgrade\r\nUpgrade: websocket\r\n";
    for version in ["Sec-WebSocket-Version: 8\r\n", "", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8\r\n"] {
        let headers = format!("{base}{version}Sec-WebSocket-Key: {SAMPLE_KEY}\r\n");
        let (head, _) = s.connect(&request(&headers), &[]).await;
        assert!(head.starts_with("HTTP/1.1 426"), "{version:?}: {head}");
        assert_eq!(header(&head, "sec-websocket-version"), Some("13"), "{head}");
    }
    // Missing, not base64, and 5, 17 and 20 bytes instead of 16.
    for key in [
        "",
        "Sec-WebSocket-Key: not base64!\r\n",
        "Sec-WebSocket-Key: c2hvcnQ=\r\n",
        "Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZmc=\r\n",
        "Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZmdoaWo=\r\n",
    ] {
        let headers = format!("{base}Sec-WebSocket-Version: 13\r\n{key}");
        let (head, _) = s.connect(&request(&headers), &[]).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{key:?}: {head}");
    }
    let (head, _) = s.connect(&request("Connection: keep-alive\r\nUpgrade: websocket\r\n"), &[]).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    // An HTTP/1.1 request with one Host (RFC 6455 section 4.2.1, items 1 and 2).
    let path = format!("/app/{KEY}?protocol=7");
    for (name, req) in [
        ("HTTP/1.0", format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{}\r\n", upgrade_headers())),
        ("no Host", format!("GET {path} HTTP/1.1\r\n{}\r\n", upgrade_headers())),
        ("two Hosts", format!("GET {path} HTTP/1.1\r\nHost: a\r\nHost: b\r\n{}\r\n", upgrade_headers())),
    ] {
        let (head, _) = s.connect(&req, &[]).await;
        assert!(head.starts_with("HTTP/1.1 400") || head.starts_with("HTTP/1.0 400"), "{name}: {head}");
    }
    s.stop().await;
}

async fn frames_sent_with_the_upgrade_request_are_handled(t: Transport) {
    let s = Served::default(t).await;
    let mut early = text(json!({"event":"pusher:ping","data":{}}));
    early.extend(masked(0x89, b"early"));
    let (head, mut raw) = s.connect(&request(&upgrade_headers()), &early).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // The pong may come before the queued events: control frames go ahead of the queue.
    let mut events = Vec::new();
    let mut pong = None;
    while events.len() < 2 || pong.is_none() {
        match raw.frame().await.unwrap() {
            (0x81, p) => events.push(serde_json::from_slice::<Value>(&p).unwrap()["event"].clone()),
            (0x8A, p) => pong = Some(p),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert_eq!(events, vec![json!("pusher:connection_established"), json!("pusher:pong")]);
    assert_eq!(pong.as_deref(), Some(&b"early"[..]));
    // Closed by the client, so that stopping the server does not wait for it to answer a close.
    drop(raw);
    s.stop().await;
}

async fn broken_streams_are_closed_with_their_code(t: Transport) {
    let s = Served::start(t, |c| c.max_message_bytes = 1024).await;
    let mut long_len = vec![0x81, 0x80 | 127];
    long_len.extend_from_slice(&(1u64 << 40).to_be_bytes());
    long_len.extend_from_slice(&[1, 2, 3, 4]);
    let mut top_bit = long_len.clone();
    top_bit[2] = 0x80;
    let mut fragments_too_big = masked(0x01, &[b'a'; 600]);
    fragments_too_big.extend(masked(0x80, &[b'a'; 600]));
    let mut bad_utf8_split = masked(0x01, &[b'{', 0xE2, 0x82]);
    bad_utf8_split.extend(masked(0x00, &[0x28]));
    let mut nested = masked(0x01, b"{");
    nested.extend(masked(0x81, b"{}"));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked", vec![0x81, 0x02, b'{', b'}'], 1002),
        ("reserved bit", masked(0xC1, b"{}"), 1002),
        ("unknown data opcode", masked(0x83, b"x"), 1002),
        ("unknown control opcode", masked(0x8B, b"x"), 1002),
        ("fragmented ping", masked(0x09, b"x"), 1002),
        ("long ping", masked(0x89, &[0; 126]), 1002),
        ("continuation of nothing", masked(0x80, b"x"), 1002),
        ("new message inside a fragmented one", nested, 1002),
        ("one-byte close", masked(0x88, &[3]), 1002),
        ("close code 1005", masked(0x88, &1005u16.to_be_bytes()), 1002),
        ("close code 1006", masked(0x88, &1006u16.to_be_bytes()), 1002),
        ("close code 999", masked(0x88, &999u16.to_be_bytes()), 1002),
        ("close code 2999", masked(0x88, &2999u16.to_be_bytes()), 1002),
        ("close reason not UTF-8", masked(0x88, &[0x03, 0xE8, 0xFF]), 1007),
        ("text not UTF-8", masked(0x81, &[0xC3, 0x28]), 1007),
        ("text not UTF-8 across fragments", bad_utf8_split, 1007),
        ("declared 2^40 bytes", long_len, 1009),
        ("length with the top bit set", top_bit, 1002),
        ("2 bytes in a 16-bit length", with_mask(vec![0x81, 0x80 | 126, 0, 2], b"{}"), 1002),
        ("2 bytes in a 64-bit length", with_mask(vec![0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 2], b"{}"), 1002),
        ("fragments too big together", fragments_too_big, 1009),
    ];
    for (name, bytes, code) in cases {
        let mut raw = s.established().await;
        raw.send(&bytes).await;
        assert_eq!(raw.close_code().await, code, "{name}");
    }
    // UTF-8 cut between fragments is joined.
    let mut raw = s.established().await;
    let msg = json!({"event":"pusher:ping","data":{"x":"€"}}).to_string().into_bytes();
    let cut = msg.iter().position(|b| *b == 0xE2).unwrap() + 1;
    let mut bytes = masked(0x01, &msg[..cut]);
    bytes.extend(masked(0x80, &msg[cut..]));
    raw.send(&bytes).await;
    assert_eq!(raw.event().await["event"], "pusher:pong");
    // Closed by the client, so that stopping the server does not wait for it to answer a close.
    drop(raw);
    s.stop().await;
}

async fn a_client_close_is_answered_once_with_its_code(t: Transport) {
    let s = Served::default(t).await;
    for (payload, want) in [(vec![0x0F, 0xA0, b'b', b'y', b'e'], 4000u16), (vec![0x03, 0xE8], 1000), (vec![], 1000)] {
        let mut raw = s.established().await;
        let mut bytes = masked(0x88, &payload);
        // Anything after the close frame is ignored.
        bytes.extend(masked(0x88, &[0x03, 0xE8]));
        bytes.extend(text(json!({"event":"pusher:ping","data":{}})));
        raw.send(&bytes).await;
        assert_eq!(raw.close_code().await, want);
    }
    s.stop().await;
}

async fn pings_are_echoed_even_inside_fragmented_messages(t: Transport) {
    let s = Served::default(t).await;
    let mut raw = s.established().await;
    let payload: Vec<u8> = (0..125).collect();
    let msg = json!({"event":"pusher:ping","data":{}}).to_string().into_bytes();
    let mut bytes = masked(0x01, &msg[..5]);
    bytes.extend(masked(0x89, &payload));
    bytes.extend(masked(0x00, &msg[5..10]));
    bytes.extend(masked(0x8A, b"unsolicited"));
    bytes.extend(masked(0x89, b""));
    bytes.extend(masked(0x80, &msg[10..]));
    raw.send(&bytes).await;
    assert_eq!(raw.frame().await, Some((0x8A, payload)));
    assert_eq!(raw.frame().await, Some((0x8A, Vec::new())));
    assert_eq!(raw.event().await["event"], "pusher:pong");
    // Closed by the client, so that stopping the server does not wait for it to answer a close.
    drop(raw);
    s.stop().await;
}

/// Plain TCP only: through TLS the connection's task, blocked writing to a client that does not
/// read, reads no more pings, so no pongs pile up (such a client is dropped after the write
/// timeout instead).
#[tokio::test]
async fn a_client_that_pings_but_does_not_read_is_dropped_with_4100() {
    let s = Served::default(Transport::Plain).await;
    let (head, mut raw) = Raw::open(s.stream_small().await, &request(&upgrade_headers()), &[]).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let ping = masked(0x89, &[7; 125]);
    let batch: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 1000).collect();
    // Far more pongs than socket buffers hold, unless the server gives up first.
    for _ in 0..400 {
        raw.send(&batch).await;
        if s.ctx.hub.stats().outbox_overflows > 0 {
            break;
        }
    }
    assert_eq!(s.ctx.hub.stats().outbox_overflows, 1, "the pongs it does not read overflow its queue");
    assert_eq!(raw.event().await["event"], "pusher:connection_established");
    assert_eq!(raw.close_code().await, 4100);
    s.stop().await;
}

/// Open connections of the test app, and how many of them have a stalled socket.
fn open_and_stalled(s: &Served) -> (usize, usize) {
    let app = s.ctx.hub.app_by_key(KEY).unwrap();
    let (mut open, mut stalled) = (0, 0);
    app.connections().for_each_live(|o| {
        open += 1;
        stalled += usize::from(o.is_attached() && o.is_stalled());
    });
    (open, stalled)
}

/// A large event on channel `stuck`.
fn big_event() -> String {
    format!(r#"{{"event":"big","channel":"stuck","data":"{}"}}"#, "x".repeat(64 * 1024))
}

/// A client on channel `stuck` that stopped reading, published to until the server's writes to it
/// stall (its queue still within the limits). Keep it: dropping it closes the socket.
async fn stalled_client(s: &Served) -> Raw {
    let mut raw = s.established_small().await;
    raw.send(&text(json!({"event": "pusher:subscribe", "data": {"channel": "stuck"}}))).await;
    assert_eq!(raw.event().await["event"], "pusher_internal:subscription_succeeded");
    let app = s.ctx.hub.app_by_key(KEY).unwrap();
    let event = big_event();
    let mut sent = 0;
    while open_and_stalled(s).1 == 0 {
        assert_eq!(app.publish("stuck", &event.as_str().into(), None), 1, "still subscribed");
        sent += 1;
        assert!(sent < 300, "the socket never filled up");
        // Lets the connection's task try the socket.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.ctx.hub.stats().outbox_overflows, 0, "within the queue's limits");
    raw
}

/// A client that stops reading while its queue is still within the limits (so no 4100) is dropped
/// once its socket has taken no bytes for the 10 s write timeout, and not before.
#[tokio::test]
async fn a_socket_that_takes_nothing_is_dropped_after_the_write_timeout() {
    let s = Served::default(Transport::Plain).await;
    let _raw = stalled_client(&s).await;
    let stalled_at = std::time::Instant::now();
    // Until the connection is gone (its task ended and it left the channel), not merely detached.
    while open_and_stalled(&s).0 == 1 {
        assert!(stalled_at.elapsed() < Duration::from_secs(15), "a stalled socket was kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = stalled_at.elapsed();
    assert!(after >= Duration::from_secs(9), "dropped after {after:?}, before the write timeout");
    let app = s.ctx.hub.app_by_key(KEY).unwrap();
    assert_eq!(app.publish("stuck", &big_event().as_str().into(), None), 0, "it left the channel");
    assert_eq!(s.ctx.hub.stats().outbox_overflows, 0, "dropped for the write timeout, not with 4100");
    s.stop().await;
}

/// A socket still stalled when the shutdown grace period ends is dropped then; its connection does
/// not outlive the server.
#[tokio::test]
async fn a_socket_stalled_at_shutdown_is_dropped_when_the_grace_period_ends() {
    let s = Served::start(Transport::Plain, |c| c.shutdown_grace_seconds = 1).await;
    let _raw = stalled_client(&s).await;
    let ctx = s.ctx.clone();
    let stopping = std::time::Instant::now();
    s.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(5), "the server stopped after its grace period");
    let app = ctx.hub.app_by_key(KEY).unwrap();
    let mut open = 1;
    for _ in 0..20 {
        open = 0;
        app.connections().for_each_live(|_| open += 1);
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(open, 0, "the stalled connection's task ended with the server");
}

/// Publishing threads write large events straight to a socket until it takes only part of one;
/// the connection's task writes the rest, and answers pings in between: every frame arrives whole
/// and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partial_writes_never_interleave_frames() {
    const PUBLISHERS: usize = 4;
    const EACH: usize = 40;
    const PINGS: u8 = 50;
    let size = |i: usize| 30_000 + 800 * i;
    let fill_byte = |p: usize, i: usize| b'a' + ((p * EACH + i) % 26) as u8;
    let s = Served::start(Transport::Plain, |c| {
        c.outbox_max_messages = 10_000;
        c.outbox_max_bytes = 64 * 1024 * 1024;
        c.apps[0].max_event_data_bytes = 64 * 1024;
    })
    .await;
    let mut raw = s.established_small().await;
    raw.send(&text(json!({"event":"pusher:subscribe","data":{"auth":"","channel":"big"}}))).await;
    assert_eq!(raw.event().await["event"], "pusher_internal:subscription_succeeded");

    // About 7 MB, more than the socket buffers hold while the client does not read.
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let rest = s.http();
            tokio::spawn(async move {
                for i in 0..EACH {
                    let fill = char::from(fill_byte(p, i)).to_string().repeat(size(i));
                    let data = json!({"p": p, "i": i, "fill": fill}).to_string();
                    assert_eq!(rest.trigger("big", "e", &data).await.0, 200);
                }
            })
        })
        .collect();
    for n in 0..PINGS {
        raw.send(&masked(0x89, &[n; 3])).await;
        tokio::task::yield_now().await;
    }
    for p in publishers {
        p.await.unwrap();
    }
    // Shutting down queues a close behind everything: it must not cut a frame written in part.
    let stats = s.ctx.hub.clone();
    let stopping = tokio::spawn(s.stop());
    let mut next = [0usize; PUBLISHERS];
    let mut pongs = 0u8;
    while next.iter().sum::<usize>() < PUBLISHERS * EACH || pongs < PINGS {
        match raw.frame().await.expect("stream ended") {
            (0x8A, p) => {
                assert_eq!(p, vec![pongs; 3], "pongs in order and whole");
                pongs += 1;
            }
            (0x81, p) => {
                let ev: Value = serde_json::from_slice(&p).expect("a whole JSON frame");
                assert_eq!(ev["event"], "e");
                let d: Value = serde_json::from_str(ev["data"].as_str().unwrap()).unwrap();
                let (p, i) = (d["p"].as_u64().unwrap() as usize, d["i"].as_u64().unwrap() as usize);
                assert_eq!(i, next[p], "events of one publisher in order");
                let fill = d["fill"].as_str().unwrap();
                assert_eq!(fill.len(), size(i));
                assert!(fill.bytes().all(|b| b == fill_byte(p, i)));
                next[p] += 1;
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
    let ev = raw.event().await;
    assert_eq!((&ev["event"], &ev["data"]["code"]), (&json!("pusher:error"), &json!(4200)), "{ev}");
    assert_eq!(raw.close_code().await, 4200);
    stopping.await.unwrap();
    assert_eq!(stats.stats().outbox_overflows, 0);
}
