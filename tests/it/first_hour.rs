//! A newcomer's first hour, from the README: the two-command block pasted as one script, the
//! image command 1 stored (run and inspected as the README says), one install command for
//! the whole suite, packaging that leaves the checkout (and so the example's digest) alone,
//! and `examples/hello/config/` applied to the test API server and deleted again.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

fn readme() -> String {
    fs::read_to_string(workspace().join("README.md")).expect("read README.md")
}

/// The first ```sh block after the heading `heading`.
fn readme_block(heading: &str) -> String {
    let text = readme();
    let start = text.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("README.md has no {heading:?}"));
    let rest = &text[start..];
    let open = rest.find("```sh\n").unwrap_or_else(|| panic!("no ```sh block under {heading:?}")) + "```sh\n".len();
    let close = rest[open..].find("```").expect("an unterminated ```sh block");
    rest[open..open + close].to_string()
}

/// The README's two commands, run as ONE pasted script from the repository root, with two
/// substitutions (each must match exactly once, so the test notices when the README moves):
/// command 1's `cargo run --release -p kubectl-ko-build --` runs the debug `kubectl-ko-build`
/// the suite already built (a release build takes too long here), and command 2,
/// `scripts/test.sh`, becomes a check that it is executable from where the script stands,
/// which is what failed when command 1 changed directory. So this checks that the block
/// parses, that command 1 leaves the working directory alone and prints the stored image's
/// reference, and that command 2 is reachable after it; not that a release build works or
/// that the whole suite passes (scripts/test.sh is what runs this test).
#[test]
fn the_two_commands_run_pasted_as_one_script() {
    let block = readme_block("## The two commands");
    let syntax = {
        let mut cmd = Command::new("bash");
        cmd.arg("-n").arg("-c").arg(&block);
        capture(cmd, DEFAULT_TIMEOUT)
    };
    assert!(syntax.success(), "the README block does not parse:\n{block}\n{syntax}");

    let cargo_run = "cargo run --release -p kubectl-ko-build --";
    assert_eq!(block.matches(cargo_run).count(), 1, "command 1 changed; update this test:\n{block}");
    let commands: Vec<&str> = block.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert_eq!(commands.len(), 2, "two commands, one line each:\n{block}");
    assert_eq!(commands[1], "scripts/test.sh", "command 2 changed; update this test:\n{block}");
    let script = block.replace(cargo_run, "\"$KO_TEST_BUILD\"").replace(
        "\nscripts/test.sh\n",
        "\ntest -x scripts/test.sh && echo \"command 2 reachable: $PWD/scripts/test.sh\"\n",
    );
    assert_ne!(script, block);

    let cmd = KoCmd::program("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .cwd(workspace())
        .env("KO_TEST_BUILD", bin("kubectl-ko-build"));
    let run = cmd.run();
    run.assert_success();
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 2, "{run}");
    assert!(lines[1].starts_with("command 2 reachable: ") && lines[1].ends_with("/scripts/test.sh"), "{run}");
    assert_eq!(Path::new(&lines[1]["command 2 reachable: ".len()..]), workspace().join("scripts/test.sh"), "{run}");

    // What command 1 printed is the reference the README then inspects and runs.
    let reference = lines[0];
    let store = cmd.scratch().parent().unwrap().join("cache/kubectl-ko/images");
    assert!(reference.starts_with(&format!("oci:{}:hello-ko-", store.display())), "{run}");
    let inspect = readme_block("### Run what command 1 built");
    assert!(inspect.contains("skopeo inspect \"$ref\""), "{inspect}");
    assert!(inspect.contains("skopeo copy \"$ref\" docker-daemon:hello-ko:latest"), "{inspect}");
    let inspected = skopeo(&["inspect", reference]);
    inspected.assert_success();
    assert!(inspected.stdout.contains("\"Architecture\": \"amd64\""), "{inspected}");

    // `skopeo copy` into the Docker daemon, then `docker run`, as the README shows (skopeo
    // needs the test daemon's address as a flag: it does not read DOCKER_HOST).
    let name = format!("{}:latest", unique_name("hello-ko"));
    let mut copy = Command::new(tool("skopeo"));
    copy.args(["copy", "--dest-daemon-host", &docker_host(), reference, &format!("docker-daemon:{name}")]);
    capture(copy, DEFAULT_TIMEOUT).assert_success();
    let out = docker(&["run", "--rm", "--network=none", &name]);
    out.assert_success();
    assert_eq!(out.stdout_lines()[0], "Hello from kubectl-ko!", "{out}");
    docker(&["rmi", &name]).assert_success();
}

