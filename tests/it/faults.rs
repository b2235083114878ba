//! Transport faults between kubectl-ko and a real registry, injected by [`FaultProxy`]: error
//! statuses with and without `Retry-After`, resets and cuts in both directions, corrupted
//! bodies, a registry that stops answering, a slow link, a redirect chain across hosts, and
//! many processes pushing the same image at once. Each test asserts the exact outcome and,
//! when the run succeeds, pulls the pushed image from the registry itself with skopeo, which
//! verifies every blob's digest.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use crate::fault_proxy::{Fault, FaultProxy, Rule};
use crate::registries::{AuthRegistry, USER};
use crate::token_server::SERVICE;
use crate::util::*;

/// The no-progress timeout of the test that makes the registry fall silent, in seconds (the
/// default is 30). The other tests keep the default: the timeout applies to every request of a
/// run, and a loaded machine can keep a healthy registry's answer waiting for a few seconds,
/// which would then be retried and counted twice.
const STALL: &str = "2";

/// `kubectl-ko-build . -v` of the hello fixture (or a copy of it), pushing to `repo`.
fn build_in(dir: &Path, repo: &str) -> KoCmd {
    ko(&["build", ".", "-v"]).cwd(dir).env("KO_DOCKER_REPO", repo).env("KO_DATA_PATH_ALLOWED_ROOT", dir)
}

fn hello_build(repo: &str) -> KoCmd {
    build_in(&fixture("hello"), repo)
}

/// A new repository in the test registry, named through the proxy.
fn proxied(proxy: &FaultProxy, name: &str) -> String {
    format!("{}/{}", proxy.host, unique_name(name))
}

/// The one reference a successful build printed, moved from `from` (a proxy) to `to`.
#[track_caller]
fn pushed(run: &Run, from: &str, to: &str) -> String {
    run.assert_success();
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 1, "{run}");
    lines[0].replacen(from, to, 1)
}

/// Pulls an image from the registry with skopeo (which checks every digest) into an OCI layout.
#[track_caller]
fn assert_pulls(reference: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:pulled", dir.path().display());
    let name = skopeo_name(reference);
    let mut args = vec!["copy", "--src-tls-verify=false"];
    args.extend(extra);
    args.extend([name.as_str(), dest.as_str()]);
    skopeo(&args).assert_success();
}

/// The repository of a pushed reference (`host/path:tag@digest` or `host/path@digest`).
fn repo_of(reference: &str) -> String {
    let name = reference.split('@').next().unwrap();
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo.to_string(),
        _ => name.to_string(),
    }
}

/// The pushed image's repository has the tag `latest`.
#[track_caller]
fn assert_tagged(reference: &str) {
    let tags = registry_tags(&repo_of(reference));
    assert!(tags.iter().any(|t| t == "latest"), "{reference}: tags {tags:?}");
}

/// Every repository the run started publishing to (`Publishing NAME:TAG` on stderr), moved
/// from `from` (a proxy) to the registry itself, holds no tag.
#[track_caller]
fn assert_nothing_tagged(run: &Run, from: &str) {
    let names: Vec<String> = run
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("Publishing "))
        .map(|n| n.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')).map_or(n, |(name, _)| name))
        .map(|n| if from.is_empty() { n.to_string() } else { n.replacen(from, &registry(), 1) })
        .collect();
    assert!(!names.is_empty(), "nothing was being published: {run}");
    for name in names {
        let tags = registry_tags(&name);
        assert!(tags.is_empty(), "{name} has tags {tags:?}:\n{run}");
    }
}

#[track_caller]
fn assert_faults(proxy: &FaultProxy, count: usize, run: &Run) {
    let faulted = proxy.faulted();
    assert_eq!(faulted.len(), count, "faults applied: {faulted:#?}\nseen: {:#?}\n{run}", proxy.seen());
}

