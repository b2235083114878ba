//! What a selector (`-l`) drops from a file: the documents whose labels do not match, and the
//! items of a `kind: List` (block or flow style, JSON included) that do not, each as the byte
//! range to cut, so that the rest of the text stays as written. Every other document must be a
//! Kubernetes object, as in ko.

use std::collections::BTreeMap;
use std::ops::Range;

use super::ManifestError;
use super::lines::{indicator_line, with_leading_comments};
use super::selector::Selector;
use super::tree::{self, Document, Node, NodeKind, SyntaxError, line_start};

/// The byte ranges of `text` that `selector` drops, sorted and disjoint.
pub(super) fn removed(name: &str, text: &str, selector: &Selector) -> Result<Vec<Range<usize>>, ManifestError> {
    let mut removed = Vec::new();
    let walked = tree::each_document(text, |document| {
        select_in(name, text, &document, selector, &mut removed).map_err(Stop::Manifest)
    });
    match walked {
        Ok(()) => {}
        Err(Stop::Manifest(e)) => return Err(e),
        Err(Stop::Syntax(e)) => {
            return Err(ManifestError::Syntax {
                file: name.to_string(),
                line: e.line,
                column: e.column,
                message: e.message,
            });
        }
    }
    removed.sort_by_key(|r| r.start);
    Ok(removed)
}

fn labels(document: &Document, object: &Node) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let Some(NodeKind::Mapping { entries, .. }) =
        document.get(object, "metadata").and_then(|m| document.get(m, "labels")).map(|l| &l.kind)
    else {
        return labels;
    };
    for (key, value) in entries {
        let value = document.resolve(value);
        // As ko reads them: a label with nothing after it is "", and the first of a key given
        // twice is the one.
        let text = if value.span.is_empty() { Some("") } else { value.as_str() };
        if let (Some(k), Some(v)) = (document.resolve(key).as_str(), text) {
            labels.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
    }
    labels
}

/// A field's text, when it is a string (not null).
fn string_field<'a>(document: &'a Document, node: &'a Node, key: &str) -> Option<&'a str> {
    document.get(node, key).filter(|n| !n.is_null()).and_then(Node::as_str)
}

/// The document's `kind` when it is a Kubernetes object (`apiVersion` and `kind` strings); the
/// kind may be empty.
fn kind_of<'a>(document: &'a Document, node: &'a Node) -> Option<&'a str> {
    string_field(document, node, "apiVersion").filter(|v| !v.is_empty())?;
    string_field(document, node, "kind")
}

/// What stops a walk over the documents: the parser or a rule of the selection.
enum Stop {
    Syntax(SyntaxError),
    Manifest(ManifestError),
}

impl From<SyntaxError> for Stop {
    fn from(e: SyntaxError) -> Stop {
        Stop::Syntax(e)
    }
}

