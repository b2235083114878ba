//! One input file of Kubernetes YAML: which documents a selector keeps, which `ko://` strings
//! it holds, and the text with those strings replaced while every other byte stays as written.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use granit_parser::ScalarStyle;

use super::ManifestError;
use super::selector::Selector;
use super::tree::{self, Document, Node, NodeKind, line_start};

/// The prefix that marks a string as an import path to build.
pub const KO_PREFIX: &str = "ko://";

/// A `ko://` string found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KoReference {
    /// The value as ko sees it: decoded and trimmed, `ko://` included.
    pub value: String,
    /// The bytes to replace: the whole token for plain and quoted scalars, only the value's
    /// characters inside a block scalar.
    range: Range<usize>,
    style: ScalarStyle,
    pub line: usize,
}

#[derive(Debug)]
pub struct ManifestFile {
    /// How errors name the file: its path as given, or `stdin`.
    pub name: String,
    text: String,
    documents: Vec<Document>,
    /// Byte ranges a selector dropped, sorted and disjoint.
    removed: Vec<Range<usize>>,
}

fn labels(document: &Document, object: &Node) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let Some(NodeKind::Mapping { entries, .. }) =
        document.get(object, "metadata").and_then(|m| document.get(m, "labels")).map(|l| &l.kind)
    else {
        return labels;
    };
    for (key, value) in entries {
        if let (Some(k), Some(v)) = (document.resolve(key).as_str(), document.resolve(value).as_str()) {
            labels.insert(k.to_string(), v.to_string());
        }
    }
    labels
}

/// A line's YAML, without its comment.
fn code_of(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    line.find(" #").map_or(line, |i| &line[..i])
}

