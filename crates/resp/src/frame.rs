//! Replies: the [`Frame`] value and its encoding in RESP2 or RESP3.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

/// Which RESP version a connection speaks (RESP3 after a successful `HELLO 3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// RESP2, the default for every new connection.
    #[default]
    Resp2,
    /// RESP3, with maps, doubles, booleans, verbatim strings and a distinct null.
    Resp3,
}

/// One reply value.
///
/// The RESP3-only variants still encode under RESP2, as Redis does: see [`encode`].
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A simple string, `+OK`. Must be a single line; see [`encode`].
    Simple(String),
    /// An error, `-ERR message`; the text includes the error code. Single line, like `Simple`.
    Error(String),
    /// A signed 64-bit integer, `:42`.
    Integer(i64),
    /// A binary-safe bulk string, `$len`.
    Bulk(Bytes),
    /// The absence of a value: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// An ordered list of frames, `*N`.
    Array(Vec<Frame>),
    /// Key-value pairs in order, `%N` in RESP3, a flat array of 2N in RESP2.
    Map(Vec<(Frame, Frame)>),
    /// A floating-point number, `,` in RESP3, a bulk string in RESP2.
    Double(f64),
    /// `#t` / `#f` in RESP3, the integer 1 / 0 in RESP2.
    Boolean(bool),
    /// A string with a three-byte format (`txt`, `mkd`): `=` in RESP3, a plain bulk string in
    /// RESP2.
    Verbatim(String, Bytes),
}

/// Appends `frame`, encoded for `proto`, to `out`.
///
/// Under RESP2 the RESP3 types degrade as Redis degrades them: `Null` is `$-1`, a `Map` is
/// flattened into an array of keys and values, a `Double` is a bulk string of its decimal
/// text, a `Boolean` is the integer 1 or 0, and a `Verbatim` string is a bulk string of its
/// text without the format.
///
/// Line breaks cannot appear inside `Simple` and `Error` strings: each `\r` or `\n` is written
/// as a space. A `Verbatim` format that is not exactly three bytes is written as `txt`.
///
/// Nothing is allocated besides the growth of `out`.
pub fn encode(frame: &Frame, proto: Protocol, out: &mut BytesMut) {
    match frame {
        Frame::Simple(text) => put_single_line(out, b'+', text),
        Frame::Error(text) => put_single_line(out, b'-', text),
        Frame::Integer(value) => put_integer(out, b':', *value),
        Frame::Bulk(bytes) => put_bulk(out, bytes),
        Frame::Null => out.put_slice(match proto {
            Protocol::Resp2 => b"$-1\r\n",
            Protocol::Resp3 => b"_\r\n",
        }),
        Frame::Array(items) => {
            put_length(out, b'*', items.len());
            for item in items {
                encode(item, proto, out);
            }
        }
        Frame::Map(pairs) => {
            match proto {
                Protocol::Resp2 => put_length(out, b'*', pairs.len().saturating_mul(2)),
                Protocol::Resp3 => put_length(out, b'%', pairs.len()),
            }
            for (key, value) in pairs {
                encode(key, proto, out);
                encode(value, proto, out);
            }
        }
        Frame::Double(value) => {
            let text = DoubleText::new(*value);
            match proto {
                Protocol::Resp2 => put_bulk(out, text.as_bytes()),
                Protocol::Resp3 => {
                    out.put_u8(b',');
                    out.put_slice(text.as_bytes());
                    out.put_slice(b"\r\n");
                }
            }
        }
        Frame::Boolean(value) => match proto {
            Protocol::Resp2 => put_integer(out, b':', i64::from(*value)),
            Protocol::Resp3 => out.put_slice(if *value { b"#t\r\n" } else { b"#f\r\n" }),
        },
        Frame::Verbatim(format, text) => match proto {
            Protocol::Resp2 => put_bulk(out, text),
            Protocol::Resp3 => {
                let format = match format.as_bytes() {
                    format @ [_, _, _] => format,
                    _ => b"txt",
                };
                put_length(out, b'=', text.len().saturating_add(4));
                out.put_slice(format);
                out.put_u8(b':');
                out.put_slice(text);
                out.put_slice(b"\r\n");
            }
        },
    }
}

