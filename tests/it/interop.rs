//! Registries that answer differently from distribution but within the specs, as real ones
//! do, through [`FaultProxy`] in front of the test registry: an upload `Location` relative to
//! the request's URL, a cross-repository mount refused with 403 (Harbor, for a source the
//! token may not read), and 403 for a manifest or tag the registry does not have
//! (Artifactory), and a blob refused in the commit `PUT` (405: bytes only in a `PATCH`). Each
//! build must succeed, and skopeo must pull what it pushed.

use crate::fault_proxy::{Fault, FaultProxy, Rule};
use crate::util::*;

fn forbidden() -> Fault {
    Fault::Status { code: 403, retry_after: None }
}

/// `kubectl-ko-build . -v` of the hello fixture pushing to `repo`, with extra variables.
fn hello_build(repo: &str) -> KoCmd {
    ko(&["build", ".", "-v"]).cwd(fixture("hello")).env("KO_DOCKER_REPO", repo)
}

/// The one reference a successful build printed, named in the registry behind the proxy.
#[track_caller]
fn pushed(run: &Run, proxy: &FaultProxy) -> String {
    run.assert_success();
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 1, "{run}");
    lines[0].replacen(&proxy.host, &registry(), 1)
}

#[track_caller]
fn assert_pulls(reference: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:pulled", dir.path().display());
    skopeo(&["copy", "--src-tls-verify=false", &skopeo_name(reference), &dest]).assert_success();
}

#[test]
fn an_upload_location_relative_to_the_request_is_followed() {
    let proxy = FaultProxy::start(
        &registry(),
        vec![Rule::new(None, "/blobs/uploads/", Fault::RelativeLocation).times(usize::MAX)],
    );
    let repo = format!("{}/{}", proxy.host, unique_name("relative-location"));
    let run = hello_build(&repo).run();
    let reference = pushed(&run, &proxy);
    assert!(!proxy.faulted().is_empty(), "no upload went through the rewrite: {:#?}", proxy.seen());
    assert_pulls(&reference);
}

#[test]
fn a_refused_mount_falls_back_to_an_upload() {
    let proxy = FaultProxy::start(
        &registry(),
        vec![Rule::new(Some("POST"), "/blobs/uploads/", forbidden()).also("mount=").times(usize::MAX)],
    );
    // A base in the same registry: its layers are offered as mounts first.
    let base_run = hello_build(&unique_repo("mount-base")).arg("--bare").run();
    base_run.assert_success();
    let base = base_run.stdout_lines()[0].replacen(&registry(), &proxy.host, 1);
    let repo = format!("{}/{}", proxy.host, unique_name("mount-refused"));
    let run = hello_build(&repo).env("KO_DEFAULTBASEIMAGE", &base).run();
    let reference = pushed(&run, &proxy);
    assert!(!proxy.faulted().is_empty(), "no mount was tried: {:#?}", proxy.seen());
    assert!(run.stderr.contains("uploading it"), "{run}");
    assert_pulls(&reference);
}

#[test]
fn forbidden_for_a_missing_manifest_or_tag_is_taken_as_absent() {
    let proxy = FaultProxy::start(
        &registry(),
        vec![
            Rule::new(Some("HEAD"), "/manifests/sha256:", forbidden()).times(usize::MAX),
            Rule::new(Some("GET"), "/manifests/sha256-", forbidden()).times(usize::MAX),
        ],
    );
    // The image is pushed straight to the registry first; the build through the proxy then
    // has every layer in its cache and finds each in the repository, so it asks whether the
    // image is there too: 403.
    let name = unique_name("forbidden-absent");
    let cache = tempfile::tempdir().unwrap();
    let direct = hello_build(&format!("{}/{name}", registry())).arg("--bare").env("KOCACHE", cache.path()).run();
    direct.assert_success();
    let reference = direct.stdout_lines()[0].to_string();
    let repo = format!("{}/{name}", proxy.host);
    let run = hello_build(&repo).arg("--bare").env("KOCACHE", cache.path()).run();
    assert_eq!(pushed(&run, &proxy), reference);
    let faulted: Vec<String> = proxy.faulted().iter().map(|s| format!("{} {}", s.method, s.path)).collect();
    assert!(faulted.iter().any(|f| f.starts_with("HEAD ")), "{faulted:?}");
    assert!(faulted.iter().any(|f| f.starts_with("GET ")), "the SBOM's fallback index was not asked for: {faulted:?}");
    assert_pulls(&reference);
}

#[test]
fn a_registry_that_takes_bytes_only_in_a_patch_gets_them_there() {
    let proxy = FaultProxy::start(
        &registry(),
        vec![Rule::new(Some("PUT"), "/blobs/uploads/", Fault::StatusIfBody { code: 405 }).times(usize::MAX)],
    );
    let repo = format!("{}/{}", proxy.host, unique_name("patch-only"));
    let run = hello_build(&repo).run();
    let reference = pushed(&run, &proxy);
    // The small blobs in flight when the first refusal comes are refused once each (how many
    // depends on -j); every later one goes up with PATCH.
    assert!(!proxy.faulted().is_empty(), "{:#?}", proxy.seen());
    assert!(run.stderr.contains("uploading with PATCH"), "{run}");
    assert_pulls(&reference);
}
