//! `--tarball` and `--image-refs` write where the path leads: through symlinks (the link stays
//! a link), in place for a FIFO or /dev/stdout, atomically for regular files (0644 less the
//! umask), and `--tarball -` to stdout with the references on stderr.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;

use crate::util::*;

/// `kubectl ko build . --push=false` of the hello fixture, named under a fresh repository.
fn unpushed_build(repo: &str) -> KoCmd {
    ko(&["build", ".", "--push=false", "-B"]).cwd(fixture("hello")).env("KO_DOCKER_REPO", repo)
}

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status().expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

#[test]
fn symlinks_are_written_through_and_stay_links() {
    let repo = unique_repo("outlink");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    let (refs_target, tar_target) = (dir.path().join("real/refs.txt"), dir.path().join("real/image.tar"));
    std::fs::write(&refs_target, "old\n").unwrap();
    let (refs_link, tar_link) = (dir.path().join("refs-link"), dir.path().join("tar-link"));
    std::os::unix::fs::symlink("real/refs.txt", &refs_link).unwrap();
    // A dangling link: the tarball is created at its target.
    std::os::unix::fs::symlink(&tar_target, &tar_link).unwrap();

    let run = unpushed_build(&repo).arg("--image-refs").arg(&refs_link).arg("--tarball").arg(&tar_link).run();
    run.assert_success();
    let reference = run.stdout_lines()[0].to_string();
    for link in [&refs_link, &tar_link] {
        assert!(std::fs::symlink_metadata(link).unwrap().file_type().is_symlink(), "{} stays a link", link.display());
    }
    assert_eq!(std::fs::read_to_string(&refs_target).unwrap(), format!("{reference}\n"));
    let archive = skopeo(&["inspect", &format!("docker-archive:{}", tar_target.display())]);
    assert!(archive.success(), "{archive}");
}

#[test]
fn a_fifo_reader_gets_the_references() {
    let repo = unique_repo("outfifo");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("refs.fifo");
    mkfifo(&fifo);
    // Opened read-write, a FIFO never blocks. Holding this writer end lets the reader open at
    // once and see end-of-file only after it is dropped, whatever the build does: a build
    // that never writes (or replaces the FIFO) shows as a failure, not a hang.
    let holder = std::fs::OpenOptions::new().read(true).write(true).open(&fifo).unwrap();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            std::fs::File::open(&fifo).unwrap().read_to_string(&mut text).unwrap();
            text
        })
    };
    let run = unpushed_build(&repo).arg("--image-refs").arg(&fifo).run();
    drop(holder);
    let received = reader.join().unwrap();
    run.assert_success();
    assert_eq!(received, format!("{}\n", run.stdout_lines()[0]));
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO is not replaced");
}

#[test]
fn image_refs_to_dev_stdout_is_written_in_place() {
    let repo = unique_repo("outstdout");
    let run = unpushed_build(&repo).arg("--image-refs").arg("/dev/stdout").run();
    run.assert_success();
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 2, "the reference, and the refs file's copy of it: {run}");
    assert_eq!(lines[0], lines[1]);
}

#[test]
fn new_files_are_created_0644_under_umask_022() {
    let repo = unique_repo("outmode");
    let dir = tempfile::tempdir().unwrap();
    let (refs, tarball) = (dir.path().join("refs.txt"), dir.path().join("image.tar"));
    let script = "umask 022 && exec \"$0\" \"$@\"";
    let run = KoCmd::program("sh")
        .args(["-c", script])
        .arg(bin("kubectl-ko-build"))
        .args([".", "--push=false", "-B", "--image-refs"])
        .arg(&refs)
        .arg("--tarball")
        .arg(&tarball)
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", &repo)
        .run();
    run.assert_success();
    for file in [&refs, &tarball] {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{}: {mode:o}", file.display());
    }
    // No temporary file is left beside them.
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn tarball_dash_writes_the_archive_to_stdout_and_references_to_stderr() {
    let repo = unique_repo("outdash");
    let dir = tempfile::tempdir().unwrap();
    let (archive, refs) = (dir.path().join("stdout.tar"), dir.path().join("refs.txt"));
    let cmd = unpushed_build(&repo).args(["-t", "dash", "--tarball", "-", "--image-refs"]).arg(&refs);
    let mut command = cmd.command();
    let status = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&archive).unwrap())
        .stderr(Stdio::piped())
        .output()
        .expect("run kubectl-ko-build");
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(status.status.success(), "{stderr}");
    let reference = std::fs::read_to_string(&refs).unwrap().trim().to_string();
    assert!(reference.starts_with(&format!("{repo}/hello:dash@sha256:")), "{reference}");
    assert!(stderr.lines().any(|l| l == reference), "the reference goes to stderr: {stderr}");

    let inspected = skopeo(&["inspect", &format!("docker-archive:{}", archive.display())]);
    assert!(inspected.success(), "{inspected}");
    let loaded = docker(&["load", "-i", archive.to_str().unwrap()]);
    loaded.assert_success();
    assert!(loaded.stdout.contains(&format!("Loaded image: {repo}/hello:dash")), "{loaded}");
}

#[test]
fn tarball_dash_is_refused_where_stdout_carries_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pod.yaml");
    std::fs::write(&manifest, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: ko://example.com/hello\n").unwrap();
    let run = ko(&["resolve", "-f", manifest.to_str().unwrap(), "--push=false", "--tarball", "-"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", unique_repo("outyaml"))
        .run();
    run.assert_failure();
    assert!(run.stdout.is_empty(), "{run}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: --tarball -: only `kubectl ko build`"), "{run}");
}

#[test]
fn a_device_is_written_in_place_never_replaced() {
    let repo = unique_repo("outdevice");
    let run = unpushed_build(&repo).args(["--tarball", "/dev/full"]).run();
    run.assert_failure();
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: /dev/full: ") && last.contains("No space left on device"), "{run}");
    assert!(std::fs::metadata("/dev/full").unwrap().file_type().is_char_device(), "/dev/full is still a device");

    let run = unpushed_build(&repo).args(["--tarball", "/dev/null", "--image-refs", "/dev/null"]).run();
    run.assert_success();
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
}
