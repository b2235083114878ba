//! `kubectl ko build`: images that run, are reproducible, and are named and printed as ko does.

use serde_json::Value;

use crate::util::*;

fn hello() -> std::path::PathBuf {
    fixture("hello")
}

fn digest_of(reference: &str) -> &str {
    reference.rsplit_once('@').map(|(_, d)| d).unwrap_or_else(|| panic!("no digest in {reference}"))
}

#[test]
fn builds_pushes_and_runs_the_app_on_the_builtin_base() {
    let repo = unique_repo("hello");
    // The value as its own word, dash first, as CI scripts written for ko pass it.
    let run = ko(&["build", ".", "--ldflags", "-X main.version=1.2.3"]).cwd(hello()).env("KO_DOCKER_REPO", &repo).run();
    run.assert_success();
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 1, "{run}");
    let reference = lines[0];
    // md5("example.com/hello") names the image, as ko does.
    assert!(reference.starts_with(&format!("{repo}/hello-124ec4359fcc3b362d8aa16b0f28dd36@sha256:")), "{reference}");

    let manifest = skopeo_inspect(reference, true);
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(manifest["annotations"]["org.opencontainers.image.base.name"], "ko.builtin/static:v1");
    assert!(manifest["annotations"]["org.opencontainers.image.base.digest"].as_str().unwrap().starts_with("sha256:"));
    let config = skopeo_inspect_config(reference);
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/ko-app/hello"]));
    assert_eq!(config["config"]["User"], "65532");
    let env: Vec<&str> = config["config"]["Env"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(env.contains(&"KO_DATA_PATH=/var/run/ko"), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("PATH=") && e.ends_with(":/ko-app")), "{env:?}");

    let out = run_image(reference);
    out.assert_success();
    assert_eq!(out.value("version"), Some("1.2.3"), "{out}");
    assert_eq!(out.value("uid"), Some("65532"), "{out}");
    assert_eq!(out.value("kodata"), Some("hello from kodata"), "{out}");
    assert_eq!(out.value("nested"), Some("nested file"), "{out}");
    assert_eq!(out.value("linked"), Some("linked file"), "{out}");
    assert_eq!(out.value("tz"), Some("1969-12-31 19:00 EST"), "{out}");
    let certs: usize = out.value("certs").unwrap_or("0").parse().unwrap_or(0);
    assert!(certs > 100, "{out}");
}

#[test]
fn ldflags_templates_take_branches_pipelines_and_functions_as_go_templates_do() {
    let repo = unique_repo("hello-template");
    let ldflags = "--ldflags=-X main.version={{ if .Env.KO_TEST_SUFFIX }}{{ .Env.KO_TEST_SUFFIX | printf \"%s-%s\" .GoEnv.GOOS }}{{ else }}none{{ end }}{{ with $t := .Git.TreeState }}{{ if ne $t \"\" }}+{{ len $t }}{{ end }}{{ end }}";
    let run = ko(&["build", ".", ldflags]).cwd(hello()).env("KO_DOCKER_REPO", &repo).env("KO_TEST_SUFFIX", "rc1").run();
    run.assert_success();
    let out = run_image(run.stdout_lines()[0]);
    out.assert_success();
    // The tree state is "clean" or "dirty": five letters either way.
    assert_eq!(out.value("version"), Some("linux-rc1+5"), "{out}");
}

#[test]
fn the_binary_and_kodata_layers_are_deterministic() {
    let layout = tempfile::tempdir().unwrap();
    let path = layout.path().to_str().unwrap();
    let run = ko(&["build", ".", "--push=false", "--oci-layout-path", path]).cwd(hello()).run();
    run.assert_success();
    let layers = umoci_list(layout.path(), digest_of(run.stdout_lines()[0]));
    assert!(layers.iter().any(|l| l.contains("ko-app/hello") && l.starts_with("-r-xr-xr-x")), "{layers:?}");
    assert!(layers.iter().any(|l| l.contains("var/run/ko/greeting.txt") && l.starts_with("-r-xr-xr-x")), "{layers:?}");
    assert!(layers.iter().all(|l| l.contains(" 0/0 ") && l.contains("1970-01-01")), "{layers:?}");

    // KO_DATA_DATE_EPOCH dates the kodata files, and nothing else.
    let dated = tempfile::tempdir().unwrap();
    let run = ko(&["build", ".", "--push=false", "--oci-layout-path", dated.path().to_str().unwrap()])
        .cwd(hello())
        .env("KO_DATA_DATE_EPOCH", "1700000000")
        .run();
    run.assert_success();
    let layers = umoci_list(dated.path(), digest_of(run.stdout_lines()[0]));
    assert!(layers.iter().any(|l| l.contains("greeting.txt") && l.contains("2023-11-14")), "{layers:?}");
    assert!(layers.iter().any(|l| l.contains("ko-app/hello") && l.contains("1970-01-01")), "{layers:?}");
}

