//! Set commands: SADD, SREM, SCARD, SISMEMBER, SMISMEMBER, SMEMBERS, SPOP, SRANDMEMBER,
//! SMOVE, SINTER, SINTERCARD, SINTERSTORE, SUNION, SUNIONSTORE, SDIFF, SDIFFSTORE, SSCAN.
//!
//! A set is an `imbl::OrdSet` of [`Member`]s ordered by (63-bit hash, bytes), the keyspace's
//! own order: SSCAN resumes at a hash like SCAN (a member present for the whole scan is
//! returned), and a random pick is the first member at or after a random hash, like
//! RANDOMKEY. Every random number comes from `ExecContext::random`, decided by the primary
//! (P5): SPOP and SRANDMEMBER draw as many numbers as they need from a SplitMix64 seeded
//! with it, so every replica picks the same members.

use std::collections::BTreeSet;
use std::fmt;

use bytes::Bytes;
use imbl::OrdSet;
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::{HASH_MASK, key_hash};
use crate::error::{Error, check_string_len};
use crate::glob::Pattern;
use crate::limits::element_bytes;
use crate::parse::parse_i64;
use crate::reply::Reply;
use crate::store::{Entry, ExecContext, Store, Value, stored};

/// Sets of up to this many members answer SSCAN whole, with cursor 0, as Redis's compact
/// encodings (listpack, intset) do whatever the cursor and COUNT say.
const SSCAN_WHOLE_MAX: usize = 128;
/// SSCAN's COUNT when none is given.
const SSCAN_DEFAULT_COUNT: u64 = 10;
/// The most members one SSCAN call examines, whatever COUNT says (keeps each call bounded).
const SSCAN_MAX_COUNT: u64 = 10_000;
/// The most members SRANDMEMBER with a negative count returns: repeats are allowed, so the
/// set's size does not bound the reply; beyond this the reply is refused as too large.
pub(crate) const RANDOM_REPEATS_MAX: u64 = 1_000_000;

/// One member of a set, ordered by its 63-bit FNV-1a hash, then its bytes. Serialized as
/// its bytes alone: the hash is recomputed on arrival, so no peer can make it disagree.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    hash: u64,
    bytes: Bytes,
}

impl Member {
    /// The member holding `bytes`.
    pub fn new(bytes: Bytes) -> Member {
        Member {
            hash: key_hash(&bytes),
            bytes,
        }
    }

    /// The member's bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The smallest possible member with a hash of at least `hash` (a range's start).
    fn first_at(hash: u64) -> Member {
        Member {
            hash: hash & HASH_MASK,
            bytes: Bytes::new(),
        }
    }
}

impl Serialize for Member {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.bytes.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Member, D::Error> {
        Bytes::deserialize(deserializer).map(Member::new)
    }
}

/// Deserializes a set member by member, never trusting a declared length (like
/// `bounded_serde`): memory grows only with the bytes that actually arrive.
pub(crate) fn deserialize_members<'de, D>(deserializer: D) -> Result<Box<OrdSet<Member>>, D::Error>
where
    D: Deserializer<'de>,
{
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Box<OrdSet<Member>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a sequence of set members")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut members = OrdSet::new();
            while let Some(member) = seq.next_element()? {
                members.insert(member);
            }
            Ok(Box::new(members))
        }
    }
    deserializer.deserialize_seq(Members)
}

/// A SplitMix64 sequence seeded with the primary's random number (P5).
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        let drawn = crate::limits::splitmix(self.0);
        self.0 = self.0.wrapping_add(crate::limits::SPLITMIX_GAMMA);
        drawn
    }
}

/// The first member at or after a random hash, wrapping around; `None` for an empty set.
fn pick(set: &OrdSet<Member>, random: u64) -> Option<&Member> {
    set.range(Member::first_at(random)..)
        .next()
        .or_else(|| set.get_min())
}

