//! The Go toolchain driver: finding packages (`go list`), assembling each build's environment,
//! flags and ldflags from `.ko.yaml` and the command line (with ko's templating and its
//! refusal of `-toolexec`), and running `go build` into a stable path in the cache so Go
//! itself skips relinking an unchanged binary (`build`).

mod build;
pub mod delve;
mod fingerprint;
mod git;
mod listcache;
mod resolve;
mod slot;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::process::Command;

pub use build::{exec_name, group_by_plan};
pub use resolve::{Package, PackageResolver, normalize};
pub use slot::Built;

use crate::cache::CacheError;
use crate::config::KoConfig;
use crate::platform::Platform;
use crate::settings::Environment;
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
    #[error("invalid environment variable entry {entry:?} in {place}: write it as NAME=value")]
    EnvEntry { entry: String, place: String },
    #[error(
        "{var}={value} ({place}) would make a binary for another platform than {platform}, the one its image is labelled with; remove it and choose platforms with --platform or defaultPlatforms"
    )]
    PlatformEnv { var: String, value: String, place: String, platform: String },
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

/// Facts about one directory, worked out once per run and shared by whoever asks first.
type Memo<T> = Arc<Mutex<BTreeMap<PathBuf, Arc<tokio::sync::OnceCell<T>>>>>;

/// The `go` binary (`KO_GO_PATH`, else `go` on PATH), the environment it and git run in, and
/// what they have told us.
#[derive(Clone)]
pub struct GoTool {
    go: PathBuf,
    env: Environment,
    go_env: Arc<tokio::sync::OnceCell<BTreeMap<String, String>>>,
    git: Memo<Value>,
    /// `GOCACHEPROG` for `go build` (the suite's `gocache`), when the shared cache is on, and
    /// the cache (`KOCACHE`) it is to use: this run's.
    cache_prog: Option<(String, PathBuf)>,
}

/// `KO_GO_PATH` when set and not empty, else `go` (found on PATH).
fn go_program(env: &Environment) -> PathBuf {
    env.path("KO_GO_PATH").unwrap_or_else(|| "go".into())
}

impl GoTool {
    /// The `go` of `env`, run in `env` (plus each build's own settings).
    pub fn new(env: &Environment) -> GoTool {
        GoTool {
            go: go_program(env),
            env: env.clone(),
            go_env: Default::default(),
            git: Default::default(),
            cache_prog: None,
        }
    }

    /// The same tool, with `GOCACHEPROG=program` in the environment of `go build` (not of
    /// `go list` or `go env`, which would start a cache program for nothing).
    pub fn with_cache_prog(mut self, program: Option<String>, cache_root: &Path) -> GoTool {
        let root = std::path::absolute(cache_root).unwrap_or_else(|_| cache_root.to_path_buf());
        self.cache_prog = program.map(|program| (program, root));
        self
    }

    /// Go's version as (major, minor), from `go version` (`go version go1.24.2 linux/amd64`).
    /// `None` when go cannot be run or says something else.
    pub async fn version(&self, dir: &Path) -> Option<(u32, u32)> {
        let out = self.output(self.command(dir).arg("version")).await.ok()?;
        parse_go_version(&String::from_utf8_lossy(&out.stdout))
    }

    /// The `go` program used for builds (and for reading build info).
    pub fn program(&self) -> &Path {
        &self.go
    }

    /// The environment `go` and git run in.
    pub fn environment(&self) -> &Environment {
        &self.env
    }

    /// `go` in `dir` with the tool's environment, to run with [`GoTool::output`].
    fn command(&self, dir: &Path) -> Command {
        let mut cmd = Command::new(&self.go);
        cmd.current_dir(dir).env_clear().envs(self.env.iter());
        cmd
    }

    /// Runs a `go` command to completion in a process group of its own, which is stopped
    /// (with the compilers under it) when the run is stopped or the future dropped.
    async fn output(&self, cmd: &mut Command) -> Result<std::process::Output, GoBuildError> {
        crate::interrupt::output(cmd).await.map_err(|e| self.spawn_error(e))
    }

    fn spawn_error(&self, e: std::io::Error) -> GoBuildError {
        GoBuildError::NoGo { go: self.go.display().to_string(), detail: e.to_string() }
    }

    /// `go env` in `dir`, asked once per run (the first caller's `dir` counts).
    async fn go_env(&self, dir: &Path) -> Result<BTreeMap<String, String>, GoBuildError> {
        self.go_env
            .get_or_try_init(|| async {
                let out = self.output(self.command(dir).args(["env", "-json"])).await?;
                Ok(serde_json::from_slice(&out.stdout).unwrap_or_default())
            })
            .await
            .cloned()
    }

