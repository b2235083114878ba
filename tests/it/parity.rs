//! Drop-in parity with ko's cluster commands, against the real kube-apiserver and the real
//! kubectl: `create`, `run`, kubectl flags after `--`, `--dry-run=client`, `delete KIND NAME`,
//! taking over objects a client-side `kubectl apply` (what `ko apply` runs) manages, and
//! `KO_DOCKER_REPO` being required where images go to a cluster.

use std::fs;
use std::path::Path;

use crate::util::*;

fn get(args: &[&str], jsonpath: &str) -> String {
    let path = format!("jsonpath={jsonpath}");
    let mut all = vec!["get"];
    all.extend(args);
    all.extend(["-o", &path]);
    let run = kubectl(&all);
    run.assert_success();
    run.stdout
}

/// A ConfigMap naming the hello image, in `namespace`.
fn configmap_dir(name: &str, namespace: &str, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:\n  image: ko://example.com/hello\n{extra}"
    );
    fs::write(dir.path().join("cm.yaml"), text).unwrap();
    dir
}

fn namespace() -> String {
    let namespace = unique_name("parity");
    kubectl(&["create", "namespace", &namespace]).assert_success();
    namespace
}

/// `kubectl ko VERB -f DIR EXTRA...` against the test cluster.
fn ko_in_cluster(args: &[&str], dir: &Path) -> Run {
    let (verb, extra) = args.split_first().unwrap();
    let mut all = vec![*verb, "-f", dir.to_str().unwrap()];
    all.extend(extra);
    ko(&all).cwd(fixture("hello")).env("KUBECONFIG", kubeconfig()).env("KO_DOCKER_REPO", unique_repo("parity")).run()
}

#[test]
fn create_creates_once_then_names_what_exists() {
    let namespace = namespace();
    let dir = configmap_dir("made", &namespace, "");
    let run = ko_in_cluster(&["create"], dir.path());
    run.assert_success();
    assert_eq!(run.stdout_lines(), ["configmap/made created"], "{run}");
    let image = get(&["configmap", "made", "-n", &namespace], "{.data.image}");
    assert!(image.contains("/hello-124ec4359fcc3b362d8aa16b0f28dd36@sha256:"), "{image}");
    let version = get(&["configmap", "made", "-n", &namespace], "{.metadata.resourceVersion}");

    let again = ko_in_cluster(&["create"], dir.path());
    again.assert_failure();
    assert!(again.stderr.contains("configmap/made") && again.stderr.contains("already exists"), "{again}");
    assert!(again.stderr.lines().last().unwrap_or_default().contains("1 of 1 objects could not be created"), "{again}");
    assert_eq!(get(&["configmap", "made", "-n", &namespace], "{.metadata.resourceVersion}"), version);

    // A field the kind does not have is refused, as kubectl create refuses it, not dropped.
    let dir = configmap_dir("unknown-field", &namespace, "bogusField: 1\n");
    let run = ko_in_cluster(&["create"], dir.path());
    run.assert_failure();
    assert!(run.stderr.contains("bogusField"), "{run}");
    assert_not_found(&["configmap", "unknown-field", "-n", &namespace]);
}

