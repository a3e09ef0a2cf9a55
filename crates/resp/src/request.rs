//! Parsing client requests: RESP multibulk (`*N\r\n$len\r\narg\r\n...`) and inline commands.
//!
//! [`parse_request`] runs in two phases. The check walks the buffer and decides whether a
//! whole request has arrived, without allocating or consuming. Only then is the request split
//! off the buffer, frozen, and its arguments handed out as slices of it.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use crate::scan::Cursor;
use crate::{Limits, ParseError};

/// Takes the next complete request off the front of `buf`.
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
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Bytes>>, ParseError> {
    // Every round either returns or consumes at least one byte, so this ends.
    while !buf.is_empty() {
        let checked = match check_request(buf, limits) {
            Ok(checked) => checked,
            Err(ParseError::Incomplete) if buf.len() > limits.max_buffer_bytes => {
                return Err(ParseError::protocol("query buffer limit exceeded"));
            }
            Err(ParseError::Incomplete) => return Ok(None),
            Err(error) => return Err(error),
        };
        match checked {
            Checked::Skip { len } => buf.advance(len),
            Checked::Multibulk { len, arg_count } => {
                return take_multibulk(buf, len, arg_count, limits).map(Some);
            }
            Checked::Inline { line_len, len } => {
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

/// The check phase: no allocation, nothing consumed.
fn check_request(bytes: &[u8], limits: &Limits) -> Result<Checked, ParseError> {
    if bytes.first() == Some(&b'*') {
        scan_multibulk(bytes, limits, |_| {})
    } else {
        check_inline(bytes, limits)
    }
}

/// Walks one multibulk request, reporting each argument's byte range to `on_arg`.
///
/// The check phase calls this with a no-op callback; the parse phase calls it again over the
/// same bytes, now frozen, to collect the arguments.
fn scan_multibulk(
    bytes: &[u8],
    limits: &Limits,
    mut on_arg: impl FnMut(Range<usize>),
) -> Result<Checked, ParseError> {
    let mut cursor = Cursor::new(bytes);
    cursor.next_byte()?; // the '*'
    let count = cursor.integer_line(limits.max_inline_bytes, "invalid multibulk length")?;
    if count == 0 || count == -1 {
        return Ok(Checked::Skip {
            len: cursor.position(),
        });
    }
    let arg_count = usize::try_from(count)
        .ok()
        .filter(|&count| count <= limits.max_args)
        .ok_or_else(|| ParseError::protocol("invalid multibulk length"))?;
    for _ in 0..arg_count {
        let marker = cursor.next_byte()?;
        if marker != b'$' {
            return Err(ParseError::protocol(&format!(
                "expected '$', got '{}'",
                printable(marker)
            )));
        }
        let len = cursor.integer_line(limits.max_inline_bytes, "invalid bulk length")?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= limits.max_bulk_bytes)
            .ok_or_else(|| ParseError::protocol("invalid bulk length"))?;
        on_arg(cursor.payload(len)?);
    }
    Ok(Checked::Multibulk {
        len: cursor.position(),
        arg_count,
    })
}

/// The parse phase for a multibulk request the check phase found complete.
fn take_multibulk(
    buf: &mut BytesMut,
    len: usize,
    arg_count: usize,
    limits: &Limits,
) -> Result<Vec<Bytes>, ParseError> {
    let request = buf.split_to(len).freeze();
    let mut args = Vec::with_capacity(arg_count);
    scan_multibulk(&request, limits, |range| args.push(request.slice(range)))?;
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

/// Finds the end of an inline line: `\n`, with an optional `\r` before it.
///
/// The text of the line (a trailing `\r` included) may be at most `max_inline_bytes` long;
/// that is checked the same way whether or not the `\n` has arrived yet.
fn check_inline(bytes: &[u8], limits: &Limits) -> Result<Checked, ParseError> {
    let max_len = limits.max_inline_bytes;
    let window = &bytes[..bytes.len().min(max_len.saturating_add(1))];
    match window.iter().position(|&byte| byte == b'\n') {
        Some(newline) => {
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
        None if bytes.len() > max_len => Err(ParseError::protocol("too big inline request")),
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
}
