//! Shared test helpers: a seeded PRNG and generators of valid requests and frames.

#![allow(dead_code)] // Each test binary uses a different subset.

use bytes::{Bytes, BytesMut};
use tandem_resp::{Frame, Limits, ParseError, encode_request};

/// xorshift64*: tiny, deterministic, good enough to shake out parser bugs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..bound` (`bound` > 0; the modulo bias does not matter here).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    pub fn chance(&mut self, numerator: usize, denominator: usize) -> bool {
        self.below(denominator) < numerator
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    pub fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// One request on the wire and the arguments it must parse into (`None`: a request that is
/// skipped, such as `*0` or an empty inline line).
pub struct WireRequest {
    pub wire: Vec<u8>,
    pub args: Option<Vec<Bytes>>,
}

/// A random valid request: multibulk with arbitrary bytes, inline with plain and quoted
/// words, or an empty request.
pub fn random_request(rng: &mut Rng) -> WireRequest {
    match rng.below(10) {
        0 => WireRequest {
            wire: rng
                .pick::<&[u8]>(&[b"*0\r\n", b"*-1\r\n", b"\r\n", b"\n", b"  \t \r\n"])
                .to_vec(),
            args: None,
        },
        1..=3 => random_inline(rng),
        _ => {
            let args: Vec<Vec<u8>> = (0..1 + rng.below(5)).map(|_| rng.bytes(12)).collect();
            let slices: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let mut wire = BytesMut::new();
            encode_request(&slices, &mut wire);
            WireRequest {
                wire: wire.to_vec(),
                args: Some(args.into_iter().map(Bytes::from).collect()),
            }
        }
    }
}

fn random_inline(rng: &mut Rng) -> WireRequest {
    const PLAIN: &[u8] = b"abcXYZ019_-:.";
    let mut wire = Vec::new();
    let mut args = Vec::new();
    for _ in 0..1 + rng.below(4) {
        wire.extend_from_slice(rng.pick::<&[u8]>(&[b" ", b"  ", b"\t"]));
        if rng.chance(1, 3) {
            // Arbitrary bytes, hex-escaped inside double quotes.
            let arg = rng.bytes(6);
            wire.push(b'"');
            for byte in &arg {
                wire.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
            }
            wire.push(b'"');
            args.push(Bytes::from(arg));
        } else {
            let arg: Vec<u8> = (0..1 + rng.below(6)).map(|_| rng.pick(PLAIN)).collect();
            wire.extend_from_slice(&arg);
            args.push(Bytes::from(arg));
        }
    }
    wire.extend_from_slice(rng.pick::<&[u8]>(&[b"\r\n", b"\n", b" \r\n"]));
    WireRequest {
        wire,
        args: Some(args),
    }
}

/// A random frame, nested at most `depth` levels. No NaN (it is not equal to itself) and no
/// line breaks in simple strings (they are rewritten on encoding).
pub fn random_frame(rng: &mut Rng, depth: usize) -> Frame {
    let kinds = if depth == 0 { 8 } else { 10 };
    match rng.below(kinds) {
        0 => Frame::Simple(random_text(rng)),
        1 => Frame::Error(format!("ERR {}", random_text(rng))),
        2 => Frame::Integer(
            rng.pick(&[0, 1, -1, i64::MIN, i64::MAX]) ^ (rng.next_u64() as i64 >> rng.below(64)),
        ),
        3 => Frame::Bulk(Bytes::from(rng.bytes(10))),
        4 => Frame::Null,
        5 => Frame::Double(random_double(rng)),
        6 => Frame::Boolean(rng.chance(1, 2)),
        7 => Frame::Verbatim(
            rng.pick(&["txt", "mkd"]).to_string(),
            Bytes::from(rng.bytes(10)),
        ),
        8 => Frame::Array(
            (0..rng.below(4))
                .map(|_| random_frame(rng, depth - 1))
                .collect(),
        ),
        _ => Frame::Map(
            (0..rng.below(3))
                .map(|_| (random_frame(rng, depth - 1), random_frame(rng, depth - 1)))
                .collect(),
        ),
    }
}

fn random_text(rng: &mut Rng) -> String {
    const CHARS: &[char] = &['a', 'Z', '0', ' ', ':', '-', 'é', '✓', '\t'];
    (0..rng.below(8)).map(|_| rng.pick(CHARS)).collect()
}

fn random_double(rng: &mut Rng) -> f64 {
    let special = [
        0.0,
        -0.0,
        1.5,
        -3.0,
        1e300,
        2.5e-300,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        f64::MIN_POSITIVE,
    ];
    if rng.chance(1, 2) {
        return rng.pick(&special);
    }
    let value = f64::from_bits(rng.next_u64());
    if value.is_nan() { 0.25 } else { value }
}

/// Everything a stream of bytes parses into, and how the parsing ended.
#[derive(Debug, PartialEq)]
pub struct Outcome<T> {
    pub items: Vec<T>,
    pub error: Option<ParseError>,
}

/// Feeds `wire` in the given chunks, draining `parse` after each, until the end or an error.
pub fn feed_in_chunks<T>(
    wire: &[u8],
    chunk_ends: impl IntoIterator<Item = usize>,
    limits: &Limits,
    mut parse: impl FnMut(&mut BytesMut, &Limits) -> Result<Option<T>, ParseError>,
) -> Outcome<T> {
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut fed = 0;
    for end in chunk_ends.into_iter().chain([wire.len()]) {
        buf.extend_from_slice(&wire[fed..end.max(fed)]);
        fed = end.max(fed);
        loop {
            let len_before = buf.len();
            match parse(&mut buf, limits) {
                Ok(Some(item)) => {
                    assert!(buf.len() < len_before, "a parsed item consumed nothing");
                    items.push(item);
                }
                Ok(None) => break,
                Err(error) => {
                    return Outcome {
                        items,
                        error: Some(error),
                    };
                }
            }
        }
    }
    Outcome { items, error: None }
}