/// `tar tv`-style listing of the last two layers of an image in a layout.
fn umoci_list(layout: &std::path::Path, digest: &str) -> Vec<String> {
    let blobs = layout.join("blobs/sha256");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(blobs.join(digest.trim_start_matches("sha256:"))).unwrap()).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    let mut out = Vec::new();
    for layer in &layers[layers.len() - 2..] {
        let hex = layer["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let listing = std::process::Command::new("tar")
            .args(["tvzf", blobs.join(hex).to_str().unwrap(), "--numeric-owner", "--full-time"])
            .output()
            .unwrap();
        out.extend(String::from_utf8_lossy(&listing.stdout).lines().map(str::to_string));
    }
    out
}

#[test]
fn rebuilding_gives_the_same_digest_even_with_an_empty_cache() {
    let repo = unique_repo("repro");
    let first = ko(&["build", "."]).cwd(hello()).env("KO_DOCKER_REPO", &repo).run();
    first.assert_success();
    // A fresh KoCmd has a fresh HOME and cache: like another machine.
    let second = ko(&["build", "."]).cwd(hello()).env("KO_DOCKER_REPO", &repo).run();
    second.assert_success();
    assert_eq!(first.stdout, second.stdout);
    let epoch =
        ko(&["build", "."]).cwd(hello()).env("KO_DOCKER_REPO", &repo).env("SOURCE_DATE_EPOCH", "1700000000").run();
    epoch.assert_success();
    assert_ne!(first.stdout, epoch.stdout, "SOURCE_DATE_EPOCH changes the config");
    let config = skopeo_inspect_config(epoch.stdout.trim());
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
}

#[test]
fn tags_naming_flags_and_printed_references_follow_ko() {
    let repo = unique_repo("names");
    let build = |args: &[&str]| {
        let mut all = vec!["build", "."];
        all.extend_from_slice(args);
        let run = ko(&all).cwd(hello()).env("KO_DOCKER_REPO", &repo).run();
        run.assert_success();
        run.stdout.trim().to_string()
    };
    let md5 = "hello-124ec4359fcc3b362d8aa16b0f28dd36";
    let tagged = build(&["-t", "v1"]);
    assert!(tagged.starts_with(&format!("{repo}/{md5}:v1@sha256:")), "{tagged}");
    assert_eq!(build(&["--tag-only", "-t", "v2"]), format!("{repo}/{md5}:v2"));
    let tags = skopeo(&["list-tags", "--tls-verify=false", &format!("docker://{repo}/{md5}")]);
    tags.assert_success();
    for t in ["v1", "v2"] {
        assert!(tags.stdout.contains(&format!("\"{t}\"")), "{tags}");
    }
    let several = build(&["-t", "a,b"]);
    assert!(several.starts_with(&format!("{repo}/{md5}@sha256:")), "{several}");
    // stderr says the first tag with `Publishing` and each other one with `Tagging`, as ko.
    let run = ko(&["build", ".", "-t", "c,d,e"]).cwd(hello()).env("KO_DOCKER_REPO", &repo).run();
    run.assert_success();
    let said: Vec<&str> =
        run.stderr.lines().filter(|l| l.starts_with("Publishing ") || l.starts_with("Tagging ")).collect();
    let name = format!("{repo}/{md5}");
    assert_eq!(
        said,
        [format!("Publishing {name}:c"), format!("Tagging {name}:d"), format!("Tagging {name}:e")],
        "{run}"
    );
    assert!(build(&["-B"]).starts_with(&format!("{repo}/hello@sha256:")));
    assert!(build(&["--bare"]).starts_with(&format!("{repo}@sha256:")));
    assert!(build(&["-P"]).starts_with(&format!("{repo}/example.com/hello@sha256:")));
    // Both -B and --bare: -B wins, as in ko, and a warning says --bare was ignored.
    let both = ko(&["build", ".", "-B", "--bare"]).cwd(hello()).env("KO_DOCKER_REPO", &repo).run();
    both.assert_success();
    assert!(both.stdout.starts_with(&format!("{repo}/hello@sha256:")), "{both}");
    assert!(both.stderr.lines().any(|l| l.starts_with("warning: ") && l.contains("--bare is ignored")), "{both}");
    let unpushed = build(&["--push=false"]);
    assert!(unpushed.starts_with(&format!("{repo}/{md5}:latest@sha256:")), "{unpushed}");
    assert_eq!(build(&["--push=false", "--tag-only", "-t", "v3"]), format!("{repo}/{md5}:v3"));
    // --tag-only is the registry's: a tarball's reference keeps its digest.
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("image.tar");
    let saved = build(&["--push=false", "--tarball", tarball.to_str().unwrap(), "--tag-only", "-t", "v3"]);
    assert!(saved.starts_with(&format!("{repo}/{md5}:v3@sha256:")), "{saved}");
}

