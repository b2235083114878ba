//! Bad input to `kubectl ko build`: one clear error line naming the input, a non-zero exit,
//! nothing on stdout and nothing pushed.

use crate::util::*;

/// Asserts a failed run whose last stderr line is the error and contains every `needle`.
pub fn assert_clear_error(run: &Run, needles: &[&str]) {
    run.assert_failure();
    assert!(run.stdout.is_empty(), "nothing may reach stdout: {run}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{run}");
    for needle in needles {
        assert!(last.contains(needle), "expected {needle:?} in the error line: {run}");
    }
}

pub fn assert_repo_empty(repo: &str) {
    let name = repo.split_once('/').unwrap().1;
    let repositories = catalog_listing_something();
    assert!(!repositories.iter().any(|r| r.starts_with(name)), "{repo} was pushed to");
}

/// The catalog, once it lists at least one repository: a repository missing from an empty
/// catalog would prove nothing (a registry that lists nothing would pass every check). When
/// this test runs before any other has pushed, it pushes the hello fixture to a repository of
/// its own first.
fn catalog_listing_something() -> Vec<String> {
    let repositories = catalog();
    if !repositories.is_empty() {
        return repositories;
    }
    let sentinel = unique_repo("catalog-sentinel");
    ko(&["build", ".", "--sbom=none"]).cwd(fixture("hello")).env("KO_DOCKER_REPO", &sentinel).run().assert_success();
    let repositories = catalog();
    assert!(!repositories.is_empty(), "the test registry's catalog is empty after a push to {sentinel}");
    repositories
}

/// Every repository of the test registry, following the catalog's pages (the registry
/// answers at most 1000 names a request and refuses larger pages).
pub fn catalog() -> Vec<String> {
    let mut repositories = Vec::new();
    let mut path = "/v2/_catalog?n=1000".to_string();
    loop {
        let out = std::process::Command::new("curl")
            .args(["-fsS", "-D", "-", &format!("http://{}{path}", registry())])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "reading the catalog failed: {}", String::from_utf8_lossy(&out.stderr));
        let (headers, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        let page: serde_json::Value = serde_json::from_str(body).expect("a catalog page is JSON");
        let names = page["repositories"].as_array().cloned().unwrap_or_default();
        repositories.extend(names.iter().filter_map(|n| n.as_str().map(str::to_string)));
        let next = headers
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("link:"))
            .and_then(|l| l.split_once('<'))
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(link, _)| link.to_string());
        match next {
            Some(link) => path = link,
            None => return repositories,
        }
    }
}

#[test]
fn a_package_that_is_not_main_is_refused() {
    let repo = unique_repo("notmain");
    let run = ko(&["build", "./lib"]).cwd(fixture("hello")).env("KO_DOCKER_REPO", &repo).run();
    assert_clear_error(&run, &["./lib", "package lib", "package main"]);
    assert_repo_empty(&repo);
}

/// `go build main.go` works, but a file is no package to name an image after: refused before
/// Go builds, with the directory to name instead.
#[test]
fn a_go_file_is_refused_with_its_directory() {
    let repo = unique_repo("gofile");
    for (arg, dir) in [("./main.go", "(.)"), ("main.go", "(.)"), ("ko://./main.go", "(.)")] {
        let run = ko(&["build", arg]).cwd(fixture("hello")).env("KO_DOCKER_REPO", &repo).run();
        assert_clear_error(&run, &[arg, "names Go files, not a package", dir]);
    }
    assert_repo_empty(&repo);
}

#[test]
fn a_path_that_does_not_exist_is_refused() {
    let run = ko(&["build", "./nope"]).cwd(fixture("hello")).env("KO_DOCKER_REPO", unique_repo("x")).run();
    assert_clear_error(&run, &["./nope"]);
}

#[test]
fn one_bad_path_among_good_ones_publishes_nothing() {
    let repo = unique_repo("allornothing");
    let run = ko(&["build", ".", "./lib"]).cwd(fixture("hello")).env("KO_DOCKER_REPO", &repo).run();
    assert_clear_error(&run, &["./lib"]);
    assert_repo_empty(&repo);
}

#[test]
fn an_unparsable_ko_docker_repo_is_refused() {
    let run = ko(&["build", "."]).cwd(fixture("hello")).env("KO_DOCKER_REPO", "Not A/Repo!").run();
    assert_clear_error(&run, &["KO_DOCKER_REPO", "Not A/Repo!"]);
    let run = ko(&["build", "."]).cwd(fixture("hello")).env("KO_DOCKER_REPO", "127.0.0.1:99999/x").run();
    assert_clear_error(&run, &["KO_DOCKER_REPO", "port 99999 is out of range"]);
    assert!(!run.stderr.contains("Building"), "{run}");
}

#[test]
fn an_unreachable_registry_is_named() {
    let run = ko(&["build", "."]).cwd(fixture("hello")).env("KO_DOCKER_REPO", "127.0.0.1:9/nothing-here").run();
    assert_clear_error(&run, &["127.0.0.1:9", "attempts"]);
}

