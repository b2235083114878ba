//! A YAML stream as a tree of nodes that remember where they came from: byte ranges into the
//! original text, so that callers can replace single scalars or drop whole documents and keep
//! every other byte as the user wrote it.

use std::collections::HashMap;
use std::ops::Range;

use granit_parser::{Event, Parser, ScalarStyle, Span, StructureStyle};

/// Where the parser stopped on malformed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Scalar { value: String, style: ScalarStyle },
    Sequence { items: Vec<Node>, flow: bool },
    Mapping { entries: Vec<(Node, Node)>, flow: bool },
    Alias(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    /// Bytes of the node's own token (scalars) or of its first token (collections).
    pub span: Range<usize>,
    /// 1-based line of the node's start.
    pub line: usize,
}

/// One document of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub root: Node,
    /// The bytes that belong to this document: from its `---` (or the end of the one before) up
    /// to where the next document begins, comments included.
    pub region: Range<usize>,
    /// Anchored nodes by anchor id, for following aliases.
    anchors: HashMap<usize, Node>,
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Whether this is YAML's null (an empty document, `~` or `null`).
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { value, style: ScalarStyle::Plain }
            if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// Visits every scalar (keys included), depth first in document order.
    pub fn scalars<'a>(&'a self, visit: &mut impl FnMut(&'a Node)) {
        match &self.kind {
            NodeKind::Scalar { .. } => visit(self),
            NodeKind::Sequence { items, .. } => items.iter().for_each(|n| n.scalars(visit)),
            NodeKind::Mapping { entries, .. } => entries.iter().for_each(|(k, v)| {
                k.scalars(visit);
                v.scalars(visit);
            }),
            NodeKind::Alias(_) => {}
        }
    }
}

impl Document {
    /// Follows an alias to its anchored node; any other node is returned as is.
    pub fn resolve<'a>(&'a self, node: &'a Node) -> &'a Node {
        match node.kind {
            NodeKind::Alias(id) => self.anchors.get(&id).unwrap_or(node),
            _ => node,
        }
    }

    /// The value under `key` when `node` is a mapping.
    pub fn get<'a>(&'a self, node: &'a Node, key: &str) -> Option<&'a Node> {
        match &self.resolve(node).kind {
            NodeKind::Mapping { entries, .. } => {
                entries.iter().find(|(k, _)| self.resolve(k).as_str() == Some(key)).map(|(_, v)| self.resolve(v))
            }
            _ => None,
        }
    }
}

fn bytes(span: &Span) -> Range<usize> {
    // Parsers built with `new_from_str` always know byte offsets.
    span.start.byte_offset().unwrap_or(0)..span.end.byte_offset().unwrap_or(0)
}

struct Builder {
    /// Open collections: the node under construction and, for mappings, a pending key.
    stack: Vec<(Node, Option<Node>)>,
    anchors: HashMap<usize, Node>,
}

impl Builder {
    /// Adds a finished node to the open collection; returns it when it is a document root.
    fn push(&mut self, node: Node, anchor: usize) -> Option<Node> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let Some((parent, pending)) = self.stack.last_mut() else {
            return Some(node);
        };
        match &mut parent.kind {
            NodeKind::Sequence { items, .. } => items.push(node),
            NodeKind::Mapping { entries, .. } => match pending.take() {
                Some(key) => entries.push((key, node)),
                None => *pending = Some(node),
            },
            _ => {}
        }
        None
    }
}

/// How the parser reads what users give `resolve`: as ko's YAML library does, where YAML's
/// own limits would refuse it. Collections may nest 1000 deep (a generated schema or a JSON
/// dump can pass the parser's default of 255; ko allows 10000, and the walks over a tree
/// recurse, so this stays well inside a thread's stack), a mapping key may be as long as a
/// JSON key can be (YAML limits implicit keys to 1024 characters), and a byte order mark
/// inside a document is text, not an error.
pub fn parser_options() -> granit_parser::Options {
    granit_parser::options! {
        flow_nesting_limit: MAX_NESTING,
        block_nesting_limit: MAX_NESTING,
        simple_key_max_lookahead: MAX_KEY_LOOKAHEAD,
        bom_inside_document_as_content: true,
    }
}

/// How deep collections may nest (see [`parser_options`]).
pub const MAX_NESTING: usize = 1000;
/// How long a key written without `?` may be, in characters (YAML says 1,024; JSON has no
/// such limit).
pub const MAX_KEY_LOOKAHEAD: usize = 64 * 1024;

/// Parses a whole stream. Errors carry the 1-based line and column.
pub fn parse(text: &str) -> Result<Vec<Document>, SyntaxError> {
    let mut documents = Vec::new();
    each_document(text, |document| {
        documents.push(document);
        Ok(())
    })?;
    Ok(documents)
}

/// The parser's error as a [`SyntaxError`].
pub fn syntax_error(error: &granit_parser::ScanError) -> SyntaxError {
    SyntaxError { line: error.marker().line(), column: error.marker().col() + 1, message: error.info() }
}