#[test]
fn flags_after_a_double_dash_go_to_kubectl() {
    let namespace = namespace();
    let dir = configmap_dir("piped", &namespace, "");
    // kubectl's own output format proves kubectl did the work.
    let run = ko_in_cluster(&["apply", "--", "-o", "name", "--dry-run=server"], dir.path());
    run.assert_success();
    assert_eq!(run.stdout_lines(), ["configmap/piped"], "{run}");
    assert_not_found(&["configmap", "piped", "-n", &namespace]);

    let run = ko_in_cluster(&["create", "--", "-o", "name"], dir.path());
    run.assert_success();
    assert_eq!(run.stdout_lines(), ["configmap/piped"], "{run}");
    assert!(get(&["configmap", "piped", "-n", &namespace], "{.data.image}").contains("@sha256:"));

    let run =
        ko_in_cluster(&["apply", "--", "--server-side", "--force-conflicts", "--field-manager=piped-test"], dir.path());
    run.assert_success();
    let managers =
        get(&["configmap", "piped", "-n", &namespace, "--show-managed-fields"], "{.metadata.managedFields[*].manager}");
    assert!(managers.split_whitespace().any(|m| m == "piped-test"), "{managers}");

    // delete -f with kubectl flags, then delete KIND NAME, both through kubectl.
    let run = ko(&["delete", "-f", dir.path().to_str().unwrap(), "--", "--wait=false", "-o", "name"])
        .env("KUBECONFIG", kubeconfig())
        .run();
    run.assert_success();
    assert_eq!(run.stdout_lines(), ["configmap/piped"], "{run}");
    // kubectl's flags without `--`, as ko scripts pass them: kubectl does the delete.
    ko_in_cluster(&["apply"], dir.path()).assert_success();
    let run = ko(&["delete", "-f", dir.path().to_str().unwrap(), "--wait=false", "--grace-period=0", "-o", "name"])
        .env("KUBECONFIG", kubeconfig())
        .run();
    run.assert_success();
    assert_eq!(run.stdout_lines(), ["configmap/piped"], "{run}");
    assert_not_found(&["configmap", "piped", "-n", &namespace]);
    kubectl(&["create", "configmap", "loose", "-n", &namespace]).assert_success();
    let run = ko(&["delete", "configmap", "loose", "-n", &namespace]).env("KUBECONFIG", kubeconfig()).run();
    run.assert_success();
    assert!(run.stdout.contains("configmap \"loose\" deleted"), "{run}");
    assert_not_found(&["configmap", "loose", "-n", &namespace]);
    let run = ko(&["delete", "configmap", "loose", "-n", &namespace]).env("KUBECONFIG", kubeconfig()).run();
    run.assert_failure();
    assert!(run.stderr.contains("NotFound") || run.stderr.contains("not found"), "{run}");
}

/// kubectl's `-v 6` (or `-v=6`) is a log level, never the name of an object: a kubectl flag,
/// so the delete goes to kubectl with it, `delete -f` too, as ko hands every delete to kubectl.
#[test]
fn a_delete_log_level_is_not_an_object() {
    let namespace = namespace();
    for name in ["web", "6"] {
        kubectl(&["create", "configmap", name, "-n", &namespace]).assert_success();
    }
    let run = ko(&["delete", "configmap", "web", "-n", &namespace, "-v", "6"]).env("KUBECONFIG", kubeconfig()).run();
    run.assert_success();
    // Some kubectl versions add " from NS namespace".
    assert!(run.stdout.starts_with("configmap \"web\" deleted") && run.stdout_lines().len() == 1, "{run}");
    assert!(
        run.stderr.contains("GET https://") || run.stderr.contains("round_trippers"),
        "kubectl logs at level 6: {run}"
    );
    assert_eq!(get(&["configmap", "6", "-n", &namespace], "{.metadata.name}"), "6");

    let dir = configmap_dir("files", &namespace, "");
    for level in [["-v", "6"].as_slice(), ["-v=6"].as_slice()] {
        ko_in_cluster(&["apply"], dir.path()).assert_success();
        let mut args = vec!["delete", "-f", dir.path().to_str().unwrap()];
        args.extend_from_slice(level);
        let run = ko(&args).env("KUBECONFIG", kubeconfig()).run();
        run.assert_success();
        assert!(run.stderr.contains("GET https://") || run.stderr.contains("round_trippers"), "kubectl logs: {run}");
        assert_not_found(&["configmap", "files", "-n", &namespace]);
        assert_eq!(get(&["configmap", "6", "-n", &namespace], "{.metadata.name}"), "6");
    }
}

