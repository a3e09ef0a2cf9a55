//! Streams of requests, valid and not, fed in every possible way.

mod common;

use bytes::Bytes;
use common::{Outcome, Rng, feed_in_chunks, random_request};
use tandem_resp::{Limits, RequestParser, parse_request};

/// A random pipeline: its bytes and the requests it must parse into.
fn random_pipeline(rng: &mut Rng, request_count: usize) -> (Vec<u8>, Vec<Vec<Bytes>>) {
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..request_count {
        let request = random_request(rng);
        wire.extend_from_slice(&request.wire);
        expected.extend(request.args);
    }
    (wire, expected)
}

#[test]
fn pipeline_split_at_every_byte() {
    let limits = Limits::default();
    for seed in 1..=20 {
        let mut rng = Rng::new(seed);
        let (wire, expected) = random_pipeline(&mut rng, 25);
        let expected = Outcome {
            items: expected,
            error: None,
        };

        let byte_by_byte = feed_in_chunks(&wire, 1..wire.len(), &limits, parse_request);
        assert_eq!(byte_by_byte, expected, "seed {seed}, byte by byte");

        // The resumable parser answers the same, however the bytes are split (L2).
        let mut parser = RequestParser::new();
        let resumed = feed_in_chunks(&wire, 1..wire.len(), &limits, |buf, limits| {
            parser.parse(buf, limits)
        });
        assert_eq!(resumed, expected, "seed {seed}, byte by byte, resumed");

        for split in 0..=wire.len() {
            let two_reads = feed_in_chunks(&wire, [split], &limits, parse_request);
            assert_eq!(two_reads, expected, "seed {seed}, split at {split}");
        }
    }
}

#[test]
fn truncated_pipeline_yields_only_whole_requests() {
    let limits = Limits::default();
    let mut rng = Rng::new(7);
    for _ in 0..500 {
        let (wire, expected) = random_pipeline(&mut rng, 6);
        let cut = rng.below(wire.len() + 1);
        let outcome = feed_in_chunks(&wire[..cut], [], &limits, parse_request);
        assert_eq!(outcome.error, None);
        assert!(outcome.items.len() <= expected.len());
        assert_eq!(
            outcome.items[..],
            expected[..outcome.items.len()],
            "cut at {cut}"
        );
    }
}

/// Bytes that look enough like RESP to reach deep into the parser.
fn random_garbage(rng: &mut Rng) -> Vec<u8> {
    const TOKENS: &[&[u8]] = &[
        b"*",
        b"$",
        b"\r\n",
        b"\r",
        b"\n",
        b"0",
        b"1",
        b"2",
        b"-1",
        b"-",
        b"9999999999",
        b" ",
        b"\"",
        b"'",
        b"\\",
        b"\\x4",
        b"\\x41",
        b"a",
        b"PING",
        b"\0",
        b"+",
        b":",
        b"%",
        b"_",
        b",",
        b"#t",
        b"=",
        b"~",
        b">",
        b"!",
        b"\xff",
    ];
    let mut garbage = Vec::new();
    for _ in 0..rng.below(24) {
        if rng.chance(1, 8) {
            garbage.extend_from_slice(&rng.bytes(4));
        } else {
            garbage.extend_from_slice(rng.pick(TOKENS));
        }
    }
    garbage
}

/// Small limits, so that garbage also reaches every "too big" branch.
fn small_limits() -> Limits {
    Limits {
        max_bulk_bytes: 16,
        max_args: 4,
        max_inline_bytes: 12,
        max_buffer_bytes: usize::MAX,
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng::new(0x5eed);
    for round in 0..3000 {
        let mut wire = random_garbage(&mut rng);
        if rng.chance(1, 3) {
            // Valid requests around the garbage.
            let (mut pipeline, _) = random_pipeline(&mut rng, 2);
            pipeline.extend_from_slice(&wire);
            wire = pipeline;
        }
        for limits in [Limits::default(), small_limits()] {
            let whole = feed_in_chunks(&wire, [], &limits, parse_request);
            // The result depends only on the bytes, never on how they were split into reads.
            let byte_by_byte = feed_in_chunks(&wire, 1..wire.len(), &limits, parse_request);
            assert_eq!(
                byte_by_byte,
                whole,
                "round {round}: {:?}",
                String::from_utf8_lossy(&wire)
            );
            let mut parser = RequestParser::new();
            let resumed = feed_in_chunks(&wire, 1..wire.len(), &limits, |buf, limits| {
                parser.parse(buf, limits)
            });
            assert_eq!(resumed, whole, "round {round}, resumed");
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(99);
    for _ in 0..3000 {
        let wire = rng.bytes(48);
        for limits in [Limits::default(), small_limits()] {
            feed_in_chunks(&wire, [], &limits, parse_request);
            let cut = rng.below(wire.len() + 1);
            feed_in_chunks(&wire, [cut], &limits, parse_request);
        }
    }
}
