//! Skipping `go build` when nothing it reads can have changed since it last ran. Before each
//! build a snapshot is taken of the inputs: the build plan and the Go environment, the `go`
//! program and its GOROOT, the user's Go env file, every file of the main module (size, times
//! and inode) and the Git state Go stamps into binaries (with the system and global Git
//! configs and excludes files, which decide what counts as modified). When a build succeeds, the snapshot
//! is recorded with the binary it made; a later snapshot equal to it means `go build` would
//! find that binary up to date. A file modified in the last seconds means no snapshot: a
//! second edit within the same clock tick might not move its times (git's "racy" files).
//!
//! Dependencies outside the main module come from the module cache, whose files never change
//! for a version, and versions are fixed by `go.mod` and `go.sum`, which are part of the
//! snapshot. Anything this cannot see means no snapshot, and Go decides as usual: a module
//! with local `replace` directives or under a `go.work`, cgo, `-overlay`, `-modfile`, a
//! symlinked directory, a `.git` file, or more than `MAX_ENTRIES` files.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::Digest as _;

use super::BuildPlan;

const VERSION: &str = "build-fingerprint-v1";
/// A file modified this recently may be modified again without its times moving.
const RACY: Duration = Duration::from_secs(3);
/// A module with more files than this is left to Go (walking it would cost more than it saves).
const MAX_ENTRIES: usize = 20_000;

/// A digest of everything a `go build` with `plan` reads, or `None` when that cannot be known.
pub(crate) fn snapshot(program: &Path, plan: &BuildPlan) -> Option<String> {
    let var = |name: &str| plan.env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    // Go reads its settings from the environment, then the user's env file, then GOROOT's.
    let GoFiles { program, goroot, env_file } = go_files(program, var)?;
    let files: Vec<Vec<(String, String)>> =
        [env_file.clone(), goroot.as_ref().map(|r| r.join("go.env"))].iter().flatten().map(|f| env_lines(f)).collect();
    let setting = |name: &str| -> String {
        match var(name) {
            Some(v) if !v.is_empty() => v.to_string(),
            _ => {
                files.iter().find_map(|f| f.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())).unwrap_or_default()
            }
        }
    };
    if setting("CGO_ENABLED") != "0" || setting("GO111MODULE") == "off" {
        return None;
    }
    let goflags = setting("GOFLAGS");
    let goflags = goflags.as_str();
    // Flags that make Go read files named outside the module.
    let reads_outside = |a: &str| {
        a.contains("-overlay")
            || a.contains("-modfile")
            || a.split_whitespace().any(|w| w.contains("-pgo=") && !w.ends_with("=auto") && !w.ends_with("=off"))
    };
    if plan.args.iter().map(String::as_str).chain([goflags]).any(reads_outside) {
        return None;
    }
    let gowork = setting("GOWORK");
    if !gowork.is_empty() && gowork != "off" {
        return None;
    }
    let root = plan.dir.ancestors().find(|d| d.join("go.mod").is_file())?;
    if gowork != "off" && plan.dir.ancestors().any(|d| d.join("go.work").exists()) {
        return None;
    }
    if has_local_replace(&std::fs::read_to_string(root.join("go.mod")).ok()?) {
        return None;
    }

    let mut hash = sha2::Sha256::new();
    let mut put = |bytes: &[u8]| {
        hash.update(bytes);
        hash.update([0]);
    };
    put(VERSION.as_bytes());
    put(plan.dir.as_os_str().as_encoded_bytes());
    for arg in &plan.args {
        put(arg.as_bytes());
    }
    let mut vars: Vec<&(String, String)> = plan
        .env
        .iter()
        // Where `go` and the env file are found (PATH, HOME) is in the snapshot through the
        // program and the file themselves, not through the variables. GIT_* can point Go's
        // VCS stamping at another repository.
        .filter(|(k, _)| k.starts_with("GO") || k.starts_with("CGO_") || k.starts_with("GIT_"))
        .collect();
    vars.sort();
    for (k, v) in vars {
        put(format!("{k}={v}").as_bytes());
    }

    // The toolchain: the program, its GOROOT's VERSION and go.env, and the user's env file.
    put(program.as_os_str().as_encoded_bytes());
    put(&stat_bytes(&std::fs::metadata(&program).ok()?));
    if let Some(goroot) = &goroot {
        for file in ["VERSION", "go.env"] {
            put(&read_or_absent(&goroot.join(file))?);
        }
    }
    if let Some(file) = env_file {
        put(&read_or_absent(&file)?);
    }

    let now = SystemTime::now();
    let mut entries = 0;
    walk(root, root, now, &mut entries, &mut put)?;
    git_state(root, || git_config_files(var), &mut put)?;
    Some(hex::encode(hash.finalize()))
}