fn select_in(
    name: &str,
    text: &str,
    document: &Document,
    selector: &Selector,
    removed: &mut Vec<Range<usize>>,
) -> Result<(), ManifestError> {
    let not_object = |line| ManifestError::NotObject { file: name.to_string(), line };
    let root = document.resolve(&document.root);
    if root.is_null() {
        removed.push(document.region.clone());
        return Ok(());
    }
    let Some(kind) = kind_of(document, root) else {
        return Err(not_object(root.line));
    };
    // As in ko: an object of no kind is no match.
    if kind.is_empty() {
        removed.push(document.region.clone());
        return Ok(());
    }
    if kind != "List" {
        if !selector.matches(&labels(document, root)) {
            removed.push(document.region.clone());
        }
        return Ok(());
    }
    let Some(items_node) = document.get(root, "items") else {
        return Err(ManifestError::ListWithoutItems { file: name.to_string(), line: root.line });
    };
    let NodeKind::Sequence { items, flow } = &items_node.kind else {
        return Err(not_object(items_node.line));
    };
    let mut keep = Vec::with_capacity(items.len());
    for item in items {
        let item = document.resolve(item);
        // As in ko: a null item is an object without labels, as a null document is no object.
        if item.is_null() {
            keep.push(selector.matches(&BTreeMap::new()));
            continue;
        }
        if kind_of(document, item).is_none() {
            return Err(not_object(item.line));
        }
        keep.push(selector.matches(&labels(document, item)));
    }
    if !keep.contains(&true) {
        removed.push(document.region.clone());
        return Ok(());
    }
    if *flow {
        // `[a, b, c]` (and JSON): the dropped items go with the separators after the kept one
        // before them, or, before the first kept one, with everything up to it.
        let kept: Vec<usize> = (0..items.len()).filter(|&i| keep[i]).collect();
        let first = kept[0];
        if first > 0 {
            removed.push(items[0].span.start..items[first].span.start);
        }
        for pair in kept.windows(2) {
            if pair[1] > pair[0] + 1 {
                removed.push(items[pair[0] + 1].span.start..items[pair[1]].span.start);
            }
        }
        let last = kept[kept.len() - 1];
        if last + 1 < items.len() {
            removed.push(items[last].span.end..items[items.len() - 1].span.end);
        }
        return Ok(());
    }
    // Where each item's lines begin: the comment lines right above the line of its `-`
    // indicator, which may itself sit above the item's first key (`-` alone on a line, or
    // followed by a comment). A dropped item takes its comments along.
    let starts: Vec<usize> =
        items.iter().map(|item| with_leading_comments(text, indicator_line(text, item.span.start))).collect();
    for index in 0..items.len() {
        if keep[index] {
            continue;
        }
        let start = starts[index];
        let end = match starts.get(index + 1) {
            Some(next) => *next,
            None if items_node.span.end >= text.len() => text.len(),
            None => line_start(text, items_node.span.end).max(start),
        };
        removed.push(start..end);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documents `selector` keeps, by their `metadata.name`.
    fn kept(text: &str, selector: &str) -> Vec<String> {
        let removed = removed("t.yaml", text, &Selector::parse(selector).unwrap()).unwrap();
        let mut rest = String::new();
        let mut at = 0;
        for range in removed {
            rest.push_str(&text[at..range.start]);
            at = range.end;
        }
        rest.push_str(&text[at..]);
        rest.lines().filter_map(|l| l.trim().strip_prefix("name: ")).map(str::to_string).collect()
    }

    /// As ko reads labels: nothing after `app:` is the empty value, and of a key given twice
    /// the first counts. An object whose kind is empty matches nothing.
    #[test]
    fn labels_and_kinds_as_ko_reads_them() {
        let object = |name: &str, kind: &str, labels: &str| {
            format!("apiVersion: v1\nkind: {kind}\nmetadata:\n  name: {name}\n  labels:\n{labels}---\n")
        };
        let text = [
            object("empty", "A", "    app:\n"),
            object("quoted", "A", "    app: \"\"\n"),
            object("twice", "A", "    app: first\n    app: second\n"),
            object("kindless", "\"\"", "    app: first\n"),
            object("tilde", "A", "    app: ~\n"),
        ]
        .concat();
        assert_eq!(kept(&text, "app="), ["empty", "quoted"]);
        assert_eq!(kept(&text, "app=first"), ["twice"]);
        assert_eq!(kept(&text, "app=second"), Vec::<String>::new());
        assert_eq!(kept(&text, "app"), ["empty", "quoted", "twice", "tilde"]);
        let error = removed("t.yaml", "apiVersion: v1\nkind:\n", &Selector::parse("a=b").unwrap()).unwrap_err();
        assert!(matches!(error, ManifestError::NotObject { line: 1, .. }), "{error:?}");
    }

    /// A null item of a List is an object without labels, as in ko.
    #[test]
    fn a_null_list_item_has_no_labels() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: A\n  metadata:\n    name: a\n- ~\n";
        let cut = |selector: &str| removed("t.yaml", text, &Selector::parse(selector).unwrap()).unwrap();
        assert_eq!(cut("!app"), Vec::<Range<usize>>::new());
        let dropped = cut("x!=y");
        assert!(dropped.is_empty(), "{dropped:?}");
        assert_eq!(cut("app").len(), 1, "neither item has app: the whole List goes");
    }
}
