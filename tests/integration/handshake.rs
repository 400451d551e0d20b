//! Connection handshake, refusals, pings and malformed input over a real WebSocket.

use crate::common::{Client, KEY, Next, TestServer, data};
use futures_util::SinkExt;
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn connection_established_carries_socket_id_and_activity_timeout() {
    let s = TestServer::default().await;
    let mut c = s.connect().await;
    let ev = c.recv().await;
    assert_eq!(ev["event"], "pusher:connection_established");
    let d = data(&ev);
    let sid = d["socket_id"].as_str().unwrap();
    let (a, b) = sid.split_once('.').unwrap();
    assert!(!a.is_empty() && a.chars().all(|c| c.is_ascii_digit()), "{sid}");
    assert!(!b.is_empty() && b.chars().all(|c| c.is_ascii_digit()), "{sid}");
    assert_eq!(d["activity_timeout"], 120);
    let other = s.client().await;
    assert_ne!(other.socket_id, sid, "socket ids are unique");
    s.stop().await;
}

#[tokio::test]
async fn unknown_app_key_is_refused_with_4001() {
    let s = TestServer::default().await;
    let mut c = Client::connect(s.addr, "nope").await;
    let ev = c.recv().await;
    assert_eq!(ev, json!({"event":"pusher:error","data":{"code":4001,"message":"App key nope does not exist"}}));
    assert_eq!(c.expect_close().await, Some(4001));
    s.stop().await;
}

#[tokio::test]
async fn disabled_app_is_refused_with_4003() {
    let s = TestServer::start(|c| c.apps[0].enabled = false).await;
    let mut c = s.connect().await;
    assert_eq!(c.recv().await["data"]["code"], 4003);
    assert_eq!(c.expect_close().await, Some(4003));
    s.stop().await;
}

#[tokio::test]
async fn connection_quota_is_enforced_and_released() {
    let s = TestServer::start(|c| c.apps[0].max_connections = 1).await;
    let first = s.client().await;
    let mut second = s.connect().await;
    assert_eq!(second.recv().await["data"]["code"], 4004);
    assert_eq!(second.expect_close().await, Some(4004));
    drop(first);
    // The slot is released once the server notices the first socket left.
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut c = s.connect().await;
        if c.recv().await["event"] == "pusher:connection_established" {
            ok = true;
            break;
        }
    }
    assert!(ok, "the released slot can be used again");
    s.stop().await;
}

#[tokio::test]
async fn protocol_versions_5_to_7_are_accepted_others_refused_with_4007() {
    let s = TestServer::default().await;
    for p in ["5", "6", "7"] {
        let mut c = Client::connect_path(s.addr, &format!("/app/{KEY}?protocol={p}")).await;
        assert_eq!(c.recv().await["event"], "pusher:connection_established", "protocol {p}");
    }
    let mut c = Client::connect_path(s.addr, &format!("/app/{KEY}")).await;
    assert_eq!(c.recv().await["event"], "pusher:connection_established", "missing protocol means 7");
    for p in ["4", "8", "x"] {
        let mut c = Client::connect_path(s.addr, &format!("/app/{KEY}?protocol={p}")).await;
        assert_eq!(c.recv().await["data"]["code"], 4007, "protocol {p}");
        assert_eq!(c.expect_close().await, Some(4007));
    }
    s.stop().await;
}

#[tokio::test]
async fn malformed_version_is_refused_with_4006() {
    let s = TestServer::default().await;
    let mut c = Client::connect_path(s.addr, &format!("/app/{KEY}?protocol=7&client=js&version=not-a-version")).await;
    assert_eq!(c.recv().await["data"]["code"], 4006);
    assert_eq!(c.expect_close().await, Some(4006));
    for v in ["8.6.0", "7.0.3-beta.1", "1"] {
        let mut c = Client::connect_path(s.addr, &format!("/app/{KEY}?protocol=7&version={v}")).await;
        assert_eq!(c.recv().await["event"], "pusher:connection_established", "{v}");
    }
    s.stop().await;
}

#[tokio::test]
async fn long_close_reasons_are_cut_to_fit_a_close_frame() {
    let s = TestServer::default().await;
    let long_key = "k".repeat(300);
    let mut c = Client::connect(s.addr, &long_key).await;
    assert_eq!(c.recv().await["data"]["code"], 4001);
    assert_eq!(c.expect_close().await, Some(4001), "a valid close frame, not a protocol error");
    s.stop().await;
}

#[tokio::test]
async fn subscriptions_per_connection_are_bounded() {
    let s = TestServer::start(|c| c.apps[0].max_subscriptions_per_connection = 3).await;
    let mut c = s.client().await;
    for i in 0..3 {
        assert_eq!(c.subscribe(&format!("c{i}")).await["event"], "pusher_internal:subscription_succeeded");
    }
    let ev = c.subscribe("c3").await;
    assert_eq!(ev["event"], "pusher:subscription_error");
    assert_eq!(ev["data"]["status"], 403);
    c.recv().await;
    c.send(json!({"event":"pusher:unsubscribe","data":{"channel":"c0"}})).await;
    assert_eq!(c.subscribe("c3").await["event"], "pusher_internal:subscription_succeeded");
    s.stop().await;
}

