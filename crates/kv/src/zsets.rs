//! Sorted-set commands (ZADD ... ZSCAN) on [`ZSet`]: two persistent `imbl` indexes per key,
//! member -> score and (score, member), so a snapshot of the store stays a pointer copy.
//!
//! Scores are `f64` in Redis's order (-inf .. +inf, ties broken by member bytes); NaN is
//! refused wherever a score enters (arguments, arithmetic, state transfer), so the order is
//! total. `-0` is stored as `0`, as Redis's compact encoding does.
//!
//! Rank-based work (ZRANK, ZRANGE by index, ZREMRANGEBYRANK) walks the ordered index: it is
//! O(rank) rather than Redis's O(log n), bounded by the set's size.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::ops::Bound;

use bytes::Bytes;
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, check_string_len};
use crate::glob::Pattern;
use crate::limits::{splitmix, zset_member_bytes};
use crate::reply::Reply;
use crate::store::{Entry, ExecContext, Store, Value};

/// The most input elements (summed over the input keys) that one ZUNION/ZINTER/ZDIFF (or
/// STORE form), ZINTERCARD, or the most elements a ZRANDMEMBER count may ask for. Beyond it
/// the command is refused with [`Error::ZSetInputTooLarge`] rather than hold the primary
/// (issue 14: no command may block a server longer than its peers tolerate: a server missing
/// `dead_pings` = 5 pings of 100 ms is dead, V3). The largest allowed ZUNIONSTORE is timed by
/// `zunionstore_at_the_input_bound_is_timed` in `tests/zsets.rs`: about 0.1 s in release.
pub const MAX_ZSET_OP_ELEMENTS: usize = 100_000;

/// A sorted-set score: never NaN (every constructor refuses it), so equality and order are
/// total. `-0` and `0` are the same score.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Score(f64);

impl Score {
    /// The score `value`, or `None` for NaN; `-0` becomes `0`.
    pub fn new(value: f64) -> Option<Score> {
        (!value.is_nan()).then_some(Score(value + 0.0))
    }

    /// The value.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for Score {
    fn eq(&self, other: &Score) -> bool {
        self.0 == other.0
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Score) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Score) -> Ordering {
        // Total: NaN never reaches a Score.
        self.0.partial_cmp(&other.0).unwrap_or(Ordering::Equal)
    }
}

impl<'de> Deserialize<'de> for Score {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Score, D::Error> {
        let value = f64::deserialize(deserializer)?;
        Score::new(value).ok_or_else(|| serde::de::Error::custom("a score is NaN"))
    }
}

/// One end of a score range: `1.5` (inclusive) or `(1.5` (exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreBound {
    /// The score.
    pub score: Score,
    /// Whether the score itself is left out.
    pub exclusive: bool,
}

impl ScoreBound {
    /// Whether `score` is on the inner side of this bound as a minimum.
    fn below(&self, score: Score) -> bool {
        if self.exclusive {
            self.score < score
        } else {
            self.score <= score
        }
    }

    /// Whether `score` is on the inner side of this bound as a maximum.
    fn above(&self, score: Score) -> bool {
        if self.exclusive {
            score < self.score
        } else {
            score <= self.score
        }
    }

    /// The argument text that parses back to this bound.
    pub(crate) fn to_arg(self) -> Bytes {
        let number = self.score.0.to_string();
        Bytes::from(if self.exclusive {
            format!("({number}")
        } else {
            number
        })
    }
}

/// One end of a lexicographic range: `-`, `+`, `[member` or `(member`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LexBound {
    /// `-`: before every member.
    Min,
    /// `+`: after every member.
    Max,
    /// `[member`.
    Inclusive(Bytes),
    /// `(member`.
    Exclusive(Bytes),
}

impl LexBound {
    /// Whether `member` is on the inner side of this bound as a minimum.
    fn below(&self, member: &[u8]) -> bool {
        match self {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Inclusive(bound) => bound.as_ref() <= member,
            LexBound::Exclusive(bound) => bound.as_ref() < member,
        }
    }

    /// Whether `member` is on the inner side of this bound as a maximum.
    fn above(&self, member: &[u8]) -> bool {
        match self {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Inclusive(bound) => member <= bound.as_ref(),
            LexBound::Exclusive(bound) => member < bound.as_ref(),
        }
    }

    /// The argument text that parses back to this bound.
    pub(crate) fn to_arg(&self) -> Bytes {
        let prefixed = |prefix: u8, member: &Bytes| {
            let mut arg = Vec::with_capacity(member.len() + 1);
            arg.push(prefix);
            arg.extend_from_slice(member);
            Bytes::from(arg)
        };
        match self {
            LexBound::Min => Bytes::from_static(b"-"),
            LexBound::Max => Bytes::from_static(b"+"),
            LexBound::Inclusive(member) => prefixed(b'[', member),
            LexBound::Exclusive(member) => prefixed(b'(', member),
        }
    }
}

