//! Splitting a playlist into lines while keeping exact byte offsets.
//!
//! RFC 8216 §4.1: lines end with LF or CRLF. A lone CR is not a line terminator and stays in
//! the line's text. The last line may lack a terminator.

/// One line of a playlist, by byte offsets into the whole body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    /// Line number, counting from 1 (the `#EXTM3U` line is line 1).
    pub no: usize,
    /// Offset of the first byte of the line.
    pub start: usize,
    /// The line without its terminator.
    pub text: &'a str,
    /// Offset of the first byte of the next line (after the terminator), or the body length.
    pub next: usize,
}

/// Iterator over the lines of `body`, starting at byte offset `pos`.
#[derive(Debug, Clone)]
pub(crate) struct Lines<'a> {
    body: &'a str,
    pos: usize,
    no: usize,
}

impl<'a> Lines<'a> {
    /// Lines of `body` from offset `pos` on (which must be a char boundary, e.g. after a BOM).
    pub(crate) fn new(body: &'a str, pos: usize) -> Self {
        Lines { body, pos, no: 0 }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        let rest = self.body.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let start = self.pos;
        let (text, next) = match rest.as_bytes().iter().position(|&b| b == b'\n') {
            Some(nl) => {
                let text = &rest[..nl];
                let text = text.strip_suffix('\r').unwrap_or(text);
                (text, start + nl + 1)
            }
            None => (rest, self.body.len()),
        };
        self.pos = next;
        self.no += 1;
        Some(Line {
            no: self.no,
            start,
            text,
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lf_crlf_and_unterminated() {
        let body = "a\r\nb\n\nc\rd\r\ne";
        let lines: Vec<_> = Lines::new(body, 0).collect();
        let texts: Vec<_> = lines.iter().map(|l| l.text).collect();
        assert_eq!(texts, ["a", "b", "", "c\rd", "e"]);
        assert_eq!(lines[0].next, 3);
        assert_eq!(lines[4].start, 11);
        assert_eq!(lines[4].next, body.len());
        assert_eq!(lines[4].no, 5);
    }

    #[test]
    fn final_newline_gives_no_empty_line() {
        let texts: Vec<_> = Lines::new("a\n", 0).map(|l| l.text).collect();
        assert_eq!(texts, ["a"]);
        assert_eq!(Lines::new("", 0).count(), 0);
        assert_eq!(Lines::new("ab", 5).count(), 0);
    }
}
