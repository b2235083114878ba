//! Bad values found before anything is built or sent: each is one `error:` line naming the
//! flag or variable and the value, a non-zero exit, nothing on stdout and nothing pushed.

use crate::build_errors::{assert_clear_error, assert_repo_empty};
use crate::util::*;

fn hello_build(repo: &str) -> KoCmd {
    ko(&["build", "."]).cwd(fixture("hello")).env("KO_DOCKER_REPO", repo)
}

/// Asserts the run failed before the build: no `go build` step was reached.
fn assert_nothing_built(run: &Run) {
    assert!(!run.stderr.contains("Building "), "nothing may be built: {run}");
}

#[test]
fn out_of_range_epochs_are_refused_before_the_build() {
    for (var, value) in [
        ("SOURCE_DATE_EPOCH", "253402300800"),
        ("SOURCE_DATE_EPOCH", "-99999999999"),
        ("KO_DATA_DATE_EPOCH", "253402300800"),
        ("KO_DATA_DATE_EPOCH", "-99999999999"),
    ] {
        let repo = unique_repo("epoch");
        let run = hello_build(&repo).env(var, value).run();
        assert_clear_error(&run, &[&format!("{var}=\"{value}\""), "0001", "9999"]);
        assert_nothing_built(&run);
        assert_repo_empty(&repo);
    }
    let run = hello_build(&unique_repo("epoch")).env("SOURCE_DATE_EPOCH", "yesterday").run();
    assert_clear_error(&run, &["SOURCE_DATE_EPOCH=\"yesterday\"", "seconds since 1970"]);
}

#[test]
fn bad_tags_are_refused_before_anything_is_pushed() {
    let long = "a".repeat(200);
    for (tags, shown) in [("v1,-bad", "\"-bad\""), ("bad tag!", "\"bad tag!\""), (long.as_str(), "200 characters")] {
        let repo = unique_repo("badtag");
        let run = hello_build(&repo).arg("-t").arg(tags).run();
        assert_clear_error(&run, &["--tags", shown]);
        assert_nothing_built(&run);
        assert_repo_empty(&repo);
        // --push=false must not print an invalid reference and succeed either.
        let run = hello_build(&repo).arg("-t").arg(tags).arg("--push=false").run();
        assert_clear_error(&run, &["--tags", shown]);
    }
}

#[test]
fn an_overlong_or_bad_repository_is_never_sent() {
    let long = format!("{}/{}", registry(), "a".repeat(5000));
    let run = hello_build(&long).run();
    assert_clear_error(&run, &["KO_DOCKER_REPO=", "5", "characters", "at most 255"]);
    assert!(run.stderr.lines().count() == 1 && run.stderr.len() < 400, "one short line: {run}");
    assert_repo_empty(&format!("{}/{}", registry(), "a".repeat(100)));

    let repo = unique_repo("cosign");
    let run = hello_build(&repo).env("COSIGN_REPOSITORY", "Bad Repo").run();
    assert_clear_error(&run, &["COSIGN_REPOSITORY=\"Bad Repo\""]);
    assert_repo_empty(&repo);

    // Fits alone, but not with the image name ko appends (`/hello-<md5>`): found before building.
    let repo = format!("{}/{}", registry(), unique_name(&"n".repeat(230 - registry().len())));
    let run = hello_build(&repo).run();
    assert_clear_error(&run, &["image name", "at most 255", "KO_DOCKER_REPO"]);
    assert_nothing_built(&run);
    assert_repo_empty(&repo);
}

#[test]
fn resolve_checks_image_names_before_building() {
    let repo = format!("{}/{}", registry(), unique_name(&"r".repeat(230 - registry().len())));
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pods.yaml");
    std::fs::write(&manifest, "image: ko://example.com/hello\n---\nimage: ko://example.com/hello/cmd/greeter\n")
        .unwrap();
    let run =
        ko(&["resolve", "-f", manifest.to_str().unwrap()]).cwd(fixture("hello")).env("KO_DOCKER_REPO", &repo).run();
    assert_clear_error(&run, &["image name", "at most 255"]);
    assert_nothing_built(&run);
    assert_repo_empty(&repo);
}

#[test]
fn a_bad_base_image_names_where_it_is_set() {
    let repo = unique_repo("badbase");
    let run = hello_build(&repo).env("KO_DEFAULTBASEIMAGE", "Not A/Base!").run();
    assert_clear_error(&run, &["KO_DEFAULTBASEIMAGE", "\"Not A/Base!\""]);
    assert_repo_empty(&repo);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".ko.yaml"), format!("defaultBaseImage: r.example/{}\n", "b".repeat(300))).unwrap();
    let run = hello_build(&repo).env("KO_CONFIG_PATH", dir.path()).run();
    assert_clear_error(&run, &["defaultBaseImage in", ".ko.yaml", "at most 255"]);
    assert_repo_empty(&repo);
}

