//! The WAMP RawSocket codec, sans-IO: the 4-octet handshake (request and reply), the 4-octet
//! frame header, and a frame decoder that looks at a byte buffer and says whether it holds a
//! whole frame. Routers and clients do the reading and buffering.
//!
//! Handshake, client to router: `0x7F`, `LLLL SSSS`, `0x00`, `0x00`. `LLLL` announces the
//! largest message the client accepts, 2^(9+L) octets; `SSSS` is the serializer (1 JSON,
//! 2 MessagePack, 3 CBOR). The router answers `0x7F`, its own `LLLL` and the same serializer, or
//! refuses with `0x7F`, `EEEE 0000`, `0x00`, `0x00` (`EEEE` a [`Refusal`] code). The last two
//! octets are reserved and must be zero.
//!
//! Frame header: `RRRRR TTT` then a 24-bit big-endian payload length. `RRRRR` are reserved and
//! must be zero; `TTT` is the [`FrameType`]. A frame therefore carries at most 2^24 − 1 octets
//! ([`MAX_FRAME_LEN`]), even when `LLLL` = 15 announces 2^24.
//!
//! Decoding works like mini-redis's `Frame::check`: [`check_frame`] validates the header as soon
//! as its 4 octets are in (so an oversized frame is refused before its payload is buffered) and
//! answers [`Check::Incomplete`] until the whole payload is there.

use thiserror::Error;

use crate::Serializer;

/// The first octet of every handshake (request and reply).
pub const MAGIC: u8 = 0x7F;
/// Length of the handshake and of a frame header.
pub const HEADER_LEN: usize = 4;
/// The largest length exponent `LLLL`: 2^(9+15) = 16 MiB.
pub const MAX_LENGTH_EXPONENT: u8 = 15;
/// The largest payload a frame can carry: the length field has 24 bits.
pub const MAX_FRAME_LEN: usize = (1 << 24) - 1;
/// The reserved bits of a frame header's first octet (`RRRRR` of `RRRRR TTT`).
const RESERVED_BITS: u8 = 0xF8;

// ===== Handshake =====

/// The largest message a length exponent announces: 2^(9+`exponent`) octets (the exponent is
/// clamped to [`MAX_LENGTH_EXPONENT`]).
pub fn max_message_size(exponent: u8) -> usize {
    1usize << (9 + u32::from(exponent.min(MAX_LENGTH_EXPONENT)))
}

/// The largest exponent `L` whose 2^(9+L) is at most `max_message_size` (0 below 512): what a
/// peer that accepts `max_message_size` octets announces.
pub fn length_exponent(max_message_size: usize) -> u8 {
    (0..=MAX_LENGTH_EXPONENT)
        .rev()
        .find(|&l| self::max_message_size(l) <= max_message_size)
        .unwrap_or(0)
}

/// A client's handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// `LLLL`: the client accepts messages up to 2^(9+L) octets.
    pub exponent: u8,
    /// `SSSS` as sent (see [`Serializer::from_rawsocket_id`]); whether it is supported is the
    /// router's decision.
    pub serializer_id: u8,
}

impl HandshakeRequest {
    /// A request for `serializer`, accepting messages up to 2^(9+`exponent`) octets (the
    /// exponent is clamped to [`MAX_LENGTH_EXPONENT`]).
    pub fn new(exponent: u8, serializer: Serializer) -> Self {
        Self {
            exponent: exponent.min(MAX_LENGTH_EXPONENT),
            serializer_id: serializer.rawsocket_id(),
        }
    }

    /// The largest message the client accepts, as announced: 2^(9+L) octets. A frame can carry
    /// at most [`MAX_FRAME_LEN`] of them.
    pub fn max_message_size(&self) -> usize {
        max_message_size(self.exponent)
    }

    /// The serializer asked for, if the id names one.
    pub fn serializer(&self) -> Option<Serializer> {
        Serializer::from_rawsocket_id(self.serializer_id)
    }

    /// The 4 octets a client sends: magic, length exponent and serializer id, two zero octets.
    pub fn encode(&self) -> [u8; 4] {
        [
            MAGIC,
            (self.exponent.min(MAX_LENGTH_EXPONENT) << 4) | (self.serializer_id & 0x0F),
            0,
            0,
        ]
    }

    /// Parses a client's 4 octets. A non-zero serializer id is not checked here.
    pub fn decode(octets: [u8; 4]) -> Result<Self, HandshakeError> {
        check_magic_and_reserved(octets)?;
        Ok(Self {
            exponent: octets[1] >> 4,
            serializer_id: octets[1] & 0x0F,
        })
    }
}

