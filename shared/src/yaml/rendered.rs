//! A file with its `ko://` strings replaced, as pieces of the original text and of the
//! replacements: nothing is copied until it is written, so printing a large stream costs
//! little more than the input itself.

use std::io::{self, Write};

/// One piece of a rendered file: a slice of the original text or a replacement.
#[derive(Debug, Clone, Copy)]
pub(super) struct Piece<'a> {
    pub(super) text: &'a str,
    /// For a replacement: the line of the reference it replaces.
    pub(super) replaces: Option<usize>,
}

/// A file with its references replaced, checked, as pieces of the original and of the
/// replacements (nothing is copied until it is written).
#[derive(Debug)]
pub struct Rendered<'a> {
    pub(super) pieces: Vec<Piece<'a>>,
}

impl Rendered<'_> {
    pub(super) fn texts(&self) -> impl Iterator<Item = &str> + '_ {
        self.pieces.iter().map(|p| p.text).filter(|t| !t.is_empty())
    }

    /// Whether the text opens with a flow collection (`{` or `[`), as a JSON file does.
    pub fn opens_with_flow_collection(&self) -> bool {
        let mut rest = self.texts().flat_map(str::chars).skip_while(|c| c.is_whitespace() || *c == '\u{feff}');
        matches!(rest.next(), Some('{' | '['))
    }

    /// Whether nothing but white space is left (a selector dropped everything).
    pub fn is_blank(&self) -> bool {
        self.texts().all(|t| t.trim().is_empty())
    }

    /// Whether the text starts with `prefix`.
    pub fn starts_with(&self, prefix: &str) -> bool {
        let mut rest = prefix.as_bytes();
        for text in self.texts() {
            let n = rest.len().min(text.len());
            if text.as_bytes()[..n] != rest[..n] {
                return false;
            }
            rest = &rest[n..];
            if rest.is_empty() {
                return true;
            }
        }
        rest.is_empty()
    }

    /// Opens with a document marker: `---` followed by a space, a tab, a line break or nothing
    /// (`----: 2` is a key, not a marker).
    pub fn starts_with_document_marker(&self) -> bool {
        let head: String = self.texts().flat_map(str::chars).take(4).collect();
        match head.strip_prefix("---") {
            Some(after) => after.is_empty() || after.starts_with([' ', '\t', '\n', '\r']),
            None => false,
        }
    }

    /// Whether the first document opens with a directive (`%YAML 1.2`, `%TAG ...`), past
    /// any blank and comment lines: joined after another file, it must follow `...`.
    pub fn starts_with_directive(&self) -> bool {
        let mut line_start = true;
        let mut in_comment = false;
        for c in self.texts().flat_map(str::chars) {
            match c {
                '\n' => (line_start, in_comment) = (true, false),
                _ if in_comment => {}
                ' ' | '\t' | '\r' if line_start => {}
                '#' if line_start => in_comment = true,
                '%' if line_start => return true,
                _ => return false,
            }
        }
        false
    }

    /// Whether the text ends with a line break (or is empty).
    pub fn ends_with_newline(&self) -> bool {
        self.texts().last().is_none_or(|t| t.ends_with('\n'))
    }

    pub fn len(&self) -> usize {
        self.pieces.iter().map(|p| p.text.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the text, piece by piece.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        self.texts().try_for_each(|t| out.write_all(t.as_bytes()))
    }

    pub fn to_text(&self) -> String {
        let mut text = String::with_capacity(self.len());
        self.texts().for_each(|t| text.push_str(t));
        text
    }
}
