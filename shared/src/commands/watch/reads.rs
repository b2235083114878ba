//! Which images a changed path can change. An image's binary is made from its package and the
//! packages it imports, directly or through others, from its own Go module and from the
//! modules on the file system that Go uses in their place (the `use` lines of a `go.work`, the
//! local targets of `replace` lines); files from the module cache never change for a version,
//! and versions are fixed by `go.mod`, `go.sum` and `go.work`. So a watch needs, per image,
//! the directories of those packages ([`Reads`]), found from the import declarations of their
//! Go files. Every `.go` file counts, whatever its build constraints, so the set covers every
//! platform and tag an image can be built for: it may be larger than what one `go build`
//! reads, never smaller. Embedded files and `kodata` are under the package's directory (Go
//! refuses embeds from above it), so anything in a package's directory or below it counts,
//! except the Go files of its subdirectories, which are packages of their own (unless Go
//! ignores the subdirectory: `testdata`, `_*`, `.*`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::inputs::module_root;
use crate::gobuild::normalize;
use crate::settings::Environment;

/// A module whose packages are read from the file system, and the path they are imported by.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Module {
    path: String,
    dir: PathBuf,
}

/// What one image reads from its module and the modules used in place of versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reads {
    /// The directory of the image's module's `go.mod`.
    root: PathBuf,
    /// The modules imports are looked up in: its own first, then the workspace's and the
    /// local targets of `replace` lines.
    modules: Vec<Module>,
    /// The `go.work` in effect, if any.
    work: Option<PathBuf>,
    /// The image's package and every package of those modules it imports.
    dirs: BTreeSet<PathBuf>,
    /// Where the symlinks under the package's `kodata` lead, outside the package directory.
    /// The layer follows them, and a change there makes no event in the package (a watch on
    /// a directory sees its entries, not the files they link to).
    linked: BTreeSet<PathBuf>,
}

/// What a watch must see for an image besides its module.
#[derive(Debug, PartialEq)]
pub struct Watched {
    /// The directories of the modules its imports are looked up in (`go.work`, `replace`).
    pub modules: Vec<PathBuf>,
    /// The `go.work` in effect with its `go.work.sum`, and files its `kodata` links to.
    pub files: Vec<PathBuf>,
    /// Directories its `kodata` links to, with everything under them.
    pub trees: Vec<PathBuf>,
}

/// The most entries of a `kodata` tree looked at for symlinks.
const MAX_KODATA_ENTRIES: usize = 20_000;

/// What the packages in `package_dir` import from the file system, itself included; `None`
/// when that cannot be told (no `go.mod`, an unreadable one).
pub fn reads(package_dir: &Path) -> Option<Reads> {
    let root = module_root(package_dir);
    let go_mod = std::fs::read_to_string(root.join("go.mod")).ok()?;
    let mut modules = vec![Module { path: module_path(&go_mod)?, dir: root.clone() }];
    let work = workspace(&root);
    let mut replaced = Vec::new();
    if let Some(text) = work.as_ref().and_then(|w| std::fs::read_to_string(w).ok()) {
        let base = work.as_deref().and_then(Path::parent).unwrap_or(Path::new("/"));
        for used in directives(&text, "use").iter().filter_map(|d| first_word(d)) {
            let dir = normalize(&base.join(used));
            let Some(path) = std::fs::read_to_string(dir.join("go.mod")).ok().and_then(|m| module_path(&m)) else {
                continue;
            };
            if !modules.iter().any(|m| m.dir == dir) {
                modules.push(Module { path, dir });
            }
        }
        replaced.extend(replacements(&text, base));
    }
    replaced.extend(replacements(&go_mod, &root));
    for module in &modules[1..] {
        if let Ok(text) = std::fs::read_to_string(module.dir.join("go.mod")) {
            replaced.extend(replacements(&text, &module.dir));
        }
    }
    modules.extend(replaced);
    let mut dirs = BTreeSet::new();
    let mut todo = vec![package_dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        if !dirs.insert(dir.clone()) {
            continue;
        }
        for import in imports_of_dir(&dir)? {
            todo.extend(local_dir(&root, &modules, &import));
        }
    }
    let linked = kodata_links(package_dir);
    Some(Reads { root, modules, work, dirs, linked })
}