#[test]
fn several_import_paths_print_in_argument_order_and_image_refs_are_written() {
    let repo = unique_repo("order");
    let refs = tempfile::NamedTempFile::new().unwrap();
    // The greeter named twice, the second time by its import path: one image, one line.
    let refs_path = refs.path().to_str().unwrap();
    let args = ["build", "./cmd/greeter", "ko://example.com/hello", "example.com/hello/cmd/greeter", "--image-refs"];
    let run = ko(&args).arg(refs_path).cwd(hello()).env("KO_DOCKER_REPO", &repo).run();
    run.assert_success();
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 2, "{run}");
    assert!(lines[0].starts_with(&format!("{repo}/greeter-")), "{run}");
    assert!(lines[1].starts_with(&format!("{repo}/hello-")), "{run}");
    assert_eq!(std::fs::read_to_string(refs.path()).unwrap(), run.stdout);
    let out = run_image(lines[0]);
    assert_eq!(out.stdout.trim(), "greeter", "{out}");
}

#[test]
fn oci_layout_and_tarball_outputs_are_readable_by_other_tools() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let tarball = dir.path().join("image.tar");
    let run = ko(&[
        "build",
        ".",
        "--push=false",
        "--oci-layout-path",
        layout.to_str().unwrap(),
        "--tarball",
        tarball.to_str().unwrap(),
        "-t",
        "v3",
    ])
    .cwd(hello())
    .env("KO_DOCKER_REPO", "example.test/app")
    .run();
    run.assert_success();
    let reference = run.stdout.trim();
    // The tarball publisher is later in the chain, so its reference is printed.
    assert!(reference.starts_with("example.test/app/hello-124ec4359fcc3b362d8aa16b0f28dd36:v3@sha256:"), "{run}");
    let out = run_layout_image(&layout, digest_of(reference));
    assert_eq!(out.value("kodata"), Some("hello from kodata"), "{out}");

    let archive = skopeo(&["inspect", &format!("docker-archive:{}", tarball.display())]);
    archive.assert_success();
    let parsed: Value = serde_json::from_str(&archive.stdout).unwrap();
    assert_eq!(parsed["Architecture"], "amd64");
    let oci = skopeo(&["inspect", &format!("oci-archive:{}", tarball.display())]);
    oci.assert_success();
}