#[test]
fn too_many_requests_is_retried_with_and_without_retry_after() {
    let proxy = FaultProxy::start(
        &registry(),
        vec![
            Rule::new(Some("POST"), "/blobs/uploads/", Fault::Status { code: 429, retry_after: Some(1) }),
            Rule::new(Some("PUT"), "/manifests/", Fault::Status { code: 429, retry_after: None }).times(2),
        ],
    );
    let repo = proxied(&proxy, "fault-429");
    let run = hello_build(&repo).run();
    let reference = pushed(&run, &proxy.host, &registry());
    assert_faults(&proxy, 3, &run);
    assert!(run.stderr.contains("429"), "{run}");
    assert_pulls(&reference, &[]);
    assert_tagged(&reference);
}

#[test]
fn service_unavailable_is_retried_with_and_without_retry_after() {
    let proxy = FaultProxy::start(
        &registry(),
        vec![
            Rule::new(Some("HEAD"), "/blobs/", Fault::Status { code: 503, retry_after: None }).times(2),
            Rule::new(Some("PUT"), "/manifests/", Fault::Status { code: 503, retry_after: Some(1) }),
        ],
    );
    let repo = proxied(&proxy, "fault-503");
    let run = hello_build(&repo).run();
    let reference = pushed(&run, &proxy.host, &registry());
    assert_faults(&proxy, 3, &run);
    assert_pulls(&reference, &[]);
    assert_tagged(&reference);
}

#[test]
fn a_registry_that_keeps_failing_is_given_up_after_four_attempts() {
    let proxy = FaultProxy::start(
        &registry(),
        vec![Rule::new(Some("PUT"), "/manifests/", Fault::Status { code: 503, retry_after: None }).times(usize::MAX)],
    );
    let repo = proxied(&proxy, "fault-503-always");
    let run = hello_build(&repo).run();
    run.assert_failure();
    assert!(run.stdout.is_empty(), "{run}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: pushing manifest sha256:"), "{run}");
    assert!(last.contains("registry answered 503") && last.ends_with("after 4 attempts"), "{run}");
    assert_faults(&proxy, 4, &run);
    assert_nothing_tagged(&run, &proxy.host);
}

/// A copy of the hello fixture with `size` bytes of incompressible data in kodata, so that
/// its layer is big enough to go up in a PATCH and to take time over a slow link.
fn hello_with_payload(size: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture("hello"), dir.path());
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    std::fs::write(dir.path().join("kodata/payload.bin"), bytes).unwrap();
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target: PathBuf = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_reset_in_the_middle_of_an_upload_starts_a_new_session() {
    let app = hello_with_payload(3 << 20);
    let proxy = FaultProxy::start(
        &registry(),
        vec![Rule::new(Some("PATCH"), "/blobs/uploads/", Fault::ResetUpload { after: 1 << 20 }).times(2)],
    );
    let repo = proxied(&proxy, "fault-reset-up");
    let run = build_in(app.path(), &repo).run();
    let reference = pushed(&run, &proxy.host, &registry());
    assert_faults(&proxy, 2, &run);
    assert!(run.stderr.contains("reset the connection") || run.stderr.contains("closed the connection"), "{run}");
    assert_pulls(&reference, &[]);
    assert_tagged(&reference);
}

#[test]
fn a_slow_link_that_keeps_moving_never_times_out() {
    // 4 MiB at 192 KiB/s: about 21 seconds, well over the no-progress timeout of 8 s. That
    // timeout applies to every request of the run, so it stays long enough that a busy
    // machine's pauses (a registry answering late under load) do not count as stalls.
    let app = hello_with_payload(4 << 20);
    let throttle = Fault::Throttle { bytes_per_sec: 192 << 10 };
    let proxy = FaultProxy::start(
        &registry(),
        vec![
            Rule::new(Some("PATCH"), "/blobs/uploads/", throttle.clone()).times(usize::MAX),
            Rule::new(Some("PUT"), "/blobs/uploads/", throttle).times(usize::MAX),
        ],
    );
    let repo = proxied(&proxy, "fault-slow");
    let run = build_in(app.path(), &repo).env("KUBECTL_KO_STALL_TIMEOUT", "8").run();
    let reference = pushed(&run, &proxy.host, &registry());
    assert!(!run.stderr.contains("stopped answering"), "{run}");
    assert!(!run.stderr.contains("again in a new session"), "{run}");
    assert_pulls(&reference, &[]);
    assert_tagged(&reference);
}

