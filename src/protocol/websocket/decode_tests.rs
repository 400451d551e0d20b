//! Tests of `decode` (kept apart so the code's file stays short).
use super::super::{MAX_HEADER, close_frame, encode, header};
use super::*;

/// A masked client frame: first byte `b0` (FIN and opcode), then the length with the mask bit
/// set, the masking key, and `payload` masked with it.
fn client(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut h = [0; MAX_HEADER];
    let n = header(0, payload.len(), &mut h);
    h[0] = b0;
    h[1] |= 0x80;
    let mut out = h[..n].to_vec();
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn decode_all(d: &mut Decoder, max: usize) -> Vec<Result<Incoming, WireError>> {
    let mut out = Vec::new();
    loop {
        match d.next(max) {
            Ok(Some(m)) => out.push(Ok(m)),
            Ok(None) => return out,
            Err(e) => {
                out.push(Err(e));
                return out;
            }
        }
    }
}

#[test]
fn headers_by_length() {
    let mut h = [0; MAX_HEADER];
    assert_eq!(header(OP_TEXT, 5, &mut h), 2);
    assert_eq!(&h[..2], &[0x81, 5]);
    assert_eq!(header(OP_TEXT, 300, &mut h), 4);
    assert_eq!(&h[..4], &[0x81, 126, 1, 44]);
    assert_eq!(header(OP_TEXT, 70_000, &mut h), 10);
    assert_eq!(&h[..10], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    assert_eq!(header(OP_TEXT, 65_535, &mut h), 4);
    assert_eq!(header(OP_TEXT, 65_536, &mut h), 10);
}

#[test]
fn decodes_byte_by_byte_and_frees_the_buffer() {
    let text = "x".repeat(300);
    let mut bytes = client(0x81, b"hello");
    bytes.extend(client(0x81, text.as_bytes()));
    bytes.extend(client(0x89, b"p"));
    let mut d = Decoder::default();
    let mut got = Vec::new();
    for b in bytes {
        d.buf.push(b);
        got.extend(decode_all(&mut d, 1000));
    }
    assert_eq!(
        got,
        vec![Ok(Incoming::Text("hello".into())), Ok(Incoming::Text(text)), Ok(Incoming::Ping(b"p".to_vec()))]
    );
    assert_eq!(d.buf.capacity(), 0);
}

#[test]
fn joins_fragments_around_control_frames() {
    let mut d = Decoder::new(client(0x01, b"hel"));
    d.buf.extend(client(0x8A, b""));
    d.buf.extend(client(0x80, b"lo"));
    assert_eq!(decode_all(&mut d, 1000), vec![Ok(Incoming::Pong), Ok(Incoming::Text("hello".into()))]);
}

#[test]
fn refuses_bad_streams() {
    let cases: Vec<(Vec<u8>, WireError)> = vec![
        (vec![0x81, 0x05, b'h', b'e', b'l', b'l', b'o'], WireError::Protocol("client frame not masked")),
        (client(0xC1, b"x"), WireError::Protocol("reserved bits set")),
        (client(0x80, b"x"), WireError::Protocol("continuation without a message")),
        (client(0x09, b"x"), WireError::Protocol("fragmented or long control frame")),
        (client(0x83, b"x"), WireError::Protocol("unknown opcode")),
        (client(0x81, &[0xff, 0xfe]), WireError::Utf8),
        (client(0x88, &[3]), WireError::Protocol("close frame with a one-byte payload")),
    ];
    for (bytes, want) in cases {
        let mut d = Decoder::new(bytes);
        assert_eq!(decode_all(&mut d, 1000), vec![Err(want)]);
    }
    // Too big is known from the header alone, before the payload arrives.
    let mut d = Decoder::new(client(0x81, &[b'a'; 2000])[..8].to_vec());
    assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::TooBig)]);
    // A fragmented message over the limit in total.
    let mut d = Decoder::new(client(0x01, &[b'a'; 600]));
    d.buf.extend(client(0x80, &[b'a'; 600]));
    assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::TooBig)]);
}

