//! Replies encoded by `encode` parse back with `parse_frame`.

mod common;

use bytes::{Bytes, BytesMut};
use common::{Rng, feed_in_chunks, random_frame};
use tandem_resp::{Frame, Limits, Protocol, encode, encode_request, parse_frame, parse_request};

fn encoded(frames: &[Frame], proto: Protocol) -> Vec<u8> {
    let mut out = BytesMut::new();
    for frame in frames {
        encode(frame, proto, &mut out);
    }
    out.to_vec()
}

/// Whether `parsed` is what `sent` becomes after a RESP2 round trip: maps flattened, doubles
/// and verbatim strings as bulk strings, booleans as integers.
fn same_after_resp2(sent: &Frame, parsed: &Frame) -> bool {
    match (sent, parsed) {
        (Frame::Map(pairs), Frame::Array(items)) => {
            pairs.len() * 2 == items.len()
                && pairs
                    .iter()
                    .zip(items.chunks(2))
                    .all(|((key, value), pair)| {
                        same_after_resp2(key, &pair[0]) && same_after_resp2(value, &pair[1])
                    })
        }
        (Frame::Array(sent), Frame::Array(parsed)) => {
            sent.len() == parsed.len()
                && sent
                    .iter()
                    .zip(parsed)
                    .all(|(sent, parsed)| same_after_resp2(sent, parsed))
        }
        (Frame::Double(value), Frame::Bulk(text)) => std::str::from_utf8(text)
            .ok()
            .and_then(|text| text.parse::<f64>().ok())
            .is_some_and(|parsed| parsed.to_bits() == value.to_bits()),
        (Frame::Boolean(value), Frame::Integer(parsed)) => i64::from(*value) == *parsed,
        (Frame::Verbatim(_, text), Frame::Bulk(parsed)) => text == parsed,
        _ => sent == parsed,
    }
}

#[test]
fn resp3_frames_round_trip_exactly() {
    let mut rng = Rng::new(3);
    let frames: Vec<Frame> = (0..300).map(|_| random_frame(&mut rng, 3)).collect();
    let wire = encoded(&frames, Protocol::Resp3);
    let outcome = feed_in_chunks(&wire, [], &Limits::default(), parse_frame);
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.items, frames);
}

#[test]
fn resp2_frames_round_trip_modulo_flattening() {
    let mut rng = Rng::new(4);
    let frames: Vec<Frame> = (0..300).map(|_| random_frame(&mut rng, 3)).collect();
    let wire = encoded(&frames, Protocol::Resp2);
    let outcome = feed_in_chunks(&wire, [], &Limits::default(), parse_frame);
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.items.len(), frames.len());
    for (sent, parsed) in frames.iter().zip(&outcome.items) {
        assert!(
            same_after_resp2(sent, parsed),
            "{sent:?} came back as {parsed:?}"
        );
    }
}

#[test]
fn reply_stream_split_at_every_byte() {
    for seed in 1..=10 {
        let mut rng = Rng::new(seed);
        let frames: Vec<Frame> = (0..12).map(|_| random_frame(&mut rng, 2)).collect();
        let wire = encoded(&frames, Protocol::Resp3);
        let byte_by_byte = feed_in_chunks(&wire, 1..wire.len(), &Limits::default(), parse_frame);
        assert_eq!(byte_by_byte.error, None);
        assert_eq!(byte_by_byte.items, frames, "seed {seed}");
        for split in 0..=wire.len() {
            let two_reads = feed_in_chunks(&wire, [split], &Limits::default(), parse_frame);
            assert_eq!(two_reads.items, frames, "seed {seed}, split at {split}");
        }
    }
}

#[test]
fn garbage_replies_never_panic() {
    const TOKENS: &[&[u8]] = &[
        b"*", b"$", b"%", b"~", b">", b"=", b"!", b",", b"#", b"_", b"+", b"-", b":", b"\r\n",
        b"\r", b"1", b"2", b"4", b"-1", b"t", b"inf", b"nan", b"1e5", b"txt:", b".", b"\xff",
    ];
    let mut rng = Rng::new(0xbad);
    for round in 0..3000 {
        let mut wire = Vec::new();
        for _ in 0..rng.below(24) {
            wire.extend_from_slice(rng.pick(TOKENS));
        }
        let limits = Limits::default();
        let whole = feed_in_chunks(&wire, [], &limits, parse_frame);
        let byte_by_byte = feed_in_chunks(&wire, 1..wire.len(), &limits, parse_frame);
        // Frames may hold NaN, so compare their debug text rather than the frames.
        assert_eq!(
            format!("{byte_by_byte:?}"),
            format!("{whole:?}"),
            "round {round}: {:?}",
            String::from_utf8_lossy(&wire)
        );
    }
}

#[test]
fn encoded_requests_parse_back_into_their_args() {
    let mut rng = Rng::new(11);
    for _ in 0..500 {
        let args: Vec<Vec<u8>> = (0..1 + rng.below(6)).map(|_| rng.bytes(20)).collect();
        let slices: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let mut wire = BytesMut::new();
        encode_request(&slices, &mut wire);
        let parsed = parse_request(&mut wire, &Limits::default());
        let expected: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
        assert_eq!(parsed, Ok(Some(expected)));
        assert!(wire.is_empty());
    }
}