#[test]
fn toolexec_is_refused_wherever_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("toolexec.ko.yaml");
    std::fs::write(&config, "defaultFlags: [-toolexec=/bin/true]\n").unwrap();
    let run = ko(&["build", "."])
        .cwd(fixture("hello"))
        .env("KO_CONFIG_PATH", &config)
        .env("KO_DOCKER_REPO", unique_repo("t"))
        .run();
    assert_clear_error(&run, &["-toolexec=/bin/true", "toolexec.ko.yaml"]);

    let run = ko(&["build", "."]).cwd(fixture("hello")).env("GOFLAGS", "-toolexec=/bin/true").run();
    assert_clear_error(&run, &["GOFLAGS"]);

    let run = ko(&["build", ".", "--ldflags=-s -toolexec x"]).cwd(fixture("hello")).run();
    assert_clear_error(&run, &["-toolexec", "--ldflags"]);

    std::fs::write(&config, "defaultEnv: [GOFLAGS=--toolexec]\n").unwrap();
    let run = ko(&["build", "."]).cwd(fixture("hello")).env("KO_CONFIG_PATH", &config).run();
    assert_clear_error(&run, &["--toolexec"]);
}

#[test]
fn an_unknown_platform_is_refused() {
    let run = ko(&["build", ".", "--platform=linux/amd46"]).cwd(fixture("hello")).run();
    assert_clear_error(&run, &["linux/amd46"]);
    let run = ko(&["build", ".", "--platform=linux/arm64"]).cwd(fixture("hello")).env("GOOS", "linux").run();
    assert_clear_error(&run, &["--platform", "GOOS=linux"]);
}

/// GOOS, GOARCH, GOARM or GOAMD64 set apart from the platform would put a binary for another
/// platform into an image labelled with this one (ko does): refused, naming where it is set;
/// the same values as the platform's are no conflict.
#[test]
fn a_platform_variable_that_contradicts_the_platform_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join(".ko.yaml");
    let repo = unique_repo("platformenv");
    let build = |args: &[&str]| {
        let mut all = vec!["build", "."];
        all.extend(args);
        ko(&all).cwd(fixture("hello")).env("KO_CONFIG_PATH", &config).env("KO_DOCKER_REPO", &repo)
    };
    std::fs::write(&config, "defaultEnv: [GOARCH=arm64]\n").unwrap();
    let run = build(&["--platform=linux/amd64"]).run();
    assert_clear_error(&run, &["GOARCH=arm64 (defaultEnv in ", ".ko.yaml)", "linux/amd64"]);
    std::fs::write(&config, "builds:\n- id: hello\n  main: .\n  env: [GOOS=darwin]\n").unwrap();
    let run = build(&["--platform=linux/amd64"]).run();
    assert_clear_error(&run, &["GOOS=darwin (env of build hello in "]);
    std::fs::write(&config, "defaultEnv: [GOOS=linux, GOARCH=amd64]\n").unwrap();
    let run = build(&["--platform=linux/amd64/v3"]).env("GOAMD64", "v1").run();
    assert_clear_error(&run, &["GOAMD64=v1 (in the environment)", "linux/amd64/v3"]);
    assert_repo_empty(&repo);
    build(&["--platform=linux/amd64"]).env("GOAMD64", "v2").run().assert_success();
}

#[test]
fn a_broken_config_file_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join(".ko.yaml");
    std::fs::write(&config, "defaultBaseImage: ok\nbuilds:\n  - id: [unclosed\n").unwrap();
    let run = ko(&["build", "."]).cwd(fixture("hello")).env("KO_CONFIG_PATH", dir.path()).run();
    assert_clear_error(&run, &[".ko.yaml", "3"]);
    let run = ko(&["build", "."]).cwd(fixture("hello")).env("KO_CONFIG_PATH", dir.path().join("missing.yaml")).run();
    assert_clear_error(&run, &["KO_CONFIG_PATH", "missing.yaml"]);
}

#[test]
fn a_template_naming_a_missing_variable_is_refused() {
    let run = ko(&["build", ".", "--ldflags=-X main.version={{.Env.KO_TEST_NOT_SET}}"]).cwd(fixture("hello")).run();
    assert_clear_error(&run, &["KO_TEST_NOT_SET", "--ldflags"]);
}

#[test]
fn a_kodata_symlink_leaving_the_allowed_root_is_refused() {
    let run = ko(&["build", "."]).cwd(fixture("badsymlink")).run();
    assert_clear_error(&run, &["kodata symlink", "escape.txt", "outside the allowed root"]);
}

#[test]
fn a_registry_that_refuses_the_push_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let registry = LocalRegistry::start(dir.path(), &["--readonly"]);
    let run = ko(&["build", "."]).cwd(fixture("hello")).env("KO_DOCKER_REPO", format!("{}/ro", registry.host)).run();
    registry.stop();
    assert_clear_error(&run, &[&registry.host, "ro/hello-"]);
}

/// An artifact named as the base (here the SBOM pushed beside an image) is no image to build
/// on: refused, and nothing is pushed (ko builds on it and pushes an image nothing runs).
#[test]
fn an_artifact_named_as_the_base_is_refused() {
    let first = ko(&["build", "."]).cwd(fixture("hello")).env("KO_DOCKER_REPO", unique_repo("sbombase")).run();
    first.assert_success();
    let reference = first.stdout.trim();
    let (name, hex) = reference.split_once("@sha256:").unwrap();
    let sbom = format!("{name}:sha256-{hex}.sbom");
    let repo = unique_repo("onsbom");
    let run =
        ko(&["build", "."]).cwd(fixture("hello")).env("KO_DOCKER_REPO", &repo).env("KO_DEFAULTBASEIMAGE", &sbom).run();
    assert_clear_error(&run, &[&sbom, "artifactType text/spdx+json", "not a container image"]);
    assert_repo_empty(&repo);
}
