//! Signing and provenance (`--sign-key`), checked with the real cosign v3: `cosign verify` and
//! `cosign verify-attestation` accept what a build pushes (one platform and an index), the
//! decoded SLSA provenance names the base digest, the Go version and the modules, another key
//! or a moved tag fails, a wrong password is one line with nothing tagged, plain PKCS#8 P-256
//! and Ed25519 keys work, RSA and P-384 keys (plain, or imported with `cosign import-key-pair`)
//! verify in both cosign's bundle and legacy forms, `--provenance=false` leaves provenance out, and `--sign-legacy-tags` adds the tags
//! older cosigns read.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::util::*;

pub(crate) const PASSWORD: &str = "correct horse battery";

/// `cosign generate-key-pair` in a new directory: `(dir, cosign.key, cosign.pub)`.
pub(crate) fn key_pair() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(cosign());
    cmd.arg("generate-key-pair").current_dir(dir.path()).env("COSIGN_PASSWORD", PASSWORD);
    let run = capture(cmd, Duration::from_secs(60));
    assert!(run.success(), "cosign generate-key-pair failed:\n{run}");
    let (key, public) = (dir.path().join("cosign.key"), dir.path().join("cosign.pub"));
    (dir, key, public)
}

/// Runs cosign with the flags an offline check of a key-signed image needs.
fn cosign_check(subcommand: &str, public: &Path, extra: &[&str], reference: &str) -> Run {
    let mut cmd = Command::new(cosign());
    cmd.arg(subcommand)
        .arg("--key")
        .arg(public)
        .args(["--insecure-ignore-tlog=true", "--allow-insecure-registry"])
        .args(extra)
        .arg(reference);
    // cosign keeps a TUF cache under HOME; give it a throw-away one.
    let home = tempfile::tempdir().unwrap();
    cmd.env("HOME", home.path());
    capture(cmd, Duration::from_secs(120))
}

/// Asserts that cosign refused for want of a signature or attestation the key verifies, not
/// for another reason (a registry it could not reach, a flag it does not know).
#[track_caller]
fn assert_refused(run: &Run, what: &str) {
    assert!(!run.success(), "{what}:\n{run}");
    let said = run.stderr.to_lowercase();
    let reasons =
        ["no matching signatures", "no matching attestations", "no signatures found", "none of the attestations"];
    assert!(
        reasons.iter().any(|r| said.contains(r)),
        "cosign failed for another reason than a missing signature:\n{run}"
    );
}

pub(crate) fn verify(public: &Path, reference: &str) -> Run {
    cosign_check("verify", public, &[], reference)
}

pub(crate) fn verify_attestation(public: &Path, kind: &str, reference: &str) -> Run {
    cosign_check("verify-attestation", public, &["--type", kind], reference)
}

/// The in-toto statements `cosign verify-attestation` printed, decoded.
pub(crate) fn statements(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|envelope| {
            let payload = envelope["payload"].as_str()?;
            let bytes = base64::engine::general_purpose::STANDARD.decode(payload).ok()?;
            serde_json::from_slice(&bytes).ok()
        })
        .collect()
}

pub(crate) fn build_signed(dir: &Path, repo: &str, key: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["build", ".", "--sign-key", key.to_str().unwrap()];
    args.extend_from_slice(extra);
    ko(&args)
        .cwd(dir)
        .env("KO_DOCKER_REPO", repo)
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .run()
}