/// Where the symlinks under `package_dir/kodata` (`kodata` itself included) lead, for those
/// that lead outside `package_dir`; directories are walked through their links, as the
/// kodata layer walks them, each once.
fn kodata_links(package_dir: &Path) -> BTreeSet<PathBuf> {
    let inside = std::fs::canonicalize(package_dir).unwrap_or_else(|_| package_dir.to_path_buf());
    let mut linked = BTreeSet::new();
    let mut walked = BTreeSet::new();
    let mut budget = MAX_KODATA_ENTRIES;
    let mut todo = vec![package_dir.join("kodata")];
    while let Some(path) = todo.pop() {
        let Ok(canonical) = std::fs::canonicalize(&path) else { continue };
        if path.is_symlink() && !canonical.starts_with(&inside) {
            linked.insert(canonical.clone());
        }
        if !canonical.is_dir() || !walked.insert(canonical) {
            continue;
        }
        for entry in std::fs::read_dir(&path).into_iter().flatten().flatten() {
            let Some(left) = budget.checked_sub(1) else { return linked };
            budget = left;
            if entry.file_type().is_ok_and(|t| t.is_dir() || t.is_symlink()) {
                todo.push(entry.path());
            }
        }
    }
    linked
}

impl Reads {
    /// Whether a change at `path` (absolute) can change the image's binary or its `kodata`.
    pub fn touched_by(&self, path: &Path) -> bool {
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let module_file = matches!(name.as_ref(), "go.mod" | "go.sum" | "go.work" | "go.work.sum");
        if module_file {
            let Some(parent) = path.parent() else { return true };
            // An image from the module cache (`module@version`) changes with the versions
            // its users' modules ask for.
            let from_cache = self.root.file_name().is_some_and(|n| n.to_string_lossy().contains('@'));
            if from_cache || self.root.starts_with(parent) || self.modules.iter().any(|m| m.dir == parent) {
                return true;
            }
        }
        if self.work_files().any(|w| path == w) {
            return true;
        }
        if name == "modules.txt" && path.parent() == Some(self.root.join("vendor").as_path()) {
            return true;
        }
        if self.linked.iter().any(|target| path.starts_with(target) || target.starts_with(path)) {
            return true;
        }
        self.dirs.iter().any(|dir| {
            // The path is a package directory or holds one: a directory moved or removed.
            if dir.starts_with(path) {
                return true;
            }
            let Ok(rest) = path.strip_prefix(dir) else { return false };
            let go_file = name.ends_with(".go");
            // Go builds no package from `testdata`, `_*` and `.*` directories, so their Go
            // files are only ever embedded.
            let not_a_package = |c: std::path::Component| {
                let c = c.as_os_str().to_string_lossy();
                c == "kodata" || c == "testdata" || c.starts_with(['_', '.'])
            };
            let in_data = rest.parent().is_some_and(|dirs| dirs.components().any(not_a_package));
            rest.components().count() == 1 || !go_file || in_data
        })
    }

    /// What a watch must see besides the image's module.
    pub fn watched(&self) -> Watched {
        let (trees, files) = self.linked.iter().cloned().partition(|target| target.is_dir());
        Watched {
            modules: self.modules.iter().map(|m| m.dir.clone()).collect(),
            files: self.work_files().chain(files).collect(),
            trees,
        }
    }

    /// The `go.work` in effect and its `go.work.sum`.
    fn work_files(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.work.iter().flat_map(|w| [w.clone(), w.with_extension("work.sum")])
    }

