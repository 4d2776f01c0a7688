//! A zero-allocation tokenizer for HLS attribute lists (RFC 8216 §4.2).
//!
//! `NAME=VALUE` pairs separated by commas; a value is either a quoted string (which may
//! contain commas but no `"`) or an unquoted token up to the next comma. The tokenizer hands
//! out each value's byte offset, so the rewriter can replace exactly the bytes of one value and
//! keep everything else (attribute order, spacing, unknown attributes) as it was.
//!
//! It is a little more tolerant than the RFC, as players are: spaces or tabs around names and
//! after a closing quote, lowercase or `_` in names, a trailing comma, and unquoted values
//! containing spaces are accepted.

use super::error::AttributeSyntax;

/// One attribute of an attribute list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attr<'a> {
    /// Attribute name, as written.
    pub name: &'a str,
    /// The value; for a quoted string, the text between the quotes.
    pub value: &'a str,
    /// Whether the value was a quoted string.
    pub quoted: bool,
    /// Byte offset of `value` in the attribute-list string.
    pub value_start: usize,
    /// Byte offset of the attribute's name (start of the whole `NAME=VALUE`).
    pub span_start: usize,
    /// Byte offset just after the whole `NAME=VALUE` (after a closing quote).
    pub span_end: usize,
}

impl Attr<'_> {
    /// Byte offset just after `value` in the attribute-list string.
    pub(crate) fn value_end(&self) -> usize {
        self.value_start + self.value.len()
    }
}

/// Iterator over the attributes of an attribute list. Stops after the first error.
#[derive(Debug, Clone)]
pub(crate) struct Attrs<'a> {
    s: &'a str,
    pos: usize,
    done: bool,
}

/// Tokenizes the attribute list `s` (the part of a tag line after `:`).
pub(crate) fn attrs(s: &str) -> Attrs<'_> {
    Attrs {
        s,
        pos: 0,
        done: false,
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

impl<'a> Attrs<'a> {
    fn fail(&mut self, e: AttributeSyntax) -> Option<Result<Attr<'a>, AttributeSyntax>> {
        self.done = true;
        Some(Err(e))
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, AttributeSyntax>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let s = self.s;
        let b = s.as_bytes();
        let mut pos = self.pos;
        while pos < b.len() && is_blank(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() {
            self.done = true;
            return None;
        }
        let name_start = pos;
        while pos < b.len() && b[pos] != b'=' && b[pos] != b',' {
            pos += 1;
        }
        if pos >= b.len() || b[pos] == b',' {
            return self.fail(AttributeSyntax::MissingEquals);
        }
        let name = s[name_start..pos].trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_name_byte) {
            return self.fail(AttributeSyntax::InvalidName);
        }
        pos += 1; // '='
        let attr = if b.get(pos) == Some(&b'"') {
            let value_start = pos + 1;
            let Some(len) = b[value_start..].iter().position(|&c| c == b'"') else {
                return self.fail(AttributeSyntax::UnterminatedQuote);
            };
            let value_end = value_start + len;
            pos = value_end + 1;
            while pos < b.len() && is_blank(b[pos]) {
                pos += 1;
            }
            if pos < b.len() {
                if b[pos] != b',' {
                    return self.fail(AttributeSyntax::JunkAfterQuote);
                }
                pos += 1;
            }
            Attr {
                name,
                value: &s[value_start..value_end],
                quoted: true,
                value_start,
                span_start: name_start,
                span_end: value_end + 1,
            }
        } else {
            let value_start = pos;
            let value_end = b[pos..]
                .iter()
                .position(|&c| c == b',')
                .map_or(b.len(), |i| pos + i);
            let value = &s[value_start..value_end];
            if value.contains('"') {
                return self.fail(AttributeSyntax::QuoteInValue);
            }
            pos = if value_end < b.len() {
                value_end + 1
            } else {
                value_end
            };
            Attr {
                name,
                value,
                quoted: false,
                value_start,
                span_start: name_start,
                span_end: value_end,
            }
        };
        self.pos = pos;
        Some(Ok(attr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &str) -> Result<Vec<(&str, &str, bool)>, AttributeSyntax> {
        attrs(s)
            .map(|r| r.map(|a| (a.name, a.value, a.quoted)))
            .collect()
    }

    #[test]
    fn quoted_strings_may_contain_commas() {
        let s = r#"BANDWIDTH=1280000,CODECS="avc1.64001f,mp4a.40.2",URI="a,b.m3u8",X=0x1F"#;
        assert_eq!(
            all(s).unwrap(),
            [
                ("BANDWIDTH", "1280000", false),
                ("CODECS", "avc1.64001f,mp4a.40.2", true),
                ("URI", "a,b.m3u8", true),
                ("X", "0x1F", false)
            ]
        );
        let uri = attrs(s).nth(2).unwrap().unwrap();
        assert_eq!(&s[uri.value_start..uri.value_end()], "a,b.m3u8");
        assert_eq!(&s[uri.span_start..uri.span_end], "URI=\"a,b.m3u8\"");
        let x = attrs(s).nth(3).unwrap().unwrap();
        assert_eq!(&s[x.span_start..x.span_end], "X=0x1F");
    }

    #[test]
    fn tolerant_forms() {
        assert_eq!(all("").unwrap(), []);
        assert_eq!(all("A=1,").unwrap(), [("A", "1", false)]);
        assert_eq!(
            all(" A=1, B=\"x\" ,c_d=2").unwrap(),
            [("A", "1", false), ("B", "x", true), ("c_d", "2", false)]
        );
        assert_eq!(all("A=").unwrap(), [("A", "", false)]);
        assert_eq!(all("A=\"\"").unwrap(), [("A", "", true)]);
        assert_eq!(all("R=foo\tbar").unwrap(), [("R", "foo\tbar", false)]);
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(all("URI"), Err(AttributeSyntax::MissingEquals));
        assert_eq!(all("A=1,B"), Err(AttributeSyntax::MissingEquals));
        assert_eq!(all("A=1,,B=2"), Err(AttributeSyntax::MissingEquals));
        assert_eq!(all("=1"), Err(AttributeSyntax::InvalidName));
        assert_eq!(all("A B=1"), Err(AttributeSyntax::InvalidName));
        assert_eq!(all("URI=\"abc"), Err(AttributeSyntax::UnterminatedQuote));
        assert_eq!(all("URI=\"a\"b"), Err(AttributeSyntax::JunkAfterQuote));
        assert_eq!(all("URI=a\"b\""), Err(AttributeSyntax::QuoteInValue));
        // Iteration stops after an error.
        assert_eq!(attrs("A=\"x").count(), 1);
    }
}