#[test]
fn without_ko_docker_repo_the_image_goes_to_the_local_store() {
    let cmd = ko(&["build", "."]).cwd(hello());
    let run = cmd.run();
    run.assert_success();
    let reference = run.stdout.trim();
    // `oci:<store>:<name>-<12 hex of the digest>`, the containers-transport form.
    let (store, tag) = reference.strip_prefix("oci:").unwrap().split_once(':').unwrap();
    assert!(store.ends_with("kubectl-ko/images"), "{run}");
    assert!(tag.starts_with("hello-124ec4359fcc3b362d8aa16b0f28dd36-"), "{run}");
    assert!(run.stderr.contains("KO_DOCKER_REPO"), "{run}");
    // skopeo takes the printed reference as it is, and names the digest the tag carries.
    let inspected = skopeo_inspect(reference, false);
    let digest = inspected["Digest"].as_str().unwrap().to_string();
    assert_eq!(&digest[7..19], &tag[tag.len() - 12..], "{inspected}");
    let out = run_image(reference);
    assert_eq!(out.value("kodata"), Some("hello from kodata"), "{out}");
    // The same image keeps its tag; the entry is there once.
    let again = cmd.run();
    again.assert_success();
    assert_eq!(again.stdout.trim(), reference);
    let index: Value = serde_json::from_slice(&std::fs::read(format!("{store}/index.json")).unwrap()).unwrap();
    let named = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .count();
    assert_eq!(named, 1, "{index}");
    assert!(!again.stderr.contains("--tags"), "{again}");
    // Tags are a registry's: the store says it does not use them, and names the image as ever.
    let tagged = ko(&["build", ".", "-t", "v1"]).cwd(hello()).run();
    tagged.assert_success();
    assert!(tagged.stdout.trim().ends_with(&format!(":{tag}")), "{tagged}");
    assert!(tagged.stderr.contains("warning: -t/--tags and --tag-only name tags in a registry"), "{tagged}");

    // A multi-platform image's --image-refs line is the store's reference too (no per-image
    // lines naming a registry), and a --tarball beside the store tags bare names, as with
    // --push=false, never the daemon's ko.local.
    let dir = tempfile::tempdir().unwrap();
    let (refs, tarball) = (dir.path().join("refs.txt"), dir.path().join("image.tar"));
    let args = ["build", ".", "--platform=linux/amd64,linux/arm64", "--image-refs", refs.to_str().unwrap()];
    let multi = ko(&args).cwd(hello()).run();
    multi.assert_success();
    assert_eq!(std::fs::read_to_string(&refs).unwrap(), multi.stdout, "{multi}");
    let saved = ko(&["build", ".", "--tarball", tarball.to_str().unwrap()]).cwd(hello()).run();
    saved.assert_success();
    let listing = std::process::Command::new("tar").arg("xOf").arg(&tarball).arg("manifest.json").output().unwrap();
    let manifest: Value = serde_json::from_slice(&listing.stdout).unwrap();
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["hello-124ec4359fcc3b362d8aa16b0f28dd36:latest"]),
        "{manifest}"
    );
}

#[test]
fn the_local_store_reference_is_a_base_as_printed() {
    let stored = ko(&["build", "./cmd/greeter"]).cwd(hello());
    let run = stored.run();
    run.assert_success();
    let base = run.stdout.trim();
    assert!(base.starts_with("oci:"), "{run}");
    let repo = unique_repo("on-store");
    let built = ko(&["build", "."]).cwd(hello()).env("KO_DOCKER_REPO", &repo).env("KO_DEFAULTBASEIMAGE", base).run();
    built.assert_success();
    let manifest = skopeo_inspect(built.stdout.trim(), true);
    assert_eq!(manifest["annotations"]["org.opencontainers.image.base.name"], base, "{manifest}");
    // The base's layers (the greeter image) are the first layers of the app's.
    let layers = manifest["layers"].as_array().unwrap();
    let base_layers = skopeo_inspect(base, true)["layers"].as_array().unwrap().clone();
    assert!(layers.len() > base_layers.len() && layers[..base_layers.len()] == base_layers[..], "{manifest}");
    let out = run_image(built.stdout.trim());
    assert_eq!(out.value("kodata"), Some("hello from kodata"), "{out}");
}

#[test]
fn builds_entries_pick_the_module_directory_env_and_ldflags() {
    let repo = unique_repo("multimod");
    let run = ko(&["build", "./foo/cmd/foo", "./bar"]).cwd(fixture("multimod")).env("KO_DOCKER_REPO", &repo).run();
    run.assert_success();
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 2, "{run}");
    assert!(lines[0].starts_with(&format!("{repo}/foo-")), "{run}");
    assert_eq!(run_image(lines[0]).stdout.trim(), "foo version=1.2.3");
    assert_eq!(run_image(lines[1]).stdout.trim(), "bar");
}