fn go_version() -> String {
    let out = Command::new("go").args(["env", "GOVERSION"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The provenance of `reference` as cosign decoded it, after checking it is about `digest`.
fn provenance(public: &Path, reference: &str, digest: &str) -> Value {
    let run = verify_attestation(public, "slsaprovenance1", reference);
    assert!(run.success(), "cosign verify-attestation --type slsaprovenance1 failed:\n{run}");
    let statements = statements(&run);
    let statement = statements.first().unwrap_or_else(|| panic!("no statement printed:\n{run}"));
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(statement["subject"][0]["digest"]["sha256"], digest.trim_start_matches("sha256:"));
    statement["predicate"].clone()
}

fn tags(repo: &str) -> Vec<String> {
    registry_tags(repo)
}

#[test]
fn a_signed_image_verifies_with_cosign_and_its_provenance_names_base_go_and_modules() {
    let (_keys, key, public) = key_pair();
    let repo = unique_repo("sign");
    let run = build_signed(&fixture("withdeps"), &repo, &key, &["--ldflags=-s -w"]);
    run.assert_success();
    assert!(!run.stderr.contains(PASSWORD), "{run}");
    let reference = run.stdout_lines()[0].to_string();
    let digest = reference.rsplit_once('@').unwrap().1.to_string();

    let verified = verify(&public, &reference);
    assert!(verified.success(), "cosign verify failed:\n{verified}");
    let sbom = verify_attestation(&public, "spdxjson", &reference);
    assert!(sbom.success(), "cosign verify-attestation --type spdxjson failed:\n{sbom}");

    let predicate = provenance(&public, &reference, &digest);
    let manifest = skopeo_inspect(&reference, true);
    let base_digest = manifest["annotations"]["org.opencontainers.image.base.digest"].as_str().unwrap();
    let definition = &predicate["buildDefinition"];
    assert_eq!(definition["internalParameters"]["goVersion"], go_version(), "{predicate}");
    assert_eq!(definition["externalParameters"]["importPath"], "example.com/withdeps");
    assert_eq!(definition["externalParameters"]["ldflags"], serde_json::json!(["-s -w"]), "{predicate}");
    let args = definition["externalParameters"]["goBuildArgs"].as_array().unwrap();
    assert!(args.iter().any(|a| a == "-ldflags=-s -w"), "{predicate}");
    assert_eq!(predicate["runDetails"]["metadata"]["startedOn"], "2023-11-14T22:13:20Z");
    let deps = definition["resolvedDependencies"].as_array().unwrap();
    let base = deps.iter().find(|d| d["name"] == "base").expect("the base is a dependency");
    assert_eq!(base["digest"]["sha256"], base_digest.trim_start_matches("sha256:"), "{predicate}");
    let head = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(fixture("withdeps")).output().unwrap();
    let source = deps.iter().find(|d| d["name"] == "source").expect("the source commit is a dependency");
    assert_eq!(source["digest"]["gitCommit"], String::from_utf8_lossy(&head.stdout).trim(), "{predicate}");
    let uuid = deps.iter().find(|d| d["name"] == "github.com/google/uuid").expect("the module is listed");
    assert_eq!(uuid["uri"], "pkg:golang/github.com/google/uuid@v1.6.0");
    // go.sum's h1: hash is a dirhash, not a SHA-256 of a file: in-toto names it dirHash.
    assert!(uuid["digest"]["dirHash"].as_str().is_some_and(|h| h.len() == 64), "{uuid}");
    assert!(uuid["digest"].get("sha256").is_none(), "{uuid}");

    // Another key does not verify it; the legacy tags are not there by default.
    let (_other, _, other_public) = key_pair();
    assert_refused(&verify(&other_public, &reference), "another key verified the image");
    let hex = digest.trim_start_matches("sha256:");
    assert!(!tags(&repo_of(&reference)).contains(&format!("sha256-{hex}.sig")));
}

/// The repository of a printed `repo@sha256:...` reference.
fn repo_of(reference: &str) -> String {
    reference.rsplit_once('@').unwrap().0.to_string()
}

#[test]
fn a_two_platform_index_and_each_image_verify() {
    let (_keys, key, public) = key_pair();
    let repo = unique_repo("sign-index");
    let run = build_signed(&fixture("withdeps"), &repo, &key, &["--platform=linux/amd64,linux/arm64"]);
    run.assert_success();
    let reference = run.stdout_lines()[0].to_string();
    let index = skopeo_inspect(&reference, true);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");

    let verified = verify(&public, &reference);
    assert!(verified.success(), "cosign verify of the index failed:\n{verified}");
    let digest = reference.rsplit_once('@').unwrap().1;
    let predicate = provenance(&public, &reference, digest);
    let platforms = &predicate["buildDefinition"]["externalParameters"]["platforms"];
    assert_eq!(platforms, &serde_json::json!(["linux/amd64", "linux/arm64"]), "{predicate}");
    let bases = |predicate: &Value| -> Vec<Value> {
        let deps = predicate["buildDefinition"]["resolvedDependencies"].as_array().unwrap();
        deps.iter().filter(|d| d["name"] == "base").cloned().collect()
    };
    let index_bases = bases(&predicate);
    let mut image_bases = Vec::new();
    for entry in index["manifests"].as_array().unwrap() {
        let image = format!("{}@{}", repo_of(&reference), entry["digest"].as_str().unwrap());
        let run = verify(&public, &image);
        assert!(run.success(), "cosign verify of {image} failed:\n{run}");
        let predicate = provenance(&public, &image, entry["digest"].as_str().unwrap());
        let platform = format!("{}/{}", entry["platform"]["os"].as_str().unwrap(), entry["platform"]["architecture"]);
        let platform = platform.replace('"', "");
        assert_eq!(predicate["buildDefinition"]["externalParameters"]["platforms"][0], platform.as_str());
        image_bases.extend(bases(&predicate));
    }
    // The built-in base has no index: the index's provenance names each platform's base.
    assert_eq!(index_bases, image_bases, "{predicate}");
    assert_eq!(index_bases.len(), 2, "{predicate}");
}

#[test]
fn a_tag_moved_to_an_unsigned_image_fails_verification() {
    let (_keys, key, public) = key_pair();
    let repo = unique_repo("sign-tamper");
    let signed = build_signed(&fixture("withdeps"), &repo, &key, &["--bare", "-t", "v1"]);
    signed.assert_success();
    let tagged = format!("{repo}:v1");
    let run = verify(&public, &tagged);
    assert!(run.success(), "cosign verify of the signed tag failed:\n{run}");

    // Someone points the tag at another image.
    let other = ko(&["build", ".", "--bare", "-t", "v1"]).cwd(fixture("hello")).env("KO_DOCKER_REPO", &repo).run();
    other.assert_success();
    assert_refused(&verify(&public, &tagged), "cosign verified a tag moved to an unsigned image");
}

#[test]
fn a_wrong_password_is_one_line_and_nothing_is_pushed() {
    let (_keys, key, _) = key_pair();
    let repo = unique_repo("sign-password");
    let run = ko(&["build", ".", "--bare", "--sign-key", key.to_str().unwrap(), "-t", "v1"])
        .cwd(fixture("withdeps"))
        .env("KO_DOCKER_REPO", &repo)
        .env("COSIGN_PASSWORD", "not-the-password-42")
        .run();
    run.assert_failure();
    assert!(!run.stderr.contains("not-the-password-42") && !run.stdout.contains("not-the-password-42"), "{run}");
    let errors: Vec<&str> = run.stderr.lines().filter(|l| l.contains("wrong password")).collect();
    assert_eq!(errors.len(), 1, "{run}");
    assert!(!run.stderr.contains("Building"), "the key is checked before any build:\n{run}");
    assert!(tags(&repo).is_empty(), "something was pushed");

    // Nothing published, nothing signed: said, not left to be found out.
    let run = ko(&["build", ".", "--push=false", "--sign-key", key.to_str().unwrap()])
        .cwd(fixture("withdeps"))
        .env("KO_DOCKER_REPO", &repo)
        .env("COSIGN_PASSWORD", PASSWORD)
        .run();
    run.assert_success();
    assert!(run.stderr.contains("warning: --sign-key: --push=false publishes nothing, so nothing is signed"), "{run}");
}

/// An unencrypted PKCS#8 key pair made by openssl with these `genpkey` arguments.
fn openssl_key_pair(dir: &Path, name: &str, genpkey: &[&str]) -> (PathBuf, PathBuf) {
    let (key, public) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.pub")));
    let openssl = |args: &[&str]| {
        let mut cmd = Command::new(tool("openssl"));
        cmd.args(args);
        let run = capture(cmd, Duration::from_secs(30));
        assert!(run.success(), "openssl {args:?} failed:\n{run}");
    };
    let (k, p) = (key.to_str().unwrap(), public.to_str().unwrap());
    openssl(&[&["genpkey"], genpkey, &["-out", k]].concat());
    openssl(&["pkey", "-in", k, "-pubout", "-out", p]);
    (key, public)
}

#[test]
fn an_unencrypted_pkcs8_key_signs_and_provenance_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) =
        openssl_key_pair(dir.path(), "p256", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let repo = unique_repo("sign-pkcs8");
    let run = ko(&["build", ".", "--sign-key", key.to_str().unwrap(), "--provenance=false"])
        .cwd(fixture("withdeps"))
        .env("KO_DOCKER_REPO", &repo)
        .env_remove("COSIGN_PASSWORD")
        .run();
    run.assert_success();
    let reference = run.stdout_lines()[0].to_string();
    let verified = verify(&public, &reference);
    assert!(verified.success(), "cosign verify failed:\n{verified}");
    let slsa = verify_attestation(&public, "slsaprovenance1", &reference);
    assert_refused(&slsa, "--provenance=false still attested provenance");
    let sbom = verify_attestation(&public, "spdxjson", &reference);
    assert!(sbom.success(), "the SBOM is attested without provenance:\n{sbom}");
}

#[test]
fn an_ed25519_key_signs_and_attests_too() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = openssl_key_pair(dir.path(), "ed25519", &["-algorithm", "ed25519"]);
    let run = ko(&["build", ".", "--sign-key", key.to_str().unwrap()])
        .cwd(fixture("withdeps"))
        .env("KO_DOCKER_REPO", unique_repo("sign-ed25519"))
        .run();
    run.assert_success();
    let reference = run.stdout_lines()[0].to_string();
    let verified = verify(&public, &reference);
    assert!(verified.success(), "cosign verify failed:\n{verified}");
    let digest = reference.rsplit_once('@').unwrap().1;
    let predicate = provenance(&public, &reference, digest);
    assert_eq!(predicate["buildDefinition"]["externalParameters"]["importPath"], "example.com/withdeps");
    let (_ecdsa_keys, _, ecdsa_public) = key_pair();
    assert_refused(&verify(&ecdsa_public, &reference), "another key verified the image");
}

/// A key imported into cosign's encrypted format with `cosign import-key-pair`: `(key, pub)`.
fn cosign_import(dir: &Path, pem: &Path, prefix: &str) -> (PathBuf, PathBuf) {
    let mut cmd = Command::new(cosign());
    cmd.args(["import-key-pair", "--key"])
        .arg(pem)
        .args(["--output-key-prefix", prefix])
        .current_dir(dir)
        .env("COSIGN_PASSWORD", PASSWORD);
    let run = capture(cmd, Duration::from_secs(60));
    assert!(run.success(), "cosign import-key-pair failed:\n{run}");
    (dir.join(format!("{prefix}.key")), dir.join(format!("{prefix}.pub")))
}

#[test]
fn rsa_and_p384_keys_sign_as_cosign_verifies_them() {
    let dir = tempfile::tempdir().unwrap();
    let (rsa, _) = openssl_key_pair(dir.path(), "rsa", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"]);
    let imported = cosign_import(dir.path(), &rsa, "imported-rsa");
    let p384 = openssl_key_pair(dir.path(), "p384", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]);
    for (name, (key, public)) in [("rsa", imported), ("p384", p384)] {
        let run = ko(&["build", ".", "--sign-key", key.to_str().unwrap(), "--sign-legacy-tags"])
            .cwd(fixture("withdeps"))
            .env("KO_DOCKER_REPO", unique_repo(&format!("sign-{name}")))
            .env("COSIGN_PASSWORD", PASSWORD)
            .run();
        run.assert_success();
        let reference = run.stdout_lines()[0].to_string();
        let verified = verify(&public, &reference);
        assert!(verified.success(), "cosign verify of the {name} key's signature failed:\n{verified}");
        let legacy = cosign_check("verify", &public, &["--new-bundle-format=false"], &reference);
        assert!(legacy.success(), "cosign's legacy verify of the {name} key failed:\n{legacy}");
        let slsa = verify_attestation(&public, "slsaprovenance1", &reference);
        assert!(slsa.success(), "the {name} key's provenance did not verify:\n{slsa}");
    }
}

#[test]
fn legacy_tags_are_added_on_request() {
    let (_keys, key, public) = key_pair();
    let repo = unique_repo("sign-legacy");
    let run = build_signed(&fixture("withdeps"), &repo, &key, &["--sign-legacy-tags"]);
    run.assert_success();
    let reference = run.stdout_lines()[0].to_string();
    let hex = reference.rsplit_once("@sha256:").unwrap().1;
    let all = tags(&repo_of(&reference));
    for suffix in ["sig", "att"] {
        assert!(all.contains(&format!("sha256-{hex}.{suffix}")), "no .{suffix} tag among {all:?}");
    }
    let sig = skopeo_inspect(&format!("{}:sha256-{hex}.sig", repo_of(&reference)), true);
    assert_eq!(sig["layers"][0]["mediaType"], "application/vnd.dev.cosign.simplesigning.v1+json", "{sig}");
    let verified = verify(&public, &reference);
    assert!(verified.success(), "cosign verify failed with legacy tags present:\n{verified}");
    // cosign's legacy path reads only the tags: the simple-signing payload names the repository.
    let legacy = cosign_check("verify", &public, &["--new-bundle-format=false"], &reference);
    assert!(legacy.success(), "cosign verify --new-bundle-format=false failed:\n{legacy}");
    assert!(legacy.stdout.contains(&format!("\"docker-reference\":\"{}\"", repo_of(&reference))), "{legacy}");
    let att = cosign_check(
        "verify-attestation",
        &public,
        &["--new-bundle-format=false", "--type", "slsaprovenance1"],
        &reference,
    );
    assert!(att.success(), "the legacy .att tag did not verify:\n{att}");
}

#[test]
fn legacy_tags_keep_other_signers_and_replace_this_keys_own() {
    let (_keys, key, public) = key_pair();
    let (_other_keys, other_key, other_public) = key_pair();
    let repo = unique_repo("sign-legacy-merge");
    let first = build_signed(&fixture("withdeps"), &repo, &key, &["--sign-legacy-tags"]);
    first.assert_success();
    let reference = first.stdout_lines()[0].to_string();

    // Another party signs the same image the cosign 2 way, onto the same .sig tag.
    let mut cmd = Command::new(cosign());
    cmd.args(["sign", "--key"]).arg(&other_key).args([
        "--use-signing-config=false",
        "--tlog-upload=false",
        "--new-bundle-format=false",
        "--allow-insecure-registry",
        "-y",
        &reference,
    ]);
    let home = tempfile::tempdir().unwrap();
    cmd.env("COSIGN_PASSWORD", PASSWORD).env("HOME", home.path());
    let signed = capture(cmd, Duration::from_secs(120));
    assert!(signed.success(), "cosign sign failed:\n{signed}");

    // The same image signed again by kubectl-ko: the other signature stays, ours is not doubled.
    let again = build_signed(&fixture("withdeps"), &repo, &key, &["--sign-legacy-tags"]);
    again.assert_success();
    assert_eq!(again.stdout_lines()[0], reference);
    for public in [&public, &other_public] {
        let legacy = cosign_check("verify", public, &["--new-bundle-format=false"], &reference);
        assert!(legacy.success(), "legacy verify with {} failed:\n{legacy}", public.display());
    }
    let hex = reference.rsplit_once("@sha256:").unwrap().1;
    let sig = skopeo_inspect(&format!("{}:sha256-{hex}.sig", repo_of(&reference)), true);
    assert_eq!(sig["layers"].as_array().unwrap().len(), 2, "{sig}");
}

#[test]
fn an_oci_layout_and_a_tarball_hold_the_signature_and_attestations_as_referrers() {
    let (keys, key, public) = key_pair();
    let dir = tempfile::tempdir().unwrap();
    let (layout, tarball) = (dir.path().join("layout"), dir.path().join("images.tar"));
    let layout_arg = format!("--oci-layout-path={}", layout.display());
    let tarball_arg = format!("--tarball={}", tarball.display());
    let args = ["--push=false", "-B", &layout_arg, &tarball_arg];
    let run = build_signed(&fixture("withdeps"), &unique_repo("sign-layout"), &key, &args);
    run.assert_success();
    assert!(!run.stderr.contains("cannot hold signatures"), "{run}");
    let digest = run.stdout_lines()[0].rsplit_once('@').unwrap().1.to_string();
    assert_layout_referrers(&layout, &digest, keys.path(), &public);
    // The signed layout is still a base with one image: the referrers are not images.
    let on_it = ko(&["build", ".", "--push=false"])
        .cwd(fixture("hello"))
        .env("KO_DEFAULTBASEIMAGE", format!("oci-layout://{}", layout.display()))
        .run();
    on_it.assert_success();

    // The archive is an OCI layout too, and docker still loads it.
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let mut cmd = Command::new(tool("tar"));
    cmd.arg("-xf").arg(&tarball).arg("-C").arg(&unpacked);
    let untar = capture(cmd, Duration::from_secs(60));
    assert!(untar.success(), "{untar}");
    assert_layout_referrers(&unpacked, &digest, keys.path(), &public);
    let mut cmd = Command::new(tool("docker"));
    cmd.env("DOCKER_HOST", docker_host()).arg("load").arg("-i").arg(&tarball);
    let load = capture(cmd, Duration::from_secs(120));
    assert!(load.success(), "docker load of a signed tarball failed:\n{load}");
}

/// Checks that the layout at `root` lists, for the image `digest`, a signature, a SLSA
/// provenance and an SPDX attestation, each a bundle referrer whose envelope `public` verifies.
fn assert_layout_referrers(root: &Path, digest: &str, scratch: &Path, public: &Path) {
    let read =
        |digest: &str| std::fs::read(root.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap();
    let index: Value = serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
    let mut predicate_types = Vec::new();
    // Referrers carry the bundle's artifactType; an image carries none, or in a layout its
    // config's media type (as ko lists images there).
    let image_config = "application/vnd.oci.image.config.v1+json";
    let referrer = |d: &&Value| d.get("artifactType").is_some_and(|t| t != image_config);
    for entry in index["manifests"].as_array().unwrap().iter().filter(referrer) {
        assert_eq!(entry["artifactType"], "application/vnd.dev.sigstore.bundle.v0.3+json", "{index}");
        let manifest: Value = serde_json::from_slice(&read(entry["digest"].as_str().unwrap())).unwrap();
        assert_eq!(manifest["subject"]["digest"], digest, "{manifest}");
        let bundle: Value = serde_json::from_slice(&read(manifest["layers"][0]["digest"].as_str().unwrap())).unwrap();
        let envelope = &bundle["dsseEnvelope"];
        let b64 = base64::engine::general_purpose::STANDARD;
        let payload = b64.decode(envelope["payload"].as_str().unwrap()).unwrap();
        let signature = b64.decode(envelope["signatures"][0]["sig"].as_str().unwrap()).unwrap();
        assert_dsse_signature(scratch, public, &payload, &signature);
        let statement: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(statement["subject"][0]["digest"]["sha256"], digest.trim_start_matches("sha256:"));
        predicate_types.push(statement["predicateType"].as_str().unwrap().to_string());
    }
    predicate_types.sort();
    let want = ["https://sigstore.dev/cosign/sign/v1", "https://slsa.dev/provenance/v1", "https://spdx.dev/Document"];
    assert_eq!(predicate_types, want, "{index}");
}

/// Checks an ECDSA signature over DSSE's pre-authentication encoding with openssl and `public`.
fn assert_dsse_signature(scratch: &Path, public: &Path, payload: &[u8], signature: &[u8]) {
    let kind = "application/vnd.in-toto+json";
    let mut pae = format!("DSSEv1 {} {kind} {} ", kind.len(), payload.len()).into_bytes();
    pae.extend_from_slice(payload);
    let (message, sig) = (scratch.join("pae"), scratch.join("sig"));
    std::fs::write(&message, pae).unwrap();
    std::fs::write(&sig, signature).unwrap();
    let mut cmd = Command::new(tool("openssl"));
    cmd.args(["dgst", "-sha256", "-verify"]).arg(public).arg("-signature").arg(&sig).arg(&message);
    let run = capture(cmd, Duration::from_secs(30));
    assert!(run.success() && run.stdout.contains("Verified OK"), "openssl rejected the envelope's signature:\n{run}");
}

#[test]
fn ko_local_says_once_that_the_daemon_cannot_hold_signatures() {
    let (_keys, key, _) = key_pair();
    let run = ko(&["build", ".", "--sign-key", key.to_str().unwrap()])
        .cwd(fixture("hello"))
        .env("DOCKER_HOST", docker_host())
        .env("KO_DOCKER_REPO", format!("ko.local/{}", unique_name("sign")))
        .env("COSIGN_PASSWORD", PASSWORD)
        .run();
    run.assert_success();
    let warned: Vec<&str> = run.stderr.lines().filter(|l| l.contains("cannot hold signatures")).collect();
    assert_eq!(warned.len(), 1, "{run}");
    assert!(warned[0].contains("Docker daemon"), "{run}");
}

#[test]
fn the_key_comes_from_ko_sign_key_or_ko_yaml_and_a_cyclonedx_sbom_is_attested() {
    let (keys, key, public) = key_pair();
    let from_env = ko(&["build", ".", "--sbom=cyclonedx"])
        .cwd(fixture("withdeps"))
        .env("KO_DOCKER_REPO", unique_repo("sign-env"))
        .env("KO_SIGN_KEY", &key)
        .env("COSIGN_PASSWORD", PASSWORD)
        .run();
    from_env.assert_success();
    let reference = from_env.stdout_lines()[0].to_string();
    let run = verify_attestation(&public, "cyclonedx", &reference);
    assert!(run.success(), "cosign verify-attestation --type cyclonedx failed:\n{run}");
    let statement = statements(&run).into_iter().next().expect("a statement");
    assert_eq!(statement["predicate"]["bomFormat"], "CycloneDX", "{statement}");

    // `signKey` in .ko.yaml, relative to the file's directory.
    std::fs::write(keys.path().join(".ko.yaml"), "signKey: cosign.key\n").unwrap();
    let from_config = ko(&["build", "."])
        .cwd(fixture("withdeps"))
        .env("KO_DOCKER_REPO", unique_repo("sign-config"))
        .env("KO_CONFIG_PATH", keys.path())
        .env("COSIGN_PASSWORD", PASSWORD)
        .run();
    from_config.assert_success();
    let reference = from_config.stdout_lines()[0].to_string();
    let verified = verify(&public, &reference);
    assert!(verified.success(), "cosign verify of the image signed with .ko.yaml's key failed:\n{verified}");
}

/// The empty JSON blob (`{}`) that only signature and attestation referrers hold.
const EMPTY_BLOB: &str = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

#[test]
fn a_signature_the_registry_refuses_fails_the_run_with_no_tag_moved() {
    use crate::fault_proxy::{Fault, FaultProxy, Rule};
    let (_keys, key, _) = key_pair();
    let rule = Rule::new(None, EMPTY_BLOB, Fault::Status { code: 400, retry_after: None }).times(usize::MAX);
    let proxy = FaultProxy::start(&registry(), vec![rule]);
    let name = unique_name("sign-refused");
    let run = build_signed(&fixture("withdeps"), &format!("{}/{name}", proxy.host), &key, &["--bare", "-t", "v1"]);
    run.assert_failure();
    assert!(!proxy.faulted().is_empty(), "the signature's blob was never sent:\n{run}");
    assert!(run.stdout.trim().is_empty(), "{run}");
    assert!(tags(&format!("{}/{name}", registry())).is_empty(), "a tag moved although signing failed:\n{run}");
}

#[test]
fn provenance_without_a_key_is_refused_and_a_missing_password_is_named() {
    let run =
        ko(&["build", ".", "--provenance"]).cwd(fixture("withdeps")).env("KO_DOCKER_REPO", unique_repo("x")).run();
    run.assert_failure();
    assert!(run.stderr.contains("--provenance") && run.stderr.contains("--sign-key"), "{run}");
    let (_keys, key, _) = key_pair();
    let run = ko(&["build", ".", "--sign-key", key.to_str().unwrap()])
        .cwd(fixture("withdeps"))
        .env("KO_DOCKER_REPO", unique_repo("x"))
        .env_remove("COSIGN_PASSWORD")
        .run();
    run.assert_failure();
    assert!(run.stderr.contains("set COSIGN_PASSWORD"), "{run}");
}

/// With `COSIGN_REPOSITORY`, the signature and attestations go there, beside the SBOMs, where
/// cosign (which reads the same variable) looks for them, and name the image all the same.
#[test]
fn cosign_repository_holds_the_signature_and_attestations() {
    let (_keys, key, public) = key_pair();
    let store = unique_repo("sign-store");
    let run = ko(&["build", ".", "--sign-key", key.to_str().unwrap()])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", unique_repo("sign-elsewhere"))
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("COSIGN_REPOSITORY", &store)
        .run();
    run.assert_success();
    let reference = run.stdout_lines()[0].to_string();
    let verify_with = |subcommand: &str, extra: &[&str], repository: Option<&str>| {
        let mut cmd = Command::new(cosign());
        cmd.arg(subcommand)
            .arg("--key")
            .arg(&public)
            .args(["--insecure-ignore-tlog=true", "--allow-insecure-registry"]);
        cmd.args(extra).arg(&reference);
        let home = tempfile::tempdir().unwrap();
        cmd.env("HOME", home.path());
        if let Some(repository) = repository {
            cmd.env("COSIGN_REPOSITORY", repository);
        }
        capture(cmd, Duration::from_secs(120))
    };
    let verified = verify_with("verify", &[], Some(&store));
    assert!(verified.success(), "cosign verify with COSIGN_REPOSITORY failed:\n{verified}");
    let attested = verify_with("verify-attestation", &["--type", "slsaprovenance1"], Some(&store));
    assert!(attested.success(), "cosign verify-attestation failed:\n{attested}");
    assert_refused(&verify_with("verify", &[], None), "the signature is not beside the image");
}