/// Which elements a ZRANGE-like command selects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // Fields are named after the Redis arguments they hold.
pub enum ZRangeSpec {
    /// By index (negative from the end), inclusive.
    Rank { start: i64, stop: i64 },
    /// By score, `min` to `max` (as given, not swapped for REV).
    Score { min: ScoreBound, max: ScoreBound },
    /// By member bytes, `min` to `max`.
    Lex { min: LexBound, max: LexBound },
}

/// ZUNION/ZINTER's AGGREGATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Aggregate {
    /// SUM (the default).
    Sum,
    /// MIN.
    Min,
    /// MAX.
    Max,
}

/// Which set operation a ZUNION/ZINTER/ZDIFF family command does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetOp {
    /// ZUNION, ZUNIONSTORE.
    Union,
    /// ZINTER, ZINTERSTORE.
    Inter,
    /// ZDIFF, ZDIFFSTORE.
    Diff,
}

/// ZADD's options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZAddFlags {
    /// NX: only add new members.
    pub nx: bool,
    /// XX: only update existing members.
    pub xx: bool,
    /// GT: only update when the new score is greater.
    pub gt: bool,
    /// LT: only update when the new score is less.
    pub lt: bool,
    /// CH: count changed members, not only added ones.
    pub ch: bool,
    /// INCR: add to the score and reply with the result (one pair only).
    pub incr: bool,
}

/// A sorted set: member -> score, and (score, member) in Redis's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZSet {
    scores: OrdMap<Bytes, Score>,
    order: OrdSet<(Score, Bytes)>,
}

impl ZSet {
    /// How many members.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether there is no member.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<Score> {
        self.scores.get(member).copied()
    }

    /// Sets `member`'s score; returns the old one.
    pub fn insert(&mut self, member: Bytes, score: Score) -> Option<Score> {
        let old = self.scores.insert(member.clone(), score);
        if let Some(old) = old {
            self.order.remove(&(old, member.clone()));
        }
        self.order.insert((score, member));
        old
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &Bytes) -> Option<Score> {
        let old = self.scores.remove(member)?;
        self.order.remove(&(old, member.clone()));
        Some(old)
    }

    /// (member, score) in score order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, Score)> {
        self.order.iter().map(|(score, member)| (member, *score))
    }

    /// (member, score) in member order (the order of state transfer and the digest).
    pub fn by_member(&self) -> impl Iterator<Item = (&Bytes, Score)> {
        self.scores.iter().map(|(member, score)| (member, *score))
    }

    /// The 0-based rank of `member` in ascending order.
    fn rank(&self, member: &Bytes) -> Option<usize> {
        let score = self.score(member)?;
        Some(self.order.range(..(score, member.clone())).count())
    }

    /// Elements from `min` (ascending) that are at most `max`.
    fn score_range(
        &self,
        min: ScoreBound,
        max: ScoreBound,
    ) -> impl Iterator<Item = (&Bytes, Score)> {
        let start = Bound::Included((min.score, Bytes::new()));
        self.order
            .range((start, Bound::Unbounded))
            .skip_while(move |(score, _)| !min.below(*score))
            .take_while(move |(score, _)| max.above(*score))
            .map(|(score, member)| (member, *score))
    }

    /// The elements a range selects, in the requested direction, before any LIMIT.
    fn select<'a>(
        &'a self,
        spec: &'a ZRangeSpec,
        rev: bool,
    ) -> Box<dyn Iterator<Item = (&'a Bytes, Score)> + 'a> {
        match spec {
            ZRangeSpec::Rank { start, stop } => {
                let Some((first, last)) = crate::lists::list_range(self.len(), *start, *stop)
                else {
                    return Box::new(std::iter::empty());
                };
                let count = last - first + 1;
                if rev {
                    Box::new(self.iter().rev().skip(first).take(count))
                } else {
                    Box::new(self.iter().skip(first).take(count))
                }
            }
            ZRangeSpec::Score { min, max } => {
                if rev {
                    // Redis's reverse walk: skip from the top until within max, then take
                    // while within min.
                    Box::new(
                        self.iter()
                            .rev()
                            .skip_while(move |(_, score)| !max.above(*score))
                            .take_while(move |(_, score)| min.below(*score)),
                    )
                } else {
                    Box::new(self.score_range(*min, *max))
                }
            }
            // Lex ranges assume equal scores; like Redis's compact encoding, walk in order
            // and take the run that starts at the first member within the bound.
            ZRangeSpec::Lex { min, max } => {
                if rev {
                    Box::new(
                        self.iter()
                            .rev()
                            .skip_while(move |(member, _)| !max.above(member))
                            .take_while(move |(member, _)| min.below(member)),
                    )
                } else {
                    Box::new(
                        self.iter()
                            .skip_while(move |(member, _)| !min.below(member))
                            .take_while(move |(member, _)| max.above(member)),
                    )
                }
            }
        }
    }

    /// The elements of a range with REV and LIMIT applied (LIMIT ignored for ranks).
    fn range(
        &self,
        spec: &ZRangeSpec,
        rev: bool,
        limit: Option<(i64, i64)>,
    ) -> Vec<(Bytes, Score)> {
        let selected = self.select(spec, rev).map(|(m, s)| (m.clone(), s));
        match (spec, limit) {
            (ZRangeSpec::Rank { .. }, _) | (_, None) => selected.collect(),
            (_, Some((offset, count))) => {
                // A negative offset selects nothing; a negative count means all the rest.
                let Ok(offset) = usize::try_from(offset) else {
                    return Vec::new();
                };
                let count = usize::try_from(count).unwrap_or(usize::MAX);
                selected.skip(offset).take(count).collect()
            }
        }
    }
}

