//! Inspecting and running images.
//!
//! Images are inspected with skopeo. They run the way a user would run them, with no daemon
//! and no network access: `skopeo copy` puts the image into an OCI layout, `umoci unpack`
//! turns it into a runtime bundle whose `config.json` comes from the image config
//! (entrypoint, cmd, env, user, working directory), and `runc run` runs it in its own
//! namespaces (its network namespace has only loopback, like `docker run --network=none`).
//! Needs root, as `scripts/test.sh` runs on CI. [`docker`] drives the test Docker daemon,
//! for what is published there.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use super::commands::{DEFAULT_TIMEOUT, Run, capture, wait_with_output};
use super::paths::tool;
use super::services::docker_host;

/// How long a container may run.
pub const IMAGE_TIMEOUT: Duration = Duration::from_secs(120);

/// The docker CLI against the test daemon (no isolation; stdin is /dev/null).
pub fn docker(args: &[&str]) -> Run {
    let mut cmd = Command::new(tool("docker"));
    cmd.env("DOCKER_HOST", docker_host()).env_remove("DOCKER_CONTEXT").args(args);
    capture(cmd, DEFAULT_TIMEOUT)
}

const TRANSPORTS: &[&str] =
    &["docker://", "oci:", "oci-archive:", "docker-archive:", "docker-daemon:", "dir:", "containers-storage:"];

/// A skopeo image name: the reference itself when it names a transport (`oci:DIR`,
/// `docker-archive:FILE`...), else `docker://REFERENCE`.
pub fn skopeo_name(reference: &str) -> String {
    if TRANSPORTS.iter().any(|t| reference.starts_with(t)) {
        reference.to_string()
    } else {
        format!("docker://{reference}")
    }
}

/// Run skopeo with these arguments (no isolation; stdin is /dev/null).
pub fn skopeo(args: &[&str]) -> Run {
    let mut cmd = Command::new(tool("skopeo"));
    cmd.args(args);
    capture(cmd, DEFAULT_TIMEOUT)
}

fn skopeo_json(flag: Option<&str>, reference: &str) -> Value {
    let name = skopeo_name(reference);
    let mut args = vec!["inspect"];
    if name.starts_with("docker://") {
        args.push("--tls-verify=false");
    }
    args.extend(flag);
    args.push(&name);
    let run = skopeo(&args);
    assert!(run.success(), "skopeo {} failed:\n{run}", args.join(" "));
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("skopeo {} printed invalid JSON ({e}):\n{run}", args.join(" ")))
}

/// Copies an image or index between test registry references, converting it to Docker
/// schema 2 media types (every platform of an index).
pub fn copy_as_docker_v2s2(from: &str, to: &str) {
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &skopeo_name(from),
        &skopeo_name(to),
    ])
    .assert_success();
}

/// The tags of `repo` (`HOST/PATH` of a plain-HTTP registry, such as the test registry):
/// none when the registry answers that it has no such repository (404 `NAME_UNKNOWN`).
/// Any other answer fails the test, so a registry that is down, or a wrong path, cannot pass
/// for an empty repository.
pub fn registry_tags(repo: &str) -> Vec<String> {
    let (host, path) = repo.split_once('/').unwrap_or_else(|| panic!("{repo} is not HOST/PATH"));
    let url = format!("http://{host}/v2/{path}/tags/list");
    let out = Command::new(tool("curl")).args(["-sS", "-w", "\n%{http_code}", &url]).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "curl {url} failed: {}", String::from_utf8_lossy(&out.stderr));
    let (body, status) = text.rsplit_once('\n').unwrap_or_default();
    match status {
        "200" => {
            let list: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"));
            let tags = list["tags"].as_array().cloned().unwrap_or_default();
            tags.iter().map(|t| t.as_str().unwrap_or_else(|| panic!("{url}: {body}")).to_string()).collect()
        }
        "404" if body.contains("NAME_UNKNOWN") => Vec::new(),
        _ => panic!("{url} answered {status}: {body}"),
    }
}

/// The repository `repo` of the test registry holds no tag: whatever a failed run uploaded,
/// nothing names it.
#[track_caller]
pub fn assert_untagged(repo: &str) {
    let tags = registry_tags(repo);
    assert!(tags.is_empty(), "{repo} has tags {tags:?}");
}

/// The repository `repo` of the test registry holds `tag` (among others, such as SBOM tags).
#[track_caller]
pub fn assert_tagged(repo: &str, tag: &str) {
    let tags = registry_tags(repo);
    assert!(tags.iter().any(|t| t == tag), "{repo} has no tag {tag}, only {tags:?}");
}

