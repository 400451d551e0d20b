//! HTTP fallback sessions: each is one Pusher [`Connection`] whose outbox is written to whichever
//! receive request is attached at the moment, and whose inbound messages arrive through `xhr_send`.
//!
//! One task per session owns the connection, so the outbox has a single reader and all protocol
//! handling stays in [`Connection`]. Handlers talk to the task through a bounded command channel.

use super::framing::{self, CLIENT_STREAM_LIMIT};
use crate::hub::{Drained, Frame, clock};
use crate::state::Context;
use crate::transport::connection::ClientQuery;
use crate::transport::connection::Connection;
use bytes::Bytes;
use dashmap::DashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant, sleep_until, timeout};

/// Chunks a receive response may have queued before the session waits for the client to read.
const BODY_CHUNKS: usize = 4;
/// Commands (sends, re-attachments) a session may have queued.
const COMMANDS: usize = 32;
/// A receive request that takes no data for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which receive endpoint a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `xhr_streaming`: one long response, frames as they come.
    Streaming,
    /// `xhr`: one batch (or a heartbeat) per response.
    Polling,
}

/// What a receive request is answered with.
pub enum Opened {
    /// The response body: frames arrive on this channel until the session ends or replaces it.
    Body(mpsc::Receiver<Bytes>),
    /// The connection was refused: the complete response body.
    Refused(Bytes),
}

enum Command {
    Attach(Attached),
    Messages(Vec<String>),
    /// Close the session with this code (e.g. 1009 for a message over the size limit).
    Close(u16, &'static str),
}

#[derive(Clone)]
struct Handle {
    id: u64,
    cmds: mpsc::Sender<Command>,
}

/// The live HTTP fallback sessions of this node, keyed by app key and `{server}/{session}`.
#[derive(Clone, Default)]
pub struct Sessions {
    map: Arc<DashMap<String, Handle>>,
    next_id: Arc<AtomicU64>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("len", &self.len()).finish()
    }
}

fn session_key(app_key: &str, session: &str) -> String {
    format!("{app_key}/{session}")
}

impl Sessions {
    /// Sessions currently alive.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no session is alive.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// True when the session exists.
    pub fn contains(&self, app_key: &str, session: &str) -> bool {
        self.map.contains_key(&session_key(app_key, session))
    }

    fn handle(&self, key: &str) -> Option<Handle> {
        self.map.get(key).map(|h| h.clone())
    }