/// `prefix`, then `text` with every `\r` and `\n` replaced by a space, then CRLF.
fn put_single_line(out: &mut BytesMut, prefix: u8, text: &str) {
    out.put_u8(prefix);
    let mut rest = text.as_bytes();
    while let Some(line_break) = rest.iter().position(|&byte| byte == b'\r' || byte == b'\n') {
        out.put_slice(&rest[..line_break]);
        out.put_u8(b' ');
        rest = &rest[line_break + 1..];
    }
    out.put_slice(rest);
    out.put_slice(b"\r\n");
}

/// `$len\r\nbytes\r\n`.
pub(crate) fn put_bulk(out: &mut BytesMut, bytes: &[u8]) {
    put_length(out, b'$', bytes.len());
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

/// `prefix`, the decimal `len`, CRLF.
pub(crate) fn put_length(out: &mut BytesMut, prefix: u8, len: usize) {
    out.put_u8(prefix);
    // usize is at most 64 bits on every supported target.
    put_decimal(out, len as u64);
    out.put_slice(b"\r\n");
}

/// `prefix`, the decimal `value`, CRLF.
fn put_integer(out: &mut BytesMut, prefix: u8, value: i64) {
    out.put_u8(prefix);
    if value < 0 {
        out.put_u8(b'-');
    }
    put_decimal(out, value.unsigned_abs());
    out.put_slice(b"\r\n");
}

/// Writes the decimal digits of `value` without allocating.
fn put_decimal(out: &mut BytesMut, mut value: u64) {
    // u64::MAX has 20 digits.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.put_slice(&digits[start..]);
}

/// The text of a double, formatted on the stack.
///
/// Finite values use the shortest text that parses back to the same value: plain decimal for
/// moderate magnitudes, `1.5e300` style otherwise. Non-finite values are `inf`, `-inf` and
/// `nan`, as RESP3 spells them.
struct DoubleText {
    bytes: [u8; Self::CAPACITY],
    len: usize,
}

impl DoubleText {
    /// Enough for the longest text produced: about 25 bytes.
    const CAPACITY: usize = 64;

    fn new(value: f64) -> Self {
        let mut text = DoubleText {
            bytes: [0; Self::CAPACITY],
            len: 0,
        };
        let magnitude = value.abs();
        // Writing into the fixed buffer cannot fail: every format below fits in CAPACITY.
        let _ = if value.is_nan() {
            text.write_str("nan")
        } else if value.is_infinite() {
            text.write_str(if value > 0.0 { "inf" } else { "-inf" })
        } else if magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude) {
            write!(text, "{value:e}")
        } else {
            write!(text, "{value}")
        };
        text
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::fmt::Write for DoubleText {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let end = self.len + text.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(frame: &Frame, proto: Protocol) -> String {
        let mut out = BytesMut::new();
        encode(frame, proto, &mut out);
        String::from_utf8(out.to_vec()).expect("test frames encode to UTF-8")
    }

    fn both(frame: Frame) -> (String, String) {
        (
            encoded(&frame, Protocol::Resp2),
            encoded(&frame, Protocol::Resp3),
        )
    }

    #[test]
    fn scalars_encode_the_same_in_both_protocols() {
        for (frame, wire) in [
            (Frame::Simple("OK".into()), "+OK\r\n"),
            (Frame::Error("ERR boom".into()), "-ERR boom\r\n"),
            (Frame::Integer(0), ":0\r\n"),
            (Frame::Integer(-42), ":-42\r\n"),
            (Frame::Integer(i64::MIN), ":-9223372036854775808\r\n"),
            (Frame::Integer(i64::MAX), ":9223372036854775807\r\n"),
            (Frame::Bulk(Bytes::from_static(b"")), "$0\r\n\r\n"),
            (
                Frame::Bulk(Bytes::from_static(b"a\r\nb")),
                "$4\r\na\r\nb\r\n",
            ),
        ] {
            assert_eq!(both(frame), (wire.to_string(), wire.to_string()));
        }
    }

    #[test]
    fn null_is_nil_bulk_in_resp2_and_underscore_in_resp3() {
        assert_eq!(both(Frame::Null), ("$-1\r\n".into(), "_\r\n".into()));
    }

    #[test]
    fn map_is_flattened_in_resp2() {
        let map = Frame::Map(vec![
            (Frame::Simple("a".into()), Frame::Integer(1)),
            (Frame::Simple("b".into()), Frame::Null),
        ]);
        assert_eq!(
            both(map),
            (
                "*4\r\n+a\r\n:1\r\n+b\r\n$-1\r\n".into(),
                "%2\r\n+a\r\n:1\r\n+b\r\n_\r\n".into()
            )
        );
    }

    #[test]
    fn double_is_bulk_in_resp2_and_comma_in_resp3() {
        assert_eq!(
            both(Frame::Double(1.5)),
            ("$3\r\n1.5\r\n".into(), ",1.5\r\n".into())
        );
        assert_eq!(encoded(&Frame::Double(3.0), Protocol::Resp3), ",3\r\n");
        assert_eq!(
            encoded(&Frame::Double(1e300), Protocol::Resp3),
            ",1e300\r\n"
        );
        assert_eq!(
            encoded(&Frame::Double(-2.5e-7), Protocol::Resp3),
            ",-2.5e-7\r\n"
        );
        assert_eq!(
            encoded(&Frame::Double(f64::INFINITY), Protocol::Resp3),
            ",inf\r\n"
        );
        assert_eq!(
            encoded(&Frame::Double(f64::NEG_INFINITY), Protocol::Resp3),
            ",-inf\r\n"
        );
        assert_eq!(
            encoded(&Frame::Double(f64::NAN), Protocol::Resp3),
            ",nan\r\n"
        );
    }

    #[test]
    fn boolean_is_integer_in_resp2() {
        assert_eq!(
            both(Frame::Boolean(true)),
            (":1\r\n".into(), "#t\r\n".into())
        );
        assert_eq!(
            both(Frame::Boolean(false)),
            (":0\r\n".into(), "#f\r\n".into())
        );
    }

    #[test]
    fn verbatim_is_plain_bulk_in_resp2() {
        let frame = Frame::Verbatim("txt".into(), Bytes::from_static(b"hello"));
        assert_eq!(
            both(frame),
            ("$5\r\nhello\r\n".into(), "=9\r\ntxt:hello\r\n".into())
        );
    }

    #[test]
    fn verbatim_with_bad_format_is_written_as_txt() {
        let frame = Frame::Verbatim("markdown".into(), Bytes::from_static(b"x"));
        assert_eq!(encoded(&frame, Protocol::Resp3), "=5\r\ntxt:x\r\n");
    }

    #[test]
    fn line_breaks_in_simple_and_error_strings_become_spaces() {
        assert_eq!(
            encoded(&Frame::Simple("a\r\nb\nc\r".into()), Protocol::Resp2),
            "+a  b c \r\n"
        );
        assert_eq!(
            encoded(&Frame::Error("ERR\nsneaky\r\n+OK".into()), Protocol::Resp3),
            "-ERR sneaky  +OK\r\n"
        );
    }

    #[test]
    fn nested_arrays_encode_depth_first() {
        let frame = Frame::Array(vec![
            Frame::Array(vec![
                Frame::Integer(1),
                Frame::Bulk(Bytes::from_static(b"x")),
            ]),
            Frame::Array(vec![]),
        ]);
        assert_eq!(
            encoded(&frame, Protocol::Resp2),
            "*2\r\n*2\r\n:1\r\n$1\r\nx\r\n*0\r\n"
        );
    }

    #[test]
    fn double_text_round_trips_and_fits() {
        for value in [
            0.0,
            -0.0,
            1.0,
            0.1,
            -123.456,
            1e-4,
            9.999e-5,
            1e16,
            9999999999999998.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            -f64::MAX,
        ] {
            let text = DoubleText::new(value);
            let text = std::str::from_utf8(text.as_bytes()).expect("ASCII");
            let parsed: f64 = text.parse().expect("parses back");
            assert_eq!(parsed.to_bits(), value.to_bits(), "{text}");
        }
    }
}
