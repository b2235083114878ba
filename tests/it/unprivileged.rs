//! kubectl ko run by a user with no home it can write, as in a pod with `runAsUser` or under
//! `docker run --user`: the process runs as uid/gid 65534 (setpriv), with a `HOME` of root's
//! and no `XDG_CACHE_HOME`. ko keeps no cache by default, so it
//! builds there; so must we.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::build_errors::assert_clear_error;
use crate::util::*;

const NOBODY: &str = "65534";

/// A directory everyone may write to (a scratch place for the unprivileged user).
fn open_dir(path: &Path) {
    fs::create_dir_all(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o777)).unwrap();
}

/// `kubectl-ko-build args...` as the unprivileged user, in a copy of the hello fixture, with
/// Go's caches and `TMPDIR` in `scratch` (Go needs a build cache it can write; ko does not
/// provide one either).
fn build_as_nobody(scratch: &Path, args: &[&str]) -> KoCmd {
    fs::set_permissions(scratch, fs::Permissions::from_mode(0o755)).unwrap();
    let bin_dir = scratch.join("bin");
    fs::create_dir_all(&bin_dir).unwrap();
    let exe = bin_dir.join("kubectl-ko-build");
    fs::copy(bin("kubectl-ko-build"), &exe).unwrap();
    // The dispatcher beside it serves Go's cache program (`kubectl-ko gocache`).
    fs::copy(bin("kubectl-ko"), bin_dir.join("kubectl-ko")).unwrap();
    let module = scratch.join("hello");
    let mut copy = std::process::Command::new(tool("cp"));
    copy.arg("-a").arg(fixture("hello")).arg(&module);
    capture(copy, DEFAULT_TIMEOUT).assert_success();
    for dir in ["go", "tmp"] {
        open_dir(&scratch.join(dir));
    }
    let cmd = KoCmd::program(tool("setpriv"))
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "--"])
        .arg(&exe)
        .args(args)
        .cwd(&module)
        .env("GOCACHE", scratch.join("go/cache"))
        .env("GOMODCACHE", scratch.join("go/mod"))
        .env("GOPATH", scratch.join("go"))
        .env("GOFLAGS", "-modcacherw")
        .env("TMPDIR", scratch.join("tmp"))
        // The copy is no git checkout: allow kodata's symlink into the fixture's assets/.
        .env("KO_DATA_PATH_ALLOWED_ROOT", &module);
    // A home of root's, mode 0755: the user may read it but make nothing in it.
    let home = scratch.join("home");
    fs::create_dir_all(&home).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o755)).unwrap();
    cmd.env("HOME", &home).env_remove("XDG_CACHE_HOME")
}

/// With nowhere to keep a cache, the build caches in a temporary directory, says so once,
/// pushes an image that runs, and leaves nothing behind in `TMPDIR`.
#[test]
fn a_user_without_a_writable_home_builds_with_a_cache_for_the_run() {
    let scratch = tempfile::tempdir().unwrap();
    let repo = unique_repo("nobody");
    let run = build_as_nobody(scratch.path(), &["--bare", "."]).env("KO_DOCKER_REPO", &repo).run();
    run.assert_success();
    let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.contains("temporary directory")).collect();
    assert_eq!(warnings.len(), 1, "{run}");
    assert!(warnings[0].contains("set KOCACHE"), "{run}");
    let reference = run.stdout.trim();
    assert!(reference.starts_with(&format!("{repo}@sha256:")), "{run}");
    let image = run_image(reference);
    assert_eq!(image.value("kodata"), Some("hello from kodata"), "{image}");
    let left: Vec<_> = fs::read_dir(scratch.path().join("tmp")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "the run's cache must be removed: {left:?}");
}

/// Without `KO_DOCKER_REPO` the image goes to the cache's image store, which must outlive the
/// run: that build is refused, naming both ways out.
#[test]
fn a_user_without_a_writable_home_and_no_repository_is_told_what_to_set() {
    let scratch = tempfile::tempdir().unwrap();
    let run = build_as_nobody(scratch.path(), &["."]).env_remove("KO_DOCKER_REPO").run();
    assert_clear_error(&run, &["Permission denied", "KO_DOCKER_REPO", "KOCACHE"]);
    let left: Vec<_> = fs::read_dir(scratch.path().join("tmp")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "the run's cache must be removed: {left:?}");
}

/// With the shared Go build cache on (`KO_GOCACHE_REPO`), Go's cache program is told the
/// run's cache too: the build works, and the cache's shards reach the registry.
#[test]
fn a_user_without_a_writable_home_shares_the_go_build_cache() {
    let scratch = tempfile::tempdir().unwrap();
    let repo = unique_repo("nobody");
    let cache_repo = unique_repo("nobody-gocache");
    let run = build_as_nobody(scratch.path(), &["--bare", "."])
        .env("KO_DOCKER_REPO", &repo)
        .env("KO_GOCACHE_REPO", &cache_repo)
        .run();
    run.assert_success();
    assert!(!run.stderr.contains("shared Go build cache"), "the shared cache stays on: {run}");
    let tags = registry_tags(&cache_repo);
    assert!(tags.iter().any(|t| t.starts_with("shard-")), "no shards in {cache_repo}: {tags:?}\n{run}");
    let left: Vec<_> = fs::read_dir(scratch.path().join("tmp")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "the run's cache must be removed: {left:?}");
}
