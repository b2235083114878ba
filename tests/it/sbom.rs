//! SBOMs: pushed next to each image and index (ko's `sha256-<hex>.sbom` tag, and as OCI
//! referrers), written by `--sbom-dir`, checked with the SPDX project's validator and the
//! CycloneDX schema, and listing exactly the modules `go version -m` finds in the binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::fault_proxy::{Fault, FaultProxy, Rule};
use crate::layers;
use crate::util::*;

fn withdeps() -> PathBuf {
    fixture("withdeps")
}

/// The venv scripts/test.sh fills with the validators.
fn venv_bin(name: &str) -> PathBuf {
    sbom_venv().join("bin").join(name)
}

fn validate_spdx(file: &Path) {
    let mut cmd = Command::new(venv_bin("pyspdxtools"));
    cmd.arg("-i").arg(file);
    let run = capture(cmd, std::time::Duration::from_secs(120));
    assert!(run.success() && !run.stderr.contains("ERROR"), "pyspdxtools rejected {}:\n{run}", file.display());
}

fn validate_cyclonedx(files: &[PathBuf]) {
    let mut cmd = Command::new(venv_bin("python"));
    cmd.arg(workspace().join("tests/validate_cyclonedx.py")).args(files);
    let run = capture(cmd, std::time::Duration::from_secs(120));
    assert!(run.success(), "the CycloneDX 1.5 schema rejected {files:?}:\n{run}");
}

/// `(repository path, digest)` of a printed `registry/path@sha256:...` reference.
fn split(reference: &str) -> (String, String) {
    let (name, digest) = reference.rsplit_once('@').unwrap();
    let name = name.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')).map(|(n, _)| n).unwrap_or(name);
    let path = name.strip_prefix(&format!("{}/", registry())).unwrap();
    (path.to_string(), digest.to_string())
}