/// `skopeo inspect [--raw]` of an image: with `raw`, the manifest or index exactly as
/// stored; without, skopeo's summary (Digest, Layers, Env, Architecture...). Plain
/// registry references get `docker://` and `--tls-verify=false`. Panics on failure.
pub fn skopeo_inspect(reference: &str, raw: bool) -> Value {
    skopeo_json(raw.then_some("--raw"), reference)
}

/// The image's config blob (`skopeo inspect --config`): `config.Entrypoint`,
/// `config.Env`, `config.User`, `history`, ...
pub fn skopeo_inspect_config(reference: &str) -> Value {
    skopeo_json(Some("--config"), reference)
}

/// Run an image with its own entrypoint, cmd and user. Plain references are pulled from
/// the (plain HTTP) test registry; an index yields the host's platform.
pub fn run_image(reference: &str) -> Run {
    run_image_with(reference, &[], None)
}

/// Run an image like `docker run [--user USER] IMAGE [ARGS...]`: non-empty `args`
/// replace the image's cmd (the entrypoint stays); `user` is `uid`, `uid:gid`, `name` or
/// `name:group` (names from the image's /etc/passwd and /etc/group).
pub fn run_image_with(reference: &str, args: &[&str], user: Option<&str>) -> Run {
    run_registry_image(reference, args, user, true)
}

/// [`run_image_with`] without `noNewPrivileges`, so the kernel grants the binary's file
/// capabilities (`security.capability`) on exec, as a plain `docker run` does.
pub fn run_image_with_file_caps(reference: &str, user: Option<&str>) -> Run {
    run_registry_image(reference, &[], user, false)
}

fn run_registry_image(reference: &str, args: &[&str], user: Option<&str>, no_new_privileges: bool) -> Run {
    let work = work_dir();
    let layout = work.path().join("layout");
    let name = skopeo_name(reference);
    let dest = format!("oci:{}:img", layout.display());
    let mut copy = vec!["copy", "--quiet"];
    if name.starts_with("docker://") {
        copy.push("--src-tls-verify=false");
    }
    copy.extend([name.as_str(), dest.as_str()]);
    let run = skopeo(&copy);
    assert!(run.success(), "skopeo {} failed:\n{run}", copy.join(" "));
    run_bundle(work.path(), &layout, args, user, no_new_privileges)
}

/// Run the image with this digest (a manifest or an index; `sha256:...`, or anything
/// ending in `@sha256:...`) from an OCI image layout directory on disk.
pub fn run_layout_image(layout_dir: &Path, digest: &str) -> Run {
    run_layout_image_with(layout_dir, digest, &[], None)
}

/// [`run_layout_image`] with [`run_image_with`]'s arguments and user.
pub fn run_layout_image_with(layout_dir: &Path, digest: &str, args: &[&str], user: Option<&str>) -> Run {
    let digest = digest.rsplit('@').next().unwrap_or(digest);
    let hex = digest.strip_prefix("sha256:").unwrap_or_else(|| panic!("not a sha256 digest: {digest}"));
    let blobs = fs::canonicalize(layout_dir.join("blobs"))
        .unwrap_or_else(|e| panic!("{} is not an OCI layout: {e}", layout_dir.display()));
    let blob = fs::read(blobs.join("sha256").join(hex))
        .unwrap_or_else(|e| panic!("{digest} is not in {}: {e}", layout_dir.display()));
    let doc: Value = serde_json::from_slice(&blob)
        .unwrap_or_else(|e| panic!("{digest} in {} is not JSON: {e}", layout_dir.display()));
    let media_type = doc["mediaType"].as_str().map(str::to_string).unwrap_or_else(|| {
        if doc.get("manifests").is_some() {
            "application/vnd.oci.image.index.v1+json".into()
        } else {
            "application/vnd.oci.image.manifest.v1+json".into()
        }
    });

    // A one-entry view of the layout that names the digest "img", sharing its blobs;
    // skopeo then picks the host's platform from an index and converts Docker media
    // types to OCI for umoci.
    let work = work_dir();
    let view = work.path().join("view");
    fs::create_dir_all(&view).expect("create layout view");
    fs::write(view.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("write oci-layout");
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media_type,
            "digest": digest,
            "size": blob.len(),
            "annotations": {"org.opencontainers.image.ref.name": "img"},
        }],
    });
    fs::write(view.join("index.json"), index.to_string()).expect("write index.json");
    symlink_dir(&blobs, &view.join("blobs"));

    let layout = work.path().join("layout");
    let src = format!("oci:{}:img", view.display());
    let dest = format!("oci:{}:img", layout.display());
    let run = skopeo(&["copy", "--quiet", &src, &dest]);
    assert!(run.success(), "skopeo copy {src} {dest} failed:\n{run}");
    run_bundle(work.path(), &layout, args, user, true)
}

