//! The SDK against a real Sinew server started in this process on a free port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sinew::config::Config;
use sinew::server::Server;
use sinew::state::Context;
use sinew_sdk::{BatchEvent, Client, Error, ModelChange, PresenceData, TriggerOptions};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(5);

async fn start() -> SocketAddr {
    let mut config = Config::load(None, Vec::new()).unwrap();
    config.host = "127.0.0.1".into();
    config.port = 0;
    config.apps[0].history_channels = vec!["history-".into()];
    let server = Server::bind(Context::new(config)).await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = server.run(std::future::pending()).await;
    });
    addr
}

fn sdk(addr: SocketAddr) -> Client {
    Client::new(&format!("http://{addr}"), "1", "app-key", "app-secret").unwrap()
}

/// A plain protocol-7 WebSocket client.
struct Ws {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    socket_id: String,
}

impl Ws {
    async fn connect(addr: SocketAddr) -> Ws {
        let url = format!("ws://{addr}/app/app-key?protocol=7&client=js&version=8.6.0&flash=false");
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut c = Ws { ws, socket_id: String::new() };
        let ev = c.next().await.unwrap();
        assert_eq!(ev["event"], "pusher:connection_established");
        c.socket_id = data(&ev)["socket_id"].as_str().unwrap().to_string();
        c
    }

    async fn send(&mut self, v: Value) {
        self.ws.send(Message::Text(v.to_string().into())).await.unwrap();
    }

    /// The next event, or `None` when the socket closed or nothing came within `WAIT`.
    async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(wait, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    async fn next(&mut self) -> Option<Value> {
        self.next_within(WAIT).await
    }

    async fn expect(&mut self, name: &str) -> Value {
        loop {
            let ev = self.next().await.unwrap_or_else(|| panic!("no {name}"));
            if ev["event"] == name {
                return ev;
            }
        }
    }

    async fn subscribe(&mut self, channel: &str, auth: Option<sinew_sdk::ChannelAuth>) {
        let mut msg = json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": ""}});
        if let Some(a) = auth {
            msg["data"]["auth"] = json!(a.auth);
            if let Some(cd) = a.channel_data {
                msg["data"]["channel_data"] = json!(cd);
            }
        }
        self.send(msg).await;
        self.expect("pusher_internal:subscription_succeeded").await;
    }

    /// Waits for the close frame and returns its code.
    async fn close_code(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(f)))) => return f.map(|f| u16::from(f.code)),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }
}