/// Why a router refuses a handshake: the error code `EEEE` of its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// 1: the serializer is not supported (on this endpoint).
    SerializerUnsupported = 1,
    /// 2: the maximum message length the client announced is unacceptable.
    MaxLengthUnacceptable = 2,
    /// 3: the handshake uses reserved bits.
    ReservedBits = 3,
    /// 4: the router has reached its maximum connection count.
    ConnectionLimit = 4,
}

impl Refusal {
    /// The wire code (1..=4).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The refusal a reply's error code names; `None` for 0 and codes above 4.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Refusal::SerializerUnsupported),
            2 => Some(Refusal::MaxLengthUnacceptable),
            3 => Some(Refusal::ReservedBits),
            4 => Some(Refusal::ConnectionLimit),
            _ => None,
        }
    }
}

/// The text of a handshake error code, as the WAMP specification words it.
pub fn refusal_reason(code: u8) -> &'static str {
    match code {
        0 => "illegal (error code 0)",
        1 => "serializer unsupported",
        2 => "maximum message length unacceptable",
        3 => "use of reserved bits (unsupported feature)",
        4 => "maximum connection count reached",
        _ => "unknown error code",
    }
}

/// A router's handshake reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeReply {
    /// Accepted: the serializer echoed, and the largest message the router accepts (2^(9+L)).
    Accepted {
        /// The serializer the router agreed to (the one the client asked for).
        serializer: Serializer,
        /// The largest message, in octets, the router accepts from the client.
        max_message_size: usize,
    },
    /// Refused with this error code (see [`Refusal::from_code`] and [`refusal_reason`]); codes
    /// outside 1..=4 are reported as they came.
    Refused {
        /// The error code `EEEE` of the reply (1..=4 are defined by the specification).
        code: u8,
    },
}

impl HandshakeReply {
    /// An acceptance: the router accepts messages up to 2^(9+`exponent`) octets.
    pub fn accept(exponent: u8, serializer: Serializer) -> [u8; 4] {
        HandshakeRequest::new(exponent, serializer).encode()
    }

    /// A refusal.
    pub fn refuse(refusal: Refusal) -> [u8; 4] {
        [MAGIC, refusal.code() << 4, 0, 0]
    }

    /// Parses a router's 4 octets. A refusal's reserved octets are not checked (the connection
    /// ends anyway, and the code is what matters).
    pub fn decode(octets: [u8; 4]) -> Result<Self, HandshakeError> {
        if octets[0] != MAGIC {
            return Err(HandshakeError::BadMagic(octets[0]));
        }
        let (high, low) = (octets[1] >> 4, octets[1] & 0x0F);
        if low == 0 {
            return Ok(HandshakeReply::Refused { code: high });
        }
        check_magic_and_reserved(octets)?;
        let serializer =
            Serializer::from_rawsocket_id(low).ok_or(HandshakeError::UnknownSerializer(low))?;
        Ok(HandshakeReply::Accepted {
            serializer,
            max_message_size: max_message_size(high),
        })
    }
}

fn check_magic_and_reserved(octets: [u8; 4]) -> Result<(), HandshakeError> {
    if octets[0] != MAGIC {
        return Err(HandshakeError::BadMagic(octets[0]));
    }
    if octets[2] != 0 || octets[3] != 0 {
        return Err(HandshakeError::ReservedOctets(octets[2], octets[3]));
    }
    Ok(())
}

/// Why 4 octets are not a valid handshake.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// The first octet is not `0x7F`: not a RawSocket peer at all.
    #[error("not a RawSocket handshake: first octet is {0:#04x}, expected 0x7f")]
    BadMagic(u8),
    /// The reserved third and fourth octets are not zero (a router refuses with
    /// [`Refusal::ReservedBits`]).
    #[error("reserved octets are {0:#04x} {1:#04x}, must be 0")]
    ReservedOctets(u8, u8),
    /// A reply accepted a serializer id that names no serializer.
    #[error("handshake reply names unknown serializer {0}")]
    UnknownSerializer(u8),
}

// ===== Frames =====

/// The type of a frame (`TTT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// A WAMP message.
    Message = 0,
    /// A PING: the peer answers with a PONG carrying the same payload.
    Ping = 1,
    /// A PONG, answering a PING.
    Pong = 2,
}

