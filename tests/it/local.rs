//! Local publishing against the real Docker daemon that scripts/test.sh starts: `ko.local` and
//! `-L` (names, tags, the daemon's platform picked from an index), `ko.local/...` bases,
//! `--tarball` archives loaded with `docker load`, and `kind.local` imported into a real
//! containerd running in containers that carry kind's node labels.

use std::process::Command;
use std::sync::OnceLock;

use crate::util::*;

fn hello() -> std::path::PathBuf {
    fixture("hello")
}

fn build_local(args: &[&str]) -> KoCmd {
    ko(&["build"]).args(args).cwd(hello()).env("DOCKER_HOST", docker_host())
}

/// `docker run --rm --network=none ARGS...`, which must succeed.
fn docker_run(args: &[&str]) -> Run {
    let mut all = vec!["run", "--rm", "--network=none"];
    all.extend_from_slice(args);
    let run = docker(&all);
    run.assert_success();
    run
}

/// The digest of the linux/amd64 entry of an index in the test registry.
fn amd64_child(index_ref: &str) -> String {
    let index = skopeo_inspect(index_ref, true);
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .and_then(|m| m["digest"].as_str())
        .unwrap_or_else(|| panic!("no amd64 entry in {index}"))
        .to_string()
}

#[test]
fn ko_local_loads_the_daemons_platform_and_the_image_runs() {
    let prefix = unique_name("kolocal");
    let repo = format!("ko.local/{prefix}");
    let daemon_platform = docker(&["version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"]);
    daemon_platform.assert_success();
    let daemon_platform = daemon_platform.stdout.trim().to_string();
    assert_eq!(daemon_platform, "linux/amd64", "these tests expect an amd64 daemon");

    let run = build_local(&[".", "-B", "--platform=linux/arm64,linux/amd64", "-t", "v1", "-t", "v2"])
        .env("KO_DOCKER_REPO", &repo)
        .run();
    run.assert_success();
    let reference = run.stdout.trim();
    let (name, hex) = reference.rsplit_once(':').unwrap();
    assert_eq!(name, format!("{repo}/hello"), "{run}");
    assert_eq!(hex.len(), 64, "ko prints <name>:<hex digest>: {run}");
    assert!(
        run.stderr.contains(&format!("The Docker daemon runs {daemon_platform}: loading the linux/amd64 image")),
        "{run}"
    );

    // The hex is the digest of the amd64 image: the same build pushed gives the same digest.
    let pushed = build_local(&[".", "-B", "--platform=linux/arm64,linux/amd64"])
        .env("KO_DOCKER_REPO", unique_repo("kolocal-pushed"))
        .run();
    pushed.assert_success();
    assert_eq!(amd64_child(pushed.stdout.trim()), format!("sha256:{hex}"));

    // Named by digest and by every tag, all the same image.
    let ids: Vec<String> = [reference.to_string(), format!("{name}:v1"), format!("{name}:v2")]
        .iter()
        .map(|r| {
            let run = docker(&["image", "inspect", "--format", "{{.Id}} {{.Architecture}}", r]);
            run.assert_success();
            run.stdout.trim().to_string()
        })
        .collect();
    assert!(ids.iter().all(|id| id == &ids[0] && id.ends_with(" amd64")), "{ids:?}");

    let out = docker_run(&[&format!("{name}:v1")]);
    assert_eq!(out.value("kodata"), Some("hello from kodata"), "{out}");
    assert_eq!(out.value("uid"), Some("65532"), "{out}");
}

