//! The token-based auth endpoints: CORS, cookie tokens, the rate limit, user-auth output.
//! Tokens are assembled by hand here (HS256 over base64url JSON), independent of Sinew's verifier.

use crate::common;

use crate::common::TestServer;
use base64::Engine;
use serde_json::{Value, json};
use sinew::protocol::signature;

const JWT_SECRET: &str = "token-secret";

fn hs256(claims: Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let head = b64(&json!({"alg":"HS256","typ":"JWT"}));
    let body = b64(&claims);
    let input = format!("{head}.{body}");
    let sig = hex::decode(signature::sign(JWT_SECRET, input.as_bytes())).unwrap();
    format!("{input}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig))
}

fn claims(channels: &[&str]) -> Value {
    json!({"sub":"u1","channels":channels,"user_info":{"n":1},"exp": common::now() + 300})
}

async fn server() -> TestServer {
    TestServer::start(|c| {
        c.apps[0].jwt_secret = JWT_SECRET.into();
        c.apps[0].jwt_cookie = "session".into();
        c.apps[0].allowed_origins = vec!["https://app.example.com".into()];
        c.apps[0].auth_rate_limit_per_second = 5;
    })
    .await
}

async fn post(s: &TestServer, path: &str, headers: &[(&str, String)], form: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().post(format!("http://{}{}", s.addr, path));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    req.header("content-type", "application/x-www-form-urlencoded").body(body).send().await.unwrap()
}

#[tokio::test]
async fn cors_preflight_and_origin_checks() {
    let s = server().await;
    let client = reqwest::Client::new();
    let res = client
        .request(reqwest::Method::OPTIONS, format!("http://{}/apps/1/auth", s.addr))
        .header("origin", "https://app.example.com")
        .header("access-control-request-headers", "authorization,content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(res.headers()["access-control-allow-headers"], "authorization,content-type");
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    let res = client
        .request(reqwest::Method::OPTIONS, format!("http://{}/apps/1/auth", s.addr))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("access-control-allow-origin").is_none());

    let c = s.client().await;
    let token = hs256(claims(&["private-*"]));
    let form = [("socket_id", c.socket_id.as_str()), ("channel_name", "private-a")];
    let ok = post(
        &s,
        "/apps/1/auth",
        &[("authorization", format!("Bearer {token}")), ("origin", "https://app.example.com".into())],
        &form,
    )
    .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example.com");
    let evil = post(
        &s,
        "/apps/1/auth",
        &[("authorization", format!("Bearer {token}")), ("origin", "https://evil.example.com".into())],
        &form,
    )
    .await;
    assert_eq!(evil.status(), 403);
    s.stop().await;
}

#[tokio::test]
async fn token_from_cookie_and_signatures_the_server_accepts() {
    let s = server().await;
    let mut c = s.client().await;
    let token = hs256(claims(&["presence-room"]));
    let res = post(
        &s,
        "/apps/1/auth",
        &[("cookie", format!("other=1; session={token}"))],
        &[("socket_id", &c.socket_id), ("channel_name", "presence-room")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["channel_data"], r#"{"user_id":"u1","user_info":{"n":1}}"#);
    // The answer is exactly what the socket needs to join.
    c.send(json!({"event":"pusher:subscribe","data":{"channel":"presence-room","auth":body["auth"],"channel_data":body["channel_data"]}})).await;
    assert_eq!(c.recv().await["event"], "pusher_internal:subscription_succeeded");

    let res =
        post(&s, "/apps/1/user-auth", &[("authorization", format!("Bearer {token}"))], &[("socket_id", &c.socket_id)])
            .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user_data"], r#"{"id":"u1","user_info":{"n":1}}"#);
    c.send(json!({"event":"pusher:signin","data":{"auth":body["auth"],"user_data":body["user_data"]}})).await;
    assert_eq!(c.recv().await["event"], "pusher:signin_success");

    let missing =
        post(&s, "/apps/1/auth", &[], &[("socket_id", &c.socket_id), ("channel_name", "presence-room")]).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.json::<Value>().await.unwrap(), json!({"error":"missing token"}));
    s.stop().await;
}

#[tokio::test]
async fn rate_limited_per_app_and_disabled_without_keys() {
    let s = server().await;
    let c = s.client().await;
    let token = hs256(claims(&["private-*"]));
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let r = post(
            &s,
            "/apps/1/auth",
            &[("authorization", format!("Bearer {token}"))],
            &[("socket_id", &c.socket_id), ("channel_name", "private-a")],
        )
        .await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 2, "{statuses:?}");
    s.stop().await;

    let plain = TestServer::default().await;
    let c = plain.client().await;
    let r = post(
        &plain,
        "/apps/1/auth",
        &[("authorization", format!("Bearer {token}"))],
        &[("socket_id", &c.socket_id), ("channel_name", "private-a")],
    )
    .await;
    assert_eq!(r.status(), 404);
    plain.stop().await;
}

#[tokio::test]
async fn wildcard_origins_never_get_the_cookie_token() {
    let s = TestServer::start(|c| {
        c.apps[0].jwt_secret = JWT_SECRET.into();
        c.apps[0].jwt_cookie = "session".into();
        c.apps[0].allowed_origins = vec!["*".into()];
    })
    .await;
    let c = s.client().await;
    let token = hs256(claims(&["private-*"]));
    let form = [("socket_id", c.socket_id.as_str()), ("channel_name", "private-a")];
    let res = post(
        &s,
        "/apps/1/user-auth",
        &[("cookie", format!("session={token}")), ("origin", "https://evil.example".into())],
        &form,
    )
    .await;
    assert_eq!(res.status(), 401, "a cross-site page cannot use the visitor's cookie");
    assert!(res.headers().get("access-control-allow-credentials").is_none());
    // A bearer token the page holds itself is fine from any origin.
    let res = post(
        &s,
        "/apps/1/auth",
        &[("authorization", format!("Bearer {token}")), ("origin", "https://evil.example".into())],
        &form,
    )
    .await;
    assert_eq!(res.status(), 200);
    // Same-origin pages may use the cookie.
    let own = format!("http://{}", s.addr);
    let res = post(&s, "/apps/1/auth", &[("cookie", format!("session={token}")), ("origin", own)], &form).await;
    assert_eq!(res.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn configured_issuer_and_audience_are_required() {
    let s = TestServer::start(|c| {
        c.apps[0].jwt_secret = JWT_SECRET.into();
        c.apps[0].jwt_issuer = "https://id.example".into();
        c.apps[0].jwt_audience = "sinew".into();
    })
    .await;
    let c = s.client().await;
    let form = [("socket_id", c.socket_id.as_str()), ("channel_name", "private-a")];
    let base = || json!({"sub":"u1","channels":["private-*"],"exp": common::now() + 300});
    let mut full = base();
    full["iss"] = json!("https://id.example");
    full["aud"] = json!("sinew");
    let mut no_iss = full.clone();
    no_iss.as_object_mut().unwrap().remove("iss");
    let mut no_aud = full.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    let mut numeric = full.clone();
    numeric["iss"] = json!(123);
    for (what, claims, status) in
        [("full", full, 200), ("no iss", no_iss, 401), ("no aud", no_aud, 401), ("numeric iss", numeric, 401)]
    {
        let r = post(&s, "/apps/1/auth", &[("authorization", format!("Bearer {}", hs256(claims)))], &form).await;
        assert_eq!(r.status(), status, "{what}");
    }
    s.stop().await;
}

/// Without a valid token, a live socket and a dead one get the same answer: nobody can probe which
/// sockets are live. With a token, a dead socket is refused (403).
#[tokio::test]
async fn no_answer_reveals_live_sockets_before_the_token_is_verified() {
    let s = server().await;
    let c = s.client().await;
    let dead = "999999.999999".to_string();
    let mut answers = Vec::new();
    for socket_id in [&c.socket_id, &dead] {
        for headers in [vec![], vec![("authorization", "Bearer not-a-token".to_string())]] {
            let res =
                post(&s, "/apps/1/auth", &headers, &[("socket_id", socket_id), ("channel_name", "private-a")]).await;
            answers.push((headers.len(), res.status().as_u16(), res.text().await.unwrap_or_default()));
        }
    }
    assert_eq!(answers[0], answers[2], "no token: live and dead sockets answered alike");
    assert_eq!(answers[1], answers[3], "a bad token: live and dead sockets answered alike");
    assert_eq!((answers[0].1, answers[1].1), (401, 401));
    let token = hs256(claims(&["private-a"]));
    let res = post(
        &s,
        "/apps/1/auth",
        &[("authorization", format!("Bearer {token}"))],
        &[("socket_id", &dead), ("channel_name", "private-a")],
    )
    .await;
    assert_eq!(res.status(), 403);
    s.stop().await;
}