    /// Attaches a receive request to the session, opening the session (and its Pusher connection)
    /// when it does not exist yet. `query` is the receive request's raw query string, `origin` its
    /// `Origin` header (checked when the session opens).
    pub async fn receive(
        &self,
        ctx: &Context,
        app_key: &str,
        session: &str,
        kind: Kind,
        query: Option<&str>,
        origin: Option<&str>,
    ) -> Opened {
        let key = session_key(app_key, session);
        if let Some(h) = self.handle(&key) {
            let (tx, rx) = mpsc::channel(BODY_CHUNKS);
            let first = first_chunk(kind, false);
            let written = first.len();
            if !first.is_empty() {
                let _ = tx.try_send(first);
            }
            if h.cmds.send(Command::Attach(Attached::new(kind, tx, written))).await.is_ok() {
                return Opened::Body(rx);
            }
            // The session ended meanwhile: forget it and answer as for a new session.
            self.map.remove_if(&key, |_, x| x.id == h.id);
        }
        let (tx, rx) = mpsc::channel(BODY_CHUNKS);
        let mut first = first_chunk(kind, true).to_vec();
        let opened = Connection::open(ctx, app_key, &ClientQuery::parse(query), origin).await;
        let conn = match opened {
            Ok(conn) => conn,
            Err(refusal) => {
                let mut text = String::new();
                framing::push_messages(&mut text, &[refusal.frame()]);
                framing::push_close(&mut text, refusal.code, &refusal.message);
                first.extend_from_slice(text.as_bytes());
                return Opened::Refused(Bytes::from(first));
            }
        };
        let written = first.len();
        let _ = tx.try_send(Bytes::from(first));
        let receiver = Attached::new(kind, tx, written);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (cmds_tx, cmds_rx) = mpsc::channel(COMMANDS);
        match self.map.entry(key.clone()) {
            dashmap::Entry::Occupied(e) => {
                // Another request opened the same session a moment earlier: join it instead.
                let h = e.get().clone();
                drop(e);
                drop(conn);
                let (tx, rx) = mpsc::channel(BODY_CHUNKS);
                if h.cmds.send(Command::Attach(Attached::new(kind, tx, 0))).await.is_ok() {
                    Opened::Body(rx)
                } else {
                    Opened::Refused(Bytes::new())
                }
            }
            dashmap::Entry::Vacant(v) => {
                v.insert(Handle { id, cmds: cmds_tx });
                tracing::debug!(socket_id = conn.socket_id(), session = %key, "http session opened");
                let task = Task {
                    ctx: ctx.clone(),
                    conn,
                    receiver: Some(receiver),
                    pending: None,
                    detached_at: Instant::now(),
                    done: false,
                };
                let sessions = self.clone();
                let app = task.conn.app().clone();
                app.stats().http_sessions.fetch_add(1, Ordering::Relaxed);
                ctx.tasks.spawn(async move {
                    task.run(cmds_rx).await;
                    sessions.map.remove_if(&key, |_, h| h.id == id);
                    app.stats().http_sessions.fetch_sub(1, Ordering::Relaxed);
                    tracing::debug!(session = %key, "http session closed");
                });
                Opened::Body(rx)
            }
        }
    }

    /// Hands messages from `xhr_send` to the session, in order. False when there is no such session.
    /// Closes a session with `code` (as a `c[code,reason]` frame on its stream).
    pub async fn close(&self, app_key: &str, session: &str, code: u16, reason: &'static str) -> bool {
        match self.handle(&session_key(app_key, session)) {
            Some(h) => h.cmds.send(Command::Close(code, reason)).await.is_ok(),
            None => false,
        }
    }

    /// Hands client messages to a session's task.
    pub async fn send(&self, app_key: &str, session: &str, messages: Vec<String>) -> bool {
        match self.handle(&session_key(app_key, session)) {
            Some(h) => h.cmds.send(Command::Messages(messages)).await.is_ok(),
            None => false,
        }
    }
}

/// The start of a receive response: the prelude on streams, then `o` when the session is new.
fn first_chunk(kind: Kind, open: bool) -> Bytes {
    let mut b = Vec::with_capacity(2051);
    if kind == Kind::Streaming {
        b.extend_from_slice(&framing::prelude());
    }
    if open {
        b.extend_from_slice(framing::OPEN);
    }
    Bytes::from(b)
}

/// The receive request currently attached to a session.
struct Attached {
    kind: Kind,
    tx: mpsc::Sender<Bytes>,
    /// Bytes written to this response so far.
    written: usize,
    /// Last write (streaming) or attach time (polling), for heartbeats.
    since: Instant,
    /// Set once the client is past its stream limit: nothing more is written until it re-attaches.
    full_at: Option<Instant>,
}

impl Attached {
    fn new(kind: Kind, tx: mpsc::Sender<Bytes>, written: usize) -> Self {
        Attached { kind, tx, written, since: Instant::now(), full_at: None }
    }
}

