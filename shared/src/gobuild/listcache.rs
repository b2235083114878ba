//! Remembering what `go list` said about a package, so that a rebuild need not ask again.
//! A record holds a fingerprint of everything the answer depends on: the Go environment, the
//! package directory (its entries and the heads of its `.go` files: build constraints, package
//! clause and imports, all that `go list` reads of them) and, in every directory
//! from it and from where `go list` ran up to the root, the content of `go.mod`, `go.work`
//! and `vendor/modules.txt` or their absence. Contents, not times, so an edit within one
//! clock tick is still seen. Only module-mode answers are kept, and none when a setting names a
//! module file elsewhere (`GOWORK=<file>`, `-modfile`). The reads of a fingerprint
//! run on tokio's blocking threads ([`ListCache::get`], [`ListCache::put`] are async).

use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::blocking;
use super::resolve::Listed;
use crate::cache::Cache;
use crate::settings::Environment;

const KIND: &str = "golist";
const VERSION: &str = "golist-v1";

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    listed: Listed,
    fingerprint: String,
}

/// The cache of `go list` answers for one `go` program and environment.
#[derive(Clone)]
pub(crate) struct ListCache {
    cache: Cache,
    environment: String,
    /// Go reads a module file that a setting names (`GOWORK=<file>`, `-modfile` in
    /// `GOFLAGS`), which the fingerprint does not follow: no answer is remembered.
    follows_settings: bool,
}

/// Whether a `GOWORK` or `GOFLAGS` setting (`value`, from the environment or Go's env file)
/// names a module file of its own.
fn names_module_file(name: &str, value: &str) -> bool {
    match name {
        "GOWORK" => !matches!(value.trim(), "" | "off" | "auto"),
        "GOFLAGS" => value.contains("-modfile"),
        _ => false,
    }
}

impl ListCache {
    /// `env` as `go` sees it: what it reads of it (GO*, CGO_*, PATH to find itself, HOME and
    /// XDG_CONFIG_HOME for its env file), in the order of the names; and the settings it
    /// reads from files: the user's env file (`go env -w GOFLAGS=-tags=...` changes what a
    /// package is) and GOROOT's `go.env` and `VERSION`.
    pub(crate) fn new(cache: Cache, program: &Path, env: &Environment) -> ListCache {
        let vars = env.text_vars().filter(|(k, _)| {
            k.starts_with("GO") || k.starts_with("CGO_") || ["PATH", "HOME", "XDG_CONFIG_HOME"].contains(k)
        });
        let mut hash = sha2::Sha256::new();
        hash.update(VERSION.as_bytes());
        hash.update(program.as_os_str().as_encoded_bytes());
        let mut follows_settings = false;
        for (k, v) in vars {
            follows_settings |= names_module_file(k, v);
            hash.update([0]);
            hash.update(k.as_bytes());
            hash.update([b'=']);
            hash.update(v.as_bytes());
        }
        if let Some(files) = super::fingerprint::go_files(program, |name| env.text(name)) {
            hash.update([0]);
            hash.update(files.program.as_os_str().as_encoded_bytes());
            let goroot = files.goroot.iter().flat_map(|r| [r.join("go.env"), r.join("VERSION")]);
            for file in files.env_file.into_iter().chain(goroot) {
                let bytes = std::fs::read(&file).unwrap_or_default();
                // The env file's settings count unless the environment sets them.
                for (k, v) in String::from_utf8_lossy(&bytes).lines().filter_map(|l| l.split_once('=')) {
                    follows_settings |= env.text(k.trim()).is_none_or(str::is_empty) && names_module_file(k.trim(), v);
                }
                hash.update([0]);
                hash.update(bytes);
            }
        }
        ListCache { cache, environment: hex::encode(hash.finalize()), follows_settings }
    }

    fn key(&self, dir: &Path, pattern: &str) -> String {
        let mut hash = sha2::Sha256::new();
        for part in [self.environment.as_bytes(), dir.as_os_str().as_encoded_bytes(), pattern.as_bytes()] {
            hash.update(part);
            hash.update([0]);
        }
        hex::encode(hash.finalize())
    }

    /// The remembered answer for `pattern` listed in `dir`, if nothing it depends on changed.
    pub(crate) async fn get(&self, dir: &Path, pattern: &str) -> Option<Listed> {
        let (lists, dir, pattern) = (self.clone(), dir.to_path_buf(), pattern.to_string());
        blocking(move || lists.get_blocking(&dir, &pattern)).await.flatten()
    }

    /// [`ListCache::get`] of several (directory, pattern) pairs, one after the other on one
    /// blocking thread.
    pub(crate) async fn get_all(&self, queries: Vec<(PathBuf, String)>) -> Vec<Option<Listed>> {
        let (lists, count) = (self.clone(), queries.len());
        let found = blocking(move || queries.iter().map(|(dir, pattern)| lists.get_blocking(dir, pattern)).collect());
        found.await.unwrap_or_else(|| vec![None; count])
    }

