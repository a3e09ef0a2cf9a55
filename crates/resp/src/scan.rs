//! A forward-only cursor over a byte slice and the strict integer parsing both parsers share.
//!
//! Every read reports [`ParseError::Incomplete`] when the bytes it needs have not arrived yet,
//! so the check phases can be written as straight-line code with `?`.

use std::ops::Range;

use crate::ParseError;

/// Reads RESP lines and payloads from the front of a byte slice.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
    /// Bytes looked at so far, a line scanned without finding its end included: the parser's
    /// work, which the incremental request parser keeps linear in the bytes received (L2).
    examined: u64,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor::at(bytes, 0)
    }

    /// A cursor at `position` of `bytes` (a resumed parse).
    pub(crate) fn at(bytes: &'a [u8], position: usize) -> Self {
        Cursor {
            bytes,
            position,
            examined: 0,
        }
    }

    /// How many bytes this cursor looked at.
    pub(crate) fn examined(&self) -> u64 {
        self.examined
    }

    /// How many bytes have been read so far.
    pub(crate) fn position(&self) -> usize {
        self.position
    }

    /// The next byte, consumed.
    pub(crate) fn next_byte(&mut self) -> Result<u8, ParseError> {
        self.examined += 1;
        let byte = *self
            .bytes
            .get(self.position)
            .ok_or(ParseError::Incomplete)?;
        self.position += 1;
        Ok(byte)
    }

    /// The bytes up to the next CRLF (which is consumed but not returned).
    ///
    /// The line ends at its first `\r`, which must be followed by `\n`. A line longer than
    /// `max_len` is rejected with `Protocol error: {too_long}` as soon as `max_len + 1` bytes
    /// without a `\r` have arrived, so the answer does not depend on how the bytes were split
    /// into reads.
    pub(crate) fn line(&mut self, max_len: usize, too_long: &str) -> Result<&'a [u8], ParseError> {
        let rest = &self.bytes[self.position..];
        let window = &rest[..rest.len().min(max_len.saturating_add(1))];
        let found = window.iter().position(|&byte| byte == b'\r');
        self.examined += found.map_or(window.len(), |end| end + 2) as u64;
        let Some(end) = found else {
            return Err(if rest.len() > max_len {
                ParseError::protocol(too_long)
            } else {
                ParseError::Incomplete
            });
        };
        match rest.get(end + 1) {
            None => Err(ParseError::Incomplete),
            Some(b'\n') => {
                self.position += end + 2;
                Ok(&rest[..end])
            }
            Some(_) => Err(ParseError::protocol("expected '\\n' after '\\r'")),
        }
    }

    /// A line holding a decimal integer, as Redis's `string2ll` accepts it.
    pub(crate) fn integer_line(
        &mut self,
        max_len: usize,
        invalid: &str,
    ) -> Result<i64, ParseError> {
        let line = self.line(max_len, invalid)?;
        parse_integer(line).ok_or_else(|| ParseError::protocol(invalid))
    }

    /// The range of the next `len` bytes, which must be followed by CRLF; both are consumed.
    pub(crate) fn payload(&mut self, len: usize) -> Result<Range<usize>, ParseError> {
        self.examined += 2;
        let start = self.position;
        let end = start.checked_add(len).ok_or(ParseError::Incomplete)?;
        let after = end.checked_add(2).ok_or(ParseError::Incomplete)?;
        match self.bytes.get(end..after) {
            None => Err(ParseError::Incomplete),
            Some(b"\r\n") => {
                self.position = after;
                Ok(start..end)
            }
            Some(_) => Err(ParseError::protocol("expected CRLF after bulk data")),
        }
    }
}

/// Parses a decimal `i64` strictly: an optional `-`, then digits with no leading zero (except
/// `0` itself), no `+`, no spaces, no overflow.
pub(crate) fn parse_integer(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    match digits {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    // Accumulate as a negative number so that i64::MIN parses without overflow.
    let mut value: i64 = 0;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_sub(i64::from(byte - b'0'))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_like_redis_string2ll() {
        assert_eq!(parse_integer(b"0"), Some(0));
        assert_eq!(parse_integer(b"42"), Some(42));
        assert_eq!(parse_integer(b"-1"), Some(-1));
        assert_eq!(parse_integer(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_integer(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1x",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999999",
        ] {
            assert_eq!(
                parse_integer(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn line_needs_lf_after_cr() {
        assert_eq!(
            Cursor::new(b"12\r").line(10, "x"),
            Err(ParseError::Incomplete)
        );
        assert_eq!(Cursor::new(b"12\r\n").line(10, "x"), Ok(&b"12"[..]));
        assert!(matches!(
            Cursor::new(b"12\rx").line(10, "x"),
            Err(ParseError::Protocol(_))
        ));
    }

    #[test]
    fn overlong_line_is_rejected_whatever_the_split() {
        let too_long = ParseError::Protocol("Protocol error: too long".into());
        assert_eq!(
            Cursor::new(b"1234").line(4, "too long"),
            Err(ParseError::Incomplete)
        );
        assert_eq!(
            Cursor::new(b"12345").line(4, "too long"),
            Err(too_long.clone())
        );
        assert_eq!(Cursor::new(b"12345\r\n").line(4, "too long"), Err(too_long));
        assert_eq!(
            Cursor::new(b"1234\r\n").line(4, "too long"),
            Ok(&b"1234"[..])
        );
    }
}
