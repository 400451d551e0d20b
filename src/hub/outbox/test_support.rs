//! What the outbox's unit tests share: queues, a fake socket, a waker that counts.

use super::{DirectSink, Outbox, OutboxLimits};
use crate::hub::Frame;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

pub(super) fn outbox(max_messages: usize, max_bytes: usize) -> (Outbox, Arc<AtomicU64>) {
    let c = Arc::new(AtomicU64::new(0));
    (Outbox::new(OutboxLimits { max_messages, max_bytes }, c.clone()), c)
}

/// A socket that takes everything (recording it) until told to take nothing, or only so many
/// bytes more.
#[derive(Default)]
pub(super) struct FakeSocket {
    pub(super) written: Mutex<Vec<u8>>,
    pub(super) full: std::sync::atomic::AtomicBool,
    /// Bytes it takes before it is full; no limit when `None`.
    pub(super) room: Mutex<Option<usize>>,
}

impl FakeSocket {
    pub(super) fn set_room(&self, room: Option<usize>) {
        *self.room.lock().unwrap_or_else(|p| p.into_inner()) = room;
    }
}

impl DirectSink for FakeSocket {
    fn try_write(&self, frames: &mut dyn Iterator<Item = &Frame>, skip: usize) -> io::Result<usize> {
        let mut room = self.room.lock().unwrap_or_else(|p| p.into_inner());
        if self.full.load(Ordering::Relaxed) || *room == Some(0) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut w = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        for (i, f) in frames.enumerate() {
            let bytes = if i == 0 { &f.wire()[skip..] } else { f.wire() };
            let take = room.map_or(bytes.len(), |r| bytes.len().min(r - n));
            w.extend_from_slice(&bytes[..take]);
            n += take;
        }
        if let Some(r) = room.as_mut() {
            *r -= n;
        }
        Ok(n)
    }
    fn try_write_raw(&self, bytes: &[u8]) -> io::Result<usize> {
        self.try_write(&mut std::iter::empty(), 0)?;
        self.written.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn poll_writable(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Pending
    }
}

/// Counts its wake-ups.
#[derive(Default)]
pub(super) struct Wakes(pub(super) AtomicU64);

impl std::task::Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

pub(super) fn attached() -> (Outbox, Arc<FakeSocket>) {
    let (o, _) = outbox(10, 1000);
    let sock = Arc::new(FakeSocket::default());
    o.attach(sock.clone());
    (o, sock)
}

/// The texts of the text frames written to `s`, one after the other; every frame must be whole.
pub(super) fn written(s: &FakeSocket) -> String {
    let bytes = s.written.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (mut rest, mut texts) = (&bytes[..], String::new());
    while !rest.is_empty() {
        let (len, head) = match rest {
            [0x81, n @ 0..126, ..] => (usize::from(*n), 2),
            [0x81, 126, a, b, ..] => (usize::from(u16::from_be_bytes([*a, *b])), 4),
            _ => panic!("not a text frame header: {rest:?}"),
        };
        let Some((text, more)) = rest[head..].split_at_checked(len) else {
            panic!("a frame cut off: {rest:?}");
        };
        texts.push_str(&String::from_utf8_lossy(text));
        rest = more;
    }
    texts
}
