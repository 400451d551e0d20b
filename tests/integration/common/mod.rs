//! Test harness: a Sinew server on port 0 in this process, a raw Pusher WebSocket client, and a
//! signed REST client. `certs`: a test CA and TLS client; `raw`: a raw-byte WebSocket client over
//! plain TCP or TLS.

pub mod certs;
pub mod raw;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sinew::config::Config;
use sinew::protocol::signature;
use sinew::server::Server;
use sinew::state::Context;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const KEY: &str = "app-key";
pub const SECRET: &str = "app-secret";
pub const APP_ID: &str = "1";
const WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub ctx: Context,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with the development app, adjusted by `tweak`.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config::load(None, Vec::new()).expect("default config");
        config.host = "127.0.0.1".into();
        config.port = 0;
        config.metrics_port = 0;
        tweak(&mut config);
        let server = Server::bind(Context::new(config)).await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let metrics_addr = server.metrics_addr();
        let ctx = server.context().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = server
                .run(async move {
                    let _ = rx.await;
                })
                .await;
        });
        TestServer { addr, metrics_addr, ctx, stop: Some(tx), task: Some(task) }
    }

    pub async fn default() -> TestServer {
        Self::start(|_| {}).await
    }

    /// Stops the server and waits for it to finish draining.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }

    pub async fn connect(&self) -> Client {
        Client::connect(self.addr, KEY).await
    }

    /// Connects and reads `connection_established`.
    pub async fn client(&self) -> Client {
        Client::established(self.addr).await
    }

    pub fn http(&self) -> Rest {
        Rest::at(self.addr)
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub socket_id: String,
}

/// What the next read produced.
#[derive(Debug)]
pub enum Next {
    Event(Value),
    Closed(Option<u16>),
    Nothing,
}

impl Client {
    pub async fn connect(addr: SocketAddr, key: &str) -> Client {
        Self::connect_path(addr, &format!("/app/{key}?protocol=7&client=js&version=8.6.0&flash=false")).await
    }

    /// Connects to the development app at `addr` and reads `connection_established`.
    pub async fn established(addr: SocketAddr) -> Client {
        let mut c = Self::connect(addr, KEY).await;
        let ev = c.recv().await;
        assert_eq!(ev["event"], "pusher:connection_established", "{ev}");
        let data: Value = serde_json::from_str(ev["data"].as_str().expect("string data")).expect("json");
        c.socket_id = data["socket_id"].as_str().expect("socket_id").to_string();
        c
    }

    pub async fn connect_path(addr: SocketAddr, path: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}")).await.expect("ws connect");
        Client { ws, socket_id: String::new() }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::Text(v.to_string().into())).await.expect("send");
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::Text(text.to_string().into())).await.expect("send");
    }

    /// The next protocol event or close, waiting at most `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Next {
        loop {
            match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) => return Next::Nothing,
                Ok(None) => return Next::Closed(None),
                Ok(Some(Err(_))) => return Next::Closed(None),
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Next::Event(serde_json::from_str(&t).expect("server sent JSON"));
                }
                Ok(Some(Ok(Message::Close(f)))) => return Next::Closed(f.map(|f| u16::from(f.code))),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next event; panics on close or timeout.
    pub async fn recv(&mut self) -> Value {
        match self.next_within(WAIT).await {
            Next::Event(v) => v,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// Reads events until one named `name` arrives (panics after the timeout).
    pub async fn recv_event(&mut self, name: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["event"] == name {
                return v;
            }
        }
    }

    /// Asserts nothing arrives for a short while.
    pub async fn expect_silence(&mut self) {
        match self.next_within(Duration::from_millis(300)).await {
            Next::Nothing => {}
            other => panic!("expected silence, got {other:?}"),
        }
    }

    /// Reads until the server closes; returns the close code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            match self.next_within(WAIT).await {
                Next::Closed(code) => return code,
                Next::Event(_) => continue,
                Next::Nothing => panic!("expected the server to close the connection"),
            }
        }
    }

    pub async fn subscribe(&mut self, channel: &str) -> Value {
        self.send(json!({"event":"pusher:subscribe","data":{"auth":"","channel":channel}})).await;
        self.recv().await
    }

    pub async fn subscribe_private(&mut self, channel: &str) -> Value {
        let auth = auth_private(&self.socket_id, channel);
        self.send(json!({"event":"pusher:subscribe","data":{"auth":auth,"channel":channel}})).await;
        self.recv().await
    }

    pub async fn subscribe_presence(&mut self, channel: &str, channel_data: &str) -> Value {
        let auth = auth_presence(&self.socket_id, channel, channel_data);
        self.send(
            json!({"event":"pusher:subscribe","data":{"auth":auth,"channel":channel,"channel_data":channel_data}}),
        )
        .await;
        self.recv_event("pusher_internal:subscription_succeeded").await
    }

    pub async fn sign_in(&mut self, user_data: &str) -> Value {
        let auth =
            format!("{KEY}:{}", signature::sign(SECRET, signature::user_string(&self.socket_id, user_data).as_bytes()));
        self.send(json!({"event":"pusher:signin","data":{"auth":auth,"user_data":user_data}})).await;
        self.recv().await
    }
}

