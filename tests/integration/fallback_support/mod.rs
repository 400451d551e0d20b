//! Raw HTTP client side of the fallback transports, shared by the fallback test files.

use crate::common::{KEY, TestServer, data};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(5);

/// One frame of a receive response.
#[derive(Debug, Clone, PartialEq)]
pub enum Fr {
    Prelude,
    Open,
    Heartbeat,
    Messages(Vec<Value>),
    Close(u16, String),
}

pub fn parse_line(line: &str) -> Fr {
    match line.as_bytes().first() {
        Some(b'h') if line.len() == 2048 && line.bytes().all(|b| b == b'h') => Fr::Prelude,
        Some(b'h') if line == "h" => Fr::Heartbeat,
        Some(b'o') if line == "o" => Fr::Open,
        Some(b'a') => {
            assert!(line.is_ascii(), "frames are ASCII: {line}");
            let items: Vec<String> = serde_json::from_str(&line[1..]).expect("a[...] is an array of strings");
            Fr::Messages(items.iter().map(|s| serde_json::from_str(s).expect("element is a JSON envelope")).collect())
        }
        Some(b'c') => {
            let v: (u16, String) = serde_json::from_str(&line[1..]).expect("c[code,reason]");
            Fr::Close(v.0, v.1)
        }
        _ => panic!("unexpected frame line {line:?}"),
    }
}

/// A receive response read line by line.
pub struct Receiver {
    res: reqwest::Response,
    buf: Vec<u8>,
    /// Bytes received so far.
    pub bytes: usize,
    ended: bool,
}

impl Receiver {
    pub async fn open(s: &TestServer, key: &str, session: &str, endpoint: &str) -> Receiver {
        Self::open_at(s.addr, key, session, endpoint).await
    }

    pub async fn open_at(addr: SocketAddr, key: &str, session: &str, endpoint: &str) -> Receiver {
        Self::open_with(addr, key, session, endpoint, &[]).await
    }

    /// [`Receiver::open_at`] with extra request headers (such as `Origin`).
    pub async fn open_with(
        addr: SocketAddr,
        key: &str,
        session: &str,
        endpoint: &str,
        headers: &[(&str, &str)],
    ) -> Receiver {
        let url =
            format!("http://{addr}/pusher/app/{key}/{session}/{endpoint}?protocol=7&client=js&version=8.6.0&t=1&n=1");
        let mut req = reqwest::Client::new().post(url).header("content-type", "application/json");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = req.send().await.expect("receive request");
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/javascript; charset=UTF-8");
        assert!(res.headers()["cache-control"].to_str().unwrap().contains("no-store"));
        Receiver { res, buf: Vec::new(), bytes: 0, ended: false }
    }

    /// The next frame, or None when the response ended.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Option<Fr>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let text = String::from_utf8(line[..line.len() - 1].to_vec()).expect("utf-8");
                return Some(Some(parse_line(&text)));
            }
            if self.ended {
                assert!(self.buf.is_empty(), "response ended inside a frame: {:?}", String::from_utf8_lossy(&self.buf));
                return Some(None);
            }
            match tokio::time::timeout(wait, self.res.chunk()).await {
                Err(_) => return None,
                Ok(Ok(Some(chunk))) => {
                    self.bytes += chunk.len();
                    self.buf.extend_from_slice(&chunk);
                }
                Ok(Ok(None)) | Ok(Err(_)) => self.ended = true,
            }
        }
    }

    pub async fn next(&mut self) -> Option<Fr> {
        self.next_within(WAIT).await.expect("a frame or the end of the response in time")
    }

    pub async fn frame(&mut self) -> Fr {
        self.next().await.expect("a frame, not the end of the response")
    }

    /// Messages until one named `name` (skipping heartbeats), panicking on close or end.
    pub async fn event(&mut self, name: &str) -> Value {
        loop {
            match self.frame().await {
                Fr::Messages(ms) => {
                    if let Some(m) = ms.into_iter().find(|m| m["event"] == name) {
                        return m;
                    }
                }
                Fr::Heartbeat | Fr::Prelude => {}
                other => panic!("waiting for {name}, got {other:?}"),
            }
        }
    }

    /// Reads the opening of a new session and returns the socket id.
    pub async fn established(&mut self, streaming: bool) -> String {
        if streaming {
            assert_eq!(self.frame().await, Fr::Prelude);
        }
        assert_eq!(self.frame().await, Fr::Open);
        let Fr::Messages(ms) = self.frame().await else { panic!("expected connection_established") };
        assert_eq!(ms[0]["event"], "pusher:connection_established");
        data(&ms[0])["socket_id"].as_str().unwrap().to_string()
    }
}

pub async fn send(s: &TestServer, key: &str, session: &str, body: &str) -> u16 {
    let url = format!("http://{}/pusher/app/{key}/{session}/xhr_send?t=2&n=2", s.addr);
    let res = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    res.status().as_u16()
}

/// Sends Pusher messages the way pusher-js does: a JSON array of JSON strings.
pub async fn send_msgs(s: &TestServer, session: &str, msgs: &[Value]) {
    let items: Vec<String> = msgs.iter().map(Value::to_string).collect();
    assert_eq!(send(s, KEY, session, &serde_json::to_string(&items).unwrap()).await, 204);
}

pub fn subscribe(channel: &str) -> Value {
    json!({"event":"pusher:subscribe","data":{"auth":"","channel":channel}})
}

pub async fn usage(s: &TestServer) -> Value {
    reqwest::get(format!("http://{}/usage", s.addr)).await.unwrap().json().await.unwrap()
}

pub fn fast(c: &mut sinew::config::Config) {
    c.http_heartbeat_interval = 1;
    c.http_session_timeout = 1;
}
