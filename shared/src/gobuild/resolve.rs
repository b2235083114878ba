//! Turning what the user typed (`.`, `./cmd/app`, `ko://example.com/app`) into a Go package,
//! with `go list`, and choosing the `.ko.yaml` `builds[]` entry that applies to it.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::listcache::ListCache;
use super::{GoBuildError, GoTool};
use crate::cache::Cache;
use crate::config::{BuildConfig, KoConfig};

pub const SCHEME: &str = "ko://";

/// A `package main` ready to build.
#[derive(Clone, Debug)]
pub struct Package {
    /// The fully qualified import path, without `ko://`.
    pub import_path: String,
    /// Where the package's files are.
    pub dir: PathBuf,
    /// Where `go build` runs (`builds[].dir`, or the working directory).
    pub build_dir: PathBuf,
    /// The `builds[]` entry for this import path, if any.
    pub config: Option<BuildConfig>,
}

#[derive(Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Listed {
    pub(crate) import_path: String,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) dir: PathBuf,
    #[serde(default)]
    pub(crate) error: Option<ListedError>,
}

#[derive(Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListedError {
    err: String,
}

/// Resolves arguments to packages for one run.
pub struct PackageResolver {
    go: GoTool,
    lists: Option<ListCache>,
    cwd: PathBuf,
    /// `builds[]` entries with their absolute directory and import path (none for a
    /// directory without Go files, which then only places the paths under it).
    builds: Vec<(BuildConfig, PathBuf, Option<String>)>,
    /// The modules of the builds[] directories (root, path, directory), and of the working
    /// directory (root, path), read once: which one owns a full import path.
    build_modules: Vec<(PathBuf, String, PathBuf)>,
    cwd_module: Option<(PathBuf, String)>,
}

pub fn is_local(path: &str) -> bool {
    path == "." || path == ".." || path.starts_with("./") || path.starts_with("../") || Path::new(path).is_absolute()
}

/// `path` with `.` and `..` resolved by the text alone (no file system access).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

impl PackageResolver {
    /// With a cache, `go list` answers are remembered between runs (see `listcache`).
    pub async fn new(go: GoTool, cwd: PathBuf, config: &KoConfig, cache: Option<Cache>) -> Result<Self, GoBuildError> {
        let lists = cache.map(|c| ListCache::new(c, go.program(), go.environment()));
        let mut builds = Vec::new();
        for (i, build) in config.builds.iter().enumerate() {
            let dir = normalize(&cwd.join(&build.dir));
            let main = if build.main.starts_with('.') || build.main.starts_with('/') {
                build.main.clone()
            } else {
                format!("./{}", build.main)
            };
            // `main` may name a file; its directory is the package.
            let main = if dir.join(&main).is_file() {
                Path::new(&main)
                    .parent()
                    .map(|p| p.to_string_lossy().into_owned())
                    .filter(|s| !s.is_empty())
                    .unwrap_or(".".into())
            } else {
                main
            };
            let entry_error = |detail: String| GoBuildError::BuildEntry {
                index: i,
                id: build.id.clone(),
                origin: config.origin(),
                detail,
            };
            // Checked first: go cannot even start in a directory that is not there.
            if !dir.is_dir() {
                let why = if dir.exists() { "is not a directory" } else { "does not exist" };
                return Err(entry_error(format!(
                    "dir {:?} ({}) {why}; dir is relative to the working directory {}",
                    build.dir,
                    dir.display(),
                    cwd.display()
                )));
            }
            let import_path =
                entry_import_path(&go, lists.as_ref(), &dir, &main).await.map_err(|e| entry_error(e.to_string()))?;
            builds.push((build.clone(), dir, import_path));
        }
        let build_modules = builds
            .iter()
            .filter_map(|(_, dir, _)| module_of(dir).map(|(root, module)| (root, module, dir.clone())))
            .collect();
        let cwd_module = if builds.is_empty() { None } else { module_of(&cwd) };
        Ok(PackageResolver { go, lists, cwd, builds, build_modules, cwd_module })
    }

    pub fn go(&self) -> &GoTool {
        &self.go
    }