/// Where Go finds itself and its settings besides the environment.
pub(crate) struct GoFiles {
    /// The `go` program, its symlinks resolved.
    pub program: PathBuf,
    /// `$GOROOT`, else the directory above the program's `bin/`, found as Go finds it: from
    /// the program with its symlinks resolved (`/usr/bin/go` is often a link into the real
    /// GOROOT, whose `go.env` and `VERSION` count).
    pub goroot: Option<PathBuf>,
    /// The user's env file (`go env -w`): `$GOENV`, else under `$XDG_CONFIG_HOME` or `$HOME`.
    pub env_file: Option<PathBuf>,
}

/// [`GoFiles`] for `program` (a path, or a name looked up on `PATH`) in the environment `var`
/// reads; `None` when the program is not found.
pub(crate) fn go_files<'a>(program: &Path, var: impl Fn(&str) -> Option<&'a str>) -> Option<GoFiles> {
    let found = find_program(program, var("PATH").unwrap_or(""))?;
    let program = std::fs::canonicalize(&found).unwrap_or(found);
    let goroot = match var("GOROOT") {
        Some(root) if !root.is_empty() => Some(PathBuf::from(root)),
        _ => program.parent().and_then(Path::parent).map(Path::to_path_buf),
    };
    let env_file = match var("GOENV") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => match (var("XDG_CONFIG_HOME"), var("HOME")) {
            (Some(config), _) if !config.is_empty() => Some(Path::new(config).join("go/env")),
            (_, Some(home)) if !home.is_empty() => Some(Path::new(home).join(".config/go/env")),
            _ => None,
        },
    };
    Some(GoFiles { program, goroot, env_file })
}

/// The Git configuration files outside the repository that decide which files `git status`
/// (and so Go's `vcs.modified`) counts as untracked: the system and global configs, the files
/// they include, the global excludes file, and any `excludesFile` they name. Missing files
/// count too (as absent), so creating one is seen.
fn git_config_files<'a>(var: impl Fn(&str) -> Option<&'a str>) -> Vec<PathBuf> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    let home = set("HOME").map(PathBuf::from);
    let config_home = set("XDG_CONFIG_HOME").map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".config")));
    let mut configs = Vec::new();
    if !matches!(set("GIT_CONFIG_NOSYSTEM"), Some(v) if v != "0" && v != "false") {
        configs.push(set("GIT_CONFIG_SYSTEM").map_or_else(|| PathBuf::from("/etc/gitconfig"), PathBuf::from));
    }
    match set("GIT_CONFIG_GLOBAL") {
        Some(global) => configs.push(PathBuf::from(global)),
        None => configs
            .extend(config_home.iter().map(|c| c.join("git/config")).chain(home.iter().map(|h| h.join(".gitconfig")))),
    }
    let mut files: Vec<PathBuf> = config_home.iter().map(|c| c.join("git/ignore")).collect();
    // Configs and what they include, breadth first; a bounded number, against include loops.
    let mut next = 0;
    while next < configs.len() && configs.len() < 64 {
        let config = configs[next].clone();
        next += 1;
        let Ok(text) = std::fs::read_to_string(&config) else { continue };
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if let Some(header) = line.strip_prefix('[') {
                section = header.split([']', ' ', '"']).next().unwrap_or("").to_ascii_lowercase();
                continue;
            }
            let Some((key, value)) = line.split_once('=') else { continue };
            let key = key.trim().to_ascii_lowercase();
            let value = git_config_value(value);
            let path = match (value.strip_prefix("~/"), &home) {
                (Some(rest), Some(home)) => home.join(rest),
                _ => config.parent().map_or_else(|| PathBuf::from(&value), |dir| dir.join(&value)),
            };
            match (section.as_str(), key.as_str()) {
                ("core", "excludesfile") => files.push(path),
                ("include" | "includeif", "path") if !configs.contains(&path) => configs.push(path),
                _ => {}
            }
        }
    }
    files.extend(configs);
    files
}

