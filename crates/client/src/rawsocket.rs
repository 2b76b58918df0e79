//! WAMP RawSocket as pure functions: the 4-octet handshake and the length-prefixed frames.
//!
//! Handshake (client to router): `0x7F`, `LLLL SSSS`, `0x00`, `0x00`, where `LLLL` is the
//! exponent of the largest message the client accepts (2^(9+L) bytes) and `SSSS` the serializer
//! (1 JSON, 2 MessagePack, 3 CBOR). The router echoes `0x7F`, its own `LLLL` and the serializer,
//! or refuses with an error code in the upper nibble and a zero serializer.
//!
//! Frames: a 4-octet header `RRRR XTTT` + 24-bit big-endian length, then the payload. `TTT` is
//! 0 for a WAMP message, 1 PING, 2 PONG (which echoes the PING payload); `X` is a 25th length
//! bit, used only for a payload of exactly 16 MiB; `RRRR` must be zero.

use bytes::{Buf, Bytes, BytesMut};
use wamp_proto::Serializer;

use crate::error::{Error, Result};

/// The first octet of every handshake.
pub const MAGIC: u8 = 0x7F;
/// The largest length exponent: 2^(9+15) = 16 MiB.
pub const MAX_LENGTH_EXPONENT: u8 = 15;
/// The largest payload a frame can carry: 16 MiB (with the `X` bit).
pub const MAX_FRAME_LEN: usize = 1 << 24;
/// Length of the handshake and of a frame header.
pub const HEADER_LEN: usize = 4;

/// The type of a frame (`TTT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// A WAMP message.
    Message = 0,
    Ping = 1,
    Pong = 2,
}

impl FrameType {
    pub fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(FrameType::Message),
            1 => Some(FrameType::Ping),
            2 => Some(FrameType::Pong),
            _ => None,
        }
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub frame_type: FrameType,
    pub payload: Bytes,
}

/// The largest message a length exponent announces: 2^(9+exp) bytes.
pub fn max_message_size(exponent: u8) -> usize {
    1usize << (9 + u32::from(exponent.min(MAX_LENGTH_EXPONENT)))
}

/// The client's handshake: accept messages up to 2^(9+`exponent`) bytes, speak `serializer`.
pub fn handshake_request(exponent: u8, serializer: Serializer) -> [u8; 4] {
    [
        MAGIC,
        (exponent.min(MAX_LENGTH_EXPONENT) << 4) | serializer.rawsocket_id(),
        0,
        0,
    ]
}

/// What the router answered to the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeReply {
    /// Accepted: the serializer echoed, and the largest message the router accepts.
    Accepted {
        serializer: Serializer,
        max_message_size: usize,
    },
    /// Refused with this error code (1 serializer unsupported, 2 maximum length unacceptable,
    /// 3 reserved bits used, 4 maximum connection count reached).
    Refused { code: u8 },
}

/// The text of a handshake error code.
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

/// Parses the router's handshake reply.
pub fn parse_handshake_reply(reply: [u8; 4]) -> Result<HandshakeReply> {
    if reply[0] != MAGIC {
        return Err(Error::Framing(format!(
            "handshake reply starts with 0x{:02X}, expected 0x7F",
            reply[0]
        )));
    }
    let (high, low) = (reply[1] >> 4, reply[1] & 0x0F);
    if low == 0 {
        return Ok(HandshakeReply::Refused { code: high });
    }
    if reply[2] != 0 || reply[3] != 0 {
        return Err(Error::Framing(format!(
            "handshake reply has non-zero reserved octets 0x{:02X} 0x{:02X}",
            reply[2], reply[3]
        )));
    }
    let serializer = Serializer::from_rawsocket_id(low)
        .ok_or_else(|| Error::Framing(format!("handshake reply names unknown serializer {low}")))?;
    Ok(HandshakeReply::Accepted {
        serializer,
        max_message_size: max_message_size(high),
    })
}

/// The header of a frame of `frame_type` (0..=7, so that reserved types can be sent on
/// purpose) carrying `len` bytes.
pub fn frame_header(frame_type: u8, len: usize) -> Result<[u8; 4]> {
    if frame_type > 7 {
        return Err(Error::Framing(format!(
            "frame type {frame_type} is not 0..=7"
        )));
    }
    if len > MAX_FRAME_LEN {
        return Err(Error::Framing(format!(
            "a frame carries at most {MAX_FRAME_LEN} bytes, not {len}"
        )));
    }
    let x = if len == MAX_FRAME_LEN { 0x08 } else { 0 };
    Ok([
        x | frame_type,
        (len >> 16) as u8,
        (len >> 8) as u8,
        len as u8,
    ])
}

/// A whole frame: header and payload.
pub fn encode_frame(frame_type: FrameType, payload: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&frame_header(frame_type as u8, payload.len())?);
    out.extend_from_slice(payload);
    Ok(out)
}