#[test]
fn a_registry_that_stops_answering_is_given_up_with_a_message_that_says_so() {
    let proxy =
        FaultProxy::start(&registry(), vec![Rule::new(Some("PUT"), "/manifests/", Fault::Silent).times(usize::MAX)]);
    let repo = proxied(&proxy, "fault-silent");
    let run = hello_build(&repo).env("KUBECTL_KO_STALL_TIMEOUT", STALL).run();
    run.assert_failure();
    assert!(run.stdout.is_empty(), "{run}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: pushing manifest sha256:"), "{run}");
    assert!(
        last.ends_with(&format!("the registry stopped answering (nothing moved for {STALL} s) after 4 attempts")),
        "{run}"
    );
    assert!(!last.contains("start the registry"), "{run}");
    assert_faults(&proxy, 4, &run);
    assert_nothing_tagged(&run, &proxy.host);
}

/// An image in the test registry to use as a base, and the digest of its biggest layer (its
/// kodata, with 3 MiB of its own: bigger than the binary, and not in the image built on it).
fn base_in_registry() -> (String, String) {
    let app = hello_with_payload(3 << 20);
    let run = build_in(app.path(), &unique_repo("fault-base")).run();
    run.assert_success();
    let base = run.stdout_lines()[0].to_string();
    let manifest = skopeo_inspect(&base, true);
    let layer =
        manifest["layers"].as_array().unwrap().iter().max_by_key(|l| l["size"].as_u64().unwrap()).unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string();
    (base, layer)
}

/// Builds on `base` read through a proxy with `fault` on the download of `layer`, pushing
/// to the registry itself (another registry, so the layer is downloaded, not mounted).
fn build_on_faulty_base(fault: Fault, times: usize) -> (Run, FaultProxy) {
    let (base, layer) = base_in_registry();
    let proxy = FaultProxy::start(&registry(), vec![Rule::new(Some("GET"), &layer, fault).times(times)]);
    let repo = unique_repo("fault-on-base");
    let run = hello_build(&repo).env("KO_DEFAULTBASEIMAGE", base.replacen(&registry(), &proxy.host, 1)).run();
    (run, proxy)
}

#[test]
fn a_reset_in_the_middle_of_a_download_is_retried() {
    let (run, proxy) = build_on_faulty_base(Fault::ResetDownload { after: 200_000 }, 2);
    let reference = pushed(&run, "", "");
    assert_faults(&proxy, 2, &run);
    assert!(run.stderr.contains("downloading it again"), "{run}");
    assert_pulls(&reference, &[]);
    assert_tagged(&reference);
}

#[test]
fn a_truncated_download_is_retried() {
    let (run, proxy) = build_on_faulty_base(Fault::Truncate { after: 300_000 }, 1);
    let reference = pushed(&run, "", "");
    assert_faults(&proxy, 1, &run);
    assert!(run.stderr.contains("closed the connection before the transfer was complete"), "{run}");
    assert_pulls(&reference, &[]);
    assert_tagged(&reference);
}

#[test]
fn a_corrupted_download_is_caught_by_its_digest_and_retried() {
    let (run, proxy) = build_on_faulty_base(Fault::Corrupt, 2);
    let reference = pushed(&run, "", "");
    assert_faults(&proxy, 2, &run);
    assert!(run.stderr.contains("the registry sent content with digest"), "{run}");
    assert_pulls(&reference, &[]);
    assert_tagged(&reference);
}

