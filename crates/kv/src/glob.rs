//! Redis glob patterns (KEYS, SCAN MATCH): `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\x`.
//!
//! The pattern is compiled into tokens that each match one byte, except `*`; matching
//! then needs only one backtrack point, so it runs in O(pattern × subject) time whatever
//! the pattern (no exponential blow-up on `*a*a*a*...`).

/// One compiled pattern element.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// `*`: any run of bytes (consecutive stars are merged).
    Star,
    /// `?`: any one byte.
    Any,
    /// A literal byte (possibly escaped with `\`).
    Byte(u8),
    /// A bracket class: matches one byte in (or, if `negated`, not in) the items.
    Class {
        negated: bool,
        items: Vec<ClassItem>,
    },
}

/// One member of a bracket class.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ClassItem {
    Byte(u8),
    /// An inclusive range, stored low to high (Redis accepts `[z-a]` too).
    Range(u8, u8),
}

/// A compiled glob pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Compiles `pattern`. Every byte string is a valid pattern, as in Redis: an
    /// unclosed `[` runs to the end, a trailing `\` is a literal backslash.
    pub(crate) fn new(pattern: &[u8]) -> Pattern {
        let mut tokens = Vec::new();
        let mut rest = pattern;
        while let Some((&byte, tail)) = rest.split_first() {
            rest = tail;
            let token = match byte {
                b'*' if tokens.last() == Some(&Token::Star) => continue,
                b'*' => Token::Star,
                b'?' => Token::Any,
                b'[' => compile_class(&mut rest),
                b'\\' if !rest.is_empty() => {
                    let escaped = rest[0];
                    rest = &rest[1..];
                    Token::Byte(escaped)
                }
                _ => Token::Byte(byte),
            };
            tokens.push(token);
        }
        Pattern { tokens }
    }

    /// Whether `subject` matches the whole pattern.
    pub(crate) fn matches(&self, subject: &[u8]) -> bool {
        let (mut t, mut s) = (0, 0);
        // After the latest star: the token after it and where in `subject` it was tried.
        let mut resume: Option<(usize, usize)> = None;
        while s < subject.len() {
            match self.tokens.get(t) {
                Some(Token::Star) => {
                    resume = Some((t + 1, s));
                    t += 1;
                }
                Some(token) if token_matches(token, subject[s]) => {
                    t += 1;
                    s += 1;
                }
                _ => match resume {
                    Some((after_star, tried)) => {
                        // Let the star swallow one more byte and retry.
                        resume = Some((after_star, tried + 1));
                        t = after_star;
                        s = tried + 1;
                    }
                    None => return false,
                },
            }
        }
        self.tokens[t..].iter().all(|token| *token == Token::Star)
    }
}

fn token_matches(token: &Token, byte: u8) -> bool {
    match token {
        Token::Star => true,
        Token::Any => true,
        Token::Byte(expected) => *expected == byte,
        Token::Class { negated, items } => {
            items.iter().any(|item| item_matches(item, byte)) != *negated
        }
    }
}

fn item_matches(item: &ClassItem, byte: u8) -> bool {
    match *item {
        ClassItem::Byte(expected) => expected == byte,
        ClassItem::Range(low, high) => (low..=high).contains(&byte),
    }
}

/// Compiles a bracket class; `rest` starts just after the `[` and is advanced past `]`.
/// Follows Redis's reading: `\x` is a literal, `a-z` a range (even `a-]`), and an
/// unclosed class ends with the pattern.
fn compile_class(rest: &mut &[u8]) -> Token {
    let negated = rest.first() == Some(&b'^');
    if negated {
        *rest = &rest[1..];
    }
    let mut items = Vec::new();
    loop {
        match *rest {
            [] => break,
            [b']', tail @ ..] => {
                *rest = tail;
                break;
            }
            [b'\\', escaped, tail @ ..] => {
                items.push(ClassItem::Byte(*escaped));
                *rest = tail;
            }
            [low, b'-', high, tail @ ..] => {
                items.push(ClassItem::Range((*low).min(*high), (*low).max(*high)));
                *rest = tail;
            }
            [byte, tail @ ..] => {
                items.push(ClassItem::Byte(*byte));
                *rest = tail;
            }
        }
    }
    Token::Class { negated, items }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn glob(pattern: &str, subject: &str) -> bool {
        Pattern::new(pattern.as_bytes()).matches(subject.as_bytes())
    }

    #[test]
    fn glob_star_and_question_mark() {
        assert!(glob("*", ""));
        assert!(glob("*", "anything"));
        assert!(glob("h?llo", "hello"));
        assert!(!glob("h?llo", "hllo"));
        assert!(glob("h*llo", "hllo"));
        assert!(glob("h*llo", "heeeello"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(glob("**a", "xxa"));
        assert!(!glob("abc", "abcd"));
        assert!(!glob("", "a"));
        assert!(glob("", ""));
    }

    #[test]
    fn glob_classes_ranges_and_negation() {
        assert!(glob("h[ae]llo", "hello"));
        assert!(glob("h[ae]llo", "hallo"));
        assert!(!glob("h[ae]llo", "hillo"));
        assert!(glob("h[^e]llo", "hallo"));
        assert!(!glob("h[^e]llo", "hello"));
        assert!(glob("h[a-b]llo", "hbllo"));
        assert!(
            glob("h[b-a]llo", "hallo"),
            "reversed ranges work like Redis"
        );
        assert!(!glob("h[a-b]llo", "hcllo"));
        assert!(!glob("[]", "a"), "an empty class matches nothing");
        assert!(glob("x[abc", "xb"), "an unclosed class runs to the end");
    }

    #[test]
    fn glob_escapes() {
        assert!(glob("a\\*b", "a*b"));
        assert!(!glob("a\\*b", "axb"));
        assert!(glob("a\\?", "a?"));
        assert!(glob("[\\]]", "]"));
        assert!(glob("a\\", "a\\"), "a trailing backslash is literal");
    }

    #[test]
    fn glob_is_binary_safe_and_not_exponential() {
        assert!(Pattern::new(b"\x00*\xff").matches(b"\x00\x01\x02\xff"));
        let subject = "a".repeat(200);
        assert!(!glob(&format!("{}b", "a*".repeat(50)), &subject));
    }
}
