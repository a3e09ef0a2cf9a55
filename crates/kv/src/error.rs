//! Every error a command can produce, with Redis 7's exact text.

use crate::reply::Reply;

/// A command failure; its `Display` is Redis's reply text without the leading '-'.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Error {
    /// The key holds a value of another type than the command works on.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// An argument (or a stored string) is not a decimal 64-bit integer.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// A hash field used by HINCRBY does not hold an integer.
    #[error("ERR hash value is not an integer")]
    HashNotInteger,
    /// An increment would leave the signed 64-bit range.
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// DECRBY by `i64::MIN`, whose negation does not exist.
    #[error("ERR decrement would overflow")]
    DecrementOverflow,
    /// The options do not form a valid command.
    #[error("ERR syntax error")]
    Syntax,
    /// The argument count does not fit the command; carries its lowercase name.
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(&'static str),
    /// An expire time that is non-positive (SET) or overflows; carries the command name.
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpireTime(&'static str),
    /// A string, list element or hash field/value would exceed `max_value_bytes` (L13).
    #[error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")]
    StringTooLong,
    /// A command that may grow memory while `used_memory` is above `maxmemory` (L11).
    #[error("OOM command not allowed when used memory > 'maxmemory'.")]
    OutOfMemory,
    /// A reply larger than `max_reply_bytes` (L14).
    #[error("ERR reply exceeds the maximum reply size (max-reply-bytes)")]
    ReplyTooLarge,
    /// SETRANGE with a negative offset.
    #[error("ERR offset is out of range")]
    OffsetOutOfRange,
    /// A count that must be non-negative was negative.
    #[error("ERR value is out of range, must be positive")]
    MustBePositive,
    /// A SCAN cursor that is not an unsigned decimal number.
    #[error("ERR invalid cursor")]
    InvalidCursor,
    /// EXPIRE got NX together with XX, GT or LT.
    #[error("ERR NX and XX, GT or LT options at the same time are not compatible")]
    NxWithOthers,
    /// EXPIRE got both GT and LT.
    #[error("ERR GT and LT options at the same time are not compatible")]
    GtWithLt,
    /// EXPIRE got an option it does not know; carries the option as written.
    #[error("ERR Unsupported option {0}")]
    UnsupportedOption(String),
    // Sets
    /// numkeys (SINTERCARD, ZMPOP, ZINTERCARD...) is not a positive integer.
    #[error("ERR numkeys should be greater than 0")]
    NumkeysNotPositive,
    /// SINTERCARD's numkeys is more than the keys that follow.
    #[error("ERR Number of keys can't be greater than number of args")]
    NumkeysTooMany,
    /// The LIMIT of SINTERCARD or ZINTERCARD is negative.
    #[error("ERR LIMIT can't be negative")]
    LimitNegative,
    /// SRANDMEMBER's count is `i64::MIN` (its magnitude does not exist).
    #[error(
        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
    )]
    CountOutOfRange,
    /// A subcommand the container command does not have.
    #[error("ERR unknown subcommand '{sub}'. Try {command} HELP.")]
    UnknownSubcommand {
        /// The subcommand as sent (lossily decoded, at most 128 bytes).
        sub: String,
        /// The container, uppercase.
        command: &'static str,
    },
    /// CONFIG SET of a parameter tandem does not have (only requirepass is settable).
    #[error("ERR Unknown option or number of arguments for CONFIG SET - '{0}'")]
    UnknownConfig(String),
    /// The command name is not one we implement; carries Redis's full message.
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    UnknownCommand {
        /// The command name as sent (lossily decoded, at most 128 bytes).
        name: String,
        /// The first arguments, each quoted and followed by a space.
        args: String,
    },
    // Sorted sets
    /// A score argument (ZADD, ZINCRBY) that is not a number.
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// A WEIGHTS value that is not a number.
    #[error("ERR weight value is not a float")]
    WeightNotFloat,
    /// A score range bound that is not a number.
    #[error("ERR min or max is not a float")]
    ScoreRangeNotFloat,
    /// A lex range bound that is not `-`, `+`, `[x` or `(x`.
    #[error("ERR min or max not valid string range item")]
    LexRangeInvalid,
    /// An increment that gives NaN (inf + -inf).
    #[error("ERR resulting score is not a number (NaN)")]
    ScoreNan,
    /// ZADD with both NX and XX.
    #[error("ERR XX and NX options at the same time are not compatible")]
    XxWithNx,
    /// ZADD with GT and LT, or either with NX.
    #[error("ERR GT, LT, and/or NX options at the same time are not compatible")]
    GtLtNx,
    /// ZADD INCR with more than one pair.
    #[error("ERR INCR option supports a single increment-element pair")]
    IncrOnePair,
    /// ZRANGE's LIMIT by rank.
    #[error(
        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
    )]
    LimitNeedsByScoreOrLex,
    /// ZRANGE's WITHSCORES with BYLEX.
    #[error("ERR syntax error, WITHSCORES not supported in combination with BYLEX")]
    WithScoresWithByLex,
    /// A numkeys of zero or less for ZUNION/ZINTER/ZDIFF (and STORE forms), ZINTERCARD.
    #[error("ERR at least 1 input key is needed for '{0}' command")]
    NeedOneInputKey(&'static str),
    /// ZMPOP's COUNT of zero or less.
    #[error("ERR count should be greater than 0")]
    CountNotPositive,
    /// A plain "value is out of range" (ZRANDMEMBER's count).
    #[error("ERR value is out of range")]
    OutOfRange,
    /// A sorted-set operation over more input elements than tandem allows in one command.
    #[error("ERR sorted set operation over more than {0} elements (tandem's bound per command)")]
    ZSetInputTooLarge(usize),
}

impl From<Error> for Reply {
    fn from(error: Error) -> Reply {
        Reply::Error(error.to_string())
    }
}

/// Fails with [`Error::StringTooLong`] when a value of `len` bytes is above `max` (L13).
pub(crate) fn check_string_len(len: usize, max: u64) -> Result<(), Error> {
    if len as u64 > max {
        Err(Error::StringTooLong)
    } else {
        Ok(())
    }
}
