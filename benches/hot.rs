//! Micro-benchmarks of the hot functions: signature checks, frame encoding, fan-out to N outboxes.
//! Run with `cargo bench --bench hot` (never part of CI; `cargo clippy --all-targets` compiles them).

use divan::{Bencher, black_box};
use sinew::config::Config;
use sinew::hub::{ConnRef, Frame, Hub};
use sinew::protocol::{frame, signature};

fn main() {
    divan::main();
}

const KEY: &str = "278d425bdf160c739803";
const SECRET: &str = "7ad3773142a6692b25b8";

/// `pusher:subscribe` to a private channel: the `key:hex` check.
#[divan::bench]
fn verify_private_auth(b: Bencher) {
    let message = signature::private_string("1234.1234", "private-foobar");
    let auth = format!("{KEY}:{}", signature::sign(SECRET, message.as_bytes()));
    b.bench(|| signature::verify_auth(black_box(KEY), SECRET, black_box(message.as_bytes()), black_box(&auth)));
}

/// A REST request: body MD5, the string to sign, and the HMAC check.
#[divan::bench]
fn verify_rest_request(b: Bencher) {
    let body = r#"{"name":"bench","channel":"bench-fanout","data":"sb|1|2|xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
    let params = vec![
        ("auth_key".to_string(), KEY.to_string()),
        ("auth_timestamp".to_string(), "1353088179".to_string()),
        ("auth_version".to_string(), "1.0".to_string()),
        ("body_md5".to_string(), signature::body_md5(body.as_bytes())),
    ];
    let sig = signature::sign(SECRET, signature::rest_string("POST", "/apps/1/events", &params).as_bytes());
    b.bench(|| {
        let md5_ok = signature::body_md5(black_box(body).as_bytes()) == params[3].1;
        let s = signature::rest_string("POST", "/apps/1/events", black_box(&params));
        md5_ok && signature::verify_hex(SECRET, s.as_bytes(), black_box(&sig))
    });
}

/// Encoding a REST event for its subscribers, by size of `data`.
#[divan::bench(args = [64, 1024, 8192])]
fn encode_channel_event(b: Bencher, size: usize) {
    let data = format!("{{\"message\":\"{}\"}}", "x".repeat(size));
    b.bench(|| Frame::from(frame::channel_event(black_box("bench"), black_box("bench-fanout"), black_box(&data))));
}

/// Publishing one shared frame to a channel with N subscribers, then each writer draining its queue.
#[divan::bench(args = [1, 100, 1000, 10000])]
fn fan_out(b: Bencher, subscribers: usize) {
    let config = Config::load(None, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    let hub = Hub::new(&config, &sinew::webhooks::Webhooks::new(&config), &sinew::hub::DebugFeed::default());
    let app = hub.apps().into_iter().next().unwrap_or_else(|| panic!("no app"));
    let conns: Vec<ConnRef> = (0..subscribers).map(|_| hub.new_connection(&app)).collect();
    for c in &conns {
        app.subscribe(c, "bench-fanout", None).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut batch = Vec::new();
    for c in &conns {
        c.outbox.drain(&mut batch);
    }
    batch.clear();
    let f = Frame::from(frame::channel_event("bench", "bench-fanout", "{\"n\":1}"));
    b.counter(divan::counter::ItemsCount::new(subscribers)).bench_local(|| {
        let n = app.publish("bench-fanout", black_box(&f), None);
        for c in &conns {
            c.outbox.drain(&mut batch);
            batch.clear();
        }
        n
    });
}