/// A Git config value as Git reads it: quotes removed, and a `#` or `;` outside them starting
/// a comment.
fn git_config_value(raw: &str) -> String {
    let (mut value, mut quoted) = (String::new(), false);
    for c in raw.trim().chars() {
        match c {
            '"' => quoted = !quoted,
            '#' | ';' if !quoted => break,
            _ => value.push(c),
        }
    }
    value.trim().to_string()
}

/// True when `go.mod` replaces a module with a directory (whose files are outside the walk).
fn has_local_replace(go_mod: &str) -> bool {
    go_mod.lines().filter_map(|l| l.split("//").next()?.split_once("=>")).any(|(_, target)| {
        let target = target.trim().trim_start_matches(['"', '`']);
        target.starts_with('.') || target.starts_with('/')
    })
}

/// The `KEY=VALUE` lines of a Go env file (none when it is missing).
fn env_lines(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The `go` program as a path: itself when it has a slash, else the first match on PATH.
fn find_program(program: &Path, path: &str) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return Some(program.to_path_buf());
    }
    std::env::split_paths(path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

fn read_or_absent(path: &Path) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(mut bytes) => {
            bytes.insert(0, 1);
            Some(bytes)
        }
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => Some(vec![2]),
        Err(_) => None,
    }
}

fn stat_bytes(meta: &Metadata) -> Vec<u8> {
    format!(
        "{} {} {} {}.{} {}.{}",
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    )
    .into_bytes()
}

/// Every entry under `dir` but `.git`, in name order: its path, its times and size. `None`
/// when a file was modified within [`RACY`] of `now`.
fn walk(root: &Path, dir: &Path, now: SystemTime, entries: &mut usize, put: &mut impl FnMut(&[u8])) -> Option<()> {
    let mut children: Vec<PathBuf> =
        std::fs::read_dir(dir).ok()?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>().ok()?;
    children.sort();
    for path in children {
        *entries += 1;
        if *entries > MAX_ENTRIES {
            return None;
        }
        if dir == root && path.file_name().is_some_and(|n| n == ".git") {
            continue;
        }
        put(path.strip_prefix(root).ok()?.as_os_str().as_encoded_bytes());
        let link = std::fs::symlink_metadata(&path).ok()?;
        if link.file_type().is_symlink() {
            put(std::fs::read_link(&path).ok()?.as_os_str().as_encoded_bytes());
            match std::fs::metadata(&path) {
                Ok(target) if target.is_dir() => return None,
                Ok(target) => file(&target, now, put)?,
                Err(_) => put(b"dangling"),
            }
        } else if link.is_dir() {
            walk(root, &path, now, entries, put)?;
        } else {
            file(&link, now, put)?;
        }
    }
    Some(())
}

fn file(meta: &Metadata, now: SystemTime, put: &mut impl FnMut(&[u8])) -> Option<()> {
    // The modification time, not the change time: a time set into the past by hand is itself
    // a change any later edit undoes.
    let age = now.duration_since(meta.modified().ok()?).ok()?;
    if age < RACY {
        return None;
    }
    put(&stat_bytes(meta));
    Some(())
}

