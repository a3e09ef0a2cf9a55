//! Time-bounded fuzzing of the RESP request parser, run by CI (README, "Fuzzing"): random and
//! mutated requests, fed to a [`RequestParser`] in random splits. It never panics, and what it
//! parses (every request, then how it stops: more bytes wanted, or which error) equals what
//! one-shot parses of the whole input give.
//!
//! Runs for `TANDEM_FUZZ_SECS` seconds (default 10) from seed `TANDEM_FUZZ_SEED` (default:
//! from the clock), one seed per input; a failing seed is printed with the command that
//! replays it alone.

mod common;

use bytes::{Bytes, BytesMut};
use common::{Rng, random_request};
use tandem_resp::{Limits, RequestParser, parse_request};

/// [`tandem_testkit::fuzz_for`] for this binary.
fn fuzz_for(test: &str, one: impl FnMut(u64)) {
    tandem_testkit::fuzz_for("-p tandem-resp --test fuzz_requests", test, one);
}

/// How parsing a byte stream went: the requests, then how it stopped.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    requests: Vec<Vec<Bytes>>,
    /// `None`: waiting for more bytes; `Some(text)`: refused with this error.
    error: Option<String>,
}

/// One-shot parses of the whole input, with no memory between calls.
fn one_shot(wire: &[u8], limits: &Limits) -> Outcome {
    let mut buf = BytesMut::from(wire);
    let mut requests = Vec::new();
    loop {
        match parse_request(&mut buf, limits) {
            Ok(Some(args)) => requests.push(args),
            Ok(None) => {
                return Outcome {
                    requests,
                    error: None,
                };
            }
            Err(error) => {
                return Outcome {
                    requests,
                    error: Some(error.to_string()),
                };
            }
        }
    }
}

/// A connection's parser fed `wire` in random reads.
fn in_splits(rng: &mut Rng, wire: &[u8], limits: &Limits) -> Outcome {
    let mut parser = RequestParser::new();
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    let mut rest = wire;
    loop {
        let take = match rng.below(4) {
            0 => 1,
            _ => rng.below(rest.len() + 1).max(1),
        }
        .min(rest.len());
        buf.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        loop {
            let before = buf.len();
            match parser.parse(&mut buf, limits) {
                Ok(Some(args)) => {
                    assert!(buf.len() < before, "a request consumed nothing");
                    requests.push(args);
                }
                Ok(None) => break,
                Err(error) => {
                    return Outcome {
                        requests,
                        error: Some(error.to_string()),
                    };
                }
            }
        }
        if rest.is_empty() {
            return Outcome {
                requests,
                error: None,
            };
        }
    }
}

/// `wire` with a few bytes flipped, inserted, removed or replaced by RESP punctuation.
fn mutate(rng: &mut Rng, mut wire: Vec<u8>) -> Vec<u8> {
    for _ in 0..=rng.below(4) {
        if wire.is_empty() {
            wire.push(b'*');
        }
        let at = rng.below(wire.len());
        match rng.below(6) {
            0 => wire[at] ^= 1 << rng.below(8),
            1 => wire.insert(at, rng.pick(b"*$+-:_,#(!=%~>|\r\n0123456789\"'\\ ")),
            2 => {
                wire.remove(at);
            }
            3 => wire[at] = rng.pick(b"-0123456789\r\n"),
            4 => {
                // Duplicate a slice: repeated headers, doubled arguments.
                let end = (at + 1 + rng.below(16)).min(wire.len());
                let copy = wire[at..end].to_vec();
                wire.splice(at..at, copy);
            }
            _ => wire.truncate(at),
        }
    }
    wire
}

/// The input of one seed: random bytes, or a few valid requests, mutated or not.
fn input(rng: &mut Rng) -> Vec<u8> {
    if rng.chance(1, 8) {
        return rng.bytes(256);
    }
    let mut wire = Vec::new();
    for _ in 0..=rng.below(4) {
        wire.extend(random_request(rng).wire);
    }
    if rng.chance(3, 4) {
        wire = mutate(rng, wire);
    }
    wire
}

/// Small limits, so that their checks are reached; the buffer limit is above any input, so
/// that it cannot refuse a split feed where the whole input holds a complete request.
fn small_limits() -> Limits {
    Limits {
        max_bulk_bytes: 8,
        max_args: 4,
        max_inline_bytes: 24,
        max_buffer_bytes: 1 << 20,
    }
}

#[test]
fn l2_requests_in_random_splits_parse_as_one_shot_and_never_panic() {
    fuzz_for(
        "l2_requests_in_random_splits_parse_as_one_shot_and_never_panic",
        |seed| {
            let mut rng = Rng::new(seed);
            let wire = input(&mut rng);
            for limits in [Limits::default(), small_limits()] {
                let whole = one_shot(&wire, &limits);
                let split = in_splits(&mut rng, &wire, &limits);
                assert_eq!(split, whole, "input {:?}", String::from_utf8_lossy(&wire));
            }
        },
    );
}

/// Hand-picked edge inputs (the loop above found none that broke the equality): an inline
/// request after a multibulk one, an empty argument, an unbalanced quote, a null bulk, a
/// request cut short, an inline line over the limit.
#[test]
fn l2_edge_inputs_parse_as_one_shot() {
    let long_inline = [b"GET ".as_slice(), &[b'a'; 40], b"\r\n"].concat();
    let cases: &[&[u8]] = &[
        b"*1\r\n$1\r\na\r\nGET a\r\n",
        b"GET a\r\n*1\r\n$0\r\n\r\n",
        b"SET \"a b\r\n",
        b"*1\r\n$-1\r\n",
        b"*2\r\n$1\r\na",
        &long_inline,
    ];
    for wire in cases {
        for seed in 0..64 {
            for limits in [Limits::default(), small_limits()] {
                assert_eq!(
                    in_splits(&mut Rng::new(seed), wire, &limits),
                    one_shot(wire, &limits),
                    "{:?}",
                    String::from_utf8_lossy(wire)
                );
            }
        }
    }
}
