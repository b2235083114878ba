//! A file whose last line is the end of a block scalar (`|` or `>`) with no line break after
//! it. By the YAML spec the value then has no final line break (`token: |` over `abc` at the
//! end of the file is `"abc"`, as kubectl and ko read it), but the parsers used here read
//! `"abc\n"`, and so would anyone reading the file once another is joined after it (`resolve`
//! puts a line break and `---` between files). Such a scalar's header is given the strip
//! indicator (`|-`), which keeps the value the same for every reader.

use granit_parser::ScalarStyle;

use super::tree::{self, Document, Node, NodeKind};

/// `text` with the header of a block scalar that ends the file without a line break made
/// `|-` or `>-`; `text` itself in every other case (and when it does not parse: its reader
/// reports that).
pub(super) fn strip_final_block_scalar(text: String) -> String {
    let content_end = text.trim_end_matches([' ', '\t']).len();
    if content_end == 0 || text[..content_end].ends_with('\n') {
        return text;
    }
    let Ok(documents) = tree::parse(&text) else { return text };
    let Some((value, span)) = last_block_scalar(&documents) else { return text };
    // An empty scalar reads the same either way (and its span sits on its header's line).
    if value.is_empty() || span.end < content_end {
        return text;
    }
    let Some(indicator) = header_indicator(&text, span.start) else { return text };
    let mut rewritten = String::with_capacity(text.len() + 1);
    rewritten.push_str(&text[..indicator.start]);
    rewritten.push_str(&text[indicator.start..indicator.end].replace(['+', '-'], ""));
    rewritten.push('-');
    rewritten.push_str(&text[indicator.end..]);
    // Kept only when it reads as meant: every other scalar the same, and the last one without
    // the line break the parsers add at the end.
    let mut meant = scalars(&documents);
    if let Some(last) = meant.last_mut() {
        last.pop();
    }
    match tree::parse(&rewritten).is_ok_and(|new| scalars(&new) == meant) {
        true => rewritten,
        false => text,
    }
}

/// The values of every scalar of every document, in order.
fn scalars(documents: &[Document]) -> Vec<String> {
    let mut out = Vec::new();
    for document in documents {
        document.root.scalars(&mut |node| out.extend(node.as_str().map(str::to_string)));
    }
    out
}

/// The value and content span of the last node of the last document, when it is a block scalar.
fn last_block_scalar(documents: &[Document]) -> Option<(String, std::ops::Range<usize>)> {
    let mut node: &Node = &documents.last()?.root;
    loop {
        node = match &node.kind {
            NodeKind::Mapping { entries, flow: false } => &entries.last()?.1,
            NodeKind::Sequence { items, flow: false } => items.last()?,
            NodeKind::Scalar { value, style: ScalarStyle::Literal | ScalarStyle::Folded } => {
                return Some((value.clone(), node.span.clone()));
            }
            _ => return None,
        };
    }
}

/// Where the block scalar header's indicator (`|`, `>`, with its indentation and chomping
/// indicators) is: on the last non-blank line before the scalar's content starting at
/// `content`, the last `|` or `>` token outside quotes and before a comment.
fn header_indicator(text: &str, content: usize) -> Option<std::ops::Range<usize>> {
    let mut line_start = text[..content].rfind('\n')? + 1;
    let header = loop {
        let start = text[..line_start - 1].rfind('\n').map_or(0, |i| i + 1);
        let line = &text[start..line_start - 1];
        if !line.trim().is_empty() {
            break start..line_start - 1;
        }
        if start == 0 {
            return None;
        }
        line_start = start;
    };
    let line = text[header.clone()].trim_end_matches('\r');
    let bytes = line.as_bytes();
    let mut found = None;
    let mut quote = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let after_space = i == 0 || matches!(bytes[i - 1], b' ' | b'\t');
        match (quote, c) {
            (Some(b'"'), b'\\') => i += 1,
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') if after_space => quote = Some(c),
            (None, b'#') if after_space => break,
            (None, b'|' | b'>') if after_space => {
                let end = i
                    + 1
                    + bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-')).count();
                if end == bytes.len() || matches!(bytes[end], b' ' | b'\t') {
                    found = Some(header.start + i..header.start + end);
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripped(text: &str) -> String {
        strip_final_block_scalar(text.to_string())
    }

    #[test]
    fn a_block_scalar_ending_the_file_without_a_line_break_gets_the_strip_indicator() {
        assert_eq!(stripped("data:\n  token: |\n    abc"), "data:\n  token: |-\n    abc");
        assert_eq!(stripped("a: >\n  abc  "), "a: >-\n  abc  ");
        assert_eq!(stripped("a: |+\n  abc"), "a: |-\n  abc");
        assert_eq!(stripped("a: |2+\n   abc"), "a: |2-\n   abc");
        assert_eq!(stripped("- &x !!str | # a | comment\n\n  abc"), "- &x !!str |- # a | comment\n\n  abc");
        assert_eq!(stripped("\"k | v\": |\n  abc\n  # more"), "\"k | v\": |-\n  abc\n  # more");
        assert_eq!(stripped("a: 1\n---\nb:\n- |\n  x"), "a: 1\n---\nb:\n- |-\n  x");
    }

    #[test]
    fn other_files_are_left_as_they_are() {
        for text in [
            "a: |\n  abc\n",
            "a: |\n  abc\n  ",
            "a: |\n  abc\n# c",
            "a: |-\n  abc",
            "a: abc",
            "a: [|]",
            "a: 'x'",
            "",
            "a: |\n  abc\n---\nb: c",
            "a: {b: |",
            // An empty scalar at the end: the `|` of the line above is no header.
            "spec:\n  args: echo x | tee y\n  extra: |",
            "data:\n  run: |\n    a > b\n  empty: >",
        ] {
            assert_eq!(stripped(text), text);
        }
    }

    /// What the parsers then read is what the spec says.
    #[test]
    fn the_value_read_has_no_line_break_added() {
        let text = stripped("data:\n  token: |\n    abc");
        let value: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(value["data"]["token"], "abc");
    }
}