#[test]
fn local_flag_names_images_as_ko_does() {
    // -L with KO_DOCKER_REPO unset: ko.local and the md5 name.
    let run = build_local(&[".", "-L"]).run();
    run.assert_success();
    let reference = run.stdout.trim();
    assert!(reference.starts_with("ko.local/hello-124ec4359fcc3b362d8aa16b0f28dd36:"), "{run}");
    docker(&["image", "inspect", reference]).assert_success();
    docker(&["image", "inspect", "ko.local/hello-124ec4359fcc3b362d8aa16b0f28dd36:latest"]).assert_success();

    // -P keeps the import path; --local with a registry KO_DOCKER_REPO loads under that name
    // into the daemon, and pushes nothing.
    let repo = unique_repo("local-flag");
    let run = build_local(&["./cmd/greeter", "-L", "-P"]).env("KO_DOCKER_REPO", &repo).run();
    run.assert_success();
    let reference = run.stdout.trim();
    assert!(reference.starts_with(&format!("{repo}/example.com/hello/cmd/greeter:")), "{run}");
    docker(&["image", "inspect", reference]).assert_success();
    // --local must not push.
    crate::build_errors::assert_repo_empty(&repo);

    // --bare: the repository itself. --tarball does not apply, and says so.
    let bare = format!("ko.local/{}", unique_name("bare"));
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("never.tar");
    let run = build_local(&[".", "--bare"]).arg("--tarball").arg(&tarball).env("KO_DOCKER_REPO", &bare).run();
    run.assert_success();
    assert!(run.stdout.trim().starts_with(&format!("{bare}:")), "{run}");
    assert!(run.stderr.contains("warning: ignoring --tarball: images go only to the Docker daemon"), "{run}");
    assert!(!tarball.exists());
}

#[test]
fn no_daemon_is_one_clear_error_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let sock = format!("unix://{}/nothing.sock", dir.path().display());
    for (flag, repo) in [("-L", ""), ("--push", "ko.local/x")] {
        let run = ko(&["build", ".", flag]).cwd(hello()).env("KO_DOCKER_REPO", repo).env("DOCKER_HOST", &sock).run();
        run.assert_failure();
        let line = run.stderr.lines().last().unwrap_or_default();
        assert!(line.starts_with("error: cannot reach the Docker daemon at "), "{run}");
        assert!(line.contains(&sock) && line.contains("DOCKER_HOST"), "{run}");
        assert!(!run.stderr.contains("Building"), "the daemon is checked before building: {run}");
    }
    // A KO_DOCKER_REPO that is no repository is named as such for the daemon and kind too.
    for repo in ["ko.local/MyTeam", "kind.local/a b"] {
        let run = build_local(&[".", "--bare"]).env("KO_DOCKER_REPO", repo).run();
        crate::build_errors::assert_clear_error(&run, &[&format!("KO_DOCKER_REPO={repo:?} is not a valid repository")]);
    }
}

#[test]
fn ko_local_base_images_are_read_from_the_daemon() {
    let prefix = unique_name("kolocal-base");
    let base = format!("ko.local/{prefix}/greeter:base");
    // A base of our own in the daemon: the greeter app, tagged "base".
    let loaded =
        build_local(&["./cmd/greeter", "-B", "-t", "base"]).env("KO_DOCKER_REPO", format!("ko.local/{prefix}")).run();
    loaded.assert_success();

    let repo = unique_repo("on-daemon-base");
    let run = build_local(&[".", "-B"]).env("KO_DOCKER_REPO", &repo).env("KO_DEFAULTBASEIMAGE", &base).run();
    run.assert_success();
    assert!(run.stderr.contains(&format!("Using base {base}@sha256:")), "{run}");
    let reference = run.stdout.trim();
    let manifest = skopeo_inspect(reference, true);
    assert_eq!(manifest["annotations"]["org.opencontainers.image.base.name"], base.as_str());
    assert_eq!(manifest["mediaType"], "application/vnd.docker.distribution.manifest.v2+json", "{manifest}");
    let config = skopeo_inspect_config(reference);
    let history: Vec<&str> =
        config["history"].as_array().unwrap().iter().filter_map(|h| h["comment"].as_str()).collect();
    assert!(history.iter().any(|c| c.contains("/ko-app/greeter")), "the base's layers are kept: {history:?}");
    assert!(history.iter().any(|c| c.contains("/ko-app/hello")), "{history:?}");
    let out = run_image(reference);
    assert_eq!(out.value("kodata"), Some("hello from kodata"), "{out}");

    // The same base gives the same image again (its layers are compressed reproducibly).
    let again = build_local(&[".", "-B"]).env("KO_DOCKER_REPO", &repo).env("KO_DEFAULTBASEIMAGE", &base).run();
    again.assert_success();
    assert_eq!(again.stdout.trim(), reference);

    let missing = build_local(&["."])
        .env("KO_DOCKER_REPO", &repo)
        .env("KO_DEFAULTBASEIMAGE", format!("ko.local/{prefix}/nothing:here"))
        .run();
    missing.assert_failure();
    assert!(
        missing.stderr.contains(&format!("base image ko.local/{prefix}/nothing:here from the Docker daemon")),
        "{missing}"
    );
}

