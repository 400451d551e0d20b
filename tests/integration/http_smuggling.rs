//! What a proxy in front makes real: requests framed two ways at once (`Content-Length` with
//! `Transfer-Encoding`, two lengths, odd codings), HTTP/1.0, absolute-form targets, and slow
//! request heads across many sockets. Each is answered by the one HTTP parser on the public port
//! (or the head reader in front of it) so that a proxy and Sinew cannot read one byte stream as
//! two different sequences of requests.

use crate::common::{KEY, TestServer};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

/// Sends `raw` on a new connection and reads until the server closes it (or `WAIT` passes, which
/// counts as open). Returns what was read and whether the server closed the connection.
async fn exchange(s: &TestServer, raw: &[u8]) -> (String, bool) {
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    tcp.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout(Duration::from_millis(700), tcp.read(&mut chunk)).await {
            Ok(Ok(0)) => break true,
            Ok(Ok(n)) => out.extend_from_slice(&chunk[..n]),
            Ok(Err(_)) => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

fn responses(text: &str) -> usize {
    text.matches("HTTP/1.").count()
}

#[tokio::test]
async fn a_request_framed_two_ways_is_never_read_as_two() {
    let s = TestServer::default().await;
    // Content-Length and chunked: the chunked framing wins (RFC 9112 6.3), the request is answered
    // once and the connection closed, so the "smuggled" request after the chunked body is never
    // served.
    let (text, closed) = exchange(
        &s,
        b"POST /apps/1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\n\r\nGET /up HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(responses(&text), 1, "{text}");
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(closed, "{text}");
    // Two different lengths, and codings the server does not know: 400 and closed.
    for raw in [
        &b"POST /apps/1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"[..],
        b"POST /apps/1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
        b"POST /apps/1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        b"POST /apps/1/events HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /apps/1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1 1\r\n\r\nab",
        b"POST /apps/1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    ] {
        let (text, closed) = exchange(&s, raw).await;
        assert!(text.starts_with("HTTP/1.1 400"), "{}: {text}", String::from_utf8_lossy(raw));
        assert_eq!(responses(&text), 1, "{text}");
        assert!(closed, "{text}");
    }
    s.stop().await;
}

#[tokio::test]
async fn http_1_0_and_absolute_form_targets() {
    let s = TestServer::default().await;
    // HTTP/1.0: answered as HTTP/1.0, then closed.
    let (text, closed) = exchange(&s, b"GET /up HTTP/1.0\r\n\r\n").await;
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    assert!(closed);
    // A WebSocket upgrade needs HTTP/1.1 (RFC 6455 4.1): 400, never a 101.
    let upgrade = |target: &str, version: &str| {
        format!(
            "GET {target} HTTP/{version}\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
    };
    let (text, _) = exchange(&s, upgrade(&format!("/app/{KEY}?protocol=7"), "1.0").as_bytes()).await;
    assert!(text.starts_with("HTTP/1.0 400"), "{text}");
    assert!(!text.contains("101"), "{text}");
    // Absolute-form targets (as sent to a proxy) are served by their path, pipelined or not.
    let (text, _) =
        exchange(&s, b"GET http://localhost/up HTTP/1.1\r\nHost: localhost\r\n\r\nGET /up HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    let (text, _) = exchange(&s, upgrade(&format!("http://localhost/app/{KEY}?protocol=7"), "1.1").as_bytes()).await;
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(text.contains("pusher:connection_established"), "{text}");
    s.stop().await;
}

/// Hundreds of sockets that send half a request head and stall hold none of the server's
/// attention: a REST request and a WebSocket connection are answered at once meanwhile. (The
/// stalled sockets are closed after the 30 s head timeout, README "Limits".)
#[tokio::test]
async fn slow_heads_on_many_sockets_do_not_hold_up_others() {
    let s = TestServer::default().await;
    let mut stalled = Vec::new();
    for i in 0..400 {
        let mut tcp = TcpStream::connect(s.addr).await.unwrap();
        let partial = if i % 2 == 0 { "GET /up HTTP/1.1\r\nHost: x\r\n" } else { "GET /app/" };
        tcp.write_all(partial.as_bytes()).await.unwrap();
        stalled.push(tcp);
    }
    let started = std::time::Instant::now();
    let (text, _) = exchange(&s, b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let mut client = s.connect().await;
    assert_eq!(client.recv().await["event"], "pusher:connection_established");
    assert!(started.elapsed() < WAIT, "answered while {} sockets stall", stalled.len());
    // Still stalled, not answered or closed early.
    let mut chunk = [0u8; 16];
    let first = &mut stalled[0];
    assert!(tokio::time::timeout(Duration::from_millis(200), first.read(&mut chunk)).await.is_err());
    s.stop().await;
}
