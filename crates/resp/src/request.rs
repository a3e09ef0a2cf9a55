//! Parsing client requests: RESP multibulk (`*N\r\n$len\r\narg\r\n...`) and inline commands.
//!
//! [`parse_request`] runs in two phases. The check walks the buffer and decides whether a
//! whole request has arrived, without allocating or consuming. Only then is the request split
//! off the buffer, frozen, and its arguments handed out as slices of it.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use crate::scan::Cursor;
use crate::{Limits, ParseError};

/// Longest `*` or `$` count line looked at, in bytes: no valid count (an `i64` without a
/// leading zero) is longer, so a longer line is refused without waiting for its end.
const MAX_COUNT_LINE_BYTES: usize = 32;

/// Takes the next complete request off the front of `buf`, with no memory of earlier calls.
///
/// Returns `Ok(Some(args))` and consumes the request's bytes; `Ok(None)` when more bytes are
/// needed (nothing of the pending request is consumed, so call again after the next read);
/// `Err(ParseError::Protocol(_))` when the bytes can never form a valid request, in which case
/// the caller should send the error text and close the connection.
///
/// Empty requests are skipped and the next one is returned: `*0`, `*-1`, and inline lines with
/// no words. Multibulk arguments are zero-copy slices of `buf`; inline words are too, unless
/// quoting or escapes changed their bytes.
///
/// Beyond the length limits, a pending incomplete request longer than
/// [`Limits::max_buffer_bytes`] is rejected.
///
/// Each call walks the pending request from its start: a connection should keep a
/// [`RequestParser`] instead, which resumes where the previous call stopped.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Bytes>>, ParseError> {
    RequestParser::new().parse(buf, limits)
}

/// [`parse_request`] that remembers, between calls, how far the pending request was found
/// valid, so that a request trickled in small reads costs work linear in its bytes (rule L2 of
/// docs/PROTOCOL.md) instead of a walk from its start on every read.
///
/// The memory is a few integers: a position in the buffer and a count of checked arguments
/// (nothing is allocated on a declared length). The caller must feed the same buffer, only
/// appending to it, and take requests off it only through [`RequestParser::parse`].
#[derive(Debug, Default, Clone)]
pub struct RequestParser {
    pending: Pending,
    steps: u64,
}

/// How much of the request at the front of the buffer is known valid.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// Nothing known: start at the first byte.
    #[default]
    Nothing,
    /// A multibulk request of `arg_count` arguments whose header and first `args_done`
    /// arguments, the first `position` bytes, are complete and valid.
    Multibulk {
        arg_count: usize,
        args_done: usize,
        position: usize,
    },
    /// An inline line whose first `scanned` bytes hold no `\n`.
    Inline { scanned: usize },
}

impl RequestParser {
    /// A parser with nothing pending.
    pub fn new() -> Self {
        RequestParser::default()
    }