#[tokio::test]
async fn path_prefix_and_trailing_slash_are_routed() {
    let s = TestServer::start(|c| c.path_prefix = "/ws".into()).await;
    let mut c = Client::connect_path(s.addr, &format!("/ws/app/{KEY}?protocol=7")).await;
    assert_eq!(c.recv().await["event"], "pusher:connection_established");
    let mut c = Client::connect_path(s.addr, &format!("/app/{KEY}/?protocol=7")).await;
    assert_eq!(c.recv().await["event"], "pusher:connection_established");
    s.stop().await;
}

#[tokio::test]
async fn ping_gets_pong() {
    let s = TestServer::default().await;
    let mut c = s.client().await;
    c.send(json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(c.recv().await, json!({"event":"pusher:pong","data":"{}"}));
    s.stop().await;
}

#[tokio::test]
async fn idle_client_is_pinged_then_closed_with_4201() {
    let s = TestServer::start(|c| {
        c.activity_timeout = 1;
        c.pong_timeout = 1;
    })
    .await;
    let mut c = s.client().await;
    assert_eq!(c.recv().await["event"], "pusher:ping");
    // Answering keeps it alive for another round.
    c.send(json!({"event":"pusher:pong","data":{}})).await;
    assert_eq!(c.recv().await["event"], "pusher:ping");
    // Silence now: closed with 4201.
    assert_eq!(c.expect_close().await, Some(4201));
    s.stop().await;
}

#[tokio::test]
async fn websocket_ping_frames_count_as_activity() {
    let s = TestServer::start(|c| {
        c.activity_timeout = 1;
        c.pong_timeout = 1;
    })
    .await;
    let mut c = s.client().await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        c.ws.send(Message::Ping(vec![1].into())).await.unwrap();
    }
    // Pings kept it alive for 2.4 s, longer than activity + pong timeouts together.
    if let Next::Closed(code) = c.next_within(Duration::from_millis(100)).await {
        panic!("closed early with {code:?}");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_client_close_frame_is_answered() {
    let s = TestServer::default().await;
    let mut c = s.client().await;
    c.ws.send(Message::Close(None)).await.unwrap();
    // The server answers with its own Close frame rather than just dropping the TCP connection.
    let reply = tokio::time::timeout(Duration::from_secs(2), futures_util::StreamExt::next(&mut c.ws)).await.unwrap();
    assert!(matches!(reply, Some(Ok(Message::Close(_)))), "{reply:?}");
    s.stop().await;
}

#[tokio::test]
async fn bad_input_gets_errors_and_the_socket_stays_open() {
    let s = TestServer::default().await;
    let mut c = s.client().await;
    for bad in [
        "not json",
        "{\"data\":1}",
        "[]",
        "{\"event\":\"pusher:subscribe\"}",
        "{\"event\":\"pusher:unknown\",\"data\":{}}",
    ] {
        c.send_raw(bad).await;
        let ev = c.recv().await;
        assert_eq!(ev["event"], "pusher:error", "{bad}");
        assert!(ev["data"]["code"].is_null(), "{bad}: {ev}");
    }
    c.ws.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(c.recv().await["event"], "pusher:error");
    c.send(json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(c.recv().await["event"], "pusher:pong");
    s.stop().await;
}

#[tokio::test]
async fn oversized_message_closes_only_that_socket() {
    let s = TestServer::start(|c| c.max_message_bytes = 1024).await;
    let mut big = s.client().await;
    let mut other = s.client().await;
    big.send_raw(&format!("{{\"event\":\"client-x\",\"data\":\"{}\"}}", "a".repeat(4096))).await;
    assert_eq!(big.expect_close().await, Some(1009));
    other.send(json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(other.recv().await["event"], "pusher:pong");
    s.stop().await;
}

#[tokio::test]
async fn shutdown_sends_4200_to_every_client() {
    let s = TestServer::default().await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    let ctx = s.ctx.clone();
    let stopping = tokio::spawn(s.stop());
    let ev = a.recv().await;
    assert_eq!(ev["data"]["code"], 4200);
    assert_eq!(a.expect_close().await, Some(4200));
    assert_eq!(b.expect_close().await, Some(4200));
    stopping.await.unwrap();
    assert!(ctx.is_draining());
}

#[tokio::test]
async fn non_upgrade_request_and_unknown_routes_get_http_errors() {
    let s = TestServer::default().await;
    let (status, _) = s.http().raw("GET", &format!("/app/{KEY}"), "").await;
    assert_eq!(status, 400);
    let (status, body) = s.http().raw("GET", "/nothing/here", "").await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
    let (status, _) = s.http().raw("GET", "/up", "").await;
    assert_eq!(status, 200);
    let (status, body) = s.http().raw("GET", "/usage", "").await;
    assert_eq!(status, 200);
    assert!(body["memory"]["rss"].as_u64().unwrap() > 0);
    s.stop().await;
}