fn tags(repo_path: &str) -> Vec<String> {
    let run = skopeo(&["list-tags", "--tls-verify=false", &format!("docker://{}/{repo_path}", registry())]);
    run.assert_success();
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    json["Tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
}

fn raw(reference: &str) -> Value {
    skopeo_inspect(reference, true)
}

fn blob(repo_path: &str, digest: &str) -> Vec<u8> {
    let url = format!("http://{}/v2/{repo_path}/blobs/{digest}", registry());
    let out = Command::new(tool("curl")).args(["-sSf", &url]).output().unwrap();
    assert!(out.status.success(), "GET {url}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Checks the SBOM pushed for `digest`: by tag, with its subject, and in the referrers
/// fallback index; returns its bytes.
fn pushed_sbom(repo_path: &str, digest: &str, media_type: &str) -> Vec<u8> {
    let hex = digest.trim_start_matches("sha256:");
    let all = tags(repo_path);
    let tag = format!("sha256-{hex}.sbom");
    assert!(all.contains(&tag), "no {tag} among {all:?}");
    let manifest = raw(&format!("{}/{repo_path}:{tag}", registry()));
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1, "{manifest}");
    assert_eq!(manifest["layers"][0]["mediaType"], media_type, "{manifest}");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
    assert_eq!(manifest["subject"]["digest"], digest, "{manifest}");
    assert_eq!(manifest["artifactType"], media_type);

    // distribution 2.8 has no referrers API, so the OCI fallback tag lists the referrer.
    let referrers = raw(&format!("{}/{repo_path}:sha256-{hex}", registry()));
    let listed: Vec<&Value> = referrers["manifests"].as_array().unwrap().iter().collect();
    assert_eq!(listed.len(), 1, "{referrers}");
    assert_eq!(listed[0]["artifactType"], media_type);
    let run =
        skopeo(&["inspect", "--tls-verify=false", "--raw", &format!("docker://{}/{repo_path}:{tag}", registry())]);
    assert_eq!(listed[0]["digest"], format!("sha256:{}", sha256_hex(run.stdout.as_bytes())));

    blob(repo_path, manifest["layers"][0]["digest"].as_str().unwrap())
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `(path, version)` of every `dep` line of `go version -m` on the image's binary.
fn go_version_m_deps(reference: &str) -> Vec<(String, String)> {
    let binary = layers::app_binary(reference, "withdeps");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("withdeps");
    std::fs::write(&path, &binary.data).unwrap();
    let out = Command::new("go").arg("version").arg("-m").arg(&path).output().unwrap();
    assert!(out.status.success());
    let deps: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split('\t').collect();
            (f[0] == "dep").then(|| (f[1].to_string(), f[2].to_string()))
        })
        .collect();
    assert!(!deps.is_empty(), "the fixture has a dependency");
    deps
}

#[test]
fn spdx_sbom_is_pushed_by_tag_and_as_referrer_and_lists_the_binarys_modules() {
    let repo = unique_repo("sbom");
    let dir = tempfile::tempdir().unwrap();
    let sbom_dir = dir.path().join("sboms");
    let run = ko(&["build", ".", "--sbom-dir", sbom_dir.to_str().unwrap()])
        .cwd(withdeps())
        .env("KO_DOCKER_REPO", &repo)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .run();
    run.assert_success();
    let reference = run.stdout_lines()[0].to_string();
    let (path, digest) = split(&reference);
    let pushed = pushed_sbom(&path, &digest, "text/spdx+json");

    let file = sbom_dir.join("withdeps-linux-amd64.spdx.json");
    assert_eq!(std::fs::read(&file).unwrap(), pushed, "--sbom-dir writes the pushed document");
    assert!(run.stderr.contains(&format!("Writing SBOM to {}", file.display())), "{run}");
    assert!(run.stderr.contains("Published SBOM"), "{run}");
    validate_spdx(&file);

    let doc: Value = serde_json::from_slice(&pushed).unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(doc["name"], format!("sbom-{digest}"));
    assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z", "dated by SOURCE_DATE_EPOCH");
    let packages = doc["packages"].as_array().unwrap();
    assert_eq!(packages[0]["primaryPackagePurpose"], "CONTAINER");
    assert!(packages.iter().any(|p| p["name"] == "ko.builtin/static:v1"), "the base is listed");
    assert!(packages.iter().any(|p| p["name"] == "example.com/withdeps"), "the main module is listed");
    let id_of = |id: &str| packages.iter().find(|p| p["SPDXID"] == id).unwrap();
    let mut listed: Vec<(String, String)> = doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["relationshipType"] == "DEPENDS_ON")
        .map(|r| {
            let p = id_of(r["relatedSpdxElement"].as_str().unwrap());
            assert_eq!(p["checksums"][0]["algorithm"], "SHA256", "{p}");
            let purl = p["externalRefs"][0]["referenceLocator"].as_str().unwrap();
            assert!(purl.starts_with("pkg:golang/"), "{purl}");
            (p["name"].as_str().unwrap().to_string(), p["versionInfo"].as_str().unwrap().to_string())
        })
        .collect();
    listed.sort();
    let mut expected = go_version_m_deps(&reference);
    expected.sort();
    assert_eq!(listed, expected);

    // Same inputs, same document.
    let again = ko(&["build", ".", "--push=false", "--sbom-dir", sbom_dir.to_str().unwrap()])
        .cwd(withdeps())
        .env("KO_DOCKER_REPO", &repo)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .run();
    again.assert_success();
    assert_eq!(std::fs::read(&file).unwrap(), pushed);
}

#[test]
fn an_index_and_each_platform_image_get_their_own_sbom() {
    let repo = unique_repo("sbom-multi");
    let dir = tempfile::tempdir().unwrap();
    let run = ko(&["build", ".", "--platform=linux/amd64,linux/arm64", "--sbom-dir", dir.path().to_str().unwrap()])
        .cwd(withdeps())
        .env("KO_DOCKER_REPO", &repo)
        .run();
    run.assert_success();
    let reference = run.stdout_lines()[0].to_string();
    let (path, digest) = split(&reference);
    let index = raw(&reference);
    let index_doc = pushed_sbom(&path, &digest, "text/spdx+json");
    assert_eq!(std::fs::read(dir.path().join("withdeps-index.spdx.json")).unwrap(), index_doc);
    let doc: Value = serde_json::from_slice(&index_doc).unwrap();
    let variants: Vec<&Value> =
        doc["relationships"].as_array().unwrap().iter().filter(|r| r["relationshipType"] == "VARIANT_OF").collect();
    assert_eq!(variants.len(), 2, "{doc}");
    // As ko writes it: the index is a variant of each image (the index package, which the
    // document describes, leads to the images).
    let described = doc["relationships"].as_array().unwrap().iter().find(|r| r["relationshipType"] == "DESCRIBES");
    let index_id = &described.expect("a DESCRIBES relationship")["relatedSpdxElement"];
    assert!(variants.iter().all(|r| &r["spdxElementId"] == index_id), "{doc}");
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    for (entry, file) in index["manifests"].as_array().unwrap().iter().zip(["linux-amd64", "linux-arm64"]) {
        let child = pushed_sbom(&path, entry["digest"].as_str().unwrap(), "text/spdx+json");
        let file = dir.path().join(format!("withdeps-{file}.spdx.json"));
        assert_eq!(std::fs::read(&file).unwrap(), child);
        validate_spdx(&file);
    }
    validate_spdx(&dir.path().join("withdeps-index.spdx.json"));
}

