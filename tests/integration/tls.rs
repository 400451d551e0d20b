//! TLS with the real binary: certificate reload (new handshakes see a replaced certificate on file
//! change or SIGHUP, an open `wss://` connection stays open, a bad pair keeps the current one),
//! and `wss://` connections held to the same framing and liveness rules as plain TCP.
//! Certificates come from a test CA made with openssl for this run.

use crate::common::certs::{Certs, client_config, tls_connect};
use crate::common::{APP_ID, KEY, Rest, SECRET, now};
use crate::process_support::{PATIENCE, SinewProcess};
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::CertificateDer;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const FAILED: &str = "TLS certificate reload failed";

/// The end-entity certificate a new handshake gets.
async fn presented(addr: SocketAddr, config: &Arc<ClientConfig>) -> CertificateDer<'static> {
    let tls = tls_connect(addr, config).await;
    tls.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned()
}

/// Polls new handshakes until they present `want` (panics after [`PATIENCE`]).
async fn wait_presented(sinew: &SinewProcess, config: &Arc<ClientConfig>, want: &CertificateDer<'static>) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while presented(sinew.addr, config).await != *want {
        assert!(tokio::time::Instant::now() < deadline, "certificate not reloaded; log:\n{}", sinew.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

type Wss = WebSocketStream<TlsStream<TcpStream>>;

async fn next_event(ws: &mut Wss) -> Value {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await.expect("an event in time") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Close(f))) => panic!("connection closed: {f:?}"),
            Some(Ok(_)) => continue,
            other => panic!("connection failed: {other:?}"),
        }
    }
}