/// `count` distinct members (fewer than the set holds): from each random hash, the first
/// member not already taken.
fn pick_distinct<'a>(set: &'a OrdSet<Member>, count: usize, draws: &mut Draws) -> Vec<&'a Member> {
    let mut taken = BTreeSet::new();
    let mut order = Vec::with_capacity(count);
    while order.len() < count.min(set.len()) {
        let start = Member::first_at(draws.next());
        let mut walk = set.range(start..).chain(set.iter());
        if let Some(member) = walk.find(|m| !taken.contains(m)) {
            taken.insert(member);
            order.push(member);
        }
    }
    order
}

fn bulks<'a>(members: impl IntoIterator<Item = &'a Member>) -> Reply {
    Reply::bulks(members.into_iter().map(|m| m.bytes.clone()))
}

/// The intersection of `sets` (every one present), up to `limit` members (0: no limit),
/// in the smallest set's order.
fn intersection(mut sets: Vec<&OrdSet<Member>>, limit: usize) -> Vec<&Member> {
    sets.sort_by_key(|set| set.len());
    let Some((smallest, others)) = sets.split_first() else {
        return Vec::new();
    };
    let common = smallest
        .iter()
        .filter(|m| others.iter().all(|set| set.contains(*m)));
    match limit {
        0 => common.collect(),
        n => common.take(n).collect(),
    }
}

impl Store {
    /// SADD: replies with the number of members that were new.
    pub(crate) fn sadd(
        &mut self,
        key: &Bytes,
        members: &[Bytes],
        now: u64,
    ) -> Result<Reply, Error> {
        self.set_members(key, now)?;
        let max = self.limits.max_value_bytes;
        for member in members {
            check_string_len(member.len(), max)?;
        }
        let set = self.set_for_write(key, now)?;
        let (mut added, mut grown) = (0, 0usize);
        for member in members {
            if set.insert(Member::new(stored(member))).is_none() {
                added += 1;
                grown += element_bytes(member.len());
            }
        }
        self.grew(grown);
        Ok(Reply::count(added))
    }

    /// SREM: replies with the number of members removed; an emptied set is deleted.
    pub(crate) fn srem(
        &mut self,
        key: &Bytes,
        members: &[Bytes],
        now: u64,
    ) -> Result<Reply, Error> {
        self.set_members(key, now)?;
        let Some(Value::Set(set)) = self.live_value_mut(key, now) else {
            return Ok(Reply::Integer(0));
        };
        let (mut removed, mut freed) = (0, 0usize);
        for member in members {
            if set.remove(&Member::new(member.clone())).is_some() {
                removed += 1;
                freed += element_bytes(member.len());
            }
        }
        let emptied = set.is_empty();
        self.shrank(freed);
        if emptied {
            self.remove(key);
        }
        Ok(Reply::count(removed))
    }

    pub(crate) fn scard(&self, key: &Bytes, now: u64) -> Result<Reply, Error> {
        Ok(Reply::count(
            self.set_members(key, now)?.map_or(0, |s| s.len()),
        ))
    }

    pub(crate) fn sismember(&self, key: &Bytes, member: &Bytes, now: u64) -> Result<Reply, Error> {
        let set = self.set_members(key, now)?;
        let found = set.is_some_and(|s| s.contains(&Member::new(member.clone())));
        Ok(Reply::Integer(i64::from(found)))
    }

    /// SMISMEMBER: 1 or 0 per member, in argument order (all 0 for a missing key).
    pub(crate) fn smismember(
        &self,
        key: &Bytes,
        members: &[Bytes],
        now: u64,
    ) -> Result<Reply, Error> {
        let set = self.set_members(key, now)?;
        let found = members.iter().map(|member| {
            let hit = set.is_some_and(|s| s.contains(&Member::new(member.clone())));
            Reply::Integer(i64::from(hit))
        });
        Ok(Reply::Array(found.collect()))
    }

    /// SMEMBERS: every member, in the set's (hash) order.
    pub(crate) fn smembers(&self, key: &Bytes, now: u64) -> Result<Reply, Error> {
        Ok(bulks(self.set_members(key, now)?.into_iter().flatten()))
    }

