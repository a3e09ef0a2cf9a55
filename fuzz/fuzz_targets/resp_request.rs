//! The RESP request parser (and the reply parser) fed the fuzzer's bytes, split where the
//! first byte says: no input may panic, and every parse that succeeds consumes bytes.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tandem_resp::{Limits, parse_frame, parse_request};

fuzz_target!(|data: &[u8]| {
    let Some((&split, wire)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_bulk_bytes: 1 << 16,
        max_args: 64,
        max_inline_bytes: 1 << 12,
        max_buffer_bytes: 1 << 18,
    };
    let at = usize::from(split).min(wire.len());
    let mut buf = BytesMut::from(&wire[..at]);
    let mut rest = &wire[at..];
    loop {
        loop {
            let before = buf.len();
            match parse_request(&mut buf, &limits) {
                Ok(Some(_)) => assert!(buf.len() < before),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if rest.is_empty() {
            break;
        }
        buf.extend_from_slice(rest);
        rest = &[];
    }
    let mut buf = BytesMut::from(wire);
    while let Ok(Some(_)) = parse_frame(&mut buf, &limits) {}
});