impl FrameType {
    /// The type for `TTT`, if it is not reserved (3..=7 are).
    pub fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(FrameType::Message),
            1 => Some(FrameType::Ping),
            2 => Some(FrameType::Pong),
            _ => None,
        }
    }
}

/// A frame header: the type and the payload length that follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the frame carries: a WAMP message, a PING or a PONG.
    pub frame_type: FrameType,
    /// Payload octets after the header (at most [`MAX_FRAME_LEN`]).
    pub len: usize,
}

impl FrameHeader {
    /// A header for a frame of `frame_type` with `len` payload octets (checked on encoding).
    pub fn new(frame_type: FrameType, len: usize) -> Self {
        Self { frame_type, len }
    }

    /// The 4 octets; fails for a payload over [`MAX_FRAME_LEN`].
    pub fn encode(&self) -> Result<[u8; 4], FrameError> {
        raw_frame_header(self.frame_type as u8, self.len)
    }

    /// Parses 4 octets; fails on reserved bits and reserved types. The length is not checked
    /// against a maximum here (see [`check_frame`]).
    pub fn decode(octets: [u8; 4]) -> Result<Self, FrameError> {
        let b0 = octets[0];
        if b0 & RESERVED_BITS != 0 {
            return Err(FrameError::ReservedBits(b0));
        }
        let frame_type = FrameType::from_bits(b0).ok_or(FrameError::UnknownType(b0))?;
        let len =
            (usize::from(octets[1]) << 16) | (usize::from(octets[2]) << 8) | usize::from(octets[3]);
        Ok(Self { frame_type, len })
    }
}

/// The header of a frame with type bits `frame_type` (0..=7, so that tests can send reserved
/// types on purpose) carrying `len` octets.
pub fn raw_frame_header(frame_type: u8, len: usize) -> Result<[u8; 4], FrameError> {
    if frame_type > 7 {
        return Err(FrameError::UnknownType(frame_type));
    }
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLong {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    Ok([frame_type, (len >> 16) as u8, (len >> 8) as u8, len as u8])
}

/// What the front of a receive buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Not a whole frame yet: read more. `header` is the frame's (already validated) header
    /// once its 4 octets are in, `None` before.
    Incomplete {
        /// The validated header once its 4 octets have arrived, `None` before.
        header: Option<FrameHeader>,
    },
    /// A whole frame: the header, then `header.len` payload octets, [`Check::frame_len`] in all.
    Frame(FrameHeader),
}

impl Check {
    /// The octets of a whole frame, header included (0 when incomplete).
    pub fn frame_len(&self) -> usize {
        match self {
            Check::Frame(h) => HEADER_LEN + h.len,
            Check::Incomplete { .. } => 0,
        }
    }
}

/// Looks at the front of `buf`: a whole frame, not yet, or a framing violation. A payload over
/// `max_len` (the receiver's announced maximum) is refused from the header alone.
pub fn check_frame(buf: &[u8], max_len: usize) -> Result<Check, FrameError> {
    let Some(octets) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(Check::Incomplete { header: None });
    };
    let header = FrameHeader::decode(*octets)?;
    let max = max_len.min(MAX_FRAME_LEN);
    if header.len > max {
        return Err(FrameError::TooLong {
            len: header.len,
            max,
        });
    }
    if buf.len() < HEADER_LEN + header.len {
        return Ok(Check::Incomplete {
            header: Some(header),
        });
    }
    Ok(Check::Frame(header))
}

/// A whole frame: header and payload.
pub fn encode_frame(frame_type: FrameType, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let header = FrameHeader::new(frame_type, payload.len()).encode()?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    Ok(out)
}

