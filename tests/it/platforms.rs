//! Several platforms: indexes from the built-in base and from registry bases (an OCI index and
//! a Docker manifest list), variants, the missing-platform error, and offline rebuilds.

use std::process::Command;

use serde_json::Value;

use crate::util::*;

/// ELF `e_machine` of the app binary in an image's last layer, read from the registry.
fn elf_machine(reference: &str) -> u16 {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("l");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("oci:{}:img", layout.display()),
    ])
    .assert_success();
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    let last = manifest["layers"].as_array().unwrap().last().unwrap()["digest"].as_str().unwrap().to_string();
    let out = dir.path().join("x");
    std::fs::create_dir(&out).unwrap();
    let status = std::process::Command::new("tar")
        .args(["xzf", blob(&last).to_str().unwrap(), "-C", out.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let bin = std::fs::read_dir(out.join("ko-app")).unwrap().next().unwrap().unwrap().path();
    let bytes = std::fs::read(bin).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF");
    u16::from_le_bytes([bytes[18], bytes[19]])
}

const EM_X86_64: u16 = 62;
const EM_ARM: u16 = 40;
const EM_AARCH64: u16 = 183;

/// Puts `index` as an OCI index at `reference` (`host/path:tag`) in the test registry, with
/// curl (not ours), and returns the reference.
fn put_oci_index(index: &Value, reference: &str) -> String {
    let (host, rest) = reference.split_once('/').unwrap();
    let (path, tag) = rest.rsplit_once(':').unwrap();
    let put = Command::new(tool("curl"))
        .args(["-fsS", "-X", "PUT", "-H", "Content-Type: application/vnd.oci.image.index.v1+json", "--data-binary"])
        .arg(index.to_string())
        .arg(format!("http://{host}/v2/{path}/manifests/{tag}"))
        .output()
        .unwrap();
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    reference.to_string()
}

/// The hello fixture built on `base` for `platforms` into `repo`, which must succeed.
fn hello_on(base: &str, platforms: &str, repo: &str) -> Run {
    let run = ko(&["build", ".", &format!("--platform={platforms}")])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", repo)
        .env("KO_DEFAULTBASEIMAGE", base)
        .run();
    run.assert_success();
    run
}

fn platforms_of(index: &Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut s = format!("{}/{}", p["os"].as_str().unwrap(), p["architecture"].as_str().unwrap());
            if let Some(v) = p["variant"].as_str() {
                s.push_str(&format!("/{v}"));
            }
            s
        })
        .collect()
}