impl Serialize for ZSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.scores.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ZSet {
    /// Bounded like every collection from a peer: a declared length reserves nothing.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ZSet, D::Error> {
        let scores: OrdMap<Bytes, Score> = crate::bounded_serde::ord_map(deserializer)?;
        let order = scores.iter().map(|(m, s)| (*s, m.clone())).collect();
        Ok(ZSet { scores, order })
    }
}

/// Redis 7.0's text for a double reply in RESP2 (`%.17g`; `inf`, `-inf`).
pub fn format_double(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // 17 significant digits in scientific form, then %g's choice of notation.
    let scientific = format!("{value:.16e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("Rust's {:e} always writes an exponent");
    let exponent: i32 = exponent.parse().expect("Rust's exponent is decimal");
    if !(-4..17).contains(&exponent) {
        let mantissa = trim_fraction(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs());
    }
    let decimals = usize::try_from(16 - exponent).unwrap_or(0);
    trim_fraction(&format!("{value:.decimals$}")).to_owned()
}

/// `text` without trailing fractional zeros (and without a bare trailing '.').
fn trim_fraction(text: &str) -> &str {
    if !text.contains('.') {
        return text;
    }
    text.trim_end_matches('0').trim_end_matches('.')
}

/// A score as ZSCAN prints it (Redis's `d2string`): an integral value in the 64-bit range as
/// an integer, anything else like a double reply.
fn format_scan_score(value: f64) -> String {
    // 2^63 as f64: the integers below it convert to i64 exactly.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if value.fract() == 0.0 && value > -LIMIT && value < LIMIT {
        return (value as i64).to_string();
    }
    format_double(value)
}

/// A score argument (ZADD, ZINCRBY, WEIGHTS), as Redis's `strtod` checks it: no leading
/// space, nothing after the number, no NaN, no overflow to infinity or underflow to zero.
pub(crate) fn parse_score(arg: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty() || text.starts_with(|c: char| c.is_ascii_whitespace() || c == '\x0b') {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    let spelled_infinite = text.to_ascii_lowercase().contains("inf");
    let digits_nonzero = text
        .split(['e', 'E'])
        .next()
        .is_some_and(|mantissa| mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)));
    if value.is_nan()
        || (value.is_infinite() && !spelled_infinite)
        || (value == 0.0 && digits_nonzero)
    {
        return None;
    }
    Some(value)
}

/// A score-range bound (`1.5`, `(1.5`, `-inf`), as Redis's `zslParseRange` reads it:
/// leading spaces and an empty number (0) are accepted, NaN is not.
pub(crate) fn parse_score_bound(arg: &[u8]) -> Option<ScoreBound> {
    let (exclusive, number) = match arg.split_first() {
        Some((b'(', rest)) => (true, rest),
        _ => (false, arg),
    };
    let value = if number.is_empty() {
        0.0
    } else {
        let text = std::str::from_utf8(number).ok()?;
        let trimmed = text.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
        trimmed.parse::<f64>().ok()?
    };
    Some(ScoreBound {
        score: Score::new(value)?,
        exclusive,
    })
}

/// A lex-range bound: `-`, `+`, `[member` or `(member`.
pub(crate) fn parse_lex_bound(arg: &Bytes) -> Option<LexBound> {
    match arg.first()? {
        b'-' if arg.len() == 1 => Some(LexBound::Min),
        b'+' if arg.len() == 1 => Some(LexBound::Max),
        b'[' => Some(LexBound::Inclusive(arg.slice(1..))),
        b'(' => Some(LexBound::Exclusive(arg.slice(1..))),
        _ => None,
    }
}

