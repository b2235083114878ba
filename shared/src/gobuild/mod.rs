//! The Go toolchain driver: finding packages (`go list`), assembling each build's environment,
//! flags and ldflags from `.ko.yaml` and the command line (with ko's templating and its
//! refusal of `-toolexec`), and running `go build` into a stable path in the cache so Go
//! itself skips relinking an unchanged binary.

pub mod delve;
mod fingerprint;
mod git;
mod listcache;
mod resolve;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::Digest as _;
use tokio::process::Command;

pub use resolve::{Package, PackageResolver, SCHEME, is_local};

use crate::cache::{Cache, CacheError};
use crate::config::KoConfig;
use crate::platform::Platform;
use crate::template::{self, Value};

#[derive(Debug, thiserror::Error)]
pub enum GoBuildError {
    #[error("cannot run {go}: {detail}; install Go or set KO_GO_PATH to the go binary")]
    NoGo { go: String, detail: String },
    #[error("importpath {path:?}: {detail}")]
    NotFound { path: String, detail: String },
    #[error("importpath {path:?} is `package {name}`, not `package main` ({import_path}); name a command's package")]
    NotMain { path: String, import_path: String, name: String },
    #[error("'builds' entry {index} (id {id}) in {origin}: {detail}")]
    BuildEntry { index: usize, id: String, origin: String, detail: String },
    #[error("cannot set {flag} ({place}): kubectl ko does not run other programs inside go build; remove it")]
    Toolexec { flag: String, place: String },
    #[error("{place}: {source}")]
    Template { place: String, source: template::TemplateError },
    #[error("building {import_path} for {platform}: go build failed ({status}); its output is above")]
    Failed { import_path: String, platform: String, status: String },
    #[error(
        "building Delve {version} for {platform} (for --debug): {detail}; check that the Go module proxy (GOPROXY) is reachable, or build without --debug"
    )]
    Delve { version: String, platform: String, detail: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Epoch(#[from] crate::time::EpochError),
}

/// The `go` binary (`KO_GO_PATH`, else `go` on PATH) and what it has told us.
#[derive(Clone)]
pub struct GoTool {
    go: PathBuf,
    go_env: Arc<tokio::sync::OnceCell<BTreeMap<String, String>>>,
    git: Arc<Mutex<BTreeMap<PathBuf, Value>>>,
}

impl GoTool {
    pub fn from_env() -> GoTool {
        let go = std::env::var_os("KO_GO_PATH").filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or("go".into());
        GoTool { go, go_env: Default::default(), git: Default::default() }
    }

    /// The `go` program used for builds (and for reading build info).
    pub fn program(&self) -> &Path {
        &self.go
    }

    fn command(&self, dir: &Path) -> Command {
        let mut cmd = Command::new(&self.go);
        cmd.current_dir(dir).kill_on_drop(true);
        cmd
    }

    fn spawn_error(&self, e: std::io::Error) -> GoBuildError {
        GoBuildError::NoGo { go: self.go.display().to_string(), detail: e.to_string() }
    }

    async fn go_env(&self, dir: &Path) -> Result<BTreeMap<String, String>, GoBuildError> {
        self.go_env
            .get_or_try_init(|| async {
                let out = self.command(dir).args(["env", "-json"]).output().await.map_err(|e| self.spawn_error(e))?;
                Ok(serde_json::from_slice(&out.stdout).unwrap_or_default())
            })
            .await
            .cloned()
    }

    fn git(&self, dir: &Path) -> Value {
        let mut cache = self.git.lock().expect("git cache lock");
        cache.entry(dir.to_path_buf()).or_insert_with(|| git::git_value(dir)).clone()
    }
}

/// Build settings that come from the command line.
#[derive(Clone, Debug, Default)]
pub struct BuildFlags {
    /// `--ldflags`; replaces every configured ldflags when set.
    pub ldflags: Option<Vec<String>>,
    pub disable_optimizations: bool,
    /// `--debug`: Delve in the image; implies `disable_optimizations`.
    pub debug: bool,
}

/// Everything `go build` needs for one package on one platform.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BuildPlan {
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    pub dir: PathBuf,
}

