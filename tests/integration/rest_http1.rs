//! `POST /apps/{id}/events` on raw HTTP/1.1 connections: kept alive, pipelined, split across
//! writes, closed on request, and mixed with other requests on one connection. (These once
//! checked a second, hand-written HTTP reader against the HTTP server; there is one now, and they
//! keep it honest on what the official SDKs and proxies send.)

use crate::common::{APP_ID, TestServer, now};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

/// One HTTP/1.1 response read off a raw connection.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// A raw HTTP/1.1 connection with what has been read but not yet parsed.
struct Conn {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(s: &TestServer) -> Conn {
        Conn { tcp: TcpStream::connect(s.addr).await.unwrap(), buf: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, self.tcp.read(&mut chunk)).await.expect("read in time").unwrap();
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads the next response (bodies by `Content-Length` or chunked).
    async fn response(&mut self) -> Response {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut res = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) = res.parse(&self.buf).unwrap() {
                let status = res.code.unwrap();
                if status == 100 {
                    self.buf.drain(..head_len);
                    continue;
                }
                let headers: Vec<(String, String)> = res
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
                    .collect();
                let length = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse::<usize>().unwrap());
                let Some(length) = length else {
                    panic!("response without content-length: {headers:?}");
                };
                while self.buf.len() < head_len + length {
                    assert!(self.fill().await > 0, "connection closed mid-body");
                }
                let body = self.buf[head_len..head_len + length].to_vec();
                self.buf.drain(..head_len + length);
                return Response { status, headers, body };
            }
            assert!(self.fill().await > 0, "connection closed before a response");
        }
    }

    /// True when the server ends the connection (within the wait) with nothing else to read. A
    /// reset counts: a server closing a socket with unread input resets it.
    async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        match tokio::time::timeout(WAIT, self.tcp.read(&mut chunk)).await.expect("closed in time") {
            Ok(n) => self.buf.is_empty() && n == 0,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

/// How a test request carries its body.
#[derive(Clone, Copy, PartialEq)]
enum Body {
    Length,
    /// Chunked, which the HTTP server answers.
    Chunked,
}

/// A signed `POST /apps/{id}/events` request with `extra` header lines (each ending in `\r\n`).
fn signed_request(s: &TestServer, channel: &str, data: &str, extra: &str, framing: Body) -> Vec<u8> {
    let body = json!({"name": "e", "channel": channel, "data": data}).to_string();
    let path = format!("/apps/{APP_ID}/events");
    let q = s.http().signed_query("POST", &path, &[], &body, now());
    let (framing, body) = match framing {
        Body::Length => (format!("Content-Length: {}\r\n", body.len()), body),
        Body::Chunked => {
            ("Transfer-Encoding: chunked\r\n".to_string(), format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()))
        }
    };
    format!("POST {path}?{q} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}{extra}\r\n{body}")
        .into_bytes()
}

fn publish_request(s: &TestServer, channel: &str, data: &str, extra: &str) -> Vec<u8> {
    signed_request(s, channel, data, extra, Body::Length)
}

#[tokio::test]
async fn kept_alive_and_pipelined_publishes_are_answered_in_order() {
    let s = TestServer::default().await;
    let mut sub = s.client().await;
    sub.subscribe("c").await;
    let mut conn = Conn::open(&s).await;
    conn.send(&publish_request(&s, "c", "1", "")).await;
    let first = conn.response().await;
    assert_eq!((first.status, first.json()), (200, json!({})));
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert!(first.header("date").is_some());
    // Two requests in one write, then one whose body arrives later than its head.
    let mut two = publish_request(&s, "c", "2", "");
    two.extend(publish_request(&s, "c", "3", "Connection: keep-alive\r\n"));
    conn.send(&two).await;
    let split = publish_request(&s, "c", "4", "");
    let (head, body) = split.split_at(split.len() - 5);
    conn.send(head).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.send(body).await;
    for _ in 0..3 {
        assert_eq!(conn.response().await.status, 200);
    }
    for want in ["1", "2", "3", "4"] {
        assert_eq!(sub.recv_event("e").await["data"], want);
    }
    sub.expect_silence().await;
    s.stop().await;
}

