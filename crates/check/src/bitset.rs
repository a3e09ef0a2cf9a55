//! The set of linearized operations, with a compact key for the memoization cache.
//!
//! Operations are numbered in call order, so during a search the linearized set is nearly
//! always "everything up to some point, plus a few later ones". The key therefore stores only
//! the window between the leading all-ones words and the trailing all-zero words: a few words
//! instead of one bit per operation of the whole history, and still canonical (equal sets give
//! equal keys).

/// A fixed-capacity set of operation numbers.
#[derive(Clone, Debug)]
pub(crate) struct BitSet {
    words: Vec<u64>,
    /// `words[..full_words]` are all ones, and `words[full_words]` (if any) is not.
    full_words: usize,
    /// An upper bound on the set words: `words[top_bound..]` are all zero.
    top_bound: usize,
}

/// The canonical, compact form of a [`BitSet`]'s contents.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct WindowKey {
    /// How many leading words are all ones.
    full_words: u32,
    /// The words after those, up to the last non-zero one.
    window: Box<[u64]>,
}

const WORD_BITS: usize = 64;

impl BitSet {
    /// An empty set able to hold `0..capacity`.
    pub(crate) fn new(capacity: usize) -> Self {
        BitSet {
            words: vec![0; capacity.div_ceil(WORD_BITS)],
            full_words: 0,
            top_bound: 0,
        }
    }

    pub(crate) fn contains(&self, bit: usize) -> bool {
        self.words[bit / WORD_BITS] & (1 << (bit % WORD_BITS)) != 0
    }

    pub(crate) fn insert(&mut self, bit: usize) {
        let word = bit / WORD_BITS;
        debug_assert!(!self.contains(bit), "bit {bit} inserted twice");
        self.words[word] |= 1 << (bit % WORD_BITS);
        self.top_bound = self.top_bound.max(word + 1);
        while self.words.get(self.full_words) == Some(&u64::MAX) {
            self.full_words += 1;
        }
    }

    pub(crate) fn remove(&mut self, bit: usize) {
        let word = bit / WORD_BITS;
        debug_assert!(self.contains(bit), "bit {bit} removed while absent");
        self.words[word] &= !(1 << (bit % WORD_BITS));
        self.full_words = self.full_words.min(word);
        // `top_bound` stays a valid upper bound; `key` tightens it.
    }

    /// The set's canonical key. Tightens `top_bound`, which is why it takes `&mut self`.
    pub(crate) fn key(&mut self) -> WindowKey {
        while self.top_bound > self.full_words && self.words[self.top_bound - 1] == 0 {
            self.top_bound -= 1;
        }
        let end = self.top_bound.max(self.full_words);
        WindowKey {
            full_words: u32::try_from(self.full_words).expect("history fits in u32 words"),
            window: self.words[self.full_words..end].into(),
        }
    }

    /// The set's words up to the last non-zero one: canonical, and cheap to test for inclusion
    /// with [`is_subset`]. Meant for small sets (the ambiguous operations).
    pub(crate) fn trimmed_words(&mut self) -> Box<[u64]> {
        while self.top_bound > 0 && self.words[self.top_bound - 1] == 0 {
            self.top_bound -= 1;
        }
        self.words[..self.top_bound].into()
    }
}

/// Whether the set `small` is included in the set `large` (both from `trimmed_words`).
pub(crate) fn is_subset(small: &[u64], large: &[u64]) -> bool {
    small
        .iter()
        .enumerate()
        .all(|(i, word)| word & !large.get(i).copied().unwrap_or(0) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_sets_have_equal_keys_whatever_the_history_of_edits() {
        let mut a = BitSet::new(300);
        let mut b = BitSet::new(300);
        for bit in 0..130 {
            a.insert(bit);
        }
        a.insert(200);
        a.insert(299);
        a.remove(299);
        a.remove(5);
        for bit in (0..130).rev().filter(|&bit| bit != 5) {
            b.insert(bit);
        }
        b.insert(200);
        assert_eq!(a.key(), b.key());
        assert_eq!(a.key().full_words, 0);
        a.insert(5);
        b.insert(5);
        assert_eq!(a.key(), b.key());
        assert_eq!(a.key().full_words, 2);
        assert_eq!(
            a.key().window.len(),
            2,
            "word 2 (bits 128..130) up to word 3 (bit 200)"
        );
    }

    #[test]
    fn distinct_sets_have_distinct_keys() {
        let mut a = BitSet::new(128);
        let mut b = BitSet::new(128);
        a.insert(64);
        b.insert(63);
        assert_ne!(a.key(), b.key());
        assert_ne!(a.key(), BitSet::new(128).key());
        assert!(a.contains(64) && !a.contains(63));
    }

    #[test]
    fn subset_test_compares_trimmed_words() {
        let mut small = BitSet::new(200);
        let mut large = BitSet::new(200);
        small.insert(3);
        large.insert(3);
        large.insert(150);
        let (small_words, large_words) = (small.trimmed_words(), large.trimmed_words());
        assert_eq!(small_words.len(), 1);
        assert!(is_subset(&small_words, &large_words));
        assert!(!is_subset(&large_words, &small_words));
        assert!(is_subset(&BitSet::new(200).trimmed_words(), &small_words));
        small.insert(4);
        assert!(!is_subset(&small.trimmed_words(), &large_words));
    }

    #[test]
    fn full_capacity_set_has_an_empty_window() {
        let mut a = BitSet::new(128);
        (0..128).for_each(|bit| a.insert(bit));
        assert_eq!(
            a.key(),
            WindowKey {
                full_words: 2,
                window: Box::new([])
            }
        );
    }
}
