//! Property tests: the request and reply parsers fed random bytes and mutated valid messages,
//! whole and split at random points, from a seeded generator. Nothing may panic, and every call
//! either returns a result, asks for more bytes without consuming any, or fails.

mod common;

use bytes::BytesMut;
use common::{Rng, random_frame, random_request};
use tandem_resp::{Limits, Protocol, encode, parse_frame, parse_request};

/// Small limits, so that the limit checks are reached too.
fn limits() -> Limits {
    Limits {
        max_bulk_bytes: 64,
        max_args: 16,
        max_inline_bytes: 128,
        max_buffer_bytes: 512,
    }
}

/// `wire` with a few bytes flipped, inserted, removed or replaced by RESP punctuation.
fn mutate(rng: &mut Rng, mut wire: Vec<u8>) -> Vec<u8> {
    for _ in 0..=rng.below(4) {
        if wire.is_empty() {
            wire.push(b'*');
        }
        let at = rng.below(wire.len());
        match rng.below(5) {
            0 => wire[at] ^= 1 << rng.below(8),
            1 => wire.insert(at, rng.pick(b"*$+-:_,#(!=%~>|\r\n0123456789")),
            2 => {
                wire.remove(at);
            }
            3 => wire[at] = rng.pick(b"-0123456789\r\n"),
            _ => wire.truncate(at),
        }
    }
    wire
}

/// Feeds `wire` in random chunks to `parse` until it stops making progress.
fn feed<T, E>(rng: &mut Rng, wire: &[u8], parse: impl Fn(&mut BytesMut) -> Result<Option<T>, E>) {
    let mut buf = BytesMut::new();
    let mut rest = wire;
    loop {
        let take = rng.below(rest.len() + 1).max(1).min(rest.len());
        buf.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        // Bounded: every successful parse consumes bytes.
        for _ in 0..=wire.len() {
            let before = buf.len();
            match parse(&mut buf) {
                Ok(Some(_)) => assert!(buf.len() < before, "a parse consumed nothing"),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if rest.is_empty() {
            return;
        }
    }
}

#[test]
fn requests_random_and_mutated_never_panic() {
    let limits = limits();
    for seed in 1..=3_000 {
        let mut rng = Rng::new(seed);
        let wire = if rng.chance(1, 4) {
            rng.bytes(256)
        } else {
            let mut wire = Vec::new();
            for _ in 0..=rng.below(3) {
                wire.extend(random_request(&mut rng).wire);
            }
            mutate(&mut rng, wire)
        };
        feed(&mut rng, &wire, |buf| parse_request(buf, &limits));
        feed(&mut rng, &wire, |buf| {
            parse_request(buf, &Limits::default())
        });
    }
}

#[test]
fn replies_random_and_mutated_never_panic() {
    let limits = limits();
    for seed in 1..=3_000 {
        let mut rng = Rng::new(seed);
        let wire = if rng.chance(1, 4) {
            rng.bytes(256)
        } else {
            let mut out = BytesMut::new();
            let proto = if rng.chance(1, 2) {
                Protocol::Resp2
            } else {
                Protocol::Resp3
            };
            encode(&random_frame(&mut rng, 3), proto, &mut out);
            mutate(&mut rng, out.to_vec())
        };
        feed(&mut rng, &wire, |buf| parse_frame(buf, &limits));
    }
}

/// Every input the `resp_request` cargo-fuzz target crashed on (`fuzz/regressions/`), replayed
/// the way the target feeds it.
#[test]
fn fuzz_regressions_replay_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions/resp_request");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let limits = Limits {
        max_bulk_bytes: 1 << 16,
        max_args: 64,
        max_inline_bytes: 1 << 12,
        max_buffer_bytes: 1 << 18,
    };
    for entry in entries.flatten() {
        let data = std::fs::read(entry.path()).expect("readable regression input");
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(_)) = parse_request(&mut buf, &limits) {}
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(_)) = parse_frame(&mut buf, &limits) {}
    }
}