    /// Resolves one argument; the package must be `package main`.
    pub async fn resolve(&self, arg: &str) -> Result<Package, GoBuildError> {
        let path = arg.strip_prefix(SCHEME).unwrap_or(arg).trim();
        if path.is_empty() {
            return Err(GoBuildError::NotFound { path: arg.to_string(), detail: "the import path is empty".into() });
        }
        let (dir, pattern, config) = self.placement(path);
        let listed = match list(&self.go, self.lists.as_ref(), &dir, &pattern).await {
            Ok(l) => l,
            Err(first) if !is_local(path) => {
                // A full import path may belong to another module of a multi-module repository:
                // it is built from the first other builds[] directory that finds it, with the
                // entry for its own import path (none: the defaults), not that directory's entry.
                // The working directory too, when the path was placed in a builds[] directory.
                let mut found = None;
                let here = (dir != self.cwd).then_some(&self.cwd);
                for build_dir in self.builds.iter().map(|(_, d, _)| d).chain(here).filter(|d| **d != dir) {
                    if let Ok(l) = list(&self.go, self.lists.as_ref(), build_dir, path).await {
                        found = Some((l, build_dir.clone(), None));
                        break;
                    }
                }
                let (l, d, c) = found.ok_or(first)?;
                return self.finish(arg, l, d, c);
            }
            Err(e) => return Err(e),
        };
        self.finish(arg, listed, dir, config)
    }

    /// Resolves several arguments with one `go list` per directory they are listed from, in
    /// the order given. An argument the shared run does not settle (an error, a package it
    /// cannot match to the argument) is resolved on its own, so that its error is exactly
    /// the one a lone `go list` gives.
    pub async fn resolve_all(&self, args: &[&str]) -> Vec<Result<Package, GoBuildError>> {
        let mut groups: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        let paths: Vec<&str> = args.iter().map(|arg| arg.strip_prefix(SCHEME).unwrap_or(arg).trim()).collect();
        let placed: Vec<_> = paths.iter().map(|path| self.placement(path)).collect();
        let remembered = match &self.lists {
            Some(lists) => lists.get_all(placed.iter().map(|(d, p, _)| (d.clone(), p.clone())).collect()).await,
            None => vec![None; args.len()],
        };
        let placements: Vec<_> = paths
            .into_iter()
            .zip(placed)
            .zip(remembered)
            .map(|((path, (dir, pattern, config)), remembered)| {
                if !path.is_empty() && !pattern.contains("...") && remembered.is_none() {
                    let patterns = groups.entry(dir.clone()).or_default();
                    if !patterns.contains(&pattern) {
                        patterns.push(pattern.clone());
                    }
                }
                (dir, pattern, config, remembered)
            })
            .collect();
        let listed: BTreeMap<PathBuf, Vec<(String, Listed)>> = futures_util::future::join_all(
            groups.into_iter().filter(|(_, p)| p.len() > 1).map(|(dir, patterns)| async move {
                let found = self.go.list_many(&dir, &patterns).await;
                if let Some(lists) = &self.lists {
                    lists.put_all(&dir, found.clone()).await;
                }
                (dir, found)
            }),
        )
        .await
        .into_iter()
        .collect();
        futures_util::future::join_all(args.iter().zip(placements).map(|(arg, (dir, pattern, config, remembered))| {
            let found = remembered.or_else(|| {
                listed.get(&dir).and_then(|l| l.iter().find(|(p, _)| *p == pattern)).map(|(_, l)| l.clone())
            });
            async move {
                match found {
                    Some(l) => self.finish(arg, l, dir, config),
                    None => self.resolve(arg).await,
                }
            }
        }))
        .await
    }

    fn finish(
        &self,
        arg: &str,
        listed: Listed,
        build_dir: PathBuf,
        config: Option<BuildConfig>,
    ) -> Result<Package, GoBuildError> {
        // `go list ./cmd/app/main.go` makes a package of the files named, with no import path
        // of its own, which `go build` cannot then find: refused now, with the way out.
        if listed.import_path == "command-line-arguments" {
            let given = arg.strip_prefix(SCHEME).unwrap_or(arg).trim();
            let parent = Path::new(given).parent().filter(|p| !p.as_os_str().is_empty());
            let dir = match parent.map(|p| p.display().to_string()) {
                Some(p) if is_local(&p) => p,
                // Go reads `cmd/app` as an import path: a directory needs its `./`.
                Some(p) => format!("./{p}"),
                None => ".".to_string(),
            };
            return Err(GoBuildError::NotFound {
                path: arg.to_string(),
                detail: format!("names Go files, not a package; name the package's directory instead ({dir})"),
            });
        }
        if listed.name != "main" {
            return Err(GoBuildError::NotMain {
                path: arg.to_string(),
                import_path: listed.import_path,
                name: listed.name,
            });
        }
        // The last entry for an import path wins, as in ko (its map of builds by path).
        let config = config.or_else(|| {
            self.builds
                .iter()
                .rev()
                .find(|(_, _, ip)| ip.as_ref() == Some(&listed.import_path))
                .map(|(b, _, _)| b.clone())
        });
        Ok(Package { import_path: listed.import_path, dir: listed.dir, build_dir, config })
    }