    /// SPOP: without a count, one random member or nil; with one, up to `count` distinct
    /// members (the whole set when it has no more), an empty array for a missing key.
    pub(crate) fn spop(
        &mut self,
        key: &Bytes,
        count: Option<u64>,
        ctx: &ExecContext,
    ) -> Result<Reply, Error> {
        let now = ctx.now_ms;
        let Some(set) = self.set_members(key, now)? else {
            return Ok(count.map_or(Reply::Nil, |_| Reply::Array(Vec::new())));
        };
        let Some(count) = count else {
            let member = pick(set, ctx.random).cloned();
            let popped = member.map(|m| self.pop_members(key, vec![m], now));
            return Ok(Reply::bulk_or_nil(
                popped.and_then(|p| p.into_iter().next()),
            ));
        };
        let chosen: Vec<Member> = if count >= set.len() as u64 {
            set.iter().cloned().collect()
        } else {
            let mut draws = Draws(ctx.random);
            pick_distinct(set, count as usize, &mut draws)
                .into_iter()
                .cloned()
                .collect()
        };
        Ok(Reply::bulks(self.pop_members(key, chosen, now)))
    }

    /// Removes `members` (all present) from the set at `key`, deleting it if emptied; returns
    /// their bytes in the same order.
    fn pop_members(&mut self, key: &Bytes, members: Vec<Member>, now: u64) -> Vec<Bytes> {
        let Some(Value::Set(set)) = self.live_value_mut(key, now) else {
            return Vec::new();
        };
        let mut freed = 0usize;
        for member in &members {
            if set.remove(member).is_some() {
                freed += element_bytes(member.bytes.len());
            }
        }
        let emptied = set.is_empty();
        self.shrank(freed);
        if emptied {
            self.remove(key);
        }
        members.into_iter().map(|m| m.bytes).collect()
    }

    /// SRANDMEMBER: without a count, one random member or nil; with a positive count, that
    /// many distinct members (the whole set when it has no more); with a negative count,
    /// that many picks with repeats.
    pub(crate) fn srandmember(
        &self,
        key: &Bytes,
        count: Option<i64>,
        ctx: &ExecContext,
    ) -> Result<Reply, Error> {
        let set = self.set_members(key, ctx.now_ms)?;
        let Some(count) = count else {
            let member = set.and_then(|s| pick(s, ctx.random));
            return Ok(Reply::bulk_or_nil(member.map(|m| m.bytes.clone())));
        };
        let Some(set) = set else {
            return Ok(Reply::Array(Vec::new()));
        };
        let mut draws = Draws(ctx.random);
        let wanted = count.unsigned_abs();
        if count < 0 {
            if wanted > RANDOM_REPEATS_MAX {
                return Err(Error::ReplyTooLarge);
            }
            let picks = (0..wanted).filter_map(|_| pick(set, draws.next()));
            return Ok(bulks(picks));
        }
        if wanted >= set.len() as u64 {
            return Ok(bulks(set.iter()));
        }
        let wanted = wanted as usize;
        if wanted * 2 <= set.len() {
            return Ok(bulks(pick_distinct(set, wanted, &mut draws)));
        }
        // Most of the set: draw the members to leave out instead.
        let left_out: BTreeSet<&Member> = pick_distinct(set, set.len() - wanted, &mut draws)
            .into_iter()
            .collect();
        Ok(bulks(set.iter().filter(|m| !left_out.contains(m))))
    }

    /// SMOVE: 1 if `member` moved from `source` to `destination` (or is in `source` when they
    /// are the same key), else 0. A missing source answers 0 before any type check, as Redis.
    pub(crate) fn smove(
        &mut self,
        source: &Bytes,
        destination: &Bytes,
        member: &Bytes,
        now: u64,
    ) -> Result<Reply, Error> {
        if self.live(source, now).is_none() {
            return Ok(Reply::Integer(0));
        }
        let from = self.set_members(source, now)?;
        self.set_members(destination, now)?;
        let member = Member::new(member.clone());
        let present = from.is_some_and(|s| s.contains(&member));
        if !present || source == destination {
            return Ok(Reply::Integer(i64::from(present)));
        }
        self.pop_members(source, vec![member.clone()], now);
        let size = element_bytes(member.bytes.len());
        if self
            .set_for_write(destination, now)?
            .insert(member)
            .is_none()
        {
            self.grew(size);
        }
        Ok(Reply::Integer(1))
    }

