//! Kubernetes YAML as users write it: reading `-f` inputs, selecting documents, finding the
//! `ko://` strings and replacing them without disturbing anything else.

mod files;
mod lines;
mod manifest;
mod rendered;
mod selector;
mod tree;

pub use files::read_inputs;
pub use manifest::ManifestFile;
pub use rendered::Rendered;
pub use selector::Selector;
pub use tree::SyntaxError;

/// Each document of a stream as (line of its first node, its text).
pub fn documents(text: &str) -> Result<Vec<(usize, &str)>, SyntaxError> {
    Ok(tree::parse(text)?.into_iter().map(|d| (d.root.line, &text[d.region.clone()])).collect())
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
        "{file}:{line}: cannot drop single items from a List written in flow style ([...]); write its items as a block sequence (- ...)"
    )]
    FlowList { file: String, line: usize },
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
    #[error("{path}: the file is not UTF-8 text; Kubernetes YAML and JSON must be UTF-8")]
    NotText { path: PathBuf },
}
