//! `--tarball` and `--image-refs` write where the path leads: through symlinks (the link stays
//! a link), in place for a FIFO or /dev/stdout, atomically for regular files (0644 less the
//! umask; in place for a bind-mounted file), and `--tarball -` to stdout with the references
//! on stderr.

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

/// A file bind-mounted into a CI container cannot be renamed over: it is written in place, as
/// ko writes it. The mount is made in a private mount namespace.
#[test]
fn a_bind_mounted_file_is_written_in_place() {
    let repo = unique_repo("outbind");
    let dir = tempfile::tempdir().unwrap();
    let (host_tar, host_refs) = (dir.path().join("host.tar"), dir.path().join("host-refs.txt"));
    std::fs::create_dir(dir.path().join("mnt")).unwrap();
    let (tar, refs) = (dir.path().join("mnt/image.tar"), dir.path().join("mnt/refs.txt"));
    for file in [&host_tar, &host_refs, &tar, &refs] {
        std::fs::write(file, "old\n").unwrap();
    }
    let mut args = vec!["-m".to_string(), "--propagation".into(), "private".into(), "sh".into(), "-c".into()];
    args.push(r#"mount --bind "$1" "$2" && mount --bind "$3" "$4" && shift 4 && exec "$@""#.into());
    args.push("sh".into());
    for path in [&host_tar, &tar, &host_refs, &refs] {
        args.push(path.display().to_string());
    }
    args.push(bin("kubectl-ko-build").display().to_string());
    args.extend([".", "--push=false", "-B", "--tarball"].map(String::from));
    args.push(tar.display().to_string());
    args.extend(["--image-refs".to_string(), refs.display().to_string()]);
    let run = KoCmd::program("unshare").args(&args).cwd(fixture("hello")).env("KO_DOCKER_REPO", &repo).run();
    run.assert_success();
    let reference = run.stdout_lines()[0].to_string();
    assert_eq!(std::fs::read_to_string(&host_refs).unwrap(), format!("{reference}\n"));
    let archive = skopeo(&["inspect", &format!("docker-archive:{}", host_tar.display())]);
    assert!(archive.success(), "{archive}");
}

/// A directory that takes no new file is found before anything is built, naming the flag.
#[test]
fn an_output_directory_that_takes_no_file_is_refused_first() {
    let run = unpushed_build(&unique_repo("outsys")).args(["--tarball", "/sys/image.tar"]).run();
    crate::build_errors::assert_clear_error(&run, &["--tarball", "cannot make a file in /sys"]);
    assert!(!run.stderr.contains("Building"), "{run}");
    // A descriptor that is not open, a file /proc cannot hold: found before the build too.
    for (flag, path) in [("--image-refs", "/dev/fd/97"), ("--tarball", "/proc/image.tar")] {
        let run = unpushed_build(&unique_repo("outproc")).args([flag, path]).run();
        crate::build_errors::assert_clear_error(&run, &[flag, path, "does not exist"]);
        assert!(!run.stderr.contains("Building"), "{run}");
    }
}

/// `--tarball "$TARBALL"` with the variable empty is no flag, as in ko, for every path flag.
#[test]
fn an_empty_output_path_is_no_flag() {
    let run = unpushed_build(&unique_repo("outempty"))
        .args(["--tarball=", "--oci-layout-path=", "--image-refs=", "--sbom-dir="])
        .run();
    run.assert_success();
    assert_eq!(run.stdout_lines().len(), 1, "{run}");
}

/// A build that fails leaves no OCI layout without an index.json behind (ko leaves nothing).
#[test]
fn a_failed_build_leaves_no_half_made_layout() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let run = ko(&["build", "./nope", "--push=false", "--oci-layout-path"])
        .arg(&layout)
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", unique_repo("outlayout"))
        .run();
    run.assert_failure();
    assert!(!layout.exists(), "{} was made: {run}", layout.display());
}

/// An `--oci-layout-path` whose `index.json` does not read is refused before the build, and
/// nothing is added to the directory.
#[test]
fn a_layout_with_an_unreadable_index_is_refused_first() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.json"), "not json").unwrap();
    let run = unpushed_build(&unique_repo("outbadindex")).arg("--oci-layout-path").arg(dir.path()).run();
    crate::build_errors::assert_clear_error(&run, &["index.json: unreadable", "--oci-layout-path"]);
    assert!(!run.stderr.contains("Building"), "{run}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["index.json"], "{run}");
}

/// `--tag-only` with no tag (`-t ""`) needs something to print unless a tarball is written,
/// whose reference then keeps its digest, as in ko.
#[test]
fn tag_only_without_a_tag_is_refused_unless_a_tarball_is_written() {
    let repo = unique_repo("tagonly-none");
    let run = unpushed_build(&repo).args(["--tag-only", "--tags="]).run();
    crate::build_errors::assert_clear_error(&run, &["--tag-only needs a tag"]);
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("image.tar");
    let run = unpushed_build(&repo).args(["--tag-only", "--tags=", "--tarball"]).arg(&tarball).run();
    run.assert_success();
    let reference = run.stdout.trim();
    assert!(reference.starts_with(&format!("{repo}/hello")) && reference.contains("@sha256:"), "{run}");
    assert!(skopeo(&["inspect", &format!("docker-archive:{}", tarball.display())]).success());
}
