//! The RawSocket handshake and framing codec (`wamp_proto::rawsocket`) on a byte stream that
//! arrives in arbitrary pieces, read the way the router's and the client's transports read it:
//! 4 octets of handshake, then frames, each looked at with `check_frame` as soon as more bytes
//! are in, until the stream ends or a framing violation stops it.
//!
//! Input: `[flags, split, stream...]`. `flags` bit 4 picks the side (0: a router reading a
//! client's request and then its frames; 1: a client reading a router's reply and then its
//! frames); bits 0–3 are the receiver's own length exponent `LLLL`, so the largest frame it
//! accepts is `max_message_size(LLLL)` (capped at [`MAX_FRAME_LEN`]). `split` seeds the sizes of
//! the pieces the stream arrives in (1 to 16 octets each, or the whole rest at once).
//!
//! For any input, [`check`] requires:
//!
//! 1. Nothing panics.
//! 2. No frame is longer than the receiver's maximum; a `TooLong` error names a length over
//!    it and that maximum; `Incomplete` never holds a whole frame, and its header (once 4
//!    octets are in) is the frame's, within the maximum.
//! 3. The outcome does not depend on how the stream was split: the frames, and the error or the
//!    bytes left over, are the same when it arrives in one piece.
//! 4. Round trip: each frame re-encoded (`encode_frame`) is the octets it was read from, and the
//!    re-encoded frames parsed back in one buffer give the same frames. A decoded handshake
//!    encodes back to octets that decode to the same handshake.
//! 5. Errors are typed (`HandshakeError`, `FrameError`) and their text is not empty; a refusal's
//!    code has a non-empty reason text.

use wamp_proto::rawsocket::{
    check_frame, encode_frame, length_exponent, max_message_size, refusal_reason, Check,
    FrameError, FrameHeader, FrameType, HandshakeError, HandshakeReply, HandshakeRequest, Refusal,
    HEADER_LEN, MAX_FRAME_LEN,
};

/// Which end of the connection reads the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// A router: the stream starts with a client's handshake request.
    Router,
    /// A client: the stream starts with a router's handshake reply.
    Client,
}

/// The handshake as the receiver read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handshake {
    Request(HandshakeRequest),
    Reply(HandshakeReply),
}

/// What reading a whole stream gave.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    /// `None` until 4 octets arrived.
    handshake: Option<Result<Handshake, HandshakeError>>,
    frames: Vec<(FrameType, Vec<u8>)>,
    /// The framing violation that stopped reading, if one did.
    error: Option<FrameError>,
    /// Octets received after the last whole frame when the stream ended (a partial frame);
    /// empty when reading stopped at an error.
    left_over: Vec<u8>,
}

/// Runs the checks above on `data`; panics if one fails.
pub fn check(data: &[u8]) {
    let [flags, split, stream @ ..] = data else {
        return;
    };
    let side = if flags & 0x10 == 0 {
        Side::Router
    } else {
        Side::Client
    };
    let max_len = max_message_size(flags & 0x0F).min(MAX_FRAME_LEN);
    check_exponents(max_message_size(flags & 0x0F));

    let pieces = split_sizes(*split, stream.len());
    let by_pieces = read_stream(side, max_len, stream, &pieces);
    let at_once = read_stream(side, max_len, stream, &[stream.len()]);
    assert_eq!(
        by_pieces, at_once,
        "split independence: the stream read in pieces {pieces:?} gave another outcome than read at once"
    );

    if let Some(handshake) = &by_pieces.handshake {
        check_handshake(side, stream, handshake);
    }
    check_round_trip(&by_pieces.frames, max_len);
    if let Some(e) = by_pieces.error {
        assert!(
            !e.to_string().is_empty(),
            "a frame error without text: {e:?}"
        );
    }
}

/// The sizes of the pieces `len` octets arrive in.
fn split_sizes(seed: u8, len: usize) -> Vec<usize> {
    if seed == 0 {
        return vec![len];
    }
    let mut state = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    let mut sizes = Vec::new();
    let mut total = 0;
    while total < len {
        // xorshift32: any sequence of small pieces, the same for the same seed.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = (1 + state % 16) as usize;
        sizes.push(size.min(len - total));
        total += size;
    }
    sizes
}