#[test]
fn a_download_that_stays_corrupted_fails_after_four_attempts_and_pushes_nothing() {
    let (run, proxy) = build_on_faulty_base(Fault::Corrupt, usize::MAX);
    run.assert_failure();
    assert!(run.stdout.is_empty(), "{run}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{run}");
    assert!(
        last.contains("downloading blob sha256:") && last.contains("the registry sent content with digest"),
        "{run}"
    );
    assert!(last.ends_with("after 4 attempts"), "{run}");
    assert_faults(&proxy, 4, &run);
    assert_nothing_tagged(&run, "");
}

/// Registry A (the proxy `a`, in front of `registry`) answers every blob download with a
/// redirect to host B (127.0.0.2), which redirects to itself once and then serves the blob
/// with access of its own (`storage_access`, for the base's repository path), like a storage
/// backend with signed URLs. The build must succeed and B must never see a credential.
fn assert_redirect_chain_keeps_credentials(registry: &AuthRegistry, storage_access: impl Fn(&str) -> String) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{}", registry.password));
    // A base image in the registry, pushed directly.
    let base_cmd = ko(&["build", "."]).cwd(fixture("hello")).env("KO_DOCKER_REPO", registry.repo("base"));
    write_config(&base_cmd, &registry.auths_json(USER, &registry.password));
    let run = base_cmd.run();
    run.assert_success();
    let base = run.stdout_lines()[0].to_string();
    let base_path = repo_of(&base).split_once('/').unwrap().1.to_string();

    let b = FaultProxy::start_on(
        "127.0.0.2",
        &registry.host,
        vec![],
        vec!["/hop1".into(), "/hop2".into()],
        Some(storage_access(&base_path)),
    );
    b.set_rules(vec![
        Rule::new(Some("GET"), "/hop1/", Fault::Redirect { to: format!("http://{}/hop2", b.host) }).times(usize::MAX),
    ]);
    let a = FaultProxy::start(
        &registry.host,
        vec![
            Rule::new(Some("GET"), "/blobs/sha256:", Fault::Redirect { to: format!("http://{}/hop1", b.host) })
                .times(usize::MAX),
        ],
    );
    let cmd = ko(&["build", ".", "-v"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", format!("{}/{}", a.host, unique_name("redirected")))
        .env("KO_DEFAULTBASEIMAGE", base.replacen(&registry.host, &a.host, 1));
    write_config(&cmd, &serde_json::json!({"auths": {a.host.clone(): {"auth": auth}}}).to_string());
    let run = cmd.run();
    let reference = pushed(&run, &a.host, &registry.host);

    let seen_b = b.seen();
    assert!(seen_b.iter().any(|s| s.method == "GET" && s.path.starts_with("/hop1/")), "B was never asked: {seen_b:#?}");
    assert!(seen_b.iter().any(|s| s.path.starts_with("/hop2/")), "B never redirected to itself: {seen_b:#?}");
    for seen in &seen_b {
        assert_eq!(seen.authorization, None, "host B saw credentials: {seen:#?}");
    }
    // A is the registry: it gets them.
    assert!(a.seen().iter().any(|s| s.authorization.is_some() && s.path.contains("/blobs/sha256:")));
    assert!(!run.stderr.contains(&registry.password), "{run}");
    assert_pulls(&reference, &["--src-creds", &registry.creds()]);
}

#[test]
fn basic_credentials_never_follow_a_redirect_chain_to_another_host() {
    let registry = AuthRegistry::htpasswd();
    let basic =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{}", registry.password)));
    assert_redirect_chain_keeps_credentials(&registry, |_| basic.clone());
}

#[test]
fn bearer_tokens_never_follow_a_redirect_chain_to_another_host() {
    let (registry, _) = AuthRegistry::token();
    let realm = registry.tokens.as_ref().unwrap().realm.clone();
    let user = format!("{USER}:{}", registry.password);
    assert_redirect_chain_keeps_credentials(&registry, |path| {
        let url = format!("{realm}?service={SERVICE}&scope=repository:{path}:pull");
        let out = std::process::Command::new(tool("curl")).args(["-fsS", "-u", &user, &url]).output().unwrap();
        let answer: Value = serde_json::from_slice(&out.stdout).expect("the token service answers JSON");
        let token = answer["token"].as_str().or(answer["access_token"].as_str()).expect("a token");
        format!("Bearer {token}")
    });
}

fn write_config(cmd: &KoCmd, json: &str) {
    let dir = cmd.home().join(".docker");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), json).unwrap();
}