pub fn auth_private(socket_id: &str, channel: &str) -> String {
    format!("{KEY}:{}", signature::sign(SECRET, signature::private_string(socket_id, channel).as_bytes()))
}

pub fn auth_presence(socket_id: &str, channel: &str, data: &str) -> String {
    format!("{KEY}:{}", signature::sign(SECRET, signature::presence_string(socket_id, channel, data).as_bytes()))
}

/// The decoded `data` of an event whose data is a JSON string.
pub fn data(ev: &Value) -> Value {
    serde_json::from_str(ev["data"].as_str().expect("string data")).expect("data JSON")
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

/// A REST client that signs requests the way the official SDKs do.
pub struct Rest {
    pub base: String,
    pub app_id: String,
    pub key: String,
    pub secret: String,
}

impl Rest {
    /// The development app's REST API at `addr`.
    pub fn at(addr: SocketAddr) -> Rest {
        Rest { base: format!("http://{addr}"), app_id: APP_ID.into(), key: KEY.into(), secret: SECRET.into() }
    }

    /// Signed query string for `method path` with `extra` parameters and `body`.
    pub fn signed_query(&self, method: &str, path: &str, extra: &[(&str, &str)], body: &str, ts: u64) -> String {
        let mut params: Vec<(String, String)> = vec![
            ("auth_key".into(), self.key.clone()),
            ("auth_timestamp".into(), ts.to_string()),
            ("auth_version".into(), "1.0".into()),
        ];
        if !body.is_empty() {
            params.push(("body_md5".into(), signature::body_md5(body.as_bytes())));
        }
        params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let sig = signature::sign(&self.secret, signature::rest_string(method, path, &params).as_bytes());
        let mut q: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        q.push(format!("auth_signature={sig}"));
        q.join("&")
    }

    pub async fn raw(&self, method: &str, path_and_query: &str, body: &str) -> (u16, Value) {
        let client = reqwest::Client::new();
        let url = format!("{}{}", self.base, path_and_query);
        let req = match method {
            "POST" => client.post(url).header("content-type", "application/json").body(body.to_string()),
            "GET" => client.get(url),
            other => client.request(reqwest::Method::from_bytes(other.as_bytes()).expect("method"), url),
        };
        let res = req.send().await.expect("http");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn request(&self, method: &str, sub: &str, extra: &[(&str, &str)], body: &str) -> (u16, Value) {
        let path = format!("/apps/{}{}", self.app_id, sub);
        let q = self.signed_query(method, &path, extra, body, now());
        self.raw(method, &format!("{path}?{q}"), body).await
    }

    pub async fn post(&self, sub: &str, body: Value) -> (u16, Value) {
        self.request("POST", sub, &[], &body.to_string()).await
    }

    pub async fn get(&self, sub: &str, extra: &[(&str, &str)]) -> (u16, Value) {
        self.request("GET", sub, extra, "").await
    }

    pub async fn trigger(&self, channel: &str, name: &str, data: &str) -> (u16, Value) {
        self.post("/events", json!({"name":name,"channel":channel,"data":data})).await
    }
}