    /// Where to run `go list` for a path, and with which pattern.
    fn placement(&self, path: &str) -> (PathBuf, String, Option<BuildConfig>) {
        if let Some((b, dir, _)) = self.builds.iter().rev().find(|(_, _, ip)| ip.as_deref() == Some(path)) {
            return (dir.clone(), path.to_string(), Some(b.clone()));
        }
        if is_local(path) {
            let abs = normalize(&self.cwd.join(path));
            // The deepest builds[] directory that holds the path wins.
            let best = self
                .builds
                .iter()
                .filter(|(_, dir, _)| abs.starts_with(dir))
                .max_by_key(|(_, dir, _)| dir.components().count());
            if let Some((_, dir, _)) = best {
                let rel = abs.strip_prefix(dir).unwrap_or(Path::new(""));
                let pattern = if rel.as_os_str().is_empty() { ".".to_string() } else { format!("./{}", rel.display()) };
                return (dir.clone(), pattern, None);
            }
        } else if let Some(dir) = self.owning_build_dir(path) {
            // An import path of the module a builds[] directory holds is built there, from
            // that checkout (as ko builds it), not from the copy the working directory's
            // module may require.
            return (dir, path.to_string(), None);
        }
        (self.cwd.clone(), path.to_string(), None)
    }

    /// The builds[] directory whose module owns `import_path` (the longest module path that is
    /// the import path or a prefix of it), when that module is not the working directory's.
    fn owning_build_dir(&self, import_path: &str) -> Option<PathBuf> {
        let owns = |module: &str| import_path == module || import_path.starts_with(&format!("{module}/"));
        let (root, module, dir) = self
            .build_modules
            .iter()
            .filter(|(_, module, _)| owns(module))
            .max_by_key(|(_, module, _)| module.len())?;
        match &self.cwd_module {
            // The working directory's module owns it as closely (a nested module): listed here.
            Some((here, own)) if here == root || (owns(own) && own.len() >= module.len()) => None,
            _ => Some(dir.clone()),
        }
    }
}

/// The root directory and path of the module `dir` is in (the nearest `go.mod` above it).
fn module_of(dir: &Path) -> Option<(PathBuf, String)> {
    let root = dir.ancestors().find(|d| d.join("go.mod").is_file())?;
    let text = std::fs::read_to_string(root.join("go.mod")).ok()?;
    let module = text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("module")?;
        if !rest.starts_with([' ', '\t', '"']) {
            return None;
        }
        let rest = rest.split("//").next()?.trim();
        Some(rest.trim_matches(['"', '`']).to_string()).filter(|m| !m.is_empty())
    })?;
    Some((root.to_path_buf(), module))
}

/// The import path of a builds[] entry's package. An entry whose package Go names but cannot
/// build here (build constraints that exclude all its files on this machine, say) is kept,
/// as ko keeps it: its error shows only when that package is built. A directory with no Go
/// files at all (docs, a placeholder) has no import path: ko keeps such an entry under a
/// relative path that no package matches. A `main` that is not there is an error now.
async fn entry_import_path(
    go: &GoTool,
    lists: Option<&ListCache>,
    dir: &Path,
    main: &str,
) -> Result<Option<String>, GoBuildError> {
    if let Some(lists) = lists
        && let Some(listed) = lists.get(dir, main).await
    {
        return Ok(Some(listed.import_path));
    }
    // One `go list`, read both ways: as `list` reads it, then for the name alone.
    let listed = go.list_unchecked(dir, main).await?;
    let named = listed.import_path.clone();
    match buildable(listed, main) {
        Ok(listed) => {
            if let Some(lists) = lists {
                lists.put(dir, main, &listed).await;
            }
            Ok(Some(named))
        }
        Err(_) if !named.starts_with(['.', '_', '/']) => Ok(Some(named)),
        Err(_) if dir.join(main).is_dir() => Ok(None),
        Err(error) => Err(error),
    }
}