#[test]
fn six_processes_pushing_one_image_to_one_repository_all_succeed() {
    let repo = unique_repo("fault-concurrent");
    let commands: Vec<KoCmd> = (0..6).map(|_| hello_build(&repo)).collect();
    let children: Vec<_> = commands
        .iter()
        .map(|cmd| {
            cmd.command()
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start kubectl-ko-build")
        })
        .collect();
    let outputs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let mut references = Vec::new();
    for out in &outputs {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "a push failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        references.push(stdout.trim().to_string());
    }
    references.dedup();
    assert_eq!(references.len(), 1, "{references:?}");
    assert_pulls(&references[0], &[]);
    assert_tagged(&references[0]);
}

#[test]
fn a_failed_resolve_publishes_nothing_tagged_and_prints_nothing() {
    // The greeter's manifests are refused for good; the hello image pushes fine.
    let proxy = FaultProxy::start(
        &registry(),
        vec![
            Rule::new(Some("PUT"), "greeter", Fault::Status { code: 503, retry_after: None })
                .also("/manifests/")
                .times(usize::MAX),
        ],
    );
    let name = unique_name("fault-resolve");
    let repo = format!("{}/{name}", proxy.host);
    let app = fixture("manifests").join("app.yaml");
    let run = ko(&["resolve", "-f", app.to_str().unwrap()]).cwd(fixture("hello")).env("KO_DOCKER_REPO", &repo).run();
    run.assert_failure();
    assert!(run.stdout.is_empty(), "{run}");
    assert!(!run.stderr.contains("Published"), "{run}");
    // Both images were being published, the hello image all the way (by digest), and no
    // repository holds a tag: not the hello image's, not any SBOM's.
    assert_eq!(run.stderr.matches("Publishing ").count(), 2, "{run}");
    assert_nothing_tagged(&run, &proxy.host);
}