#[test]
fn image_user_labels_and_annotations_are_checked() {
    let repo = unique_repo("meta");
    for (args, needles) in [
        (vec!["--image-user", "1000\n"], vec!["--image-user", "\"1000\\n\"", "control character"]),
        (vec!["--image-user", "a:b:c"], vec!["--image-user", "\"a:b:c\""]),
        (vec!["--image-label", "a\tb=c"], vec!["--image-label", "\"a\\tb=c\"", "control character"]),
        (vec!["--image-label", "=c"], vec!["--image-label", "\"=c\""]),
        (vec!["--image-annotation", "novalue"], vec!["--image-annotation", "\"novalue\""]),
    ] {
        let run = hello_build(&repo).args(&args).run();
        assert_clear_error(&run, &needles);
        assert_nothing_built(&run);
    }
    assert_repo_empty(&repo);
}

#[test]
fn a_platform_flag_that_names_no_platform_is_refused() {
    let repo = unique_repo("noplatform");
    let run = hello_build(&repo).arg("--platform=,").run();
    assert_clear_error(&run, &["--platform names no platform", "linux/amd64"]);
    assert_repo_empty(&repo);
    // An empty --platform (`--platform="$UNSET"`) is no flag at all, as in ko: the defaults
    // decide.
    let run = hello_build(&repo).arg("--platform=").run();
    run.assert_success();
}

#[test]
fn output_files_in_a_missing_directory_fail_before_the_build() {
    let repo = unique_repo("outdir");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    for flag in ["--image-refs", "--tarball"] {
        let target = missing.join("out");
        let run = hello_build(&repo).arg(flag).arg(&target).run();
        assert_clear_error(&run, &[flag, "missing", "does not exist"]);
        assert_nothing_built(&run);
        assert!(!missing.exists(), "{flag} must not create directories");
    }
    let run = hello_build(&repo).arg("--tarball").arg(dir.path()).run();
    assert_clear_error(&run, &["--tarball", "is a directory"]);
    assert_repo_empty(&repo);
}

#[test]
fn ko_yaml_type_errors_name_the_key_and_duplicate_ids_are_a_warning() {
    let repo = unique_repo("koyaml");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join(".ko.yaml");
    for (text, needles) in [
        (
            "builds:\n- id: app\n  main: .\n  flags: {tags: netgo}\n",
            vec![".ko.yaml", "builds[0].flags: expected a list of strings or a string, got a map"],
        ),
        ("image:\n  usr: \"1000\"\n", vec![".ko.yaml", "image.usr: unknown key; did you mean `user`?"]),
    ] {
        std::fs::write(&config, text).unwrap();
        let run = hello_build(&repo).env("KO_CONFIG_PATH", &config).run();
        assert_clear_error(&run, &needles);
        assert!(!run.stderr.contains("untagged enum"), "{run}");
    }
    assert_repo_empty(&repo);
    // ko names builds by id only in its log, so a repeated id builds, with a warning.
    std::fs::write(&config, "builds:\n- id: app\n  main: .\n- id: app\n  main: .\n").unwrap();
    let run = hello_build(&repo).env("KO_CONFIG_PATH", &config).run();
    run.assert_success();
    assert!(run.stderr.contains("builds[1].id \"app\" is also the id of builds[0]"), "{run}");
}

/// A config ko reads leniently builds as with ko: `builds:` as one map (a list of one, its
/// ldflags applied) and a top-level setting of the wrong type (unset, with a warning).
#[test]
fn ko_yaml_that_ko_reads_leniently_builds_as_with_ko() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join(".ko.yaml");
    let text = "defaultEnv:\n  CGO_ENABLED: \"1\"\nbuilds:\n  main: .\n  ldflags: -X main.version=one-map\n";
    std::fs::write(&config, text).unwrap();
    let run = hello_build(&unique_repo("lenient")).env("KO_CONFIG_PATH", &config).run();
    run.assert_success();
    let warned = "defaultEnv: expected a list of strings or a string, got a map; it is ignored, as ko ignores it";
    assert!(run.stderr.contains(warned), "{run}");
    let out = run_image(run.stdout.trim());
    assert!(out.stdout.contains("version=one-map"), "{out}");
}

#[test]
fn unknown_ko_yaml_keys_warn_with_the_nearest_key_and_still_build() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join(".ko.yaml");
    std::fs::write(&config, "defaultPlatform: linux/arm64\nbuilds:\n- id: hello\n  main: .\n  flgs: [-v]\n").unwrap();
    let run = ko(&["build", ".", "--push=false"]).cwd(fixture("hello")).env("KO_CONFIG_PATH", &config).run();
    run.assert_success();
    for warning in [
        "defaultPlatform is not a known key and is ignored; did you mean `defaultPlatforms`?",
        "builds[0].flgs is not a known key and is ignored; did you mean `flags`?",
    ] {
        let line = run.stderr.lines().find(|l| l.contains(warning)).unwrap_or_else(|| panic!("{warning}: {run}"));
        assert!(line.starts_with("warning: ") && line.contains(".ko.yaml"), "{run}");
    }
}

