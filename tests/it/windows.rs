//! Windows images. Nothing here can run one, so what kubectl ko writes is checked against
//! ko v0.19.1 itself, built from the same Windows base: the same Go binary byte for byte,
//! the same layer entries (`Hives/`, `Files/ko-app/<name>`, kodata under `Files/var/run/ko`,
//! each file with its `MSWINDOWS.rawsd` security descriptor), the same entrypoint and
//! `KO_DATA_PATH`, read with Python's tarfile and skopeo. Where kubectl ko differs on purpose
//! (a `;` before `C:\ko-app` in `PATH`, kodata symlinks followed) the test says so. A base
//! index with Linux and Windows images gives an index of both, and the Linux one runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::util::*;

const OS_VERSION: &str = "10.0.20348.2113";
const BASE_PATH: &str = r"C:\Windows\system32;C:\Windows";

fn sha256(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    format!("sha256:{}", digest.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A layer of `dirs` and `files`: its tar and the tar gzipped.
fn layer_of(dirs: &[&str], files: &[(&str, &str)]) -> (Vec<u8>, Vec<u8>) {
    let mut tar = tar::Builder::new(Vec::new());
    for dir in dirs {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        tar.append_data(&mut header, dir, std::io::empty()).unwrap();
    }
    for (name, text) in files {
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o644);
        header.set_size(text.len() as u64);
        tar.append_data(&mut header, name, text.as_bytes()).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    (tar, gz.finish().unwrap())
}

/// An OCI layout being written: blobs by digest, then `index.json`.
struct Layout {
    dir: PathBuf,
    entries: Vec<Value>,
}

impl Layout {
    fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout { dir: dir.to_path_buf(), entries: Vec::new() }
    }

    fn blob(&self, bytes: &[u8]) -> (String, usize) {
        let digest = sha256(bytes);
        std::fs::write(self.dir.join("blobs/sha256").join(&digest[7..]), bytes).unwrap();
        // skopeo's `dir:` format keeps blobs by their hex digest at the top.
        std::fs::write(self.dir.join(&digest[7..]), bytes).unwrap();
        (digest, bytes.len())
    }

    /// An image with one layer of `dirs` and `files`, configured by `config` (os, platform,
    /// env); returns its manifest's descriptor.
    fn image(&self, dirs: &[&str], files: &[(&str, &str)], mut config: Value) -> Value {
        let (tar, gz) = layer_of(dirs, files);
        let (layer, layer_size) = self.blob(&gz);
        config["rootfs"] = json!({"type": "layers", "diff_ids": [sha256(&tar)]});
        config["history"] = json!([{"created_by": "a test base"}]);
        let (config_digest, config_size) = self.blob(config.to_string().as_bytes());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_size}],
        });
        let (digest, size) = self.blob(manifest.to_string().as_bytes());
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size})
    }

    /// An old-style Windows base in Docker's media types: a foreign layer (only its URL is
    /// known; the directory does not hold it) under a layer of `files`. Written in skopeo's
    /// `dir:` format (its OCI layouts hold OCI manifests only): `manifest.json`, blobs by hex.
    fn foreign_image(&self, files: &[(&str, &str)], url: &str) {
        let (tar, gz) = layer_of(&[], files);
        let (layer, layer_size) = self.blob(&gz);
        let foreign = sha256(b"a layer nobody here has");
        let config = json!({
            "architecture": "amd64", "os": "windows", "os.version": OS_VERSION,
            "config": {"Env": [format!("PATH={BASE_PATH}")]},
            "rootfs": {"type": "layers", "diff_ids": [foreign, sha256(&tar)]},
        });
        let (config_digest, config_size) = self.blob(config.to_string().as_bytes());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest, "size": config_size},
            "layers": [
                {"mediaType": FOREIGN, "digest": foreign, "size": 1234, "urls": [url]},
                {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": layer, "size": layer_size},
            ],
        });
        std::fs::write(self.dir.join("manifest.json"), manifest.to_string()).unwrap();
        std::fs::write(self.dir.join("version"), "Directory Transport Version: 1.1\n").unwrap();
    }

    fn tag(&mut self, mut descriptor: Value, tag: &str) {
        descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        self.entries.push(descriptor);
    }

    fn finish(&self) {
        let index = json!({"schemaVersion": 2, "manifests": self.entries});
        std::fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
    }
}

const FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const FOREIGN_URL: &str = "https://windows-layers.invalid/base-layer";

/// Pushes a Windows base (tag `win`: one image, `windows/amd64` at [`OS_VERSION`], its
/// files under `Files/`) and an index of it with a Linux image (tag `mixed`: linux/amd64
/// first) to `REPO/base`; returns both references. Tag `foreign` is a Windows base whose
/// first layer is foreign (skopeo leaves it out, as Docker does).
fn push_bases(repo: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(dir.path());
    let windows = layout.image(
        &["Hives", "Files", "Files/Windows"],
        &[("Files/Windows/marker.txt", "a Windows base")],
        json!({"architecture": "amd64", "os": "windows", "os.version": OS_VERSION,
               "config": {"Env": [format!("PATH={BASE_PATH}")]}}),
    );
    let linux = layout.image(
        &["etc"],
        &[("etc/marker.txt", "a Linux base")],
        json!({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/usr/bin:/bin"]}}),
    );
    let with = |descriptor: &Value, platform: Value| {
        let mut d = descriptor.clone();
        d["platform"] = platform;
        d
    };
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            with(&linux, json!({"os": "linux", "architecture": "amd64"})),
            with(&windows, json!({"os": "windows", "architecture": "amd64", "os.version": OS_VERSION})),
        ],
    });
    let (index_digest, index_size) = layout.blob(index.to_string().as_bytes());
    layout.tag(windows, "win");
    layout.tag(
        json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest, "size": index_size}),
        "mixed",
    );
    layout.finish();
    let push = |tag: &str, all: &[&str]| {
        let (from, to) = (format!("oci:{}:{tag}", dir.path().display()), format!("docker://{repo}/base:{tag}"));
        let mut args = vec!["copy", "--dest-tls-verify=false", "--preserve-digests"];
        args.extend(all);
        args.extend([from.as_str(), to.as_str()]);
        skopeo(&args).assert_success();
        format!("{repo}/base:{tag}")
    };
    let old = Layout::new(&dir.path().join("old"));
    old.foreign_image(&[("Files/Windows/update.txt", "an update")], FOREIGN_URL);
    let to = format!("docker://{repo}/base:foreign");
    skopeo(&["copy", "--dest-tls-verify=false", &format!("dir:{}", old.dir.display()), &to]).assert_success();
    (push("win", &[]), push("mixed", &["--all"]))
}

/// An image copied out of the registry: its config and the files of its layers.
struct Fetched {
    _dir: tempfile::TempDir,
    config: Value,
    layers: Vec<PathBuf>,
}

fn fetch(reference: &str) -> Fetched {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("l");
    let to = format!("oci:{}:img", layout.display());
    skopeo(&["copy", "--src-tls-verify=false", &format!("docker://{reference}"), &to]).assert_success();
    let blob = |d: &str| layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let read = |path: PathBuf| -> Value { serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap() };
    let index = read(layout.join("index.json"));
    let manifest = read(blob(index["manifests"][0]["digest"].as_str().unwrap()));
    let config = read(blob(manifest["config"]["digest"].as_str().unwrap()));
    let layers = manifest["layers"].as_array().unwrap().iter().map(|l| blob(l["digest"].as_str().unwrap())).collect();
    Fetched { _dir: dir, config, layers }
}

/// Python's tarfile lists a gzipped layer: `[name, kind, mode, uid, gid, mtime, PAX records
/// other than path]` per entry (directory names without their trailing `/`), and writes the
/// member `extract` (if given) to `to`.
const LIST_LAYER: &str = r#"
import json, sys, tarfile
out = []
with tarfile.open(sys.argv[1], "r:gz") as t:
    for m in t.getmembers():
        kind = "dir" if m.isdir() else "file" if m.isfile() else "other"
        pax = {k: v for k, v in m.pax_headers.items() if k != "path"}
        out.append([m.name, kind, oct(m.mode), m.uid, m.gid, m.mtime, pax])
        if len(sys.argv) > 3 and m.name == sys.argv[2]:
            open(sys.argv[3], "wb").write(t.extractfile(m).read())
