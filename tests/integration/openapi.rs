//! The OpenAPI documents and the router describe the same routes, and every documented route is
//! served by the running server: `openapi/openapi.yaml` for the public port, `openapi/admin.yaml`
//! for the admin API.

use crate::common::TestServer;
use std::collections::BTreeSet;

/// `/apps/{app_id}/x` -> `/apps/{}/x`, so parameter names do not matter.
fn shape(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

fn documented() -> BTreeSet<(String, String)> {
    documented_in("openapi.yaml")
}

/// The `(METHOD, shape)` of every operation of `openapi/{file}`.
fn documented_in(file: &str) -> BTreeSet<(String, String)> {
    let path = format!("{}/openapi/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true));
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        for (method, _) in item.as_mapping().unwrap() {
            let m = method.as_str().unwrap();
            if ["get", "post", "put", "delete", "patch", "options", "head"].contains(&m) {
                out.insert((m.to_uppercase(), shape(path.as_str().unwrap())));
            }
        }
    }
    out
}

fn routed() -> BTreeSet<(String, String)> {
    let mut out: BTreeSet<_> = sinew::api::ROUTES.iter().map(|r| (r.method.to_string(), shape(r.path))).collect();
    out.extend(sinew::ops::ROUTES.iter().map(|(m, p)| (m.to_string(), shape(p))));
    out.extend(sinew::debug_console::ROUTES.iter().map(|(m, p)| (m.to_string(), shape(p))));
    out.extend(sinew::transport::http::ROUTES.iter().map(|(m, p)| (m.to_string(), shape(p))));
    out.insert(("GET".into(), shape(sinew::transport::ws::ROUTE)));
    out
}

#[test]
fn document_and_router_list_the_same_routes() {
    let (doc, router) = (documented(), routed());
    let missing_in_doc: Vec<_> = router.difference(&doc).collect();
    let missing_in_router: Vec<_> = doc.difference(&router).collect();
    assert!(missing_in_doc.is_empty(), "routed but not documented: {missing_in_doc:?}");
    assert!(missing_in_router.is_empty(), "documented but not routed: {missing_in_router:?}");
}

#[test]
fn admin_document_and_router_list_the_same_routes() {
    let doc = documented_in("admin.yaml");
    let router: BTreeSet<_> = sinew::admin_api::ROUTES.iter().map(|(m, p)| (m.to_string(), shape(p))).collect();
    assert_eq!(doc, router);
    // The two documents share no route.
    assert!(doc.is_disjoint(&documented()));
}

/// Every admin route answers with the token (the config store: reads 200 or 404, changes 409) and
/// 401 without it; none falls through to the 404 fallback.
#[tokio::test]
async fn every_documented_admin_route_is_served() {
    let s = TestServer::start(|c| c.admin_token = "admin-token".into()).await;
    let client = reqwest::Client::new();
    for (method, path) in documented_in("admin.yaml") {
        let url = format!("http://{}{}", s.addr, path.replace("{}", "1"));
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let res = client.request(m.clone(), &url).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401, "{method} {path} without the token");
        let res = client.request(m, &url).bearer_auth("admin-token").body("{}").send().await.unwrap();
        let status = res.status().as_u16();
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        let expected = if method == "GET" { 200 } else { 409 };
        assert_eq!(status, expected, "{method} {path}: {body}");
    }
    s.stop().await;
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let s = TestServer::start(|c| c.debug_console_token = "console-token".into()).await;
    let http = s.http();
    for (method, path) in documented() {
        let concrete = path.replacen("{}", "1", 1).replace("{}", "presence-x");
        if path.starts_with("/pusher/") {
            // HTTP fallback: preflights answer 204, receivers 200 (a refusal frame for key "1"),
            // xhr_send 404 for a session that does not exist.
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let res = reqwest::Client::new().request(m, format!("{}{concrete}", http.base)).send().await.unwrap();
            let expected: u16 = match (method.as_str(), path.ends_with("xhr_send")) {
                ("OPTIONS", _) => 204,
                (_, true) => 404,
                _ => 200,
            };
            assert_eq!(res.status().as_u16(), expected, "{method} {path}");
            assert!(res.headers().contains_key("access-control-allow-origin"), "{method} {path}");
            continue;
        }
        let (status, body) = http.raw(&method, &concrete, "").await;
        // Unsigned REST calls are refused by the signature check, never by the router's fallback.
        assert_ne!(body["error"], "Not found", "{method} {path} fell through to the 404 fallback");
        assert!(matches!(status, 200 | 204 | 400 | 401 | 404), "{method} {path}: {status}");
    }
    s.stop().await;
}

/// The debug console's publish form checks the token before it reads the body: without the token
/// every body gets the same 401; with it, a body that is not the form's JSON is a JSON 400.
#[tokio::test]
async fn debug_publish_checks_the_token_first_and_answers_bad_bodies_in_json() {
    let s = TestServer::start(|c| c.debug_console_token = "console-token".into()).await;
    let http = s.http();
    for body in ["", "not json", r#"{"app_id":"1","channel":"c","event":"e","data":"d"}"#] {
        let (status, res) = http.raw("POST", "/debug/publish?token=wrong", body).await;
        assert_eq!(status, 401, "{body:?}: {res}");
    }
    let (status, res) = http.raw("POST", "/debug/publish?token=console-token", "not json").await;
    assert_eq!(status, 400, "{res}");
    assert!(res["error"].as_str().is_some_and(|e| e.starts_with("expected a JSON object")), "{res}");
    let form = r#"{"app_id":"1","channel":"c","event":"e","data":"d"}"#;
    let (status, res) = http.raw("POST", "/debug/publish?token=console-token", form).await;
    assert_eq!((status, res["delivered"].as_u64()), (200, Some(0)), "{res}");
    s.stop().await;
}