fn check_toolexec(value: &str, place: impl Fn() -> String) -> Result<(), GoBuildError> {
    for token in value.split_whitespace() {
        let t = token.trim_start_matches('-');
        if (token.starts_with('-') && (t == "toolexec" || t.starts_with("toolexec="))) && token.len() - t.len() <= 2 {
            return Err(GoBuildError::Toolexec { flag: token.to_string(), place: place() });
        }
    }
    Ok(())
}

impl GoTool {
    /// Works out the environment and arguments of `go build`, templating flags and ldflags.
    pub async fn plan(
        &self,
        package: &Package,
        platform: &Platform,
        config: &KoConfig,
        flags: &BuildFlags,
    ) -> Result<BuildPlan, GoBuildError> {
        let build = package.config.as_ref();
        let origin = config.origin();
        let place = |what: &str| match build {
            Some(b) => format!("{what} of build {} in {origin}", b.id),
            None => format!("{what} in {origin}"),
        };

        let mut env: Vec<(String, String)> = vec![("CGO_ENABLED".into(), "0".into())];
        env.extend(platform.go_env().unwrap_or_default());
        env.extend(std::env::vars());
        let build_env = build.and_then(|b| b.env.clone()).unwrap_or_else(|| config.default_env.clone());
        for entry in &build_env {
            check_toolexec(entry, || place("env"))?;
            let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
            env.push((k.to_string(), v.to_string()));
        }
        let mut env_map: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &env {
            env_map.insert(k.clone(), v.clone());
        }
        if let Some(goflags) = env_map.get("GOFLAGS") {
            check_toolexec(goflags, || "via the GOFLAGS environment variable".to_string())?;
        }

        let flag_list = build.and_then(|b| b.flags.clone()).unwrap_or_else(|| config.default_flags.clone());
        let (ldflag_list, ldflag_place) = match (&flags.ldflags, build.and_then(|b| b.ldflags.clone())) {
            (Some(cli), _) => (cli.clone(), "--ldflags".to_string()),
            (None, Some(l)) => (l, place("ldflags")),
            (None, None) => (config.default_ldflags.clone(), place("defaultLdflags")),
        };

        let needs_template = flag_list.iter().chain(&ldflag_list).any(|f| f.contains("{{"));
        let data = if needs_template {
            Some(self.template_data(&package.build_dir, &env_map, &build_env).await?)
        } else {
            None
        };
        let apply = |value: &str, where_: &str| -> Result<String, GoBuildError> {
            match &data {
                Some(d) if value.contains("{{") => template::render(value, d)
                    .map_err(|source| GoBuildError::Template { place: where_.to_string(), source }),
                _ => Ok(value.to_string()),
            }
        };

        let mut args = vec!["build".to_string()];
        for f in &flag_list {
            let f = apply(f, &place("flags"))?;
            check_toolexec(&f, || place("flags"))?;
            args.push(f);
        }
        args.push("-trimpath".into());
        if flags.disable_optimizations || flags.debug {
            args.push("-gcflags=all=-N -l".into());
        }
        let ldflags: Vec<String> = ldflag_list.iter().map(|l| apply(l, &ldflag_place)).collect::<Result<_, _>>()?;
        if !ldflags.is_empty() {
            let joined = ldflags.join(" ");
            check_toolexec(&joined, || ldflag_place.clone())?;
            args.push(format!("-ldflags={joined}"));
        }
        Ok(BuildPlan { env, args, dir: package.build_dir.clone() })
    }

    async fn template_data(
        &self,
        dir: &Path,
        env: &BTreeMap<String, String>,
        build_env: &[String],
    ) -> Result<Value, GoBuildError> {
        let mut env_value: BTreeMap<String, Value> = BTreeMap::new();
        env_value.insert("LDFLAGS".into(), Value::Str(String::new()));
        for (k, v) in env {
            env_value.insert(k.clone(), Value::Str(v.clone()));
        }
        let mut go_env: BTreeMap<String, Value> =
            self.go_env(dir).await?.into_iter().map(|(k, v)| (k, Value::Str(v))).collect();
        for entry in build_env {
            if let Some((k, v)) = entry.split_once('=')
                && go_env.contains_key(k)
            {
                go_env.insert(k.to_string(), Value::Str(v.to_string()));
            }
        }
        let when = crate::time::epoch_from_env("SOURCE_DATE_EPOCH")?.unwrap_or_else(crate::time::now_unix);
        Ok(Value::map([
            ("Env", Value::Map(env_value)),
            ("GoEnv", Value::Map(go_env)),
            ("Date", Value::Str(crate::time::rfc3339(when))),
            ("Timestamp", Value::Int(when)),
            ("Git", self.git(dir)),
        ]))
    }

