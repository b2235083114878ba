//! Kubernetes YAML as users write it: reading `-f` inputs, selecting documents, finding the
//! `ko://` strings and replacing them without disturbing anything else.

mod eof_scalar;
mod files;
mod lines;
mod manifest;
mod rendered;
mod selection;
mod selector;
mod tree;

pub use files::read_inputs;
pub use manifest::ManifestFile;
pub use rendered::Rendered;
pub use selector::Selector;
pub use tree::{MAX_KEY_LOOKAHEAD, SyntaxError};

/// Each document of a stream as (line of its first node, its text).
pub fn documents(text: &str) -> Result<Vec<(usize, &str)>, SyntaxError> {
    Ok(tree::parse(text)?.into_iter().map(|d| (d.root.line, &text[d.region.clone()])).collect())
}

/// The text up to the end of the first document of a stream, and whether that document is
/// empty (only comments, a `---`, or `null`); `None` when the text holds no document or does
/// not parse.
pub fn first_document(text: &str) -> Option<(&str, bool)> {
    let documents = tree::parse(text).ok()?;
    let first = documents.first()?;
    Some((&text[..first.region.end], first.root.is_null()))
}

/// A mapping key of a configuration file written as its text (plain, or quoted without
/// escapes, as every key of a JSON file is), where it is in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainKey {
    /// The key's token, quotes included.
    pub span: std::ops::Range<usize>,
    pub key: String,
    /// The quote around it, if any.
    pub quote: Option<char>,
    /// The root key whose list of maps holds this key (`builds`); `None` at the root.
    pub under: Option<String>,
}

/// The keys written as their text of the first document's root mapping and of the maps in the lists it holds
/// (a `.ko.yaml`'s settings and its `builds[]` entries, or its one `builds:` map). Empty when the text does not parse:
/// the caller's own parse reports that.
pub fn plain_keys(text: &str) -> Vec<PlainKey> {
    use granit_parser::ScalarStyle;
    let Ok(documents) = tree::parse(text) else { return Vec::new() };
    let Some(document) = documents.first() else { return Vec::new() };
    let plain = |node: &tree::Node| {
        let tree::NodeKind::Scalar { value, style } = &node.kind else { return None };
        let quote = match style {
            ScalarStyle::Plain => None,
            ScalarStyle::SingleQuoted => Some('\''),
            ScalarStyle::DoubleQuoted => Some('"'),
            _ => return None,
        };
        let written = match quote {
            None => value.clone(),
            Some(_) if value.contains(['\\', '\'', '"']) => return None,
            Some(q) => format!("{q}{value}{q}"),
        };
        (text.get(node.span.clone()) == Some(written.as_str())).then(|| (value.clone(), quote))
    };
    let mut found = Vec::new();
    let tree::NodeKind::Mapping { entries, .. } = &document.root.kind else { return found };
    for (key, value) in entries {
        let Some((name, quote)) = plain(key) else { continue };
        // The maps of a list (`builds: [...]`), or the one map given instead of a list.
        let maps: Vec<&tree::Node> = match &value.kind {
            tree::NodeKind::Sequence { items, .. } => items.iter().collect(),
            tree::NodeKind::Mapping { .. } => vec![value],
            _ => Vec::new(),
        };
        for map in maps {
            let tree::NodeKind::Mapping { entries, .. } = &map.kind else { continue };
            for (inner, _) in entries {
                if let Some((key, quote)) = plain(inner) {
                    found.push(PlainKey { span: inner.span.clone(), key, quote, under: Some(name.clone()) });
                }
            }
        }
        found.push(PlainKey { span: key.span.clone(), key: name, quote, under: None });
    }
    found
}

/// The keys of the first document's root mapping, as written (quotes included in the span):
/// `(key, span of its token)`. Empty when the text does not parse.
pub fn root_keys(text: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let Ok(documents) = tree::parse(text) else { return Vec::new() };
    let Some(document) = documents.first() else { return Vec::new() };
    let tree::NodeKind::Mapping { entries, .. } = &document.root.kind else { return Vec::new() };
    entries.iter().filter_map(|(key, _)| Some((key.as_str()?.to_string(), key.span.clone()))).collect()
}

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{file}:{line}:{column}: invalid YAML: {message}")]
    Syntax { file: String, line: usize, column: usize, message: String },
    #[error(
        "{file}:{line}: --selector needs every document to be a Kubernetes object (with apiVersion and kind), and this one is not"
    )]
    NotObject { file: String, line: usize },
    #[error(
        "{file}:{line}: --selector cannot filter a List without items; give it an items sequence or drop kind: List"
    )]
    ListWithoutItems { file: String, line: usize },
    #[error(
        "{file}: without the objects --selector drops, the rest is no longer valid YAML ({message}); an alias probably refers to an anchor in a dropped object: repeat the value instead of the alias"
    )]
    Selection { file: String, message: String },
    #[error("{file}:{line}: replacing ko:// references went wrong ({detail}); please report this as a bug")]
    Check { file: String, line: usize, detail: String },
    #[error("-f {path}: {detail}")]
    Input { path: PathBuf, detail: String },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: the file is neither UTF-8 nor UTF-16 text; save it as UTF-8")]
    NotText { path: PathBuf },
}
