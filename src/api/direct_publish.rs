//! `POST /apps/{app_id}/events` served straight from a plain TCP connection.
//!
//! Publishing is the REST call that arrives by the thousand, mostly on kept-alive connections. This
//! path reads the request with httparse, checks and delivers it with the routed handler's own
//! function ([`events::publish`]) and answers with one write, as the HTTP server would, without the
//! server's per-request machinery (header maps, routing, boxed middleware). A connection stays here
//! while its requests are publishes this path takes whole; at the first other request (another
//! route or method, a chunked body, `Expect`, an upgrade, HTTP/1.0, a body over the limit, an app
//! id with escapes), the bytes read so far go to the HTTP server with the rest of the connection.

use super::events;
use crate::state::Context;
use crate::transport::keepalive::WRITE_TIMEOUT;
use crate::transport::ws::{HEAD_MAX, MAX_HEADERS};
use crate::transport::{write_all, write_all_and_finish};
use axum::http::StatusCode;
use axum::http::uri::PathAndQuery;
use std::io::{self, Write as _};
use std::time::{Instant, SystemTime};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;

/// The route's name in the `http_calls_received_total` metric, as the routed handler counts it.
const ENDPOINT: &str = "POST /apps/{app_id}/events";
/// What a buffer shrinks back to after a large body.
const READ_CHUNK: usize = 4096;
/// A buffer grown past this by a large body shrinks back once the request is answered.
const KEEP_BUFFER: usize = 64 * 1024;

/// How a connection left this path.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The connection ended (client closed, `Connection: close` answered, an error, or shutdown).
    Closed,
    /// The buffer starts with a request this path does not serve: the HTTP server takes over.
    HandOver,
}

/// A publish request whose head is complete.
#[derive(Debug, PartialEq, Eq)]
struct Publish<'a> {
    app_id: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    head_len: usize,
    /// Head and body.
    total: usize,
    /// The client asked for the connection to close after the answer.
    close: bool,
}

/// What the start of a connection's buffer holds.
#[derive(Debug, PartialEq, Eq)]
enum Head<'a> {
    Publish(Publish<'a>),
    /// Not a whole head yet.
    Partial,
    /// Something for the HTTP server.
    Other,
}

