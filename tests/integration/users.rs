//! User sign-in, server-to-user events, watchlist, terminate_connections.

use crate::common::{TestServer, auth_private, data};
use serde_json::json;

#[tokio::test]
async fn signin_then_server_to_user_delivery() {
    let s = TestServer::default().await;
    let mut c = s.client().await;
    let ud = r#"{"id":"u1","user_info":{"name":"U"}}"#;
    let ok = c.sign_in(ud).await;
    assert_eq!(ok["event"], "pusher:signin_success");
    assert_eq!(data(&ok)["user_data"], ud);
    assert_eq!(c.subscribe("#server-to-user-u1").await["event"], "pusher_internal:subscription_succeeded");
    let (status, _) = s.http().trigger("#server-to-user-u1", "note", "{\"n\":1}").await;
    assert_eq!(status, 200);
    assert_eq!(c.recv().await, json!({"event":"note","channel":"#server-to-user-u1","data":"{\"n\":1}"}));
    // Another user's channel is off limits.
    assert_eq!(c.subscribe("#server-to-user-u2").await["event"], "pusher:subscription_error");
    s.stop().await;
}

#[tokio::test]
async fn identity_provider_style_ids_work_end_to_end() {
    let s = TestServer::default().await;
    let mut c = s.client().await;
    c.sign_in(r#"{"id":"auth0|abc123"}"#).await;
    assert_eq!(c.subscribe("#server-to-user-auth0|abc123").await["event"], "pusher_internal:subscription_succeeded");
    let (status, _) = s.http().trigger("#server-to-user-auth0|abc123", "n", "1").await;
    assert_eq!(status, 200);
    assert_eq!(c.recv().await["event"], "n");
    let (status, _) = s.http().post("/users/auth0%7Cabc123/terminate_connections", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(c.expect_close().await, Some(4009));
    s.stop().await;
}

#[tokio::test]
async fn user_channel_needs_signin() {
    let s = TestServer::default().await;
    let mut c = s.client().await;
    let ev = c.subscribe("#server-to-user-u1").await;
    assert_eq!(ev["event"], "pusher:subscription_error");
    assert_eq!(ev["data"]["status"], 403);
    s.stop().await;
}

#[tokio::test]
async fn signed_in_user_joins_presence_without_channel_data() {
    let s = TestServer::default().await;
    let mut c = s.client().await;
    c.sign_in(r#"{"id":"u1","user_info":{"name":"U"}}"#).await;
    let auth = auth_private(&c.socket_id, "presence-room");
    c.send(json!({"event":"pusher:subscribe","data":{"auth":auth,"channel":"presence-room"}})).await;
    let ok = c.recv().await;
    assert_eq!(data(&ok)["presence"], json!({"ids":["u1"],"hash":{"u1":{"name":"U"}},"count":1}));
    s.stop().await;
}

#[tokio::test]
async fn bad_signin_closes_with_4009() {
    let s = TestServer::default().await;
    for (auth, ud) in [("app-key:0000", r#"{"id":"u1"}"#.to_string()), ("", r#"{"id":"u1"}"#.to_string())] {
        let mut c = s.client().await;
        c.send(json!({"event":"pusher:signin","data":{"auth":auth,"user_data":ud}})).await;
        assert_eq!(c.recv().await["data"]["code"], 4009);
        assert_eq!(c.expect_close().await, Some(4009));
    }
    for ud in [r#"{"id":""}"#, r#"{"id":5}"#, r#"{"name":"x"}"#, "nope"] {
        let mut c = s.client().await;
        let ev = c.sign_in(ud).await;
        assert_eq!(ev["data"]["code"], 4009, "{ud}");
        assert_eq!(c.expect_close().await, Some(4009), "{ud}");
    }
    s.stop().await;
}

#[tokio::test]
async fn terminate_connections_closes_only_that_users_sockets() {
    let s = TestServer::default().await;
    let mut u1a = s.client().await;
    let mut u1b = s.client().await;
    let mut u2 = s.client().await;
    let mut anon = s.client().await;
    u1a.sign_in(r#"{"id":"u1"}"#).await;
    u1b.sign_in(r#"{"id":"u1"}"#).await;
    u2.sign_in(r#"{"id":"u2"}"#).await;
    let (status, body) = s.http().post("/users/u1/terminate_connections", json!({})).await;
    assert_eq!((status, body), (200, json!({})));
    for c in [&mut u1a, &mut u1b] {
        assert_eq!(c.recv().await["data"]["code"], 4009);
        assert_eq!(c.expect_close().await, Some(4009));
    }
    for c in [&mut u2, &mut anon] {
        c.send(json!({"event":"pusher:ping","data":{}})).await;
        assert_eq!(c.recv().await["event"], "pusher:pong");
    }
    let (status, _) = s.http().post("/users/nobody/terminate_connections", json!({})).await;
    assert_eq!(status, 200);
    s.stop().await;
}

#[tokio::test]
async fn watchlist_reports_online_and_offline() {
    let s = TestServer::start(|c| c.apps[0].watchlist = true).await;
    let mut alice = s.client().await;
    alice.sign_in(r#"{"id":"alice","watchlist":["bob"]}"#).await;
    let ev = alice.recv().await;
    assert_eq!(ev["event"], "pusher_internal:watchlist_events");
    assert_eq!(data(&ev), json!({"events":[{"name":"offline","user_ids":["bob"]}]}));
    let mut bob = s.client().await;
    bob.sign_in(r#"{"id":"bob"}"#).await;
    assert_eq!(data(&alice.recv().await), json!({"events":[{"name":"online","user_ids":["bob"]}]}));
    drop(bob);
    assert_eq!(data(&alice.recv().await), json!({"events":[{"name":"offline","user_ids":["bob"]}]}));
    s.stop().await;
}

/// One rule for user ids wherever they appear: an id with whitespace is refused by sign-in (4009),
/// by a presence subscription (403, the socket stays open) and by terminate_connections (400), each
/// with the same reason.
#[tokio::test]
async fn one_user_id_rule_for_sign_in_presence_and_terminate() {
    let s = TestServer::default().await;
    let reason = "user id has whitespace or a control character";
    let mut c = s.client().await;
    let data = r#"{"user_id":"a b"}"#;
    let auth = crate::common::auth_presence(&c.socket_id, "presence-ids", data);
    c.send(json!({"event":"pusher:subscribe","data":{"auth":auth,"channel":"presence-ids","channel_data":data}})).await;
    let refused = c.recv_event("pusher:subscription_error").await;
    assert_eq!(refused["data"]["status"], 403, "{refused}");
    assert!(refused.to_string().contains(reason), "{refused}");
    let (status, body) = s.http().post("/users/a%20b/terminate_connections", json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains(reason), "{body}");
    let refused = c.sign_in(r#"{"id":"a b"}"#).await;
    assert!(refused.to_string().contains(reason), "{refused}");
    s.stop().await;
}
