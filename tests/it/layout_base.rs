//! Base images from an OCI image layout on disk (`oci-layout://PATH[:TAG|@DIGEST]`): by tag,
//! by digest, the only entry, an index narrowed to the requested platforms, set through
//! `KO_DEFAULTBASEIMAGE`, `defaultBaseImage` and `baseImageOverrides`, and the errors for a
//! missing path, tag or digest.

use std::path::Path;

use crate::util::*;

fn hello() -> std::path::PathBuf {
    fixture("hello")
}

/// A layout holding our greeter app as an index (tag `multi`, amd64 + arm64) and as a
/// single amd64 image (tag `single`); returns the single image's digest.
fn make_layout(dir: &Path) -> String {
    let repo = unique_repo("layout-base");
    let run = ko(&["build", "./cmd/greeter", "-B", "--platform=linux/amd64,linux/arm64"])
        .cwd(hello())
        .env("KO_DOCKER_REPO", &repo)
        .run();
    run.assert_success();
    let index_ref = run.stdout.trim();
    let index = skopeo_inspect(index_ref, true);
    let amd64 = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    let name = index_ref.split('@').next().unwrap();
    let dest = |tag: &str| format!("oci:{}:{tag}", dir.display());
    skopeo(&["copy", "--all", "--src-tls-verify=false", &format!("docker://{index_ref}"), &dest("multi")])
        .assert_success();
    skopeo(&["copy", "--src-tls-verify=false", &format!("docker://{name}@{amd64}"), &dest("single")]).assert_success();
    amd64
}

fn build_on(base: &str, extra: &[&str]) -> Run {
    ko(&["build", "."])
        .args(extra)
        .cwd(hello())
        .env("KO_DOCKER_REPO", unique_repo("on-layout"))
        .env("KO_DEFAULTBASEIMAGE", base)
        .run()
}

#[test]
fn oci_layout_bases_by_tag_digest_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("base");
    let single_digest = make_layout(&layout);
    let root = layout.display().to_string();

    // By tag: a single image; the app and the base's greeter are both there.
    let base = format!("oci-layout://{root}:single");
    let run = build_on(&base, &[]);
    run.assert_success();
    let reference = run.stdout.trim().to_string();
    let manifest = skopeo_inspect(&reference, true);
    assert_eq!(manifest["annotations"]["org.opencontainers.image.base.name"], base.as_str());
    assert_eq!(manifest["annotations"]["org.opencontainers.image.base.digest"], single_digest.as_str());
    let out = run_image(&reference);
    assert_eq!(out.value("kodata"), Some("hello from kodata"), "{out}");

    // By digest: the same base, so the same layers (only the base-name annotation differs).
    let run = build_on(&format!("oci-layout://{root}@{single_digest}"), &[]);
    run.assert_success();
    let by_digest = skopeo_inspect(run.stdout.trim(), true);
    assert_eq!(by_digest["layers"], manifest["layers"]);
    assert_eq!(by_digest["annotations"]["org.opencontainers.image.base.digest"], single_digest.as_str());

    // An index: narrowed to the requested platforms, in the base's order.
    let run = build_on(&format!("oci-layout://{root}:multi"), &["--platform=linux/arm64,linux/amd64"]);
    run.assert_success();
    let index = skopeo_inspect(run.stdout.trim(), true);
    let archs: Vec<&str> =
        index["manifests"].as_array().unwrap().iter().filter_map(|m| m["platform"]["architecture"].as_str()).collect();
    assert_eq!(archs, ["amd64", "arm64"], "{index}");
    let missing = build_on(&format!("oci-layout://{root}:multi"), &["--platform=linux/s390x"]);
    missing.assert_failure();
    assert!(missing.stderr.contains("has no image for linux/s390x; it offers: linux/amd64, linux/arm64"), "{missing}");
    // A single-image base cannot serve a second platform: named, not dropped.
    let single = build_on(&format!("oci-layout://{root}:single"), &["--platform=linux/amd64,linux/arm64"]);
    crate::build_errors::assert_clear_error(&single, &["has no image for linux/arm64; it offers: linux/amd64"]);
    // A Windows platform the base lacks is named like any other, before anything is built.
    let windows = build_on(&format!("oci-layout://{root}:multi"), &["--platform=windows/amd64"]);
    crate::build_errors::assert_clear_error(&windows, &["has no image for windows/amd64; it offers: linux/amd64"]);
    assert!(!windows.stderr.contains("Building"), "{windows}");
    let all_and_more = build_on(&format!("oci-layout://{root}:multi"), &["--platform=all,linux/amd64"]);
    crate::build_errors::assert_clear_error(&all_and_more, &["cannot be combined with others"]);
}