    /// The full commit `dir` is checked out at (for provenance), asked of git once per
    /// directory; `None` outside a repository.
    pub async fn source_commit(&self, dir: &Path) -> Option<String> {
        let Value::Map(map) = self.git(dir).await else { return None };
        match map.get("FullCommit") {
            Some(Value::Str(commit)) if !commit.is_empty() => Some(commit.clone()),
            _ => None,
        }
    }

    /// The `.Git` template value of `dir`, asked of git once per directory.
    async fn git(&self, dir: &Path) -> Value {
        let cell = self.git.lock().expect("git cache lock").entry(dir.to_path_buf()).or_default().clone();
        cell.get_or_init(|| git::git_value(dir, &self.env)).await.clone()
    }
}

/// Runs `work` (file system walks, reads of many small files) on tokio's blocking threads,
/// off the async ones; a panic there is a panic here. `None` when the runtime is shutting
/// down, when the answer no longer matters.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => Some(value),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => None,
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

/// (1, 24) from `go version go1.24.2 linux/amd64` (or `go1.24rc1`, `devel go1.25-abc`).
fn parse_go_version(text: &str) -> Option<(u32, u32)> {
    let version = text.split_whitespace().find_map(|w| w.strip_prefix("go1."))?;
    let minor: String = version.chars().take_while(char::is_ascii_digit).collect();
    Some((1, minor.parse().ok()?))
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
        let platform_env = platform.go_env().unwrap_or_default();
        env.extend(platform_env.iter().cloned());
        env.extend(self.env.text_vars().map(|(k, v)| (k.to_string(), v.to_string())));
        // Where each of the platform's variables is set again: Go takes the last.
        let mut overrides: Vec<(String, String, String)> = self
            .env
            .text_vars()
            .filter(|(k, _)| platform_env.iter().any(|(p, _)| p == k))
            .map(|(k, v)| (k.to_string(), v.to_string(), "in the environment".to_string()))
            .collect();
        if let Some((program, cache_root)) = &self.cache_prog {
            env.push(("GOCACHEPROG".into(), program.clone()));
            // Go starts the program in its own directory (a build's `dir`): the program is
            // told the cache this process uses (absolute; the run's own when the default
            // cannot be written), not left to resolve `KOCACHE` itself.
            env.push(("KOCACHE".into(), cache_root.display().to_string()));
        }
        // As ko (`len(...) == 0`): an empty list in a build falls back to the defaults.
        let given = |list: Option<&Vec<String>>| list.filter(|l| !l.is_empty()).cloned();
        let (build_env, env_place) = match given(build.and_then(|b| b.env.as_ref())) {
            Some(env) => (env, place("env")),
            None => (config.default_env.clone(), config.default_place("defaultEnv")),
        };
        for entry in &build_env {
            check_toolexec(entry, || env_place.clone())?;
            let Some((k, v)) = entry.split_once('=') else {
                return Err(GoBuildError::EnvEntry { entry: entry.clone(), place: env_place });
            };
            if platform_env.iter().any(|(p, _)| p == k) {
                overrides.push((k.to_string(), v.to_string(), env_place.clone()));
            }
            env.push((k.to_string(), v.to_string()));
        }
        // ko builds with them and labels the image with the platform all the same: an arm64
        // binary in an image that says amd64 (or a GOAMD64=v4 one that says v3).
        for (var, wanted) in &platform_env {
            if let Some((_, value, place)) = overrides.iter().rev().find(|(k, _, _)| k == var)
                && value != wanted
            {
                return Err(GoBuildError::PlatformEnv {
                    var: var.clone(),
                    value: value.clone(),
                    place: place.clone(),
                    platform: platform.to_string(),
                });
            }
        }
        let mut env_map: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &env {
            env_map.insert(k.clone(), v.clone());
        }
        if let Some(goflags) = env_map.get("GOFLAGS") {
            check_toolexec(goflags, || "via the GOFLAGS environment variable".to_string())?;
        }

        let (flag_list, flag_place) = match given(build.and_then(|b| b.flags.as_ref())) {
            Some(list) => (list, place("flags")),
            None => (config.default_flags.clone(), config.default_place("defaultFlags")),
        };
        // `--ldflags="$LDFLAGS"` with the variable empty gives none, as pflag reads it.
        let cli_ldflags = flags.ldflags.as_ref().map(|l| l.iter().filter(|f| !f.is_empty()).cloned().collect());
        let (ldflag_list, ldflag_place) =
            match (given(cli_ldflags.as_ref()), given(build.and_then(|b| b.ldflags.as_ref()))) {
                (Some(cli), _) => (cli, "--ldflags".to_string()),
                (None, Some(l)) => (l, place("ldflags")),
                (None, None) => (config.default_ldflags.clone(), config.default_place("defaultLdflags")),
            };

        let needs_template = flag_list.iter().chain(&ldflag_list).any(|f| f.contains("{{"));
        let data = if needs_template { Some(self.template_data(&package.build_dir, &env_map).await?) } else { None };
        let apply = |value: &str, where_: &str| -> Result<String, GoBuildError> {
            match &data {
                Some(d) if value.contains("{{") => template::render(value, d)
                    .map_err(|source| GoBuildError::Template { place: where_.to_string(), source }),
                _ => Ok(value.to_string()),
            }
        };

        let mut args = vec!["build".to_string()];
        for f in &flag_list {
            let f = apply(f, &flag_place)?;
            check_toolexec(&f, || flag_place.clone())?;
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

    async fn template_data(&self, dir: &Path, env: &BTreeMap<String, String>) -> Result<Value, GoBuildError> {
        let mut env_value: BTreeMap<String, Value> = BTreeMap::new();
        env_value.insert("LDFLAGS".into(), Value::Str(String::new()));
        for (k, v) in env {
            env_value.insert(k.clone(), Value::Str(v.clone()));
        }
        // `go env` as the build sees it, as in ko: run where the command runs (not in the
        // package's module: `GOMOD`, `GOWORK` and a `toolchain` line are the working
        // directory's), and each of its keys the build's environment sets (the platform's
        // GOOS and GOARCH, CGO_ENABLED, the configured env) is that value.
        let here = std::env::current_dir().unwrap_or_else(|_| dir.to_path_buf());
        let mut go_env: BTreeMap<String, Value> =
            self.go_env(&here).await?.into_iter().map(|(k, v)| (k, Value::Str(v))).collect();
        for (k, v) in env {
            if let Some(value) = go_env.get_mut(k) {
                *value = Value::Str(v.clone());
            }
        }
        let when = crate::time::epoch(&self.env, "SOURCE_DATE_EPOCH")?.unwrap_or_else(crate::time::now_unix);
        Ok(Value::map([
            ("Env", Value::Map(env_value)),
            ("GoEnv", Value::Map(go_env)),
            // In the local zone, as ko formats it (its docs say UTC; its code does not).
            ("Date", Value::Str(crate::time::rfc3339_local(when, &self.env))),
            ("Timestamp", Value::Int(when)),
            ("Git", self.git(dir).await),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ko_go_path_then_go_on_path() {
        let go = |pairs: &[(&str, &str)]| GoTool::new(&Environment::from_pairs(pairs.iter().copied())).go;
        assert_eq!(go(&[("KO_GO_PATH", "/opt/go/bin/go")]), PathBuf::from("/opt/go/bin/go"));
        assert_eq!(go(&[("KO_GO_PATH", "")]), PathBuf::from("go"));
        assert_eq!(go(&[]), PathBuf::from("go"));
    }

    fn app_in(dir: &Path) -> Package {
        Package { import_path: "example.com/app".into(), dir: dir.into(), build_dir: dir.into(), config: None }
    }

    #[tokio::test]
    async fn go_runs_in_the_tools_environment_and_the_build_plan_carries_it() {
        let env = Environment::from_pairs([("GOFLAGS", "-mod=mod"), ("MARKER", "kept"), ("SOURCE_DATE_EPOCH", "0")]);
        let go = GoTool::new(&env);
        let cmd = go.command(Path::new("/"));
        let set: Vec<_> = cmd.as_std().get_envs().collect();
        assert!(set.contains(&(std::ffi::OsStr::new("MARKER"), Some(std::ffi::OsStr::new("kept")))), "{set:?}");
        assert!(!set.iter().any(|(k, _)| *k == "PATH"), "only the tool's environment: {set:?}");

        let dir = tempfile::tempdir().unwrap();
        let package = app_in(dir.path());
        let config = KoConfig::default();
        let plan = go.plan(&package, &Platform::linux("amd64"), &config, &BuildFlags::default()).await.unwrap();
        assert!(plan.env.contains(&("MARKER".into(), "kept".into())), "{:?}", plan.env);
        assert_eq!(plan.env.first(), Some(&("CGO_ENABLED".into(), "0".into())));
        let bad = Environment::from_pairs([("GOFLAGS", "-toolexec=x")]);
        let err = GoTool::new(&bad).plan(&package, &Platform::linux("amd64"), &config, &BuildFlags::default()).await;
        assert!(matches!(err, Err(GoBuildError::Toolexec { .. })));
    }

    #[tokio::test]
    async fn go_env_in_templates_is_the_target_platforms() {
        let home = tempfile::tempdir().unwrap();
        let path = std::env::var("PATH").unwrap_or_default();
        let home_text = home.path().display().to_string();
        let env = Environment::from_pairs([("HOME", home_text.as_str()), ("PATH", &path), ("SOURCE_DATE_EPOCH", "0")]);
        let dir = tempfile::tempdir().unwrap();
        let package = app_in(dir.path());
        let config = KoConfig::parse_str(
            "defaultLdflags: ['-X main.p={{.GoEnv.GOOS}}/{{.GoEnv.GOARCH}}/{{.GoEnv.CGO_ENABLED}}']",
        )
        .unwrap();
        // Not the host's (amd64 or arm64): the platform being built.
        for arch in ["riscv64", "s390x"] {
            let plan = GoTool::new(&env)
                .plan(&package, &Platform::linux(arch), &config, &BuildFlags::default())
                .await
                .unwrap();
            let wanted = format!("-ldflags=-X main.p=linux/{arch}/0");
            assert!(plan.args.contains(&wanted), "{:?}", plan.args);
        }
    }

    #[tokio::test]
    async fn empty_lists_fall_back_to_the_defaults_and_env_entries_need_a_value() {
        let env = Environment::from_pairs([("SOURCE_DATE_EPOCH", "0")]);
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "defaultEnv: [GOFLAGS=-v]\ndefaultFlags: [-x]\ndefaultLdflags: ['-X main.v=default']\nbuilds:\n- main: {}\n  env: []\n  flags: ''\n  ldflags: []\n",
            dir.path().display()
        );
        let config = KoConfig::parse_str(&text).unwrap();
        let mut package = app_in(dir.path());
        package.config = config.builds.first().cloned();
        let plan = |flags: BuildFlags| {
            let (go, package, config) = (GoTool::new(&env), package.clone(), config.clone());
            async move { go.plan(&package, &Platform::linux("amd64"), &config, &flags).await }
        };
        let got = plan(BuildFlags::default()).await.unwrap();
        assert!(got.env.contains(&("GOFLAGS".into(), "-v".into())), "{:?}", got.env);
        assert_eq!(got.args, ["build", "-x", "-trimpath", "-ldflags=-X main.v=default"]);
        // `--ldflags="$EMPTY"` is no ldflags at all.
        let empty_cli = BuildFlags { ldflags: Some(vec![String::new()]), ..BuildFlags::default() };
        assert_eq!(plan(empty_cli).await.unwrap().args, ["build", "-x", "-trimpath", "-ldflags=-X main.v=default"]);

        let config = KoConfig::parse_str("defaultEnv: [CGO_ENABLED]\n").unwrap();
        let err = GoTool::new(&env)
            .plan(&app_in(dir.path()), &Platform::linux("amd64"), &config, &BuildFlags::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid environment variable entry \"CGO_ENABLED\" in defaultEnv"), "{err}");

        // Defaults set by KO_DEFAULT* are named by their variable; a build's flags by the build.
        let from_env = Environment::from_pairs([("KO_DEFAULTFLAGS", "-v {{.Env.NOPE}}")]);
        let config = KoConfig::load(dir.path(), &from_env).unwrap();
        let path = std::env::var("PATH").unwrap_or_default();
        let env = Environment::from_pairs([("PATH", path.as_str()), ("SOURCE_DATE_EPOCH", "0")]);
        let err = GoTool::new(&env)
            .plan(&app_in(dir.path()), &Platform::linux("amd64"), &config, &BuildFlags::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("KO_DEFAULTFLAGS (the environment): template"), "{err}");
    }

    #[test]
    fn go_versions_are_read_from_go_version() {
        assert_eq!(parse_go_version("go version go1.24.2 linux/amd64\n"), Some((1, 24)));
        assert_eq!(parse_go_version("go version go1.25rc1 darwin/arm64"), Some((1, 25)));
        assert_eq!(parse_go_version("go version go1.9 linux/386"), Some((1, 9)));
        assert_eq!(parse_go_version("something else"), None);
    }

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