/// Takes one complete frame from the front of `buf`, if it holds one; `Ok(None)` when more
/// bytes are needed. Fails on reserved bits, reserved frame types, and payloads over
/// `max_len` (checked from the header, before the payload arrives).
pub fn decode_frame(buf: &mut BytesMut, max_len: usize) -> Result<Option<Frame>> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let b0 = buf[0];
    if b0 & 0xF0 != 0 {
        return Err(Error::Framing(format!(
            "frame header 0x{b0:02X} uses reserved bits"
        )));
    }
    let frame_type = FrameType::from_bits(b0 & 0x07)
        .ok_or_else(|| Error::Framing(format!("reserved frame type {}", b0 & 0x07)))?;
    let len = (usize::from(b0 & 0x08) << 21)
        | (usize::from(buf[1]) << 16)
        | (usize::from(buf[2]) << 8)
        | usize::from(buf[3]);
    if len > MAX_FRAME_LEN {
        return Err(Error::Framing(format!(
            "frame length {len} uses the X bit for more than 16 MiB"
        )));
    }
    if len > max_len {
        return Err(Error::Framing(format!(
            "frame of {len} bytes is over the announced maximum of {max_len}"
        )));
    }
    if buf.len() < HEADER_LEN + len {
        buf.reserve(HEADER_LEN + len - buf.len());
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    let payload = buf.split_to(len).freeze();
    Ok(Some(Frame {
        frame_type,
        payload,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_request_packs_length_and_serializer() {
        assert_eq!(handshake_request(15, Serializer::Json), [0x7F, 0xF1, 0, 0]);
        assert_eq!(
            handshake_request(0, Serializer::MsgPack),
            [0x7F, 0x02, 0, 0]
        );
        assert_eq!(handshake_request(9, Serializer::Cbor), [0x7F, 0x93, 0, 0]);
        // Out-of-range exponents are clamped.
        assert_eq!(handshake_request(99, Serializer::Cbor)[1], 0xF3);
    }

    #[test]
    fn handshake_reply_accepted_and_refused() {
        assert_eq!(
            parse_handshake_reply([0x7F, 0xF2, 0, 0]).unwrap(),
            HandshakeReply::Accepted {
                serializer: Serializer::MsgPack,
                max_message_size: 16 << 20
            }
        );
        assert_eq!(
            parse_handshake_reply([0x7F, 0x01, 0, 0]).unwrap(),
            HandshakeReply::Accepted {
                serializer: Serializer::Json,
                max_message_size: 512
            }
        );
        assert_eq!(
            parse_handshake_reply([0x7F, 0x10, 0, 0]).unwrap(),
            HandshakeReply::Refused { code: 1 }
        );
        assert_eq!(
            parse_handshake_reply([0x7F, 0x40, 0, 0]).unwrap(),
            HandshakeReply::Refused { code: 4 }
        );
        assert_eq!(refusal_reason(2), "maximum message length unacceptable");
        assert!(parse_handshake_reply([0x7E, 0x11, 0, 0]).is_err());
        assert!(parse_handshake_reply([0x7F, 0x17, 0, 0]).is_err());
        assert!(parse_handshake_reply([0x7F, 0x11, 0, 1]).is_err());
    }

    #[test]
    fn frame_headers() {
        assert_eq!(frame_header(0, 0).unwrap(), [0, 0, 0, 0]);
        assert_eq!(frame_header(1, 0x01_0203).unwrap(), [1, 1, 2, 3]);
        assert_eq!(frame_header(2, 0xFF_FFFF).unwrap(), [2, 0xFF, 0xFF, 0xFF]);
        // Exactly 16 MiB uses the X bit.
        assert_eq!(frame_header(0, 1 << 24).unwrap(), [0x08, 0, 0, 0]);
        assert!(frame_header(0, (1 << 24) + 1).is_err());
        assert!(frame_header(8, 1).is_err());
        assert_eq!(
            encode_frame(FrameType::Message, b"[1]").unwrap(),
            vec![0, 0, 0, 3, b'[', b'1', b']']
        );
    }

    #[test]
    fn decode_waits_for_whole_frames_and_keeps_the_rest() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0, 0, 0]);
        assert_eq!(decode_frame(&mut buf, 1024).unwrap(), None);
        buf.extend_from_slice(&[5, b'h', b'e']);
        assert_eq!(decode_frame(&mut buf, 1024).unwrap(), None);
        buf.extend_from_slice(b"llo");
        buf.extend_from_slice(&encode_frame(FrameType::Ping, b"pp").unwrap());
        buf.extend_from_slice(&[2, 0]);
        let f = decode_frame(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(f.frame_type, FrameType::Message);
        assert_eq!(&f.payload[..], b"hello");
        let f = decode_frame(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(f.frame_type, FrameType::Ping);
        assert_eq!(&f.payload[..], b"pp");
        assert_eq!(decode_frame(&mut buf, 1024).unwrap(), None);
        buf.extend_from_slice(&[0, 0]);
        let f = decode_frame(&mut buf, 1024).unwrap().unwrap();
        assert_eq!((f.frame_type, f.payload.len()), (FrameType::Pong, 0));
        assert!(buf.is_empty());
    }

    #[test]
    fn decode_refuses_bad_headers() {
        let mut reserved_type = BytesMut::from(&[3u8, 0, 0, 0][..]);
        assert!(decode_frame(&mut reserved_type, 1024).is_err());
        let mut reserved_bits = BytesMut::from(&[0x10u8, 0, 0, 0][..]);
        assert!(decode_frame(&mut reserved_bits, 1024).is_err());
        let mut too_long = BytesMut::from(&[0u8, 0, 4, 1][..]);
        assert!(decode_frame(&mut too_long, 1024).is_err());
        let mut x_bit = BytesMut::from(&[0x08u8, 0, 0, 1][..]);
        assert!(decode_frame(&mut x_bit, MAX_FRAME_LEN).is_err());
        let mut exactly_16m = BytesMut::from(&[0x08u8, 0, 0, 0][..]);
        assert_eq!(decode_frame(&mut exactly_16m, MAX_FRAME_LEN).unwrap(), None);
    }
}