struct Task {
    ctx: Context,
    conn: Connection,
    receiver: Option<Attached>,
    /// Bytes that could not be written because the receiver went away, with whether they close.
    pending: Option<(Bytes, bool)>,
    detached_at: Instant,
    done: bool,
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn receiver_gone(r: Option<&Attached>) {
    match r {
        Some(r) => r.tx.closed().await,
        None => std::future::pending().await,
    }
}

impl Task {
    async fn run(mut self, mut cmds: mpsc::Receiver<Command>) {
        let outbox = self.conn.outbox().clone();
        let cfg = self.ctx.config.clone();
        let heartbeat = Duration::from_secs(cfg.http_heartbeat_interval);
        let orphan = Duration::from_secs(cfg.http_session_timeout);
        // Pings after `activity_timeout` of client silence (pusher-js answers through xhr_send)
        // and 4201 are the keepalive task's, as for every transport: this task reports what it
        // hears. Listen-only clients never send anything otherwise.
        let mut batch: Vec<Frame> = Vec::new();
        let mut shutdown_seen = false;
        while !self.done {
            let writable = self.receiver.as_ref().is_some_and(|r| r.full_at.is_none()) && self.pending.is_none();
            let heartbeat_at = self.receiver.as_ref().filter(|r| r.full_at.is_none()).map(|r| r.since + heartbeat);
            let expire_at = match &self.receiver {
                None => Some(self.detached_at + orphan),
                Some(r) => r.full_at.map(|t| t + orphan),
            };
            tokio::select! {
                biased;
                () = self.ctx.shutdown.cancelled(), if !shutdown_seen => {
                    shutdown_seen = true;
                    crate::transport::connection::shut_down(&outbox);
                    if self.receiver.is_none() {
                        break;
                    }
                }
                cmd = cmds.recv() => match cmd {
                    Some(Command::Attach(r)) => {
                        outbox.heard(clock());
                        self.receiver = Some(r);
                        if let Some((bytes, closes)) = self.pending.take() {
                            self.deliver(bytes, closes).await;
                        }
                    }
                    Some(Command::Messages(messages)) => {
                        outbox.heard(clock());
                        let stats = self.conn.app().stats();
                        stats.messages_in.fetch_add(messages.len() as u64, Ordering::Relaxed);
                        stats.bytes_in.fetch_add(messages.iter().map(|m| m.len() as u64).sum(), Ordering::Relaxed);
                        for m in &messages {
                            self.conn.handle_text(m).await;
                        }
                    }
                    Some(Command::Close(code, reason)) => outbox.close(None, code, reason),
                    None => break,
                },
                drained = outbox.next(&mut batch), if writable => {
                    let stats = self.conn.app().stats();
                    stats.messages_out.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    stats.bytes_out.fetch_add(batch.iter().map(|f| f.len() as u64).sum(), Ordering::Relaxed);
                    let mut text = String::new();
                    framing::push_messages(&mut text, &batch);
                    batch.clear();
                    let closes = match drained {
                        Drained::Close(c) => {
                            framing::push_close(&mut text, c.code, &c.reason);
                            true
                        }
                        Drained::Frames => false,
                    };
                    self.deliver(Bytes::from(text), closes).await;
                }
                () = receiver_gone(self.receiver.as_ref()) => self.detach(),
                () = sleep_until_some(heartbeat_at) => self.deliver(Bytes::from_static(framing::HEARTBEAT), false).await,
                () = sleep_until_some(expire_at) => break,
            }
        }
        tracing::debug!(socket_id = self.conn.socket_id(), "http session ending");
    }

    fn detach(&mut self) {
        self.receiver = None;
        self.detached_at = Instant::now();
    }

    /// Writes to the attached receiver; keeps the bytes for the next receiver when it is gone.
    async fn deliver(&mut self, bytes: Bytes, closes: bool) {
        let Some(r) = self.receiver.as_mut() else {
            self.pending = Some((bytes, closes));
            return;
        };
        let len = bytes.len();
        match timeout(WRITE_TIMEOUT, r.tx.send(bytes.clone())).await {
            Ok(Ok(())) => {
                if closes {
                    self.done = true;
                    return;
                }
                r.written += len;
                r.since = Instant::now();
                match r.kind {
                    Kind::Polling => self.detach(),
                    Kind::Streaming if r.written > CLIENT_STREAM_LIMIT => r.full_at = Some(Instant::now()),
                    Kind::Streaming => {}
                }
            }
            Ok(Err(_)) | Err(_) => {
                self.pending = Some((bytes, closes));
                self.detach();
            }
        }
    }
}
