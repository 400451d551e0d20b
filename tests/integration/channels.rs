//! Every channel type over a real WebSocket: public, private, encrypted, presence, cache, user channels.

use crate::common;

use crate::common::{KEY, TestServer, auth_private, data};
use serde_json::json;

#[tokio::test]
async fn public_subscribe_receives_rest_events_and_unsubscribe_stops_them() {
    let s = TestServer::default().await;
    let mut c = s.client().await;
    let ok = c.subscribe("news").await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(ok["channel"], "news");
    let (status, body) = s.http().trigger("news", "created", "{\"id\":1}").await;
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(c.recv().await, json!({"event":"created","channel":"news","data":"{\"id\":1}"}));
    c.send(json!({"event":"pusher:unsubscribe","data":{"channel":"news"}})).await;
    c.send(json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(c.recv().await["event"], "pusher:pong", "unsubscribe has no reply");
    s.http().trigger("news", "created", "x").await;
    c.expect_silence().await;
    s.stop().await;
}

#[tokio::test]
async fn duplicate_subscribe_is_an_error_not_a_second_subscription() {
    let s = TestServer::default().await;
    let mut c = s.client().await;
    c.subscribe("news").await;
    let ev = c.subscribe("news").await;
    assert_eq!(ev["event"], "pusher:error");
    assert_eq!(ev["data"]["message"], "Existing subscription to channel news");
    s.http().trigger("news", "e", "1").await;
    assert_eq!(c.recv().await["event"], "e");
    c.expect_silence().await;
    s.stop().await;
}

#[tokio::test]
async fn private_channels_need_a_valid_signature() {
    let s = TestServer::default().await;
    let mut c = s.client().await;
    let ok = c.subscribe_private("private-orders").await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    for bad in ["", "app-key:00", &format!("other:{}", &auth_private(&c.socket_id, "private-x")[KEY.len() + 1..])] {
        c.send(json!({"event":"pusher:subscribe","data":{"auth":bad,"channel":"private-x"}})).await;
        let ev = c.recv().await;
        assert_eq!(ev["event"], "pusher:subscription_error", "{bad}");
        assert_eq!(ev["channel"], "private-x");
        assert_eq!(ev["data"]["status"], 401);
        let err = c.recv().await;
        assert_eq!(err["event"], "pusher:error");
        assert!(err["data"]["code"].is_null());
    }
    // A signature for another socket is refused too.
    let stolen = auth_private("1.1", "private-x");
    c.send(json!({"event":"pusher:subscribe","data":{"auth":stolen,"channel":"private-x"}})).await;
    assert_eq!(c.recv().await["event"], "pusher:subscription_error");
    c.recv().await;
    s.http().trigger("private-x", "e", "1").await;
    c.expect_silence().await;
    s.stop().await;
}

#[tokio::test]
async fn encrypted_channels_use_private_auth_and_relay_ciphertext_untouched() {
    let s = TestServer::default().await;
    let mut c = s.client().await;
    assert_eq!(c.subscribe_private("private-encrypted-doc").await["event"], "pusher_internal:subscription_succeeded");
    let payload = "{\"nonce\":\"AAAA\",\"ciphertext\":\"BBBB\"}";
    s.http().trigger("private-encrypted-doc", "e", payload).await;
    assert_eq!(c.recv().await["data"], payload);
    // Multi-channel triggers that include an encrypted channel are refused.
    let (status, _) =
        s.http().post("/events", json!({"name":"e","data":"x","channels":["private-encrypted-doc","news"]})).await;
    assert_eq!(status, 400);
    s.stop().await;
}

#[tokio::test]
async fn invalid_channel_names_are_refused() {
    let s = TestServer::default().await;
    let mut c = s.client().await;
    for bad in ["", "has space", "é", &"a".repeat(201), "#server-to-user-", "#other"] {
        let ev = c.subscribe(bad).await;
        assert_eq!(ev["event"], "pusher:subscription_error", "{bad:?}");
        c.recv().await;
    }
    assert_eq!(c.subscribe(&"a".repeat(200)).await["event"], "pusher_internal:subscription_succeeded");
    s.stop().await;
}

#[tokio::test]
async fn presence_members_added_and_removed_once_per_user() {
    let s = TestServer::default().await;
    let mut a = s.client().await;
    let ok = a.subscribe_presence("presence-room", r#"{"user_id":"alice","user_info":{"name":"Alice"}}"#).await;
    assert_eq!(data(&ok)["presence"], json!({"ids":["alice"],"hash":{"alice":{"name":"Alice"}},"count":1}));

    let mut b1 = s.client().await;
    let ok = b1.subscribe_presence("presence-room", r#"{"user_id":10,"user_info":{"name":"Bob"}}"#).await;
    let p = &data(&ok)["presence"];
    assert_eq!(p["count"], 2);
    assert_eq!(p["hash"]["10"], json!({"name":"Bob"}));
    assert!(p["ids"].as_array().unwrap().contains(&json!(10)), "numeric ids keep their JSON type");
    let added = a.recv().await;
    assert_eq!(added["event"], "pusher_internal:member_added");
    assert_eq!(data(&added), json!({"user_id":10,"user_info":{"name":"Bob"}}));

    // Bob's second socket: no member_added for anyone, the count stays 2.
    let mut b2 = s.client().await;
    let ok = b2.subscribe_presence("presence-room", r#"{"user_id":10,"user_info":{"name":"Bob"}}"#).await;
    assert_eq!(data(&ok)["presence"]["count"], 2);
    a.expect_silence().await;
    b1.expect_silence().await;

    let (_, users) = s.http().get("/channels/presence-room/users", &[]).await;
    let mut ids: Vec<String> =
        users["users"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    assert_eq!(ids, vec!["10", "alice"]);

    // Bob leaves one socket: nothing. Leaves the last (by disconnecting): member_removed.
    b1.send(json!({"event":"pusher:unsubscribe","data":{"channel":"presence-room"}})).await;
    a.expect_silence().await;
    drop(b2);
    let removed = a.recv().await;
    assert_eq!(removed["event"], "pusher_internal:member_removed");
    assert_eq!(data(&removed), json!({"user_id":10}));
    s.stop().await;
}

#[tokio::test]
async fn presence_refusals() {
    let s = TestServer::start(|c| {
        c.apps[0].max_presence_members = 1;
        c.apps[0].max_presence_user_info_bytes = 20;
    })
    .await;
    let mut a = s.client().await;
    a.subscribe_presence("presence-full", r#"{"user_id":"a"}"#).await;
    let mut b = s.client().await;
    let cd = r#"{"user_id":"b"}"#;
    let auth = common::auth_presence(&b.socket_id, "presence-full", cd);
    b.send(json!({"event":"pusher:subscribe","data":{"auth":auth,"channel":"presence-full","channel_data":cd}})).await;
    let ev = b.recv().await;
    assert_eq!((ev["event"].as_str(), ev["data"]["status"].as_u64()), (Some("pusher:subscription_error"), Some(403)));
    b.recv().await;
    // Same user on a second socket still fits.
    let mut a2 = s.client().await;
    a2.subscribe_presence("presence-full", r#"{"user_id":"a"}"#).await;

    for (cd, status) in [
        (r#"{"user_info":{}}"#, 403),
        (r#"{"user_id":null}"#, 403),
        (r#"{"user_id":"x","user_info":{"bio":"far too long for the limit"}}"#, 403),
        ("not json", 400),
    ] {
        let auth = common::auth_presence(&b.socket_id, "presence-other", cd);
        b.send(json!({"event":"pusher:subscribe","data":{"auth":auth,"channel":"presence-other","channel_data":cd}}))
            .await;
        let ev = b.recv().await;
        assert_eq!(ev["event"], "pusher:subscription_error", "{cd}");
        assert_eq!(ev["data"]["status"], status, "{cd}");
        b.recv().await;
    }
    // Without channel_data and not signed in: refused.
    let auth = auth_private(&b.socket_id, "presence-other");
    b.send(json!({"event":"pusher:subscribe","data":{"auth":auth,"channel":"presence-other"}})).await;
    assert_eq!(b.recv().await["event"], "pusher:subscription_error");
    s.stop().await;
}

#[tokio::test]
async fn cache_channels_replay_the_last_event_or_report_a_miss() {
    let s = TestServer::default().await;
    let mut c = s.client().await;
    assert_eq!(c.subscribe("cache-prices").await["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(c.recv().await, json!({"event":"pusher:cache_miss","channel":"cache-prices"}));
    s.http().trigger("cache-prices", "price", "1").await;
    s.http().trigger("cache-prices", "price", "2").await;
    let mut late = s.client().await;
    late.subscribe("cache-prices").await;
    assert_eq!(late.recv().await, json!({"event":"price","channel":"cache-prices","data":"2"}));
    let (status, body) = s.http().get("/channels/cache-prices", &[("info", "cache,subscription_count")]).await;
    assert_eq!(status, 200);
    assert_eq!(body["cache"]["event"], "price");
    assert_eq!(body["cache"]["data"], "2");
    assert_eq!(body["subscription_count"], 2);
    // Private and presence cache variants work the same way.
    let mut p = s.client().await;
    p.subscribe_private("private-cache-x").await;
    assert_eq!(p.recv().await["event"], "pusher:cache_miss");
    s.stop().await;
}

#[tokio::test]
async fn cache_entries_expire() {
    let s = TestServer::start(|c| c.apps[0].cache_ttl_seconds = 1).await;
    s.http().trigger("cache-x", "e", "1").await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let mut c = s.client().await;
    c.subscribe("cache-x").await;
    assert_eq!(c.recv().await["event"], "pusher:cache_miss");
    s.stop().await;
}

#[tokio::test]
async fn subscription_count_events_when_enabled() {
    let s = TestServer::start(|c| c.apps[0].subscription_count = true).await;
    let mut a = s.client().await;
    a.subscribe("room").await;
    assert_eq!(data(&a.recv_event("pusher_internal:subscription_count").await), json!({"subscription_count":1}));
    let mut b = s.client().await;
    b.subscribe("room").await;
    assert_eq!(data(&a.recv().await)["subscription_count"], 2);
    drop(b);
    assert_eq!(data(&a.recv().await)["subscription_count"], 1);
    s.stop().await;
}