/// Signed `POST /apps/{id}/events` over HTTPS, trusting the test CA.
async fn publish(addr: SocketAddr, ca: &Path, name: &str) {
    let rest = Rest { base: String::new(), app_id: APP_ID.into(), key: KEY.into(), secret: SECRET.into() };
    let body = json!({"name": name, "channel": "tls-reload", "data": "{}"}).to_string();
    let path = format!("/apps/{APP_ID}/events");
    let query = rest.signed_query("POST", &path, &[], &body, now());
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let client = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
    let res = client
        .post(format!("https://{addr}{path}?{query}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn certificate_reloads_on_file_change_and_sighup_without_dropping_connections() {
    let certs = Certs::new();
    std::fs::copy(certs.path("a.pem"), certs.path("cert.pem")).unwrap();
    std::fs::copy(certs.path("a.key"), certs.path("key.pem")).unwrap();
    let (cert, key) = (certs.path("cert.pem"), certs.path("key.pem"));
    let mut sinew =
        SinewProcess::spawn(&[("SINEW_TLS_CERT", cert.to_str().unwrap()), ("SINEW_TLS_KEY", key.to_str().unwrap())])
            .await;
    let addr = sinew.addr;
    let ca = certs.path("ca.pem");
    let config = client_config(&ca);
    let (a, b, c) = (certs.der("a.pem"), certs.der("b.pem"), certs.der("c.pem"));
    assert_eq!(presented(addr, &config).await, a);

    // A wss:// connection made with certificate A.
    let url = format!("wss://{addr}/app/{KEY}?protocol=7&client=js&version=8.6.0&flash=false");
    let (mut open, _) = tokio_tungstenite::client_async(url, tls_connect(addr, &config).await).await.unwrap();
    assert_eq!(next_event(&mut open).await["event"], "pusher:connection_established");
    open.send(Message::Text(json!({"event":"pusher:subscribe","data":{"channel":"tls-reload"}}).to_string().into()))
        .await
        .unwrap();
    assert_eq!(next_event(&mut open).await["event"], "pusher_internal:subscription_succeeded");

    // Files rewritten in place (certificate first, then key): new handshakes get B.
    std::fs::write(&cert, certs.read("b.pem")).unwrap();
    std::fs::write(&key, certs.read("b.key")).unwrap();
    wait_presented(&sinew, &config, &b).await;
    // Whatever the in-between state (B with A's key) logged comes before this line.
    sinew.wait_log("TLS certificate reloaded", 1).await;
    publish(addr, &ca, "after-file-change").await;
    assert_eq!(next_event(&mut open).await["event"], "after-file-change");

    // A certificate whose key is not in the key file: logged, B stays.
    let failures = sinew.log().matches(FAILED).count();
    certs.replace("cert.pem", "c.pem", false);
    sinew.wait_log(FAILED, failures + 1).await;
    assert_eq!(presented(addr, &config).await, b);

    // The matching key, with the old modification time and length: only SIGHUP picks it up.
    let before = std::fs::metadata(&key).unwrap();
    certs.replace("key.pem", "c.key", true);
    let after = std::fs::metadata(&key).unwrap();
    assert_eq!((before.modified().unwrap(), before.len()), (after.modified().unwrap(), after.len()));
    assert_eq!(presented(addr, &config).await, b);
    sinew.signal("HUP").await;
    wait_presented(&sinew, &config, &c).await;

    // The connection made with A is still served.
    publish(addr, &ca, "after-sighup").await;
    assert_eq!(next_event(&mut open).await["event"], "after-sighup");
    open.send(Message::Text(json!({"event":"pusher:ping","data":{}}).to_string().into())).await.unwrap();
    assert_eq!(next_event(&mut open).await["event"], "pusher:pong");

    sinew.signal("TERM").await;
    let error = next_event(&mut open).await;
    assert_eq!(error["data"]["code"], 4200, "{error}");
    let status = sinew.exit_status().await;
    assert!(status.success(), "{status:?}\n{}", sinew.log());
}

#[tokio::test]
async fn a_bad_pair_at_start_up_is_refused() {
    let certs = Certs::new();
    let (cert, key) = (certs.path("a.pem"), certs.path("b.key"));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sinew"))
        .env("SINEW_HOST", "127.0.0.1")
        .env("SINEW_PORT", "0")
        .env("SINEW_METRICS_ENABLED", "false")
        .env("SINEW_TLS_CERT", &cert)
        .env("SINEW_TLS_KEY", &key)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tls_cert/tls_key"), "{err}");
}

/// A wss:// connection runs the same framing and the same liveness rule as plain TCP: WebSocket
/// pings are answered, a silent client gets `pusher:ping` after `activity_timeout` and then 4201,
/// and a message over the size limit closes with 1009.
#[tokio::test]
async fn wss_connections_follow_the_plain_tcp_rules() {
    let certs = Certs::with_pairs(&["a"]);
    let (cert, key) = (certs.path("a.pem"), certs.path("a.key"));
    let sinew = SinewProcess::spawn(&[
        ("SINEW_TLS_CERT", cert.to_str().unwrap()),
        ("SINEW_TLS_KEY", key.to_str().unwrap()),
        ("SINEW_ACTIVITY_TIMEOUT", "1"),
        ("SINEW_PONG_TIMEOUT", "1"),
        ("SINEW_MAX_MESSAGE_BYTES", "1024"),
    ])
    .await;
    let config = client_config(&certs.path("ca.pem"));
    let url = format!("wss://{}/app/{KEY}?protocol=7&client=js&version=8.6.0&flash=false", sinew.addr);

    let (mut ws, _) =
        tokio_tungstenite::client_async(url.clone(), tls_connect(sinew.addr, &config).await).await.unwrap();
    let established = next_event(&mut ws).await;
    assert_eq!(established["event"], "pusher:connection_established");
    let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["activity_timeout"], 1);
    ws.send(Message::Ping(b"are you there".to_vec().into())).await.unwrap();
    let pong = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
    assert!(matches!(&pong, Some(Ok(Message::Pong(p))) if p.as_ref() == b"are you there"), "{pong:?}");
    // Silent from now on: pinged, then closed with 4201.
    assert_eq!(next_event(&mut ws).await["event"], "pusher:ping");
    let close = loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(f))) => break f,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame: {other:?}"),
        }
    };
    assert_eq!(close.map(|f| u16::from(f.code)), Some(4201));

    let (mut ws, _) = tokio_tungstenite::client_async(url, tls_connect(sinew.addr, &config).await).await.unwrap();
    assert_eq!(next_event(&mut ws).await["event"], "pusher:connection_established");
    ws.send(Message::Text("x".repeat(2048).into())).await.unwrap();
    let close = loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(f))) => break f,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame: {other:?}"),
        }
    };
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1009));
}