    /// The package directories, for the summary's tests.
    #[cfg(test)]
    fn dirs(&self) -> Vec<&Path> {
        self.dirs.iter().map(PathBuf::as_path).collect()
    }
}

/// The `go.work` Go uses for a build in `root`: `GOWORK`'s (none for `off`), or the first in
/// `root` and the directories above it.
fn workspace(root: &Path) -> Option<PathBuf> {
    match Environment::process().text("GOWORK") {
        Some("off") => None,
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => root.ancestors().map(|d| d.join("go.work")).find(|w| w.is_file()),
    }
}

/// The arguments of every `verb` line of a `go.mod` or `go.work`, in a block or not, comments
/// removed.
fn directives(text: &str, verb: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        if in_block {
            if line.starts_with(')') {
                in_block = false;
            } else if !line.is_empty() {
                found.push(line.to_string());
            }
            continue;
        }
        let Some(rest) = line.strip_prefix(verb).filter(|r| r.starts_with([' ', '\t', '('])) else { continue };
        let rest = rest.trim();
        match rest.strip_prefix('(') {
            Some(after) => {
                in_block = !after.trim_start().starts_with(')');
                let after = after.trim();
                if in_block && !after.is_empty() {
                    found.push(after.to_string());
                }
            }
            None => found.push(rest.to_string()),
        }
    }
    found
}

/// The first word of a directive's arguments, unquoted.
fn first_word(args: &str) -> Option<&str> {
    let word = args.split_whitespace().next()?.trim_matches(['"', '`']);
    (!word.is_empty()).then_some(word)
}