    /// The sets at `keys` (`None` for a missing key), after checking every key's type: one
    /// key of another type is WRONGTYPE even after a missing key (Redis 7).
    fn sets_at(&self, keys: &[Bytes], now: u64) -> Result<Vec<Option<&OrdSet<Member>>>, Error> {
        keys.iter().map(|key| self.set_members(key, now)).collect()
    }

    /// The members common to every set at `keys` (none when one is missing), up to `limit`
    /// (0: all).
    fn inter_of(&self, keys: &[Bytes], limit: usize, now: u64) -> Result<Vec<Member>, Error> {
        let sets = self.sets_at(keys, now)?;
        let Some(sets) = sets.into_iter().collect::<Option<Vec<_>>>() else {
            return Ok(Vec::new());
        };
        Ok(intersection(sets, limit).into_iter().cloned().collect())
    }

    /// The union of the sets at `keys` (missing keys are empty sets).
    fn union_of(&self, keys: &[Bytes], now: u64) -> Result<OrdSet<Member>, Error> {
        let mut sets: Vec<&OrdSet<Member>> =
            self.sets_at(keys, now)?.into_iter().flatten().collect();
        sets.sort_by_key(|set| std::cmp::Reverse(set.len()));
        let mut union = sets.first().map(|s| (*s).clone()).unwrap_or_default();
        for set in sets.iter().skip(1) {
            union.extend(set.iter().cloned());
        }
        Ok(union)
    }

    /// The members of the first set at `keys` that are in none of the others.
    fn diff_of(&self, keys: &[Bytes], now: u64) -> Result<OrdSet<Member>, Error> {
        let sets = self.sets_at(keys, now)?;
        let Some((Some(first), others)) = sets.split_first() else {
            return Ok(OrdSet::new());
        };
        let mut diff = (*first).clone();
        for set in others.iter().flatten() {
            if diff.is_empty() {
                break;
            }
            for member in set.iter() {
                diff.remove(member);
            }
        }
        Ok(diff)
    }

    pub(crate) fn sinter(&self, keys: &[Bytes], now: u64) -> Result<Reply, Error> {
        Ok(bulks(&self.inter_of(keys, 0, now)?))
    }