#[test]
fn registry_index_bases_give_indexes_of_the_same_media_type() {
    let repo = unique_repo("multi");
    // A three-platform base of our own (an OCI index), and the same as a Docker manifest list.
    let base = ko(&["build", "./cmd/greeter", "-B", "--platform=linux/amd64,linux/arm64,linux/arm/v7"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", &repo)
        .run();
    base.assert_success();
    let oci_base = format!("{repo}/greeter:latest");
    let docker_base = format!("{repo}/docker-list:latest");
    copy_as_docker_v2s2(&oci_base, &docker_base);

    for (base_ref, index_type) in [
        (&oci_base, "application/vnd.oci.image.index.v1+json"),
        (&docker_base, "application/vnd.docker.distribution.manifest.list.v2+json"),
    ] {
        let build_on_base = |platforms: &str| {
            ko(&["build", ".", platforms])
                .cwd(fixture("hello"))
                .env("KO_DOCKER_REPO", &repo)
                .env("KO_DEFAULTBASEIMAGE", base_ref)
                .run()
        };
        let run = build_on_base("--platform=linux/amd64,linux/arm/v7,linux/arm64");
        run.assert_success();
        let reference = run.stdout.trim();
        let index = skopeo_inspect(reference, true);
        assert_eq!(index["mediaType"], index_type, "{index}");
        // Base order, not request order.
        assert_eq!(platforms_of(&index), ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
        assert_eq!(index["annotations"]["org.opencontainers.image.base.name"], base_ref.as_str());
        let name = reference.split('@').next().unwrap();
        let child = |i: usize| format!("{name}@{}", index["manifests"][i]["digest"].as_str().unwrap());
        assert_eq!(elf_machine(&child(0)), EM_X86_64);
        assert_eq!(elf_machine(&child(1)), EM_AARCH64);
        assert_eq!(elf_machine(&child(2)), EM_ARM);
        let out = run_image(&child(0));
        assert_eq!(out.value("kodata"), Some("hello from kodata"), "{out}");

        // One matching platform gives a plain image; a missing one is named with what exists.
        let one = build_on_base("--platform=linux/arm64");
        one.assert_success();
        let manifest = skopeo_inspect(one.stdout.trim(), true);
        assert!(manifest["layers"].is_array(), "{manifest}");
        let missing = build_on_base("--platform=linux/s390x");
        missing.assert_failure();
        assert!(missing.stdout.is_empty());
        let last = missing.stderr.lines().last().unwrap_or_default();
        assert!(last.contains("linux/s390x") && last.contains("linux/arm/v7"), "{missing}");
    }
}

#[test]
fn image_refs_of_an_index_name_the_index_then_each_image() {
    let repo = unique_repo("refs-index");
    let dir = tempfile::tempdir().unwrap();
    let refs = dir.path().join("refs.txt");
    let platforms = "--platform=linux/amd64,linux/arm64";
    let run = ko(&["build", "./cmd/greeter", "-t", "v1", platforms, "--image-refs", refs.to_str().unwrap()])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", &repo)
        .run();
    run.assert_success();
    let printed = run.stdout.trim();
    let (tagged, index_digest) = printed.split_once('@').unwrap();
    let name = tagged.strip_suffix(":v1").expect("the printed reference carries the tag");
    let index = skopeo_inspect(&format!("{name}@{index_digest}"), true);
    let children = (0..2).map(|i| index["manifests"][i]["digest"].as_str().unwrap().to_string());
    // As ko writes them: by digest only (no tag), the index first, then each image in order.
    let expected: Vec<String> =
        std::iter::once(index_digest.to_string()).chain(children).map(|d| format!("{name}@{d}")).collect();
    let written = std::fs::read_to_string(&refs).unwrap();
    assert_eq!(written.lines().collect::<Vec<_>>(), expected, "{written}");
    assert_eq!(elf_machine(&expected[2]), EM_AARCH64);
}

#[test]
fn the_builtin_base_serves_all_platforms_reproducibly() {
    let repo = unique_repo("all");
    let build = || {
        let run = ko(&["build", ".", "--platform=all"]).cwd(fixture("hello")).env("KO_DOCKER_REPO", &repo).run();
        run.assert_success();
        run.stdout.trim().to_string()
    };
    let first = build();
    let index = skopeo_inspect(&first, true);
    let platforms = platforms_of(&index);
    for want in ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le", "linux/s390x"] {
        assert!(platforms.iter().any(|p| p == want), "{platforms:?}");
    }
    assert_eq!(build(), first, "the index digest is reproducible");
}

#[test]
fn a_tag_resolved_before_is_used_offline() {
    let dir = tempfile::tempdir().unwrap();
    let registry = LocalRegistry::start(&dir.path().join("reg"), &[]);
    let repo = format!("{}/offline", registry.host);
    let base = ko(&["build", "./cmd/greeter", "-B"]).cwd(fixture("hello")).env("KO_DOCKER_REPO", &repo).run();
    base.assert_success();
    let cache = dir.path().join("cache");
    let layout = dir.path().join("layout");
    let build = || {
        ko(&["build", ".", "--push=false", "--oci-layout-path", layout.to_str().unwrap()])
            .cwd(fixture("hello"))
            .env("KOCACHE", &cache)
            .env("KO_DEFAULTBASEIMAGE", format!("{repo}/greeter"))
            .run()
    };
    let online = build();
    online.assert_success();
    registry.stop();
    let offline = build();
    offline.assert_success();
    assert_eq!(online.stdout, offline.stdout);
    assert!(offline.stderr.contains("unreachable") && offline.stderr.contains("ago"), "{offline}");
}

#[test]
fn goarch_alone_builds_and_labels_the_same_platform() {
    let repo = unique_repo("goarch");
    let run = ko(&["build", "."]).cwd(fixture("hello")).env("KO_DOCKER_REPO", &repo).env("GOARCH", "arm64").run();
    run.assert_success();
    let reference = run.stdout.trim();
    let config = skopeo_inspect_config(reference);
    assert_eq!((config["os"].as_str(), config["architecture"].as_str()), (Some("linux"), Some("arm64")), "{config}");
    assert_eq!(elf_machine(reference), EM_AARCH64);
}

#[test]
fn using_base_names_the_index_digest_once() {
    let repo = unique_repo("usingbase");
    let base = ko(&["build", "./cmd/greeter", "-B", "--platform=linux/amd64,linux/arm64"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", &repo)
        .run();
    base.assert_success();
    let pinned = base.stdout.trim().to_string();
    let index_digest = pinned.split('@').nth(1).unwrap().to_string();
    let tagged = format!("{repo}/greeter:latest");
    for (base_ref, shown) in [(&tagged, format!("{tagged}@{index_digest}")), (&pinned, pinned.clone())] {
        let run = ko(&["build", ".", "--platform=linux/arm64"])
            .cwd(fixture("hello"))
            .env("KO_DOCKER_REPO", &repo)
            .env("KO_DEFAULTBASEIMAGE", base_ref)
            .run();
        run.assert_success();
        let line = run.stderr.lines().find(|l| l.starts_with("Using base ")).unwrap_or_default();
        assert_eq!(line, format!("Using base {shown} for example.com/hello"), "{run}");
    }
}

/// An OCI index may list Docker schema 2 manifests. The result is an index of the base
/// index's type whose images keep their own (ko never converts either).
#[test]
fn an_oci_index_of_docker_manifests_keeps_both_media_types() {
    let repo = unique_repo("mixed");
    let base = ko(&["build", "./cmd/greeter", "-B", "--platform=linux/amd64,linux/arm64"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", &repo)
        .run();
    base.assert_success();
    let docker_list = format!("{repo}/docker-list:latest");
    copy_as_docker_v2s2(&format!("{repo}/greeter:latest"), &docker_list);
    let mut index = skopeo_inspect(&docker_list, true);
    index["mediaType"] = "application/vnd.oci.image.index.v1+json".into();
    let base = put_oci_index(&index, &format!("{repo}/docker-list:mixed"));

    let run = hello_on(&base, "linux/amd64,linux/arm64", &repo);
    let reference = run.stdout.trim();
    let built = skopeo_inspect(reference, true);
    assert_eq!(built["mediaType"], "application/vnd.oci.image.index.v1+json", "{built}");
    let docker_manifest = "application/vnd.docker.distribution.manifest.v2+json";
    assert!(built["manifests"].as_array().unwrap().iter().all(|m| m["mediaType"] == docker_manifest), "{built}");
    let name = reference.split('@').next().unwrap();
    let child = format!("{name}@{}", built["manifests"][0]["digest"].as_str().unwrap());
    let manifest = skopeo_inspect(&child, true);
    assert_eq!(manifest["mediaType"], docker_manifest, "{manifest}");
    assert!(manifest["layers"].as_array().unwrap().iter().all(|l| l["mediaType"].as_str().unwrap().contains("docker")));
    assert_eq!(run_image(&child).value("kodata"), Some("hello from kodata"));
}

/// A single-image base of another platform than linux/amd64, with no platform asked for: as
/// in ko, refused (the target is linux/amd64), with the flag that builds for the base's
/// platform; with that flag, built and labelled as the base.
#[test]
fn a_single_image_base_of_another_platform_needs_the_platform_asked_for() {
    let base_repo = unique_repo("arm64-base");
    let base = ko(&["build", ".", "--bare"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", &base_repo)
        .env("GOARCH", "arm64")
        .run();
    base.assert_success();
    let base = base.stdout.trim().to_string();
    let build = |extra: &[&str]| {
        let mut args = vec!["build", "."];
        args.extend_from_slice(extra);
        ko(&args)
            .cwd(fixture("hello"))
            .env("KO_DOCKER_REPO", unique_repo("on-arm64"))
            .env("KO_DEFAULTBASEIMAGE", &base)
            .run()
    };
    let run = build(&[]);
    run.assert_failure();
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.contains("has no image for linux/amd64") && last.contains("--platform=linux/arm64"), "{run}");
    assert!(run.stdout.is_empty(), "{run}");
    let run = build(&["--platform=linux/arm64"]);
    run.assert_success();
    assert_eq!(elf_machine(run.stdout.trim()), EM_AARCH64);
}

/// With `--platform=all`, an entry of the base index that names no platform is built too, as
/// ko does, for the platform its config gives; the built index names that platform.
#[test]
fn all_platforms_builds_an_index_entry_that_names_no_platform() {
    let repo = unique_repo("unnamed-entry");
    let base = ko(&["build", "./cmd/greeter", "-B", "--platform=linux/amd64,linux/arm64"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", &repo)
        .run();
    base.assert_success();
    let mut index = skopeo_inspect(base.stdout.trim(), true);
    index["manifests"][1].as_object_mut().unwrap().remove("platform");
    let base = put_oci_index(&index, &format!("{repo}/greeter:unnamed"));

    let run = hello_on(&base, "all", &repo);
    let reference = run.stdout.trim();
    let built = skopeo_inspect(reference, true);
    assert_eq!(platforms_of(&built), ["linux/amd64", "linux/arm64"], "{built}");
    let name = reference.split('@').next().unwrap();
    let child = |i: usize| format!("{name}@{}", built["manifests"][i]["digest"].as_str().unwrap());
    assert_eq!(elf_machine(&child(0)), EM_X86_64);
    assert_eq!(elf_machine(&child(1)), EM_AARCH64);
}