/// Reads the request head at the start of `buf`. Only a plain HTTP/1.1 publish with a
/// `Content-Length` of at most `max_body` bytes is a [`Head::Publish`].
fn parse(buf: &[u8], max_body: usize) -> Head<'_> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < HEAD_MAX => return Head::Partial,
        _ => return Head::Other,
    };
    if req.method != Some("POST") || req.version != Some(1) {
        return Head::Other;
    }
    // A target the HTTP server's URI parser refuses, or one with a fragment, is its to answer.
    let Some(target) = req.path.filter(|t| !t.contains('#') && t.parse::<PathAndQuery>().is_ok()) else {
        return Head::Other;
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let Some(app_id) = path.strip_prefix("/apps/").and_then(|r| r.strip_suffix("/events")) else {
        return Head::Other;
    };
    if app_id.is_empty() || app_id.contains(['/', '%']) {
        return Head::Other;
    }
    let mut body_len = None;
    let mut close = false;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let Some(n) = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
            else {
                return Head::Other;
            };
            if body_len.replace(n).is_some() {
                return Head::Other;
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in String::from_utf8_lossy(h.value).split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if !token.eq_ignore_ascii_case("keep-alive") {
                    return Head::Other;
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("expect")
            || name.eq_ignore_ascii_case("upgrade")
        {
            return Head::Other;
        }
    }
    match body_len.filter(|&n| n <= max_body).and_then(|n| head_len.checked_add(n)) {
        Some(total) => Head::Publish(Publish { app_id, path, query, head_len, total, close }),
        None => Head::Other,
    }
}

/// Serves the publishes at the start of the connection. `buf` holds what has been read (the first
/// request head) and, on [`Outcome::HandOver`], what the HTTP server is to read first.
///
/// Once `stop` is true, as with the HTTP server's graceful shutdown, no further request is read:
/// a request already whole is answered with `connection: close`, a partial one is dropped with
/// the connection, and anything else closes it.
pub async fn serve(ctx: &Context, tcp: &TcpStream, buf: &mut Vec<u8>, stop: &mut watch::Receiver<bool>) -> Outcome {
    let max_body = ctx.config.max_request_bytes;
    // When the current request's head was first seen whole: its latency counts from there.
    let mut head_seen = None;
    loop {
        let stopping = *stop.borrow();
        let total = match parse(buf, max_body) {
            Head::Other if stopping => return Outcome::Closed,
            Head::Other => return Outcome::HandOver,
            Head::Publish(p) if buf.len() >= p.total => {
                let started = head_seen.take().unwrap_or_else(Instant::now);
                let body = &buf[p.head_len..p.total];
                let (status, json) = match events::publish(ctx, p.app_id, p.path, p.query, body).await {
                    Ok(v) => (StatusCode::OK, v),
                    Err(e) => (e.status(), e.body()),
                };
                ctx.metrics.http_call(ENDPOINT, status.as_u16(), started.elapsed().as_secs_f64());
                // Shutdown may have begun while the event was delivered.
                let close = p.close || *stop.borrow();
                let answer = response(status, &json, close);
                if close {
                    let _ = timeout(WRITE_TIMEOUT, write_all_and_finish(tcp, &answer)).await;
                    return Outcome::Closed;
                }
                if !matches!(timeout(WRITE_TIMEOUT, write_all(tcp, &answer)).await, Ok(Ok(()))) {
                    return Outcome::Closed;
                }
                p.total
            }
            incomplete => {
                if matches!(incomplete, Head::Publish(_)) {
                    head_seen.get_or_insert_with(Instant::now);
                }
                if stopping || !read_more(tcp, buf, stop).await {
                    return Outcome::Closed;
                }
                continue;
            }
        };
        buf.drain(..total);
        if buf.capacity() > KEEP_BUFFER {
            // A large body is not held for the life of the connection.
            buf.shrink_to(READ_CHUNK.max(buf.len()));
        }
    }
}

/// Appends what the socket has to `buf` (a read that drains it clears its readiness, so the next
/// request is waited for rather than tried with a `recv` that finds nothing); false when the
/// connection ended, failed, or `stop` turned true while waiting.
async fn read_more(tcp: &TcpStream, buf: &mut Vec<u8>, stop: &mut watch::Receiver<bool>) -> bool {
    loop {
        match crate::transport::ws::read_some(tcp, buf) {
            Ok(n) => return n > 0,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::select! {
                    r = tcp.readable() => if r.is_err() { return false },
                    _ = stop.wait_for(|s| *s) => return false,
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// The HTTP/1.1 answer: the status, a JSON body, and the headers the HTTP server would send.
fn response(status: StatusCode, json: &serde_json::Value, close: bool) -> Vec<u8> {
    let body = json.to_string();
    let mut out = Vec::with_capacity(160 + body.len());
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}date: {}\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        if close { "connection: close\r\n" } else { "" },
        httpdate::fmt_http_date(SystemTime::now()),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LIMIT: usize = 1000;

    fn publish(head: &str) -> Publish<'_> {
        match parse(head.as_bytes(), LIMIT) {
            Head::Publish(p) => p,
            other => panic!("{head:?} parsed as {other:?}"),
        }
    }

    fn other(head: &str) {
        assert_eq!(parse(head.as_bytes(), LIMIT), Head::Other, "{head:?}");
    }

    #[test]
    fn takes_a_signed_publish() {
        let head = "POST /apps/42/events?auth_key=k&auth_signature=s HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n";
        let p = publish(head);
        assert_eq!(p.app_id, "42");
        assert_eq!(p.path, "/apps/42/events");
        assert_eq!(p.query, Some("auth_key=k&auth_signature=s"));
        assert_eq!((p.head_len, p.total, p.close), (head.len(), head.len() + 17, false));
    }

    #[test]
    fn notes_connection_close() {
        assert!(publish("POST /apps/1/events HTTP/1.1\r\nConnection: Close\r\nContent-Length: 2\r\n\r\n").close);
        assert!(!publish("POST /apps/1/events HTTP/1.1\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\n").close);
    }

    #[test]
    fn waits_for_a_whole_head() {
        assert_eq!(parse(b"POST /apps/1/events HTTP/1.1\r\nContent-Len", LIMIT), Head::Partial);
        assert_eq!(parse(b"", LIMIT), Head::Partial);
        let long = format!("POST /apps/1/events HTTP/1.1\r\nX: {}", "a".repeat(HEAD_MAX));
        assert_eq!(parse(long.as_bytes(), LIMIT), Head::Other);
    }

    #[test]
    fn leaves_everything_else_to_the_http_server() {
        other("GET /apps/1/events HTTP/1.1\r\nContent-Length: 2\r\n\r\n");
        other("POST /apps/1/events HTTP/1.0\r\nContent-Length: 2\r\n\r\n");
        other("POST /apps/1/batch_events HTTP/1.1\r\nContent-Length: 2\r\n\r\n");
        other("POST /apps/1/channels/events HTTP/1.1\r\nContent-Length: 2\r\n\r\n");
        other("POST /apps//events HTTP/1.1\r\nContent-Length: 2\r\n\r\n");
        other("POST /apps/a%20b/events HTTP/1.1\r\nContent-Length: 2\r\n\r\n");
        other("POST /apps/1/events/ HTTP/1.1\r\nContent-Length: 2\r\n\r\n");
        other("POST http://h/apps/1/events HTTP/1.1\r\nContent-Length: 2\r\n\r\n");
        other("POST /apps/1/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        other("POST /apps/1/events HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
        other("POST /apps/1/events HTTP/1.1\r\nContent-Length: 2\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n");
        other("POST /apps/1/events HTTP/1.1\r\n\r\n");
        other("POST /apps/1/events HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n");
        other("POST /apps/1/events HTTP/1.1\r\nContent-Length: +2\r\n\r\n");
        other("POST /apps/1/events HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n");
        other("POST /apps/1/events HTTP/1.1\r\nContent-Length: 1001\r\n\r\n");
        other("POST /apps/1/events HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n");
        other("POST /apps/1/events HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n");
        other("POST /apps/1/events HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\n");
        other("POST /apps/1/events HTTP/1.1\r\nContent-Length: 2\r\nConnection: close, upgrade\r\n\r\n");
        other("POST /apps/1/events HTTP/1.1\r\nContent-Length: 2\r\nX-Folded: a\r\n b\r\n\r\n");
        other("POST /apps/1/events?a=b#frag HTTP/1.1\r\nContent-Length: 2\r\n\r\n");
        other("POST /apps/1/events?a=<b> HTTP/1.1\r\nContent-Length: 2\r\n\r\n");
        other("not http at all\r\n\r\n");
    }

    #[test]
    fn takes_a_body_at_the_limit_and_no_length_that_overflows() {
        let at_limit = format!("POST /apps/1/events HTTP/1.1\r\nContent-Length: {LIMIT}\r\n\r\n");
        assert_eq!(publish(&at_limit).total, at_limit.len() + LIMIT);
        let huge = format!("POST /apps/1/events HTTP/1.1\r\nContent-Length: {}\r\n\r\n", usize::MAX);
        assert_eq!(parse(huge.as_bytes(), usize::MAX), Head::Other);
    }

    #[test]
    fn counts_under_the_routed_handlers_name() {
        assert!(super::super::ROUTES.iter().any(|r| format!("{} {}", r.method, r.path) == ENDPOINT));
    }

    #[test]
    fn answers_like_the_http_server() {
        let ok = String::from_utf8(response(StatusCode::OK, &serde_json::json!({}), false)).unwrap_or_default();
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\ndate: "));
        assert!(ok.ends_with(" GMT\r\n\r\n{}"));
        let err = String::from_utf8(response(StatusCode::UNAUTHORIZED, &serde_json::json!({"error": "x"}), true))
            .unwrap_or_default();
        assert!(err.starts_with(
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 13\r\nconnection: close\r\n"
        ));
        assert!(err.ends_with("\r\n\r\n{\"error\":\"x\"}"));
    }

    /// A connected pair on loopback: (the server's side, the client's side).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        (listener.accept().await.unwrap().0, client)
    }

    fn context() -> Context {
        Context::new(crate::config::Config::load(None, Vec::new()).unwrap())
    }

    /// A signed publish to channel `c` of the development app.
    fn signed(ctx: &Context, extra: &str) -> Vec<u8> {
        let app = &ctx.config.apps[0];
        let body = r#"{"name":"e","channel":"c","data":"d"}"#;
        let path = format!("/apps/{}/events", app.id);
        let timestamp = SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let signer = crate::protocol::signature::Signer { key: &app.key, secret: &app.secret, timestamp };
        let query = signer.query("POST", &path, Vec::new(), body.as_bytes());
        format!("POST {path}?{query} HTTP/1.1\r\nContent-Length: {}\r\n{extra}\r\n{body}", body.len()).into_bytes()
    }

    async fn read_all(mut client: TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        let mut out = Vec::new();
        let _ = client.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn hands_the_first_other_request_over_with_what_follows_it() {
        let ctx = context();
        let (server, mut client) = pair().await;
        let get = b"GET /apps/1/channels HTTP/1.1\r\n\r\nGET /up HTTP/1.1\r\n\r\n";
        let mut buf = signed(&ctx, "");
        buf.extend_from_slice(&signed(&ctx, ""));
        buf.extend_from_slice(get);
        let (_tx, mut stop) = watch::channel(false);
        assert_eq!(serve(&ctx, &server, &mut buf, &mut stop).await, Outcome::HandOver);
        assert_eq!(buf, get);
        drop(server);
        use tokio::io::AsyncWriteExt;
        client.shutdown().await.unwrap();
        let answers = read_all(client).await;
        assert_eq!(answers.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{answers}");
        assert!(!answers.contains("connection: close"), "{answers}");
    }

    #[tokio::test]
    async fn after_stop_answers_the_whole_request_with_close_and_reads_no_more() {
        let ctx = context();
        let (server, client) = pair().await;
        let mut buf = signed(&ctx, "");
        buf.extend_from_slice(&signed(&ctx, ""));
        let (tx, mut stop) = watch::channel(false);
        tx.send(true).unwrap();
        assert_eq!(serve(&ctx, &server, &mut buf, &mut stop).await, Outcome::Closed);
        // The socket is still open: the answer must end with the server's own FIN.
        let answers = timeout(Duration::from_secs(5), read_all(client)).await.expect("answer and FIN");
        drop(server);
        assert_eq!(answers.matches("HTTP/1.1 200 OK\r\n").count(), 1, "{answers}");
        assert!(answers.contains("\r\nconnection: close\r\n"), "{answers}");
    }

    #[tokio::test]
    async fn connection_close_ends_the_connection_unread_requests_unanswered() {
        let ctx = context();
        let (server, client) = pair().await;
        let mut buf = signed(&ctx, "Connection: close\r\n");
        buf.extend_from_slice(&signed(&ctx, ""));
        let (_tx, mut stop) = watch::channel(false);
        assert_eq!(serve(&ctx, &server, &mut buf, &mut stop).await, Outcome::Closed);
        let answers = timeout(Duration::from_secs(5), read_all(client)).await.expect("answer and FIN");
        drop(server);
        assert_eq!(answers.matches("HTTP/1.1 ").count(), 1, "{answers}");
    }

    #[tokio::test]
    async fn a_large_body_is_not_kept_between_requests() {
        let ctx = context();
        let (server, mut client) = pair().await;
        let padding = "x".repeat(200 * 1024);
        let mut buf =
            format!("POST /apps/1/events HTTP/1.1\r\nContent-Length: {}\r\n\r\n{padding}", padding.len()).into_bytes();
        buf.extend_from_slice(b"GET /up HTTP/1.1\r\n\r\n");
        let (_tx, mut stop) = watch::channel(false);
        assert_eq!(serve(&ctx, &server, &mut buf, &mut stop).await, Outcome::HandOver);
        assert_eq!(buf, b"GET /up HTTP/1.1\r\n\r\n");
        assert!(buf.capacity() <= KEEP_BUFFER, "{}", buf.capacity());
        drop(server);
        use tokio::io::AsyncWriteExt;
        client.shutdown().await.unwrap();
        assert!(read_all(client).await.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
    }
}