#[test]
fn install_sh_puts_every_binary_into_prefix_bin() {
    let dir = tempfile::tempdir().unwrap();
    // A PREFIX whose bin/ does not exist yet.
    let prefix = dir.path().join("new/prefix");
    let install = |path: &str| {
        let mut cmd = Command::new(workspace().join("scripts/install.sh"));
        cmd.arg("--bin-dir").arg(bin_dir()).arg(&prefix).env("PATH", path);
        capture(cmd, DEFAULT_TIMEOUT)
    };
    let path = std::env::var("PATH").unwrap();
    let run = install(&path);
    run.assert_success();
    let bin = prefix.join("bin");
    let mut installed: Vec<String> =
        fs::read_dir(&bin).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    installed.sort();
    let mut expected: Vec<String> = fs::read_dir(workspace().join("plugins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    // And a completer for each command: kubectl asks the longest plugin name's.
    let completers: Vec<String> = expected
        .iter()
        .filter_map(|n| n.strip_prefix("kubectl-ko-"))
        .map(|c| format!("kubectl_complete-ko-{c}"))
        .collect();
    expected.extend(completers);
    expected.sort();
    assert_eq!(installed, expected, "{run}");
    // kubectl completes a command's flags through them (`kubectl ko build --pl<TAB>`).
    let complete = KoCmd::program(tool("kubectl"))
        .args(["__complete", "ko", "build", "--pl"])
        .env("PATH", format!("{}:{path}", bin.display()))
        .run();
    complete.assert_success();
    assert!(complete.stdout.lines().any(|l| l.starts_with("--platform")), "{complete}");
    let printed: Vec<PathBuf> = run.stdout_lines().iter().map(PathBuf::from).collect();
    assert_eq!(printed, expected.iter().map(|b| bin.join(b)).collect::<Vec<_>>(), "{run}");
    assert!(run.stderr.contains(&format!("installed {} programs into {}", expected.len(), bin.display())), "{run}");
    assert!(run.stderr.contains("is NOT on PATH") && run.stderr.contains("export PATH="), "{run}");
    let version = KoCmd::program(bin.join("kubectl-ko")).arg("version").run();
    version.assert_success();

    // Again, with PREFIX/bin on PATH: it says so, and replaces the binaries in place.
    let again = install(&format!("{}:{path}", bin.display()));
    again.assert_success();
    assert!(again.stderr.contains("is on PATH"), "{again}");
}

fn git_status() -> String {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(workspace()).args(["status", "--porcelain", "--untracked-files=no"]);
    let run = capture(cmd, DEFAULT_TIMEOUT);
    run.assert_success();
    run.stdout
}

fn example_digest() -> String {
    let run = ko(&["build", ".", "--push=false"]).cwd(workspace().join("examples/hello")).run();
    run.assert_success();
    let reference = run.stdout.trim().to_string();
    assert!(reference.starts_with("hello-ko-"), "{run}");
    reference.rsplit_once('@').unwrap().1.to_string()
}

/// scripts/package.sh writes its archives and manifest into --dist only: tracked files stay
/// as they were, so Go's VCS stamp, and with it the example's digest, does not change.
#[test]
fn packaging_leaves_the_checkout_and_the_example_digest_alone() {
    let status = git_status();
    let digest = example_digest();
    let dist = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(workspace().join("scripts/package.sh"));
    cmd.arg("--bin-dir").arg(bin_dir()).arg("--dist").arg(dist.path());
    let run = capture(cmd, DEFAULT_TIMEOUT);
    run.assert_success();
    assert!(dist.path().join("ko.yaml").is_file(), "{run}");
    assert!(run.stderr.contains(&format!("wrote {}", dist.path().join("ko.yaml").display())), "{run}");
    assert_eq!(git_status(), status, "package.sh changed the checkout:\n{run}");
    assert_eq!(example_digest(), digest);
}

const EXAMPLE_NS: &str = "hello-ko";

/// The test API server has no controller-manager, so a deleted Namespace stays Terminating
/// forever and nothing could be created in it again. Once its objects are deleted, finish
/// what the namespace controller would do: clear its finalizers, and the API server
/// removes it. Does nothing when the namespace does not exist.
fn finish_namespace_deletion() {
    let get = kubectl(&["get", "namespace", EXAMPLE_NS, "-o", "json"]);
    if !get.success() {
        assert!(get.stderr.contains("NotFound") || get.stderr.contains("not found"), "{get}");
        return;
    }
    let mut ns: serde_json::Value = serde_json::from_str(&get.stdout).unwrap();
    if ns["metadata"]["deletionTimestamp"].is_null() {
        kubectl(&["delete", "namespace", EXAMPLE_NS, "--wait=false"]).assert_success();
        ns = serde_json::from_str(&kubectl(&["get", "namespace", EXAMPLE_NS, "-o", "json"]).stdout).unwrap();
    }
    ns["spec"]["finalizers"] = serde_json::json!([]);
    let file = tempfile::NamedTempFile::new().unwrap();
    fs::write(file.path(), ns.to_string()).unwrap();
    let path = format!("/api/v1/namespaces/{EXAMPLE_NS}/finalize");
    kubectl(&["replace", "--raw", &path, "-f", file.path().to_str().unwrap()]).assert_success();
    for _ in 0..50 {
        if !kubectl(&["get", "namespace", EXAMPLE_NS]).success() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("namespace {EXAMPLE_NS} is still there after its finalizers were cleared");
}

/// The README's walk-through against the test API server: `kubectl ko apply -f config/` in
/// examples/hello (where `ko://example.com/hello-ko` resolves, as in ko), `kubectl get`,
/// then `kubectl ko delete -f examples/hello/config/` from the repository root. Idempotent:
/// a namespace left by an earlier run is removed first.
#[test]
fn the_example_config_applies_and_deletes() {
    let config = workspace().join("examples/hello/config");
    // `delete -f` waits until the namespace is gone, as kubectl does; here nothing removes a
    // namespace's finalizer, so the test does it once the delete has marked the namespace.
    let delete = || {
        let running = std::thread::spawn(|| {
            ko(&["delete", "-f", "examples/hello/config/", "--ignore-not-found"])
                .cwd(workspace())
                .env("KUBECONFIG", kubeconfig())
                .run()
        });
        for _ in 0..600 {
            let get = kubectl(&["get", "namespace", EXAMPLE_NS, "-o", "jsonpath={.metadata.deletionTimestamp}"]);
            if running.is_finished() || !get.success() || !get.stdout.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        finish_namespace_deletion();
        running.join().unwrap()
    };
    // A namespace left behind by an earlier run (objects first, as `delete -f` does).
    if kubectl(&["get", "namespace", EXAMPLE_NS]).success() {
        delete().assert_success();
    }

    let repo = unique_repo("example");
    let apply = kubectl_ko(&["apply", "-f", "config/"])
        .cwd(workspace().join("examples/hello"))
        .env("KUBECONFIG", kubeconfig())
        .env("KO_DOCKER_REPO", &repo)
        .run();
    apply.assert_success();
    assert_eq!(
        apply.stdout_lines(),
        ["namespace/hello-ko created", "deployment.apps/hello created", "service/hello created"],
        "{apply}"
    );
    let image = kubectl(&[
        "get",
        "deployment",
        "hello",
        "-n",
        EXAMPLE_NS,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    image.assert_success();
    assert!(image.stdout.starts_with(&format!("{repo}/hello-ko-")) && image.stdout.contains("@sha256:"), "{image}");
    let out = run_image(&image.stdout);
    assert_eq!(
        out.stdout_lines(),
        ["Hello from kubectl-ko!", "This message was packaged from kodata/ and read from $KO_DATA_PATH."],
        "{out}"
    );
    let service = kubectl(&["get", "service", "hello", "-n", EXAMPLE_NS, "-o", "jsonpath={.spec.ports[0].targetPort}"]);
    service.assert_success();
    assert_eq!(service.stdout, "8080");

    let deleted = delete();
    deleted.assert_success();
    assert_eq!(
        deleted.stdout_lines(),
        [
            "deployment.apps \"hello\" deleted from hello-ko namespace",
            "service \"hello\" deleted from hello-ko namespace",
            "namespace \"hello-ko\" deleted"
        ],
        "{deleted}"
    );
    let gone = kubectl(&["get", "namespace", EXAMPLE_NS]);
    assert!(!gone.success(), "delete -f returned before the namespace was gone: {gone}");
    assert!(config.join("namespace.yaml").is_file());
}