/// Reads from `tls` into `buf` until a request or response head is complete; returns the head
/// (the bytes after it stay in `buf`).
async fn read_head(tls: &mut TlsStream<TcpStream>, buf: &mut Vec<u8>) -> String {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).unwrap();
            buf.drain(..end + 4);
            return head;
        }
        assert!(read_more(tls, buf).await, "connection closed before a whole head");
    }
}

/// Reads what arrives next into `buf`; false at the end of the stream (after the server's
/// close_notify). A stream cut without close_notify panics.
async fn read_more(tls: &mut TlsStream<TcpStream>, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, tls.read(&mut chunk)).await.expect("bytes in time").expect("a clean read");
    buf.extend_from_slice(&chunk[..n]);
    n > 0
}

/// The next server frame (first byte, payload); server frames are short and unmasked here.
async fn read_frame(tls: &mut TlsStream<TcpStream>, buf: &mut Vec<u8>) -> (u8, Vec<u8>) {
    loop {
        if buf.len() >= 2 {
            let len = usize::from(buf[1] & 0x7F);
            assert!(len < 126, "a short frame");
            if buf.len() >= 2 + len {
                let payload = buf[2..2 + len].to_vec();
                let b0 = buf[0];
                buf.drain(..2 + len);
                return (b0, payload);
            }
        }
        assert!(read_more(tls, buf).await, "connection closed before a whole frame");
    }
}

fn upgrade_request(extra: &str) -> String {
    format!(
        "GET /app/{KEY}?protocol=7 HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

/// Over TLS as on plain TCP: the first request's upgrade is answered, so is an upgrade after a plain
/// request on a kept-alive connection (through the HTTP server); a framing error is answered with
/// its close code (1002) and then the TLS close_notify; a head over the bound gets 431.
#[tokio::test]
async fn wss_handshakes_and_framing_errors_match_plain_tcp() {
    let certs = Certs::with_pairs(&["a"]);
    let (cert, key) = (certs.path("a.pem"), certs.path("a.key"));
    let sinew =
        SinewProcess::spawn(&[("SINEW_TLS_CERT", cert.to_str().unwrap()), ("SINEW_TLS_KEY", key.to_str().unwrap())])
            .await;
    let config = client_config(&certs.path("ca.pem"));

    for keep_alive_first in [false, true] {
        let mut tls = tls_connect(sinew.addr, &config).await;
        let mut buf = Vec::new();
        if keep_alive_first {
            tls.write_all(b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
            let head = read_head(&mut tls, &mut buf).await;
            assert!(head.starts_with("HTTP/1.1 404"), "{head}");
            let len: usize =
                head.lines().find_map(|l| l.strip_prefix("content-length: ")).and_then(|v| v.parse().ok()).unwrap();
            while buf.len() < len {
                assert!(read_more(&mut tls, &mut buf).await);
            }
            buf.drain(..len);
        }
        tls.write_all(upgrade_request("").as_bytes()).await.unwrap();
        let head = read_head(&mut tls, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        let (b0, payload) = read_frame(&mut tls, &mut buf).await;
        assert_eq!(b0, 0x81);
        let established: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(established["event"], "pusher:connection_established");
        // An unmasked client frame breaks RFC 6455 (5.1): closed with 1002.
        tls.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
        let (b0, payload) = read_frame(&mut tls, &mut buf).await;
        assert_eq!(b0, 0x88, "a close frame");
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1002);
        // Then close_notify: a clean end of the stream.
        while read_more(&mut tls, &mut buf).await {}
    }

    let mut tls = tls_connect(sinew.addr, &config).await;
    let cookie = format!("Cookie: session={}\r\n", "x".repeat(17 * 1024));
    tls.write_all(upgrade_request(&cookie).as_bytes()).await.unwrap();
    let head = read_head(&mut tls, &mut Vec::new()).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
}
