//! The commands a connection sends: which key, SET or GET, and their encoding.

use bytes::{Bytes, BytesMut};
use tandem_resp::encode_request;

use crate::BenchConfig;

/// SplitMix64: tiny, fast, and good enough to spread keys; seeded per connection so a run's
/// command sequence is the same every time.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (multiply-shift: no division, bias below 2^-32 for any bound
    /// a keyspace can have in practice).
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(bound)) >> 64) as u64
    }

    /// A number in `[0, 1)` with 53 random bits.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One connection's command generator.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    rng: SplitMix64,
    keyspace: u64,
    read_ratio: f64,
    value: Bytes,
    /// Scratch space for the key being encoded, reused across commands.
    key: Vec<u8>,
    /// `WAIT n 0` after each SET, pre-encoded (empty when off).
    wait: Vec<u8>,
}

impl Workload {
    /// The generator of connection number `connection`.
    pub(crate) fn new(config: &BenchConfig, value: Bytes, connection: usize) -> Self {
        Workload {
            rng: SplitMix64(connection as u64),
            keyspace: config.keyspace,
            read_ratio: config.read_ratio,
            value,
            key: Vec::with_capacity(24),
            wait: wait_command(config.wait_replicas),
        }
    }

    /// Appends `count` random SETs and GETs to `out`, and for each the number of replies it
    /// takes (2 for a SET followed by WAIT) to `replies`.
    pub(crate) fn encode_batch(&mut self, count: u64, out: &mut BytesMut, replies: &mut Vec<u8>) {
        replies.clear();
        for _ in 0..count {
            let is_read = self.rng.unit() < self.read_ratio;
            let key = self.rng.below(self.keyspace);
            self.encode(is_read, key, out);
            if !is_read && !self.wait.is_empty() {
                out.extend_from_slice(&self.wait);
                replies.push(2);
            } else {
                replies.push(1);
            }
        }
    }

    /// Appends a SET of every key in `keys` to `out` (the warmup).
    pub(crate) fn encode_sets(&mut self, keys: std::ops::Range<u64>, out: &mut BytesMut) {
        for key in keys {
            self.encode(false, key, out);
        }
    }

    fn encode(&mut self, is_read: bool, key: u64, out: &mut BytesMut) {
        self.key.clear();
        self.key.extend_from_slice(b"key:");
        push_decimal(&mut self.key, key);
        if is_read {
            encode_request(&[b"GET", &self.key], out);
        } else {
            encode_request(&[b"SET", &self.key, &self.value], out);
        }
    }
}

/// Appends the decimal digits of `n` to `out`.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(read_ratio: f64, keyspace: u64) -> BenchConfig {
        BenchConfig {
            read_ratio,
            keyspace,
            ..BenchConfig::default()
        }
    }

    fn commands(workload: &mut Workload, count: u64) -> Vec<Vec<bytes::Bytes>> {
        let mut out = BytesMut::new();
        let mut replies = Vec::new();
        workload.encode_batch(count, &mut out, &mut replies);
        assert_eq!(replies.len() as u64, count);
        let limits = tandem_resp::Limits::default();
        let mut parsed = Vec::new();
        while let Some(args) = tandem_resp::parse_request(&mut out, &limits).unwrap() {
            parsed.push(args);
        }
        parsed
    }

    #[test]
    fn read_ratio_extremes_are_exact() {
        let value = Bytes::from_static(b"v");
        let sets = commands(&mut Workload::new(&config(0.0, 10), value.clone(), 0), 500);
        assert!(sets.iter().all(|args| args[0] == "SET" && args[2] == "v"));
        let gets = commands(&mut Workload::new(&config(1.0, 10), value, 0), 500);
        assert!(gets.iter().all(|args| args[0] == "GET" && args.len() == 2));
    }

    #[test]
    fn keys_stay_in_the_keyspace_and_cover_it() {
        let mut workload = Workload::new(&config(0.5, 7), Bytes::new(), 3);
        let mut seen = [false; 7];
        for args in commands(&mut workload, 1000) {
            let key = std::str::from_utf8(&args[1]).unwrap();
            let n: usize = key.strip_prefix("key:").unwrap().parse().unwrap();
            seen[n] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn same_connection_same_sequence() {
        let config = config(0.5, 1000);
        let a = commands(&mut Workload::new(&config, Bytes::new(), 5), 100);
        let b = commands(&mut Workload::new(&config, Bytes::new(), 5), 100);
        let c = commands(&mut Workload::new(&config, Bytes::new(), 6), 100);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn decimal_digits() {
        for n in [0, 7, 10, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}

/// The encoded `WAIT n 0` request, or nothing when `n` is 0.
fn wait_command(replicas: u32) -> Vec<u8> {
    if replicas == 0 {
        return Vec::new();
    }
    let mut out = BytesMut::new();
    let n = replicas.to_string();
    encode_request(&[b"WAIT", n.as_bytes(), b"0"], &mut out);
    out.to_vec()
}

#[cfg(test)]
mod wait_tests {
    use super::*;

    #[test]
    fn wait_follows_every_set_and_counts_two_replies() {
        let config = BenchConfig {
            read_ratio: 0.5,
            wait_replicas: 1,
            ..BenchConfig::default()
        };
        let mut workload = Workload::new(&config, Bytes::from_static(b"v"), 0);
        let mut out = BytesMut::new();
        let mut replies = Vec::new();
        workload.encode_batch(100, &mut out, &mut replies);
        let limits = tandem_resp::Limits::default();
        let mut kinds = Vec::new();
        while let Some(args) = tandem_resp::parse_request(&mut out, &limits).unwrap() {
            kinds.push(args[0].clone());
        }
        let sets = kinds.iter().filter(|k| k.as_ref() == b"SET").count();
        let waits = kinds.iter().filter(|k| k.as_ref() == b"WAIT").count();
        assert_eq!(sets, waits);
        assert_eq!(
            replies.iter().map(|n| usize::from(*n)).sum::<usize>(),
            kinds.len()
        );
    }
}