fn data(ev: &Value) -> Value {
    serde_json::from_str(ev["data"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn trigger_reaches_subscribers_and_skips_the_sender() {
    let addr = start().await;
    let sdk = sdk(addr);
    let mut a = Ws::connect(addr).await;
    let mut b = Ws::connect(addr).await;
    a.subscribe("pages", None).await;
    b.subscribe("pages", None).await;

    let change = ModelChange::create("Page", 1, &json!({"title": "Hello"})).unwrap();
    sdk.publish_change("pages", &change, Some(&a.socket_id)).await.unwrap();
    let ev = b.expect("create").await;
    assert_eq!(ev["channel"], "pages");
    assert_eq!(data(&ev), json!({"type":"create","class":"Page","id":"1","record":{"title":"Hello"}}));
    // The sender sees the next event, not the excluded one.
    sdk.trigger("pages", "ping", "plain text", &TriggerOptions::default()).await.unwrap();
    let next = a.next().await.unwrap();
    assert_eq!(next["event"], "ping", "{next}");
    assert_eq!(next["data"], "plain text");
}

#[tokio::test]
async fn trigger_many_batch_and_channel_queries() {
    let addr = start().await;
    let sdk = sdk(addr);
    let mut a = Ws::connect(addr).await;
    a.subscribe("news-a", None).await;
    a.subscribe("news-b", None).await;

    let info = TriggerOptions { socket_id: None, info: Some("subscription_count".into()) };
    let reply = sdk.trigger_many(&["news-a", "news-b"], "headline", &json!({"n": 1}), &info).await.unwrap();
    assert_eq!(reply["channels"]["news-a"]["subscription_count"], 1, "{reply}");
    for _ in 0..2 {
        let ev = a.expect("headline").await;
        assert_eq!(data(&ev), json!({"n": 1}));
    }

    let batch = vec![
        BatchEvent { channel: "news-a".into(), name: "one".into(), data: "1".into(), socket_id: None, info: None },
        BatchEvent { channel: "news-b".into(), name: "two".into(), data: "2".into(), socket_id: None, info: None },
    ];
    sdk.trigger_batch(&batch).await.unwrap();
    assert_eq!(a.expect("one").await["channel"], "news-a");
    assert_eq!(a.expect("two").await["channel"], "news-b");

    let info = sdk.channel_info("news-a", &["subscription_count"]).await.unwrap();
    assert_eq!(info["occupied"], true);
    assert_eq!(info["subscription_count"], 1);
    let list = sdk.channels(Some("news-"), &[]).await.unwrap();
    let names: Vec<&String> = list["channels"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["news-a", "news-b"]);
    let empty = sdk.channels(Some("nothing-"), &[]).await.unwrap();
    assert_eq!(empty["channels"], json!({}));
}

#[tokio::test]
async fn sdk_signatures_are_accepted_for_private_presence_and_sign_in() {
    let addr = start().await;
    let sdk = sdk(addr);
    let mut a = Ws::connect(addr).await;
    let auth = sdk.authorize_channel::<Value>(&a.socket_id, "private-observer", None).unwrap();
    a.subscribe("private-observer", Some(auth)).await;
    let member = PresenceData { user_id: "ann".into(), user_info: Some(json!({"name": "Ann"})) };
    let auth = sdk.authorize_channel(&a.socket_id, "presence-room", Some(&member)).unwrap();
    a.subscribe("presence-room", Some(auth)).await;
    assert_eq!(sdk.channel_users("presence-room").await.unwrap(), ["ann"]);

    let signin = sdk.authenticate_user(&a.socket_id, &json!({"id": "ann"})).unwrap();
    a.send(json!({"event": "pusher:signin", "data": {"auth": signin.auth, "user_data": signin.user_data}})).await;
    a.expect("pusher:signin_success").await;
    // As pusher-js does after a sign-in.
    a.subscribe("#server-to-user-ann", None).await;

    sdk.send_to_user("ann", "note", &json!({"hi": true})).await.unwrap();
    let ev = a.expect("note").await;
    assert_eq!(data(&ev), json!({"hi": true}));

    sdk.terminate_user_connections("ann").await.unwrap();
    assert_eq!(a.close_code().await, Some(4009));
}

#[tokio::test]
async fn server_refusals_become_typed_errors() {
    let addr = start().await;
    let wrong = Client::new(&format!("http://{addr}"), "1", "app-key", "not-the-secret").unwrap();
    match wrong.trigger("pages", "x", "y", &TriggerOptions::default()).await {
        Err(Error::Status { status: 401, .. }) => {}
        other => panic!("expected 401, got {other:?}"),
    }
    let sdk = sdk(addr);
    assert!(matches!(
        sdk.trigger("private-encrypted-x", "x", "y", &TriggerOptions::default()).await,
        Err(Error::EncryptedPublish(_))
    ));
    let too_many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
    assert!(matches!(
        sdk.trigger_many(&refs, "x", "y", &TriggerOptions::default()).await,
        Err(Error::TooManyChannels(101))
    ));
    // Nothing listens on this port once the listener is dropped.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let gone = Client::new(&format!("http://{closed}"), "1", "app-key", "app-secret").unwrap();
    assert!(matches!(gone.channels(None, &[]).await, Err(Error::Http(_))));
}

#[tokio::test]
async fn channel_history_pages_through_what_was_kept() {
    let addr = start().await;
    let sdk = sdk(addr);
    let empty = sdk.channel_history("history-notes", 0, 10).await.unwrap();
    assert_eq!(empty, json!({"epoch": null, "first": 1, "last": 0, "events": []}));
    for i in 1..=3 {
        sdk.trigger("history-notes", "note", &json!({ "n": i }), &TriggerOptions::default()).await.unwrap();
    }
    let page = sdk.channel_history("history-notes", 1, 1).await.unwrap();
    assert_eq!((page["first"].clone(), page["last"].clone()), (json!(1), json!(3)));
    assert!(page["epoch"].as_str().is_some_and(|e| e.len() == 8));
    assert_eq!(
        page["events"],
        json!([{"offset": 2, "event": "note", "channel": "history-notes", "data": "{\"n\":2}"}])
    );
    assert!(matches!(sdk.channel_history("plain", 0, 10).await, Err(Error::Status { status: 400, .. })));
}
