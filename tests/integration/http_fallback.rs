//! HTTP fallback transports (spec section 9) over raw HTTP: framing, sessions, re-attachment,
//! heartbeats, refusals, CORS, cleanup and server-initiated closes.

use crate::common;

use crate::common::{KEY, TestServer, auth_presence, data};
use crate::fallback_support::{Fr, Receiver, fast, send, send_msgs, subscribe, usage};
use serde_json::json;
use sinew::protocol::signature;
use std::time::Duration;

#[tokio::test]
async fn streaming_opens_then_establishes_and_delivers_rest_events() {
    let s = TestServer::start(fast).await;
    let mut r = Receiver::open(&s, KEY, "7/abcdefgh", "xhr_streaming").await;
    let sid = r.established(true).await;
    assert!(sinew::hub::is_valid_socket_id(&sid));
    send_msgs(&s, "7/abcdefgh", &[subscribe("news")]).await;
    let ok = r.event("pusher_internal:subscription_succeeded").await;
    assert_eq!(ok["channel"], "news");
    let (status, _) = s.http().trigger("news", "breaking", "{\"n\":\"é\"}").await;
    assert_eq!(status, 200);
    let ev = r.event("breaking").await;
    assert_eq!((ev["channel"].as_str(), ev["data"].as_str()), (Some("news"), Some("{\"n\":\"é\"}")));
    assert_eq!(usage(&s).await["http_sessions"], 1);
    s.stop().await;
}

#[tokio::test]
async fn heartbeats_on_idle_streams_and_polls() {
    let s = TestServer::start(fast).await;
    let mut r = Receiver::open(&s, KEY, "1/stream01", "xhr_streaming").await;
    r.established(true).await;
    assert_eq!(r.frame().await, Fr::Heartbeat);
    assert_eq!(r.frame().await, Fr::Heartbeat);

    let mut p = Receiver::open(&s, KEY, "1/polling1", "xhr").await;
    p.established(false).await;
    assert_eq!(p.next().await, None, "a poll ends after its batch");
    let mut p = Receiver::open(&s, KEY, "1/polling1", "xhr").await;
    assert_eq!(p.frame().await, Fr::Heartbeat, "an idle poll returns h");
    assert_eq!(p.next().await, None);
    s.stop().await;
}

#[tokio::test]
async fn polling_session_round_trip() {
    let s = TestServer::start(fast).await;
    let mut p = Receiver::open(&s, KEY, "2/polling2", "xhr").await;
    p.established(false).await;
    assert_eq!(p.next().await, None);
    send_msgs(&s, "2/polling2", &[subscribe("poll-news")]).await;
    let mut p = Receiver::open(&s, KEY, "2/polling2", "xhr").await;
    assert_eq!(p.event("pusher_internal:subscription_succeeded").await["channel"], "poll-news");
    assert_eq!(p.next().await, None);
    let mut p = Receiver::open(&s, KEY, "2/polling2", "xhr").await;
    s.http().trigger("poll-news", "tick", "1").await;
    assert_eq!(p.event("tick").await["data"], "1");
    assert_eq!(p.next().await, None);
    s.stop().await;
}

#[tokio::test]
async fn reattach_keeps_the_session_without_a_second_open() {
    let s = TestServer::start(fast).await;
    let mut r = Receiver::open(&s, KEY, "3/reattach", "xhr_streaming").await;
    let sid = r.established(true).await;
    send_msgs(&s, "3/reattach", &[subscribe("gap")]).await;
    r.event("pusher_internal:subscription_succeeded").await;
    drop(r);
    // Published while no receiver is attached: kept for the next one.
    s.http().trigger("gap", "during-gap", "x").await;
    let mut r = Receiver::open(&s, KEY, "3/reattach", "xhr_streaming").await;
    assert_eq!(r.frame().await, Fr::Prelude);
    match r.frame().await {
        Fr::Messages(ms) => assert_eq!(ms[0]["event"], "during-gap"),
        other => panic!("expected the queued event, not {other:?}"),
    }
    s.http().trigger("gap", "after", "y").await;
    r.event("after").await;
    assert_eq!(usage(&s).await["connections"], 1, "still one connection ({sid})");
    s.stop().await;
}