#[test]
fn close_codes_and_frames() {
    let mut d = Decoder::new(client(0x88, &[0x03, 0xE8, b'b', b'y', b'e']));
    assert_eq!(decode_all(&mut d, 1000), vec![Ok(Incoming::Close(Some(1000)))]);
    let mut d = Decoder::new(client(0x88, b""));
    assert_eq!(decode_all(&mut d, 1000), vec![Ok(Incoming::Close(None))]);
    let long = "é".repeat(100);
    let f = close_frame(4100, &long);
    assert_eq!(f[0], 0x88);
    assert_eq!(f[1] as usize, f.len() - 2);
    assert!(f.len() - 2 <= 125);
    assert!(std::str::from_utf8(&f[4..]).is_ok());
}

/// A masked client frame header declaring a 64-bit length, with no payload.
fn long_header(b0: u8, len: u64) -> Vec<u8> {
    let mut out = vec![b0, 0x80 | 127];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[1, 2, 3, 4]);
    out
}

#[test]
fn invalid_close_codes_are_protocol_errors() {
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535] {
        let mut d = Decoder::new(client(0x88, &code.to_be_bytes()));
        assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::Protocol("invalid close code"))], "{code}");
        assert_eq!(WireError::Protocol("").close_code(), 1002);
    }
    for code in [1000u16, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4100, 4999] {
        let mut d = Decoder::new(client(0x88, &code.to_be_bytes()));
        assert_eq!(decode_all(&mut d, 1000), vec![Ok(Incoming::Close(Some(code)))], "{code}");
    }
    // A reason that is not UTF-8 is 1007.
    let mut d = Decoder::new(client(0x88, &[0x03, 0xE8, 0xC3, 0x28]));
    assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::Utf8)]);
}

#[test]
fn utf8_split_across_fragments() {
    // "€" (E2 82 AC) cut in every place.
    for cut in 1..3 {
        let euro = "€".as_bytes();
        let mut d = Decoder::new(client(0x01, &euro[..cut]));
        d.buf.extend(client(0x89, b"p"));
        d.buf.extend(client(0x80, &euro[cut..]));
        assert_eq!(
            decode_all(&mut d, 1000),
            vec![Ok(Incoming::Ping(b"p".to_vec())), Ok(Incoming::Text("€".into()))],
            "cut at {cut}"
        );
    }
    // One byte per fragment.
    let text = "aé€𝄞z";
    let bytes = text.as_bytes();
    let mut d = Decoder::new(client(0x01, &bytes[..1]));
    for b in &bytes[1..bytes.len() - 1] {
        d.buf.extend(client(0x00, &[*b]));
    }
    d.buf.extend(client(0x80, &bytes[bytes.len() - 1..]));
    assert_eq!(decode_all(&mut d, 1000), vec![Ok(Incoming::Text(text.into()))]);
    // Refused as soon as a fragment makes it invalid, before the message ends.
    let mut d = Decoder::new(client(0x01, b"ok"));
    d.buf.extend(client(0x00, &[0xE2, 0x28]));
    assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::Utf8)]);
    let mut d = Decoder::new(client(0x01, &[0xE2, 0x82]));
    d.buf.extend(client(0x00, &[0xFF]));
    assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::Utf8)]);
    // A character still cut when the message ends.
    let mut d = Decoder::new(client(0x01, b"a"));
    d.buf.extend(client(0x80, &[0xE2, 0x82]));
    assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::Utf8)]);
    // Binary messages are not checked.
    let mut d = Decoder::new(client(0x02, &[0xFF]));
    d.buf.extend(client(0x80, &[0xFE]));
    assert_eq!(decode_all(&mut d, 1000), vec![Ok(Incoming::Binary)]);
}

