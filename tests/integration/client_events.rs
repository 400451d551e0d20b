//! Client events: channel rules, no echo, presence user_id, rate limit.

use crate::common::TestServer;
use serde_json::json;

#[tokio::test]
async fn relayed_to_others_never_to_the_sender() {
    let s = TestServer::default().await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe_private("private-chat").await;
    b.subscribe_private("private-chat").await;
    a.send(json!({"event":"client-typing","channel":"private-chat","data":{"who":"a"}})).await;
    assert_eq!(b.recv().await, json!({"event":"client-typing","channel":"private-chat","data":{"who":"a"}}));
    a.expect_silence().await;
    s.stop().await;
}

#[tokio::test]
async fn presence_client_events_carry_the_senders_user_id() {
    let s = TestServer::default().await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe_presence("presence-chat", r#"{"user_id":"42"}"#).await;
    b.subscribe_presence("presence-chat", r#"{"user_id":"7"}"#).await;
    a.recv().await; // member_added for 7
    a.send(json!({"event":"client-hi","channel":"presence-chat","data":"x","user_id":"forged"})).await;
    assert_eq!(b.recv().await, json!({"event":"client-hi","channel":"presence-chat","data":"x","user_id":"42"}));
    s.stop().await;
}

#[tokio::test]
async fn refused_on_public_encrypted_unjoined_and_when_disabled() {
    let s = TestServer::default().await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe("public").await;
    b.subscribe("public").await;
    a.subscribe_private("private-encrypted-x").await;
    b.subscribe_private("private-encrypted-x").await;
    for ch in ["public", "private-encrypted-x", "private-not-joined", "cache-x", "#server-to-user-1"] {
        a.send(json!({"event":"client-x","channel":ch,"data":{}})).await;
        let ev = a.recv().await;
        assert_eq!(ev["event"], "pusher:error", "{ch}");
    }
    b.expect_silence().await;
    s.stop().await;

    let s = TestServer::start(|c| c.apps[0].client_events = false).await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe_private("private-x").await;
    b.subscribe_private("private-x").await;
    a.send(json!({"event":"client-x","channel":"private-x","data":{}})).await;
    assert_eq!(a.recv().await["event"], "pusher:error");
    b.expect_silence().await;
    s.stop().await;
}

#[tokio::test]
async fn rate_limited_with_4301_and_the_socket_stays_open() {
    let s = TestServer::start(|c| c.apps[0].max_client_events_per_second = 3).await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe_private("private-x").await;
    b.subscribe_private("private-x").await;
    for i in 0..5 {
        a.send(json!({"event":"client-n","channel":"private-x","data":{"i":i}})).await;
    }
    let ev = a.recv().await;
    assert_eq!(ev["event"], "pusher:error");
    assert_eq!(ev["data"]["code"], 4301);
    assert_eq!(a.recv().await["data"]["code"], 4301);
    for i in 0..3 {
        assert_eq!(b.recv().await["data"]["i"], i);
    }
    b.expect_silence().await;
    // Still connected, and allowed again after the window.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    a.send(json!({"event":"client-n","channel":"private-x","data":{"i":9}})).await;
    assert_eq!(b.recv().await["data"]["i"], 9);
    let (_, usage) = s.http().raw("GET", "/usage", "").await;
    assert_eq!(usage["client_events_rate_limited"], 2);
    s.stop().await;
}

#[tokio::test]
async fn oversized_client_event_data_is_refused() {
    let s = TestServer::default().await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe_private("private-x").await;
    b.subscribe_private("private-x").await;
    a.send(json!({"event":"client-big","channel":"private-x","data":"x".repeat(10_300)})).await;
    assert_eq!(a.recv().await["event"], "pusher:error");
    b.expect_silence().await;
    s.stop().await;
}