    /// Runs `go build` for one package and returns its binary, kept at a stable place in the
    /// cache so that Go skips relinking an unchanged one. Go's output is shown when it fails.
    pub async fn build(
        &self,
        package: &Package,
        platform: &Platform,
        plan: &BuildPlan,
        cache: &Cache,
    ) -> Result<(Built, Vec<String>), GoBuildError> {
        let cmdline = std::iter::once("go".to_string()).chain(plan.args.iter().cloned()).collect();
        match self.build_into(&[(package, platform)], plan, cache).await? {
            Ok(mut built) => Ok((built.remove(0), cmdline)),
            Err((status, text)) => {
                for line in text.lines() {
                    crate::output::step(line);
                }
                Err(GoBuildError::Failed {
                    import_path: package.import_path.clone(),
                    platform: platform.to_string(),
                    status,
                })
            }
        }
    }

    /// Runs one `go build` for several packages that share a plan (so Go loads and checks
    /// their common dependencies once). `None` when it failed or did not write what was
    /// expected: the caller then builds each package alone, which reports any error exactly.
    pub async fn build_many(
        &self,
        items: &[(&Package, &Platform)],
        plan: &BuildPlan,
        cache: &Cache,
    ) -> Result<Option<Vec<Built>>, GoBuildError> {
        Ok(self.build_into(items, plan, cache).await?.ok())
    }

    /// Brings the packages' binaries up to date: without running Go when a snapshot of the
    /// build's inputs equals the one recorded with the binaries (see `fingerprint`), else with
    /// [`GoTool::run_go_build`]. `Err` holds Go's output.
    async fn build_into(
        &self,
        items: &[(&Package, &Platform)],
        plan: &BuildPlan,
        cache: &Cache,
    ) -> Result<Result<Vec<Built>, (String, String)>, GoBuildError> {
        // Nothing Go reads changed since it made these binaries: they are up to date.
        let snapshot = {
            let _span = crate::timing::span(|| "build snapshot".to_string());
            fingerprint::snapshot(&self.go, plan)
        };
        let slots: Vec<PathBuf> =
            items.iter().map(|(p, platform)| binary_slot(cache, p, platform, plan)).collect::<Result<_, _>>()?;
        if let Some(snapshot) = &snapshot
            && slots.iter().all(|slot| BuildRecord::read(cache, slot, plan).is_some_and(|r| r.matches(snapshot, slot)))
        {
            for (package, platform) in items {
                crate::output::detail(format!(
                    "{} for {platform} is up to date: nothing go build reads changed, so Go was not run",
                    package.import_path
                ));
            }
            return Ok(Ok(slots.into_iter().map(|path| Built { path, relinked: false }).collect()));
        }
        let built = self.run_go_build(items, plan, cache).await?;
        if let (Some(snapshot), Ok(built)) = (&snapshot, &built) {
            for b in built {
                BuildRecord::write(cache, &b.path, plan, snapshot);
            }
        }
        Ok(built)
    }