#[test]
fn frames_are_refused_from_their_header() {
    // Only the header (with its mask) has arrived in each case.
    let header_only = |frame: Vec<u8>| {
        let n = match frame[1] & 0x7F {
            126 => 8,
            127 => 14,
            _ => 6,
        };
        frame[..n].to_vec()
    };
    let cases: Vec<(Vec<u8>, WireError)> = vec![
        (header_only(client(0x83, b"abc")), WireError::Protocol("unknown opcode")),
        (header_only(client(0x8B, b"abc")), WireError::Protocol("unknown opcode")),
        (header_only(client(0x89, &[0; 126])), WireError::Protocol("fragmented or long control frame")),
        (header_only(client(0x08, b"")), WireError::Protocol("fragmented or long control frame")),
        (header_only(client(0xA1, b"x")), WireError::Protocol("reserved bits set")),
        (long_header(0x81, 1 << 63), WireError::Protocol("payload length with the top bit set")),
        (long_header(0x81, u64::MAX), WireError::Protocol("payload length with the top bit set")),
        (long_header(0x81, 1 << 40), WireError::TooBig),
        (long_header(0x82, 70_000), WireError::TooBig),
        // Lengths not in the fewest bytes (section 5.2).
        (long_header(0x81, 5), WireError::Protocol("payload length not in the fewest bytes")),
        (long_header(0x81, 0xFFFF), WireError::Protocol("payload length not in the fewest bytes")),
        (vec![0x81, 0x80 | 126, 0, 125, 1, 2, 3, 4], WireError::Protocol("payload length not in the fewest bytes")),
        (vec![0x89, 0x80 | 126, 0, 5, 1, 2, 3, 4], WireError::Protocol("payload length not in the fewest bytes")),
    ];
    for (bytes, want) in cases {
        let mut d = Decoder::new(bytes.clone());
        assert_eq!(decode_all(&mut d, 1000), vec![Err(want)], "{bytes:?}");
    }
    // A fragment while another message is open, or a continuation of nothing.
    let mut d = Decoder::new(client(0x01, b"a"));
    d.buf.extend(header_only(client(0x81, b"b")));
    assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::Protocol("new message inside a fragmented one"))]);
    let mut d = Decoder::new(client(0x02, b"a"));
    d.buf.extend(client(0x01, b"b"));
    assert_eq!(decode_all(&mut d, 1000), vec![Err(WireError::Protocol("new message inside a fragmented one"))]);
    let mut d = Decoder::new(client(0x81, b"done"));
    d.buf.extend(client(0x00, b"more"));
    assert_eq!(
        decode_all(&mut d, 1000),
        vec![Ok(Incoming::Text("done".into())), Err(WireError::Protocol("continuation without a message"))]
    );
}

#[test]
fn a_declared_length_reserves_nothing() {
    let mut d = Decoder::new(long_header(0x81, 100_000));
    d.buf.shrink_to_fit();
    assert_eq!(decode_all(&mut d, 128 * 1024), vec![]);
    assert!(d.buf.capacity() < 100, "{}", d.buf.capacity());
    // The payload still decodes once it arrives.
    let mut d = Decoder::default();
    for chunk in client(0x81, &[b'a'; 60_000]).chunks(4096) {
        d.buf.extend_from_slice(chunk);
        let got = decode_all(&mut d, 64 * 1024);
        if !got.is_empty() {
            assert_eq!(got, vec![Ok(Incoming::Text("a".repeat(60_000)))]);
            return;
        }
    }
    panic!("the message was not decoded");
}

#[test]
fn pings_carry_their_payload_and_may_sit_inside_a_fragmented_message() {
    let payload: Vec<u8> = (0..125).collect();
    let mut d = Decoder::new(client(0x01, b"ab"));
    d.buf.extend(client(0x89, &payload));
    d.buf.extend(client(0x00, b"cd"));
    d.buf.extend(client(0x89, b""));
    d.buf.extend(client(0x80, b"ef"));
    assert_eq!(
        decode_all(&mut d, 1000),
        vec![Ok(Incoming::Ping(payload)), Ok(Incoming::Ping(Vec::new())), Ok(Incoming::Text("abcdef".into()))]
    );
    let pong = encode(OP_PONG, b"xyz");
    assert_eq!(pong, vec![0x8A, 3, b'x', b'y', b'z']);
}

/// Round trips: what the server's encoders write, masked as a client would send it, decodes
/// to the same message, whole or cut into fragments with control frames between them, and
/// whatever the chunks the bytes arrive in.
mod round_trip {
    use super::*;
    use proptest::prelude::*;