/// (member, score) pairs as a reply: pairs (RESP3) / flat (RESP2) with scores, else members.
fn members_reply(items: Vec<(Bytes, Score)>, withscores: bool) -> Reply {
    if withscores {
        Reply::Pairs(
            items
                .into_iter()
                .map(|(m, s)| (Reply::Bulk(m), Reply::Double(s.0)))
                .collect(),
        )
    } else {
        Reply::bulks(items.into_iter().map(|(m, _)| m))
    }
}

/// The aggregate of two scores; NaN (inf + -inf) counts as 0, as in Redis.
fn aggregate(aggregate: Aggregate, a: f64, b: f64) -> f64 {
    match aggregate {
        Aggregate::Sum => {
            let sum = a + b;
            if sum.is_nan() { 0.0 } else { sum }
        }
        Aggregate::Min => a.min(b),
        Aggregate::Max => a.max(b),
    }
}

impl Store {
    /// The live sorted set at `key`; WRONGTYPE if the key holds another type.
    pub(crate) fn zset(&self, key: &Bytes, now: u64) -> Result<Option<&ZSet>, Error> {
        match self.live(key, now).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::ZSet(zset)) => Ok(Some(zset.as_ref())),
            Some(_) => Err(Error::WrongType),
        }
    }

    /// An input of ZUNION/ZINTER/ZDIFF/ZINTERCARD at `key`: a sorted set as it is, or a plain
    /// set read as members of score 1 (as Redis reads it); WRONGTYPE for any other type.
    fn zset_input(&self, key: &Bytes, now: u64) -> Result<Option<Cow<'_, ZSet>>, Error> {
        match self.live(key, now).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::ZSet(zset)) => Ok(Some(Cow::Borrowed(zset.as_ref()))),
            Some(Value::Set(set)) => {
                if set.len() > MAX_ZSET_OP_ELEMENTS {
                    return Err(Error::ZSetInputTooLarge(MAX_ZSET_OP_ELEMENTS));
                }
                let mut zset = ZSet::default();
                for member in set.iter() {
                    zset.insert(member.bytes().clone(), Score(1.0));
                }
                Ok(Some(Cow::Owned(zset)))
            }
            Some(_) => Err(Error::WrongType),
        }
    }

    /// [`Store::zset_input`] of every key, refused with [`Error::ZSetInputTooLarge`] once
    /// their elements add up to more than [`MAX_ZSET_OP_ELEMENTS`] (L18).
    fn zset_inputs(&self, keys: &[Bytes], now: u64) -> Result<Vec<Option<Cow<'_, ZSet>>>, Error> {
        let mut held = Vec::with_capacity(keys.len());
        let mut total = 0usize;
        for key in keys {
            let zset = self.zset_input(key, now)?;
            total = total.saturating_add(zset.as_ref().map_or(0, |z| z.len()));
            if total > MAX_ZSET_OP_ELEMENTS {
                return Err(Error::ZSetInputTooLarge(MAX_ZSET_OP_ELEMENTS));
            }
            held.push(zset);
        }
        Ok(held)
    }

    /// The live sorted set at `key` for writing, if there is one (after the type check).
    fn zset_mut(&mut self, key: &Bytes, now: u64) -> Result<Option<&mut ZSet>, Error> {
        self.zset(key, now)?;
        Ok(match self.live_value_mut(key, now) {
            Some(Value::ZSet(zset)) => Some(&mut **zset),
            _ => None,
        })
    }

    /// Deletes `key` if its sorted set became empty (Redis never keeps an empty one).
    fn drop_if_empty(&mut self, key: &Bytes, now: u64) {
        if self
            .zset(key, now)
            .ok()
            .flatten()
            .is_some_and(ZSet::is_empty)
        {
            self.remove(key);
        }
    }

    /// Stores `zset` at `key` as a new persistent value, or deletes `key` when empty.
    fn store_zset(&mut self, key: &Bytes, zset: ZSet) -> Reply {
        let len = zset.len();
        if zset.is_empty() {
            self.remove(key);
        } else {
            self.put(key, Entry::persistent(Value::ZSet(Box::new(zset))));
        }
        Reply::count(len)
    }

    /// ZADD: the count of added (or with CH changed) members, or with INCR the new score
    /// (nil when a condition stopped it).
    pub(crate) fn zadd(
        &mut self,
        key: &Bytes,
        flags: ZAddFlags,
        pairs: &[(Score, Bytes)],
        now: u64,
    ) -> Result<Reply, Error> {
        let existing = self.zset(key, now)?;
        for (_, member) in pairs {
            check_string_len(member.len(), self.limits.max_value_bytes)?;
        }
        if flags.incr {
            // INCR's NaN check comes before any change.
            let (delta, member) = &pairs[0];
            if let Some(old) = existing.and_then(|z| z.score(member)) {
                let sum = old.0 + delta.0;
                if sum.is_nan() {
                    return Err(Error::ScoreNan);
                }
            }
        }
        if existing.is_none() {
            if flags.xx {
                return Ok(if flags.incr {
                    Reply::Nil
                } else {
                    Reply::Integer(0)
                });
            }
            self.put(key, Entry::persistent(Value::ZSet(Box::default())));
        }
        let Some(zset) = self.zset_mut(key, now)? else {
            unreachable!("a live sorted set was just ensured at this key");
        };
        let (mut added, mut changed, mut grown) = (0usize, 0usize, 0usize);
        let mut last = None;
        for (score, member) in pairs {
            let old = zset.score(member);
            let new = match old {
                Some(_) if flags.nx => continue,
                None if flags.xx => continue,
                Some(old) if flags.incr => Score(old.0 + score.0 + 0.0),
                _ => *score,
            };
            if let Some(old) = old {
                if (flags.gt && new <= old) || (flags.lt && new >= old) {
                    continue;
                }
                last = Some(new);
                if new.0.to_bits() != old.0.to_bits() {
                    zset.insert(member.clone(), new);
                    changed += 1;
                }
            } else {
                last = Some(new);
                zset.insert(member.clone(), new);
                added += 1;
                grown += zset_member_bytes(member.len());
            }
        }
        self.grew(grown);
        self.drop_if_empty(key, now);
        Ok(if flags.incr {
            last.map_or(Reply::Nil, |s| Reply::Double(s.0))
        } else if flags.ch {
            Reply::count(added + changed)
        } else {
            Reply::count(added)
        })
    }

    /// ZINCRBY: ZADD INCR without conditions.
    pub(crate) fn zincrby(
        &mut self,
        key: &Bytes,
        delta: Score,
        member: &Bytes,
        now: u64,
    ) -> Result<Reply, Error> {
        let flags = ZAddFlags {
            incr: true,
            ..ZAddFlags::default()
        };
        self.zadd(key, flags, &[(delta, member.clone())], now)
    }

    pub(crate) fn zscore(&self, key: &Bytes, member: &Bytes, now: u64) -> Result<Reply, Error> {
        let score = self.zset(key, now)?.and_then(|z| z.score(member));
        Ok(score.map_or(Reply::Nil, |s| Reply::Double(s.0)))
    }

    pub(crate) fn zmscore(&self, key: &Bytes, members: &[Bytes], now: u64) -> Result<Reply, Error> {
        let zset = self.zset(key, now)?;
        let scores = members.iter().map(|member| {
            zset.and_then(|z| z.score(member))
                .map_or(Reply::Nil, |s| Reply::Double(s.0))
        });
        Ok(Reply::Array(scores.collect()))
    }

    pub(crate) fn zcard(&self, key: &Bytes, now: u64) -> Result<Reply, Error> {
        Ok(Reply::count(self.zset(key, now)?.map_or(0, ZSet::len)))
    }

    /// ZCOUNT and ZLEXCOUNT: the size of a score or lex range.
    pub(crate) fn zcount(&self, key: &Bytes, spec: &ZRangeSpec, now: u64) -> Result<Reply, Error> {
        let count = self
            .zset(key, now)?
            .map_or(0, |z| z.select(spec, false).count());
        Ok(Reply::count(count))
    }

    /// ZRANGE and its older forms.
    pub(crate) fn zrange(
        &self,
        key: &Bytes,
        spec: &ZRangeSpec,
        rev: bool,
        limit: Option<(i64, i64)>,
        withscores: bool,
        now: u64,
    ) -> Result<Reply, Error> {
        let items = match self.zset(key, now)? {
            Some(zset) => zset.range(spec, rev, limit),
            None => Vec::new(),
        };
        Ok(members_reply(items, withscores))
    }

    /// ZRANGESTORE: the range of `src` becomes `dst`; replies with its size.
    pub(crate) fn zrangestore(
        &mut self,
        dst: &Bytes,
        src: &Bytes,
        spec: &ZRangeSpec,
        rev: bool,
        limit: Option<(i64, i64)>,
        now: u64,
    ) -> Result<Reply, Error> {
        let mut result = ZSet::default();
        if let Some(zset) = self.zset(src, now)? {
            for (member, score) in zset.range(spec, rev, limit) {
                result.insert(member, score);
            }
        }
        Ok(self.store_zset(dst, result))
    }

    /// ZRANK/ZREVRANK, with WITHSCORE an array of the rank and the score.
    pub(crate) fn zrank(
        &self,
        key: &Bytes,
        member: &Bytes,
        rev: bool,
        withscore: bool,
        now: u64,
    ) -> Result<Reply, Error> {
        let Some(zset) = self.zset(key, now)? else {
            return Ok(Reply::Nil);
        };
        let (Some(rank), Some(score)) = (zset.rank(member), zset.score(member)) else {
            return Ok(Reply::Nil);
        };
        let rank = if rev { zset.len() - 1 - rank } else { rank };
        Ok(if withscore {
            Reply::Array(vec![Reply::count(rank), Reply::Double(score.0)])
        } else {
            Reply::count(rank)
        })
    }

    /// ZREM: the count of members removed; an emptied set is deleted.
    pub(crate) fn zrem(
        &mut self,
        key: &Bytes,
        members: &[Bytes],
        now: u64,
    ) -> Result<Reply, Error> {
        let Some(zset) = self.zset_mut(key, now)? else {
            return Ok(Reply::Integer(0));
        };
        let (mut removed, mut freed) = (0usize, 0usize);
        for member in members {
            if zset.remove(member).is_some() {
                removed += 1;
                freed += zset_member_bytes(member.len());
            }
        }
        self.shrank(freed);
        self.drop_if_empty(key, now);
        Ok(Reply::count(removed))
    }

    /// ZREMRANGEBYRANK/BYSCORE/BYLEX: the count removed.
    pub(crate) fn zremrange(
        &mut self,
        key: &Bytes,
        spec: &ZRangeSpec,
        now: u64,
    ) -> Result<Reply, Error> {
        let Some(zset) = self.zset_mut(key, now)? else {
            return Ok(Reply::Integer(0));
        };
        let doomed = zset.range(spec, false, None);
        let mut freed = 0usize;
        for (member, _) in &doomed {
            zset.remove(member);
            freed += zset_member_bytes(member.len());
        }
        self.shrank(freed);
        self.drop_if_empty(key, now);
        Ok(Reply::count(doomed.len()))
    }

    /// Takes up to `count` lowest (or highest) elements off `key`.
    fn zpop_items(
        &mut self,
        key: &Bytes,
        max: bool,
        count: usize,
        now: u64,
    ) -> Vec<(Bytes, Score)> {
        let Ok(Some(zset)) = self.zset_mut(key, now) else {
            return Vec::new();
        };
        let taken: Vec<(Bytes, Score)> = if max {
            let items = zset.iter().rev().take(count);
            items.map(|(m, s)| (m.clone(), s)).collect()
        } else {
            zset.iter()
                .take(count)
                .map(|(m, s)| (m.clone(), s))
                .collect()
        };
        let mut freed = 0usize;
        for (member, _) in &taken {
            zset.remove(member);
            freed += zset_member_bytes(member.len());
        }
        self.shrank(freed);
        self.drop_if_empty(key, now);
        taken
    }

    /// ZPOPMIN/ZPOPMAX: without a count a flat [member, score]; with one, pairs.
    pub(crate) fn zpop(
        &mut self,
        key: &Bytes,
        max: bool,
        count: Option<u64>,
        now: u64,
    ) -> Result<Reply, Error> {
        self.zset(key, now)?;
        let wanted = count.map_or(1, |c| usize::try_from(c).unwrap_or(usize::MAX));
        let items = self.zpop_items(key, max, wanted, now);
        Ok(match count {
            None => Reply::Array(
                items
                    .into_iter()
                    .flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s.0)])
                    .collect(),
            ),
            Some(_) => members_reply(items, true),
        })
    }

    /// ZMPOP: from the first non-empty key, [key, [[member, score], ...]]; nil if none.
    pub(crate) fn zmpop(
        &mut self,
        keys: &[Bytes],
        max: bool,
        count: u64,
        now: u64,
    ) -> Result<Reply, Error> {
        for key in keys {
            if self.zset(key, now)?.is_none() {
                continue;
            }
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            let items = self.zpop_items(key, max, count, now);
            let items = items
                .into_iter()
                .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s.0)]));
            return Ok(Reply::Array(vec![
                Reply::Bulk(key.clone()),
                Reply::Array(items.collect()),
            ]));
        }
        Ok(Reply::Nil)
    }

    /// The result of a ZUNION/ZINTER/ZDIFF over `keys`, bounded by [`MAX_ZSET_OP_ELEMENTS`].
    fn zset_op(
        &self,
        op: SetOp,
        keys: &[Bytes],
        weights: Option<&[Score]>,
        how: Aggregate,
        now: u64,
    ) -> Result<ZSet, Error> {
        let held = self.zset_inputs(keys, now)?;
        let mut inputs = Vec::with_capacity(keys.len());
        for (i, zset) in held.iter().enumerate() {
            let weight = weights.and_then(|w| w.get(i)).map_or(1.0, |w| w.0);
            inputs.push((zset.as_deref(), weight));
        }
        let weighted = |score: Score, weight: f64| {
            let value = score.0 * weight;
            if value.is_nan() { 0.0 } else { value }
        };
        let mut result = ZSet::default();
        match op {
            SetOp::Union => {
                // Smallest first, like Redis, so sums add in the same order.
                inputs.sort_by_key(|(z, _)| z.map_or(0, |z| z.len()));
                // A plain map for the work; only the result is persistent.
                let mut scores: std::collections::BTreeMap<Bytes, f64> = Default::default();
                for (zset, weight) in inputs.iter().filter_map(|(z, w)| Some((z.as_ref()?, *w))) {
                    for (member, score) in zset.iter() {
                        let value = weighted(score, weight);
                        scores
                            .entry(member.clone())
                            .and_modify(|s| *s = aggregate(how, *s, value))
                            .or_insert(value);
                    }
                }
                for (member, score) in scores {
                    result.insert(member, Score::new(score).unwrap_or(Score(0.0)));
                }
            }
            SetOp::Inter => {
                inputs.sort_by_key(|(z, _)| z.map_or(0, |z| z.len()));
                let Some((Some(first), first_weight)) = inputs.first().copied() else {
                    return Ok(result);
                };
                'members: for (member, score) in first.iter() {
                    let mut value = weighted(score, first_weight);
                    for (other, weight) in &inputs[1..] {
                        let Some(score) = other.and_then(|z| z.score(member)) else {
                            continue 'members;
                        };
                        value = aggregate(how, value, weighted(score, *weight));
                    }
                    result.insert(member.clone(), Score::new(value).unwrap_or(Score(0.0)));
                }
            }
            SetOp::Diff => {
                let Some((Some(first), _)) = inputs.first().copied() else {
                    return Ok(result);
                };
                for (member, score) in first.iter() {
                    let elsewhere = inputs[1..]
                        .iter()
                        .any(|(z, _)| z.is_some_and(|z| z.score(member).is_some()));
                    if !elsewhere {
                        result.insert(member.clone(), score);
                    }
                }
            }
        }
        Ok(result)
    }

    /// ZUNION/ZINTER/ZDIFF (reply the result) and their STORE forms (`dst`: reply its size).
    #[allow(clippy::too_many_arguments)] // The command's own options, one each.
    pub(crate) fn zsetop_command(
        &mut self,
        op: SetOp,
        dst: Option<&Bytes>,
        keys: &[Bytes],
        weights: Option<&[Score]>,
        how: Aggregate,
        withscores: bool,
        now: u64,
    ) -> Result<Reply, Error> {
        let result = self.zset_op(op, keys, weights, how, now)?;
        Ok(match dst {
            Some(dst) => self.store_zset(dst, result),
            None => members_reply(
                result.iter().map(|(m, s)| (m.clone(), s)).collect(),
                withscores,
            ),
        })
    }

    /// ZINTERCARD: the size of the intersection, stopping at `limit` (0: no limit).
    pub(crate) fn zintercard(&self, keys: &[Bytes], limit: u64, now: u64) -> Result<Reply, Error> {
        let held = self.zset_inputs(keys, now)?;
        let sets = held.iter().map(|z| z.as_deref());
        let Some(mut sets) = sets.collect::<Option<Vec<&ZSet>>>() else {
            return Ok(Reply::Integer(0)); // A missing key empties the intersection.
        };
        sets.sort_by_key(|z| z.len());
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut count = 0usize;
        for (member, _) in sets[0].by_member() {
            if limit != 0 && count >= limit {
                break;
            }
            if sets[1..].iter().all(|z| z.score(member).is_some()) {
                count += 1;
            }
        }
        Ok(Reply::count(count))
    }

    /// ZRANDMEMBER: one member (nil if none); with a count, distinct members (positive) or
    /// members with repeats (negative). Every choice derives from `ctx.random` (P5).
    pub(crate) fn zrandmember(
        &self,
        key: &Bytes,
        count: Option<i64>,
        withscores: bool,
        ctx: &ExecContext,
    ) -> Result<Reply, Error> {
        let zset = self.zset(key, ctx.now_ms)?;
        let Some(count) = count else {
            let member = zset.and_then(|z| pick(z, splitmix(ctx.random)));
            return Ok(Reply::bulk_or_nil(member.map(|(m, _)| m)));
        };
        let Some(zset) = zset else {
            return Ok(Reply::Array(Vec::new()));
        };
        let wanted = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
        if count > 0 && wanted >= zset.len() {
            // The whole set, highest first, as Redis 7.0 answers for a compact set.
            let all = zset.iter().rev().map(|(m, s)| (m.clone(), s)).collect();
            return Ok(members_reply(all, withscores));
        }
        if wanted > MAX_ZSET_OP_ELEMENTS {
            return Err(Error::ZSetInputTooLarge(MAX_ZSET_OP_ELEMENTS));
        }
        let mut state = ctx.random;
        let mut next = move || {
            state = splitmix(state);
            state
        };
        let mut items = Vec::with_capacity(wanted);
        if count < 0 {
            for _ in 0..wanted {
                items.extend(pick(zset, next()));
            }
        } else {
            // Distinct picks: each draw takes a member not yet taken (ascending from the
            // drawn index), so `wanted` draws give `wanted` members.
            let mut taken: OrdSet<usize> = OrdSet::new();
            let len = zset.len();
            for _ in 0..wanted {
                let mut index = usize::try_from(next() % len as u64).unwrap_or(0);
                while taken.contains(&index) {
                    index = (index + 1) % len;
                }
                taken.insert(index);
                items.extend(zset.iter().nth(index).map(|(m, s)| (m.clone(), s)));
            }
        }
        Ok(members_reply(items, withscores))
    }

    /// ZSCAN: sets of up to 128 members (Redis's compact encoding) come whole in one call
    /// in score order with cursor 0; larger ones `count` at a time in score order, the
    /// cursor being the position to resume at.
    pub(crate) fn zscan(
        &self,
        key: &Bytes,
        cursor: u64,
        pattern: Option<&Bytes>,
        count: Option<u64>,
        now: u64,
    ) -> Result<Reply, Error> {
        const WHOLE_MAX: usize = 128;
        let Some(zset) = self.zset(key, now)? else {
            return Ok(Reply::Array(vec![
                Reply::Bulk(Bytes::from_static(b"0")),
                Reply::Array(Vec::new()),
            ]));
        };
        let pattern = pattern.map(|p| Pattern::new(p));
        let (skip, take) = if zset.len() <= WHOLE_MAX {
            (0, zset.len())
        } else {
            let skip = usize::try_from(cursor).unwrap_or(usize::MAX);
            let take = count.unwrap_or(10).clamp(1, 10_000);
            (skip, usize::try_from(take).unwrap_or(usize::MAX))
        };
        let end = skip.saturating_add(take);
        let next = if end >= zset.len() { 0 } else { end };
        let mut found = Vec::new();
        for (member, score) in zset.iter().skip(skip).take(take) {
            if pattern.as_ref().is_none_or(|p| p.matches(member)) {
                found.push(Reply::Bulk(member.clone()));
                found.push(Reply::Bulk(Bytes::from(format_scan_score(score.0))));
            }
        }
        Ok(Reply::Array(vec![
            Reply::Bulk(Bytes::from(next.to_string())),
            Reply::Array(found),
        ]))
    }
}