/// The first SBOM of a run in a registry is put by digest, which shows how the registry takes
/// a subject; the others, even those pushed side by side with it, go up once, with their tags. Each still has its tag, its subject and
/// its entry in the referrers fallback index.
#[test]
fn after_a_runs_first_sbom_each_manifest_goes_up_once_with_its_tag() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("go.mod"), "module example.com/trio\n\ngo 1.22\n").unwrap();
    for name in ["one", "two", "three"] {
        let pkg = dir.path().join("cmd").join(name);
        std::fs::create_dir_all(&pkg).unwrap();
        let main = format!("package main\n\nimport \"fmt\"\n\nfunc main() {{ fmt.Println({name:?}) }}\n");
        std::fs::write(pkg.join("main.go"), main).unwrap();
    }
    // Manifests by digest go up slowly, so that the other SBOMs are ready while the first is
    // still on its way: they wait for its answer rather than each going up by digest too.
    let slow = Rule::new(Some("PUT"), "/manifests/sha256:", Fault::Throttle { bytes_per_sec: 1000 }).times(usize::MAX);
    let proxy = FaultProxy::start(&registry(), vec![slow]);
    let repo = format!("{}/{}", proxy.host, unique_name("sbom-once"));
    let run =
        ko(&["build", "./cmd/one", "./cmd/two", "./cmd/three"]).cwd(dir.path()).env("KO_DOCKER_REPO", &repo).run();
    run.assert_success();
    let references: Vec<String> = run.stdout_lines().iter().map(|r| r.replacen(&proxy.host, &registry(), 1)).collect();
    assert_eq!(references.len(), 3, "{run}");
    let images: Vec<String> = references.iter().map(|r| split(r).1).collect();
    let puts = proxy.manifest_requests("PUT");
    let by_digest: Vec<&String> = puts
        .iter()
        .filter(|p| p.contains("/manifests/sha256:") && !images.iter().any(|d| p.ends_with(&format!("/manifests/{d}"))))
        .collect();
    assert_eq!(by_digest.len(), 1, "one SBOM manifest by digest: {puts:#?}\n{run}");
    assert_eq!(puts.iter().filter(|p| p.ends_with(".sbom")).count(), 3, "{puts:#?}");
    for reference in &references {
        let (path, digest) = split(reference);
        let doc: Value = serde_json::from_slice(&pushed_sbom(&path, &digest, "text/spdx+json")).unwrap();
        assert_eq!(doc["name"], format!("sbom-{digest}"), "{doc}");
    }
}

#[test]
fn cyclonedx_files_are_written_without_pushing_and_match_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let repo = unique_repo("never-pushed");
    let run = ko(&[
        "build",
        ".",
        "--push=false",
        "--sbom=cyclonedx",
        "--platform=linux/amd64,linux/arm/v7",
        "--sbom-dir",
        dir.path().to_str().unwrap(),
    ])
    .cwd(withdeps())
    .env("KO_DOCKER_REPO", &repo)
    .run();
    run.assert_success();
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["withdeps-index.cdx.json", "withdeps-linux-amd64.cdx.json", "withdeps-linux-arm-v7.cdx.json"]);
    let files: Vec<PathBuf> = names.iter().map(|n| dir.path().join(n)).collect();
    validate_cyclonedx(&files);
    let doc: Value = serde_json::from_slice(&std::fs::read(&files[1]).unwrap()).unwrap();
    assert_eq!(doc["specVersion"], "1.5");
    let components = doc["components"].as_array().unwrap();
    assert!(components.iter().any(|c| c["name"] == "github.com/google/uuid" && c["hashes"][0]["alg"] == "SHA-256"));
    crate::build_errors::assert_repo_empty(&repo);
}