#[test]
fn a_malformed_base_manifest_says_what_is_wrong_with_which_reference() {
    let run = hello_build(&unique_repo("fault-malformed-base")).run();
    let base = repo_of(&pushed(&run, "", ""));
    let proxy = FaultProxy::start(
        &registry(),
        vec![
            Rule::new(
                Some("GET"),
                "/manifests/latest",
                Fault::Replace {
                    content_type: "application/vnd.oci.image.manifest.v1+json".into(),
                    body: "<html>maintenance</html>".into(),
                },
            )
            .times(usize::MAX),
        ],
    );
    let named = format!("{}:latest", base.replacen(&registry(), &proxy.host, 1));
    let repo = unique_repo("fault-on-malformed");
    let run = hello_build(&repo).env("KO_DEFAULTBASEIMAGE", &named).run();
    run.assert_failure();
    assert!(run.stdout.is_empty(), "{run}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with(&format!("error: base image {named}: its manifest is not JSON (")), "{run}");
    assert!(last.contains("(manifest sha256:"), "{run}");
    assert!(!last.contains("media type \"\""), "{run}");
    assert_faults(&proxy, 1, &run);
}

/// A tagged image that nothing names by digest before its tag moves (no SBOM, no signature)
/// goes up in one manifest put, its tag's; with an SBOM, which names the image by digest, the
/// image is put by digest first. Either way the tag is there and the image pulls whole.
#[test]
fn a_tagged_image_without_attachments_is_put_once_by_its_tag() {
    let proxy = FaultProxy::start(&registry(), vec![]);
    let run = hello_build(&proxied(&proxy, "put-once")).arg("--sbom=none").run();
    let reference = pushed(&run, &proxy.host, &registry());
    let puts = proxy.manifest_requests("PUT");
    assert_eq!(puts.len(), 1, "{puts:#?}\n{run}");
    assert!(puts[0].ends_with("/manifests/latest"), "{puts:#?}");
    assert_tagged(&reference);
    assert_pulls(&reference, &[]);

    let proxy = FaultProxy::start(&registry(), vec![]);
    let run = hello_build(&proxied(&proxy, "put-with-sbom")).run();
    let reference = pushed(&run, &proxy.host, &registry());
    let digest = reference.split('@').nth(1).unwrap();
    let puts = proxy.manifest_requests("PUT");
    assert!(puts.iter().any(|p| p.ends_with(&format!("/manifests/{digest}"))), "{puts:#?}\n{run}");
    assert!(puts.iter().any(|p| p.ends_with("/manifests/latest")), "{puts:#?}");
    assert_tagged(&reference);
    assert_pulls(&reference, &[]);
}

/// Answers that never end (a broken proxy, a hostile server) cost bounded memory and one
/// short line: an error's body is read to 64 KiB, and a manifest that goes on past 100 MiB
/// (as ko bounds it) is refused at once, not fetched again.
#[test]
fn answers_that_never_end_are_cut_off_with_one_line() {
    let rule = Rule::new(Some("PUT"), "/manifests/latest", Fault::Endless { code: 500 }).times(usize::MAX);
    let proxy = FaultProxy::start(&registry(), vec![rule]);
    let run = hello_build(&proxied(&proxy, "endless-error")).run();
    run.assert_failure();
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: pushing manifest latest on ") && last.contains("answered 500"), "{run}");
    assert!(last.len() < 400, "{run}");

    let (base, _) = base_in_registry();
    let (base_repo, _) = base.split_once('@').unwrap();
    let path = base_repo.split_once('/').unwrap().1;
    let rule = Rule::new(Some("GET"), &format!("/{path}/manifests/"), Fault::Endless { code: 200 }).times(usize::MAX);
    let proxy = FaultProxy::start(&registry(), vec![rule]);
    let run = hello_build(&unique_repo("endless-base"))
        .env("KO_DEFAULTBASEIMAGE", base.replacen(&registry(), &proxy.host, 1))
        .run();
    run.assert_failure();
    assert!(run.stderr.contains("the answer went on past 100 MiB"), "{run}");
    assert_eq!(proxy.faulted().len(), 1, "not fetched again: {run}");
}

/// The files a run writes come before its tags: an `--image-refs` (or `--tarball`) that
/// cannot be written fails the run, named by its flag, with no tag moved. A tag the registry
/// refuses after others moved fails the run, which names those that moved.
#[test]
fn files_are_written_before_tags_move_and_a_late_failure_names_the_moved_tags() {
    let repo = unique_repo("refs-full");
    let run = hello_build(&repo).args(["--image-refs", "/dev/full"]).run();
    run.assert_failure();
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.contains("--image-refs /dev/full: cannot be written") && last.contains("no tag was moved"), "{run}");
    assert_nothing_tagged(&run, "");

    // The image's tag is refused once its SBOM's tag has moved.
    let rule = Rule::new(Some("PUT"), "/manifests/latest", Fault::Status { code: 400, retry_after: None });
    let proxy = FaultProxy::start(&registry(), vec![rule.times(usize::MAX)]);
    let run = hello_build(&proxied(&proxy, "late-failure")).run();
    run.assert_failure();
    let warned = run.stderr.lines().find(|l| l.contains("tags moved before the run failed")).unwrap_or_default();
    assert!(warned.contains(".sbom"), "the SBOM's tag is named: {run}");
    assert!(!warned.contains(":latest"), "{run}");
}