/// With no docker CLI installed, `ko.local` speaks the daemon's API over `DOCKER_HOST`, as ko
/// does: images are loaded (and run), `ko.local` bases read back, and a daemon that does not
/// answer is one clear error.
#[test]
fn ko_local_without_a_docker_cli_speaks_the_daemons_api() {
    let bin = tempfile::tempdir().unwrap();
    for program in ["go", "git"] {
        std::os::unix::fs::symlink(tool(program), bin.path().join(program)).unwrap();
    }
    let no_cli = |cmd: KoCmd| cmd.env("PATH", bin.path());
    let prefix = unique_name("no-cli");
    let run = no_cli(build_local(&[".", "-B", "-t", "v1"])).env("KO_DOCKER_REPO", format!("ko.local/{prefix}")).run();
    run.assert_success();
    let reference = run.stdout.trim();
    assert!(reference.starts_with(&format!("ko.local/{prefix}/hello:")), "{run}");
    assert_eq!(docker_run(&[reference]).value("kodata"), Some("hello from kodata"));

    let base = format!("ko.local/{prefix}/hello:v1");
    let on_base = no_cli(build_local(&["./cmd/greeter", "-B"]))
        .env("KO_DOCKER_REPO", unique_repo("no-cli-base"))
        .env("KO_DEFAULTBASEIMAGE", &base)
        .run();
    on_base.assert_success();
    assert!(on_base.stderr.contains(&format!("Using base {base}@sha256:")), "{on_base}");
    let config = skopeo_inspect_config(on_base.stdout.trim());
    let history: Vec<&str> =
        config["history"].as_array().unwrap().iter().filter_map(|h| h["comment"].as_str()).collect();
    assert!(history.iter().any(|c| c.contains("/ko-app/hello")), "the base's layers are kept: {history:?}");

    let sock = format!("unix://{}/nothing.sock", bin.path().display());
    let run = no_cli(build_local(&["."])).env("KO_DOCKER_REPO", "ko.local").env("DOCKER_HOST", &sock).run();
    run.assert_failure();
    let line = run.stderr.lines().last().unwrap_or_default();
    assert!(line.starts_with(&format!("error: cannot reach the Docker daemon at {sock}")), "{run}");
}

