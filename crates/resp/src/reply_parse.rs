//! The client side: parsing replies (RESP2 and RESP3) and encoding requests.
//!
//! [`parse_frame`] has the same two phases as [`parse_request`](crate::parse_request): a check
//! that walks the whole frame without allocating, then a parse over the frozen bytes that
//! hands out bulk strings as zero-copy slices.

use bytes::{Bytes, BytesMut};

use crate::frame::{put_bulk, put_length};
use crate::scan::Cursor;
use crate::{Frame, Limits, ParseError};

/// How deeply aggregates may nest in a reply. Real replies nest a few levels; the bound keeps
/// a hostile `*1\r\n*1\r\n...` from exhausting the stack.
const MAX_NESTING_DEPTH: usize = 64;

/// Takes the next complete reply frame off the front of `buf`.
///
/// Returns `Ok(Some(frame))` and consumes its bytes; `Ok(None)` when more bytes are needed
/// (nothing consumed); `Err(ParseError::Protocol(_))` when the bytes are not a valid reply.
///
/// Understands every RESP2 and RESP3 reply type a client sees, mapping a few onto the same
/// [`Frame`]: `$-1`, `*-1` and `_` are [`Frame::Null`]; sets (`~`) and pushes (`>`) are
/// [`Frame::Array`]; blob errors (`!`) are [`Frame::Error`]. Big numbers (`(`) and attributes
/// (`|`) are not supported and are a protocol error.
///
/// Bulk strings longer than [`Limits::max_bulk_bytes`], aggregates longer than
/// [`Limits::max_args`], nesting deeper than 64 levels and a pending incomplete frame longer
/// than [`Limits::max_buffer_bytes`] are protocol errors.
pub fn parse_frame(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Frame>, ParseError> {
    let mut check = Cursor::new(buf);
    let len = match check_frame(&mut check, limits, 0) {
        Ok(()) => check.position(),
        Err(ParseError::Incomplete) if buf.len() > limits.max_buffer_bytes => {
            return Err(ParseError::protocol("reply buffer limit exceeded"));
        }
        Err(ParseError::Incomplete) => return Ok(None),
        Err(error) => return Err(error),
    };
    let bytes = buf.split_to(len).freeze();
    let mut cursor = Cursor::new(&bytes);
    read_frame(&mut cursor, &bytes, limits).map(Some)
}

/// Appends a request (a multibulk array of bulk strings) to `out`.
pub fn encode_request(args: &[&[u8]], out: &mut BytesMut) {
    put_length(out, b'*', args.len());
    for arg in args {
        put_bulk(out, arg);
    }
}

/// The type line of one frame, decoded.
enum Header<'a> {
    /// `+` text.
    Simple(&'a [u8]),
    /// `-` text.
    Error(&'a [u8]),
    Integer(i64),
    Double(f64),
    Boolean(bool),
    Null,
    /// `$`, `!` or `=` with the payload length still to read.
    Blob(BlobKind, usize),
    /// `*`, `~`, `>` (`count` elements) or `%` (`count` pairs).
    Aggregate(AggregateKind, usize),
}

#[derive(Clone, Copy)]
enum BlobKind {
    Bulk,
    Error,
    Verbatim,
}

#[derive(Clone, Copy)]
enum AggregateKind {
    Array,
    Map,
}

/// Reads the type byte and the rest of the first line of a frame.
fn read_header<'a>(cursor: &mut Cursor<'a>, limits: &Limits) -> Result<Header<'a>, ParseError> {
    let count_line = limits.max_inline_bytes;
    let kind = cursor.next_byte()?;
    let header = match kind {
        b'+' => Header::Simple(cursor.line(limits.max_bulk_bytes, "too big simple string")?),
        b'-' => Header::Error(cursor.line(limits.max_bulk_bytes, "too big error string")?),
        b':' => Header::Integer(cursor.integer_line(count_line, "invalid integer")?),
        b',' => Header::Double(parse_double(cursor.line(count_line, "invalid double")?)?),
        b'#' => match cursor.line(count_line, "invalid boolean")? {
            b"t" => Header::Boolean(true),
            b"f" => Header::Boolean(false),
            _ => return Err(ParseError::protocol("invalid boolean")),
        },
        b'_' => match cursor.line(count_line, "invalid null")? {
            b"" => Header::Null,
            _ => return Err(ParseError::protocol("invalid null")),
        },
        b'$' | b'!' | b'=' => {
            let len = cursor.integer_line(count_line, "invalid bulk length")?;
            if kind == b'$' && len == -1 {
                return Ok(Header::Null);
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|&len| len <= limits.max_bulk_bytes)
                .ok_or_else(|| ParseError::protocol("invalid bulk length"))?;
            let blob = match kind {
                b'$' => BlobKind::Bulk,
                b'!' => BlobKind::Error,
                _ => BlobKind::Verbatim,
            };
            Header::Blob(blob, len)
        }
        b'*' | b'~' | b'>' | b'%' => {
            let count = cursor.integer_line(count_line, "invalid multibulk length")?;
            if kind == b'*' && count == -1 {
                return Ok(Header::Null);
            }
            let count = usize::try_from(count)
                .ok()
                .filter(|&count| count <= limits.max_args)
                .ok_or_else(|| ParseError::protocol("invalid multibulk length"))?;
            let aggregate = if kind == b'%' {
                AggregateKind::Map
            } else {
                AggregateKind::Array
            };
            Header::Aggregate(aggregate, count)
        }
        other => {
            return Err(ParseError::protocol(&format!(
                "unsupported reply type byte 0x{other:02x}"
            )));
        }
    };
    Ok(header)
}