#[test]
fn oci_layout_bases_from_ko_yaml_and_the_only_entry() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("base");
    make_layout(&layout);
    // A layout with one entry needs no tag.
    let only = dir.path().join("only");
    skopeo(&["copy", &format!("oci:{}:single", layout.display()), &format!("oci:{}", only.display())]).assert_success();

    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(
        config.join(".ko.yaml"),
        format!(
            "defaultBaseImage: oci-layout://{}:multi\nbaseImageOverrides:\n  example.com/hello: oci-layout://{}\n",
            layout.display(),
            only.display()
        ),
    )
    .unwrap();
    let repo = unique_repo("layout-yaml");
    let run = ko(&["build", ".", "./cmd/greeter"])
        .cwd(hello())
        .env("KO_DOCKER_REPO", &repo)
        .env("KO_CONFIG_PATH", &config)
        .run();
    run.assert_success();
    let lines = run.stdout_lines();
    let hello_manifest = skopeo_inspect(lines[0], true);
    assert_eq!(
        hello_manifest["annotations"]["org.opencontainers.image.base.name"],
        format!("oci-layout://{}", only.display())
    );
    let greeter_manifest = skopeo_inspect(lines[1], true);
    assert_eq!(
        greeter_manifest["annotations"]["org.opencontainers.image.base.name"],
        format!("oci-layout://{}:multi", layout.display())
    );
    let out = run_image(lines[0]);
    assert_eq!(out.value("kodata"), Some("hello from kodata"), "{out}");
}

#[test]
fn oci_layout_base_errors_name_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("base");
    make_layout(&layout);
    let root = layout.display().to_string();
    let zero = format!("sha256:{}", "0".repeat(64));
    let cases = [
        (format!("oci-layout://{}/nowhere", dir.path().display()), "is not an OCI image layout (it has no index.json)"),
        (format!("oci-layout://{root}:nope"), "no image tagged \"nope\" in"),
        (format!("oci-layout://{root}@{zero}"), "is not in"),
        (format!("oci-layout://{root}"), "lists 2 entries; name one as oci-layout://"),
        (format!("oci-layout://{root}@sha256:abc"), "write oci-layout://PATH@sha256:"),
    ];
    for (base, want) in cases {
        let run = build_on(&base, &[]);
        run.assert_failure();
        let line = run.stderr.lines().last().unwrap_or_default();
        assert!(line.starts_with(&format!("error: base image {base}")) && line.contains(want), "{base}: {run}");
    }
    let run = build_on(&format!("oci-layout://{root}:nope"), &[]);
    assert!(run.stderr.contains("tags: multi, single"), "{run}");
}

/// A layout ko v0.19.1 wrote (`--oci-layout-path`) serves as a base: go-containerregistry lists
/// an image's entry with its config's media type as `artifactType`, which is no referrer. Our
/// own layouts and indexes list images the same way.
#[test]
fn a_layout_ko_wrote_is_a_base_and_ours_lists_images_as_ko_does() {
    // ko takes the layout's path for a repository name: lower case only.
    let name = unique_repo("ko-layout").rsplit('/').next().unwrap().to_string();
    let dir = tempfile::Builder::new().prefix(&name).rand_bytes(0).tempdir().unwrap();
    let (theirs, ours) = (dir.path().join("by-ko"), dir.path().join("by-us"));
    // ko cannot reach its default base here: both build on one in the test registry.
    let base = ko(&["build", "./cmd/greeter", "-B", "--platform=linux/amd64", "--sbom=none"])
        .cwd(hello())
        .env("KO_DOCKER_REPO", unique_repo("ko-layout-base"))
        .run();
    base.assert_success();
    let layout_of = |program: KoCmd, root: &Path, platform: &str| {
        let run = program
            .args(["build", ".", "--push=false", "--sbom=none", platform, "--oci-layout-path"])
            .arg(root)
            .cwd(fixture("withdeps"))
            .env("KO_DOCKER_REPO", unique_repo("layout-entries"))
            .env("KO_DEFAULTBASEIMAGE", base.stdout.trim())
            .run();
        run.assert_success();
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
        index["manifests"][0].clone()
    };
    let ko_entry = layout_of(KoCmd::program(reference_ko()), &theirs, "--platform=linux/amd64");
    let our_entry = layout_of(ko(&[]), &ours, "--platform=linux/amd64");
    assert_eq!(ko_entry["artifactType"], "application/vnd.oci.image.config.v1+json", "{ko_entry}");
    assert_eq!(our_entry["artifactType"], ko_entry["artifactType"], "{our_entry}");
    assert!(our_entry.get("platform").is_none(), "{our_entry}");

    let run = build_on(&format!("oci-layout://{}", theirs.display()), &["--platform=linux/amd64"]);
    run.assert_success();
    let out = run_image(run.stdout.trim());
    assert_eq!(out.value("kodata"), Some("hello from kodata"), "{out}");

    // An index's entries carry the artifactType too.
    let run = ko(&["build", ".", "--platform=linux/amd64,linux/arm64", "--sbom=none"])
        .cwd(fixture("withdeps"))
        .env("KO_DOCKER_REPO", unique_repo("index-entries"))
        .run();
    run.assert_success();
    let index = skopeo_inspect(run.stdout.trim(), true);
    for entry in index["manifests"].as_array().unwrap() {
        assert_eq!(entry["artifactType"], "application/vnd.oci.image.config.v1+json", "{index}");
    }
}
