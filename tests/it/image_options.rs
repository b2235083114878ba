//! Image options: `--image-label`, `--image-annotation` and `--image-user` as in ko, the
//! `.ko.yaml` `image:` blocks (env, workingDir, labels, annotations, user; top level and per
//! build, flags on top), and `builds[].linux_capabilities` as a file capability xattr.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::layers;
use crate::util::*;

fn withdeps() -> PathBuf {
    fixture("withdeps")
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("ko.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn flags_set_labels_annotations_and_user() {
    let repo = unique_repo("opts-flags");
    let run = ko(&[
        "build",
        ".",
        "--image-label=org.example.team=core,tier=web",
        "--image-label",
        "empty=",
        // Quotes keep a comma in a value, as pflag's lists do.
        "--image-label",
        "\"org.example.description=small, fast\",size=s",
        "--image-annotation=org.opencontainers.image.source=https://example.com/src",
        "--image-user=1234:5678",
        "--platform=linux/amd64,linux/arm64",
    ])
    .cwd(withdeps())
    .env("KO_DOCKER_REPO", &repo)
    .run();
    run.assert_success();
    let reference = run.stdout_lines()[0];
    let index = skopeo_inspect(reference, true);
    assert_eq!(index["annotations"]["org.opencontainers.image.source"], "https://example.com/src", "{index}");
    let child =
        format!("{}@{}", reference.rsplit_once('@').unwrap().0, index["manifests"][0]["digest"].as_str().unwrap());
    let manifest = skopeo_inspect(&child, true);
    assert_eq!(manifest["annotations"]["org.opencontainers.image.source"], "https://example.com/src");
    let config = skopeo_inspect_config(&child);
    let labels = json!({"org.example.team": "core", "tier": "web", "empty": "", "org.example.description": "small, fast", "size": "s"});
    assert_eq!(config["config"]["Labels"], labels);
    assert_eq!(config["config"]["User"], "1234:5678");
}

#[test]
fn malformed_labels_and_annotations_are_errors_in_kos_words() {
    let run = ko(&["build", ".", "--push=false", "--image-label=novalue"]).cwd(withdeps()).run();
    run.assert_failure();
    assert!(run.stderr.contains("invalid label flag") && run.stderr.contains("novalue"), "{run}");
    let run = ko(&["build", ".", "--push=false", "--image-annotation=a=b,bare"]).cwd(withdeps()).run();
    run.assert_failure();
    assert!(run.stderr.contains("missing '=' in annotation") && run.stderr.contains("bare"), "{run}");
}

#[test]
fn ko_yaml_image_blocks_set_env_working_dir_labels_annotations_and_user() {
    let repo = unique_repo("opts-yaml");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "image:\n  env: [APP_MODE=top, APP_EXTRA=kept]\n  workingDir: /var/run/ko\n  labels: {team: core}\n  user: \"4242\"\n\
         builds:\n- id: app\n  main: .\n  env: [GOFLAGS=-trimpath]\n  image:\n    env: {APP_MODE: build}\n    workingDir: /tmp\n    labels: {tier: web}\n    annotations: {org.example/owner: me}\n",
    );
    let run = ko(&["build", ".", "--image-label=team=flag", "--platform=linux/amd64,linux/arm64"])
        .cwd(withdeps())
        .env("KO_DOCKER_REPO", &repo)
        .env("KO_CONFIG_PATH", &config)
        .run();
    run.assert_success();
    let index_ref = run.stdout_lines()[0];
    let index = skopeo_inspect(index_ref, true);
    assert_eq!(index["annotations"]["org.example/owner"], "me", "{index}");
    let amd64 = &index["manifests"][0];
    assert_eq!(amd64["platform"]["architecture"], "amd64");
    let child = format!("{}@{}", index_ref.rsplit_once('@').unwrap().0, amd64["digest"].as_str().unwrap());
    let reference = child.as_str();
    let manifest = skopeo_inspect(reference, true);
    assert_eq!(manifest["annotations"]["org.example/owner"], "me");
    let image = skopeo_inspect_config(reference);
    assert_eq!(image["config"]["Labels"], json!({"team": "flag", "tier": "web"}), "flags win over .ko.yaml");
    assert_eq!(image["config"]["WorkingDir"], "/tmp", "the build's block wins over the top level");
    assert_eq!(image["config"]["User"], "4242");
    let env: Vec<&str> = image["config"]["Env"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(env.contains(&"APP_MODE=build") && env.contains(&"APP_EXTRA=kept"), "{env:?}");
    assert!(!env.iter().any(|e| e.starts_with("GOFLAGS")), "builds[].env is the build's, not the image's: {env:?}");

    let out = run_image(reference);
    out.assert_success();
    assert_eq!(out.value("cwd"), Some("/tmp"), "{out}");
    assert_eq!(out.value("mode"), Some("build"), "{out}");
    assert_eq!(out.value("extra"), Some("kept"), "{out}");

    // --image-user beats the configured user.
    let run = ko(&["build", ".", "--image-user=7"])
        .cwd(withdeps())
        .env("KO_DOCKER_REPO", &repo)
        .env("KO_CONFIG_PATH", &config)
        .run();
    run.assert_success();
    assert_eq!(skopeo_inspect_config(run.stdout_lines()[0])["config"]["User"], "7");
}

#[test]
fn linux_capabilities_become_the_binarys_security_capability_xattr() {
    let repo = unique_repo("opts-caps");
    let dir = tempfile::tempdir().unwrap();
    let config =
        write_config(dir.path(), "builds:\n- id: caps\n  main: .\n  linux_capabilities: net_bind_service chown\n");
    let run = ko(&["build", "."]).cwd(withdeps()).env("KO_DOCKER_REPO", &repo).env("KO_CONFIG_PATH", &config).run();
    run.assert_success();
    let reference = run.stdout_lines()[0].to_string();
    let binary = layers::app_binary(&reference, "withdeps");
    let value = binary.pax.get("SCHILY.xattr.security.capability").unwrap_or_else(|| panic!("{:?}", binary.pax.keys()));
    // VFS caps revision 2, no effective flag; permitted = CHOWN (bit 0) | NET_BIND_SERVICE (bit 10).
    let mut expected = vec![0, 0, 0, 2];
    expected.extend(0x401u32.to_le_bytes());
    expected.extend([0; 12]);
    assert_eq!(value, &expected);

    // Unpacked by umoci, the file carries the capabilities (read back by libcap's getcap), and
    // run as an unprivileged user the kernel grants them on exec, within the runtime's bounding
    // set (runc's default holds NET_BIND_SERVICE, not CHOWN): permitted, not effective. A file
    // capability also clears the ambient set the runtime passes, so nothing else shows.
    let layout = layers::Layout::fetch(&reference);
    let bundle = dir.path().join("bundle");
    let mut unpack = std::process::Command::new(tool("umoci"));
    unpack.arg("unpack").arg("--image").arg(format!("{}:img", layout.root().display())).arg(&bundle);
    capture(unpack, std::time::Duration::from_secs(120)).assert_success();
    let mut getcap = std::process::Command::new(tool("getcap"));
    getcap.arg(bundle.join("rootfs/ko-app/withdeps"));
    let caps = capture(getcap, std::time::Duration::from_secs(30));
    assert!(caps.stdout.contains("cap_chown,cap_net_bind_service=p"), "{caps}");
    let out = run_image_with_file_caps(&reference, Some("1"));
    out.assert_success();
    assert_eq!(out.value("capprm"), Some("0000000000000400"), "{out}");
    assert_eq!(out.value("capeff"), Some("0000000000000000"), "{out}");

    // With --debug, Delve (the last layer) gets them too, as in ko.
    let debug = ko(&["build", ".", "--debug"])
        .cwd(withdeps())
        .env("KO_DOCKER_REPO", &repo)
        .env("KO_CONFIG_PATH", &config)
        .run();
    debug.assert_success();
    let dlv = layers::app_binary(debug.stdout_lines()[0], "dlv");
    assert_eq!(dlv.pax.get("SCHILY.xattr.security.capability"), Some(&expected), "{:?}", dlv.pax.keys());

    // Without capabilities there is no xattr.
    let plain = ko(&["build", "."]).cwd(withdeps()).env("KO_DOCKER_REPO", &repo).run();
    plain.assert_success();
    assert!(layers::app_binary(plain.stdout_lines()[0], "withdeps").pax.is_empty());
}

#[test]
fn an_invalid_capability_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "builds:\n- id: caps\n  main: .\n  linux_capabilities: [net_bind_service, cap_bogus]\n",
    );
    let run = ko(&["build", ".", "--push=false"]).cwd(withdeps()).env("KO_CONFIG_PATH", &config).run();
    run.assert_failure();
    assert!(run.stderr.contains("\"cap_bogus\"") && run.stderr.contains("linux_capabilities"), "{run}");
    assert!(run.stderr.contains("net_bind_service"), "the error shows the valid form: {run}");
}

#[test]
fn a_capability_fixture_loaded_into_docker_reports_its_capability() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "builds:\n- id: caps\n  main: .\n  linux_capabilities: [net_bind_service]\n");
    let name = unique_name("caps");
    let run = ko(&["build", ".", "--bare"])
        .cwd(withdeps())
        .env("KO_DOCKER_REPO", format!("ko.local/{name}"))
        .env("KO_CONFIG_PATH", &config)
        .env("DOCKER_HOST", docker_host())
        .run();
    run.assert_success();
    let reference = run.stdout_lines()[0].to_string();
    // As an unprivileged user with the capability in Docker's bounding set, exec grants it.
    let out = docker(&["run", "--rm", "--network=none", "--user", "1", "--cap-add=net_bind_service", &reference]);
    out.assert_success();
    assert_eq!(out.value("capprm"), Some("0000000000000400"), "{out}");
    docker(&["rmi", "-f", &reference]).assert_success();
}