#[test]
fn a_multi_platform_tarball_is_an_oci_layout_that_docker_loads_and_runs() {
    let repo = unique_repo("tarball-load");
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("images.tar");
    let run = build_local(&[".", "-B", "--push=false", "--platform=linux/amd64,linux/arm64", "-t", "t1"])
        .arg("--tarball")
        .arg(&archive)
        .env("KO_DOCKER_REPO", &repo)
        .run();
    run.assert_success();

    // An OCI image layout archive holding the whole index...
    let index = skopeo_inspect(&format!("oci-archive:{}:{repo}/hello:t1", archive.display()), true);
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json", "{index}");
    let platforms: Vec<&str> =
        index["manifests"].as_array().unwrap().iter().filter_map(|m| m["platform"]["architecture"].as_str()).collect();
    assert_eq!(platforms, ["amd64", "arm64"]);

    // ...that docker load accepts, and the loaded image runs.
    let loaded = docker(&["load", "-i", archive.to_str().unwrap()]);
    loaded.assert_success();
    assert!(loaded.stdout.contains(&format!("Loaded image: {repo}/hello:t1")), "{loaded}");
    let out = docker_run(&[&format!("{repo}/hello:t1")]);
    assert_eq!(out.value("kodata"), Some("hello from kodata"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// kind.local
// ---------------------------------------------------------------------------------------------

const NODE_IMAGE: &str = "ko-e2e-kind-node:containerd";

/// A node image of our own (nothing can be pulled): Debian's containerd and ctr with the
/// libraries they link, imported into the test daemon once.
fn node_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if docker(&["image", "inspect", NODE_IMAGE]).success() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        for d in ["usr/bin", "tmp", "var/lib/containerd", "run/containerd", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        let mut files = vec![tool("containerd"), tool("ctr")];
        for bin in files.clone() {
            let ldd = capture(
                {
                    let mut c = Command::new("ldd");
                    c.arg(&bin);
                    c
                },
                DEFAULT_TIMEOUT,
            );
            files.extend(ldd.stdout.split_whitespace().filter(|w| w.starts_with('/')).map(std::path::PathBuf::from));
        }
        for file in &files {
            let dest = rootfs.join(file.strip_prefix("/").unwrap());
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(file, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", file.display()));
        }
        let tar = dir.path().join("rootfs.tar");
        let status = Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg(".").status().unwrap();
        assert!(status.success());
        docker(&["import", "-c", r#"ENTRYPOINT ["/usr/bin/containerd"]"#, tar.to_str().unwrap(), NODE_IMAGE])
            .assert_success();
    });
    NODE_IMAGE
}

/// Node containers of one kind cluster, removed when dropped.
pub(crate) struct Cluster {
    pub(crate) name: String,
    pub(crate) nodes: Vec<String>,
}

impl Cluster {
    /// Starts `count` nodes labelled as kind labels them, each running containerd.
    pub(crate) fn start(count: usize) -> Cluster {
        let name = unique_name("kind");
        let mut cluster = Cluster { name: name.clone(), nodes: vec![] };
        for i in 0..count {
            let node = format!("{name}-node{i}");
            let role = if i == 0 { "control-plane" } else { "worker" };
            start_node(&name, &node, role, &[]);
            cluster.nodes.push(node.clone());
            let ready = (0..100).any(|_| {
                std::thread::sleep(std::time::Duration::from_millis(100));
                docker(&["exec", &node, "ctr", "version"]).success()
            });
            assert!(ready, "containerd did not start in {node}: {}", docker(&["logs", &node]));
        }
        cluster
    }

    /// `ctr -n k8s.io images ls` on a node: name → target digest.
    pub(crate) fn images(&self, node: &str) -> Vec<(String, String)> {
        let run = docker(&["exec", node, "ctr", "-n", "k8s.io", "images", "ls"]);
        run.assert_success();
        run.stdout
            .lines()
            .skip(1)
            .filter_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                (cols.len() > 2).then(|| (cols[0].to_string(), cols[2].to_string()))
            })
            .collect()
    }
}

/// Starts the container `node` of kind cluster `cluster` with `role`, `extra` docker flags
/// before the image. Not --privileged: the sandbox this runs in may not grant every
/// capability; containerd needs only mounts for its snapshots.
fn start_node(cluster: &str, node: &str, role: &str, extra: &[&str]) {
    let (cluster_label, role_label) =
        (format!("io.x-k8s.kind.cluster={cluster}"), format!("io.x-k8s.kind.role={role}"));
    let mut args = vec!["run", "-d", "--name", node, "--network=none", "--cap-add=SYS_ADMIN"];
    args.extend(["--security-opt=seccomp=unconfined", "--security-opt=apparmor=unconfined"]);
    args.extend(["--tmpfs=/var/lib/containerd", "--label", &cluster_label, "--label", &role_label]);
    args.extend(extra);
    args.push(node_image());
    docker(&args).assert_success();
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            let _ = docker(&["rm", "-f", node]);
        }
    }
}

