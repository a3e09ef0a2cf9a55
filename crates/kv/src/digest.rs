//! FNV-1a hashing: the keyspace order (63-bit key hash) and the store digest.
//!
//! Hand-written so the result is the same on every machine, build and run (unlike
//! `std`'s `DefaultHasher`, whose algorithm is unspecified and may change).

use crate::store::{Entry, Store, Value};

/// Keeps the low 63 bits of a hash (the keyspace order and SCAN cursors use 63 bits,
/// so `hash + 1` always fits a `u64` and a cursor is never ambiguous).
pub(crate) const HASH_MASK: u64 = u64::MAX >> 1;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// An incremental 64-bit FNV-1a hasher.
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Fnv {
        Fnv(FNV_OFFSET)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
        }
    }

    pub(crate) fn write_u64(&mut self, n: u64) {
        self.write(&n.to_le_bytes());
    }

    /// Writes a length prefix then the bytes, so ("ab","c") and ("a","bc") differ.
    pub(crate) fn write_field(&mut self, bytes: &[u8]) {
        self.write_u64(bytes.len() as u64);
        self.write(bytes);
    }

    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

/// The 63-bit FNV-1a hash that orders the keyspace.
pub(crate) fn key_hash(key: &[u8]) -> u64 {
    let mut fnv = Fnv::new();
    fnv.write(key);
    fnv.finish() & HASH_MASK
}

impl Store {
    /// A digest of every key in memory (expired ones too), its value and its expiry, and of
    /// the ACL table.
    /// Equal stores give equal digests on every machine and run; O(size of the store).
    pub fn digest(&self) -> u64 {
        let mut fnv = Fnv::new();
        fnv.write_u64(self.data.len() as u64);
        for item in self.data.iter() {
            fnv.write_field(item.key());
            write_entry(&mut fnv, &item.entry);
        }
        self.acl.write_digest(&mut fnv); // A1: backups reach identical ACL tables.
        fnv.finish()
    }
}

fn write_entry(fnv: &mut Fnv, entry: &Entry) {
    match entry.expires_at_ms {
        Some(at) => {
            fnv.write(&[1]);
            fnv.write_u64(at);
        }
        None => fnv.write(&[0]),
    }
    match &entry.value {
        Value::Str(text) => {
            fnv.write(b"s");
            fnv.write_field(text);
        }
        Value::List(list) => {
            fnv.write(b"l");
            fnv.write_u64(list.len() as u64);
            list.iter().for_each(|item| fnv.write_field(item));
        }
        Value::Hash(hash) => {
            fnv.write(b"h");
            fnv.write_u64(hash.len() as u64);
            for (field, value) in hash.iter() {
                fnv.write_field(field);
                fnv.write_field(value);
            }
        }
        // Sets
        Value::Set(set) => {
            fnv.write(b"S");
            fnv.write_u64(set.len() as u64);
            set.iter()
                .for_each(|member| fnv.write_field(member.bytes()));
        }
        // Sorted sets: scores by their bits, so backups match to the last bit.
        Value::ZSet(zset) => {
            fnv.write(b"z");
            fnv.write_u64(zset.len() as u64);
            for (member, score) in zset.by_member() {
                fnv.write_field(member);
                fnv.write_u64(score.get().to_bits());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        let hash = |bytes: &[u8]| {
            let mut fnv = Fnv::new();
            fnv.write(bytes);
            fnv.finish()
        };
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(key_hash(b"a"), 0xaf63_dc4c_8601_ec8c & HASH_MASK);
    }
}
