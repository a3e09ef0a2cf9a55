//! Deserializers for the persistent collections that never trust a declared length.
//!
//! imbl's own `Deserialize` reserves the length a sequence or map declares before reading a
//! single element, so a 25-byte frame declaring billions of elements made a process allocate
//! hundreds of gigabytes and abort (found by fuzzing the internal frame decoder). These read
//! element by element and reserve at most [`MAX_RESERVED`] up front: memory grows only with
//! the bytes that actually arrive, and those are bounded by the frame limit.

use std::fmt;
use std::marker::PhantomData;

use imbl::{OrdMap, Vector};
use serde::Deserializer;
use serde::de::{Deserialize, MapAccess, SeqAccess, Visitor};

/// Most elements reserved before they are read.
const MAX_RESERVED: usize = 1024;

/// Deserializes a `Vector`, element by element (`#[serde(deserialize_with = ...)]`).
pub fn vector<'de, D, T>(deserializer: D) -> Result<Box<Vector<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Clone,
{
    struct Elements<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de> + Clone> Visitor<'de> for Elements<T> {
        type Value = Box<Vector<T>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a sequence")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_RESERVED));
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(Box::new(Vector::from(items)))
        }
    }
    deserializer.deserialize_seq(Elements(PhantomData))
}

/// Deserializes an `OrdMap`, entry by entry.
pub fn ord_map<'de, D, K, V>(deserializer: D) -> Result<OrdMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord + Clone,
    V: Deserialize<'de> + Clone,
{
    struct Entries<K, V>(PhantomData<(K, V)>);
    impl<'de, K, V> Visitor<'de> for Entries<K, V>
    where
        K: Deserialize<'de> + Ord + Clone,
        V: Deserialize<'de> + Clone,
    {
        type Value = OrdMap<K, V>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries = OrdMap::new();
            while let Some((key, value)) = map.next_entry()? {
                entries.insert(key, value);
            }
            Ok(entries)
        }
    }
    deserializer.deserialize_map(Entries(PhantomData))
}

/// [`ord_map`], boxed (as `Value::Hash` holds it).
pub fn boxed_ord_map<'de, D, K, V>(deserializer: D) -> Result<Box<OrdMap<K, V>>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord + Clone,
    V: Deserialize<'de> + Clone,
{
    ord_map(deserializer).map(Box::new)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use crate::Value;

    /// A list or hash declaring 2^62 elements, followed by none: an error, not an abort.
    #[test]
    fn a_declared_length_reserves_nothing() {
        for variant in [1u8, 2] {
            let mut bytes = vec![variant];
            // postcard varint of 2^62.
            let mut n: u64 = 1 << 62;
            while n >= 0x80 {
                bytes.push((n as u8) | 0x80);
                n >>= 7;
            }
            bytes.push(n as u8);
            assert!(postcard::from_bytes::<Value>(&bytes).is_err());
        }
        let list = Value::List(Box::new(
            [Bytes::from("a"), Bytes::from("b")].into_iter().collect(),
        ));
        let encoded = postcard::to_allocvec(&list).expect("encodes");
        assert_eq!(
            postcard::from_bytes::<Value>(&encoded).expect("decodes"),
            list
        );
    }
}
