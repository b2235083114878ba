//! Signing again and where keys come from: building an unchanged image again with the same
//! key leaves its referrers as they are (another key still adds its own), checked with the
//! real cosign v3; a key error names where the key was given and `~/` is the home directory.

use crate::sign::{PASSWORD, build_signed, key_pair, verify};
use crate::util::*;

/// The referrers fallback index of `reference` (`repo@sha256:<hex>`): the artifact types listed
/// (the SBOM's and the Sigstore bundles').
fn fallback_referrers(reference: &str) -> Vec<String> {
    let (repo, digest) = reference.rsplit_once('@').unwrap();
    let (host, path) = repo.split_once('/').unwrap();
    let url = format!("http://{host}/v2/{path}/manifests/{}", digest.replacen(':', "-", 1));
    let out = std::process::Command::new("curl")
        .args(["-fsS", "-H", "Accept: application/vnd.oci.image.index.v1+json", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "GET {url}: {}", String::from_utf8_lossy(&out.stderr));
    let index: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    index["manifests"].as_array().unwrap().iter().map(|d| d["artifactType"].as_str().unwrap().to_string()).collect()
}

/// An unchanged image built again with the same key is not signed again: its signature,
/// provenance and SBOM attestation are there already (the fallback index stays as it was,
/// where it used to grow by three entries per build). A claim that changed (another SBOM)
/// is attested anew; another key adds its own.
#[test]
fn an_unchanged_image_is_not_signed_again_with_the_same_key() {
    let (_keys, key, public) = key_pair();
    let repo = unique_repo("sign-again");
    let first = build_signed(&fixture("hello"), &repo, &key, &[]);
    first.assert_success();
    let reference = first.stdout_lines()[0].to_string();
    let listed = fallback_referrers(&reference);
    let bundles = |listed: &[String]| listed.iter().filter(|t| t.starts_with("application/vnd.dev.sigstore")).count();
    assert_eq!(bundles(&listed), 3, "signature, provenance, SBOM attestation: {listed:?}\n{first}");

    let second = build_signed(&fixture("hello"), &repo, &key, &[]);
    second.assert_success();
    assert_eq!(second.stdout_lines()[0], reference, "the same image: {second}");
    assert!(second.stderr.contains("Already signed with this key"), "{second}");
    assert_eq!(fallback_referrers(&reference), listed, "nothing added: {second}");
    let verified = verify(&public, &reference);
    assert!(verified.success(), "cosign verify after the second build failed:\n{verified}");

    // Another SBOM of the same image is another claim: attested, the rest left as it is.
    let cyclonedx = build_signed(&fixture("hello"), &repo, &key, &["--sbom=cyclonedx"]);
    cyclonedx.assert_success();
    assert_eq!(cyclonedx.stdout_lines()[0], reference, "the same image: {cyclonedx}");
    assert!(cyclonedx.stderr.contains("(signature, SLSA provenance)"), "{cyclonedx}");
    assert_eq!(bundles(&fallback_referrers(&reference)), 4, "the CycloneDX attestation is added: {cyclonedx}");

    let (_other_keys, other, other_public) = key_pair();
    let third = build_signed(&fixture("hello"), &repo, &other, &[]);
    third.assert_success();
    assert!(!third.stderr.contains("Already signed"), "{third}");
    assert_eq!(bundles(&fallback_referrers(&reference)), 7, "another key's three are added: {third}");
    let verified = verify(&other_public, &reference);
    assert!(verified.success(), "cosign verify with the other key failed:\n{verified}");
    assert!(verify(&public, &reference).success(), "the first key's signature stays");
}

/// A key error names where the key was given (`--sign-key`, `KO_SIGN_KEY`, `signKey` in the
/// file that says it); `~/` in the variable or the file is the home directory, as a shell
/// makes it of the flag; `--sign-legacy-tags` without any key says nothing is signed.
#[test]
fn a_key_is_named_where_it_was_given_and_a_home_path_is_expanded() {
    let (keys, _key, public) = key_pair();
    let config = tempfile::tempdir().unwrap();
    let build = |ko_yaml: Option<&str>, env_key: Option<&str>, extra: &[&str]| {
        let mut args = vec!["build", "."];
        args.extend_from_slice(extra);
        let mut cmd = ko(&args)
            .cwd(fixture("hello"))
            .env("KO_DOCKER_REPO", unique_repo("sign-origin"))
            .env("HOME", keys.path())
            .env("COSIGN_PASSWORD", PASSWORD)
            .env("KO_CONFIG_PATH", config.path());
        if let Some(text) = ko_yaml {
            std::fs::write(config.path().join(".ko.yaml"), text).unwrap();
        }
        if let Some(value) = env_key {
            cmd = cmd.env("KO_SIGN_KEY", value);
        }
        cmd.run()
    };
    let run = build(Some("signKey: ~/cosign.key\n"), None, &[]);
    run.assert_success();
    let verified = verify(&public, run.stdout_lines()[0]);
    assert!(verified.success(), "the key of signKey: ~/cosign.key did not sign:\n{run}\n{verified}");

    let run = build(Some("signKey: missing.key\n"), None, &[]);
    run.assert_failure();
    let file = config.path().join(".ko.yaml");
    let wanted = format!("signKey in {}: {}", file.display(), config.path().join("missing.key").display());
    assert!(run.stderr.contains(&wanted), "wanted {wanted:?}:\n{run}");
    assert!(!run.stderr.contains("--sign-key"), "{run}");

    let run = build(Some("{}\n"), Some("~/nothing.key"), &[]);
    run.assert_failure();
    let wanted = format!("KO_SIGN_KEY {}:", keys.path().join("nothing.key").display());
    assert!(run.stderr.contains(&wanted), "wanted {wanted:?}:\n{run}");

    let run = build(Some("{}\n"), None, &["--sign-legacy-tags"]);
    run.assert_success();
    assert!(run.stderr.contains("warning: --sign-legacy-tags: no --sign-key"), "{run}");
}