/// Parses a stream and hands over its documents one at a time, in order, so that only one
/// document's tree (two, briefly) is in memory however long the stream is. Stops at the
/// first syntax error or at the first error `visit` returns.
pub fn each_document<E: From<SyntaxError>>(
    text: &str,
    mut visit: impl FnMut(Document) -> Result<(), E>,
) -> Result<(), E> {
    let mut parser = Parser::new_from_str_with_options(text, parser_options());
    // The last document takes whatever follows it, so each one is handed over only when the
    // next one is complete (or the stream ends).
    let mut finished: Option<Document> = None;
    let mut builder = Builder { stack: Vec::new(), anchors: HashMap::new() };
    let mut root: Option<Node> = None;
    let mut region_start = 0;
    let mut collection_anchors: Vec<usize> = Vec::new();
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| E::from(syntax_error(&e)))?;
        let range = bytes(&span);
        let line = span.start.line();
        match event {
            Event::DocumentStart(..) => {
                builder.anchors.clear();
                root = None;
            }
            Event::DocumentEnd => {
                let end = if range.is_empty() { range.start } else { line_end(text, range.end) };
                let node = root.take().unwrap_or(Node {
                    kind: NodeKind::Scalar { value: String::new(), style: ScalarStyle::Plain },
                    span: range.start..range.start,
                    line,
                });
                let document =
                    Document { root: node, region: region_start..end, anchors: std::mem::take(&mut builder.anchors) };
                if let Some(previous) = finished.replace(document) {
                    visit(previous)?;
                }
                region_start = end;
            }
            Event::Scalar(value, style, anchor, _) => {
                let node = Node { kind: NodeKind::Scalar { value: value.into_owned(), style }, span: range, line };
                if let Some(done) = builder.push(node, anchor) {
                    root = Some(done);
                }
            }
            Event::Alias(id) => {
                let node = Node { kind: NodeKind::Alias(id), span: range, line };
                if let Some(done) = builder.push(node, 0) {
                    root = Some(done);
                }
            }
            Event::SequenceStart(style, anchor, _) => {
                let flow = style == StructureStyle::Flow;
                let kind = NodeKind::Sequence { items: Vec::new(), flow };
                builder.stack.push((Node { kind, span: range, line }, None));
                collection_anchors.push(anchor);
            }
            Event::MappingStart(style, anchor, _) => {
                let flow = style == StructureStyle::Flow;
                let kind = NodeKind::Mapping { entries: Vec::new(), flow };
                builder.stack.push((Node { kind, span: range, line }, None));
                collection_anchors.push(anchor);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (mut node, _) = builder.stack.pop().expect("the parser balances collection events");
                node.span.end = node.span.end.max(range.start);
                let anchor = collection_anchors.pop().unwrap_or(0);
                if let Some(done) = builder.push(node, anchor) {
                    root = Some(done);
                }
            }
            _ => {}
        }
    }
    // Whatever follows the last document (trailing comments, blank lines) stays with it.
    if let Some(mut last) = finished {
        last.region.end = text.len();
        visit(last)?;
    }
    Ok(())
}

/// The offset just past the line that contains `offset` (past its newline).
pub fn line_end(text: &str, offset: usize) -> usize {
    text[offset..].find('\n').map_or(text.len(), |i| offset + i + 1)
}

/// The offset of the start of the line that contains `offset`.
pub fn line_start(text: &str, offset: usize) -> usize {
    text[..offset].rfind('\n').map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_cover_the_stream_without_gaps() {
        let text = "# head\na: 1\n---\n# two\nb: 2\n...\n---\nc: [x, y]\n# tail\n";
        let docs = parse(text).unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(&text[docs[0].region.clone()], "# head\na: 1\n");
        assert_eq!(&text[docs[1].region.clone()], "---\n# two\nb: 2\n...\n");
        assert_eq!(&text[docs[2].region.clone()], "---\nc: [x, y]\n# tail\n");
    }

    #[test]
    fn scalar_spans_cover_the_token_with_its_quotes() {
        let text = "a: \"ko://x\" # c\nb: 'ko://y'\nc: ko://z # c\n";
        let docs = parse(text).unwrap();
        let mut tokens = Vec::new();
        docs[0].root.scalars(&mut |n| tokens.push(&text[n.span.clone()]));
        assert_eq!(tokens, ["a", "\"ko://x\"", "b", "'ko://y'", "c", "ko://z"]);
    }

    #[test]
    fn aliases_resolve_to_their_anchor() {
        let docs = parse("labels: &l {app: web}\nmore: *l\n").unwrap();
        let more = docs[0].get(&docs[0].root, "more").unwrap();
        assert_eq!(docs[0].get(more, "app").and_then(Node::as_str), Some("web"));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let error = parse("a: 1\nb: [\n").unwrap_err();
        assert!(error.line >= 2, "{error:?}");
    }

    #[test]
    fn empty_documents_are_null() {
        let docs = parse("a: 1\n---\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert!(docs[1].root.is_null());
    }
}