/// The member at a position drawn from `random` (uniform enough for a sample; O(position)).
fn pick(zset: &ZSet, random: u64) -> Option<(Bytes, Score)> {
    if zset.is_empty() {
        return None;
    }
    let index = usize::try_from(random % zset.len() as u64).unwrap_or(0);
    zset.iter().nth(index).map(|(m, s)| (m.clone(), s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_redis_7_0() {
        for (value, text) in [
            (1.0, "1"),
            (1.5, "1.5"),
            (0.1, "0.10000000000000001"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (1e300, "1.0000000000000001e+300"),
            (123_456_789_012_345_678.0, "1.2345678901234568e+17"),
            (1e-5, "1.0000000000000001e-05"),
            (0.0001, "0.0001"),
            (-2.5, "-2.5"),
            (1e16, "10000000000000000"),
            (3.0000000000000004, "3.0000000000000004"),
        ] {
            assert_eq!(format_double(value), text, "{value}");
        }
        assert_eq!(
            format_scan_score(123_456_789_012_345_678.0),
            "123456789012345680"
        );
        assert_eq!(format_scan_score(0.5), "0.5");
    }

    #[test]
    fn score_arguments_are_checked_like_strtod() {
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"+inf"), Some(f64::INFINITY));
        for bad in [&b""[..], b" 1", b"1 ", b"nan", b"1e400", b"1e-400", b"abc"] {
            assert_eq!(parse_score(bad), None, "{bad:?}");
        }
        assert!(parse_score_bound(b"").is_some());
        assert!(parse_score_bound(b" 1").is_some());
        assert!(parse_score_bound(b"(nan").is_none());
        assert!(parse_score_bound(b"-").is_none());
        assert_eq!(parse_lex_bound(&Bytes::from_static(b"-x")), None);
    }
}