/// `.GoEnv` is `go env` where the command runs, as in ko, not in the package's module: from
/// the repository root above both modules, `GOMOD` is the root's (none), not foo's go.mod.
#[test]
fn go_env_in_templates_is_the_working_directorys() {
    let root = fixture("multimod");
    let mut go = std::process::Command::new(tool("go"));
    go.args(["env", "GOMOD"]).current_dir(&root);
    let expected = capture(go, DEFAULT_TIMEOUT);
    expected.assert_success();
    let expected = expected.stdout.trim().to_string();
    assert!(!expected.ends_with("foo/go.mod"), "{expected}");
    let repo = unique_repo("multimod-goenv");
    let run = ko(&["build", "./foo/cmd/foo", "--ldflags=-X main.version={{.GoEnv.GOMOD}}", "--sbom=none"])
        .cwd(&root)
        .env("KO_DOCKER_REPO", &repo)
        .run();
    run.assert_success();
    assert_eq!(run_image(run.stdout.trim()).stdout.trim(), format!("foo version={expected}"));
}

/// `resolve` names packages by import path. One in foo's module without an entry of its own
/// is found through foo-app's directory, but built with the defaults, not foo-app's settings.
#[test]
fn a_package_without_an_entry_does_not_take_its_neighbours_settings() {
    let repo = unique_repo("multimod-resolve");
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("pods.yaml");
    std::fs::write(&yaml, "foo: ko://example.com/foo/cmd/foo\n---\nworker: ko://example.com/foo/cmd/worker\n").unwrap();
    let run =
        ko(&["resolve", "-f", yaml.to_str().unwrap()]).cwd(fixture("multimod")).env("KO_DOCKER_REPO", &repo).run();
    run.assert_success();
    let reference = |key: &str| {
        let line = run.stdout.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key}: {run}"));
        line.split_once(": ").unwrap().1.trim().to_string()
    };
    assert_eq!(run_image(&reference("foo:")).stdout.trim(), "foo version=1.2.3");
    assert_eq!(run_image(&reference("worker:")).stdout.trim(), r#"worker version=dev foo_version="""#);
}

/// A builds[] entry whose package Go names but cannot build here (all its files are for
/// Windows, or it has none) does not stop other packages; building it fails naming it. An entry whose `dir`
/// is not there is named, with where `dir` is taken from.
#[test]
fn builds_entries_are_checked_as_far_as_ko_checks_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("cmd/win")).unwrap();
    std::fs::write(root.join("go.mod"), "module example.com/entries\n\ngo 1.21\n").unwrap();
    std::fs::write(root.join("main.go"), "package main\n\nfunc main() { println(\"root\") }\n").unwrap();
    std::fs::write(root.join("cmd/win/main.go"), "//go:build windows\n\npackage main\n\nfunc main() {}\n").unwrap();
    std::fs::write(root.join(".ko.yaml"), "builds:\n- id: win\n  main: ./cmd/win\n").unwrap();
    let repo = unique_repo("entries");
    let run = ko(&["build", ".", "-B"]).cwd(root).env("KO_DOCKER_REPO", &repo).run();
    run.assert_success();
    assert!(run.stdout.starts_with(&format!("{repo}/entries@sha256:")), "{run}");
    let win = ko(&["build", "./cmd/win"]).cwd(root).env("KO_DOCKER_REPO", &repo).run();
    crate::build_errors::assert_clear_error(&win, &["cmd/win", "build constraints exclude all Go files"]);

    // Nor does an entry whose directory holds no Go files at all (ko keeps it too).
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::write(root.join("docs/README.md"), "# docs\n").unwrap();
    std::fs::write(root.join(".ko.yaml"), "builds:\n- id: docs\n  main: ./docs\n- id: docs-dir\n  dir: ./docs\n")
        .unwrap();
    let run = ko(&["build", ".", "-B"]).cwd(root).env("KO_DOCKER_REPO", &repo).run();
    run.assert_success();

    std::fs::write(root.join(".ko.yaml"), "builds:\n- id: typo\n  dir: ./fooo\n").unwrap();
    let typo = ko(&["build", "."]).cwd(root).env("KO_DOCKER_REPO", &repo).run();
    crate::build_errors::assert_clear_error(&typo, &["entry 0 (id typo)", "dir \"./fooo\"", "does not exist"]);
    assert!(!typo.stderr.contains("install Go"), "{typo}");
}

