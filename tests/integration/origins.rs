//! Per-app `allowed_origins` on connections: a browser page whose `Origin` is not listed is refused
//! with 4009 on every transport (WebSocket answered directly or through the HTTP server, plain TCP
//! or TLS, and the HTTP fallback); a request without `Origin` (a client that is not a page) and
//! any origin of an app with an empty list connect. Also the same entries on the auth endpoints.

use crate::common::raw::{Raw, Served, Transport, on_both_transports, request, upgrade_headers};
use crate::common::{Client, KEY, TestServer};
use crate::fallback_support::{Fr, Receiver};
use serde_json::json;
use sinew::config::Config;
use std::net::SocketAddr;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const PAGE: &str = "https://app.example.com";

fn listed(c: &mut Config) {
    c.apps[0].allowed_origins = vec![PAGE.into(), "https://*.example.org".into(), "localhost:3000".into()];
}

/// A WebSocket client for `key` whose upgrade request carries `Origin: origin` (none for `None`).
async fn connect_from(addr: SocketAddr, key: &str, origin: Option<&str>) -> Client {
    connect_path_from(addr, &format!("/app/{key}?protocol=7&client=js&version=8.6.0&flash=false"), origin).await
}

async fn connect_path_from(addr: SocketAddr, path: &str, origin: Option<&str>) -> Client {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", HeaderValue::from_str(o).unwrap());
    }
    let (ws, _) = tokio_tungstenite::connect_async(req).await.expect("ws connect");
    Client { ws, socket_id: String::new() }
}

/// What a connection from `origin` gets first: `Ok(())` for `connection_established`, or the
/// `pusher:error` code, then checked to be the close code too.
async fn outcome(addr: SocketAddr, key: &str, origin: Option<&str>) -> Result<(), u64> {
    let mut c = connect_from(addr, key, origin).await;
    let ev = c.recv().await;
    if ev["event"] == "pusher:connection_established" {
        return Ok(());
    }
    assert_eq!(ev["event"], "pusher:error", "{ev}");
    let code = ev["data"]["code"].as_u64().unwrap();
    assert_eq!(c.expect_close().await.map(u64::from), Some(code));
    Err(code)
}

#[tokio::test]
async fn listed_origins_connect_and_others_are_refused_with_4009() {
    let s = TestServer::start(listed).await;
    for origin in [
        PAGE,
        "HTTPS://APP.example.COM",
        "https://app.example.com:443",
        "https://chat.example.org",
        "https://a.b.example.org",
        "http://localhost:3000",
        "https://localhost:3000",
    ] {
        assert_eq!(outcome(s.addr, KEY, Some(origin)).await, Ok(()), "{origin}");
    }
    // Not a page: no `Origin`, as server-side clients connect.
    assert_eq!(outcome(s.addr, KEY, None).await, Ok(()));
    for origin in [
        "https://evil.example",
        "http://app.example.com",
        "https://app.example.com.evil.net",
        "https://app.example.com:8443",
        "https://example.org",
        "https://evilexample.org",
        "http://localhost:3001",
        "null",
    ] {
        assert_eq!(outcome(s.addr, KEY, Some(origin)).await, Err(4009), "{origin}");
    }
    let mut c = connect_from(s.addr, KEY, Some("https://evil.example")).await;
    assert_eq!(c.recv().await, json!({"event":"pusher:error","data":{"code":4009,"message":"Origin not allowed"}}));
    assert_eq!(c.expect_close().await, Some(4009));
    s.stop().await;
}

#[tokio::test]
async fn an_empty_list_lets_every_origin_connect() {
    let s = TestServer::default().await;
    for origin in [Some("https://anything.example"), Some("null"), None] {
        assert_eq!(outcome(s.addr, KEY, origin).await, Ok(()), "{origin:?}");
    }
    s.stop().await;
}

/// Unknown key (4001) before the origin (4009) before the app's switch (4003) and the protocol.
#[tokio::test]
async fn the_origin_is_checked_right_after_the_app_key() {
    let s = TestServer::start(|c| {
        listed(c);
        c.apps[0].enabled = false;
    })
    .await;
    assert_eq!(outcome(s.addr, "no-such-key", Some("https://evil.example")).await, Err(4001));
    assert_eq!(outcome(s.addr, KEY, Some("https://evil.example")).await, Err(4009));
    assert_eq!(outcome(s.addr, KEY, Some(PAGE)).await, Err(4003));
    assert_eq!(outcome(s.addr, KEY, None).await, Err(4003));
    s.stop().await;
    let s = TestServer::start(listed).await;
    let path = format!("/app/{KEY}?protocol=99");
    let mut c = connect_path_from(s.addr, &path, Some(PAGE)).await;
    assert_eq!(c.recv().await["data"]["code"], 4007);
    let mut c = connect_path_from(s.addr, &path, Some("https://evil.example")).await;
    assert_eq!(c.recv().await["data"]["code"], 4009);
    s.stop().await;
}

