//! The WebSocket frame decoder (`protocol::websocket::Decoder`), fed what a client sends.
//!
//! Input: byte 0 picks the mode (top bit) and, with byte 1, the message size limit; byte 2 seeds
//! the chunk sizes. In raw mode the rest is the byte stream as is. In frame mode the rest is a list
//! of frame specs (first byte, length byte, payload) that the target turns into correctly masked
//! frames, so fragmentation, control frames between fragments and UTF-8 split across fragments
//! are reached at once.
//!
//! Checked: no panic; the same messages and the same error whether the stream arrives whole or in
//! arbitrary chunks; no message over the limit; control payloads at most 125 bytes; close codes
//! allowed by RFC 6455; text is UTF-8 (a `String`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sinew::protocol::websocket::{Decoder, Incoming, WireError, close_code_allowed};

fuzz_target!(|data: &[u8]| {
    let [mode, limit, seed, rest @ ..] = data else { return };
    let max = usize::from(u16::from_be_bytes([mode & 0x7F, *limit]));
    let stream = if mode & 0x80 != 0 { frames(rest) } else { rest.to_vec() };

    let whole = decode(&stream, &[stream.len()], max);
    let chunks = chunk_sizes(*seed, stream.len());
    let chunked = decode(&stream, &chunks, max);
    assert_eq!(whole, chunked, "chunking changed the result (chunks {chunks:?})");

    for m in whole.iter().filter_map(|r| r.as_ref().ok()) {
        match m {
            Incoming::Text(s) => assert!(s.len() <= max, "text of {} bytes over the limit {max}", s.len()),
            Incoming::Ping(p) => assert!(p.len() <= 125),
            Incoming::Close(Some(code)) => assert!(close_code_allowed(*code), "close code {code}"),
            Incoming::Binary | Incoming::Pong | Incoming::Close(None) => {}
        }
    }
});

/// Decodes `stream` arriving in pieces of the given sizes; stops at the first error.
fn decode(stream: &[u8], chunks: &[usize], max: usize) -> Vec<Result<Incoming, WireError>> {
    let mut d = Decoder::default();
    let mut out = Vec::new();
    let mut at = 0;
    for &n in chunks {
        let end = (at + n).min(stream.len());
        d.buf.extend_from_slice(&stream[at..end]);
        at = end;
        loop {
            match d.next(max) {
                Ok(Some(m)) => out.push(Ok(m)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
    assert!(at == stream.len());
    out
}

/// Chunk sizes (1 to 16 bytes, from a tiny generator) covering `len` bytes.
fn chunk_sizes(seed: u8, len: usize) -> Vec<usize> {
    let mut x = u32::from(seed) | 1;
    let mut sizes = Vec::new();
    let mut total = 0;
    while total < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let n = (x % 16 + 1) as usize;
        sizes.push(n);
        total += n;
    }
    sizes.push(0);
    sizes
}

/// Frames from specs: `[b0, len, payload...]` where `len`'s low 6 bits are the payload length and
/// its top 2 bits the form: 7-bit length, 16-bit length, 64-bit length, or 7-bit length with `b0`
/// kept whole (reserved bits and all; the other forms clear them). Every frame is masked.
fn frames(mut specs: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let [b0, l, rest @ ..] = specs {
        let n = usize::from(l & 0x3F).min(rest.len());
        let (payload, next) = rest.split_at(n);
        specs = next;
        let form = l >> 6;
        out.push(if form == 3 { *b0 } else { b0 & 0x8F });
        match form {
            0 | 3 => out.push(0x80 | n as u8),
            1 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [b0.wrapping_mul(31), 0x5A, *l, 0xC3];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    }
    out
}