#[test]
fn sbom_none_pushes_no_sbom() {
    let repo = unique_repo("sbom-none");
    let dir = tempfile::tempdir().unwrap();
    let run = ko(&["build", ".", "--sbom=none", "--sbom-dir", dir.path().to_str().unwrap()])
        .cwd(withdeps())
        .env("KO_DOCKER_REPO", &repo)
        .run();
    run.assert_success();
    let (path, _) = split(run.stdout_lines()[0]);
    assert_eq!(tags(&path), ["latest"]);
    assert_eq!(std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn cosign_repository_takes_the_sboms_by_tag() {
    let repo = unique_repo("sbom-app");
    let sbom_path = unique_name("sbom-elsewhere");
    let run = ko(&["build", "."])
        .cwd(withdeps())
        .env("KO_DOCKER_REPO", &repo)
        .env("COSIGN_REPOSITORY", format!("{}/{sbom_path}", registry()))
        .run();
    run.assert_success();
    let (path, digest) = split(run.stdout_lines()[0]);
    assert_eq!(tags(&path), ["latest"], "no SBOM next to the image");
    let tag = format!("sha256-{}.sbom", digest.trim_start_matches("sha256:"));
    assert_eq!(tags(&sbom_path), std::slice::from_ref(&tag));
    let manifest = raw(&format!("{}/{sbom_path}:{tag}", registry()));
    assert_eq!(manifest["layers"][0]["mediaType"], "text/spdx+json");
    assert!(manifest.get("subject").is_none(), "a subject in another repository is no referrer: {manifest}");
    let doc: Value =
        serde_json::from_slice(&blob(&sbom_path, manifest["layers"][0]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(doc["name"], format!("sbom-{digest}"));
}

/// An unknown format is an error; an empty one (`--sbom="$UNSET"`) is the default, as in ko.
#[test]
fn an_unknown_sbom_format_is_an_error() {
    let run = ko(&["build", ".", "--push=false", "--sbom=go.version-m"]).cwd(withdeps()).run();
    run.assert_failure();
    assert!(run.stderr.contains("--sbom") && run.stderr.contains("spdx, cyclonedx or none"), "{run}");
    let dir = tempfile::tempdir().unwrap();
    let run = ko(&["build", ".", "--push=false", "--sbom=", "--sbom-dir", dir.path().to_str().unwrap()])
        .cwd(withdeps())
        .run();
    run.assert_success();
    assert!(dir.path().join("withdeps-linux-amd64.spdx.json").is_file(), "{run}");
}

/// A registry that takes everything but SBOM manifests, and records what it was sent.
mod refusing_registry {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    pub struct Server {
        pub address: String,
        pub requests: Arc<Mutex<Vec<String>>>,
    }

    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(vec![]));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = handle(stream, &log);
            }
        });
        Server { address, requests }
    }

    fn handle(mut stream: TcpStream, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else { return Ok(()) };
        let (method, target) = (method.to_string(), target.to_string());
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        log.lock().unwrap().push(format!("{method} {target}"));
        let path = target.split('?').next().unwrap_or(&target);
        let (status, location, body) = match method.as_str() {
            "GET" if path == "/v2/" => ("200 OK", None, "{}"),
            "HEAD" => ("404 Not Found", None, ""),
            "POST" => ("202 Accepted", Some(format!("{path}upload-1")), ""),
            "PATCH" => ("202 Accepted", Some(path.to_string()), ""),
            "PUT" if path.contains("/manifests/") && path.ends_with(".sbom") => {
                ("400 Bad Request", None, r#"{"errors":[{"code":"MANIFEST_INVALID","message":"no SBOMs here"}]}"#)
            }
            "PUT" => ("201 Created", None, ""),
            _ => ("404 Not Found", None, ""),
        };
        let mut response = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
        if let Some(location) = location {
            response.push_str(&format!("Location: {location}\r\n"));
        }
        response.push_str("Content-Type: application/json\r\n\r\n");
        response.push_str(body);
        stream.write_all(response.as_bytes())
    }
}