/// A framing violation (received) or a frame that cannot be encoded (sent).
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The first header octet sets one of the 5 reserved bits (`RRRRR` of `RRRRR TTT`).
    #[error("frame header {0:#04x} sets reserved bits (the upper 5 bits must be 0)")]
    ReservedBits(u8),
    /// The frame type is reserved (3..=7), or not 0..=7 when encoding.
    #[error("frame of unknown type {0}")]
    UnknownType(u8),
    /// The payload is longer than the receiver accepts (or than 24 bits can say).
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLong {
        /// The payload length the header announces.
        len: usize,
        /// The largest payload the receiver accepts.
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    // ----- handshake -----

    #[test]
    fn request_round_trips_every_exponent_and_serializer() {
        for ser in Serializer::ALL {
            for l in 0..=MAX_LENGTH_EXPONENT {
                let r = HandshakeRequest::new(l, ser);
                let octets = r.encode();
                assert_eq!(octets, [0x7F, (l << 4) | ser.rawsocket_id(), 0, 0]);
                let back = HandshakeRequest::decode(octets).unwrap();
                assert_eq!(back, r);
                assert_eq!(back.serializer(), Some(ser));
                assert_eq!(back.max_message_size(), 1 << (9 + l));
            }
        }
        assert_eq!(
            HandshakeRequest::new(15, Serializer::Json).encode(),
            [0x7F, 0xF1, 0, 0]
        );
        assert_eq!(
            HandshakeRequest::new(0, Serializer::MsgPack).encode(),
            [0x7F, 0x02, 0, 0]
        );
        // Out-of-range exponents are clamped.
        assert_eq!(
            HandshakeRequest::new(99, Serializer::Cbor).encode()[1],
            0xF3
        );
    }

    #[test]
    fn request_errors() {
        assert_eq!(
            HandshakeRequest::decode(*b"GET "),
            Err(HandshakeError::BadMagic(b'G'))
        );
        assert_eq!(
            HandshakeRequest::decode([0x7F, 0xF1, 0, 1]),
            Err(HandshakeError::ReservedOctets(0, 1))
        );
        assert_eq!(
            HandshakeRequest::decode([0x7F, 0xF1, 0x80, 0]),
            Err(HandshakeError::ReservedOctets(0x80, 0))
        );
        // Unknown serializer ids (and 0) decode; refusing them is the router's business.
        let r = HandshakeRequest::decode([0x7F, 0x35, 0, 0]).unwrap();
        assert_eq!((r.exponent, r.serializer_id, r.serializer()), (3, 5, None));
        let r = HandshakeRequest::decode([0x7F, 0x00, 0, 0]).unwrap();
        assert_eq!((r.serializer_id, r.max_message_size()), (0, 512));
        assert!(HandshakeError::BadMagic(0x47).to_string().contains("0x47"));
    }

    #[test]
    fn reply_accepted_refused_and_errors() {
        assert_eq!(
            HandshakeReply::decode([0x7F, 0xF2, 0, 0]).unwrap(),
            HandshakeReply::Accepted {
                serializer: Serializer::MsgPack,
                max_message_size: 16 << 20
            }
        );
        assert_eq!(
            HandshakeReply::decode(HandshakeReply::accept(0, Serializer::Json)).unwrap(),
            HandshakeReply::Accepted {
                serializer: Serializer::Json,
                max_message_size: 512
            }
        );
        for refusal in [
            Refusal::SerializerUnsupported,
            Refusal::MaxLengthUnacceptable,
            Refusal::ReservedBits,
            Refusal::ConnectionLimit,
        ] {
            let octets = HandshakeReply::refuse(refusal);
            assert_eq!(octets, [0x7F, refusal.code() << 4, 0, 0]);
            let HandshakeReply::Refused { code } = HandshakeReply::decode(octets).unwrap() else {
                panic!("refusal expected")
            };
            assert_eq!(Refusal::from_code(code), Some(refusal));
        }
        assert_eq!(
            HandshakeReply::refuse(Refusal::MaxLengthUnacceptable),
            [0x7F, 0x20, 0, 0]
        );
        assert_eq!(refusal_reason(2), "maximum message length unacceptable");
        assert_eq!(refusal_reason(0), "illegal (error code 0)");
        assert_eq!(refusal_reason(9), "unknown error code");
        assert_eq!(Refusal::from_code(0), None);
        assert_eq!(Refusal::from_code(5), None);
        // Unknown codes are reported as they came.
        assert_eq!(
            HandshakeReply::decode([0x7F, 0x90, 0, 0]).unwrap(),
            HandshakeReply::Refused { code: 9 }
        );
        assert_eq!(
            HandshakeReply::decode([0x7E, 0x11, 0, 0]),
            Err(HandshakeError::BadMagic(0x7E))
        );
        assert_eq!(
            HandshakeReply::decode([0x7F, 0x17, 0, 0]),
            Err(HandshakeError::UnknownSerializer(7))
        );
        assert_eq!(
            HandshakeReply::decode([0x7F, 0x11, 0, 1]),
            Err(HandshakeError::ReservedOctets(0, 1))
        );
    }

    #[test]
    fn exponents_and_sizes() {
        assert_eq!(max_message_size(0), 512);
        assert_eq!(max_message_size(15), 1 << 24);
        assert_eq!(max_message_size(200), 1 << 24);
        assert_eq!(length_exponent(0), 0);
        assert_eq!(length_exponent(512), 0);
        assert_eq!(length_exponent(1023), 0);
        assert_eq!(length_exponent(1024), 1);
        assert_eq!(length_exponent(65536), 7);
        assert_eq!(length_exponent(100_000), 7);
        assert_eq!(length_exponent(1 << 24), 15);
        assert_eq!(length_exponent(usize::MAX), 15);
    }

    // ----- frame headers -----

    #[test]
    fn frame_headers_encode_and_decode() {
        let cases = [
            (FrameType::Message, 0, [0, 0, 0, 0]),
            (FrameType::Ping, 0x01_0203, [1, 1, 2, 3]),
            (FrameType::Pong, 0xFF_FFFF, [2, 0xFF, 0xFF, 0xFF]),
            (FrameType::Message, MAX_FRAME_LEN, [0, 0xFF, 0xFF, 0xFF]),
            (FrameType::Message, 1 << 16, [0, 1, 0, 0]),
        ];
        for (t, len, octets) in cases {
            let h = FrameHeader::new(t, len);
            assert_eq!(h.encode().unwrap(), octets);
            assert_eq!(FrameHeader::decode(octets).unwrap(), h);
        }
        // 2^24 cannot be said in 24 bits.
        assert_eq!(
            FrameHeader::new(FrameType::Message, 1 << 24).encode(),
            Err(FrameError::TooLong {
                len: 1 << 24,
                max: MAX_FRAME_LEN
            })
        );
        assert_eq!(raw_frame_header(5, 3).unwrap(), [5, 0, 0, 3]);
        assert_eq!(raw_frame_header(8, 1), Err(FrameError::UnknownType(8)));
        assert_eq!(
            encode_frame(FrameType::Message, b"[1]").unwrap(),
            vec![0, 0, 0, 3, b'[', b'1', b']']
        );
        assert_eq!(
            encode_frame(FrameType::Pong, b"").unwrap(),
            vec![2, 0, 0, 0]
        );
    }

    #[test]
    fn every_reserved_bit_is_refused() {
        for bit in 3..8 {
            let b0 = 1u8 << bit;
            assert_eq!(
                FrameHeader::decode([b0, 0, 0, 1]),
                Err(FrameError::ReservedBits(b0)),
                "bit {bit}"
            );
            assert_eq!(
                check_frame(&[b0 | 1, 0, 0, 0], 1024),
                Err(FrameError::ReservedBits(b0 | 1))
            );
        }
        // The bit once read as a 25th length bit: 0x08 0 0 0 is not a 16 MiB frame.
        assert_eq!(
            check_frame(&[0x08, 0, 0, 0], usize::MAX),
            Err(FrameError::ReservedBits(0x08))
        );
        assert!(FrameError::ReservedBits(0x08).to_string().contains("0x08"));
    }

    #[test]
    fn reserved_types_are_refused() {
        for t in 3..8u8 {
            assert_eq!(
                FrameHeader::decode([t, 0, 0, 0]),
                Err(FrameError::UnknownType(t))
            );
            assert_eq!(
                check_frame(&[t, 0, 0, 0], 1024),
                Err(FrameError::UnknownType(t))
            );
        }
        assert_eq!(FrameType::from_bits(3), None);
    }

    // ----- the decoder -----

    #[test]
    fn incomplete_until_the_whole_frame_is_there() {
        let frame = encode_frame(FrameType::Message, b"hello").unwrap();
        for n in 0..HEADER_LEN {
            assert_eq!(
                check_frame(&frame[..n], 1024).unwrap(),
                Check::Incomplete { header: None },
                "{n} octets"
            );
        }
        let header = FrameHeader::new(FrameType::Message, 5);
        for n in HEADER_LEN..frame.len() {
            assert_eq!(
                check_frame(&frame[..n], 1024).unwrap(),
                Check::Incomplete {
                    header: Some(header)
                },
                "{n} octets"
            );
        }
        let c = check_frame(&frame, 1024).unwrap();
        assert_eq!(c, Check::Frame(header));
        assert_eq!(c.frame_len(), 9);
        assert_eq!(Check::Incomplete { header: None }.frame_len(), 0);
    }

    #[test]
    fn decodes_frames_one_after_another() {
        let mut buf = encode_frame(FrameType::Message, b"hello").unwrap();
        buf.extend(encode_frame(FrameType::Ping, b"pp").unwrap());
        buf.extend(encode_frame(FrameType::Pong, b"").unwrap());
        buf.extend([0, 0]);
        let mut at = 0;
        let mut seen = Vec::new();
        while let Check::Frame(h) = check_frame(&buf[at..], 1024).unwrap() {
            seen.push((
                h.frame_type,
                buf[at + HEADER_LEN..at + HEADER_LEN + h.len].to_vec(),
            ));
            at += HEADER_LEN + h.len;
        }
        assert_eq!(
            seen,
            vec![
                (FrameType::Message, b"hello".to_vec()),
                (FrameType::Ping, b"pp".to_vec()),
                (FrameType::Pong, vec![]),
            ]
        );
        assert_eq!(buf.len() - at, 2, "a partial header is left");
    }

    #[test]
    fn length_boundaries() {
        // Exactly the maximum passes; one more is refused from the header alone.
        assert_eq!(
            check_frame(&[0, 0, 4, 0], 1024).unwrap(),
            Check::Incomplete {
                header: Some(FrameHeader::new(FrameType::Message, 1024))
            }
        );
        assert_eq!(
            check_frame(&[0, 0, 4, 1], 1024),
            Err(FrameError::TooLong {
                len: 1025,
                max: 1024
            })
        );
        // PING and PONG are bounded by the same maximum.
        assert_eq!(
            check_frame(&[1, 0, 4, 1], 1024),
            Err(FrameError::TooLong {
                len: 1025,
                max: 1024
            })
        );
        assert_eq!(
            check_frame(&[2, 0, 4, 1], 1024),
            Err(FrameError::TooLong {
                len: 1025,
                max: 1024
            })
        );
        // The smallest announced maximum, 512.
        let mut f = encode_frame(FrameType::Message, &[7; 512]).unwrap();
        assert_eq!(check_frame(&f, 512).unwrap().frame_len(), 516);
        f = encode_frame(FrameType::Message, &[7; 513]).unwrap();
        assert_eq!(
            check_frame(&f, 512),
            Err(FrameError::TooLong { len: 513, max: 512 })
        );
        // 2^24 - 1 is the largest frame, also when 2^24 was announced (LLLL = 15).
        let h = [0, 0xFF, 0xFF, 0xFF];
        assert_eq!(
            check_frame(&h, max_message_size(15)).unwrap(),
            Check::Incomplete {
                header: Some(FrameHeader::new(FrameType::Message, MAX_FRAME_LEN))
            }
        );
        assert_eq!(
            check_frame(&h, MAX_FRAME_LEN - 1),
            Err(FrameError::TooLong {
                len: MAX_FRAME_LEN,
                max: MAX_FRAME_LEN - 1
            })
        );
        let big = encode_frame(FrameType::Message, &vec![0; MAX_FRAME_LEN]).unwrap();
        assert_eq!(big.len(), MAX_FRAME_LEN + HEADER_LEN);
        assert_eq!(
            check_frame(&big, 1 << 24).unwrap(),
            Check::Frame(FrameHeader::new(FrameType::Message, MAX_FRAME_LEN))
        );
        assert_eq!(
            check_frame(&big[..big.len() - 1], 1 << 24).unwrap(),
            Check::Incomplete {
                header: Some(FrameHeader::new(FrameType::Message, MAX_FRAME_LEN))
            }
        );
        // Empty frames of every type.
        for t in [FrameType::Message, FrameType::Ping, FrameType::Pong] {
            let f = encode_frame(t, b"").unwrap();
            assert_eq!(
                check_frame(&f, 0).unwrap(),
                Check::Frame(FrameHeader::new(t, 0))
            );
        }
    }

    #[test]
    fn ping_and_pong() {
        let ping = encode_frame(FrameType::Ping, b"are you there?").unwrap();
        assert_eq!(ping[..4], [1, 0, 0, 14]);
        let Check::Frame(h) = check_frame(&ping, 1024).unwrap() else {
            panic!("whole frame")
        };
        assert_eq!(h.frame_type, FrameType::Ping);
        // The PONG echoes the payload.
        let pong = encode_frame(FrameType::Pong, &ping[HEADER_LEN..]).unwrap();
        assert_eq!(pong[..4], [2, 0, 0, 14]);
        assert_eq!(pong[4..], ping[4..]);
        assert_eq!(
            check_frame(&pong, 1024).unwrap(),
            Check::Frame(FrameHeader::new(FrameType::Pong, 14))
        );
    }
}
