//! The floor: the least a Pusher server can do for `sinew-bench`, to measure how close Sinew is to
//! the cost of the kernel's own work. Not a server to use: no authentication, no validation, no
//! queues, no pings, one thread.
//! WebSocket framing is Sinew's own (`protocol::websocket`).
//!
//! It answers the WebSocket handshake and `pusher:subscribe`, writes every REST publish (unsigned
//! requests are accepted too) to the channel's sockets with one `send` each of one prebuilt frame,
//! and relays client events to the channel's other sockets the same way. A socket that does not
//! take a whole frame at once is shut down and counted on stderr; the load generator then reports
//! the connection as closed.
//!
//! ```sh
//! cargo run --release --example floor -- 6001
//! taskset -c 1 target/release/sinew-bench --port 6001 --server-pid <pid> fanout --subscribers 1000
//! ```
//!
//! `tests/bench/compare.sh` runs it as the server `floor` (`SERVERS="sinew floor"`).

use sinew::protocol::websocket::{self as wire, Incoming};
use socket2::SockRef;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::io::Read;
use std::rc::Rc;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream};

/// The longest client message read (Sinew's default `max_message_bytes`).
const MAX_MESSAGE: usize = 64 * 1024;

/// A connection's number and its socket.
type Subscriber = (u64, Rc<TcpStream>);

thread_local! {
    /// Each channel's subscribers.
    static CHANNELS: RefCell<HashMap<String, Vec<Subscriber>>> = RefCell::new(HashMap::new());
    /// Refused writes (socket full), reported every second.
    static REFUSED: RefCell<u64> = const { RefCell::new(0) };
}

/// An unmasked server-to-client text frame around `payload` (Sinew's own framing).
fn text_frame(payload: &[u8]) -> Vec<u8> {
    wire::encode(wire::OP_TEXT, payload)
}

/// Writes `frame` to each subscriber of `channel` but `except`, one `send` each. A socket that does
/// not take the whole frame at once is shut down (the rest of the frame is never sent), so the load
/// generator sees a closed connection rather than a corrupt stream.
fn send_to_channel(channel: &str, frame: &[u8], except: u64) {
    let refused = CHANNELS.with_borrow(|channels| {
        let subscribers = channels.get(channel).into_iter().flatten();
        let mut refused = 0;
        for (_, socket) in subscribers.filter(|(id, _)| *id != except) {
            let socket = SockRef::from(&**socket);
            if socket.send(frame).ok() != Some(frame.len()) {
                let _ = socket.shutdown(std::net::Shutdown::Both);
                refused += 1;
            }
        }
        refused
    });
    REFUSED.with_borrow_mut(|r| *r += refused);
}

/// The parts of a client message the floor looks at.
#[derive(serde::Deserialize)]
struct ClientMessage<'a> {
    event: &'a str,
    channel: Option<&'a str>,
    #[serde(borrow)]
    data: Option<&'a serde_json::value::RawValue>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn write_all(socket: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        socket.writable().await?;
        match socket.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Appends what the socket has to `buf`; false at the end of the stream. A read that does not fill
