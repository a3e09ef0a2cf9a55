//! The internal frame decoder fed the fuzzer's bytes twice: as they are, and as the payload of
//! a frame with a correct header and checksum (so that every message's decoding is reached).
#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use tandem_runtime::wire::decode_frame;

const MAX_FRAME_BYTES: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = decode_frame(&mut buf, MAX_FRAME_BYTES) {}
    let mut framed = BytesMut::new();
    framed.put_u8(1);
    framed.put_u32(data.len() as u32);
    framed.put_u32(crc32(data));
    framed.extend_from_slice(data);
    let _ = decode_frame(&mut framed, MAX_FRAME_BYTES);
});

/// CRC-32 (IEEE), as the frame header carries it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
