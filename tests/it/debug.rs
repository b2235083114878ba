//! `--debug`: Delve built from the Go module proxy, its own layer at `/ko-app/dlv`, ko's debug
//! entrypoint, an unoptimised app, and platforms Delve does not support built without it.
//! Images run in the test Docker daemon.

use serde_json::{Value, json};

use crate::util::*;

const DEBUG_ENTRYPOINT: &[&str] = &[
    "/ko-app/dlv",
    "exec",
    "--listen=:40000",
    "--headless",
    "--log",
    "--accept-multiclient",
    "--api-version=2",
    "--",
    "/ko-app/hello",
];

fn child(name: &str, index: &Value, arch: &str) -> String {
    let digest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == arch)
        .and_then(|m| m["digest"].as_str())
        .unwrap_or_else(|| panic!("no {arch} entry in {index}"));
    format!("{name}@{digest}")
}

fn comments(config: &Value) -> Vec<String> {
    config["history"].as_array().unwrap().iter().filter_map(|h| h["comment"].as_str().map(String::from)).collect()
}

/// Polls `docker logs` until `want` shows up (or a minute passes).
fn wait_for_log(container: &str, want: &str) -> Run {
    let mut last = docker(&["logs", container]);
    for _ in 0..300 {
        if last.stdout.contains(want) || last.stderr.contains(want) {
            return last;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        last = docker(&["logs", container]);
    }
    panic!("{want:?} never appeared in the logs of {container}:\n{last}");
}

struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0]);
    }
}

#[test]
fn debug_images_carry_delve_and_wrap_the_app() {
    let repo = unique_repo("debug");
    let cache = tempfile::tempdir().unwrap();
    // GOFLAGS from `go env -w` (a GOENV file) are the app's, not Delve's: -mod=vendor would
    // fail Delve's download.
    let goenv = cache.path().join("goenv");
    std::fs::write(&goenv, "GOFLAGS=-mod=vendor\n").unwrap();
    let run = ko(&["build", ".", "-B", "--debug", "--platform=linux/amd64,linux/arm/v7"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", &repo)
        .env("KOCACHE", cache.path())
        .env("GOENV", &goenv)
        .run();
    run.assert_success();
    assert!(run.stderr.contains("Building Delve v"), "{run}");
    assert!(
        run.stderr.contains(
            "warning: image for platform linux/arm/v7 will be built without debugging enabled because Delve does not support that platform"
        ),
        "{run}"
    );
    let reference = run.stdout.trim();
    let name = reference.split('@').next().unwrap();
    let index = skopeo_inspect(reference, true);

    // amd64: Delve's layer on top, ko's entrypoint, and an app built with -N -l.
    let amd64 = child(name, &index, "amd64");
    let config = skopeo_inspect_config(&amd64);
    assert_eq!(config["config"]["Entrypoint"], json!(DEBUG_ENTRYPOINT));
    assert_eq!(comments(&config).last().map(String::as_str), Some("Delve debugger, at /ko-app/dlv"));
    let manifest = skopeo_inspect(&amd64, true);
    let arm = child(name, &index, "arm");
    let arm_manifest = skopeo_inspect(&arm, true);
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        arm_manifest["layers"].as_array().unwrap().len() + 1,
        "one more layer: Delve"
    );
    // arm/v7: no Delve, the plain entrypoint.
    let arm_config = skopeo_inspect_config(&arm);
    assert_eq!(arm_config["config"]["Entrypoint"], json!(["/ko-app/hello"]));
    assert!(!comments(&arm_config).iter().any(|c| c.contains("Delve")), "{arm_config}");

    // Delve is cached per platform: a second build does not build it again.
    let again = ko(&["build", ".", "-B", "--debug"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", &repo)
        .env("KOCACHE", cache.path())
        .run();
    again.assert_success();
    assert!(!again.stderr.contains("Building Delve"), "{again}");
    assert_eq!(again.stdout.trim().split('@').nth(1), amd64.split('@').nth(1), "same image again");

    // The app is built unoptimised: Go records -gcflags in the binary's build info.
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("l");
    skopeo(&["copy", "--src-tls-verify=false", &format!("docker://{amd64}"), &format!("oci:{}:img", layout.display())])
        .assert_success();
    let bundle = dir.path().join("b");
    let mut unpack = std::process::Command::new(tool("umoci"));
    unpack.args(["unpack", "--image"]).arg(format!("{}:img", layout.display())).arg(&bundle);
    capture(unpack, DEFAULT_TIMEOUT).assert_success();
    let rootfs = bundle.join("rootfs");
    let dlv = std::fs::metadata(rootfs.join("ko-app/dlv")).expect("/ko-app/dlv in the image");
    assert!(dlv.is_file() && dlv.len() > 1_000_000);
    let mut version = std::process::Command::new("go");
    version.arg("version").arg("-m").arg(rootfs.join("ko-app/hello"));
    let info = capture(version, DEFAULT_TIMEOUT);
    info.assert_success();
    assert!(info.stdout.contains("build\t-gcflags=\"all=-N -l\""), "{info}");
}

#[test]
fn delve_runs_in_the_image_and_starts_the_app() {
    let prefix = format!("ko.local/{}", unique_name("debug-run"));
    let run = ko(&["build", ".", "-B", "--debug"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", &prefix)
        .env("DOCKER_HOST", docker_host())
        .run();
    run.assert_success();
    let image = run.stdout.trim();

    // `dlv version` inside the image, as ko's own e2e test checks.
    let version = docker(&["run", "--rm", "--network=none", "--entrypoint=/ko-app/dlv", image, "version"]);
    version.assert_success();
    assert!(version.stdout.contains("Delve Debugger"), "{version}");

    // The image's own entrypoint: Delve's headless server comes up on port 40000.
    let name = unique_name("dlv-server");
    docker(&["run", "-d", "--name", &name, "--network=none", image]).assert_success();
    let _server = Container(name.clone());
    let logs = wait_for_log(&name, "API server listening at: [::]:40000");
    assert!(!logs.stdout.contains("kodata="), "the app waits for a debugger: {logs}");

    // With --continue, Delve runs the app, which prints what it should.
    let name = unique_name("dlv-continue");
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network=none",
        "--entrypoint=/ko-app/dlv",
        image,
        "exec",
        "--listen=127.0.0.1:40000",
        "--headless",
        "--continue",
        "--accept-multiclient",
        "--api-version=2",
        "/ko-app/hello",
    ])
    .assert_success();
    let _app = Container(name.clone());
    let logs = wait_for_log(&name, "kodata=hello from kodata");
    assert!(logs.stdout.contains("uid=65532"), "{logs}");
}

/// Delve is `/ko-app/dlv` in a debug image: an app whose binary has that name would be
/// replaced by it, so `--debug` refuses it before anything is built.
#[test]
fn an_app_named_dlv_is_refused_under_debug() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("dlv");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(app.join("go.mod"), "module example.com/dlv\n\ngo 1.22\n").unwrap();
    std::fs::write(app.join("main.go"), "package main\n\nfunc main() { println(\"app\") }\n").unwrap();
    let repo = unique_repo("debug-dlv");
    let run = ko(&["build", ".", "--debug"]).cwd(&app).env("KO_DOCKER_REPO", &repo).run();
    run.assert_failure();
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.contains("--debug") && last.contains("binary named dlv"), "{run}");
    assert!(!run.stderr.contains("Building"), "refused before any build: {run}");
}