    /// SINTERCARD: the size of the intersection, counting no further than `limit` (0: all).
    pub(crate) fn sintercard(&self, keys: &[Bytes], limit: u64, now: u64) -> Result<Reply, Error> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(Reply::count(self.inter_of(keys, limit, now)?.len()))
    }

    pub(crate) fn sunion(&self, keys: &[Bytes], now: u64) -> Result<Reply, Error> {
        Ok(bulks(&self.union_of(keys, now)?))
    }

    pub(crate) fn sdiff(&self, keys: &[Bytes], now: u64) -> Result<Reply, Error> {
        Ok(bulks(&self.diff_of(keys, now)?))
    }

    pub(crate) fn sinterstore(
        &mut self,
        destination: &Bytes,
        keys: &[Bytes],
        now: u64,
    ) -> Result<Reply, Error> {
        let members = self.inter_of(keys, 0, now)?;
        Ok(self.store_set(destination, members.into_iter().collect()))
    }

    pub(crate) fn sunionstore(
        &mut self,
        destination: &Bytes,
        keys: &[Bytes],
        now: u64,
    ) -> Result<Reply, Error> {
        let union = self.union_of(keys, now)?;
        Ok(self.store_set(destination, union))
    }

    pub(crate) fn sdiffstore(
        &mut self,
        destination: &Bytes,
        keys: &[Bytes],
        now: u64,
    ) -> Result<Reply, Error> {
        let diff = self.diff_of(keys, now)?;
        Ok(self.store_set(destination, diff))
    }

    /// The STORE forms' ending: `set` replaces whatever `destination` held (any type, its
    /// expiry dropped), or, empty, deletes it; replies with the set's size.
    fn store_set(&mut self, destination: &Bytes, set: OrdSet<Member>) -> Reply {
        let size = set.len();
        if set.is_empty() {
            self.remove(destination);
        } else {
            self.put(destination, Entry::persistent(Value::Set(Box::new(set))));
        }
        Reply::count(size)
    }

    /// SSCAN: a missing key is an empty scan, then the options are checked (Redis's order);
    /// a small set answers whole, a larger one about `count` members from the cursor's hash.
    pub(crate) fn sscan(
        &self,
        key: &Bytes,
        cursor: u64,
        options: &[Bytes],
        now: u64,
    ) -> Result<Reply, Error> {
        let Some(set) = self.set_members(key, now)? else {
            return Ok(scan_reply(0, Vec::new()));
        };
        let (pattern, count) = sscan_options(options)?;
        let pattern = pattern.map(|p| Pattern::new(p));
        let wanted = |m: &Member| pattern.as_ref().is_none_or(|p| p.matches(&m.bytes));
        if set.len() <= SSCAN_WHOLE_MAX {
            let found = set.iter().filter(|m| wanted(m)).map(|m| m.bytes.clone());
            return Ok(scan_reply(0, found.collect()));
        }
        let budget = count.unwrap_or(SSCAN_DEFAULT_COUNT).min(SSCAN_MAX_COUNT);
        let (mut found, mut examined, mut next_cursor, mut last_hash) = (Vec::new(), 0, 0, None);
        if cursor > HASH_MASK + 1 {
            return Ok(scan_reply(0, Vec::new())); // Past every hash: the scan is over.
        }
        for member in set.range(Member::first_at(cursor.saturating_sub(1))..) {
            if examined >= budget && last_hash != Some(member.hash) {
                next_cursor = member.hash + 1;
                break;
            }
            examined += 1;
            last_hash = Some(member.hash);
            if wanted(member) {
                found.push(member.bytes.clone());
            }
        }
        Ok(scan_reply(next_cursor, found))
    }

    /// The live set at `key` for writing, created empty if missing.
    fn set_for_write(&mut self, key: &Bytes, now: u64) -> Result<&mut OrdSet<Member>, Error> {
        if self.set_members(key, now)?.is_none() {
            self.put(key, Entry::persistent(Value::Set(Box::default())));
        }
        match self.live_value_mut(key, now) {
            Some(Value::Set(set)) => Ok(&mut **set),
            _ => unreachable!("a live set was just ensured at this key"),
        }
    }
}

fn scan_reply(cursor: u64, members: Vec<Bytes>) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(cursor.to_string())),
        Reply::bulks(members),
    ])
}