    /// Runs `go build -o DIR/ pkg…` into a fresh directory of the cache where each package's
    /// stable binary is hard-linked under the name Go gives it. Go leaves an up-to-date
    /// binary alone and, when it relinks, replaces the entry with a new file (it renames over
    /// it, or removes it and writes a new one), so a new inode tells a relinked binary apart,
    /// and the stable copy is never written in place; a new file then moves to the stable place.
    async fn run_go_build(
        &self,
        items: &[(&Package, &Platform)],
        plan: &BuildPlan,
        cache: &Cache,
    ) -> Result<Result<Vec<Built>, (String, String)>, GoBuildError> {
        use std::os::unix::fs::MetadataExt as _;
        let dir = cache.temp_dir()?;
        let io = |path: &Path, source| CacheError { path: path.to_path_buf(), source };
        // (name Go writes, stable place, inode of the link made to it before the build)
        let mut expected: Vec<(String, PathBuf, Option<u64>)> = Vec::with_capacity(items.len());
        for (package, platform) in items {
            let slot = binary_slot(cache, package, platform, plan)?;
            let name = exec_name(&package.import_path, platform);
            let link = dir.path().join(&name);
            // Without the link (another filesystem), Go just relinks.
            let linked = std::fs::hard_link(&slot, &link).ok().and_then(|()| std::fs::metadata(&link).ok());
            expected.push((name, slot, linked.map(|m| m.ino())));
        }
        let mut cmd = self.command(&plan.dir);
        cmd.env_clear().envs(plan.env.iter().map(|(k, v)| (k, v)));
        let mut out_dir = dir.path().as_os_str().to_owned();
        out_dir.push("/");
        cmd.args(&plan.args).arg("-o").arg(out_dir);
        cmd.args(items.iter().map(|(p, _)| p.import_path.as_str()));
        let output = cmd.output().await.map_err(|e| self.spawn_error(e))?;
        if !output.status.success() {
            let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
            return Ok(Err((output.status.to_string(), text)));
        }
        // Every entry, and whether Go wrote it (not one of our untouched links).
        let entries: Vec<(String, bool)> = std::fs::read_dir(dir.path())
            .map_err(|e| io(dir.path(), e))?
            .filter_map(|e| e.ok())
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let ino = std::fs::symlink_metadata(e.path()).ok().filter(|m| m.is_file()).map(|m| m.ino());
                let ours = expected.iter().any(|(n, _, linked)| *n == name && linked.is_some() && *linked == ino);
                (name, ino.is_some() && !ours)
            })
            .collect();
        let written: Vec<&String> = entries.iter().filter(|(_, new)| *new).map(|(n, _)| n).collect();
        // For one package, the one file Go wrote is its binary whatever its name.
        if let ([(name, _, _)], [file]) = (expected.as_mut_slice(), written.as_slice()) {
            name.clone_from(file);
        }
        // Anything Go wrote under another name means the names were guessed wrong.
        let found = |name: &String| entries.iter().any(|(n, _)| n == name);
        if written.iter().any(|f| !expected.iter().any(|(name, _, _)| name == *f))
            || expected.iter().any(|(name, _, _)| !found(name))
        {
            let names: Vec<&String> = entries.iter().map(|(n, _)| n).collect();
            let wanted: Vec<&String> = expected.iter().map(|e| &e.0).collect();
            return Ok(Err(("unexpected output".into(), format!("go build wrote {names:?}, not {wanted:?}"))));
        }
        let mut built = Vec::with_capacity(expected.len());
        for (name, slot, _) in expected {
            let relinked = written.contains(&&name);
            if relinked {
                let path = dir.path().join(&name);
                std::fs::rename(&path, &slot).map_err(|e| io(&slot, e))?;
            }
            built.push(Built { path: slot, relinked });
        }
        Ok(Ok(built))
    }
}

/// What a binary in the cache was built from: the snapshot of its inputs before the build,
/// and the file as Go left it (a changed file means another build replaced it since).
#[derive(serde::Serialize, serde::Deserialize)]
struct BuildRecord {
    snapshot: String,
    file: (u64, u64, i64, i64),
}

impl BuildRecord {
    fn key(slot: &Path, plan: &BuildPlan) -> String {
        let mut key = sha2::Sha256::new();
        // The environment is in the snapshot, filtered to what Go reads.
        key.update(slot.as_os_str().as_encoded_bytes());
        key.update(format!("{:?} {:?}", plan.dir, plan.args).as_bytes());
        hex::encode(key.finalize())
    }