#[test]
fn kind_local_imports_into_every_node_of_the_cluster() {
    let cluster = Cluster::start(2);
    let run = build_local(&[".", "-B", "--platform=linux/amd64,linux/arm64", "-t", "v1"])
        .env("KO_DOCKER_REPO", "kind.local")
        .env("KIND_CLUSTER_NAME", &cluster.name)
        .run();
    run.assert_success();
    let reference = run.stdout.trim();
    let (name, hex) = reference.rsplit_once(':').unwrap();
    assert_eq!(name, "kind.local/hello", "{run}");

    // The same build pushed: the printed hex is the digest of the index containerd got.
    let pushed = build_local(&[".", "-B", "--platform=linux/amd64,linux/arm64"])
        .env("KO_DOCKER_REPO", unique_repo("kind"))
        .run();
    pushed.assert_success();
    assert!(pushed.stdout.trim().ends_with(&format!("@sha256:{hex}")), "{pushed}");

    for node in &cluster.nodes {
        let images = cluster.images(node);
        let want = format!("sha256:{hex}");
        assert!(images.contains(&(reference.to_string(), want.clone())), "{node}: {images:?}");
        assert!(images.contains(&("kind.local/hello:v1".to_string(), want)), "{node}: {images:?}");
    }
    // What containerd holds runs: exported from a node (its amd64 image), loaded into the
    // test daemon, and run there.
    let node = &cluster.nodes[1];
    // Not under /var/lib/containerd: `docker cp` cannot read a tmpfs mount.
    let exported = "/hello.tar";
    let export = ["exec", node, "ctr", "-n", "k8s.io", "images", "export", "--platform", "linux/amd64"];
    docker(&[&export[..], &[exported, "kind.local/hello:v1"]].concat()).assert_success();
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("hello.tar");
    docker(&["cp", &format!("{node}:{exported}"), tar.to_str().unwrap()]).assert_success();
    let loaded = docker(&["load", "-i", tar.to_str().unwrap()]);
    loaded.assert_success();
    assert!(loaded.stdout.contains("kind.local/hello:v1"), "{loaded}");
    let out = docker_run(&["kind.local/hello:v1"]);
    docker(&["rmi", "kind.local/hello:v1"]);
    assert_eq!(out.value("kodata"), Some("hello from kodata"), "{out}");

    let other = unique_name("no-such-cluster");
    let missing = build_local(&["."]).env("KO_DOCKER_REPO", "kind.local").env("KIND_CLUSTER_NAME", &other).run();
    missing.assert_failure();
    assert!(
        missing.stderr.contains(&format!(
            "error: no kind cluster {other:?}: no running container is labelled io.x-k8s.kind.cluster={other}"
        )),
        "{missing}"
    );
    assert!(!missing.stderr.contains("Building"), "{missing}");

    // Nodes that exist but are stopped (after a reboot): `kind create` would fail, so the
    // error says to start them.
    docker(&["stop", "-t", "1", &cluster.nodes[0], &cluster.nodes[1]]).assert_success();
    let stopped = build_local(&["."]).env("KO_DOCKER_REPO", "kind.local").env("KIND_CLUSTER_NAME", &cluster.name).run();
    stopped.assert_failure();
    let start = format!("docker start {} {}", cluster.nodes[0], cluster.nodes[1]);
    assert!(stopped.stderr.contains(&format!("the nodes of kind cluster {:?} are stopped", cluster.name)), "{stopped}");
    assert!(stopped.stderr.contains(&start), "{stopped}");
}

/// A node whose `ctr` cannot run: the error says why, as `docker exec` told it (on its
/// stdout), not "no output".
#[test]
fn kind_local_says_why_a_node_cannot_import() {
    let name = unique_name("kind-noctr");
    let node = format!("{name}-node0");
    let cluster = Cluster { name: name.clone(), nodes: vec![node.clone()] };
    // The node's ctr replaced by a file that cannot be run (exec finds no program there).
    let dir = tempfile::tempdir().unwrap();
    let ctr = dir.path().join("ctr");
    std::fs::write(&ctr, "not a program").unwrap();
    let mount = format!("{}:/usr/bin/ctr:ro", ctr.display());
    start_node(&name, &node, "control-plane", &["-v", &mount]);
    let run = build_local(&["."]).env("KO_DOCKER_REPO", "kind.local").env("KIND_CLUSTER_NAME", &cluster.name).run();
    crate::build_errors::assert_clear_error(&run, &["ctr", "executable file not found"]);
}

/// A tarball's images get the fully qualified names containerd keeps as given (`ctr images
/// import`, `kind load image-archive`), the names the kubelet looks images up by.
#[test]
fn a_tarball_imported_into_containerd_has_the_names_the_kubelet_looks_up() {
    let cluster = Cluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("app.tar");
    let run = build_local(&[".", "--push=false", "-B", "--tarball", tar.to_str().unwrap()])
        .env("KO_DOCKER_REPO", "team")
        .run();
    run.assert_success();
    let node = &cluster.nodes[0];
    docker(&["cp", tar.to_str().unwrap(), &format!("{node}:/app.tar")]).assert_success();
    docker(&["exec", node, "ctr", "-n", "k8s.io", "images", "import", "--all-platforms", "/app.tar"]).assert_success();
    let names: Vec<String> = cluster.images(node).into_iter().map(|(name, _)| name).collect();
    assert!(names.contains(&"docker.io/team/hello:latest".to_string()), "{names:?}");
}