    /// A server frame (as `encode` builds it) as a client sends it: the mask bit set, the key
    /// after the length, the payload masked with it.
    fn masked(frame: &[u8], key: [u8; 4]) -> Vec<u8> {
        let head = match frame[1] {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        let mut out = frame[..head].to_vec();
        out[1] |= 0x80;
        out.extend_from_slice(&key);
        out.extend(frame[head..].iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        out
    }

    /// Feeds `bytes` in chunks of the given sizes (cycled) and decodes all, up to the first error.
    fn decode_chunked(bytes: &[u8], sizes: &[usize], max: usize) -> Vec<Result<Incoming, WireError>> {
        let mut d = Decoder::default();
        let mut got = Vec::new();
        let mut at = 0;
        let mut i = 0;
        while at < bytes.len() {
            let n = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(bytes.len()).max(1);
            let end = (at + n).min(bytes.len());
            d.buf.extend_from_slice(&bytes[at..end]);
            at = end;
            i += 1;
            got.extend(decode_all(&mut d, max));
            if matches!(got.last(), Some(Err(_))) {
                break;
            }
        }
        got
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => any::<String>(),
            1 => "[a-zé€😀]{100,400}",
            // Lengths around the 16-bit and 64-bit length forms.
            1 => (65_530usize..65_540).prop_map(|n| "x".repeat(n)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn text_messages(
            s in text(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
            pings in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..126), 0..4),
            sizes in prop::collection::vec(1usize..300, 1..8),
            key in any::<[u8; 4]>(),
        ) {
            // Fragments cut at any byte, not only between characters.
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(s.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut bounds = vec![0];
            bounds.extend(cuts.into_iter().filter(|&c| c > 0 && c < s.len()));
            bounds.push(s.len());
            let mut bytes = Vec::new();
            let mut want = Vec::new();
            let n = bounds.len() - 1;
            for (i, w) in bounds.windows(2).enumerate() {
                let mut f = masked(&encode(OP_TEXT, &s.as_bytes()[w[0]..w[1]]), key);
                if i > 0 {
                    f[0] &= 0xF0; // a continuation
                }
                if i + 1 < n {
                    f[0] &= 0x7F; // not the last
                }
                bytes.extend(f);
                // A ping between this fragment and the next one.
                if let Some(p) = pings.get(i).filter(|_| i + 1 < n) {
                    bytes.extend(masked(&encode(OP_PING, p), key));
                    want.push(Ok(Incoming::Ping(p.clone())));
                }
            }
            want.push(Ok(Incoming::Text(s.clone())));
            prop_assert_eq!(decode_chunked(&bytes, &sizes, s.len()), want);
            // One byte under the size limit is refused.
            if !s.is_empty() {
                let got = decode_chunked(&bytes, &sizes, s.len() - 1);
                prop_assert_eq!(got.last(), Some(&Err(WireError::TooBig)));
            }
        }

        #[test]
        fn control_and_binary_frames(
            ping in prop::collection::vec(any::<u8>(), 0..126),
            code in prop::sample::select(vec![1000u16, 1001, 1002, 1003, 1007, 1008, 1011, 1014, 3000, 4000, 4100, 4999]),
            reason in ".{0,130}",
            binary in prop::collection::vec(any::<u8>(), 0..70_000),
            sizes in prop::collection::vec(1usize..5000, 1..4),
            key in any::<[u8; 4]>(),
        ) {
            let mut bytes = masked(&encode(OP_PING, &ping), key);
            bytes.extend(masked(&encode(OP_PONG, &ping), key));
            bytes.extend(masked(&encode(OP_BINARY, &binary), key));
            bytes.extend(masked(&close_frame(code, &reason), key));
            let want = vec![
                Ok(Incoming::Ping(ping)),
                Ok(Incoming::Pong),
                Ok(Incoming::Binary),
                Ok(Incoming::Close(Some(code))),
            ];
            prop_assert_eq!(decode_chunked(&bytes, &sizes, 70_000), want);
        }
    }
}