/// `go list` of exactly one package main that Go can build, answered from the cache when it
/// can be.
async fn list(go: &GoTool, lists: Option<&ListCache>, dir: &Path, pattern: &str) -> Result<Listed, GoBuildError> {
    if let Some(lists) = lists
        && let Some(listed) = lists.get(dir, pattern).await
    {
        return Ok(listed);
    }
    let listed = buildable(go.list_unchecked(dir, pattern).await?, pattern)?;
    if let Some(lists) = lists {
        lists.put(dir, pattern, &listed).await;
    }
    Ok(listed)
}

/// A listed package Go reported no error for and that has Go files.
fn buildable(listed: Listed, pattern: &str) -> Result<Listed, GoBuildError> {
    if let Some(err) = &listed.error {
        return Err(GoBuildError::NotFound { path: pattern.to_string(), detail: first_line(&err.err) });
    }
    if listed.name.is_empty() {
        return Err(GoBuildError::NotFound { path: pattern.to_string(), detail: "no Go files there".into() });
    }
    Ok(listed)
}

impl GoTool {
    /// `go list` of exactly one package, with the error Go found in it, if any.
    async fn list_unchecked(&self, dir: &Path, pattern: &str) -> Result<Listed, GoBuildError> {
        if pattern.contains("...") {
            return Err(GoBuildError::NotFound {
                path: pattern.to_string(),
                detail: "wildcards are not supported; name one package main".into(),
            });
        }
        let _span = crate::timing::span(|| format!("go list {pattern}"));
        let output = self
            .output(self.command(dir).args(["list", "-e", "-json=ImportPath,Name,Dir,Error", "--", pattern]))
            .await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(GoBuildError::NotFound { path: pattern.to_string(), detail: first_line(&stderr) });
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let mut packages = serde_json::Deserializer::from_str(&stdout).into_iter::<Listed>();
        match (packages.next(), packages.next()) {
            (Some(Ok(l)), None) => Ok(l),
            (Some(Err(e)), _) => Err(GoBuildError::NotFound {
                path: pattern.to_string(),
                detail: format!("unreadable go list output: {e}"),
            }),
            (None, _) => {
                Err(GoBuildError::NotFound { path: pattern.to_string(), detail: "go list found no package".into() })
            }
            _ => Err(GoBuildError::NotFound {
                path: pattern.to_string(),
                detail: "it names more than one package; name one package main".into(),
            }),
        }
    }
}

impl GoTool {
    /// One `go list` of several patterns (none with `...`), run in `dir`. Returns the packages
    /// it could match to a pattern without doubt, with no error and with Go files; the rest
    /// are left for [`list`] to report.
    async fn list_many(&self, dir: &Path, patterns: &[String]) -> Vec<(String, Listed)> {
        let _span = crate::timing::span(|| format!("go list of {} packages", patterns.len()));
        let output = self
            .output(self.command(dir).args(["list", "-e", "-json=ImportPath,Name,Dir,Error", "--"]).args(patterns))
            .await;
        let Ok(output) = output else { return vec![] };
        if !output.status.success() {
            return vec![];
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let packages: Vec<Listed> = serde_json::Deserializer::from_str(&stdout)
            .into_iter::<Listed>()
            .filter_map(Result::ok)
            .filter(|l| l.error.is_none() && !l.name.is_empty())
            .collect();
        patterns
            .iter()
            .filter_map(|pattern| {
                let matches = |l: &&Listed| {
                    if is_local(pattern) { l.dir == normalize(&dir.join(pattern)) } else { l.import_path == *pattern }
                };
                let mut found = packages.iter().filter(matches);
                match (found.next(), found.next()) {
                    (Some(l), None) => Some((pattern.clone(), l.clone())),
                    _ => None,
                }
            })
            .collect()
    }
}

/// Go's message folded onto one line.
fn first_line(text: &str) -> String {
    let folded = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    if folded.is_empty() { "go list failed".to_string() } else { folded }
}
