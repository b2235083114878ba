//! Which images a changed path can change. An image's binary is made from its package and the
//! packages of its own Go module that it imports, directly or through others; files from the
//! module cache never change for a version, and versions are fixed by `go.mod` and `go.sum`.
//! So a watch needs, per image, the directories of those packages ([`Reads`]), found from the
//! import declarations of their Go files. Every `.go` file counts, whatever its build
//! constraints, so the set covers every platform and tag an image can be built for: it may be
//! larger than what one `go build` reads, never smaller. Embedded files and `kodata` are under
//! the package's directory (Go refuses embeds from above it), so anything in a package's
//! directory or below it counts, except the Go files of its subdirectories, which are packages
//! of their own.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::inputs::module_root;

/// What one image reads from its module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reads {
    /// The directory of the module's `go.mod`.
    root: PathBuf,
    /// The image's package and every package of the module it imports.
    dirs: BTreeSet<PathBuf>,
}

/// The packages of its module the package in `package_dir` imports, itself included; `None`
/// when that cannot be told (no `go.mod`, an unreadable one).
pub fn reads(package_dir: &Path) -> Option<Reads> {
    let root = module_root(package_dir);
    let module = module_path(&std::fs::read_to_string(root.join("go.mod")).ok()?)?;
    let mut dirs = BTreeSet::new();
    let mut todo = vec![package_dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        if !dirs.insert(dir.clone()) {
            continue;
        }
        for import in imports_of_dir(&dir)? {
            todo.extend(local_dir(&root, &module, &import));
        }
    }
    Some(Reads { root, dirs })
}

impl Reads {
    /// Whether a change at `path` (absolute) can change the image's binary or its `kodata`.
    pub fn touched_by(&self, path: &Path) -> bool {
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let module_file = matches!(name.as_ref(), "go.mod" | "go.sum" | "go.work" | "go.work.sum");
        if module_file && path.parent().is_some_and(|p| self.root.starts_with(p)) {
            return true;
        }
        if name == "modules.txt" && path.parent() == Some(self.root.join("vendor").as_path()) {
            return true;
        }
        self.dirs.iter().any(|dir| {
            // The path is a package directory or holds one: a directory moved or removed.
            if dir.starts_with(path) {
                return true;
            }
            let Ok(rest) = path.strip_prefix(dir) else { return false };
            let go_file = name.ends_with(".go");
            rest.components().count() == 1 || !go_file || rest.components().any(|c| c.as_os_str() == "kodata")
        })
    }

    /// The package directories, for the summary's tests.
    #[cfg(test)]
    fn dirs(&self) -> Vec<&Path> {
        self.dirs.iter().map(PathBuf::as_path).collect()
    }
}

/// The `module` line of a `go.mod`.
fn module_path(go_mod: &str) -> Option<String> {
    go_mod.lines().find_map(|line| {
        let line = line.split("//").next()?.trim();
        let rest = line.strip_prefix("module")?;
        if !rest.starts_with([' ', '\t', '"', '`']) {
            return None;
        }
        let path = rest.trim().trim_matches(['"', '`']);
        (!path.is_empty()).then(|| path.to_string())
    })
}

/// Where an import path's package is when it belongs to the module or is vendored.
fn local_dir(root: &Path, module: &str, import: &str) -> Option<PathBuf> {
    if import == module {
        return Some(root.to_path_buf());
    }
    if let Some(rest) = import.strip_prefix(module).and_then(|r| r.strip_prefix('/')) {
        return Some(root.join(rest));
    }
    let vendored = root.join("vendor").join(import);
    vendored.is_dir().then_some(vendored)
}

/// The imports of the package's Go files (tests aside). A directory that is gone imports
/// nothing (its build fails and says so); one that cannot be read means "cannot tell".
fn imports_of_dir(dir: &Path) -> Option<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Vec::new()),
        Err(_) => return None,
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.ends_with(".go") || name.ends_with("_test.go") || name.starts_with(['.', '_']) {
            continue;
        }
        match std::fs::read_to_string(entry.path()) {
            Ok(text) => found.extend(imports(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return None,
        }
    }
    Some(found)
}

/// A token of a Go file's header: a word, a string literal's contents, or a punctuation mark.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Word(&'a str),
    Text(&'a str),
    Mark(char),
}

/// The import paths of a Go file: the strings of its import declarations, which come before
/// its first other declaration (so no function body is ever read).
fn imports(text: &str) -> Vec<String> {
    let mut tokens = Tokens { text, at: 0 };
    let mut found = Vec::new();
    while let Some(token) = tokens.next() {
        match token {
            Token::Word("func" | "var" | "const" | "type") => break,
            Token::Word("import") => match tokens.next() {
                Some(Token::Mark('(')) => {
                    for token in tokens.by_ref() {
                        match token {
                            Token::Mark(')') => break,
                            Token::Text(path) => found.push(path.to_string()),
                            _ => {}
                        }
                    }
                }
                Some(Token::Text(path)) => found.push(path.to_string()),
                // An alias, `.` or `_` first.
                Some(_) => {
                    if let Some(Token::Text(path)) = tokens.next() {
                        found.push(path.to_string());
                    }
                }
                None => break,
            },
            _ => {}
        }
    }
    found
}