    fn file_of(slot: &Path) -> Option<(u64, u64, i64, i64)> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(slot).ok()?;
        Some((meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec()))
    }

    fn read(cache: &Cache, slot: &Path, plan: &BuildPlan) -> Option<BuildRecord> {
        cache.read_record("builds", &Self::key(slot, plan))
    }

    fn matches(&self, snapshot: &str, slot: &Path) -> bool {
        self.snapshot == snapshot && Self::file_of(slot) == Some(self.file)
    }

    /// Best effort: a record that cannot be written is a later miss.
    fn write(cache: &Cache, slot: &Path, plan: &BuildPlan, snapshot: &str) {
        if let Some(file) = Self::file_of(slot) {
            let record = BuildRecord { snapshot: snapshot.to_string(), file };
            let _ = cache.write_record("builds", &Self::key(slot, plan), &record);
        }
    }
}

/// A binary `go build` left in the cache.
#[derive(Clone, Debug)]
pub struct Built {
    pub path: PathBuf,
    /// False when Go found the binary up to date and left it as it was.
    pub relinked: bool,
}

/// Where one package's binary for one platform, build directory and plan lives between runs.
/// Builds with other flags or Go settings get places of their own, so that they neither
/// relink over each other nor race for one file.
fn binary_slot(cache: &Cache, package: &Package, platform: &Platform, plan: &BuildPlan) -> Result<PathBuf, CacheError> {
    let mut key = sha2::Sha256::new();
    for part in [package.import_path.as_str(), &platform.to_string(), &plan.dir.to_string_lossy()] {
        key.update(part.as_bytes());
        key.update([0]);
    }
    for arg in &plan.args {
        key.update(arg.as_bytes());
        key.update([0]);
    }
    let mut vars: Vec<&(String, String)> =
        plan.env.iter().filter(|(k, _)| k.starts_with("GO") || k.starts_with("CGO_")).collect();
    vars.sort();
    for (k, v) in vars {
        key.update(format!("{k}={v}").as_bytes());
        key.update([0]);
    }
    let key = hex::encode(&key.finalize()[..12]);
    Ok(cache.bin_dir(&key)?.join("out"))
}

/// The file name `go build -o DIR/` gives a command: the last element of its import path,
/// or the one before a major version suffix (`/v2`), plus `.exe` for Windows.
pub fn exec_name(import_path: &str, platform: &Platform) -> String {
    let mut parts = import_path.rsplit('/');
    let last = parts.next().unwrap_or(import_path);
    let is_version = |s: &str| {
        s.len() >= 2
            && s.starts_with('v')
            && !s.starts_with("v0")
            && s != "v1"
            && s[1..].bytes().all(|b| b.is_ascii_digit())
    };
    let name = match parts.next() {
        Some(previous) if is_version(last) => previous,
        _ => last,
    };
    if platform.os == "windows" { format!("{name}.exe") } else { name.to_string() }
}

#[cfg(test)]
mod tests {
    use super::{check_toolexec, exec_name};
    use crate::platform::Platform;

    #[test]
    fn exec_names_follow_go() {
        let linux = Platform::linux("amd64");
        let windows = Platform::parse("windows/amd64").unwrap();
        assert_eq!(exec_name("example.com/app/cmd/server", &linux), "server");
        assert_eq!(exec_name("example.com/app/v2", &linux), "app");
        assert_eq!(exec_name("example.com/app/v0", &linux), "v0");
        assert_eq!(exec_name("example.com/app/v1", &linux), "v1");
        assert_eq!(exec_name("example.com/app/v10", &linux), "app");
        assert_eq!(exec_name("example.com/app/vx", &linux), "vx");
        assert_eq!(exec_name("app", &linux), "app");
        assert_eq!(exec_name("example.com/app", &windows), "app.exe");
    }

    #[test]
    fn toolexec_is_refused_in_every_spelling() {
        for bad in ["-toolexec", "--toolexec", "-toolexec=go", "-v --toolexec=x", "-trimpath -toolexec=/bin/true"] {
            assert!(check_toolexec(bad, || "t".into()).is_err(), "{bad}");
        }
        for fine in ["-v", "-ldflags=-X main.toolexec=1", "-tags=toolexec"] {
            assert!(check_toolexec(fine, || "t".into()).is_ok(), "{fine}");
        }
    }
}
