//! What kodata may hold: a directory symlink cycle and special files (a FIFO) are refused with
//! one line naming them, before anything is pushed and without temporary files left in the
//! cache; a `kodata` that is a regular file is a warning and the build goes on; names that
//! are not UTF-8 reach the container unchanged.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

/// A Go module of its own (outside any git worktree) with a `kodata/` directory.
fn module(dir: &Path) -> PathBuf {
    let module = dir.join("app");
    std::fs::create_dir_all(module.join("kodata")).unwrap();
    std::fs::write(module.join("go.mod"), "module example.com/kodata\n\ngo 1.22\n").unwrap();
    std::fs::write(module.join("main.go"), "package main\n\nfunc main() { println(\"kodata\") }\n").unwrap();
    std::fs::write(module.join("kodata/file.txt"), "data\n").unwrap();
    module
}

/// Asserts that nothing was pushed to `repo` (the builds use `--bare`, so `repo` is the image's
/// repository): the registry does not know it.
fn assert_repo_empty(repo: &str) {
    let (host, path) = repo.split_once('/').unwrap();
    let tags = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://{host}/v2/{path}/tags/list")])
        .output()
        .expect("run curl");
    assert!(tags.status.success(), "curl failed: {tags:?}");
    assert_eq!(String::from_utf8_lossy(&tags.stdout), "404", "{repo} was pushed to");
}

/// The entries of the cache's `tmp/`: none once a run is over.
fn temp_entries(cache: &Path) -> Vec<String> {
    match std::fs::read_dir(cache.join("tmp")) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(e) => panic!("the cache has no tmp/ ({e})"),
    }
}

/// Builds `module` into a fresh repository with a cache in `dir`.
fn build(module: &Path, dir: &Path, repo: &str) -> Run {
    ko(&["build", "--bare", "."]).cwd(module).env("KO_DOCKER_REPO", repo).env("KOCACHE", dir.join("cache")).run()
}

/// A failed build whose one error line (the last on stderr) contains every needle, exit 1.
fn assert_refused(run: &Run, needles: &[&str]) {
    assert_eq!(run.code(), Some(1), "{run}");
    assert!(run.stdout.is_empty(), "nothing may reach stdout: {run}");
    let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {run}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{run}");
    for needle in needles {
        assert!(last.contains(needle), "expected {needle:?} in the error line: {run}");
    }
}

#[test]
fn a_directory_symlink_cycle_is_refused_naming_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let module = module(dir.path());
    std::os::unix::fs::symlink(".", module.join("kodata/self")).unwrap();
    let repo = unique_repo("kodata-cycle");
    let run = build(&module, dir.path(), &repo);
    assert_refused(&run, &["kodata/self", "cycle"]);
    assert_repo_empty(&repo);
    assert_eq!(temp_entries(&dir.path().join("cache")), Vec::<String>::new(), "{run}");
}

#[test]
fn a_fifo_in_kodata_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let module = module(dir.path());
    let status = Command::new(tool("mkfifo")).arg(module.join("kodata/pipe")).status().unwrap();
    assert!(status.success());
    let repo = unique_repo("kodata-fifo");
    let run = build(&module, dir.path(), &repo);
    assert_refused(&run, &["kodata/pipe", "FIFO"]);
    assert_repo_empty(&repo);
    assert_eq!(temp_entries(&dir.path().join("cache")), Vec::<String>::new(), "{run}");
}

#[test]
fn a_kodata_that_is_a_file_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let module = module(dir.path());
    std::fs::remove_dir_all(module.join("kodata")).unwrap();
    std::fs::write(module.join("kodata"), "not a directory\n").unwrap();
    let repo = unique_repo("kodata-file");
    let run = build(&module, dir.path(), &repo);
    run.assert_success();
    let warning =
        run.stderr.lines().find(|l| l.starts_with("warning: ")).unwrap_or_else(|| panic!("no warning: {run}"));
    assert!(warning.contains("kodata") && warning.contains("not a directory"), "{run}");
    assert!(run.stdout.trim().starts_with(&repo), "{run}");
    assert_eq!(temp_entries(&dir.path().join("cache")), Vec::<String>::new(), "{run}");
}

/// File names that are not UTF-8 reach the container as they are on disk: two that differ
/// only in such bytes stay two files, and `docker load` takes the image (checked with
/// `docker export` and GNU tar, which prints such bytes as octal escapes).
#[test]
fn names_that_are_not_utf8_reach_the_container_unchanged() {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = tempfile::tempdir().unwrap();
    let module = module(dir.path());
    for name in [&b"n\xff\xfe.txt"[..], b"n\xfe\xff.txt"] {
        std::fs::write(module.join("kodata").join(std::ffi::OsStr::from_bytes(name)), "x\n").unwrap();
    }
    let repo = format!("ko.local/{}", unique_name("kodata-bytes"));
    let run = ko(&["build", "--bare", "--sbom=none", "."])
        .cwd(&module)
        .env("KO_DOCKER_REPO", &repo)
        .env("DOCKER_HOST", docker_host())
        .run();
    run.assert_success();
    let image = run.stdout.trim().to_string();
    let created = docker(&["create", &image]);
    created.assert_success();
    let container = created.stdout.trim().to_string();
    let export = dir.path().join("fs.tar");
    docker(&["export", "-o", &export.display().to_string(), &container]).assert_success();
    docker(&["rm", &container]).assert_success();
    let listing = Command::new("tar").arg("-tf").arg(&export).output().expect("run tar");
    assert!(listing.status.success(), "{listing:?}");
    let names = String::from_utf8_lossy(&listing.stdout);
    for expected in ["var/run/ko/n\\377\\376.txt", "var/run/ko/n\\376\\377.txt", "var/run/ko/file.txt"] {
        assert!(names.lines().any(|l| l == expected), "{expected} is not in the container:\n{names}");
    }
}

/// A `kodata` that is itself a link is held to the same root as the links inside it: one to
/// a directory outside the module (a home directory's secrets) is refused naming the link,
/// with nothing pushed; one to a directory inside `KO_DATA_PATH_ALLOWED_ROOT` is followed.
#[test]
fn a_kodata_link_leading_out_of_the_allowed_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let module = module(dir.path());
    let secret = dir.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::write(secret.join("id_rsa"), "TOPSECRET\n").unwrap();
    std::fs::remove_dir_all(module.join("kodata")).unwrap();
    std::os::unix::fs::symlink(&secret, module.join("kodata")).unwrap();
    let repo = unique_repo("kodata-link-out");
    let run = build(&module, dir.path(), &repo);
    assert_refused(&run, &["kodata", "outside the allowed root", "KO_DATA_PATH_ALLOWED_ROOT"]);
    assert_repo_empty(&repo);

    // Allowed where the user says so.
    let repo = unique_repo("kodata-link-allowed");
    let run = ko(&["build", "--bare", ".", "--push=false", "--oci-layout-path"])
        .arg(dir.path().join("layout"))
        .cwd(&module)
        .env("KO_DOCKER_REPO", &repo)
        .env("KOCACHE", dir.path().join("cache"))
        .env("KO_DATA_PATH_ALLOWED_ROOT", dir.path())
        .run();
    run.assert_success();
    // The file is in one of the layout's layers.
    let script = "for b in \"$1\"/blobs/sha256/*; do tar xzOf \"$b\" 2>/dev/null; done | grep -c TOPSECRET";
    let found = Command::new("sh").args(["-c", script, "sh"]).arg(dir.path().join("layout")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&found.stdout).trim(), "1", "{run}");
}
