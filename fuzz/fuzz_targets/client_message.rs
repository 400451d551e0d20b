//! Client protocol messages as a live connection receives them: `Connection::handle_text` (parse,
//! then `pusher:subscribe`, `pusher:unsubscribe`, `pusher:signin`, `pusher:ping`, `client-*`,
//! `sinew:resume` on channels with history)
//! against a real hub with one app, and the pure parsers it uses.
//!
//! Input: messages separated by `\n`; a message starting with byte 0x01 goes to a second
//! connection (so client events have a subscriber to reach). An `auth` of exactly `"SIGN"` in a
//! subscribe or sign-in is replaced by a correct signature (the fuzzer cannot forge HMACs), so
//! private, encrypted, presence and user channels, `channel_data` and `user_data` are reached.
//!
//! Checked: no panic; every frame the server queues in answer, and every debug console event, is
//! JSON text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sinew::config::Config;
use sinew::hub::Frame;
use sinew::protocol::frame::{self, SigninData, SubscribeData, UnsubscribeData};
use sinew::protocol::signature;
use sinew::state::Context;
use sinew::transport::connection::{ClientQuery, Connection};
use std::sync::OnceLock;

const KEY: &str = "app-key";
const SECRET: &str = "app-secret";
const CONFIG: &str = r#"
[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
client_events = true
watchlist = true
subscription_count = true
max_presence_members = 4
max_subscriptions_per_connection = 8
max_client_events_per_second = 1000
encryption_master_key_base64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
history_channels = ["private-", "history-"]
history_size = 8
"#;

struct World {
    rt: tokio::runtime::Runtime,
    ctx: Context,
    /// A debug console watching, so the debug events are built too.
    console: std::sync::Mutex<sinew::hub::Console>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let config = Config::parse(CONFIG, Vec::new()).unwrap();
        let ctx = {
            let _guard = rt.enter();
            Context::new(config)
        };
        let console = std::sync::Mutex::new(ctx.debug.subscribe());
        World { rt, ctx, console }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    // The pure parsers first, on every message.
    for line in data.split(|&b| b == b'\n') {
        if let Ok(text) = std::str::from_utf8(line) {
            parse_only(text);
        }
    }
    let _guard = w.rt.enter();
    let open = || w.rt.block_on(Connection::open(&w.ctx, KEY, &ClientQuery::default(), None)).unwrap();
    let (mut a, mut b) = (open(), open());
    let mut queued = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let (conn, line) = match line {
            [1, rest @ ..] => (&mut b, rest),
            _ => (&mut a, line),
        };
        // What the WebSocket decoder hands over is UTF-8.
        let Ok(text) = std::str::from_utf8(line) else { continue };
        let text = sign_placeholders(text, &conn.socket_id());
        w.rt.block_on(conn.handle_text(&text));
        for c in [&a, &b] {
            c.outbox().drain(&mut queued);
            for f in queued.drain(..) {
                check_frame(&f);
            }
        }
        let mut console = w.console.lock().unwrap();
        while let Ok(event) = console.try_recv() {
            assert!(serde_json::from_str::<Value>(&event).is_ok(), "debug event is not JSON: {event:?}");
        }
    }
});

fn parse_only(text: &str) {
    let Ok(m) = frame::parse_client_message(text) else { return };
    let _ = frame::decode_data::<SubscribeData>(&m.event, m.data);
    let _ = frame::decode_data::<UnsubscribeData>(&m.event, m.data);
    let _ = frame::decode_data::<SigninData>(&m.event, m.data);
}

fn check_frame(f: &Frame) {
    let text = f.as_str();
    assert!(serde_json::from_str::<Value>(text).is_ok(), "server frame is not JSON: {text:?}");
}

/// Replaces an `auth` of `"SIGN"` in a subscribe or sign-in by the signature the app would give.
fn sign_placeholders(text: &str, socket_id: &str) -> String {
    if !text.contains("SIGN") {
        return text.to_string();
    }
    let Ok(mut msg) = serde_json::from_str::<Value>(text) else { return text.to_string() };
    let event = msg.get("event").and_then(Value::as_str).unwrap_or_default().to_string();
    let Some(slot) = msg.get_mut("data") else { return text.to_string() };
    // `data` may be an object or a string holding one.
    let (mut data, as_string) = match &*slot {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v) => (v, true),
            Err(_) => return text.to_string(),
        },
        v => (v.clone(), false),
    };
    if data.get("auth").and_then(Value::as_str) != Some("SIGN") {
        return text.to_string();
    }
    let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let signed = match event.as_str() {
        "pusher:subscribe" => {
            let channel = str_of(&data, "channel").unwrap_or_default();
            match str_of(&data, "channel_data") {
                Some(cd) => signature::presence_string(socket_id, &channel, &cd),
                None => signature::private_string(socket_id, &channel),
            }
        }
        "pusher:signin" => signature::user_string(socket_id, &str_of(&data, "user_data").unwrap_or_default()),
        _ => return text.to_string(),
    };
    data["auth"] = Value::String(format!("{KEY}:{}", signature::sign(SECRET, signed.as_bytes())));
    *slot = if as_string { Value::String(data.to_string()) } else { data };
    msg.to_string()
}