/// Reads `stream` as it would arrive in `pieces`, checking every `check_frame` answer.
fn read_stream(side: Side, max_len: usize, stream: &[u8], pieces: &[usize]) -> Outcome {
    let mut outcome = Outcome {
        handshake: None,
        frames: Vec::new(),
        error: None,
        left_over: Vec::new(),
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut at = 0;
    'pieces: for &size in pieces {
        buf.extend_from_slice(&stream[at..at + size]);
        at += size;
        if outcome.handshake.is_none() {
            let Some(octets) = buf.first_chunk::<HEADER_LEN>().copied() else {
                continue;
            };
            buf.drain(..HEADER_LEN);
            let read = match side {
                Side::Router => HandshakeRequest::decode(octets).map(Handshake::Request),
                Side::Client => HandshakeReply::decode(octets).map(Handshake::Reply),
            };
            let refused = !matches!(
                read,
                Ok(Handshake::Request(_)) | Ok(Handshake::Reply(HandshakeReply::Accepted { .. }))
            );
            outcome.handshake = Some(read);
            if refused {
                // A failed or refused handshake ends the connection: nothing more is read.
                buf.clear();
                break 'pieces;
            }
        }
        loop {
            let before = buf.len();
            match check_frame(&buf, max_len) {
                Ok(Check::Frame(header)) => {
                    assert!(
                        header.len <= max_len,
                        "a frame of {} octets over the maximum of {max_len}",
                        header.len
                    );
                    assert_eq!(Check::Frame(header).frame_len(), HEADER_LEN + header.len);
                    assert!(
                        HEADER_LEN + header.len <= before,
                        "a whole frame longer than the buffer"
                    );
                    let payload = buf[HEADER_LEN..HEADER_LEN + header.len].to_vec();
                    buf.drain(..HEADER_LEN + header.len);
                    outcome.frames.push((header.frame_type, payload));
                }
                Ok(Check::Incomplete { header }) => {
                    match header {
                        None => assert!(before < HEADER_LEN, "no header read from {before} octets"),
                        Some(h) => {
                            assert!(before >= HEADER_LEN, "a header from {before} octets");
                            assert!(
                                h.len <= max_len,
                                "an incomplete frame of {} octets over the maximum of {max_len}",
                                h.len
                            );
                            assert!(
                                before < HEADER_LEN + h.len,
                                "a whole frame called incomplete"
                            );
                            let octets =
                                buf.first_chunk::<HEADER_LEN>().copied().unwrap_or_default();
                            assert_eq!(FrameHeader::decode(octets), Ok(h), "another header");
                        }
                    }
                    continue 'pieces;
                }
                Err(e) => {
                    if let FrameError::TooLong { len, max } = e {
                        assert_eq!(max, max_len, "TooLong names another maximum: {e}");
                        assert!(len > max, "TooLong for a frame within the maximum: {e}");
                    }
                    outcome.error = Some(e);
                    // The connection ends: what else arrived is not read.
                    buf.clear();
                    break 'pieces;
                }
            }
        }
    }
    outcome.left_over = buf;
    outcome
}

/// A decoded handshake encodes back to octets that decode to it; errors have text.
fn check_handshake(side: Side, stream: &[u8], read: &Result<Handshake, HandshakeError>) {
    let octets: [u8; 4] = stream
        .first_chunk::<HEADER_LEN>()
        .copied()
        .expect("a handshake was read from 4 octets");
    match read {
        Err(e) => {
            assert!(
                !e.to_string().is_empty(),
                "a handshake error without text: {e:?}"
            );
            if let HandshakeError::BadMagic(b) = e {
                assert_eq!(*b, octets[0], "BadMagic names another octet");
            }
        }
        Ok(Handshake::Request(r)) => {
            assert_eq!(side, Side::Router);
            assert_eq!(
                r.encode(),
                octets,
                "a request does not encode to its octets"
            );
            assert_eq!(HandshakeRequest::decode(r.encode()), Ok(*r));
            assert_eq!(r.max_message_size(), max_message_size(r.exponent));
            if let Some(s) = r.serializer() {
                assert_eq!(s.rawsocket_id(), r.serializer_id);
                let again = HandshakeRequest::new(r.exponent, s);
                assert_eq!(
                    again, *r,
                    "HandshakeRequest::new differs from the decoded one"
                );
            }
        }
        Ok(Handshake::Reply(reply)) => {
            assert_eq!(side, Side::Client);
            let encoded = match *reply {
                HandshakeReply::Accepted {
                    serializer,
                    max_message_size: max,
                } => HandshakeReply::accept(length_exponent(max), serializer),
                HandshakeReply::Refused { code } => {
                    assert!(!refusal_reason(code).is_empty(), "code {code} has no text");
                    match Refusal::from_code(code) {
                        Some(r) => {
                            assert_eq!(r.code(), code);
                            HandshakeReply::refuse(r)
                        }
                        None => [octets[0], code << 4, 0, 0],
                    }
                }
            };
            assert_eq!(
                HandshakeReply::decode(encoded).as_ref(),
                Ok(reply),
                "a reply does not survive encoding"
            );
        }
    }
}

/// Frames re-encoded are valid frames with the same content, also read back to back.
fn check_round_trip(frames: &[(FrameType, Vec<u8>)], max_len: usize) {
    let mut all = Vec::new();
    for (t, payload) in frames {
        let bytes = encode_frame(*t, payload)
            .unwrap_or_else(|e| panic!("a frame read does not encode again: {e}"));
        let header = FrameHeader::new(*t, payload.len());
        assert_eq!(
            check_frame(&bytes, max_len),
            Ok(Check::Frame(header)),
            "a re-encoded frame does not read back"
        );
        all.extend_from_slice(&bytes);
    }
    let stream = [accept_all(), all].concat();
    let again = read_stream(Side::Router, max_len, &stream, &[stream.len()]).frames;
    assert_eq!(again, frames, "re-encoded frames read back differently");
}

/// A handshake request any router side reads without refusing.
fn accept_all() -> Vec<u8> {
    HandshakeRequest::new(0, wamp_proto::Serializer::Json)
        .encode()
        .to_vec()
}

/// `length_exponent` inverts `max_message_size` at its powers of two.
fn check_exponents(size: usize) {
    let l = length_exponent(size);
    assert_eq!(max_message_size(l), size, "exponent of {size}");
    assert!(max_message_size(length_exponent(size + 1)) <= size + 1);
}