#[cfg(unix)]
fn symlink_dir(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).expect("symlink blobs");
}

#[cfg(not(unix))]
fn symlink_dir(_target: &Path, _link: &Path) {
    panic!("running images needs Linux (runc)");
}

fn work_dir() -> TempDir {
    tempfile::Builder::new().prefix("ko-e2e-run-").tempdir().expect("create a temporary directory")
}

/// Unpack `layout:img` into a runtime bundle under `work`, adjust its config, run it.
fn run_bundle(work: &Path, layout: &Path, args: &[&str], user: Option<&str>, no_new_privileges: bool) -> Run {
    let bundle = work.join("bundle");
    let mut unpack = Command::new(tool("umoci"));
    unpack.arg("unpack").arg("--image").arg(format!("{}:img", layout.display())).arg(&bundle);
    let run = capture(unpack, DEFAULT_TIMEOUT);
    assert!(run.success(), "umoci unpack failed:\n{run}");

    let image_config = layout_config(layout, "img");
    let config = &image_config["config"];
    let spec_path = bundle.join("config.json");
    let mut spec: Value =
        serde_json::from_slice(&fs::read(&spec_path).expect("read config.json")).expect("config.json is JSON");
    let process = &mut spec["process"];
    // No terminal: output goes to our pipes. umoci adds TERM=xterm for its terminal.
    process["terminal"] = json!(false);
    let image_env: Vec<&str> = strings(&config["Env"]);
    if !image_env.iter().any(|e| e.starts_with("TERM="))
        && let Some(env) = process["env"].as_array_mut()
    {
        env.retain(|e| e.as_str().is_none_or(|e| !e.starts_with("TERM=")));
    }
    if !args.is_empty() {
        let mut argv: Vec<&str> = strings(&config["Entrypoint"]);
        argv.extend(args);
        process["args"] = json!(argv);
    }
    if !no_new_privileges {
        process["noNewPrivileges"] = json!(false);
    }
    if let Some(user) = user {
        let (uid, gid) = resolve_user(&bundle.join("rootfs"), user);
        process["user"] = json!({"uid": uid, "gid": gid});
    }
    fs::write(&spec_path, serde_json::to_vec_pretty(&spec).expect("serialise config.json")).expect("write config.json");

    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let id = format!("ko-e2e-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let runc = tool("runc");
    let mut cmd = Command::new(&runc);
    cmd.arg("run").arg("--bundle").arg(&bundle).arg(&id);
    let what = format!("runc run {id} (bundle {})", bundle.display());
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    // On timeout wait_with_output kills runc and panics; make sure the container dies too.
    struct Cleanup<'a>(&'a Path, &'a str);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = Command::new(self.0)
                .args(["delete", "--force", self.1])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    let _cleanup = Cleanup(&runc, &id);
    wait_with_output(child, None, IMAGE_TIMEOUT, &what)
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// The config blob of the image tagged `tag` in an OCI layout.
pub fn layout_config(layout: &Path, tag: &str) -> Value {
    let read = |path: PathBuf| -> Value {
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let blob = |digest: &str| {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        layout.join("blobs").join("sha256").join(hex)
    };
    let index = read(layout.join("index.json"));
    let desc = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no image tagged {tag} in {}", layout.display()));
    let manifest = read(blob(desc["digest"].as_str().unwrap_or_default()));
    read(blob(manifest["config"]["digest"].as_str().unwrap_or_default()))
}

/// `uid`, `uid:gid`, `name` or `name:group` → numeric ids, names looked up in the
/// rootfs's /etc/passwd and /etc/group; without a group, the user's primary group
/// from /etc/passwd, else 0 (as Docker does).
pub fn resolve_user(rootfs: &Path, user: &str) -> (u32, u32) {
    let table = |file: &str| -> Vec<Vec<String>> {
        fs::read_to_string(rootfs.join("etc").join(file))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.split(':').map(str::to_string).collect())
            .collect()
    };
    let passwd = table("passwd");
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entry = passwd.iter().find(|e| e.len() > 3 && (e[0] == user_part || e[2] == user_part));
    let uid = match user_part.parse::<u32>() {
        Ok(uid) => uid,
        Err(_) => entry
            .and_then(|e| e[2].parse().ok())
            .unwrap_or_else(|| panic!("user {user_part} is not in the image's /etc/passwd")),
    };
    let gid = match group_part {
        Some(g) => g.parse::<u32>().unwrap_or_else(|_| {
            table("group")
                .iter()
                .find(|e| e.len() > 2 && e[0] == g)
                .and_then(|e| e[2].parse().ok())
                .unwrap_or_else(|| panic!("group {g} is not in the image's /etc/group"))
        }),
        None => entry.and_then(|e| e[3].parse().ok()).unwrap_or(0),
    };
    (uid, gid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::{KoCmd, fixture, unique_repo};

    #[test]
    fn skopeo_names_get_a_transport() {
        assert_eq!(skopeo_name("127.0.0.1:5000/a/b:t"), "docker://127.0.0.1:5000/a/b:t");
        assert_eq!(skopeo_name("docker://x/y"), "docker://x/y");
        assert_eq!(skopeo_name("oci:/tmp/l:img"), "oci:/tmp/l:img");
    }

    #[test]
    fn users_resolve_against_the_rootfs() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n",
        )
        .unwrap();
        fs::write(root.path().join("etc/group"), "root:x:0:\nnonroot:x:65532:\n").unwrap();
        assert_eq!(resolve_user(root.path(), "nonroot"), (65532, 65532));
        assert_eq!(resolve_user(root.path(), "65532"), (65532, 65532));
        assert_eq!(resolve_user(root.path(), "1234"), (1234, 0));
        assert_eq!(resolve_user(root.path(), "1234:5"), (1234, 5));
        assert_eq!(resolve_user(root.path(), "nonroot:root"), (65532, 0));
    }

    /// The image runner itself: a hand-made one-layer image of the hello fixture (no
    /// kubectl-ko involved), run from an OCI layout and then from the test registry.
    #[test]
    fn runs_a_hand_made_image() {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("root");
        fs::create_dir_all(root.join("ko-app")).unwrap();
        KoCmd::program("go")
            .args(["build", "-trimpath", "-ldflags", "-X main.version=selftest", "-o"])
            .arg(root.join("ko-app/hello"))
            .arg(".")
            .cwd(fixture("hello"))
            .env("CGO_ENABLED", "0")
            .run()
            .assert_success();

        let layout = work.path().join("layout");
        let image = format!("{}:img", layout.display());
        let umoci = |args: &[&str]| {
            let mut cmd = Command::new(tool("umoci"));
            cmd.args(args);
            capture(cmd, DEFAULT_TIMEOUT).assert_success().clone()
        };
        umoci(&["init", "--layout", layout.to_str().unwrap()]);
        umoci(&["new", "--image", &image]);
        umoci(&["insert", "--image", &image, root.to_str().unwrap(), "/"]);
        let kodata = fixture("hello").join("kodata");
        umoci(&["insert", "--image", &image, kodata.to_str().unwrap(), "/var/run/ko"]);
        umoci(&[
            "config",
            "--image",
            &image,
            "--config.entrypoint",
            "/ko-app/hello",
            "--config.env",
            "KO_DATA_PATH=/var/run/ko",
            "--config.user",
            "65532",
        ]);
        let index: Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        let digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();

        let run = run_layout_image(&layout, &digest);
        run.assert_success();
        assert_eq!(run.value("version"), Some("selftest"), "{run}");
        assert_eq!(run.value("uid"), Some("65532"), "{run}");
        assert_eq!(run.value("kodata"), Some("hello from kodata"), "{run}");
        assert_eq!(run.value("args"), Some(""), "{run}");

        let run = run_layout_image_with(&layout, &digest, &["a", "b"], Some("1234:5"));
        run.assert_success();
        assert_eq!(run.value("uid"), Some("1234"), "{run}");
        assert_eq!(run.value("args"), Some("a,b"), "{run}");

        let reference = format!("{}:latest", unique_repo("selftest"));
        let copy = skopeo(&[
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &format!("oci:{image}"),
            &format!("docker://{reference}"),
        ]);
        copy.assert_success();
        let summary = skopeo_inspect(&reference, false);
        assert_eq!(summary["Layers"].as_array().map(Vec::len), Some(2), "{summary}");
        assert_eq!(skopeo_inspect_config(&reference)["config"]["Entrypoint"], json!(["/ko-app/hello"]));
        let run = run_image_with(&reference, &["x"], None);
        run.assert_success();
        assert_eq!(run.value("version"), Some("selftest"), "{run}");
        assert_eq!(run.value("args"), Some("x"), "{run}");
    }
}