/// Go's lexical elements, as far as a file's header needs them; comments are skipped.
struct Tokens<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            let rest = &self.text[self.at..];
            let trimmed = rest.trim_start();
            self.at += rest.len() - trimmed.len();
            if let Some(line) = trimmed.strip_prefix("//") {
                self.at += 2 + line.find('\n').unwrap_or(line.len());
            } else if let Some(block) = trimmed.strip_prefix("/*") {
                self.at += 2 + block.find("*/").map_or(block.len(), |end| end + 2);
            } else {
                return self.token(trimmed);
            }
        }
    }
}

impl<'a> Tokens<'a> {
    fn token(&mut self, rest: &'a str) -> Option<Token<'a>> {
        let first = rest.chars().next()?;
        if first == '"' || first == '`' {
            let body = &rest[1..];
            let end = if first == '`' { body.find('`') } else { closing_quote(body) }.unwrap_or(body.len());
            self.at += 1 + end + 1;
            self.at = self.at.min(self.text.len());
            return Some(Token::Text(&body[..end]));
        }
        if first.is_alphanumeric() || first == '_' {
            let len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
            self.at += len;
            return Some(Token::Word(&rest[..len]));
        }
        self.at += first.len_utf8();
        Some(Token::Mark(first))
    }
}

/// Where an interpreted string literal ends, escapes skipped.
fn closing_quote(body: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' | '\n' => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_read_from_every_form_of_declaration() {
        let source = r#"//go:build linux || darwin

// Package main does things. "not an import"
package main

import "fmt"
import alias "example.com/m/pkg/a" // "comment"
import (
	_ "embed"
	. "example.com/m/pkg/b"
	/* "skipped" */ `example.com/m/raw`
)

var x = "example.com/m/not"

func main() { import_ := "x"; _ = import_ }
"#;
        assert_eq!(
            imports(source),
            ["fmt", "example.com/m/pkg/a", "embed", "example.com/m/pkg/b", "example.com/m/raw"]
        );
        assert_eq!(imports("package main\n"), Vec::<String>::new());
    }

    #[test]
    fn the_module_line_is_found() {
        assert_eq!(module_path("// c\nmodule example.com/m // x\n\ngo 1.22\n").as_deref(), Some("example.com/m"));
        assert_eq!(module_path("module \"example.com/q\"\n").as_deref(), Some("example.com/q"));
        assert_eq!(module_path("modulex a\n"), None);
    }

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn an_image_reads_its_package_and_what_it_imports_from_its_module() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "go.mod", "module example.com/m\n");
        write(root, "cmd/a/main.go", "package main\nimport (\"example.com/m/lib\"; \"golang.org/x/net/http2\")\n");
        write(root, "cmd/a/kodata/index.html", "hi");
        write(root, "cmd/b/main.go", "package main\nimport \"fmt\"\n");
        write(root, "lib/lib.go", "package lib\nimport \"example.com/m/lib/deep\"\n");
        write(root, "lib/lib_test.go", "package lib\nimport \"example.com/m/testonly\"\n");
        write(root, "lib/deep/deep.go", "package deep\n");
        write(root, "vendor/golang.org/x/net/http2/http2.go", "package http2\n");
        write(root, "vendor/modules.txt", "");
        let a = reads(&root.join("cmd/a")).unwrap();
        let b = reads(&root.join("cmd/b")).unwrap();
        let r = |p: &str| root.join(p);
        assert_eq!(a.dirs(), [r("cmd/a"), r("lib"), r("lib/deep"), r("vendor/golang.org/x/net/http2")]);
        assert!(a.touched_by(&r("lib/deep/deep.go")) && !b.touched_by(&r("lib/deep/deep.go")));
        assert!(a.touched_by(&r("cmd/a/new.go")) && a.touched_by(&r("cmd/a/kodata/index.html")));
        assert!(a.touched_by(&r("cmd/a/kodata/sub/x.go")), "kodata holds anything");
        assert!(!a.touched_by(&r("lib/other/other.go")), "another package, not imported");
        assert!(a.touched_by(&r("lib/static/page.txt")), "a file lib could embed");
        assert!(!a.touched_by(&r("cmd/b/main.go")) && b.touched_by(&r("cmd/b/main.go")));
        assert!(!a.touched_by(&r("README.md")) && !a.touched_by(&r("testonly/t.go")));
        for everyone in ["go.mod", "go.sum", "vendor/modules.txt"] {
            assert!(a.touched_by(&r(everyone)) && b.touched_by(&r(everyone)), "{everyone}");
        }
        assert!(a.touched_by(&r("lib")) && a.touched_by(root), "a directory holding a package moved");
        assert!(b.touched_by(&tmp.path().parent().unwrap().join("go.work")));
    }

    #[test]
    fn without_a_module_nothing_can_be_told() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "main.go", "package main\n");
        assert_eq!(reads(tmp.path()), None);
    }
}
