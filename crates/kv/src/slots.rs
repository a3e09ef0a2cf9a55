//! Redis Cluster's hash slots (S1): a key belongs to one of 16,384 slots, the CRC16 (XMODEM) of
//! the key, or of its hash tag: the text between the first `{` and the next `}` when that text
//! is not empty. Keys that share a tag share a slot, which is how an application keeps the keys
//! of one multi-key command or transaction together.

use bytes::Bytes;

use crate::Command;

/// The number of hash slots; slots are numbered `0..SLOT_COUNT`.
pub const SLOT_COUNT: u16 = 16384;

/// The slot of `key` (S1).
pub fn key_slot(key: &[u8]) -> u16 {
    crc16_xmodem(hash_tag(key)) & (SLOT_COUNT - 1)
}

/// The part of `key` that is hashed: the tag between the first `{` and the next `}` if that is
/// not empty, else the whole key.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(len) if len > 0 => &rest[..len],
        _ => key,
    }
}

/// CRC16 with polynomial 0x1021, initial value 0, no reflection (the XMODEM variant Redis
/// Cluster uses), computed bit by bit: keys are short and a table would be 512 bytes of
/// constants to review.
fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The keys of a request do not all hash to one slot (Redis's `-CROSSSLOT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrossSlot;

/// The one slot every key of `keys` hashes to: `Ok(None)` without keys, `Err(CrossSlot)` when
/// they span several slots.
pub fn slot_of_keys<'a>(
    keys: impl IntoIterator<Item = &'a Bytes>,
) -> Result<Option<u16>, CrossSlot> {
    let mut slot = None;
    for key in keys {
        let this = key_slot(key);
        match slot {
            None => slot = Some(this),
            Some(s) if s == this => {}
            Some(_) => return Err(CrossSlot),
        }
    }
    Ok(slot)
}

impl Command {
    /// The slot of the command's keys (S1): `Ok(None)` for a command without keys (keyspace-
    /// wide or connection commands), `Err(CrossSlot)` when its keys span slots.
    pub fn slot(&self) -> Result<Option<u16>, CrossSlot> {
        slot_of_keys(self.keys())
    }
}

/// The slot of a whole request (a pipeline or a transaction): one slot for all of its keys.
pub fn slot_of_commands(cmds: &[Command]) -> Result<Option<u16>, CrossSlot> {
    slot_of_keys(cmds.iter().flat_map(|c| c.keys()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s1_slots_match_redis_cluster() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT` on redis-server 7.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), 3443);
        assert_eq!(key_slot(b"{user1000}.followers"), 3443);
        assert_eq!(key_slot(b"foo{}{bar}"), 8363);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        assert_eq!(key_slot(b""), 0);
        assert_eq!(crc16_xmodem(b"123456789"), 0x31c3);
    }

    #[test]
    fn s1_cross_slot_requests_are_named() {
        let a = Bytes::from_static(b"{t}a");
        let b = Bytes::from_static(b"{t}b");
        let c = Bytes::from_static(b"c");
        assert_eq!(slot_of_keys([&a, &b]), Ok(Some(key_slot(b"t"))));
        assert_eq!(slot_of_keys([&a, &c]), Err(CrossSlot));
        assert_eq!(slot_of_keys(std::iter::empty()), Ok(None));
    }
}