on_both_transports!(every_websocket_entry_checks_the_origin);

/// The upgrade answered directly (the connection's first request) and through the HTTP server
/// (an upgrade after another request on a kept-alive connection), on plain TCP and through TLS.
async fn every_websocket_entry_checks_the_origin(t: Transport) {
    let s = Served::start(t, listed).await;
    let upgrade = |origin: &str| request(&format!("Origin: {origin}\r\n{}", upgrade_headers()));
    for (origin, refused) in [(PAGE, false), ("https://evil.example", true), ("https://x.example.org", false)] {
        for kept_alive in [false, true] {
            let stream = if kept_alive {
                let (head, mut first) = s.connect("GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n", &[]).await;
                assert!(head.starts_with("HTTP/1.1 404"), "{head}");
                first.response_body(&head).await;
                first.stream
            } else {
                s.stream().await
            };
            let (head, mut raw) = Raw::open(stream, &upgrade(origin), &[]).await;
            assert!(head.starts_with("HTTP/1.1 101"), "{head}");
            let ev = raw.event().await;
            let what = format!("{origin}, kept alive: {kept_alive}: {ev}");
            if refused {
                assert_eq!(ev, json!({"event":"pusher:error","data":{"code":4009,"message":"Origin not allowed"}}));
                assert_eq!(raw.close_code().await, 4009, "{what}");
            } else {
                assert_eq!(ev["event"], "pusher:connection_established", "{what}");
            }
        }
    }
    s.stop().await;
}

/// A fallback session opened from an origin not listed: `o`, `pusher:error` 4009, `c[4009,...]`,
/// the end of the response, as for a disabled app's 4003.
#[tokio::test]
async fn http_fallback_sessions_check_the_origin() {
    let s = TestServer::start(listed).await;
    for endpoint in ["xhr", "xhr_streaming"] {
        let session = format!("1/{endpoint}-evil");
        let mut r = Receiver::open_with(s.addr, KEY, &session, endpoint, &[("origin", "https://evil.example")]).await;
        if endpoint == "xhr_streaming" {
            assert_eq!(r.frame().await, Fr::Prelude);
        }
        assert_eq!(r.frame().await, Fr::Open);
        let Fr::Messages(ms) = r.frame().await else { panic!("expected pusher:error") };
        assert_eq!(ms, vec![json!({"event":"pusher:error","data":{"code":4009,"message":"Origin not allowed"}})]);
        assert_eq!(r.frame().await, Fr::Close(4009, "Origin not allowed".into()));
        assert_eq!(r.next().await, None, "a refusal ends the response");
        for (i, origin) in [Some(PAGE), Some("https://x.example.org"), None].into_iter().enumerate() {
            let session = format!("1/{endpoint}-ok{i}");
            let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
            let mut r = Receiver::open_with(s.addr, KEY, &session, endpoint, &headers).await;
            r.established(endpoint == "xhr_streaming").await;
        }
    }
    s.stop().await;
    // The same delivery as the refusal of a disabled app.
    let s = TestServer::start(|c| {
        listed(c);
        c.apps[0].enabled = false;
    })
    .await;
    let mut r = Receiver::open_with(s.addr, KEY, "1/disabled", "xhr", &[("origin", PAGE)]).await;
    assert_eq!(r.frame().await, Fr::Open);
    r.event("pusher:error").await;
    assert!(matches!(r.frame().await, Fr::Close(4003, _)));
    let mut r = Receiver::open_with(s.addr, KEY, "1/disabled2", "xhr", &[("origin", "https://evil.example")]).await;
    assert_eq!(r.frame().await, Fr::Open);
    r.event("pusher:error").await;
    assert!(matches!(r.frame().await, Fr::Close(4009, _)));
    s.stop().await;
}

/// The auth endpoints take the same entries: a subdomain pattern allows the page, but only an
/// origin named without a wildcard may use the token cookie.
#[tokio::test]
async fn auth_endpoints_use_the_same_entries() {
    let s = TestServer::start(|c| {
        c.apps[0].jwt_secret = "token-secret".into();
        c.apps[0].jwt_cookie = "session".into();
        c.apps[0].allowed_origins = vec!["https://*.example.org".into(), "app.example.com".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("http://{}/apps/1/auth", s.addr))
            .header("origin", origin)
            .send()
    };
    let res = preflight("https://chat.example.org").await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["access-control-allow-origin"], "https://chat.example.org");
    assert!(res.headers().get("access-control-allow-credentials").is_none());
    let res = preflight("https://app.example.com").await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    for origin in ["https://example.org", "https://app.example.com.evil.net", "null"] {
        assert_eq!(preflight(origin).await.unwrap().status(), 403, "{origin}");
    }
    s.stop().await;
}