/// What Go's VCS stamping reads: the checked-out commit and the index. `None` for a `.git`
/// that is a file (worktrees, submodules), or for a repository wider than the module, whose
/// other files decide `vcs.modified` too; both are left to Go.
fn git_state(root: &Path, configs: impl FnOnce() -> Vec<PathBuf>, put: &mut impl FnMut(&[u8])) -> Option<()> {
    // Go stamps whichever version control system holds the module; all but Git are left to Go.
    const MARKERS: [&str; 6] = [".git", ".hg", ".svn", ".bzr", ".fossil", "_FOSSIL_"];
    let Some(found) = root.ancestors().find_map(|d| MARKERS.iter().map(|m| d.join(m)).find(|p| p.exists())) else {
        put(b"no vcs");
        return Some(());
    };
    let git = found;
    if git.file_name() != Some(std::ffi::OsStr::new(".git")) || !git.is_dir() || git.parent() != Some(root) {
        return None;
    }
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    put(head.as_bytes());
    if let Some(reference) = head.trim().strip_prefix("ref: ") {
        put(&read_or_absent(&git.join(reference))?);
        put(&read_or_absent(&git.join("packed-refs"))?);
    }
    match std::fs::metadata(git.join("index")) {
        Ok(meta) => put(&stat_bytes(&meta)),
        Err(_) => put(b"no index"),
    }
    // Which untracked files count (and so `vcs.modified`) depends on these too.
    for file in ["config", "info/exclude"] {
        put(&read_or_absent(&git.join(file))?);
    }
    for file in configs() {
        put(&read_or_absent(&file)?);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(dir: &Path) -> BuildPlan {
        BuildPlan {
            env: vec![("CGO_ENABLED".into(), "0".into()), ("PATH".into(), "/usr/bin:/bin".into())],
            args: vec!["build".into(), "-trimpath".into()],
            dir: dir.to_path_buf(),
        }
    }

    /// Writes a file modified `hours` ago (older than the racy window).
    fn write_old(path: &Path, text: &str, hours: u64) {
        std::fs::write(path, text).unwrap();
        let then = SystemTime::now() - Duration::from_secs(3600 * hours);
        std::fs::File::options().write(true).open(path).unwrap().set_modified(then).unwrap();
    }

    fn module() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write_old(&dir.path().join("go.mod"), "module example.com/app\n\ngo 1.22\n", 1);
        std::fs::create_dir(dir.path().join("cmd")).unwrap();
        write_old(&dir.path().join("cmd/main.go"), "package main\n", 1);
        dir
    }

    #[test]
    fn the_snapshot_moves_with_every_input() {
        let dir = module();
        let sh = Path::new("/bin/sh");
        let first = snapshot(sh, &plan(dir.path())).expect("a plain module has a snapshot");
        assert_eq!(snapshot(sh, &plan(dir.path())).as_ref(), Some(&first));

        // A file just modified may change again within one clock tick: no snapshot.
        std::fs::write(dir.path().join("cmd/main.go"), "package mian\n").unwrap();
        assert!(snapshot(sh, &plan(dir.path())).is_none(), "a racy file");
        write_old(&dir.path().join("cmd/main.go"), "package mian\n", 2);
        let edited = snapshot(sh, &plan(dir.path())).unwrap();
        assert_ne!(edited, first);

        write_old(&dir.path().join("cmd/asset.txt"), "x", 1);
        let added = snapshot(sh, &plan(dir.path())).unwrap();
        assert_ne!(added, edited);

        let mut flags = plan(dir.path());
        flags.args.push("-ldflags=-X main.v=1".into());
        assert_ne!(snapshot(sh, &flags).unwrap(), added);
        let mut env = plan(dir.path());
        env.env.push(("GOFLAGS".into(), "-tags=x".into()));
        assert_ne!(snapshot(sh, &env).unwrap(), added);
        let mut unrelated = plan(dir.path());
        unrelated.env.push(("SOMETHING_ELSE".into(), "1".into()));
        assert_eq!(snapshot(sh, &unrelated).unwrap(), added);

        std::fs::create_dir(dir.path().join(".git")).unwrap();
        write_old(&dir.path().join(".git/HEAD"), "ref: refs/heads/main\n", 1);
        assert_ne!(snapshot(sh, &plan(dir.path())).unwrap(), added, "a Git checkout is stamped into binaries");
    }

    #[test]
    fn what_it_cannot_see_is_left_to_go() {
        let dir = module();
        let sh = Path::new("/bin/sh");
        let mut cgo = plan(dir.path());
        cgo.env.push(("CGO_ENABLED".into(), "1".into()));
        assert!(snapshot(sh, &cgo).is_none());
        let mut overlay = plan(dir.path());
        overlay.args.push("-overlay=o.json".into());
        assert!(snapshot(sh, &overlay).is_none());
        let mut pgo = plan(dir.path());
        pgo.args.push("-pgo=/elsewhere/cpu.pprof".into());
        assert!(snapshot(sh, &pgo).is_none());
        pgo.args.pop();
        pgo.args.push("-pgo=auto".into());
        assert!(snapshot(sh, &pgo).is_some());

        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir(repo.path().join(".git")).unwrap();
        std::fs::write(repo.path().join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        let nested = repo.path().join("svc");
        std::fs::create_dir(&nested).unwrap();
        write_old(&nested.join("go.mod"), "module example.com/svc\n", 1);
        assert!(snapshot(sh, &plan(&nested)).is_none(), "a module inside a wider repository");

        let hg = module();
        std::fs::create_dir(hg.path().join(".hg")).unwrap();
        assert!(snapshot(sh, &plan(hg.path())).is_none(), "Mercurial");

        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".config/go")).unwrap();
        std::fs::write(home.path().join(".config/go/env"), "GOPRIVATE=example.com\n").unwrap();
        let mut from_file = plan(dir.path());
        from_file.env.push(("HOME".into(), home.path().display().to_string()));
        assert!(snapshot(sh, &from_file).is_some());
        std::fs::write(home.path().join(".config/go/env"), "GOFLAGS=-overlay=/x.json\n").unwrap();
        assert!(snapshot(sh, &from_file).is_none(), "GOFLAGS from the user's go env file");
        std::fs::write(home.path().join(".config/go/env"), "GO111MODULE=off\n").unwrap();
        assert!(snapshot(sh, &from_file).is_none(), "GOPATH mode from the env file");

        let work = module();
        let below = work.path().join("cmd");
        assert!(snapshot(sh, &plan(&below)).is_some());
        write_old(&below.join("go.work"), "go 1.22\n", 1);
        assert!(snapshot(sh, &plan(&below)).is_none(), "a go.work between the build directory and go.mod");

        write_old(&dir.path().join("go.mod"), "module example.com/app\n\nreplace example.com/lib => ../lib\n", 1);
        assert!(snapshot(sh, &plan(dir.path())).is_none());
        write_old(&dir.path().join("go.mod"), "module example.com/app\n", 1);
        write_old(&dir.path().join("go.work"), "go 1.22\n", 1);
        assert!(snapshot(sh, &plan(dir.path())).is_none());
        std::fs::remove_file(dir.path().join("go.work")).unwrap();

        std::os::unix::fs::symlink("/tmp", dir.path().join("linked")).unwrap();
        assert!(snapshot(sh, &plan(dir.path())).is_none(), "a symlinked directory");
        std::fs::remove_file(dir.path().join("linked")).unwrap();
        assert!(snapshot(sh, &plan(dir.path())).is_some());

        let outside = tempfile::tempdir().unwrap();
        assert!(snapshot(sh, &plan(outside.path())).is_none(), "no go.mod");
    }

    #[test]
    fn a_linked_go_program_is_followed_to_its_goroot() {
        let dir = module();
        let goroot = tempfile::tempdir().unwrap();
        std::fs::create_dir(goroot.path().join("bin")).unwrap();
        std::fs::copy("/bin/sh", goroot.path().join("bin/go")).unwrap();
        write_old(&goroot.path().join("go.env"), "GOTOOLCHAIN=local\n", 1);
        let bin = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(goroot.path().join("bin/go"), bin.path().join("go")).unwrap();
        let mut linked = plan(dir.path());
        linked.env.push(("PATH".into(), bin.path().display().to_string()));
        let before = snapshot(Path::new("go"), &linked).unwrap();
        write_old(&goroot.path().join("go.env"), "GOTOOLCHAIN=auto\n", 1);
        assert_ne!(snapshot(Path::new("go"), &linked).unwrap(), before, "the real GOROOT's go.env");
    }

    #[test]
    fn global_git_excludes_are_part_of_the_git_state() {
        let dir = module();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        write_old(&dir.path().join(".git/HEAD"), "ref: refs/heads/main\n", 1);
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".config/git")).unwrap();
        let mut with_home = plan(dir.path());
        with_home.env.push(("HOME".into(), home.path().display().to_string()));
        let sh = Path::new("/bin/sh");
        let first = snapshot(sh, &with_home).unwrap();
        write_old(&home.path().join(".config/git/ignore"), "*.log\n", 1);
        let ignored = snapshot(sh, &with_home).unwrap();
        assert_ne!(ignored, first, "the default global excludes file");

        write_old(&home.path().join(".gitconfig"), "[core]\n\texcludesFile = ~/more-ignores\n", 1);
        let configured = snapshot(sh, &with_home).unwrap();
        write_old(&home.path().join("more-ignores"), "*.tmp\n", 1);
        assert_ne!(snapshot(sh, &with_home).unwrap(), configured, "an excludesFile the config names");

        // Quotes and a comment are not part of the path.
        write_old(&home.path().join(".gitconfig"), "[core]\n\texcludesFile = \"~/more-ignores\" # ours\n", 1);
        let commented = snapshot(sh, &with_home).unwrap();
        write_old(&home.path().join("more-ignores"), "*.tmp\n*.bak\n", 1);
        assert_ne!(snapshot(sh, &with_home).unwrap(), commented, "the excludesFile behind quotes and a comment");
        assert_eq!(git_config_value(" \"a b\" ; c"), "a b");
        assert_eq!(git_config_value("x#y"), "x");

        write_old(&home.path().join(".gitconfig"), "[include]\n\tpath = other\n", 1);
        let including = snapshot(sh, &with_home).unwrap();
        write_old(&home.path().join("other"), "[core]\n\texcludesFile = ~/third\n", 1);
        let included = snapshot(sh, &with_home).unwrap();
        assert_ne!(included, including, "an included config");
        write_old(&home.path().join("third"), "*.x\n", 1);
        assert_ne!(snapshot(sh, &with_home).unwrap(), included, "an excludesFile an included config names");

        // Outside a Git checkout none of it matters.
        let plain = module();
        let mut outside = plan(plain.path());
        outside.env.push(("HOME".into(), home.path().display().to_string()));
        assert!(snapshot(sh, &outside).is_some());
    }

    #[test]
    fn local_replaces_are_told_from_module_ones() {
        assert!(has_local_replace("replace a => ./a\n"));
        assert!(has_local_replace("replace (\n\ta v1 => /abs/a\n)\n"));
        assert!(!has_local_replace("replace a => b v1.2.3\n"));
        assert!(!has_local_replace("// a => ./commented\n"));
        assert!(has_local_replace("replace a => \"./quoted\"\n"));
    }
}
