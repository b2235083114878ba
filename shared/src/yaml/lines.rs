//! Facts about YAML read from the text's lines rather than from the parser: where a block
//! scalar's header is and how to make it strip its final line break, a line without its
//! comment, the line holding a sequence item's `-`, and whether a value can be written plain.
//! The parser's spans do not say these.

use std::ops::Range;

use super::tree::{self, line_start};

/// Where the header (`|`, `>-`…) of the block scalar whose content starts at `content` is:
/// on the last non-blank line before the content, outside its comment.
pub(super) fn block_header(text: &str, content: usize) -> Option<usize> {
    let mut end = tree::line_start(text, content);
    let line = loop {
        let start = tree::line_start(text, end.checked_sub(1)?);
        let line = &text[start..end];
        if !line.trim().is_empty() {
            break start..end;
        }
        end = start;
    };
    let code = code_of(&text[line.clone()]);
    let bytes = code.as_bytes();
    (0..bytes.len()).find_map(|i| {
        let opens = matches!(bytes[i], b'|' | b'>') && (i == 0 || bytes[i - 1].is_ascii_whitespace());
        let rest = code[i + 1..].trim_start_matches(['+', '-', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
        (opens && rest.trim().is_empty()).then_some(line.start + i)
    })
}

/// The header of the block scalar starting at `at` (`|`, `>`, with an indentation digit and
/// a chomping indicator in either order), and the same header with `-` chomping; `None` when
/// it already strips or `at` holds no block indicator.
pub(super) fn stripping_header(text: &str, at: usize) -> Option<(Range<usize>, String)> {
    let rest = text.get(at..)?;
    let indicator = rest.chars().next().filter(|c| *c == '|' || *c == '>')?;
    let (mut digit, mut chomp, mut len) = (None, None, 1);
    for c in rest[1..].chars() {
        match c {
            '+' | '-' if chomp.is_none() => chomp = Some(c),
            '1'..='9' if digit.is_none() => digit = Some(c),
            _ => break,
        }
        len += 1;
    }
    if chomp == Some('-') {
        return None;
    }
    let mut header = indicator.to_string();
    header.extend(digit);
    header.push('-');
    Some((at..at + len, header))
}

/// A line's YAML, without its comment.
pub(super) fn code_of(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    // A comment starts at a `#` after white space (a space or a tab).
    let bytes = line.as_bytes();
    (1..bytes.len()).find(|&i| bytes[i] == b'#' && matches!(bytes[i - 1], b' ' | b'\t')).map_or(line, |i| &line[..i])
}

/// The start of the line holding the `-` that introduces the sequence item starting at `item`:
/// its own line, or an earlier one when the `-` stands alone (or with a comment) above it.
pub(super) fn indicator_line(text: &str, item: usize) -> usize {
    let first = line_start(text, item);
    let line_at = |start: usize| text[start..].split('\n').next().unwrap_or_default();
    if code_of(line_at(first)).trim_start().starts_with('-') {
        return first;
    }
    let mut line = first;
    while line > 0 {
        line = line_start(text, line - 1);
        let code = code_of(line_at(line));
        if code.trim().is_empty() {
            continue;
        }
        if code.trim_start().starts_with('-') {
            return line;
        }
        break;
    }
    first
}

/// Where a sequence item's lines begin once the comment lines right above its `-` line (at
/// `dash`, a line start) are counted as its own: `# the web server` above `- kind: ...`.
/// Only whole-line comments indented no deeper than the `-` count, since deeper ones could be
/// the text of a block scalar in the item before.
pub(super) fn with_leading_comments(text: &str, dash: usize) -> usize {
    let indent = |line: &str| line.len() - line.trim_start_matches([' ', '\t']).len();
    let dash_indent = indent(text[dash..].split('\n').next().unwrap_or_default());
    let mut start = dash;
    while start > 0 {
        let above = line_start(text, start - 1);
        let line = text[above..start].trim_end_matches(['\n', '\r']);
        if !line.trim_start().starts_with('#') || indent(line) > dash_indent {
            break;
        }
        start = above;
    }
    start
}

/// Whether `value` reads back as itself when written as a plain scalar, in block and in flow
/// context alike: no indicator first, no `: `, ` #` or flow punctuation inside, no space at
/// either end. References and paths only ever hold characters a single-quoted scalar takes
/// as they are (a quote would be doubled, but none can occur).
pub(super) fn plain_safe(value: &str) -> bool {
    let starts_badly = value
        .starts_with(['[', ']', '{', '}', '!', '&', '*', '#', '|', '>', '\'', '"', '%', '@', '`', ',', '?', '-', ':']);
    !value.is_empty()
        && !starts_badly
        && !value.contains(": ")
        && !value.contains(" #")
        && !value.ends_with(':')
        && !value.contains(['[', ']', '{', '}', ',', '\'', '\n'])
        && value.trim() == value
}
