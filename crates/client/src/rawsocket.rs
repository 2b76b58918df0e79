//! WAMP RawSocket for the client: the codec of [`wamp_proto::rawsocket`] (handshake and
//! framing), with the client's error type and a frame splitter over its receive buffer.

use bytes::{Buf, Bytes, BytesMut};
use wamp_proto::rawsocket::Check;
use wamp_proto::Serializer;

pub use wamp_proto::rawsocket::{
    max_message_size, refusal_reason, FrameError, FrameHeader, FrameType, HandshakeError,
    HandshakeReply, HandshakeRequest, Refusal, HEADER_LEN, MAGIC, MAX_FRAME_LEN,
    MAX_LENGTH_EXPONENT,
};

use crate::error::Result;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the frame carries: a WAMP message, a PING or a PONG.
    pub frame_type: FrameType,
    /// The frame's payload (a serialized WAMP message, or a PING/PONG's opaque octets).
    pub payload: Bytes,
}

/// The client's handshake: accept messages up to 2^(9+`exponent`) bytes, speak `serializer`.
pub fn handshake_request(exponent: u8, serializer: Serializer) -> [u8; 4] {
    HandshakeRequest::new(exponent, serializer).encode()
}

/// Parses the router's handshake reply.
pub fn parse_handshake_reply(reply: [u8; 4]) -> Result<HandshakeReply> {
    Ok(HandshakeReply::decode(reply)?)
}

/// The header of a frame of `frame_type` (0..=7, so that reserved types can be sent on
/// purpose) carrying `len` bytes (at most [`MAX_FRAME_LEN`]).
pub fn frame_header(frame_type: u8, len: usize) -> Result<[u8; 4]> {
    Ok(wamp_proto::rawsocket::raw_frame_header(frame_type, len)?)
}

/// A whole frame: header and payload.
pub fn encode_frame(frame_type: FrameType, payload: &[u8]) -> Result<Vec<u8>> {
    Ok(wamp_proto::rawsocket::encode_frame(frame_type, payload)?)
}

/// Takes one complete frame from the front of `buf`, if it holds one; `Ok(None)` when more
/// bytes are needed. Fails on reserved bits, reserved frame types, and payloads over
/// `max_len` (checked from the header, before the payload arrives).
pub fn decode_frame(buf: &mut BytesMut, max_len: usize) -> Result<Option<Frame>> {
    match wamp_proto::rawsocket::check_frame(buf, max_len)? {
        Check::Incomplete { header: None } => Ok(None),
        Check::Incomplete {
            header: Some(header),
        } => {
            buf.reserve(HEADER_LEN + header.len - buf.len());
            Ok(None)
        }
        Check::Frame(header) => {
            buf.advance(HEADER_LEN);
            let payload = buf.split_to(header.len).freeze();
            Ok(Some(Frame {
                frame_type: header.frame_type,
                payload,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn errors_are_framing_errors() {
        use crate::Error;
        for bad in [
            [3u8, 0, 0, 0],
            [0x10, 0, 0, 0],
            [0, 0, 4, 1],
            [0x08, 0, 0, 0],
        ] {
            let mut buf = BytesMut::from(&bad[..]);
            let err = decode_frame(&mut buf, 1024).unwrap_err();
            assert!(matches!(err, Error::Framing(_)), "{err}");
        }
        assert!(matches!(
            frame_header(0, 1 << 24).unwrap_err(),
            Error::Framing(_)
        ));
        assert!(matches!(
            parse_handshake_reply([0x7F, 0x11, 0, 1]).unwrap_err(),
            Error::Framing(_)
        ));
    }
}
