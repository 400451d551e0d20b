//! Signed REST publishing over one kept-alive HTTP/1.1 connection, written by hand so the load
//! generator spends its core on the load and not on an HTTP stack.

use super::client::Target;
use anyhow::{Context as _, bail};
use sinew::protocol::signature;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Duration, timeout};

const WAIT: Duration = Duration::from_secs(30);

/// A publisher with its own connection; reconnects after a failure.
pub struct Publisher {
    target: Target,
    path: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Asks for `Connection: close`: one connection per publish.
    close: bool,
}

impl Publisher {
    /// A publisher for `POST /apps/{id}/events`.
    pub fn new(target: &Target) -> Self {
        Publisher {
            path: format!("/apps/{}/events", target.app_id),
            target: target.clone(),
            stream: None,
            buf: Vec::with_capacity(4096),
            close: false,
        }
    }

    /// Sends every publish with `Connection: close` when `close`, so each has its own connection.
    pub fn closing(mut self, close: bool) -> Self {
        self.close = close;
        self
    }

    /// Publishes one event; returns the HTTP status (an error when the exchange failed).
    pub async fn publish(&mut self, channel: &str, event: &str, data: &str) -> anyhow::Result<u16> {
        let body = serde_json::json!({"name": event, "channel": channel, "data": data}).to_string();
        let request = self.request(&body);
        match timeout(WAIT, self.exchange(&request)).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                self.stream = None;
                bail!("no response within {WAIT:?}")
            }
        }
    }

    fn request(&self, body: &str) -> Vec<u8> {
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let signer = signature::Signer { key: &self.target.key, secret: &self.target.secret, timestamp: ts };
        let query = signer.query("POST", &self.path, Vec::new(), body.as_bytes());
        format!(
            "POST {}?{} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n{body}",
            self.path,
            query,
            self.target.authority,
            body.len(),
            if self.close { "Connection: close\r\n" } else { "" },
        )
        .into_bytes()
    }

    async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<u16> {
        let stream = match &mut self.stream {
            Some(s) => s,
            None => {
                let s = TcpStream::connect(self.target.addr).await.context("REST connect")?;
                s.set_nodelay(true)?;
                self.stream.insert(s)
            }
        };
        stream.write_all(request).await?;
        self.buf.clear();
        let (head_end, status, length, chunked, close) = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).context("response head is not UTF-8")?;
                let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).context("bad status line")?;
                let mut length = None;
                let (mut chunked, mut close) = (false, false);
                for line in head.lines().skip(1) {
                    let Some((name, value)) = line.split_once(':') else { continue };
                    let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase());
                    match name.as_str() {
                        "content-length" => length = value.parse::<usize>().ok(),
                        "transfer-encoding" => chunked = value.contains("chunked"),
                        "connection" => close = value.contains("close"),
                        _ => {}
                    }
                }
                break (end + 4, status, length, chunked, close);
            }
            read_more(stream, &mut self.buf).await?;
        };
        if chunked {
            while find(&self.buf[head_end..], b"0\r\n\r\n").is_none() {
                read_more(stream, &mut self.buf).await?;
            }
        } else if let Some(n) = length {
            while self.buf.len() < head_end + n {
                read_more(stream, &mut self.buf).await?;
            }
        }
        if close || self.close {
            self.stream = None;
        }
        Ok(status)
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        bail!("server closed the REST connection");
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