/// The start of the line holding the `-` that introduces the sequence item starting at `item`:
/// its own line, or an earlier one when the `-` stands alone (or with a comment) above it.
fn indicator_line(text: &str, item: usize) -> usize {
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

fn is_object(document: &Document, node: &Node) -> bool {
    let field = |key| document.get(node, key).and_then(Node::as_str).is_some_and(|s| !s.is_empty());
    field("apiVersion") && field("kind")
}

impl ManifestFile {
    pub fn parse(name: impl Into<String>, text: String) -> Result<ManifestFile, ManifestError> {
        let name = name.into();
        let documents = tree::parse(&text).map_err(|e| ManifestError::Syntax {
            file: name.clone(),
            line: e.line,
            column: e.column,
            message: e.message,
        })?;
        Ok(ManifestFile { name, text, documents, removed: Vec::new() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Drops the documents (and `kind: List` items) the selector does not match; null documents
    /// go too. Every other document must be a Kubernetes object, as in ko.
    pub fn select(&mut self, selector: &Selector) -> Result<(), ManifestError> {
        let mut removed = Vec::new();
        for document in &self.documents {
            let root = document.resolve(&document.root);
            if root.is_null() {
                removed.push(document.region.clone());
                continue;
            }
            if !is_object(document, root) {
                return Err(ManifestError::NotObject { file: self.name.clone(), line: root.line });
            }
            if document.get(root, "kind").and_then(Node::as_str) != Some("List") {
                if !selector.matches(&labels(document, root)) {
                    removed.push(document.region.clone());
                }
                continue;
            }
            let Some(items_node) = document.get(root, "items") else {
                removed.push(document.region.clone());
                continue;
            };
            let NodeKind::Sequence { items, flow } = &items_node.kind else {
                return Err(ManifestError::NotObject { file: self.name.clone(), line: items_node.line });
            };
            let mut keep = Vec::with_capacity(items.len());
            for item in items {
                let item = document.resolve(item);
                if !is_object(document, item) {
                    return Err(ManifestError::NotObject { file: self.name.clone(), line: item.line });
                }
                keep.push(selector.matches(&labels(document, item)));
            }
            if !keep.contains(&true) {
                removed.push(document.region.clone());
                continue;
            }
            if keep.contains(&false) && *flow {
                return Err(ManifestError::FlowList { file: self.name.clone(), line: items_node.line });
            }
            // Where each item's lines begin: the line of its `-` indicator, which may sit
            // above the item's first key (`-` alone on a line, or followed by a comment).
            let starts: Vec<usize> = items.iter().map(|item| indicator_line(&self.text, item.span.start)).collect();
            for index in 0..items.len() {
                if keep[index] {
                    continue;
                }
                let start = starts[index];
                let end = match starts.get(index + 1) {
                    Some(next) => *next,
                    None if items_node.span.end >= self.text.len() => self.text.len(),
                    None => line_start(&self.text, items_node.span.end).max(start),
                };
                removed.push(start..end);
            }
        }
        removed.sort_by_key(|r| r.start);
        self.removed = removed;
        Ok(())
    }

    /// The line in this file of a line of the rendered text: rendering drops whole lines
    /// (what a selector removed) and replaces references within their lines.
    pub fn original_line(&self, rendered_line: usize) -> usize {
        let mut shift = 0;
        for range in &self.removed {
            let first = self.text[..range.start].matches('\n').count() + 1;
            if rendered_line + shift < first {
                break;
            }
            shift += self.text[range.clone()].matches('\n').count();
        }
        rendered_line + shift
    }

    fn is_removed(&self, offset: usize) -> bool {
        self.removed.iter().any(|r| r.contains(&offset))
    }

    /// Every `ko://` string in the kept part of the file, keys included, in file order.
    pub fn references(&self) -> Vec<KoReference> {
        let mut found = Vec::new();
        for document in &self.documents {
            document.root.scalars(&mut |node| {
                let NodeKind::Scalar { value, style } = &node.kind else { return };
                let trimmed = value.trim();
                if !trimmed.starts_with(KO_PREFIX) || self.is_removed(node.span.start) {
                    return;
                }
                let mut range = node.span.clone();
                if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
                    // Block scalars hold their text verbatim: replace just those characters.
                    if let Some(at) = self.text[range.clone()].find(trimmed) {
                        range = range.start + at..range.start + at + trimmed.len();
                    }
                }
                found.push(KoReference { value: trimmed.to_string(), range, style: *style, line: node.line });
            });
        }
        found
    }

    /// The kept text with each reference replaced by `replacements[value]`, re-parsed to check
    /// that every replaced scalar now reads as its new value.
    pub fn render(&self, replacements: &HashMap<String, String>) -> Result<String, ManifestError> {
        enum Edit<'a> {
            Remove,
            Replace(&'a KoReference, &'a str),
        }
        let references = self.references();
        let mut edits: Vec<(Range<usize>, Edit)> = self.removed.iter().map(|r| (r.clone(), Edit::Remove)).collect();
        for reference in &references {
            let Some(new) = replacements.get(&reference.value) else { continue };
            edits.push((reference.range.clone(), Edit::Replace(reference, new)));
        }
        edits.sort_by_key(|(range, _)| range.start);

        let mut output = String::with_capacity(self.text.len());
        let mut cursor = 0;
        let mut expected = Vec::new();
        for (range, edit) in edits {
            if range.start < cursor {
                continue; // inside a removed range
            }
            output.push_str(&self.text[cursor..range.start]);
            if let Edit::Replace(reference, new) = edit {
                expected.push((output.len(), new, reference.line));
                output.push_str(&match reference.style {
                    ScalarStyle::SingleQuoted => format!("'{new}'"),
                    ScalarStyle::DoubleQuoted => format!("\"{new}\""),
                    _ => new.to_string(),
                });
            }
            cursor = range.end;
        }
        output.push_str(&self.text[cursor..]);
        self.check(&output, &expected)?;
        Ok(output)
    }

    fn check(&self, output: &str, expected: &[(usize, &str, usize)]) -> Result<(), ManifestError> {
        let fail = |line, detail: String| ManifestError::Check { file: self.name.clone(), line, detail };
        let documents = tree::parse(output).map_err(|e| {
            if self.removed.is_empty() {
                fail(e.line, e.message)
            } else {
                // Dropping objects can orphan an alias whose anchor was in one of them.
                ManifestError::Selection { file: self.name.clone(), message: e.message }
            }
        })?;
        let mut scalars = Vec::new();
        for document in &documents {
            document.root.scalars(&mut |node| scalars.push(node));
        }
        for (offset, new, line) in expected {
            let found = scalars.iter().find(|n| n.span.contains(offset) || n.span.start == *offset);
            match found.and_then(|n| n.as_str()) {
                Some(value) if value.trim() == *new => {}
                other => return Err(fail(*line, format!("expected {new:?} after replacement, read {other:?}"))),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str, selector: Option<&str>) -> Result<String, ManifestError> {
        let mut file = ManifestFile::parse("test.yaml", text.to_string())?;
        if let Some(selector) = selector {
            file.select(&Selector::parse(selector).unwrap())?;
        }
        let replacements = file
            .references()
            .into_iter()
            .map(|r| {
                let new = format!("reg.example/{}@sha256:abc", r.value.trim_start_matches(KO_PREFIX));
                (r.value, new)
            })
            .collect();
        file.render(&replacements)
    }

    #[test]
    fn replaces_only_the_reference_tokens() {
        let text = "# keep me\nimage: ko://a # plain\nq: \"ko://a\"  # double\ns: 'ko://b'\nflow: [ko://c, \"x\", 'ko://c']\nkey:\n  ko://d: value\nother: example.com/bare\n";
        let expected = "# keep me\nimage: reg.example/a@sha256:abc # plain\nq: \"reg.example/a@sha256:abc\"  # double\ns: 'reg.example/b@sha256:abc'\nflow: [reg.example/c@sha256:abc, \"x\", 'reg.example/c@sha256:abc']\nkey:\n  reg.example/d@sha256:abc: value\nother: example.com/bare\n";
        assert_eq!(render(text, None).unwrap(), expected);
    }

    #[test]
    fn block_scalars_keep_their_indicators() {
        let text = "a: |\n  ko://x\nb: >-\n    ko://y\nc: 1\n";
        assert_eq!(
            render(text, None).unwrap(),
            "a: |\n  reg.example/x@sha256:abc\nb: >-\n    reg.example/y@sha256:abc\nc: 1\n"
        );
    }

    #[test]
    fn escaped_values_are_decoded_before_matching() {
        let text = "a: \"ko://q\\u0041\"\n";
        assert_eq!(render(text, None).unwrap(), "a: \"reg.example/qA@sha256:abc\"\n");
    }

    #[test]
    fn selector_drops_documents_and_list_items() {
        let text = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: a, labels: {app: web}}
data: {image: ko://a}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b}
data: {image: ko://b}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: c}
  data: {image: ko://c}
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: d
    labels:
      app: web
  data: {image: ko://d}
---
";
        let out = render(text, Some("app=web")).unwrap();
        assert_eq!(
            out,
            "\
apiVersion: v1
kind: ConfigMap
metadata: {name: a, labels: {app: web}}
data: {image: reg.example/a@sha256:abc}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: d
    labels:
      app: web
  data: {image: reg.example/d@sha256:abc}
"
        );
        let mut file = ManifestFile::parse("t", text.to_string()).unwrap();
        file.select(&Selector::parse("app=web").unwrap()).unwrap();
        let values: Vec<_> = file.references().into_iter().map(|r| r.value).collect();
        assert_eq!(values, ["ko://a", "ko://d"], "dropped documents are not built");
    }

    #[test]
    fn dropped_items_take_their_dash_line_along() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c, labels: {app: web}}\n-\n  apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: d}\n- # a comment\n  apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: e}\n";
        let out = render(text, Some("app=web")).unwrap();
        assert_eq!(
            out,
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c, labels: {app: web}}\n"
        );
    }

    #[test]
    fn rendered_lines_map_back_to_the_file() {
        let text = "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: v1\nkind: B\nmetadata: {name: b, labels: {x: y}}\n";
        let mut file = ManifestFile::parse("t", text.to_string()).unwrap();
        file.select(&Selector::parse("x=y").unwrap()).unwrap();
        let out = file.render(&HashMap::new()).unwrap();
        assert!(out.starts_with("---\napiVersion: v1\nkind: B"), "{out}");
        assert_eq!(file.original_line(2), 5);
        assert_eq!(file.original_line(4), 7);
    }

    #[test]
    fn selector_needs_objects() {
        let error = render("just: a map\n", Some("app=web")).unwrap_err();
        assert!(matches!(error, ManifestError::NotObject { line: 1, .. }), "{error:?}");
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let error = render("a: 1\nb: [unclosed\n", None).unwrap_err();
        assert!(error.to_string().starts_with("test.yaml:"), "{error}");
    }

    #[test]
    fn multibyte_text_before_a_reference_is_kept() {
        let text = "# überprüft ✓\nimage: ko://a\n";
        assert_eq!(render(text, None).unwrap(), "# überprüft ✓\nimage: reg.example/a@sha256:abc\n");
    }
}
