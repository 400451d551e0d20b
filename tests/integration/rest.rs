//! The signed REST API: every endpoint, signature failures and limits.

use crate::common;

use crate::common::{TestServer, now};
use serde_json::json;
use sinew::protocol::signature;

#[tokio::test]
async fn trigger_to_many_channels_with_socket_exclusion_and_info() {
    let s = TestServer::default().await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe("c1").await;
    b.subscribe("c1").await;
    b.subscribe("c2").await;
    let mut p = s.client().await;
    p.subscribe_presence("presence-p", r#"{"user_id":"u"}"#).await;
    let (status, body) = s
        .http()
        .post(
            "/events",
            json!({"name":"e","data":"d","channels":["c1","c2","presence-p","c1"],"socket_id":a.socket_id,"info":"subscription_count,user_count"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"channels":{"c1":{"subscription_count":2},"c2":{"subscription_count":1},"presence-p":{"subscription_count":1,"user_count":1}}})
    );
    a.expect_silence().await;
    assert_eq!(b.recv().await["channel"], "c1");
    assert_eq!(b.recv().await["channel"], "c2");
    b.expect_silence().await;
    assert_eq!(p.recv().await["channel"], "presence-p");
    s.stop().await;
}

#[tokio::test]
async fn data_may_be_empty_or_an_object() {
    let s = TestServer::default().await;
    let mut c = s.client().await;
    c.subscribe("c").await;
    assert_eq!(s.http().trigger("c", "e", "").await.0, 200);
    assert_eq!(c.recv().await["data"], "");
    assert_eq!(s.http().post("/events", json!({"name":"e","channel":"c","data":{"a":1}})).await.0, 200);
    assert_eq!(c.recv().await["data"], "{\"a\":1}");
    s.stop().await;
}

#[tokio::test]
async fn batch_events_in_order_with_info() {
    let s = TestServer::default().await;
    let mut c = s.client().await;
    c.subscribe("b").await;
    let (status, body) = s
        .http()
        .post(
            "/batch_events",
            json!({"batch":[{"name":"one","channel":"b","data":"1"},{"name":"two","channel":"b","data":"2"}]}),
        )
        .await;
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(c.recv().await["event"], "one");
    assert_eq!(c.recv().await["event"], "two");
    let (status, body) = s
        .http()
        .post(
            "/batch_events",
            json!({"batch":[{"name":"x","channel":"b","data":"1","info":"subscription_count"},{"name":"y","channel":"none","data":"2"}]}),
        )
        .await;
    assert_eq!((status, body), (200, json!({"batch":[{"subscription_count":1},{}]})));
    let eleven: Vec<_> = (0..11).map(|i| json!({"name":"e","channel":"b","data":i.to_string()})).collect();
    assert_eq!(s.http().post("/batch_events", json!({ "batch": eleven })).await.0, 400);
    assert_eq!(c.recv().await["event"], "x");
    // One bad event refuses the whole batch: nothing is delivered.
    let bad = json!({"batch":[{"name":"ok","channel":"b","data":"1"},{"name":"bad","channel":"b c","data":"2"}]});
    assert_eq!(s.http().post("/batch_events", bad).await.0, 400);
    c.expect_silence().await;
    s.stop().await;
}

#[tokio::test]
async fn channel_queries() {
    let s = TestServer::default().await;
    let mut a = s.client().await;
    a.subscribe("news").await;
    a.subscribe_presence("presence-r", r#"{"user_id":"1"}"#).await;
    let mut b = s.client().await;
    b.subscribe_presence("presence-r", r#"{"user_id":"2"}"#).await;

    let (status, body) = s.http().get("/channels", &[]).await;
    assert_eq!((status, body), (200, json!({"channels":{"news":{},"presence-r":{}}})));
    let (_, body) = s.http().get("/channels", &[("filter_by_prefix", "presence-"), ("info", "user_count")]).await;
    assert_eq!(body, json!({"channels":{"presence-r":{"user_count":2}}}));
    assert_eq!(s.http().get("/channels", &[("info", "user_count")]).await.0, 400);

    let (_, body) = s.http().get("/channels/presence-r", &[("info", "user_count,subscription_count")]).await;
    assert_eq!(body, json!({"occupied":true,"user_count":2,"subscription_count":2}));
    let (_, body) = s.http().get("/channels/empty", &[]).await;
    assert_eq!(body, json!({"occupied":false}));
    assert_eq!(s.http().get("/channels/news", &[("info", "user_count")]).await.0, 400);
    assert_eq!(s.http().get("/channels/news/users", &[]).await.0, 400);
    assert_eq!(s.http().get("/channels/bad%20name", &[]).await.0, 400);
    let (_, body) = s.http().get("/channels/presence-r/users", &[]).await;
    assert_eq!(body["users"].as_array().unwrap().len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn signature_failures_are_401_and_unknown_apps_404() {
    let s = TestServer::default().await;
    let http = s.http();
    let body = json!({"name":"e","channel":"c","data":"d"}).to_string();
    let path = "/apps/1/events";

    let wrong_secret = common::Rest { secret: "nope".into(), ..s.http() };
    assert_eq!(wrong_secret.post("/events", json!({"name":"e","channel":"c","data":"d"})).await.0, 401);
    let wrong_key = common::Rest { key: "nope".into(), ..s.http() };
    assert_eq!(wrong_key.post("/events", json!({"name":"e","channel":"c","data":"d"})).await.0, 401);

    let stale = http.signed_query("POST", path, &[], &body, now() - 601);
    let (status, err) = http.raw("POST", &format!("{path}?{stale}"), &body).await;
    assert_eq!(status, 401);
    assert!(err["error"].as_str().unwrap().contains("Timestamp"), "{err}");
    let future = http.signed_query("POST", path, &[], &body, now() + 601);
    assert_eq!(http.raw("POST", &format!("{path}?{future}"), &body).await.0, 401);

    // A signed request replayed with another body fails the body_md5 check.
    let q = http.signed_query("POST", path, &[], &body, now());
    assert_eq!(http.raw("POST", &format!("{path}?{q}"), &body).await.0, 200);
    let other = json!({"name":"evil","channel":"c","data":"d"}).to_string();
    assert_eq!(http.raw("POST", &format!("{path}?{q}"), &other).await.0, 401);
    // Tampering with a signed parameter breaks the signature.
    let tampered = q.replace("auth_version=1.0", "auth_version=1.0&info=subscription_count");
    assert_eq!(http.raw("POST", &format!("{path}?{tampered}"), &body).await.0, 401);
    // Absurd timestamps are refused, never a crash.
    for ts in ["-9223372036854775808", "9223372036854775807", "x"] {
        let q = format!("auth_key=app-key&auth_timestamp={ts}&auth_version=1.0&auth_signature=00");
        assert_eq!(http.raw("GET", &format!("/apps/1/channels?{q}"), "").await.0, 401, "{ts}");
    }
    // No signature at all.
    assert_eq!(http.raw("POST", path, &body).await.0, 401);

    // GET with the MD5 of the empty body (as the Python SDK sends) is accepted; another MD5 is not.
    let md5 = signature::body_md5(b"");
    let q = http.signed_query("GET", "/apps/1/channels", &[("body_md5", &md5)], "", now());
    assert_eq!(http.raw("GET", &format!("/apps/1/channels?{q}"), "").await.0, 200);
    let q = http.signed_query("GET", "/apps/1/channels", &[("body_md5", "abc")], "", now());
    assert_eq!(http.raw("GET", &format!("/apps/1/channels?{q}"), "").await.0, 401);

    let unknown = common::Rest { app_id: "999".into(), ..s.http() };
    assert_eq!(unknown.post("/events", json!({"name":"e","channel":"c","data":"d"})).await.0, 404);
    s.stop().await;
}

#[tokio::test]
async fn disabled_app_is_403() {
    let s = TestServer::start(|c| c.apps[0].enabled = false).await;
    assert_eq!(s.http().trigger("c", "e", "d").await.0, 403);
    s.stop().await;
}

#[tokio::test]
async fn limits_and_bad_bodies() {
    let s = TestServer::default().await;
    let http = s.http();
    let (status, body) = http.trigger("c", "e", &"x".repeat(10 * 1024 + 1)).await;
    assert_eq!(status, 413);
    assert!(body["error"].is_string());
    assert_eq!(http.trigger("c", "e", &"x".repeat(10 * 1024)).await.0, 200);
    let many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    assert_eq!(http.post("/events", json!({"name":"e","data":"d","channels":many})).await.0, 400);
    let hundred: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
    assert_eq!(http.post("/events", json!({"name":"e","data":"d","channels":hundred})).await.0, 200);
    for bad in [
        json!({"data":"d","channel":"c"}),
        json!({"name":"e","channel":"c"}),
        json!({"name":"e","data":"d"}),
        json!({"name":"e","data":"d","channels":[]}),
        json!({"name":"e","data":"d","channel":"bad name"}),
        json!({"name":"e","data":"d","channel":"a".repeat(201)}),
        json!({"name":"e".repeat(201),"data":"d","channel":"c"}),
        json!({"name":"pusher:x","data":"d","channel":"c"}),
        json!({"name":"e","data":"d","channel":"c","socket_id":"abc"}),
        json!({"name":"e","data":"d","channel":"c","info":"bogus"}),
        json!({"name":"e","data":"d","channel":"#server-to-user-"}),
    ] {
        assert_eq!(http.post("/events", bad.clone()).await.0, 400, "{bad}");
    }
    assert_eq!(http.request("POST", "/events", &[], "{not json").await.0, 400);
    s.stop().await;
}