    /// Bytes looked at since this parser was made: the work done, which stays within a small
    /// multiple of the bytes received however they are split into reads.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Takes the next complete request off the front of `buf`: see [`parse_request`].
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Vec<Bytes>>, ParseError> {
        // Every round either returns or consumes at least one byte, so this ends.
        while !buf.is_empty() {
            let checked = match self.check(buf, limits) {
                Ok(checked) => checked,
                Err(ParseError::Incomplete) if buf.len() > limits.max_buffer_bytes => {
                    self.pending = Pending::Nothing;
                    return Err(ParseError::protocol("query buffer limit exceeded"));
                }
                Err(ParseError::Incomplete) => return Ok(None),
                Err(error) => {
                    self.pending = Pending::Nothing;
                    return Err(error);
                }
            };
            self.pending = Pending::Nothing;
            match checked {
                Checked::Skip { len } => buf.advance(len),
                Checked::Multibulk { len, arg_count } => {
                    self.steps += len as u64;
                    return take_multibulk(buf, len, arg_count, limits).map(Some);
                }
                Checked::Inline { line_len, len } => {
                    self.steps += len as u64;
                    let args = split_inline(&buf[..line_len])?;
                    let request = buf.split_to(len).freeze();
                    if !args.is_empty() {
                        return Ok(Some(
                            args.into_iter()
                                .map(|arg| arg.into_bytes(&request))
                                .collect(),
                        ));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The check phase, resumed where the last one stopped: no allocation, nothing consumed.
    /// An `Incomplete` answer records how far the request is known valid.
    fn check(&mut self, bytes: &[u8], limits: &Limits) -> Result<Checked, ParseError> {
        match self.pending {
            Pending::Inline { scanned } => self.check_inline(bytes, limits, scanned),
            Pending::Multibulk {
                arg_count,
                args_done,
                position,
            } => self.check_args(bytes, limits, arg_count, args_done, position),
            Pending::Nothing if bytes.first() == Some(&b'*') => {
                let mut cursor = Cursor::new(bytes);
                let header = multibulk_header(&mut cursor, limits);
                self.steps += cursor.examined();
                match header? {
                    None => Ok(Checked::Skip {
                        len: cursor.position(),
                    }),
                    Some(arg_count) => {
                        self.check_args(bytes, limits, arg_count, 0, cursor.position())
                    }
                }
            }
            Pending::Nothing => self.check_inline(bytes, limits, 0),
        }
    }

    /// Checks arguments from `args_done` (which end at `position`) on.
    fn check_args(
        &mut self,
        bytes: &[u8],
        limits: &Limits,
        arg_count: usize,
        mut args_done: usize,
        mut position: usize,
    ) -> Result<Checked, ParseError> {
        let mut cursor = Cursor::at(bytes, position);
        let result = loop {
            if args_done == arg_count {
                break Ok(Checked::Multibulk {
                    len: cursor.position(),
                    arg_count,
                });
            }
            match multibulk_arg(&mut cursor, limits) {
                Ok(_) => {
                    args_done += 1;
                    position = cursor.position();
                }
                Err(error) => break Err(error),
            }
        };
        self.steps += cursor.examined();
        if result == Err(ParseError::Incomplete) {
            self.pending = Pending::Multibulk {
                arg_count,
                args_done,
                position,
            };
        }
        result
    }

    /// Looks for the end of an inline line from byte `scanned` on (the bytes before hold no
    /// `\n`).
    fn check_inline(
        &mut self,
        bytes: &[u8],
        limits: &Limits,
        scanned: usize,
    ) -> Result<Checked, ParseError> {
        let window_end = bytes.len().min(limits.max_inline_bytes.saturating_add(1));
        let window = bytes.get(scanned..window_end).unwrap_or_default();
        self.steps += window.len() as u64;
        let result = check_inline(bytes, window, scanned, limits);
        if result == Err(ParseError::Incomplete) {
            self.pending = Pending::Inline {
                scanned: window_end,
            };
        }
        result
    }
}

/// What the check phase found at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
enum Checked {
    /// An empty multibulk request (`*0`, `*-1`) of `len` bytes.
    Skip { len: usize },
    /// A complete multibulk request of `len` bytes with `arg_count` arguments.
    Multibulk { len: usize, arg_count: usize },
    /// A complete inline line: `line_len` bytes of text, `len` bytes including the line end.
    Inline { line_len: usize, len: usize },
}

/// The longest count line accepted.
fn count_line_bytes(limits: &Limits) -> usize {
    limits.max_inline_bytes.min(MAX_COUNT_LINE_BYTES)
}

/// Reads `*N\r\n`: `None` for an empty request (`*0`, `*-1`), else the argument count.
fn multibulk_header(cursor: &mut Cursor<'_>, limits: &Limits) -> Result<Option<usize>, ParseError> {
    cursor.next_byte()?; // the '*'
    let count = cursor.integer_line(count_line_bytes(limits), "invalid multibulk length")?;
    if count == 0 || count == -1 {
        return Ok(None);
    }
    usize::try_from(count)
        .ok()
        .filter(|&count| count <= limits.max_args)
        .map(Some)
        .ok_or_else(|| ParseError::protocol("invalid multibulk length"))
}

/// Reads one `$len\r\npayload\r\n` argument: the payload's range.
fn multibulk_arg(cursor: &mut Cursor<'_>, limits: &Limits) -> Result<Range<usize>, ParseError> {
    let marker = cursor.next_byte()?;
    if marker != b'$' {
        return Err(ParseError::protocol(&format!(
            "expected '$', got '{}'",
            printable(marker)
        )));
    }
    let len = cursor.integer_line(count_line_bytes(limits), "invalid bulk length")?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&len| len <= limits.max_bulk_bytes)
        .ok_or_else(|| ParseError::protocol("invalid bulk length"))?;
    cursor.payload(len)
}

/// The parse phase for a multibulk request the check phase found complete.
fn take_multibulk(
    buf: &mut BytesMut,
    len: usize,
    arg_count: usize,
    limits: &Limits,
) -> Result<Vec<Bytes>, ParseError> {
    let request = buf.split_to(len).freeze();
    let mut cursor = Cursor::new(&request);
    multibulk_header(&mut cursor, limits)?;
    let mut args = Vec::with_capacity(arg_count);
    for _ in 0..arg_count {
        let range = multibulk_arg(&mut cursor, limits)?;
        args.push(request.slice(range));
    }
    Ok(args)
}

/// `byte` as it should appear in an error message.
fn printable(byte: u8) -> String {
    if byte.is_ascii_graphic() || byte == b' ' {
        char::from(byte).to_string()
    } else {
        format!("\\x{byte:02x}")
    }
}

/// Finds the end of an inline line: `\n`, with an optional `\r` before it. `window` is
/// `bytes[scanned..]` cut at `max_inline_bytes + 1` bytes; the bytes before it hold no `\n`.
///
/// The text of the line (a trailing `\r` included) may be at most `max_inline_bytes` long;
/// that is checked the same way whether or not the `\n` has arrived yet.
fn check_inline(
    bytes: &[u8],
    window: &[u8],
    scanned: usize,
    limits: &Limits,
) -> Result<Checked, ParseError> {
    match window.iter().position(|&byte| byte == b'\n') {
        Some(found) => {
            let newline = scanned + found;
            let line_len = if newline > 0 && bytes[newline - 1] == b'\r' {
                newline - 1
            } else {
                newline
            };
            Ok(Checked::Inline {
                line_len,
                len: newline + 1,
            })
        }
        None if bytes.len() > limits.max_inline_bytes => {
            Err(ParseError::protocol("too big inline request"))
        }
        None => Err(ParseError::Incomplete),
    }
}

/// One word of an inline command, before the line is split off the buffer.
#[derive(Debug, PartialEq, Eq)]
enum InlineArg {
    /// The word is these bytes of the line, unchanged.
    Slice(Range<usize>),
    /// Quoting or escapes made the word differ from any run of the line's bytes.
    Owned(Vec<u8>),
}

impl InlineArg {
    fn into_bytes(self, line: &Bytes) -> Bytes {
        match self {
            InlineArg::Slice(range) => line.slice(range),
            InlineArg::Owned(bytes) => Bytes::from(bytes),
        }
    }
}

/// Builds one word, staying a slice of the line for as long as its bytes are contiguous there.
struct WordBuilder {
    start: usize,
    len: usize,
    owned: Option<Vec<u8>>,
}

impl WordBuilder {
    fn new() -> Self {
        WordBuilder {
            start: 0,
            len: 0,
            owned: None,
        }
    }

    /// Appends `line[index]` unchanged.
    fn push_from_line(&mut self, line: &[u8], index: usize) {
        match &mut self.owned {
            None if self.len == 0 => {
                self.start = index;
                self.len = 1;
            }
            None if self.start + self.len == index => self.len += 1,
            _ => self.push_byte(line, line[index]),
        }
    }

    /// Appends a byte that is not at the word's current end in the line (an escape result, or
    /// a byte after a quote), switching to an owned copy.
    fn push_byte(&mut self, line: &[u8], byte: u8) {
        self.owned
            .get_or_insert_with(|| line[self.start..self.start + self.len].to_vec())
            .push(byte);
    }

    fn finish(self) -> InlineArg {
        match self.owned {
            Some(bytes) => InlineArg::Owned(bytes),
            None => InlineArg::Slice(self.start..self.start + self.len),
        }
    }
}

/// Splits an inline line into words with Redis's `sdssplitargs` rules: words are separated by
/// whitespace; `"..."` understands `\n \r \t \b \a \xHH` and `\<any>`; `'...'` understands
/// `\'`; a closing quote must be followed by whitespace or the end of the line.
///
/// Unlike C Redis, a NUL byte does not end the line: outside quotes it separates words, inside
/// quotes it is kept.
fn split_inline(line: &[u8]) -> Result<Vec<InlineArg>, ParseError> {
    let mut args = Vec::new();
    let mut index = 0;
    loop {
        while line
            .get(index)
            .is_some_and(|&byte| is_space(byte) || byte == 0)
        {
            index += 1;
        }
        if index == line.len() {
            return Ok(args);
        }
        let (arg, next) = inline_word(line, index)?;
        args.push(arg);
        index = next;
    }
}

/// Which quotes the word scanner is inside.
#[derive(Clone, Copy)]
enum Quote {
    None,
    Double,
    Single,
}

/// Reads the word starting at `line[start]`; returns it and the index just after it.
fn inline_word(line: &[u8], start: usize) -> Result<(InlineArg, usize), ParseError> {
    let unbalanced = || ParseError::protocol("unbalanced quotes in request");
    let mut word = WordBuilder::new();
    let mut quote = Quote::None;
    let mut index = start;
    loop {
        let byte = line.get(index).copied();
        let next = line.get(index + 1).copied();
        match (quote, byte) {
            (Quote::None, None | Some(b' ' | b'\n' | b'\r' | b'\t' | 0)) => {
                return Ok((word.finish(), index));
            }
            (Quote::None, Some(b'"')) => quote = Quote::Double,
            (Quote::None, Some(b'\'')) => quote = Quote::Single,
            (Quote::Double | Quote::Single, None) => return Err(unbalanced()),
            (Quote::Double, Some(b'\\')) => match double_quote_escape(line, index) {
                Some((escaped, width)) => {
                    word.push_byte(line, escaped);
                    index += width - 1;
                }
                // A backslash ending the line is an ordinary byte (and the quote is unbalanced).
                None => word.push_from_line(line, index),
            },
            (Quote::Single, Some(b'\\')) if next == Some(b'\'') => {
                word.push_byte(line, b'\'');
                index += 1;
            }
            (Quote::Double, Some(b'"')) | (Quote::Single, Some(b'\'')) => {
                return match next {
                    Some(after) if !is_space(after) => Err(unbalanced()),
                    _ => Ok((word.finish(), index + 1)),
                };
            }
            (_, Some(_)) => word.push_from_line(line, index),
        }
        index += 1;
    }
}

/// The byte a backslash at `line[index]` inside double quotes stands for, and how many bytes
/// the escape spans; `None` when the backslash is the line's last byte.
fn double_quote_escape(line: &[u8], index: usize) -> Option<(u8, usize)> {
    let escaped = *line.get(index + 1)?;
    let hex_digit = |offset: usize| line.get(index + offset).copied().and_then(hex_value);
    match (escaped, hex_digit(2), hex_digit(3)) {
        (b'x', Some(high), Some(low)) => Some((high * 16 + low, 4)),
        _ => Some((unescape(escaped), 2)),
    }
}

/// C's `isspace` in the "C" locale.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

/// The byte a backslash escape inside double quotes stands for.
fn unescape(byte: u8) -> u8 {
    match byte {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8], limits: &Limits) -> Result<Vec<Vec<Bytes>>, ParseError> {
        let mut buf = BytesMut::from(input);
        let mut requests = Vec::new();
        while let Some(request) = parse_request(&mut buf, limits)? {
            requests.push(request);
        }
        Ok(requests)
    }

    fn words(request: &[&str]) -> Vec<Bytes> {
        request
            .iter()
            .map(|word| Bytes::copy_from_slice(word.as_bytes()))
            .collect()
    }

    fn protocol_error(text: &str) -> ParseError {
        ParseError::Protocol(text.to_string())
    }

    #[test]
    fn multibulk_request_is_split_into_args() {
        let requests = parse_all(
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n",
            &Limits::default(),
        );
        assert_eq!(requests, Ok(vec![words(&["SET", "k", ""])]));
    }

    #[test]
    fn bulk_args_are_binary_safe() {
        let requests = parse_all(b"*1\r\n$6\r\na\r\n\0\xffb\r\n", &Limits::default());
        assert_eq!(
            requests,
            Ok(vec![vec![Bytes::from_static(b"a\r\n\0\xffb")]])
        );
    }

    #[test]
    fn multibulk_args_are_slices_of_the_buffer() {
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"[..]);
        let start = buf.as_ptr() as usize;
        let end = start + buf.len();
        let args = parse_request(&mut buf, &Limits::default())
            .expect("valid")
            .expect("complete");
        for arg in &args {
            let address = arg.as_ptr() as usize;
            assert!((start..end).contains(&address), "{arg:?} was copied");
        }
    }

    #[test]
    fn incomplete_request_consumes_and_allocates_nothing() {
        let request = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
        for len in 0..request.len() {
            let mut buf = BytesMut::with_capacity(64);
            buf.extend_from_slice(&request[..len]);
            let capacity = buf.capacity();
            assert_eq!(parse_request(&mut buf, &Limits::default()), Ok(None));
            assert_eq!(&buf[..], &request[..len]);
            assert_eq!(buf.capacity(), capacity);
        }
    }

    #[test]
    fn huge_declared_bulk_is_rejected_without_allocation() {
        let mut buf = BytesMut::from(&b"*1\r\n$2147483648\r\n"[..]);
        let capacity = buf.capacity();
        assert_eq!(
            parse_request(&mut buf, &Limits::default()),
            Err(protocol_error("Protocol error: invalid bulk length"))
        );
        assert_eq!(buf.capacity(), capacity);
    }

    #[test]
    fn large_declared_bulk_waits_without_reserving() {
        // 100 MB is allowed, but only a few bytes of it have arrived.
        let mut buf = BytesMut::from(&b"*1\r\n$100000000\r\nabc"[..]);
        let capacity = buf.capacity();
        assert_eq!(parse_request(&mut buf, &Limits::default()), Ok(None));
        assert_eq!(buf.capacity(), capacity);
        assert_eq!(buf.len(), 19);
    }

    #[test]
    fn empty_multibulk_requests_are_skipped() {
        let requests = parse_all(
            b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n*0\r\n",
            &Limits::default(),
        );
        assert_eq!(requests, Ok(vec![words(&["PING"])]));
    }

    #[test]
    fn bad_multibulk_counts_are_rejected() {
        let invalid = Err(protocol_error("Protocol error: invalid multibulk length"));
        for input in [
            &b"*-2\r\n"[..],
            b"*x\r\n",
            b"*\r\n",
            b"*+1\r\n",
            b"*1048577\r\n",
            b"*99999999999999999999\r\n",
        ] {
            assert_eq!(parse_all(input, &Limits::default()), invalid, "{input:?}");
        }
    }

    #[test]
    fn bad_bulk_lengths_are_rejected() {
        let invalid = Err(protocol_error("Protocol error: invalid bulk length"));
        for input in [
            &b"*1\r\n$-1\r\n"[..],
            b"*1\r\n$x\r\n",
            b"*1\r\n$\r\n",
            b"*1\r\n$1 \r\n",
            b"*1\r\n$536870913\r\n",
        ] {
            assert_eq!(parse_all(input, &Limits::default()), invalid, "{input:?}");
        }
    }

    #[test]
    fn arg_without_dollar_is_rejected_with_the_byte_seen() {
        assert_eq!(
            parse_all(b"*1\r\nx", &Limits::default()),
            Err(protocol_error("Protocol error: expected '$', got 'x'"))
        );
        assert_eq!(
            parse_all(b"*1\r\n\x01", &Limits::default()),
            Err(protocol_error("Protocol error: expected '$', got '\\x01'"))
        );
    }

    #[test]
    fn bulk_data_must_end_with_crlf() {
        assert!(matches!(
            parse_all(b"*1\r\n$2\r\nabc\r\n", &Limits::default()),
            Err(ParseError::Protocol(_))
        ));
    }

    #[test]
    fn too_many_args_for_the_limit_are_rejected() {
        let limits = Limits {
            max_args: 2,
            ..Limits::default()
        };
        assert!(parse_all(b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", &limits).is_ok());
        assert_eq!(
            parse_all(b"*3\r\n", &limits),
            Err(protocol_error("Protocol error: invalid multibulk length"))
        );
    }

    #[test]
    fn pending_bytes_beyond_the_buffer_cap_are_rejected() {
        let limits = Limits {
            max_buffer_bytes: 16,
            ..Limits::default()
        };
        assert_eq!(parse_all(b"*2\r\n$5\r\nhello\r\n", &limits), Ok(vec![]));
        assert_eq!(
            parse_all(b"*2\r\n$5\r\nhello\r\n$1", &limits),
            Err(protocol_error(
                "Protocol error: query buffer limit exceeded"
            ))
        );
        // A complete request is taken even when the buffer holds more than the cap.
        let requests = parse_all(b"*2\r\n$5\r\nhello\r\n$5\r\nworld\r\n", &limits);
        assert_eq!(requests, Ok(vec![words(&["hello", "world"])]));
    }

    #[test]
    fn inline_command_is_split_on_whitespace() {
        let requests = parse_all(b"SET  key\tvalue \r\nPING\nGET k\r\n", &Limits::default());
        assert_eq!(
            requests,
            Ok(vec![
                words(&["SET", "key", "value"]),
                words(&["PING"]),
                words(&["GET", "k"])
            ])
        );
    }

    #[test]
    fn inline_command_with_quotes() {
        let requests = parse_all(b"SET \"a b\" 'c d' \"\" x\"y z\"\r\n", &Limits::default());
        assert_eq!(
            requests,
            Ok(vec![words(&["SET", "a b", "c d", "", "xy z"])])
        );
    }

    #[test]
    fn inline_double_quotes_understand_escapes() {
        let requests = parse_all(
            b"\"\\x41\\x4a\\n\\r\\t\\b\\a\\\"\\\\\\q\\xZZ\"\r\n",
            &Limits::default(),
        );
        let expected = b"AJ\n\r\t\x08\x07\"\\qxZZ";
        assert_eq!(requests, Ok(vec![vec![Bytes::from_static(expected)]]));
    }

    #[test]
    fn inline_single_quotes_only_escape_the_quote() {
        let requests = parse_all(b"'it\\'s \\n'\r\n", &Limits::default());
        assert_eq!(requests, Ok(vec![words(&["it's \\n"])]));
    }

    #[test]
    fn inline_unbalanced_quotes_are_rejected() {
        let unbalanced = Err(protocol_error(
            "Protocol error: unbalanced quotes in request",
        ));
        for input in [
            &b"SET \"abc\r\n"[..],
            b"SET 'abc\r\n",
            b"SET \"a\"b\r\n",
            b"SET 'a'b\r\n",
            b"SET \"abc\\\"\r\n",
        ] {
            assert_eq!(
                parse_all(input, &Limits::default()),
                unbalanced,
                "{input:?}"
            );
        }
    }

    #[test]
    fn inline_words_are_slices_unless_rewritten() {
        assert_eq!(
            split_inline(b"GET \"key\" a\"b c\""),
            Ok(vec![
                InlineArg::Slice(0..3),
                InlineArg::Slice(5..8),
                InlineArg::Owned(b"ab c".to_vec()),
            ])
        );
    }

    #[test]
    fn empty_inline_lines_are_skipped() {
        let requests = parse_all(b"\r\n\n   \r\n\t\nPING\r\n\r\n", &Limits::default());
        assert_eq!(requests, Ok(vec![words(&["PING"])]));
    }

    #[test]
    fn too_big_inline_request_is_rejected_whether_or_not_complete() {
        let limits = Limits {
            max_inline_bytes: 8,
            ..Limits::default()
        };
        let too_big = Err(protocol_error("Protocol error: too big inline request"));
        // The limit counts the line's text, a '\r' before the '\n' included.
        assert_eq!(
            parse_all(b"GET 1234\n", &limits),
            Ok(vec![words(&["GET", "1234"])])
        );
        assert_eq!(
            parse_all(b"GET 123\r\n", &limits),
            Ok(vec![words(&["GET", "123"])])
        );
        assert_eq!(parse_all(b"GET 1234\r\n", &limits), too_big);
        assert_eq!(parse_all(b"GET 12345", &limits), too_big);
        assert_eq!(parse_all(b"GET 12345\n", &limits), too_big);
        assert_eq!(parse_all(b"GET 1234", &limits), Ok(vec![]));
    }

    /// Feeds `wire` to one parser in `chunk_bytes` reads; the requests and the parser's steps.
    fn trickle(wire: &[u8], chunk_bytes: usize, limits: &Limits) -> (Vec<Vec<Bytes>>, u64) {
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::new();
        let mut requests = Vec::new();
        for chunk in wire.chunks(chunk_bytes) {
            buf.extend_from_slice(chunk);
            while let Some(request) = parser.parse(&mut buf, limits).expect("valid") {
                requests.push(request);
            }
        }
        assert!(buf.is_empty());
        (requests, parser.steps())
    }

    #[test]
    fn l2_trickled_million_argument_request_costs_linear_work() {
        let arg_count = 1 << 20;
        let mut wire = format!("*{arg_count}\r\n").into_bytes();
        for _ in 0..arg_count {
            wire.extend_from_slice(b"$1\r\na\r\n");
        }
        let limits = Limits::default();
        let (all_at_once, steps_at_once) = trickle(&wire, wire.len(), &limits);
        assert_eq!(all_at_once.len(), 1);
        assert_eq!(all_at_once[0].len(), arg_count);
        // 7 MiB in 100-byte reads: 73k reads. Walking from the start on each read would be
        // ~2.7e11 steps; resuming keeps it a small multiple of the bytes.
        let (trickled, steps_trickled) = trickle(&wire, 100, &limits);
        assert_eq!(trickled, all_at_once);
        let bytes = wire.len() as u64;
        assert!(
            steps_at_once <= 3 * bytes,
            "{steps_at_once} steps for {bytes} bytes"
        );
        assert!(
            steps_trickled <= 4 * bytes,
            "{steps_trickled} steps for {bytes} bytes in 100-byte reads"
        );
    }

    #[test]
    fn l2_trickled_inline_line_costs_linear_work() {
        let mut wire = vec![b'a'; 60_000];
        wire.extend_from_slice(b"\r\n");
        let (requests, steps) = trickle(&wire, 1, &Limits::default());
        assert_eq!(requests.len(), 1);
        assert!(steps <= 3 * wire.len() as u64, "{steps} steps");
    }

    #[test]
    fn l2_overlong_count_line_is_refused_before_its_end() {
        let mut buf = BytesMut::from(&b"*1\r\n$000000000000000000000000000000001"[..]);
        assert_eq!(
            RequestParser::new().parse(&mut buf, &Limits::default()),
            Err(protocol_error("Protocol error: invalid bulk length"))
        );
    }
}