#[tokio::test]
async fn other_requests_on_the_connection_go_to_the_http_server() {
    let s = TestServer::default().await;
    let mut sub = s.client().await;
    sub.subscribe("c").await;
    let mut conn = Conn::open(&s).await;
    conn.send(&publish_request(&s, "c", "direct", "")).await;
    assert_eq!(conn.response().await.status, 200);
    // A chunked body and `Expect: 100-continue` are the HTTP server's; the connection stays open.
    conn.send(&signed_request(&s, "c", "chunked", "", Body::Chunked)).await;
    assert_eq!(conn.response().await.status, 200);
    conn.send(&publish_request(&s, "c", "expect", "Expect: 100-continue\r\n")).await;
    assert_eq!(conn.response().await.status, 200);
    let path = format!("/apps/{APP_ID}/channels");
    let q = s.http().signed_query("GET", &path, &[], "", now());
    conn.send(format!("GET {path}?{q} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await;
    let channels = conn.response().await;
    assert_eq!(channels.status, 200);
    assert_eq!(channels.json(), json!({"channels": {"c": {}}}));
    for want in ["direct", "chunked", "expect"] {
        assert_eq!(sub.recv_event("e").await["data"], want);
    }
    s.stop().await;
}

#[tokio::test]
async fn refusals_are_the_same_from_either_side() {
    let s = TestServer::default().await;
    let tamper = |mut req: Vec<u8>| {
        // The signature's last hex digit changed: 401.
        let at = req.windows(15).position(|w| w == b"auth_signature=").unwrap() + 15 + 63;
        req[at] = if req[at] == b'0' { b'1' } else { b'0' };
        req
    };
    let mut direct = Conn::open(&s).await;
    direct.send(&tamper(publish_request(&s, "c", "d", ""))).await;
    let a = direct.response().await;
    let mut routed = Conn::open(&s).await;
    routed.send(&tamper(publish_request(&s, "c", "d", "Expect: 100-continue\r\n"))).await;
    let b = routed.response().await;
    assert_eq!((a.status, b.status), (401, 401));
    assert_eq!(a.json(), b.json());
    assert_eq!(a.json(), json!({"error": "Invalid signature"}));
    let names = |r: &Response| {
        let mut n: Vec<String> = r.headers.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&a), names(&b));
    assert_eq!(a.header("content-type"), b.header("content-type"));

    // Validation and unknown apps, on a connection that stays open after each refusal.
    let mut conn = Conn::open(&s).await;
    conn.send(&publish_request(&s, "bad channel", "d", "")).await;
    let bad = conn.response().await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().contains("Invalid channel name"), "{:?}", bad.json());
    conn.send(b"POST /apps/nope/events HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}").await;
    let unknown = conn.response().await;
    assert_eq!((unknown.status, unknown.json()), (404, json!({"error": "Unknown app id nope"})));
    // A body over the limit is the HTTP server's 413.
    let big = "x".repeat(s.ctx.config.max_request_bytes + 1);
    conn.send(format!("POST /apps/{APP_ID}/events HTTP/1.1\r\nContent-Length: {}\r\n\r\n{big}", big.len()).as_bytes())
        .await;
    assert_eq!(conn.response().await.status, 413);
    s.stop().await;
}

#[tokio::test]
async fn connection_close_is_answered_then_closed() {
    let s = TestServer::default().await;
    let mut conn = Conn::open(&s).await;
    conn.send(&publish_request(&s, "c", "d", "Connection: close\r\n")).await;
    let res = conn.response().await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("connection"), Some("close"));
    assert!(conn.closed().await);
    s.stop().await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_does_not_hold_up_shutdown() {
    let s = TestServer::default().await;
    let mut conn = Conn::open(&s).await;
    conn.send(&publish_request(&s, "c", "d", "")).await;
    assert_eq!(conn.response().await.status, 200);
    // Half a second request: shutdown does not wait for the rest.
    let mut half = Conn::open(&s).await;
    half.send(&publish_request(&s, "c", "d", "")).await;
    assert_eq!(half.response().await.status, 200);
    half.send(&publish_request(&s, "c", "d", "")[..40]).await;
    tokio::time::timeout(Duration::from_secs(8), s.stop()).await.expect("server stopped");
    assert!(conn.closed().await);
    assert!(half.closed().await);
}

#[tokio::test]
async fn publishes_are_counted_under_the_route() {
    let s = TestServer::start(|c| c.metrics_enabled = true).await;
    let mut conn = Conn::open(&s).await;
    for _ in 0..3 {
        conn.send(&publish_request(&s, "c", "d", "")).await;
        assert_eq!(conn.response().await.status, 200);
    }
    let m = reqwest::get(format!("http://{}/metrics", s.metrics_addr.unwrap())).await.unwrap().text().await.unwrap();
    assert!(
        m.contains("sinew_http_calls_received_total{endpoint=\"POST /apps/{app_id}/events\",status=\"200\"} 3"),
        "{m}"
    );
    assert!(m.contains("sinew_rest_publish_duration_seconds_count 3"), "{m}");
    s.stop().await;
}