#[test]
fn a_malformed_docker_auth_config_is_called_a_variable() {
    let repo = unique_repo("authenv");
    let run = hello_build(&repo).env("DOCKER_AUTH_CONFIG", "{not json").run();
    assert_clear_error(&run, &["the environment variable DOCKER_AUTH_CONFIG is not valid", "fix or unset it"]);
    assert!(!run.stderr.contains("the file"), "{run}");
    assert_repo_empty(&repo);
}

#[test]
fn login_to_an_impossible_host_name_fails_at_once() {
    let run = ko(&["login", "http://a b/", "-u", "user", "--password-stdin"]).stdin("secret\n").run();
    assert_clear_error(&run, &["SERVER", "\"http://a b/\"", "not a registry name"]);
    assert_eq!(run.stderr.lines().count(), 1, "no attempt is made: {run}");
}

#[test]
fn an_sbom_dir_that_cannot_be_written_is_refused_before_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    for target in [file.clone(), file.join("below")] {
        let repo = unique_repo("sbomdir");
        let run = hello_build(&repo).arg("--sbom-dir").arg(&target).run();
        assert_clear_error(&run, &["--sbom-dir", &target.display().to_string(), "a directory you can write to"]);
        assert_nothing_built(&run);
        assert_repo_empty(&repo);
    }
}

#[test]
fn unknown_flags_exit_1_as_in_ko_and_help_exits_0() {
    for args in [&["build", "--bogus"][..], &["resolve", "config/"], &["version", "--bogus"], &["build", "-j", "many"]]
    {
        let run = ko(args).run();
        assert_eq!(run.code(), Some(1), "{args:?}: {run}");
        assert!(run.stdout.is_empty() && run.stderr.starts_with("error:"), "{args:?}: {run}");
    }
    let help = ko(&["build", "--help"]).run();
    assert_eq!(help.code(), Some(0), "{help}");
    assert!(help.stdout.contains("Usage:"), "{help}");
}

/// An image name that is no repository says what to change: an import path with capitals
/// under `--push=false -P` (a push lowercases it; ko does not without one), an empty name.
#[test]
fn an_image_name_that_is_no_repository_says_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("go.mod"), "module github.com/Acme/m\n\ngo 1.22\n").unwrap();
    std::fs::create_dir_all(dir.path().join("cmd/a")).unwrap();
    std::fs::write(dir.path().join("cmd/a/main.go"), "package main\n\nfunc main() {}\n").unwrap();
    let run = ko(&["build", "-P", "--push=false", "./cmd/a"])
        .cwd(dir.path())
        .env("KO_DOCKER_REPO", unique_repo("capitals"))
        .run();
    assert_clear_error(&run, &["github.com/Acme/m/cmd/a", "\"Acme\" must be lowercase", "push, or use --bare"]);
    assert_nothing_built(&run);
    let run = ko(&["build", "--bare", "--push=false", "./cmd/a"]).cwd(dir.path()).env_remove("KO_DOCKER_REPO").run();
    assert_clear_error(&run, &["it is empty", "set KO_DOCKER_REPO"]);
    assert_nothing_built(&run);
}

/// A `KOCACHE` that cannot be a directory says so, and how to choose another.
#[test]
fn a_cache_that_cannot_be_made_names_kocache() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let run = hello_build(&unique_repo("badcache")).env("KOCACHE", &file).run();
    assert_clear_error(&run, &["a-file", "Not a directory", "point KOCACHE at a directory"]);
    // The file is the user's, not a damaged cache entry: nothing tells them to remove it.
    assert!(!run.stderr.contains("remove it"), "{run}");
    assert_nothing_built(&run);
}

/// `--sbom-dir` names files after the binary: two packages whose binaries share a name would
/// overwrite each other's SBOMs (ko loses one silently), so the run is refused before it builds.
#[test]
fn sbom_dir_refuses_two_binaries_of_one_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("go.mod"), "module example.com/m\n\ngo 1.22\n").unwrap();
    for pkg in ["svc1/server", "svc2/server"] {
        std::fs::create_dir_all(dir.path().join(pkg)).unwrap();
        std::fs::write(dir.path().join(pkg).join("main.go"), "package main\n\nfunc main() {}\n").unwrap();
    }
    let sboms = dir.path().join("sboms");
    let run = ko(&["build", "--push=false", "./svc1/server", "./svc2/server", "--sbom-dir"])
        .arg(&sboms)
        .cwd(dir.path())
        .env("KO_DOCKER_REPO", unique_repo("sbomnames"))
        .run();
    assert_clear_error(
        &run,
        &["--sbom-dir", "example.com/m/svc1/server and example.com/m/svc2/server", "named server"],
    );
    assert_nothing_built(&run);
    // The directory is made (and checked) up front; nothing is written into it.
    assert_eq!(std::fs::read_dir(&sboms).unwrap().count(), 0, "{run}");
}