/// SSCAN's MATCH and COUNT (no TYPE: that is SCAN's alone), with Redis's errors.
fn sscan_options(options: &[Bytes]) -> Result<(Option<&Bytes>, Option<u64>), Error> {
    let (mut pattern, mut count) = (None, None);
    for option in options.chunks(2) {
        let [name, value] = option else {
            return Err(Error::Syntax);
        };
        match name.to_ascii_uppercase().as_slice() {
            b"MATCH" => pattern = Some(value),
            b"COUNT" => {
                let n = parse_i64(value).ok_or(Error::NotInteger)?;
                count = Some(
                    u64::try_from(n)
                        .ok()
                        .filter(|&n| n >= 1)
                        .ok_or(Error::Syntax)?,
                );
            }
            _ => return Err(Error::Syntax),
        }
    }
    Ok((pattern, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;

    fn run(store: &mut Store, random: u64, words: &[&str]) -> Reply {
        let args: Vec<Bytes> = words.iter().map(|w| Bytes::from(w.to_string())).collect();
        let cmd = match Command::parse(&args) {
            Ok(cmd) => cmd,
            Err(reply) => return reply,
        };
        let ctx = ExecContext {
            random,
            ..ExecContext::default()
        };
        store.execute(&cmd, &ctx)
    }

    fn sorted(reply: Reply) -> Vec<Bytes> {
        let Reply::Array(items) = reply else {
            panic!("not an array: {reply:?}")
        };
        let mut out: Vec<Bytes> = items
            .into_iter()
            .map(|item| match item {
                Reply::Bulk(b) => b,
                other => panic!("not a bulk: {other:?}"),
            })
            .collect();
        out.sort();
        out
    }

    fn words(list: &[&str]) -> Vec<Bytes> {
        list.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    #[test]
    fn p5_same_random_number_same_pops_and_digest() {
        let (mut a, mut b) = (Store::new(), Store::new());
        for store in [&mut a, &mut b] {
            run(store, 0, &["sadd", "s", "a", "b", "c", "d", "e", "f", "g"]);
        }
        for random in [1u64, 99, u64::MAX] {
            let ra = run(&mut a, random, &["spop", "s", "2"]);
            let rb = run(&mut b, random, &["spop", "s", "2"]);
            assert_eq!(ra, rb);
            assert_eq!(
                run(&mut a, random, &["srandmember", "s", "-5"]),
                run(&mut b, random, &["srandmember", "s", "-5"])
            );
        }
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.used_memory(), b.used_memory());
        assert_eq!(run(&mut a, 0, &["scard", "s"]), Reply::Integer(1));
    }

    #[test]
    fn srandmember_counts_give_distinct_members_or_repeats() {
        let mut s = Store::new();
        let all = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        run(&mut s, 0, &[&["sadd", "s"][..], &all].concat());
        for random in 0..50u64 {
            for count in [1usize, 3, 6, 9] {
                let got = sorted(run(
                    &mut s,
                    random,
                    &["srandmember", "s", &count.to_string()],
                ));
                let mut dedup = got.clone();
                dedup.dedup();
                assert_eq!(dedup.len(), count, "distinct");
                assert!(
                    got.iter()
                        .all(|m| all.contains(&std::str::from_utf8(m).unwrap()))
                );
            }
            let repeats = sorted(run(&mut s, random, &["srandmember", "s", "-25"]));
            assert_eq!(repeats.len(), 25);
        }
        assert_eq!(
            sorted(run(&mut s, 0, &["srandmember", "s", "100"])),
            words(&all)
        );
        assert_eq!(
            run(&mut s, 0, &["srandmember", "s", "-2000000"]),
            Reply::from(Error::ReplyTooLarge)
        );
    }

    #[test]
    fn l10_memory_follows_adds_removes_pops_and_moves() {
        let mut s = Store::new();
        run(&mut s, 0, &["sadd", "a", "x", "yy", "x"]);
        run(&mut s, 0, &["sadd", "b", "zzz"]);
        run(&mut s, 0, &["smove", "a", "b", "yy"]);
        run(&mut s, 0, &["srem", "b", "nope", "zzz"]);
        run(&mut s, 0, &["spop", "a"]);
        run(&mut s, 0, &["sunionstore", "c", "b", "a"]);
        run(&mut s, 0, &["sadd", "d", "1", "2", "3"]);
        run(&mut s, 0, &["spop", "d", "2"]);
        assert_eq!(s.used_memory(), s.approx_bytes());
        assert_eq!(run(&mut s, 0, &["exists", "a"]), Reply::Integer(0));
    }

    #[test]
    fn sscan_of_a_large_set_returns_every_member_once() {
        let mut s = Store::new();
        let members: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
        let mut args = vec!["sadd".to_owned(), "s".to_owned()];
        args.extend(members.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&mut s, 0, &args);
        let (mut cursor, mut seen, mut calls) = ("0".to_owned(), Vec::new(), 0);
        loop {
            calls += 1;
            let Reply::Array(parts) = run(&mut s, 0, &["sscan", "s", &cursor, "COUNT", "50"])
            else {
                panic!("sscan answers an array")
            };
            let [Reply::Bulk(next), found] = &parts[..] else {
                panic!("cursor and members")
            };
            seen.extend(sorted(found.clone()));
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        seen.sort();
        let mut expected: Vec<Bytes> = members.iter().map(|m| Bytes::from(m.clone())).collect();
        expected.sort();
        assert_eq!(seen, expected);
        assert!(calls >= 1000 / 50, "{calls} calls");
    }

    /// P6/L16: a set bigger than a chunk travels in pieces and arrives identical (digest and
    /// counted memory), members still found by hash.
    #[test]
    fn p6_a_large_set_copied_in_small_chunks_is_identical() {
        let mut source = Store::new();
        let members: Vec<String> = (0..500).map(|i| format!("member-{i}")).collect();
        let mut args = vec!["sadd".to_owned(), "s".to_owned()];
        args.extend(members.iter().cloned());
        run(
            &mut source,
            0,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        run(&mut source, 0, &["set", "k", "v"]);
        let mut target = Store::new();
        let (mut after, mut sent, mut chunks) = (None, None, 0);
        loop {
            let chunk = source.chunk_from(after.as_ref(), sent, 300, 100);
            chunks += 1;
            for (key, entry) in chunk.entries {
                target.insert_piece(key, entry);
            }
            (after, sent) = (chunk.last_key, chunk.last_sent);
            if chunk.done {
                break;
            }
        }
        assert!(chunks > 10, "{chunks} chunks");
        assert_eq!(target.digest(), source.digest());
        assert_eq!(target.used_memory(), source.used_memory());
        assert_eq!(
            run(&mut target, 0, &["sismember", "s", "member-499"]),
            Reply::Integer(1)
        );
    }

    /// `parse(to_args(c)) == c` for every set command, with tricky arguments.
    #[test]
    fn set_commands_round_trip_through_their_arguments() {
        let mut draws = Draws(0x5e75);
        let tricky = ["LIMIT", "limit", "MATCH", "COUNT", "-1", "0", "", "2"];
        let word = |draws: &mut Draws| Bytes::from(tricky[(draws.next() % 8) as usize]);
        let mut names = BTreeSet::new();
        for i in 0..4000u64 {
            let key = word(&mut draws);
            let list: Vec<Bytes> = (0..1 + draws.next() % 3)
                .map(|_| word(&mut draws))
                .collect();
            let n = draws.next() >> 1;
            let cmd = match i % 17 {
                0 => Command::SAdd { key, members: list },
                1 => Command::SRem { key, members: list },
                2 => Command::SCard { key },
                3 => Command::SIsMember {
                    member: list[0].clone(),
                    key,
                },
                4 => Command::SMIsMember { key, members: list },
                5 => Command::SMembers { key },
                6 => Command::SPop {
                    key,
                    count: (n % 2 == 0).then_some(n),
                },
                7 => Command::SRandMember {
                    key,
                    count: (n % 2 == 0).then_some(-(n as i64)),
                },
                8 => Command::SMove {
                    source: key,
                    destination: list[0].clone(),
                    member: word(&mut draws),
                },
                9 => Command::SInter { keys: list },
                10 => Command::SInterCard {
                    keys: list,
                    limit: n % 3,
                },
                11 => Command::SInterStore {
                    destination: key,
                    keys: list,
                },
                12 => Command::SUnion { keys: list },
                13 => Command::SUnionStore {
                    destination: key,
                    keys: list,
                },
                14 => Command::SDiff { keys: list },
                15 => Command::SDiffStore {
                    destination: key,
                    keys: list,
                },
                _ => Command::SScan {
                    key,
                    cursor: draws.next(),
                    options: list,
                },
            };
            names.insert(cmd.name());
            assert_eq!(Command::parse(&cmd.to_args()), Ok(cmd.clone()), "{cmd:?}");
        }
        assert_eq!(names.len(), 17);
    }

    #[test]
    fn a_declared_member_count_reserves_nothing() {
        let set = Value::Set(Box::new(
            [Member::new(Bytes::from("a")), Member::new(Bytes::from("b"))]
                .into_iter()
                .collect(),
        ));
        let encoded = postcard::to_allocvec(&set).expect("encodes");
        assert_eq!(
            postcard::from_bytes::<Value>(&encoded).expect("decodes"),
            set
        );
        let mut bytes = vec![encoded[0]];
        let mut n: u64 = 1 << 62;
        while n >= 0x80 {
            bytes.push((n as u8) | 0x80);
            n >>= 7;
        }
        bytes.push(n as u8);
        assert!(postcard::from_bytes::<Value>(&bytes).is_err());
    }
}
