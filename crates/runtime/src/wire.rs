//! Internal RPC frames: `[version u8 = 1][payload_len u32 BE][crc32 u32 BE][payload]`, the
//! payload being the postcard encoding of an [`Envelope`].
//!
//! Decoding is two-phase like the RESP parser: the 9-byte header is checked as soon as it is
//! in (version, declared length against the limit) before any payload is awaited, so a hostile
//! length never makes the reader allocate; then the whole payload is checksummed and decoded.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tandem_protocol::{Endpoint, Message};

/// The only frame version.
pub const FRAME_VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER_BYTES: usize = 9;

/// A message with its sender: what one frame carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Who sent it (as the sender declares itself).
    pub from: Endpoint,
    /// The message.
    pub msg: Message,
}

/// Why a frame was refused; the connection it came on is closed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The version byte is not [`FRAME_VERSION`].
    #[error("unknown frame version {0}")]
    Version(u8),
    /// The declared payload is larger than allowed.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Declared (or, when sending, actual) payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload does not match its checksum.
    #[error("frame checksum mismatch")]
    Checksum,
    /// The payload is not a valid envelope.
    #[error("undecodable frame payload: {0}")]
    Decode(String),
    /// The envelope could not be encoded (only for sending).
    #[error("cannot encode frame: {0}")]
    Encode(String),
}

/// Encodes `envelope` as one frame. Fails if the payload would exceed `max_frame_bytes`.
pub fn encode_frame(envelope: &Envelope, max_frame_bytes: usize) -> Result<Bytes, FrameError> {
    let mut out = vec![0u8; HEADER_BYTES];
    out = postcard::to_extend(envelope, out).map_err(|e| FrameError::Encode(e.to_string()))?;
    let len = out.len() - HEADER_BYTES;
    if len > max_frame_bytes {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame_bytes,
        });
    }
    let crc = crc32fast::hash(&out[HEADER_BYTES..]);
    let mut header = &mut out[..HEADER_BYTES];
    header.put_u8(FRAME_VERSION);
    header.put_u32(len as u32);
    header.put_u32(crc);
    Ok(Bytes::from(out))
}

/// The length (header included) of the frame at the front of `buf` when all of it is there.
pub fn complete_frame_len(buf: &[u8]) -> Option<usize> {
    let mut header = buf.get(..HEADER_BYTES)?;
    header.get_u8();
    let total = HEADER_BYTES.checked_add(header.get_u32() as usize)?;
    (buf.len() >= total).then_some(total)
}

/// Takes the next frame off the front of `buf`: `Ok(None)` when more bytes are needed (nothing
/// consumed), an error when the bytes can never form a valid frame.
pub fn decode_frame(
    buf: &mut BytesMut,
    max_frame_bytes: usize,
) -> Result<Option<Envelope>, FrameError> {
    if buf.len() < HEADER_BYTES {
        return Ok(None);
    }
    let mut header = &buf[..HEADER_BYTES];
    let version = header.get_u8();
    let len = header.get_u32() as usize;
    let crc = header.get_u32();
    if version != FRAME_VERSION {
        return Err(FrameError::Version(version));
    }
    if len > max_frame_bytes {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame_bytes,
        });
    }
    if buf.len() < HEADER_BYTES + len {
        return Ok(None);
    }
    buf.advance(HEADER_BYTES);
    let payload = buf.split_to(len);
    if crc32fast::hash(&payload) != crc {
        return Err(FrameError::Checksum);
    }
    postcard::from_bytes(&payload)
        .map(Some)
        .map_err(|e| FrameError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_protocol::GroupId;

    fn envelope() -> Envelope {
        Envelope {
            from: Endpoint::ViewService(tandem_protocol::VsAddr::new("127.0.0.1:7000")),
            msg: Message::GetView { group: GroupId(3) },
        }
    }

    #[test]
    fn round_trip_byte_by_byte() {
        let frame = encode_frame(&envelope(), 1 << 20).unwrap();
        let mut buf = BytesMut::new();
        for (i, byte) in frame.iter().enumerate() {
            buf.put_u8(*byte);
            let decoded = decode_frame(&mut buf, 1 << 20).unwrap();
            if i + 1 < frame.len() {
                assert_eq!(decoded, None);
            } else {
                assert_eq!(decoded, Some(envelope()));
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_version_checksum_and_length_are_refused() {
        let frame = encode_frame(&envelope(), 1 << 20).unwrap();
        let mut bad = BytesMut::from(&frame[..]);
        bad[0] = 7;
        assert_eq!(decode_frame(&mut bad, 1 << 20), Err(FrameError::Version(7)));
        let mut bad = BytesMut::from(&frame[..]);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert_eq!(decode_frame(&mut bad, 1 << 20), Err(FrameError::Checksum));
        // A declared 4 GiB payload is refused from the header alone.
        let mut bad = BytesMut::from(&[1u8, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0][..]);
        assert!(matches!(
            decode_frame(&mut bad, 1 << 20),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn oversized_frames_are_not_sent() {
        assert!(matches!(
            encode_frame(&envelope(), 2),
            Err(FrameError::TooLarge { .. })
        ));
    }
}