/// A RESP3 double: `inf`, `-inf`, `nan`, or a decimal / exponent number.
fn parse_double(text: &[u8]) -> Result<f64, ParseError> {
    let invalid = || ParseError::protocol("invalid double");
    match text {
        b"inf" | b"+inf" => Ok(f64::INFINITY),
        b"-inf" => Ok(f64::NEG_INFINITY),
        b"nan" | b"-nan" => Ok(f64::NAN),
        _ => {
            let text = std::str::from_utf8(text).map_err(|_| invalid())?;
            // Rust also accepts spellings such as "infinity"; only plain numbers get here.
            if !text
                .bytes()
                .all(|byte| byte.is_ascii_digit() || b"+-.eE".contains(&byte))
            {
                return Err(invalid());
            }
            text.parse().map_err(|_| invalid())
        }
    }
}

/// The check phase: walks one frame, nothing allocated.
fn check_frame(cursor: &mut Cursor<'_>, limits: &Limits, depth: usize) -> Result<(), ParseError> {
    match read_header(cursor, limits)? {
        Header::Blob(kind, len) => {
            let range = cursor.payload(len)?;
            if let BlobKind::Verbatim = kind {
                check_verbatim_len(range.len())?;
            }
        }
        Header::Aggregate(kind, count) => {
            if depth >= MAX_NESTING_DEPTH {
                return Err(ParseError::protocol("reply nested too deeply"));
            }
            let frames = match kind {
                AggregateKind::Array => count,
                AggregateKind::Map => count.saturating_mul(2),
            };
            for _ in 0..frames {
                check_frame(cursor, limits, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A verbatim payload holds at least the three-byte format and its colon.
fn check_verbatim_len(len: usize) -> Result<(), ParseError> {
    if len < 4 {
        return Err(ParseError::protocol("invalid verbatim string"));
    }
    Ok(())
}

/// The parse phase: builds the frame the check phase accepted, slicing `bytes`.
fn read_frame(
    cursor: &mut Cursor<'_>,
    bytes: &Bytes,
    limits: &Limits,
) -> Result<Frame, ParseError> {
    let text = |line: &[u8]| String::from_utf8_lossy(line).into_owned();
    let frame = match read_header(cursor, limits)? {
        Header::Simple(line) => Frame::Simple(text(line)),
        Header::Error(line) => Frame::Error(text(line)),
        Header::Integer(value) => Frame::Integer(value),
        Header::Double(value) => Frame::Double(value),
        Header::Boolean(value) => Frame::Boolean(value),
        Header::Null => Frame::Null,
        Header::Blob(kind, len) => {
            let range = cursor.payload(len)?;
            match kind {
                BlobKind::Bulk => Frame::Bulk(bytes.slice(range)),
                BlobKind::Error => Frame::Error(text(&bytes[range])),
                BlobKind::Verbatim => {
                    check_verbatim_len(range.len())?;
                    let format = text(&bytes[range.start..range.start + 3]);
                    Frame::Verbatim(format, bytes.slice(range.start + 4..range.end))
                }
            }
        }
        Header::Aggregate(AggregateKind::Array, count) => {
            let mut items = Vec::with_capacity(count);
            for _ in 0..count {
                items.push(read_frame(cursor, bytes, limits)?);
            }
            Frame::Array(items)
        }
        Header::Aggregate(AggregateKind::Map, count) => {
            let mut pairs = Vec::with_capacity(count);
            for _ in 0..count {
                let key = read_frame(cursor, bytes, limits)?;
                let value = read_frame(cursor, bytes, limits)?;
                pairs.push((key, value));
            }
            Frame::Map(pairs)
        }
    };
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_one(input: &[u8]) -> Result<Option<Frame>, ParseError> {
        let mut buf = BytesMut::from(input);
        let frame = parse_frame(&mut buf, &Limits::default());
        if let Ok(Some(_)) = frame {
            assert!(buf.is_empty(), "{input:?} left {buf:?}");
        }
        frame
    }

    fn bulk(bytes: &'static [u8]) -> Frame {
        Frame::Bulk(Bytes::from_static(bytes))
    }

    #[test]
    fn every_reply_type_parses() {
        let cases: Vec<(&[u8], Frame)> = vec![
            (b"+OK\r\n", Frame::Simple("OK".into())),
            (
                b"-ERR no such key\r\n",
                Frame::Error("ERR no such key".into()),
            ),
            (b":-7\r\n", Frame::Integer(-7)),
            (b"$3\r\na\r\n\r\n", bulk(b"a\r\n")),
            (b"$-1\r\n", Frame::Null),
            (b"*-1\r\n", Frame::Null),
            (b"_\r\n", Frame::Null),
            (
                b"*2\r\n:1\r\n$1\r\nx\r\n",
                Frame::Array(vec![Frame::Integer(1), bulk(b"x")]),
            ),
            (b"~1\r\n:1\r\n", Frame::Array(vec![Frame::Integer(1)])),
            (
                b">2\r\n+message\r\n:2\r\n",
                Frame::Array(vec![Frame::Simple("message".into()), Frame::Integer(2)]),
            ),
            (
                b"%1\r\n+k\r\n#t\r\n",
                Frame::Map(vec![(Frame::Simple("k".into()), Frame::Boolean(true))]),
            ),
            (b",1.25\r\n", Frame::Double(1.25)),
            (b",-inf\r\n", Frame::Double(f64::NEG_INFINITY)),
            (b",1e300\r\n", Frame::Double(1e300)),
            (b"#f\r\n", Frame::Boolean(false)),
            (
                b"=7\r\nmkd:# a\r\n",
                Frame::Verbatim("mkd".into(), Bytes::from_static(b"# a")),
            ),
            (b"!9\r\nERR oops!\r\n", Frame::Error("ERR oops!".into())),
            (b"*0\r\n", Frame::Array(vec![])),
            (b"%0\r\n", Frame::Map(vec![])),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_one(input),
                Ok(Some(expected)),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn nan_double_parses() {
        assert!(matches!(parse_one(b",nan\r\n"), Ok(Some(Frame::Double(value))) if value.is_nan()));
    }

    #[test]
    fn malformed_replies_are_protocol_errors() {
        for input in [
            &b"?\r\n"[..],
            b"(12345678901234567890\r\n",
            b"|1\r\n",
            b":1.5\r\n",
            b"#x\r\n",
            b"_x\r\n",
            b",1.2.3\r\n",
            b",infinity\r\n",
            b"$-2\r\n",
            b"%-1\r\n",
            b"~-1\r\n",
            b"=3\r\ntxt\r\n",
            b"$1\r\nab\r\n",
            b"+OK\rX",
        ] {
            assert!(
                matches!(parse_one(input), Err(ParseError::Protocol(_))),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn incomplete_reply_consumes_nothing() {
        let reply = b"*2\r\n%1\r\n+k\r\n,2.5\r\n=8\r\ntxt:abcd\r\n";
        for len in 0..reply.len() {
            let mut buf = BytesMut::from(&reply[..len]);
            assert_eq!(
                parse_frame(&mut buf, &Limits::default()),
                Ok(None),
                "prefix {len}"
            );
            assert_eq!(&buf[..], &reply[..len]);
        }
        assert!(parse_one(reply).expect("valid").is_some());
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let nested = |depth: usize| {
            let mut input = b"*1\r\n".repeat(depth);
            input.extend_from_slice(b":1\r\n");
            input
        };
        assert!(matches!(parse_one(&nested(MAX_NESTING_DEPTH)), Ok(Some(_))));
        assert_eq!(
            parse_one(&nested(MAX_NESTING_DEPTH + 1)),
            Err(ParseError::Protocol(
                "Protocol error: reply nested too deeply".into()
            ))
        );
        // Far deeper garbage fails the same way instead of overflowing the stack.
        assert!(parse_one(&nested(100_000)).is_err());
    }

    #[test]
    fn reply_limits_are_enforced() {
        let limits = Limits {
            max_bulk_bytes: 4,
            max_args: 2,
            max_buffer_bytes: 32,
            ..Limits::default()
        };
        let parse = |input: &[u8]| parse_frame(&mut BytesMut::from(input), &limits);
        assert!(parse(b"$4\r\nabcd\r\n").is_ok());
        assert!(parse(b"$5\r\n").is_err());
        assert!(parse(b"*3\r\n").is_err());
        assert!(parse(b"%3\r\n").is_err());
        let pending = [&b"*2\r\n$4\r\nabcd\r\n"[..], &[b'+'; 30]].concat();
        assert!(parse(&pending).is_err());
    }

    #[test]
    fn bulk_replies_are_slices_of_the_buffer() {
        let mut buf = BytesMut::from(&b"*1\r\n$5\r\nhello\r\n"[..]);
        let start = buf.as_ptr() as usize;
        let Ok(Some(Frame::Array(items))) = parse_frame(&mut buf, &Limits::default()) else {
            panic!("expected an array");
        };
        let [Frame::Bulk(hello)] = &items[..] else {
            panic!("expected one bulk string");
        };
        assert_eq!(hello.as_ptr() as usize, start + 8);
    }

    #[test]
    fn encode_request_writes_a_multibulk_array() {
        let mut out = BytesMut::new();
        encode_request(&[b"SET", b"k", b"a\r\nb", b""], &mut out);
        assert_eq!(
            &out[..],
            b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n$0\r\n\r\n"
        );
        encode_request(&[], &mut out);
        assert!(out.ends_with(b"*0\r\n"));
    }
}
