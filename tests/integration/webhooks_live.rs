//! Webhooks follow the app store while the node runs, on the machine's PostgreSQL (changes are
//! announced, so they arrive within about a second): an app created after start-up sends its
//! webhooks, signed with its secret; new endpoints take its events from the old ones; a rotated
//! secret signs the next webhooks.

use crate::common::Client;
use crate::db_support::{Db, TestDb};
use crate::process_support::SinewProcess;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use sinew::protocol::signature;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One event as received: the endpoint's path, `X-Pusher-Key`, the signature and the raw body of
/// the POST it came in, the event's name and channel.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    key: String,
    signature: String,
    body: Bytes,
    name: String,
    channel: String,
}

impl Seen {
    fn signed_with(&self, secret: &str) -> bool {
        signature::verify_hex(secret, &self.body, &self.signature)
    }
}

type Received = Arc<Mutex<Vec<Seen>>>;

async fn hook(State(got): State<Received>, uri: Uri, headers: HeaderMap, body: Bytes) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    for e in parsed["events"].as_array().unwrap() {
        got.lock().unwrap().push(Seen {
            path: uri.path().to_string(),
            key: header("x-pusher-key"),
            signature: header("x-pusher-signature"),
            body: body.clone(),
            name: e["name"].as_str().unwrap_or_default().to_string(),
            channel: e["channel"].as_str().unwrap_or_default().to_string(),
        });
    }
}

/// A receiver answering 200 to every POST on any path; its base URL and what it got.
async fn receiver() -> (String, Received) {
    let got = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(axum::routing::post(hook)).with_state(got.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), got)
}

fn occupied(got: &Received, channel: &str) -> Option<Seen> {
    got.lock().unwrap().iter().find(|s| s.name == "channel_occupied" && s.channel == channel).cloned()
}

/// Subscribes `client` to fresh channels named `{prefix}-{n}` every 100 ms until one's
/// `channel_occupied` satisfies `ok`; that event. Panics after `limit`.
async fn until_seen(client: &mut Client, got: &Received, prefix: &str, ok: impl Fn(&Seen) -> bool) -> Seen {
    let start = Instant::now();
    for n in 0.. {
        let channel = format!("{prefix}-{n}");
        client.subscribe(&channel).await;
        let tried = Instant::now();
        while tried.elapsed() < Duration::from_millis(100) {
            if let Some(s) = occupied(got, &channel).filter(|s| ok(s)) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{prefix}: no matching webhook in 5 s: {:?}", got.lock());
    }
    unreachable!()
}

/// The `channel_occupied` of a channel subscribed now, once it arrived (panics after 5 s).
async fn fresh(client: &mut Client, got: &Received, channel: &str) -> Seen {
    client.subscribe(channel).await;
    let start = Instant::now();
    loop {
        if let Some(s) = occupied(got, channel) {
            return s;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no webhook for {channel}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn secret_of(out: &str) -> String {
    out.lines().find_map(|l| l.strip_prefix("secret=")).unwrap_or_else(|| panic!("no secret in {out}")).to_string()
}

#[tokio::test]
async fn webhooks_follow_apps_created_changed_and_rotated_while_running() {
    let t = TestDb::create(Db::Postgres).await;
    t.cli(&["db", "migrate"]);
    let (base, got) = receiver().await;
    let url = t.url();
    let dead = std::env::temp_dir().join(format!("sinew-live-dl-{}.jsonl", rand::random::<u64>()));
    let dead = dead.display().to_string();
    let node = SinewProcess::spawn(&[
        ("SINEW_APP_STORE", "postgres"),
        ("SINEW_DATABASE_URL", url.as_str()),
        ("SINEW_WEBHOOKS_BATCH_WINDOW_MS", "10"),
        ("SINEW_WEBHOOKS_DEAD_LETTER_FILE", dead.as_str()),
    ])
    .await;

    // Created while the node runs: its first channel's webhook goes to its endpoint, signed.
    let hooks = |path: &str| format!(r#"webhooks=[{{"url":"{base}{path}"}}]"#);
    let created = t.cli(&["apps", "create", "--set", "id=hooked", "--set", "key=hooked-key", "--set", &hooks("/a")]);
    let first_secret = secret_of(&created);
    let mut client = Client::connect(node.addr, "hooked-key").await;
    assert_eq!(client.recv().await["event"], "pusher:connection_established");
    let first = fresh(&mut client, &got, "created").await;
    assert_eq!((first.path.as_str(), first.key.as_str()), ("/a", "hooked-key"));
    assert!(first.signed_with(&first_secret), "signed with the app's secret");

    // New endpoints: once the change is served, events go to the new one only.
    t.cli(&["apps", "update", "hooked", "--set", &hooks("/b")]);
    until_seen(&mut client, &got, "moving", |s| s.path == "/b").await;
    let moved = fresh(&mut client, &got, "moved").await;
    assert_eq!((moved.path.as_str(), moved.key.as_str()), ("/b", "hooked-key"));
    assert!(moved.signed_with(&first_secret));
    let at_a = got.lock().unwrap().iter().filter(|s| s.channel == "moved").count();
    assert_eq!(at_a, 1, "the old endpoint no longer gets events: {:?}", got.lock());

    // A rotated secret signs the next webhooks.
    let second_secret = secret_of(&t.cli(&["apps", "rotate", "hooked"]));
    until_seen(&mut client, &got, "rotating", |s| s.signed_with(&second_secret)).await;
    let rotated = fresh(&mut client, &got, "rotated").await;
    assert_eq!(rotated.path, "/b");
    assert!(rotated.signed_with(&second_secret), "signed with the new secret");
    assert!(!rotated.signed_with(&first_secret));
    assert!(got.lock().unwrap().iter().all(|s| s.key == "hooked-key"));

    drop(node);
    let _ = std::fs::remove_file(&dead);
    t.drop_db().await;
}