    /// Remembers a successful answer (best effort: a failure to write is a later miss).
    pub(crate) async fn put(&self, dir: &Path, pattern: &str, listed: &Listed) {
        self.put_all(dir, vec![(pattern.to_string(), listed.clone())]).await;
    }

    /// [`ListCache::put`] of several answers for patterns listed in `dir`.
    pub(crate) async fn put_all(&self, dir: &Path, answers: Vec<(String, Listed)>) {
        let (lists, dir) = (self.clone(), dir.to_path_buf());
        blocking(move || answers.iter().for_each(|(pattern, listed)| lists.put_blocking(&dir, pattern, listed))).await;
    }

    fn get_blocking(&self, dir: &Path, pattern: &str) -> Option<Listed> {
        if self.follows_settings {
            return None;
        }
        let record: Record = self.cache.read_record(KIND, &self.key(dir, pattern))?;
        (fingerprint(dir, &record.listed.dir)? == record.fingerprint).then_some(record.listed)
    }

    fn put_blocking(&self, dir: &Path, pattern: &str, listed: &Listed) {
        if self.follows_settings || listed.error.is_some() || listed.name.is_empty() || !in_module(dir) {
            return;
        }
        if let Some(fingerprint) = fingerprint(dir, &listed.dir) {
            let record = Record { listed: listed.clone(), fingerprint };
            let _ = self.cache.write_record(KIND, &self.key(dir, pattern), &record);
        }
    }
}

fn in_module(dir: &Path) -> bool {
    dir.ancestors().any(|a| a.join("go.mod").is_file())
}