#[tokio::test]
async fn stream_pauses_past_the_client_limit_and_resumes_on_reattach() {
    let s = TestServer::start(fast).await;
    let mut r = Receiver::open(&s, KEY, "4/bigbytes", "xhr_streaming").await;
    r.established(true).await;
    send_msgs(&s, "4/bigbytes", &[subscribe("big")]).await;
    r.event("pusher_internal:subscription_succeeded").await;
    let payload = "z".repeat(9000);
    let total = 40;
    for i in 0..total {
        let (status, _) = s.http().trigger("big", &format!("e{i}"), &payload).await;
        assert_eq!(status, 200);
    }
    let mut seen = Vec::new();
    // The first response stops once it carried more than 256 KiB, as pusher-js then re-attaches.
    while let Some(Some(f)) = r.next_within(Duration::from_millis(500)).await {
        if let Fr::Messages(ms) = f {
            seen.extend(ms.iter().map(|m| m["event"].as_str().unwrap().to_string()));
        }
    }
    assert!(r.bytes > 256 * 1024, "first stream carried {} bytes", r.bytes);
    assert!(seen.len() < total, "the stream paused past the limit ({} events)", seen.len());
    let mut r2 = Receiver::open(&s, KEY, "4/bigbytes", "xhr_streaming").await;
    while seen.len() < total {
        match r2.frame().await {
            Fr::Messages(ms) => seen.extend(ms.iter().map(|m| m["event"].as_str().unwrap().to_string())),
            Fr::Prelude | Fr::Heartbeat => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: Vec<String> = (0..total).map(|i| format!("e{i}")).collect();
    assert_eq!(seen, expected, "every event once, in order, across the re-attach");
    s.stop().await;
}

#[tokio::test]
async fn send_errors_and_unknown_sessions() {
    let s = TestServer::start(fast).await;
    assert_eq!(send(&s, KEY, "9/nosuchss", "[]").await, 404);
    let mut r = Receiver::open(&s, KEY, "9/errors01", "xhr_streaming").await;
    r.established(true).await;
    assert_eq!(send(&s, KEY, "9/errors01", "").await, 400);
    assert_eq!(send(&s, KEY, "9/errors01", "{not json").await, 400);
    assert_eq!(send(&s, KEY, "9/errors01", "[1]").await, 400);
    assert_eq!(send(&s, KEY, "9/errors01", "[]").await, 204);
    // A message that is not valid Pusher JSON is answered inside the session, which stays open.
    assert_eq!(send(&s, KEY, "9/errors01", "[\"nope\"]").await, 204);
    assert!(r.event("pusher:error").await["data"]["message"].is_string());
    // Sessions are per app key.
    assert_eq!(send(&s, "other-key", "9/errors01", "[]").await, 404);
    // A message over the size limit closes the session (pusher-js ignores xhr_send answers).
    let big = serde_json::to_string(&vec!["x".repeat(70 * 1024)]).unwrap();
    assert_eq!(send(&s, KEY, "9/errors01", &big).await, 413);
    loop {
        match r.frame().await {
            Fr::Close(code, _) => {
                assert_eq!(code, 1009);
                break;
            }
            _ => continue,
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn cors_preflight_and_response_headers() {
    let s = TestServer::start(fast).await;
    for endpoint in ["xhr_streaming", "xhr", "xhr_send"] {
        let url = format!("http://{}/pusher/app/{KEY}/1/corstest/{endpoint}?t=1", s.addr);
        let res = reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", "http://page.test:8080")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "{endpoint}");
        let h = res.headers();
        assert_eq!(h["access-control-allow-origin"], "http://page.test:8080");
        assert_eq!(h["access-control-allow-methods"], "POST, OPTIONS");
        assert_eq!(h["access-control-allow-headers"], "content-type");
        assert!(h.contains_key("access-control-max-age"));
        let res = reqwest::Client::new().request(reqwest::Method::OPTIONS, &url).send().await.unwrap();
        assert_eq!(res.headers()["access-control-allow-origin"], "*");
        assert!(!res.headers().contains_key("access-control-allow-credentials"));
        assert_eq!(res.headers()["access-control-allow-headers"], "Content-Type");
    }
    let res = reqwest::Client::new()
        .post(format!("http://{}/pusher/app/{KEY}/1/corspost/xhr", s.addr))
        .header("origin", "http://page.test")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "http://page.test");
    s.stop().await;
}

#[tokio::test]
async fn refusals_are_open_error_close() {
    let s = TestServer::start(|c| {
        fast(c);
        c.apps[0].max_connections = 1;
    })
    .await;
    for endpoint in ["xhr", "xhr_streaming"] {
        let mut r = Receiver::open(&s, "no-such-key", "1/refused1", endpoint).await;
        if endpoint == "xhr_streaming" {
            assert_eq!(r.frame().await, Fr::Prelude);
        }
        assert_eq!(r.frame().await, Fr::Open);
        let Fr::Messages(ms) = r.frame().await else { panic!("expected pusher:error") };
        assert_eq!(ms[0]["event"], "pusher:error");
        assert_eq!(ms[0]["data"]["code"], 4001);
        match r.frame().await {
            Fr::Close(code, reason) => assert_eq!((code, reason.contains("no-such-key")), (4001, true)),
            other => panic!("expected c[4001,...], got {other:?}"),
        }
        assert_eq!(r.next().await, None, "a refusal ends the response");
    }
    // The quota counts HTTP sessions like WebSocket connections.
    let mut first = Receiver::open(&s, KEY, "1/quota001", "xhr_streaming").await;
    first.established(true).await;
    let mut r = Receiver::open(&s, KEY, "1/quota002", "xhr").await;
    assert_eq!(r.frame().await, Fr::Open);
    r.event("pusher:error").await;
    assert!(matches!(r.frame().await, Fr::Close(4004, _)));
    let mut ws = s.connect().await;
    assert_eq!(ws.recv().await["data"]["code"], 4004);
    assert_eq!(usage(&s).await["http_sessions"], 1);
    s.stop().await;
}

#[tokio::test]
async fn abandoned_session_leaves_presence() {
    let s = TestServer::start(fast).await;
    let mut watcher = s.client().await;
    watcher.subscribe_presence("presence-room", r#"{"user_id":"watcher"}"#).await;

    let session = "5/leaving1";
    let mut r = Receiver::open(&s, KEY, session, "xhr_streaming").await;
    let sid = r.established(true).await;
    let channel_data = r#"{"user_id":"http-user","user_info":{"via":"xhr"}}"#;
    let auth = auth_presence(&sid, "presence-room", channel_data);
    send_msgs(
        &s,
        session,
        &[json!({"event":"pusher:subscribe","data":{"auth":auth,"channel":"presence-room","channel_data":channel_data}})],
    )
    .await;
    let ok = r.event("pusher_internal:subscription_succeeded").await;
    assert_eq!(data(&ok)["presence"]["count"], 2);
    let added = watcher.recv_event("pusher_internal:member_added").await;
    assert_eq!(data(&added)["user_id"], "http-user");

    drop(r); // The client goes away without a word.
    let removed = watcher.recv_event("pusher_internal:member_removed").await;
    assert_eq!(data(&removed)["user_id"], "http-user");
    assert_eq!(usage(&s).await["http_sessions"], 0);
    assert_eq!(send(&s, KEY, session, "[]").await, 404);
    s.stop().await;
}

#[tokio::test]
async fn terminate_connections_closes_with_4009() {
    let s = TestServer::start(fast).await;
    let session = "6/terminat";
    let mut r = Receiver::open(&s, KEY, session, "xhr_streaming").await;
    let sid = r.established(true).await;
    let user_data = r#"{"id":"bad-user"}"#;
    let auth = format!("{KEY}:{}", signature::sign(common::SECRET, signature::user_string(&sid, user_data).as_bytes()));
    send_msgs(&s, session, &[json!({"event":"pusher:signin","data":{"auth":auth,"user_data":user_data}})]).await;
    r.event("pusher:signin_success").await;
    let (status, _) = s.http().post("/users/bad-user/terminate_connections", json!({})).await;
    assert_eq!(status, 200);
    let err = r.event("pusher:error").await;
    assert_eq!(err["data"]["code"], 4009);
    loop {
        match r.frame().await {
            Fr::Close(code, _) => {
                assert_eq!(code, 4009);
                break;
            }
            Fr::Heartbeat => {}
            other => panic!("expected c[4009,...], got {other:?}"),
        }
    }
    assert_eq!(r.next().await, None, "the response ends after the close frame");
    assert_eq!(usage(&s).await["connections"], 0);
    s.stop().await;
}

#[tokio::test]
async fn shutdown_closes_sessions_with_4200() {
    let s = TestServer::start(fast).await;
    let mut r = Receiver::open(&s, KEY, "8/shutdown", "xhr_streaming").await;
    r.established(true).await;
    let stop = tokio::spawn(s.stop());
    loop {
        match r.frame().await {
            Fr::Close(code, _) => {
                assert_eq!(code, 4200);
                break;
            }
            Fr::Heartbeat | Fr::Messages(_) => {}
            other => panic!("expected c[4200,...], got {other:?}"),
        }
    }
    stop.await.unwrap();
}

#[tokio::test]
async fn listen_only_streams_are_pinged_before_any_4201() {
    let s = TestServer::start(|c| {
        fast(c);
        c.activity_timeout = 1;
        c.pong_timeout = 1;
    })
    .await;
    let mut r = Receiver::open(&s, KEY, "3/listener", "xhr_streaming").await;
    r.established(true).await;
    // The client never sends anything on its own: the server asks with pusher:ping first.
    r.event("pusher:ping").await;
    send_msgs(&s, "3/listener", &[json!({"event":"pusher:pong","data":{}})]).await;
    // Answered: still open after longer than activity + pong timeouts, and pinged again.
    r.event("pusher:ping").await;
    send_msgs(&s, "3/listener", &[json!({"event":"pusher:pong","data":{}})]).await;
    r.event("pusher:ping").await;
    // Unanswered: closed with 4201.
    loop {
        match r.frame().await {
            Fr::Close(code, _) => {
                assert_eq!(code, 4201);
                break;
            }
            _ => continue,
        }
    }
    s.stop().await;
}
