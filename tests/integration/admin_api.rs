//! The admin API (`/admin/apps`) of the real binary against the machine's PostgreSQL and MariaDB
//! (each test makes its own database and drops it): an app created over HTTP connects and publishes
//! at once; reads, changes, disabling, a new secret and deletion answer as documented in
//! `openapi/admin.yaml`; the token is required; the API is off without one, and on its own port
//! when `admin_port` is set.

use crate::common::{Client, Rest};
use crate::db_support::{Db, TestDb};
use crate::process_support::SinewProcess;
use serde_json::{Value, json};
use std::net::SocketAddr;

const TOKEN: &str = "admin-test-token";

/// Calls `method path` at `addr` with `token` (none when empty) and `body` (none when empty):
/// the status, the `WWW-Authenticate` header and the JSON body (`Null` when there is none).
async fn call(addr: SocketAddr, token: &str, method: &str, path: &str, body: &str) -> (u16, String, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = reqwest::Client::new().request(m, format!("http://{addr}{path}"));
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    if !body.is_empty() {
        req = req.header("content-type", "application/json").body(body.to_string());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let challenge = res.headers().get("www-authenticate").map_or(String::new(), |v| v.to_str().unwrap().into());
    let text = res.text().await.unwrap();
    (status, challenge, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A database with Sinew's table, and a node serving it with the admin API on the main port.
async fn store_and_node(db: Db, extra: &[(&str, &str)]) -> (TestDb, SinewProcess) {
    let t = TestDb::create(db).await;
    t.cli(&["db", "migrate"]);
    let url = t.url();
    let mut env = vec![("SINEW_APP_STORE", t.store()), ("SINEW_DATABASE_URL", url.as_str())];
    env.extend_from_slice(extra);
    let node = SinewProcess::spawn(&env).await;
    (t, node)
}

/// Create, use, read, change, disable, rotate and delete an app over the admin API.
async fn the_admin_api_manages_apps(db: Db) {
    let (t, node) = store_and_node(db, &[("SINEW_ADMIN_TOKEN", TOKEN)]).await;
    let addr = node.addr;
    let admin =
        move |method: &'static str, path: &'static str, body: &'static str| call(addr, TOKEN, method, path, body);

    // Without the token, or with another: 401 and a Bearer challenge, whatever the route.
    for token in ["", "admin-test-token-not"] {
        for (method, path) in [("GET", "/admin/apps"), ("POST", "/admin/apps"), ("DELETE", "/admin/apps/x")] {
            let (status, challenge, body) = call(node.addr, token, method, path, "{}").await;
            assert_eq!((status, challenge.as_str()), (401, "Bearer"), "{method} {path} with {token:?}: {body}");
            assert!(body["error"].is_string(), "{body}");
        }
    }

    let (status, _, app) = admin("POST", "/admin/apps", r#"{"id":"shop","key":"shop-key","client_events":true}"#).await;
    assert_eq!(status, 201, "{app}");
    assert_eq!(
        (app["id"].as_str(), app["key"].as_str(), app["client_events"].as_bool()),
        (Some("shop"), Some("shop-key"), Some(true))
    );
    let secret = app["secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 32);
    // Served at once: a client connects and a REST call signed with the new secret reaches it.
    let mut c = Client::connect(node.addr, "shop-key").await;
    assert_eq!(c.recv().await["event"], "pusher:connection_established");
    c.subscribe("orders").await;
    let rest = Rest { base: format!("http://{}", node.addr), app_id: "shop".into(), key: "shop-key".into(), secret };
    assert_eq!(rest.trigger("orders", "paid", "1").await.0, 200);
    assert_eq!(c.recv().await, json!({"event":"paid","channel":"orders","data":"1"}));

    // Reads.
    let (status, _, list) = admin("GET", "/admin/apps", "").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["apps"].as_array().map(|a| a.iter().filter(|a| a["id"] == "shop").count()), Some(1), "{list}");
    let (status, _, one) = admin("GET", "/admin/apps/shop", "").await;
    assert_eq!((status, one["secret"].as_str()), (200, Some(rest.secret.as_str())), "{one}");
    assert_eq!(admin("GET", "/admin/apps/nobody", "").await.0, 404);

    // Changes, by PATCH and by PUT (the same: settings laid over the app's).
    let (status, _, changed) = admin("PATCH", "/admin/apps/shop", r#"{"max_connections":10}"#).await;
    assert_eq!(
        (status, changed["max_connections"].as_u64(), changed["client_events"].as_bool()),
        (200, Some(10), Some(true)),
        "{changed}"
    );
    let (status, _, changed) = admin("PUT", "/admin/apps/shop", r#"{"subscription_count":true}"#).await;
    assert_eq!((status, changed["max_connections"].as_u64()), (200, Some(10)), "{changed}");
    assert_eq!(admin("GET", "/admin/apps/shop", "").await.2["subscription_count"], true);
    assert_eq!(admin("PATCH", "/admin/apps/nobody", "{}").await.0, 404);

    // Refused bodies: 400; a taken id or key: 409.
    for body in ["not json", "[1]", r#"{"max_batch_size":0}"#, r#"{"nope":1}"#, r#"{"secret":"mine"}"#] {
        let (status, _, res) = admin("POST", "/admin/apps", body).await;
        assert_eq!(status, 400, "{body}: {res}");
        assert!(res["error"].is_string(), "{res}");
    }
    assert_eq!(admin("PATCH", "/admin/apps/shop", r#"{"id":"other"}"#).await.0, 400);
    let (status, _, res) = admin("POST", "/admin/apps", r#"{"id":"shop"}"#).await;
    assert_eq!(status, 409, "{res}");
    assert_eq!(admin("POST", "/admin/apps", r#"{"key":"shop-key"}"#).await.0, 409);

    // Disable and enable, then a new secret.
    let (status, _, off) = admin("POST", "/admin/apps/shop/disable", "").await;
    assert_eq!((status, off["enabled"].as_bool()), (200, Some(false)), "{off}");
    let (status, _, on) = admin("POST", "/admin/apps/shop/enable", "").await;
    assert_eq!((status, on["enabled"].as_bool()), (200, Some(true)), "{on}");
    let (status, _, rotated) = admin("POST", "/admin/apps/shop/rotate", "").await;
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_eq!((status, new_secret.len()), (200, 32), "{rotated}");
    assert_ne!(new_secret, rest.secret);
    assert_eq!(admin("GET", "/admin/apps/shop", "").await.2["secret"], new_secret.as_str());
    assert_eq!(admin("POST", "/admin/apps/nobody/rotate", "").await.0, 404);

    // A node started now signs with the new secret only.
    let url = t.url();
    let fresh = SinewProcess::spawn(&[("SINEW_APP_STORE", t.store()), ("SINEW_DATABASE_URL", url.as_str())]).await;
    let signed = |secret: &str| Rest {
        base: format!("http://{}", fresh.addr),
        app_id: "shop".into(),
        key: "shop-key".into(),
        secret: secret.into(),
    };
    assert_eq!(signed(&new_secret).trigger("orders", "paid", "2").await.0, 200);
    assert_eq!(signed(&rest.secret).trigger("orders", "paid", "3").await.0, 401);
    drop(fresh);

    // Deleted: 204, then 404.
    let (status, _, body) = admin("DELETE", "/admin/apps/shop", "").await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(admin("GET", "/admin/apps/shop", "").await.0, 404);
    assert_eq!(admin("DELETE", "/admin/apps/shop", "").await.0, 404);
    // An unknown path under /admin is the plain 404.
    assert_eq!(admin("GET", "/admin/nothing", "").await.0, 404);
    drop(node);
    t.drop_db().await;
}

#[tokio::test]
async fn postgres_admin_api_manages_apps() {
    the_admin_api_manages_apps(Db::Postgres).await;
}

#[tokio::test]
async fn mariadb_admin_api_manages_apps() {
    the_admin_api_manages_apps(Db::MariaDb).await;
}

/// With `admin_port`, the admin API is on its own port and not on the main one.
#[tokio::test]
async fn postgres_admin_api_on_its_own_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let (t, node) = store_and_node(Db::Postgres, &[("SINEW_ADMIN_TOKEN", TOKEN), ("SINEW_ADMIN_PORT", &port)]).await;
    let admin: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (status, _, created) = call(admin, TOKEN, "POST", "/admin/apps", r#"{"id":"7","key":"seven"}"#).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(call(admin, "", "GET", "/admin/apps", "").await.0, 401);
    // Bodies are bounded by max_request_bytes there too.
    let big = format!(r#"{{"key":"{}"}}"#, "k".repeat(1_100_000));
    let (status, _, res) = call(admin, TOKEN, "POST", "/admin/apps", &big).await;
    assert_eq!(status, 413, "{res}");
    let (status, _, list) = call(admin, TOKEN, "GET", "/admin/apps", "").await;
    assert_eq!((status, list["apps"][0]["id"].as_str()), (200, Some("7")), "{list}");
    // Only the admin API there; no admin API on the main port, which serves the new app.
    assert_eq!(call(admin, TOKEN, "GET", "/up", "").await.0, 404);
    assert_eq!(call(node.addr, TOKEN, "GET", "/admin/apps", "").await.0, 404);
    assert_eq!(call(node.addr, TOKEN, "POST", "/admin/apps", "{}").await.0, 404);
    let mut c = Client::connect(node.addr, "seven").await;
    assert_eq!(c.recv().await["event"], "pusher:connection_established");
    drop(node);
    t.drop_db().await;
}

/// Without `admin_token` nothing is served under `/admin`.
#[tokio::test]
async fn postgres_admin_api_is_off_without_a_token() {
    let (t, node) = store_and_node(Db::Postgres, &[]).await;
    for (method, path) in [("GET", "/admin/apps"), ("POST", "/admin/apps"), ("GET", "/admin/apps/1")] {
        let (status, challenge, body) = call(node.addr, TOKEN, method, path, "{}").await;
        assert_eq!(
            (status, challenge.as_str(), body["error"].as_str()),
            (404, "", Some("Not found")),
            "{method} {path}"
        );
    }
    drop(node);
    t.drop_db().await;
}

/// A database that cannot be reached: reads and changes answer 503 (the config file's app is
/// served meanwhile).
#[tokio::test]
async fn postgres_admin_api_says_when_the_store_is_down() {
    let cfg = "[[apps]]\nid = \"cfg\"\nkey = \"cfg-key\"\nsecret = \"cfg-secret\"\n";
    let file = std::env::temp_dir().join(format!("sinew-admin-down-{}.toml", rand::random::<u32>()));
    std::fs::write(&file, cfg).unwrap();
    let env = [
        ("SINEW_APP_STORE", "postgres"),
        ("SINEW_DATABASE_URL", "postgres://postgres@127.0.0.1:9/x"),
        ("SINEW_ADMIN_TOKEN", TOKEN),
    ];
    let node = SinewProcess::spawn_args(&["--config", file.to_str().unwrap()], &env).await;
    for (method, path, body) in
        [("GET", "/admin/apps", ""), ("POST", "/admin/apps", "{}"), ("GET", "/admin/apps/cfg", "")]
    {
        let (status, _, res) = call(node.addr, TOKEN, method, path, body).await;
        assert_eq!(status, 503, "{method} {path}: {res}");
        assert!(res["error"].as_str().is_some_and(|e| e.contains("unavailable")), "{res}");
    }
    drop(node);
    let _ = std::fs::remove_file(file);
}

/// An id or key of an app of the config file (which wins over the store's) is refused with 409:
/// an app made with it would never be served.
#[tokio::test]
async fn postgres_admin_api_refuses_the_config_files_ids_and_keys() {
    let t = TestDb::create(Db::Postgres).await;
    t.cli(&["db", "migrate"]);
    let cfg = "[[apps]]\nid = \"cfg\"\nkey = \"cfg-key\"\nsecret = \"cfg-secret\"\n";
    let file = std::env::temp_dir().join(format!("sinew-admin-cfg-{}.toml", rand::random::<u32>()));
    std::fs::write(&file, cfg).unwrap();
    let url = t.url();
    let env = [("SINEW_APP_STORE", "postgres"), ("SINEW_DATABASE_URL", url.as_str()), ("SINEW_ADMIN_TOKEN", TOKEN)];
    let node = SinewProcess::spawn_args(&["--config", file.to_str().unwrap()], &env).await;
    for body in [r#"{"id":"cfg"}"#, r#"{"key":"cfg-key"}"#] {
        let (status, _, res) = call(node.addr, TOKEN, "POST", "/admin/apps", body).await;
        assert_eq!(status, 409, "{body}: {res}");
        assert!(res["error"].as_str().is_some_and(|e| e.contains("config file")), "{res}");
    }
    let (status, _, _) = call(node.addr, TOKEN, "POST", "/admin/apps", r#"{"id":"own","key":"own-key"}"#).await;
    assert_eq!(status, 201);
    let (status, _, res) = call(node.addr, TOKEN, "PATCH", "/admin/apps/own", r#"{"key":"cfg-key"}"#).await;
    assert_eq!(status, 409, "{res}");
    drop(node);
    let _ = std::fs::remove_file(file);
    t.drop_db().await;
}