#[test]
fn a_failed_sbom_push_fails_the_command_before_any_tag() {
    let server = refusing_registry::start();
    let run = ko(&["build", ".", "-t", "v1"])
        .cwd(withdeps())
        .env("KO_DOCKER_REPO", format!("{}/refused", server.address))
        .run();
    run.assert_failure();
    assert!(run.stdout.is_empty(), "nothing is reported as published:\n{run}");
    assert!(run.stderr.contains("no SBOMs here"), "the registry's answer is shown:\n{run}");
    let requests = server.requests.lock().unwrap().clone();
    let manifests: Vec<&String> = requests.iter().filter(|r| r.contains("/manifests/")).collect();
    assert!(manifests.iter().any(|r| r.contains("/manifests/sha256:")), "the image went up first: {requests:?}");
    assert!(!manifests.iter().any(|r| r.ends_with("/manifests/v1")), "no tag after a failed SBOM: {requests:?}");
}

/// A dependency replaced by a directory (`replace example.com/lib => ../lib`) is listed by the
/// module path and version it is required by, as ko lists it: a directory is no module, and a
/// purl or download URL made from `../lib` would name nothing. The document stays valid SPDX.
#[test]
fn a_dependency_replaced_by_a_directory_keeps_its_module_path() {
    let work = tempfile::tempdir().unwrap();
    let (lib, app) = (work.path().join("lib"), work.path().join("app"));
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(lib.join("go.mod"), "module example.com/lib\n\ngo 1.22\n").unwrap();
    std::fs::write(lib.join("lib.go"), "package lib\n\nfunc X() string { return \"lib\" }\n").unwrap();
    std::fs::write(
        app.join("go.mod"),
        "module example.com/repl\n\ngo 1.22\n\nrequire example.com/lib v1.2.3\n\nreplace example.com/lib => ../lib\n",
    )
    .unwrap();
    std::fs::write(
        app.join("main.go"),
        "package main\n\nimport \"example.com/lib\"\n\nfunc main() { println(lib.X()) }\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = ko(&["build", ".", "--push=false", "--sbom-dir", dir.path().to_str().unwrap()])
        .cwd(&app)
        .env("KO_DOCKER_REPO", unique_repo("replaced"))
        .run();
    run.assert_success();
    let file = dir.path().join("repl-linux-amd64.spdx.json");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}\n{run}", file.display()));
    assert!(!text.contains("../lib"), "{text}");
    let doc: Value = serde_json::from_str(&text).unwrap();
    let lib =
        doc["packages"].as_array().unwrap().iter().find(|p| p["name"] == "example.com/lib").expect("the lib package");
    assert_eq!(lib["versionInfo"], "v1.2.3");
    assert_eq!(lib["externalRefs"][0]["referenceLocator"], "pkg:golang/example.com/lib@v1.2.3?type=module");
    validate_spdx(&file);
}

/// Modules whose names meet once cleaned for SPDX (`lib_x` and `lib-x`, local replacements)
/// get identifiers of their own: the document passes the SPDX validator.
#[test]
fn modules_whose_spdx_names_meet_still_get_unique_identifiers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for lib in ["lib_x", "lib-x"] {
        let path = root.join(lib);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("go.mod"), format!("module example.com/{lib}\n\ngo 1.22\n")).unwrap();
        std::fs::write(path.join("lib.go"), "package lib\n\nfunc Name() string { return \"lib\" }\n").unwrap();
    }
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    let go_mod = "module example.com/app\n\ngo 1.22\n\nrequire (\n\texample.com/lib_x v0.0.0\n\texample.com/lib-x v0.0.0\n)\n\n\
                  replace example.com/lib_x => ../lib_x\n\nreplace example.com/lib-x => ../lib-x\n";
    std::fs::write(app.join("go.mod"), go_mod).unwrap();
    let main = "package main\n\nimport (\n\ta \"example.com/lib_x\"\n\tb \"example.com/lib-x\"\n)\n\n\
                func main() { println(a.Name(), b.Name()) }\n";
    std::fs::write(app.join("main.go"), main).unwrap();
    let sboms = root.join("sboms");
    std::fs::create_dir(&sboms).unwrap();
    let run = ko(&["build", ".", "--push=false", "--sbom-dir", sboms.to_str().unwrap()])
        .cwd(&app)
        .env("KO_DOCKER_REPO", unique_repo("spdx-ids"))
        .run();
    run.assert_success();
    let file = sboms.join("app-linux-amd64.spdx.json");
    validate_spdx(&file);
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let names: Vec<&str> = doc["packages"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(names.contains(&"example.com/lib_x") && names.contains(&"example.com/lib-x"), "{names:?}");
}