/// The `replace` lines of a `go.mod` or `go.work` whose target is a directory (`./`, `../` or
/// absolute), with the directories taken from `base`.
fn replacements(text: &str, base: &Path) -> Vec<Module> {
    directives(text, "replace")
        .iter()
        .filter_map(|line| {
            let (old, new) = line.split_once("=>")?;
            let target = first_word(new)?;
            let local = target.starts_with("./") || target.starts_with("../") || Path::new(target).is_absolute();
            let path = first_word(old)?.to_string();
            local.then(|| Module { path, dir: normalize(&base.join(target)) })
        })
        .collect()
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

/// Where an import path's package is: in the module with the longest path it is under (the
/// first such), or vendored in the image's module.
fn local_dir(root: &Path, modules: &[Module], import: &str) -> Option<PathBuf> {
    let within = |m: &&Module| import == m.path || import.strip_prefix(&m.path).is_some_and(|r| r.starts_with('/'));
    if let Some(module) = modules.iter().rev().filter(within).max_by_key(|m| m.path.len()) {
        let rest = import[module.path.len()..].trim_start_matches('/');
        return Some(if rest.is_empty() { module.dir.clone() } else { module.dir.join(rest) });
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
        assert!(a.touched_by(&r("cmd/a/testdata/golden.go")) && a.touched_by(&r("cmd/a/_tmpl/page.go")), "embeddable");
        assert!(!a.touched_by(&r("cmd/a/sub/x.go")), "a package of its own");
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
    fn what_kodata_links_to_outside_the_package_counts_and_is_watched() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("mod");
        write(&root, "go.mod", "module example.com/m\n");
        write(&root, "cmd/a/main.go", "package main\n");
        write(&root, "cmd/a/kodata/own.txt", "own");
        write(tmp.path(), "site/page.html", "page");
        write(tmp.path(), "assets/css/main.css", "css");
        write(tmp.path(), "assets/more/logo.svg", "svg");
        let link = |target: &Path, at: &str| std::os::unix::fs::symlink(target, root.join(at)).unwrap();
        link(&tmp.path().join("site/page.html"), "cmd/a/kodata/page.html");
        link(&tmp.path().join("assets"), "cmd/a/kodata/assets");
        link(&root.join("cmd/a/kodata/own.txt"), "cmd/a/kodata/again.txt");
        link(&root.join("cmd/a/kodata"), "cmd/a/kodata/loop");
        std::os::unix::fs::symlink(tmp.path().join("site/page.html"), tmp.path().join("assets/more/page.html"))
            .unwrap();
        let site = std::fs::canonicalize(tmp.path()).unwrap();
        let a = reads(&root.join("cmd/a")).unwrap();
        let watched = a.watched();
        assert_eq!(watched.files, [site.join("site/page.html")]);
        assert_eq!(watched.trees, [site.join("assets")]);
        assert!(a.touched_by(&site.join("site/page.html")) && a.touched_by(&site.join("assets/css/main.css")));
        assert!(a.touched_by(&site.join("assets")), "the linked directory replaced");
        assert!(!a.touched_by(&site.join("site/other.html")));
    }

    #[test]
    fn directives_are_read_in_blocks_and_alone() {
        let text = "go 1.22\nuse ./a // first\nuse (\n\t./b\n\t\"./c d\"\n)\nreplace x => ../y\nreplace (\n\tz v1.0.0 => /abs/z\n\tw => w.example/w v1.2.0\n)\nuser ./no\n";
        assert_eq!(directives(text, "use"), ["./a", "./b", "\"./c d\""]);
        let replaced = replacements(text, Path::new("/m"));
        let pairs: Vec<(&str, &Path)> = replaced.iter().map(|m| (m.path.as_str(), m.dir.as_path())).collect();
        assert_eq!(pairs, [("x", Path::new("/y")), ("z", Path::new("/abs/z"))]);
    }

    #[test]
    fn imports_from_workspace_and_replaced_modules_are_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "go.work", "go 1.22\n\nuse (\n\t./svc\n\t./lib\n)\n");
        write(root, "svc/go.mod", "module example.com/svc\n\nreplace example.com/util => ../util\n");
        write(root, "svc/cmd/a/main.go", "package main\nimport (\"example.com/lib/core\"; \"example.com/util\")\n");
        write(root, "lib/go.mod", "module example.com/lib\n");
        write(root, "lib/core/core.go", "package core\n");
        write(root, "lib/other/other.go", "package other\n");
        write(root, "util/go.mod", "module example.com/util\n");
        write(root, "util/util.go", "package util\n");
        let r = |p: &str| root.join(p);
        let a = reads(&r("svc/cmd/a")).unwrap();
        assert_eq!(a.dirs(), [r("lib/core"), r("svc/cmd/a"), r("util")]);
        assert!(a.touched_by(&r("lib/core/core.go")) && a.touched_by(&r("util/util.go")));
        assert!(!a.touched_by(&r("lib/other/other.go")));
        for file in ["go.work", "go.work.sum", "lib/go.mod", "util/go.sum", "svc/go.mod"] {
            assert!(a.touched_by(&r(file)), "{file}");
        }
        let watched = a.watched();
        assert_eq!(watched.modules, [r("svc"), r("lib"), r("util")]);
        assert_eq!(watched.files, [r("go.work"), r("go.work.sum")]);
        assert!(watched.trees.is_empty());
    }

    #[test]
    fn an_image_from_the_module_cache_follows_every_go_mod() {
        let tmp = tempfile::tempdir().unwrap();
        let cached = tmp.path().join("pkg/mod/example.com/tool@v1.2.3");
        write(&cached, "go.mod", "module example.com/tool\n");
        write(&cached, "cmd/tool/main.go", "package main\n");
        let tool = reads(&cached.join("cmd/tool")).unwrap();
        assert!(tool.touched_by(&tmp.path().join("app/go.mod")) && tool.touched_by(&tmp.path().join("app/go.sum")));
        assert!(!tool.touched_by(&tmp.path().join("app/main.go")));
    }

    #[test]
    fn without_a_module_nothing_can_be_told() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "main.go", "package main\n");
        assert_eq!(reads(tmp.path()), None);
    }
}