/// the chunk clears the socket's readiness, so the next call waits instead of trying a `recv` that
/// can only return `EAGAIN` (one `recv` per message, as in Sinew).
async fn read_more(socket: &TcpStream, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 4096];
    loop {
        socket.readable().await?;
        let mut short = None;
        let read = socket.try_io(Interest::READABLE, || {
            let n = (&*SockRef::from(socket)).read(&mut chunk)?;
            if n > 0 && n < chunk.len() {
                short = Some(n);
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        let read = match short {
            Some(n) => Ok(n),
            None => read,
        };
        match read {
            Ok(0) => return Ok(false),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(true);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// One WebSocket client after its upgrade request (`head`).
async fn websocket(socket: TcpStream, head: &str, id: u64) -> io::Result<()> {
    let key = header(head, "sec-websocket-key").unwrap_or("");
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let upgrade = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    write_all(&socket, upgrade.as_bytes()).await?;
    let established = serde_json::json!({
        "event": "pusher:connection_established",
        "data": format!(r#"{{"socket_id":"1.{id}","activity_timeout":120}}"#),
    });
    write_all(&socket, &text_frame(established.to_string().as_bytes())).await?;
    let socket = Rc::new(socket);
    let mut joined = Vec::new();
    let result = serve_websocket(&socket, id, &mut joined).await;
    CHANNELS.with_borrow_mut(|channels| {
        for channel in &joined {
            if let Some(subscribers) = channels.get_mut(channel) {
                subscribers.retain(|(i, _)| *i != id);
            }
        }
    });
    result
}

async fn serve_websocket(socket: &Rc<TcpStream>, id: u64, joined: &mut Vec<String>) -> io::Result<()> {
    // Sinew's own decoder of client frames, so both pay the same for decoding.
    let mut decoder = wire::Decoder::default();
    loop {
        loop {
            let text = match decoder.next(MAX_MESSAGE) {
                Ok(Some(Incoming::Text(text))) => text,
                Ok(Some(Incoming::Ping(payload))) => {
                    write_all(socket, &wire::encode(wire::OP_PONG, &payload)).await?;
                    continue;
                }
                Ok(Some(Incoming::Close(_))) | Err(_) => return Ok(()),
                Ok(Some(_)) => continue,
                Ok(None) => break,
            };
            match serde_json::from_str::<ClientMessage<'_>>(&text) {
                Ok(m) if m.event == "pusher:subscribe" => {
                    let data: serde_json::Value =
                        m.data.and_then(|d| serde_json::from_str(d.get()).ok()).unwrap_or_default();
                    let channel = data["channel"].as_str().unwrap_or("").to_string();
                    let ok = serde_json::json!({
                        "event": "pusher_internal:subscription_succeeded", "channel": channel, "data": "{}",
                    });
                    write_all(socket, &text_frame(ok.to_string().as_bytes())).await?;
                    CHANNELS.with_borrow_mut(|c| c.entry(channel.clone()).or_default().push((id, socket.clone())));
                    joined.push(channel);
                }
                // Relayed as sent: the message already has the shape of the event.
                Ok(m) if m.event.starts_with("client-") => {
                    send_to_channel(m.channel.unwrap_or(""), &text_frame(text.as_bytes()), id);
                }
                _ => {}
            }
        }
        if !read_more(socket, &mut decoder.buf).await? {
            return Ok(());
        }
    }
}

/// One accepted connection: REST requests (kept alive) or a WebSocket upgrade.
async fn serve(socket: TcpStream, id: u64) -> io::Result<()> {
    socket.set_nodelay(true)?;
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                break end;
            }
            if !read_more(&socket, &mut buf).await? {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        if head.starts_with("GET ") {
            return websocket(socket, &head, id).await;
        }
        let len: usize = header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let Some(total) = (end + 4).checked_add(len).filter(|&t| t <= 1 << 20) else {
            return Ok(());
        };
        while buf.len() < total {
            if !read_more(&socket, &mut buf).await? {
                return Ok(());
            }
        }
        let body: serde_json::Value = serde_json::from_slice(&buf[end + 4..total]).unwrap_or_default();
        buf.drain(..total);
        // `channel` (as sinew-bench sends) or `channels` (as the official SDKs send).
        let channels = body["channels"].as_array().cloned().unwrap_or_else(|| vec![body["channel"].clone()]);
        for channel in channels.iter().filter_map(|c| c.as_str()) {
            let event = serde_json::json!({"event": body["name"], "channel": channel, "data": body["data"]});
            send_to_channel(channel, &text_frame(event.to_string().as_bytes()), 0);
        }
        write_all(&socket, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}").await?;
    }
}

fn main() -> io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(6001);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    tokio::task::LocalSet::new().block_on(&runtime, async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        tokio::task::spawn_local(async {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                let refused = REFUSED.with_borrow_mut(std::mem::take);
                if refused > 0 {
                    eprintln!("{refused} frames not taken whole by their sockets");
                }
            }
        });
        let mut next_id = 0;
        loop {
            let (socket, _) = listener.accept().await?;
            next_id += 1;
            tokio::task::spawn_local(async move {
                let _ = serve(socket, next_id).await;
            });
        }
    })
}