#[test]
fn a_registry_image_can_be_the_base_in_either_media_type_family() {
    let repo = unique_repo("base");
    // Publish a base of our own, then copy it as a Docker schema 2 image.
    let base = ko(&["build", "./cmd/greeter", "-B"]).cwd(hello()).env("KO_DOCKER_REPO", &repo).run();
    base.assert_success();
    let oci_base = format!("{repo}/greeter:latest");
    let docker_base = format!("{repo}/docker-base:latest");
    copy_as_docker_v2s2(&oci_base, &docker_base);

    for (base_ref, media_type) in [
        (&oci_base, "application/vnd.oci.image.manifest.v1+json"),
        (&docker_base, "application/vnd.docker.distribution.manifest.v2+json"),
    ] {
        let run =
            ko(&["build", "."]).cwd(hello()).env("KO_DOCKER_REPO", &repo).env("KO_DEFAULTBASEIMAGE", base_ref).run();
        run.assert_success();
        let manifest = skopeo_inspect(run.stdout.trim(), true);
        assert_eq!(manifest["mediaType"], media_type);
        assert_eq!(manifest["annotations"]["org.opencontainers.image.base.name"], base_ref.as_str());
        let layer_types: Vec<&str> =
            manifest["layers"].as_array().unwrap().iter().map(|l| l["mediaType"].as_str().unwrap()).collect();
        assert!(layer_types.iter().all(|t| t.contains(if media_type.contains("docker") { "docker" } else { "oci" })));
        let out = run_image(run.stdout.trim());
        assert_eq!(out.value("kodata"), Some("hello from kodata"), "{out}");
    }
}

/// An import path of the module a builds[] `dir` holds is built from that checkout, as ko
/// builds it, even when the working directory's module requires another copy of it (here a
/// `replace` to an older one).
#[test]
fn an_import_path_of_a_build_dirs_module_is_built_from_that_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |path: &str, text: &str| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    let tool =
        |says: &str| format!("package main\n\nimport \"fmt\"\n\nfunc main() {{ fmt.Println(\"tool={says}\") }}\n");
    write(
        "go.mod",
        "module example.com/top\n\ngo 1.21\n\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => ./oldlib\n",
    );
    write("top.go", "package top\n");
    for (checkout, says) in [("oldlib", "old"), ("libsrc", "new")] {
        write(&format!("{checkout}/go.mod"), "module example.com/lib\n\ngo 1.21\n");
        write(&format!("{checkout}/cmd/tool/main.go"), &tool(says));
    }
    write("libsrc/cmd/other/main.go", &tool("other"));
    write(".ko.yaml", "builds:\n- id: lib\n  dir: ./libsrc\n  main: ./cmd/other\n");
    let repo = unique_repo("build-dir-module");
    let run = ko(&["build", "example.com/lib/cmd/tool", "-B"]).cwd(root).env("KO_DOCKER_REPO", &repo).run();
    run.assert_success();
    let out = run_image(run.stdout.trim());
    assert_eq!(out.value("tool"), Some("new"), "{out}");

    // A module nested in a builds[] one, run from: its own paths are its own.
    write("libsrc/nested/go.mod", "module example.com/lib/nested\n\ngo 1.21\n");
    write("libsrc/nested/cmd/tool/main.go", &tool("nested"));
    write("libsrc/nested/.ko.yaml", "builds:\n- id: up\n  dir: ..\n  main: ./cmd/other\n");
    let nested = root.join("libsrc/nested");
    let run = ko(&["build", "example.com/lib/nested/cmd/tool", "-B"]).cwd(&nested).env("KO_DOCKER_REPO", &repo).run();
    run.assert_success();
    assert_eq!(run_image(run.stdout.trim()).value("tool"), Some("nested"), "{run}");
}