print(json.dumps(out))
"#;

fn list_layer(layer: &Path, extract: Option<(&str, &Path)>) -> Vec<Value> {
    let mut cmd = Command::new(tool("python3"));
    cmd.args(["-c", LIST_LAYER]).arg(layer);
    if let Some((member, to)) = extract {
        cmd.arg(member).arg(to);
    }
    let run = capture(cmd, std::time::Duration::from_secs(60));
    run.assert_success();
    serde_json::from_str::<Value>(&run.stdout).unwrap().as_array().unwrap().clone()
}

fn names(entries: &[Value]) -> Vec<&str> {
    entries.iter().map(|e| e[0].as_str().unwrap()).collect()
}

const RAWSD: &str = "AQAAgBQAAAAkAAAAAAAAAAAAAAABAgAAAAAABSAAAAAhAgAAAQIAAAAAAAUgAAAAIQIAAA==";

#[test]
fn windows_images_are_what_ko_writes() {
    let repo = unique_repo("windows");
    let (base, _) = push_bases(&repo);
    let sboms = tempfile::tempdir().unwrap();
    let ours = ko(&["build", ".", "--platform=windows/amd64", "--sbom-dir", sboms.path().to_str().unwrap()])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", &repo)
        .env("KO_DEFAULTBASEIMAGE", &base)
        .run();
    ours.assert_success();
    let theirs = KoCmd::program(reference_ko())
        .args(["build", ".", "--platform=windows/amd64", "--sbom=none"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", format!("{repo}/by-ko"))
        .env("KO_DEFAULTBASEIMAGE", &base)
        .run();
    theirs.assert_success();
    let (ours_image, ko_image) = (fetch(ours.stdout.trim()), fetch(theirs.stdout.trim()));

    // The config: the base's platform kept, the entrypoint and KO_DATA_PATH as ko's.
    let (c, k) = (&ours_image.config, &ko_image.config);
    for field in ["os", "architecture", "os.version"] {
        assert_eq!(c[field], k[field], "{field}: {c} / {k}");
    }
    assert_eq!(c["os.version"], OS_VERSION);
    assert_eq!(c["config"]["Entrypoint"], json!([r"C:\ko-app\hello"]), "{c}");
    assert_eq!(c["config"]["Entrypoint"], k["config"]["Entrypoint"]);
    assert!(c["config"]["Cmd"].is_null(), "{c}");
    // PATH: ko joins with `:`, which Windows does not split on; kubectl ko joins with `;`.
    assert_eq!(
        c["config"]["Env"],
        json!([format!(r"PATH={BASE_PATH};C:\ko-app"), r"KO_DATA_PATH=C:\var\run\ko"]),
        "{c}"
    );
    assert_eq!(k["config"]["Env"], json!([format!(r"PATH={BASE_PATH}:C:\ko-app"), r"KO_DATA_PATH=C:\var\run\ko"]));

    // The layers: the base's, then kodata, then the binary, each entry as ko writes it.
    assert_eq!(ours_image.layers.len(), 3);
    assert_eq!(ko_image.layers.len(), 3);
    let scratch = tempfile::tempdir().unwrap();
    let (our_bin, ko_bin) = (scratch.path().join("ours.exe"), scratch.path().join("ko.exe"));
    let member = "Files/ko-app/hello";
    let our_app = list_layer(&ours_image.layers[2], Some((member, &our_bin)));
    let ko_app = list_layer(&ko_image.layers[2], Some((member, &ko_bin)));
    assert_eq!(names(&our_app), ["Hives", "Files", "Files/ko-app", member]);
    assert_eq!(our_app, ko_app);
    assert_eq!(our_app[3][6], json!({"MSWINDOWS.rawsd": RAWSD}));
    assert!(our_app.iter().all(|e| e[2] == "0o555" && e[3] == 0 && e[4] == 0), "{our_app:?}");
    let binary = std::fs::read(&our_bin).unwrap();
    assert_eq!(&binary[..2], b"MZ", "not a Windows executable");
    assert!(binary == std::fs::read(&ko_bin).unwrap(), "the Go binary differs from ko's");
    let mut go = Command::new(tool("go"));
    go.args(["version", "-m"]).arg(&our_bin);
    let version = capture(go, DEFAULT_TIMEOUT);
    version.assert_success();
    assert!(version.stdout.contains("GOOS=windows") && version.stdout.contains("GOARCH=amd64"), "{version}");

    let our_data = list_layer(&ours_image.layers[1], None);
    let mut ko_data = list_layer(&ko_image.layers[1], None);
    // kodata/linked.txt is a symlink: kubectl ko puts the file it points at in the image (as
    // for Linux); ko leaves symlinks out of Windows images.
    let linked = our_data.iter().position(|e| e[0] == "Files/var/run/ko/linked.txt").expect("linked.txt");
    ko_data.insert(linked, our_data[linked].clone());
    assert_eq!(our_data, ko_data);
    assert_eq!(
        names(&our_data),
        [
            "Hives",
            "Files",
            "Files/var",
            "Files/var/run",
            "Files/var/run/ko",
            "Files/var/run/ko/greeting.txt",
            "Files/var/run/ko/linked.txt",
            "Files/var/run/ko/sub",
            "Files/var/run/ko/sub/nested.txt",
        ]
    );
    assert!(our_data.iter().filter(|e| e[1] == "file").all(|e| e[6] == json!({"MSWINDOWS.rawsd": RAWSD})));

    // The SBOM is named for the platform with its OS version.
    let sbom = sboms.path().join(format!("hello-windows-amd64-{OS_VERSION}.spdx.json"));
    assert!(sbom.is_file(), "no {}: {ours}", sbom.display());

    // Delve has no Windows build here: a warning, and the plain entrypoint.
    let debug = ko(&["build", ".", "--platform=windows/amd64", "--debug", "--sbom=none"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", &repo)
        .env("KO_DEFAULTBASEIMAGE", &base)
        .run();
    debug.assert_success();
    assert!(debug.stderr.contains("without debugging enabled"), "{debug}");
    assert_eq!(fetch(debug.stdout.trim()).config["config"]["Entrypoint"], json!([r"C:\ko-app\hello"]));
}

#[test]
fn a_base_with_linux_and_windows_images_gives_both() {
    let repo = unique_repo("windows-mixed");
    let (_, mixed) = push_bases(&repo);
    let build = |platform: &str| {
        ko(&["build", ".", platform, "--sbom=none"])
            .cwd(fixture("hello"))
            .env("KO_DOCKER_REPO", &repo)
            .env("KO_DEFAULTBASEIMAGE", &mixed)
            .run()
    };
    let all = build("--platform=all");
    all.assert_success();
    let reference = all.stdout.trim();
    let index = skopeo_inspect(reference, true);
    let platforms: Vec<&Value> = index["manifests"].as_array().unwrap().iter().map(|m| &m["platform"]).collect();
    assert_eq!(
        platforms,
        [
            &json!({"os": "linux", "architecture": "amd64"}),
            &json!({"os": "windows", "architecture": "amd64", "os.version": OS_VERSION})
        ],
        "{index}"
    );
    let name = reference.split('@').next().unwrap();
    let child = |i: usize| format!("{name}@{}", index["manifests"][i]["digest"].as_str().unwrap());
    let out = run_image(&child(0));
    assert_eq!(out.value("kodata"), Some("hello from kodata"), "{out}");
    let linux = fetch(&child(0));
    assert_eq!(linux.config["config"]["Entrypoint"], json!(["/ko-app/hello"]));
    assert_eq!(names(&list_layer(linux.layers.last().unwrap(), None)), ["ko-app", "ko-app/hello"]);
    let windows = fetch(&child(1));
    assert_eq!(windows.config["config"]["Entrypoint"], json!([r"C:\ko-app\hello"]));
    assert_eq!(names(&list_layer(&windows.layers[1], None))[..2], ["Hives", "Files"]);
    assert_eq!(names(&list_layer(&windows.layers[2], None)), ["Hives", "Files", "Files/ko-app", "Files/ko-app/hello"]);

    // A Windows version without its revision matches the base's; one platform, one image.
    let one = build("--platform=windows/amd64:10.0.20348");
    one.assert_success();
    let manifest = skopeo_inspect(one.stdout.trim(), true);
    assert!(manifest["layers"].is_array(), "{manifest}");
    assert_eq!(skopeo_inspect_config(one.stdout.trim())["os"], "windows");
    let offered = format!("it offers: linux/amd64, windows/amd64:{OS_VERSION}");
    let other = build("--platform=windows/amd64:10.0.17763");
    crate::build_errors::assert_clear_error(&other, &["has no image for windows/amd64:10.0.17763", &offered]);
    // Only a whole release (X.Y.Z) stands for its revisions, as in ko.
    let short = build("--platform=windows/amd64:10.0");
    crate::build_errors::assert_clear_error(&short, &["has no image for windows/amd64:10.0;", &offered]);
}

#[test]
fn a_foreign_base_layer_stays_at_its_url() {
    let repo = unique_repo("windows-foreign");
    push_bases(&repo);
    let base = format!("{repo}/base:foreign");
    let build = |program: KoCmd, to: &str| {
        program
            .args(["build", ".", "--platform=windows/amd64", "--sbom=none"])
            .cwd(fixture("hello"))
            .env("KO_DOCKER_REPO", to)
            .env("KO_DEFAULTBASEIMAGE", &base)
            .run()
    };
    let ours = build(KoCmd::new("kubectl-ko"), &repo);
    ours.assert_success();
    let theirs = build(KoCmd::program(reference_ko()), &format!("{repo}/by-ko"));
    theirs.assert_success();
    for reference in [ours.stdout.trim(), theirs.stdout.trim()] {
        let manifest = skopeo_inspect(reference, true);
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 4, "{manifest}");
        assert_eq!(layers[0]["mediaType"], FOREIGN, "{manifest}");
        assert_eq!(layers[0]["urls"], json!([FOREIGN_URL]), "{manifest}");
        assert_eq!(skopeo_inspect_config(reference)["config"]["Entrypoint"], json!([r"C:\ko-app\hello"]));
    }

    // The same base copied into an OCI layout by skopeo, which leaves the foreign layer out
    // (and names it non-distributable, in OCI's terms): pushed the same way.
    let copied = tempfile::tempdir().unwrap();
    let layout_base = format!("oci:{}:w", copied.path().display());
    skopeo(&["copy", "--src-tls-verify=false", &format!("docker://{base}"), &layout_base]).assert_success();
    let on_layout = KoCmd::new("kubectl-ko")
        .args(["build", ".", "--platform=windows/amd64", "--sbom=none"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", &repo)
        .env("KO_DEFAULTBASEIMAGE", format!("oci-layout://{}:w", copied.path().display()))
        .run();
    on_layout.assert_success();
    let manifest = skopeo_inspect(on_layout.stdout.trim(), true);
    assert_eq!(manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip");
    assert_eq!(manifest["layers"][0]["urls"], json!([FOREIGN_URL]), "{manifest}");

    // A local medium needs every layer's bytes: the foreign one is named, nothing is written.
    let layout = tempfile::tempdir().unwrap();
    let local = ko(&["build", ".", "--platform=windows/amd64", "--push=false", "--oci-layout-path"])
        .arg(layout.path())
        .cwd(fixture("hello"))
        .env("KO_DEFAULTBASEIMAGE", &base)
        .run();
    crate::build_errors::assert_clear_error(&local, &["foreign (non-distributable) layer", FOREIGN_URL]);
    assert!(!layout.path().join("index.json").exists(), "{local}");
}

#[test]
fn the_builtin_base_has_no_windows_image() {
    let run = ko(&["build", ".", "--platform=windows/amd64"])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", unique_repo("win"))
        .run();
    crate::build_errors::assert_clear_error(&run, &["has no image for windows/amd64", "any linux platform"]);
}