#[test]
fn a_client_dry_run_sends_nothing() {
    let namespace = namespace();
    let dir = configmap_dir("dry", &namespace, "");
    let run = ko_in_cluster(&["apply", "--dry-run=client"], dir.path());
    run.assert_success();
    assert_eq!(run.stdout_lines(), ["configmap/dry created (dry run)"], "{run}");
    assert_not_found(&["configmap", "dry", "-n", &namespace]);
    let run = ko_in_cluster(&["apply", "--dry-run=sideways"], dir.path());
    run.assert_failure();
    assert!(run.stderr.contains("--dry-run") && run.stderr.contains("sideways"), "{run}");
}

#[test]
fn objects_applied_client_side_by_ko_are_taken_over_without_conflicts() {
    let namespace = namespace();
    // What `ko apply` leaves: a client-side apply by the real kubectl, holding the image.
    let theirs = tempfile::tempdir().unwrap();
    fs::write(
        theirs.path().join("cm.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: moved\n  namespace: {namespace}\ndata:\n  image: registry.example/old@sha256:{}\n  stale: x\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    kubectl(&["apply", "-f", theirs.path().to_str().unwrap()]).assert_success();
    let managers = || {
        get(&["configmap", "moved", "-n", &namespace, "--show-managed-fields"], "{.metadata.managedFields[*].manager}")
    };
    assert!(managers().contains("kubectl-client-side-apply"), "{}", managers());

    let ours = configmap_dir("moved", &namespace, "");
    let run = ko_in_cluster(&["apply"], ours.path());
    run.assert_success();
    assert_eq!(run.stdout_lines(), ["configmap/moved configured"], "{run}");
    assert!(get(&["configmap", "moved", "-n", &namespace], "{.data.image}").contains("/hello-124ec"));
    assert_eq!(managers().split_whitespace().collect::<Vec<_>>(), ["kubectl-ko"], "{}", managers());
    // Owning what kubectl owned, the fields the new YAML drops are pruned.
    assert_eq!(get(&["configmap", "moved", "-n", &namespace], "{.data.stale}"), "");
}

#[test]
fn run_starts_a_pod_with_the_image_labels_and_arguments() {
    let namespace = namespace();
    let repo = unique_repo("run");
    // No kubelet runs in the test cluster: the pod is created and stays Pending, so the test
    // does not attach and keeps the pod to look at it.
    // Named twice, one package: one pod, as ko keys its images by import path.
    let run = ko(&[
        "run",
        ".",
        "example.com/hello",
        "--",
        "-n",
        &namespace,
        "--attach=false",
        "--rm=false",
        "--labels=team=a",
        "--",
        "--greeting",
        "hi",
    ])
    .cwd(fixture("hello"))
    .env("KUBECONFIG", kubeconfig())
    .env("KO_DOCKER_REPO", &repo)
    .run();
    run.assert_success();
    assert_eq!(run.stderr.matches("Running \"ko://example.com/hello\"").count(), 1, "{run}");
    let pod = "hello-124ec4359fcc3b362d8aa16b0f28dd36";
    let image = get(&["pod", pod, "-n", &namespace], "{.spec.containers[0].image}");
    assert!(image.starts_with(&format!("{repo}/{pod}@sha256:")), "{image}");
    assert_eq!(get(&["pod", pod, "-n", &namespace], "{.metadata.labels.team}"), "a");
    assert_eq!(get(&["pod", pod, "-n", &namespace], "{.spec.containers[0].args}"), "[\"--greeting\",\"hi\"]");
    assert_eq!(get(&["pod", pod, "-n", &namespace], "{.spec.restartPolicy}"), "Never");
    // The image it names is the one that runs, with those arguments.
    let ran = run_image_with(&image, &["--greeting", "hi"], None);
    ran.assert_success();
    assert!(ran.stdout.contains("args=--greeting,hi"), "{ran}");
}

#[test]
fn commands_that_deploy_need_ko_docker_repo() {
    let dir = configmap_dir("norepo", "default", "");
    let path = dir.path().to_str().unwrap();
    for args in [vec!["resolve", "-f", path], vec!["apply", "-f", path], vec!["create", "-f", path], vec!["run", "."]] {
        let run = ko(&args).cwd(fixture("hello")).env("KUBECONFIG", kubeconfig()).run();
        run.assert_failure();
        let last = run.stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("error: KO_DOCKER_REPO") && last.contains("ko.local"), "{args:?}: {run}");
        assert!(run.stdout.is_empty(), "{run}");
    }
    // YAML without ko:// needs no registry.
    let plain = tempfile::tempdir().unwrap();
    fs::write(plain.path().join("a.yaml"), "a: 1\n").unwrap();
    ko(&["resolve", "-f", plain.path().to_str().unwrap()]).run().assert_success();
}

#[test]
fn help_of_a_command_and_powershell_completion() {
    let run = kubectl_ko(&["help", "create"]).run();
    run.assert_success();
    assert!(run.stdout.contains("kubectl ko create") && run.stdout.contains("--filename"), "{run}");
    let run = kubectl_ko(&["help", "run"]).run();
    run.assert_success();
    assert!(run.stdout.contains("KUBECTL_RUN_FLAGS"), "{run}");
    // As ko (cobra) answers them: an unknown help topic, a completion without a shell, and a
    // version with arguments are no errors; a script asking for no descriptions gets one.
    let run = kubectl_ko(&["help", "nope"]).run();
    run.assert_success();
    assert!(run.stdout.starts_with("Unknown help topic [`nope`]") && run.stdout.contains("resolve"), "{run}");
    let run = kubectl_ko(&["completion"]).run();
    run.assert_success();
    assert!(run.stdout.contains("kubectl ko completion bash"), "{run}");
    let run = kubectl_ko(&["version", "extra"]).run();
    run.assert_success();
    assert!(run.stdout.starts_with("kubectl-ko v"), "{run}");
    let run = kubectl_ko(&["completion", "powershell"]).run();
    run.assert_success();
    assert!(run.stdout.contains("Register-ArgumentCompleter") && run.stdout.contains("kubectl-ko-run"), "{run}");
    let bare = kubectl_ko(&["completion", "powershell", "--no-descriptions"]).run();
    bare.assert_success();
    assert!(bare.stdout.contains("kubectl-ko-run") && bare.stdout.len() < run.stdout.len(), "{bare}");
}

#[test]
fn a_script_written_for_ko_runs_unchanged() {
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join("test");
    let copied = std::process::Command::new("cp").arg("-r").arg(fixture("hello")).arg(&app).status().unwrap();
    assert!(copied.success());
    // kodata's symlink points outside kodata/, inside the worktree (ko's rule needs a worktree).
    assert!(std::process::Command::new("git").args(["init", "-q"]).current_dir(&app).status().unwrap().success());
    fs::create_dir(app.join("config")).unwrap();
    fs::write(
        app.join("config/pod.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kodata\nspec:\n  containers:\n  - name: app\n    image: ko://example.com/hello\n",
    )
    .unwrap();
    // Everything the script does in the cluster happens in a namespace of its own.
    let namespace = namespace();
    let config = work.path().join("kubeconfig");
    fs::copy(kubeconfig(), &config).unwrap();
    let config_arg = format!("--kubeconfig={}", config.display());
    kubectl(&["config", "set-context", "--current", &format!("--namespace={namespace}"), &config_arg]).assert_success();
    // kubectl finds `kubectl ko` on PATH, as after a krew install.
    let links = work.path().join("bin");
    fs::create_dir(&links).unwrap();
    for name in ["kubectl-ko", "kubectl-ko-build", "kubectl-ko-apply", "kubectl-ko-run"] {
        std::os::unix::fs::symlink(bin(name), links.join(name)).unwrap();
    }
    let path = format!("{}:{}", links.display(), std::env::var("PATH").unwrap_or_default());
    let run = KoCmd::program("bash")
        .arg(workspace().join("tests/ko-scripts/upstream-e2e.sh"))
        .cwd(&app)
        .env("PATH", path)
        .env("KUBECONFIG", &config)
        .env("KO_DOCKER_REPO", unique_repo("upstream"))
        .env("DOCKER_HOST", docker_host())
        .run();
    run.assert_success();
    assert!(run.stdout.ends_with("upstream e2e: ok\n"), "{run}");
}

#[test]
fn ko_docker_repo_spellings_print_what_ko_prints() {
    // A trailing slash is accepted and does not double.
    let repo = unique_repo("slash");
    let run = ko(&["build", "."]).cwd(fixture("hello")).env("KO_DOCKER_REPO", format!("{repo}/")).run();
    run.assert_success();
    assert!(run.stdout.starts_with(&format!("{repo}/hello-124ec4359fcc3b362d8aa16b0f28dd36@sha256:")), "{run}");
    // Empty, `.` and `..` path elements are cleaned as ko's path.Join cleans them, and the
    // image is pushed under the clean name; --bare takes the value as it is, so it is refused.
    let registry = registry();
    let name = unique_name("clean");
    for spelling in [format!("{registry}//{name}/a/./b"), format!("{registry}/{name}/x/../a//b/")] {
        let run = ko(&["build", "."]).cwd(fixture("hello")).env("KO_DOCKER_REPO", &spelling).run();
        run.assert_success();
        let reference = run.stdout.trim();
        let clean = format!("{registry}/{name}/a/b/hello-124ec4359fcc3b362d8aa16b0f28dd36@sha256:");
        assert!(reference.starts_with(&clean), "{spelling}: {run}");
        skopeo_inspect(reference, false);
    }
    let run =
        ko(&["build", ".", "--bare"]).cwd(fixture("hello")).env("KO_DOCKER_REPO", format!("{registry}//{name}")).run();
    crate::build_errors::assert_clear_error(&run, &["KO_DOCKER_REPO", "path element \"\""]);
    // Unset, with nothing pushed: the bare name, as ko prints it.
    let run = ko(&["build", ".", "--push=false"]).cwd(fixture("hello")).env("KO_DOCKER_REPO", "").run();
    run.assert_success();
    assert!(run.stdout.starts_with("hello-124ec4359fcc3b362d8aa16b0f28dd36:latest@sha256:"), "{run}");
}

#[test]
fn a_block_scalar_resolves_to_the_bare_reference() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("block.yaml");
    let head = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: block}\ndata:\n";
    fs::write(&path, format!("{head}  image: |\n    ko://example.com/hello\n  other: >+  # folded\n    ko://example.com/hello\n\n  last: x\n"))
        .unwrap();
    let repo = unique_repo("block");
    let run = ko(&["resolve", "-f", path.to_str().unwrap()]).cwd(fixture("hello")).env("KO_DOCKER_REPO", &repo).run();
    run.assert_success();
    let reference = run.stdout.lines().nth(5).unwrap().trim().to_string();
    assert!(reference.starts_with(&format!("{repo}/hello-")), "{run}");
    assert_eq!(
        run.stdout,
        format!("{head}  image: |-\n    {reference}\n  other: >-  # folded\n    {reference}\n\n  last: x\n---\n"),
        "only the chomping indicators change"
    );
    // kubectl reads each value as the reference alone.
    let read = KoCmd::program("kubectl")
        .args(["create", "--dry-run=client", "-f", "-", "-o", "jsonpath={.data.image}|{.data.other}|"])
        .env("KUBECONFIG", kubeconfig())
        .stdin(run.stdout.clone())
        .run();
    read.assert_success();
    assert_eq!(read.stdout, format!("{reference}|{reference}|"), "{read}");
}