/// The fingerprint of the package directory and of the module files around it.
fn fingerprint(run_dir: &Path, package_dir: &Path) -> Option<String> {
    let mut hash = sha2::Sha256::new();
    let mut names: Vec<PathBuf> =
        std::fs::read_dir(package_dir).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    for path in names {
        hash.update(path.file_name()?.as_encoded_bytes());
        hash.update([0]);
        if path.extension().is_some_and(|e| e == "go") {
            let text = std::fs::read(&path).ok()?;
            hash.update(head(&text).trim_ascii_end());
            hash.update([0]);
        }
    }
    for start in [run_dir, package_dir] {
        for dir in start.ancestors() {
            for file in ["go.mod", "go.work", "vendor/modules.txt"] {
                match std::fs::read(dir.join(file)) {
                    Ok(bytes) => {
                        hash.update([1]);
                        hash.update(&bytes);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => hash.update([2]),
                    Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => hash.update([2]),
                    Err(_) => return None,
                }
            }
        }
    }
    Some(hex::encode(hash.finalize()))
}

/// A Go file up to its first top-level declaration after the imports: the build constraints,
/// the package clause and the imports. The whole file when no package clause comes first.
fn head(text: &[u8]) -> &[u8] {
    const DECLARATIONS: [&[u8]; 4] = [b"func", b"var", b"const", b"type"];
    let mut offset = 0;
    let mut seen_package = false;
    for line in text.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"package ") || line.starts_with(b"package\t") {
            seen_package = true;
        } else if seen_package
            && DECLARATIONS
                .iter()
                .any(|d| line.starts_with(d) && matches!(line.get(d.len()), Some(b' ' | b'\t' | b'(' | b'\r' | b'\n')))
        {
            return &text[..offset];
        }
        offset += line.len();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(dir: &Path) -> Listed {
        Listed { import_path: "example.com/app".into(), name: "main".into(), dir: dir.to_path_buf(), error: None }
    }

    /// A cache and a module `example.com/app` with one `main.go`, under a new directory.
    fn module() -> (tempfile::TempDir, Cache, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::at(root.path().join("cache")).unwrap();
        let module = root.path().join("app");
        std::fs::create_dir_all(&module).unwrap();
        std::fs::write(module.join("go.mod"), "module example.com/app\n").unwrap();
        std::fs::write(module.join("main.go"), "package main\n").unwrap();
        (root, cache, module)
    }

    #[tokio::test]
    async fn an_answer_holds_until_something_it_depends_on_changes() {
        let (root, cache, module) = module();
        let lists = ListCache::new(cache, Path::new("go"), &Environment::default());
        lists.put(&module, ".", &listed(&module)).await;
        assert_eq!(lists.get(&module, ".").await.map(|l| l.import_path), Some("example.com/app".into()));
        assert!(lists.get(&module, "./other").await.is_none());

        std::fs::write(module.join("main.go"), "package lib\n").unwrap();
        assert!(lists.get(&module, ".").await.is_none(), "a changed package clause");
        std::fs::write(module.join("main.go"), "//go:build ignore\n\npackage main\n").unwrap();
        assert!(lists.get(&module, ".").await.is_none(), "a build constraint");
        std::fs::write(module.join("main.go"), "package main\n\nimport \"C\"\n").unwrap();
        assert!(lists.get(&module, ".").await.is_none(), "an import");
        std::fs::write(module.join("main.go"), "package main\n").unwrap();
        assert!(lists.get(&module, ".").await.is_some());
        std::fs::write(module.join("main.go"), "package main\n\nfunc main() {}\n").unwrap();
        assert!(lists.get(&module, ".").await.is_some(), "a change below the imports does not matter");

        std::fs::write(module.join("extra.go"), "package main\n").unwrap();
        assert!(lists.get(&module, ".").await.is_none(), "a new file");
        std::fs::remove_file(module.join("extra.go")).unwrap();
        assert!(lists.get(&module, ".").await.is_some());

        std::fs::write(module.join("go.mod"), "module example.com/renamed\n").unwrap();
        assert!(lists.get(&module, ".").await.is_none(), "a changed go.mod");
        std::fs::write(module.join("go.mod"), "module example.com/app\n").unwrap();

        std::fs::write(root.path().join("go.work"), "go 1.22\n").unwrap();
        assert!(lists.get(&module, ".").await.is_none(), "a go.work above");
    }

    #[tokio::test]
    async fn the_go_env_file_is_part_of_the_answer() {
        let (root, cache, module) = module();
        let env_file = root.path().join("goenv");
        std::fs::write(&env_file, "").unwrap();
        let env = Environment::from_pairs([("GOENV", env_file.to_str().unwrap()), ("PATH", "/bin")]);
        let lists = ListCache::new(cache.clone(), Path::new("sh"), &env);
        lists.put(&module, ".", &listed(&module)).await;
        assert!(ListCache::new(cache.clone(), Path::new("sh"), &env).get(&module, ".").await.is_some());
        // `go env -w GOFLAGS=-tags=foo` can make another file the package.
        std::fs::write(&env_file, "GOFLAGS=-tags=foo\n").unwrap();
        assert!(ListCache::new(cache, Path::new("sh"), &env).get(&module, ".").await.is_none());
    }

    /// A workspace file or modfile named by a setting can change which directory a package is
    /// in without a change the fingerprint sees: nothing is remembered then.
    #[tokio::test]
    async fn nothing_is_kept_when_a_setting_names_a_module_file() {
        let (root, cache, module) = module();
        let env_file = root.path().join("goenv");
        for (name, value, in_file) in [
            ("GOWORK", "/elsewhere/go.work", false),
            ("GOFLAGS", "-modfile=alt.mod", false),
            ("GOWORK", "/elsewhere/go.work", true),
        ] {
            let mut vars = vec![("PATH", "/bin".to_string()), ("GOENV", env_file.display().to_string())];
            match in_file {
                true => std::fs::write(&env_file, format!("{name}={value}\n")).unwrap(),
                false => {
                    std::fs::write(&env_file, "").unwrap();
                    vars.push((name, value.to_string()));
                }
            }
            let lists = ListCache::new(cache.clone(), Path::new("sh"), &Environment::from_pairs(vars));
            lists.put(&module, ".", &listed(&module)).await;
            assert!(lists.get(&module, ".").await.is_none(), "{name}={value} (in the env file: {in_file})");
        }
        let off = Environment::from_pairs([("GOWORK", "off"), ("GOENV", "/nonexistent")]);
        let lists = ListCache::new(cache, Path::new("sh"), &off);
        lists.put(&module, ".", &listed(&module)).await;
        assert!(lists.get(&module, ".").await.is_some());
    }

    #[test]
    fn the_head_ends_at_the_first_declaration_after_the_package_clause() {
        let file =
            b"// Package x.\n//go:build linux\n\npackage main\n\nimport \"fmt\"\n\nconst a = 1\nfunc main() {}\n";
        assert_eq!(head(file), &file[..b"// Package x.\n//go:build linux\n\npackage main\n\nimport \"fmt\"\n\n".len()]);
        let tricky = b"/*\nfunc in a comment\n*/\npackage main\nvar(x = 1)\n";
        assert_eq!(head(tricky), &tricky[..b"/*\nfunc in a comment\n*/\npackage main\n".len()]);
        let no_package = b"func main() {}\n";
        assert_eq!(head(no_package), no_package);
        assert_eq!(head(b"package main\nfunctional := 1\n"), b"package main\nfunctional := 1\n");
    }

    #[tokio::test]
    async fn answers_outside_a_module_are_not_kept() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::at(root.path().join("cache")).unwrap();
        let dir = root.path().join("gopath");
        std::fs::create_dir_all(&dir).unwrap();
        let lists = ListCache::new(cache, Path::new("go"), &Environment::default());
        lists.put(&dir, ".", &listed(&dir)).await;
        assert!(lists.get(&dir, ".").await.is_none());
    }
}
