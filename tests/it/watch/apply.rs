//! `kubectl ko apply --watch`: only the images a change touches are built and only the objects
//! that changed are applied (checked with kubectl through resourceVersions), a change during a
//! cycle queues one more, SIGINT and SIGTERM end it well; flags after `--` hand each cycle's
//! objects to kubectl; an unreachable cluster is retried, and `--prune` deletes what is gone.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use super::*;

/// Sends `signal` to the watch and asserts that it exits with 0 (a watch that is still there
/// after 30 s has not stopped: how quickly it stops is not timed here, a loaded machine would
/// make that flaky).
#[track_caller]
fn stop(watch: &mut Watching, signal: &str) {
    let pid = watch.child.id().to_string();
    let status = std::process::Command::new(tool("kill")).args(["-s", signal, "--", &pid]).status().unwrap();
    assert!(status.success());
    let sent = Instant::now();
    let exit = loop {
        if let Some(exit) = watch.child.try_wait().unwrap() {
            break exit;
        }
        assert!(sent.elapsed() < Duration::from_secs(30), "the watch did not stop:\n{}", watch.output());
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(exit.code(), Some(0), "SIG{signal}: {}", watch.output());
}

#[test]
fn apply_watch_applies_only_what_changed_and_stops_cleanly_on_sigint() {
    let kubeconfig = kubeconfig();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    module(dir);
    let namespace = unique_name("watch");
    config(dir, &namespace, 1);
    let cmd = ko(&["apply", "-f", "apps.yaml", "--watch"])
        .cwd(dir)
        .env("KUBECONFIG", &kubeconfig)
        .env("KO_DOCKER_REPO", unique_repo("watch"));
    let home = cmd.home();
    let mut watch = Watching::start(&cmd);

    let first = watch.summary(1);
    assert!(first.contains("first run") && first.contains("images rebuilt: 3 of 3"), "{}", watch.output());
    for app in APPS {
        assert!(first.contains(&format!("deployment.apps/{app}")), "{first}");
    }
    let mut before = deployments(&namespace);

    // 1. One app's source.
    write(&dir.join("cmd/alpha/main.go"), &source("alpha", "hi"));
    let line = watch.summary(2);
    assert!(line.contains("changed cmd/alpha/main.go"), "{line}");
    assert!(line.contains("images rebuilt: 1 of 3 (example.com/watched/cmd/alpha)"), "{line}");
    assert!(line.contains("applied: deployment.apps/alpha;"), "{line}");
    let after = deployments(&namespace);
    only_changed(&before, &after, &[0], true);
    before = after;

    // 2. Another app's kodata.
    write(&dir.join("cmd/beta/kodata/page.txt"), "beta page, edited\n");
    let line = watch.summary(3);
    assert!(line.contains("changed cmd/beta/kodata/page.txt"), "{line}");
    assert!(line.contains("images rebuilt: 1 of 3 (example.com/watched/cmd/beta)"), "{line}");
    assert!(line.contains("applied: deployment.apps/beta;"), "{line}");
    let after = deployments(&namespace);
    only_changed(&before, &after, &[1], true);
    before = after;

    // 3. A YAML field: nothing is built, one object is applied.
    config(dir, &namespace, 2);
    let line = watch.summary(4);
    assert!(line.contains("changed apps.yaml") && line.contains("images rebuilt: 0 of 3"), "{line}");
    assert!(line.contains("(no image reads what changed)"), "{line}");
    assert!(line.contains("applied: deployment.apps/gamma;"), "{line}");
    let after = deployments(&namespace);
    only_changed(&before, &after, &[2], false);
    before = after;

    // 4. A broken build is reported and the watch goes on; the fix is applied.
    write(&dir.join("cmd/alpha/main.go"), "package main\n\nfunc main() { undefined() }\n");
    let line = watch.summary(5);
    assert!(line.contains("failed") && line.contains("still watching"), "{line}");
    watch.line("the build's error line", |l| l.starts_with("error: "));
    assert!(watch.output().contains("undefined"), "{}", watch.output());
    only_changed(&before, &deployments(&namespace), &[], false);
    write(&dir.join("cmd/alpha/main.go"), &source("alpha", "fixed"));
    let line = watch.summary(6);
    assert!(line.contains("images rebuilt: 1 of 3 (example.com/watched/cmd/alpha)"), "{line}");
    assert!(line.contains("applied: deployment.apps/alpha;"), "{line}");
    let after = deployments(&namespace);
    only_changed(&before, &after, &[0], true);
    before = after;

    // 5. A new Go file in a package.
    write(&dir.join("cmd/gamma/extra.go"), "package main\n\nfunc init() { greeting += \"!\" }\n");
    let line = watch.summary(7);
    assert!(line.contains("changed cmd/gamma/extra.go"), "{line}");
    assert!(line.contains("images rebuilt: 1 of 3 (example.com/watched/cmd/gamma)"), "{line}");
    assert!(line.contains("applied: deployment.apps/gamma;"), "{line}");
    let after = deployments(&namespace);
    only_changed(&before, &after, &[2], true);
    before = after;

    // 6. The package alpha and beta import: both, and only both, are built and applied.
    write(&dir.join("lib/lib.go"), &library("?"));
    let line = watch.summary(8);
    assert!(line.contains("changed lib/lib.go"), "{line}");
    assert!(
        line.contains("images rebuilt: 2 of 3 (example.com/watched/cmd/alpha, example.com/watched/cmd/beta)"),
        "{line}"
    );
    assert!(line.contains("applied: deployment.apps/alpha, deployment.apps/beta;"), "{line}");
    let after = deployments(&namespace);
    only_changed(&before, &after, &[0, 1], true);
    before = after;

    // 7. Files no image reads (a README, a package nobody imports): nothing is built or applied.
    write(&dir.join("README.md"), "# watched\n");
    std::fs::create_dir_all(dir.join("tools")).unwrap();
    write(&dir.join("tools/tools.go"), "package tools\n");
    let line = watch.summary(9);
    assert!(line.contains("images rebuilt: 0 of 3 (no image reads what changed); applied: none;"), "{line}");
    only_changed(&before, &deployments(&namespace), &[], false);

    // 8. `.ko.yaml` can change any build: all three are built, and come out the same.
    write(&dir.join(".ko.yaml"), "defaultPlatforms: [linux/amd64]\n");
    let line = watch.summary(10);
    assert!(line.contains("images rebuilt: 3 of 3"), "{line}");
    assert!(line.contains("; unchanged: example.com/watched/cmd/alpha, example.com/watched/cmd/beta, example.com/watched/cmd/gamma; applied: none;"), "{line}");
    only_changed(&before, &deployments(&namespace), &[], false);

    // 9. A change made while a cycle runs queues one more cycle, which builds it.
    let building = |watch: &Watching| {
        watch.stderr.lock().unwrap().iter().filter(|l| l.starts_with("Building example.com/watched/cmd/gamma")).count()
    };
    let seen = building(&watch);
    write(&dir.join("cmd/gamma/main.go"), &source("gamma", "first"));
    let deadline = Instant::now() + CYCLE_BOUND;
    while building(&watch) == seen {
        assert!(Instant::now() < deadline, "{}", watch.output());
        thread::sleep(Duration::from_millis(5));
    }
    write(&dir.join("cmd/beta/main.go"), &source("beta", "queued"));
    let line = watch.summary(11);
    assert!(line.contains("changed cmd/gamma/main.go;"), "{line}");
    let line = watch.summary(12);
    assert!(line.contains("changed cmd/beta/main.go;"), "{line}");
    assert!(
        line.contains("images rebuilt: 1 of 3 (example.com/watched/cmd/beta); applied: deployment.apps/beta;"),
        "{line}"
    );
    let image = &deployments(&namespace)[1].1;
    let run = run_image(image);
    run.assert_success();
    assert_eq!(run.stdout.trim(), "queued from beta?", "{run}");

    // SIGINT: a prompt exit 0, and nothing the watch started is left.
    stop(&mut watch, "INT");
    assert_eq!(watch.summaries().len(), 12, "{}", watch.output());
    assert_no_go_left(&home);
    kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

#[test]
fn flags_after_a_double_dash_hand_each_cycle_to_kubectl() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    module(dir);
    let namespace = unique_name("watch-kubectl");
    config(dir, &namespace, 1);
    let cmd = ko(&["apply", "-f", "apps.yaml", "--watch", "--", "--field-manager=watch-kubectl"])
        .cwd(dir)
        .env("KUBECONFIG", kubeconfig())
        .env("KO_DOCKER_REPO", unique_repo("watch-kubectl"));
    let home = cmd.home();
    let mut watch = Watching::start(&cmd);
    let first = watch.summary(1);
    assert!(first.contains("images rebuilt: 3 of 3"), "{}", watch.output());
    let before = deployments(&namespace);
    write(&dir.join("cmd/gamma/main.go"), &source("gamma", "piped"));
    let line = watch.summary(2);
    assert!(line.contains("applied: deployment.apps/gamma;"), "{}", watch.output());
    only_changed(&before, &deployments(&namespace), &[2], true);
    // kubectl did the applying: its output, and the field manager it was given.
    watch.wait_out("kubectl's output", |lines| {
        lines.iter().find(|l| l.contains("deployment.apps/gamma configured")).cloned()
    });
    let managers = kubectl(&[
        "get",
        "deployment",
        "gamma",
        "-n",
        &namespace,
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(managers.assert_success().stdout.contains("watch-kubectl"), "{managers}");
    // SIGTERM ends a watch as SIGINT does.
    stop(&mut watch, "TERM");
    assert_no_go_left(&home);
    let refused = ko(&["apply", "-f", "apps.yaml", "--watch", "--prune", "--", "--field-manager=x"]).cwd(dir).run();
    refused.assert_failure();
    assert!(refused.stderr.contains("--prune") && refused.stderr.contains("flags after --"), "{refused}");
    kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

fn objects(dir: &Path, namespace: &str, with_b: bool) {
    let mut text = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n");
    for name in if with_b { &["a", "b"][..] } else { &["a"][..] } {
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:\n  k: v\n"
        ));
    }
    std::fs::write(dir.join("objects.yaml"), text).unwrap();
}

#[test]
fn an_unreachable_cluster_is_retried_and_prune_deletes_what_is_gone() {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config");
    std::fs::create_dir(&config).unwrap();
    let namespace = unique_name("watch-prune");
    objects(&config, &namespace, true);
    // A kubeconfig whose server is a closed port, until it is fixed.
    let other = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(kubeconfig()).unwrap();
    let bad: String = good
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("server:") { "    server: https://127.0.0.1:1".to_string() } else { l.into() }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = other.path().join("kubeconfig");
    std::fs::write(&path, bad).unwrap();
    let cmd = ko(&["apply", "-f", "config", "--watch", "--prune"]).cwd(work.path()).env("KUBECONFIG", &path);
    let mut watch = Watching::start(&cmd);
    let line = watch.summary(1);
    assert!(line.contains("failed") && line.contains("still watching"), "{line}");

    std::fs::write(&path, &good).unwrap();
    objects(&config, &namespace, true);
    let line = watch.summary(2);
    assert!(line.contains(&format!("applied: namespace/{namespace}, configmap/a, configmap/b;")), "{line}");
    let version = |name: &str| {
        kubectl(&["get", "configmap", name, "-n", &namespace, "-o", "jsonpath={.metadata.resourceVersion}"])
    };
    let a = version("a").assert_success().stdout.clone();

    objects(&config, &namespace, false);
    let line = watch.summary(3);
    assert!(line.contains("applied: none; gone: configmap/b (deleted)"), "{line}");
    assert_not_found(&["configmap", "b", "-n", &namespace]);
    assert_eq!(version("a").assert_success().stdout, a, "configmap a was applied again");
    kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

#[test]
fn a_dry_run_prune_deletes_nothing() {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config");
    std::fs::create_dir(&config).unwrap();
    let namespace = unique_name("watch-dry-prune");
    objects(&config, &namespace, true);
    kubectl(&["apply", "-f", &config.join("objects.yaml").display().to_string()]).assert_success();
    let exists = |name: &str| kubectl(&["get", "configmap", name, "-n", &namespace]).success();

    let cmd = ko(&["apply", "-f", "config", "--watch", "--prune", "--dry-run=server"])
        .cwd(work.path())
        .env("KUBECONFIG", kubeconfig());
    let mut watch = Watching::start(&cmd);
    let line = watch.summary(1);
    assert!(line.contains("configmap/b"), "{}", watch.output());

    objects(&config, &namespace, false);
    let line = watch.summary(2);
    assert!(line.contains("gone: configmap/b (deleted in the dry run only)"), "{line}");
    stop(&mut watch, "INT");
    assert!(exists("b"), "a dry run deleted configmap b");
    assert!(exists("a"));
    kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

/// What `--prune` must never delete: an object whose `namespace:` is written (or dropped) and
/// means the one it was applied into, everything when the files are emptied for a moment,
/// and, with kubectl's own `--prune` after `--`, the objects a cycle did not change.
#[test]
fn prune_deletes_only_what_left_the_inputs() {
    let work = tempfile::tempdir().unwrap();
    let namespace = unique_name("watch-keep");
    kubectl(&["create", "namespace", &namespace]).assert_success();
    let file = work.path().join("cm.yaml");
    let configmap = |name: &str, value: &str, written: bool| {
        let ns = if written { format!("\n  namespace: {namespace}") } else { String::new() };
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}{ns}\n  labels: {{app: keep}}\ndata:\n  v: \"{value}\"\n"
        )
    };
    let exists = |name: &str| kubectl(&["get", "configmap", name, "-n", &namespace]).success();
    std::fs::write(&file, configmap("keep", "1", false)).unwrap();
    let cmd = ko(&["apply", "-f", "cm.yaml", "-n", &namespace, "--watch", "--prune"])
        .cwd(work.path())
        .env("KUBECONFIG", kubeconfig());
    let mut watch = Watching::start(&cmd);
    assert!(watch.summary(1).contains("applied: configmap/keep"), "{}", watch.output());

    std::fs::write(&file, configmap("keep", "2", true)).unwrap();
    let line = watch.summary(2);
    assert!(line.contains("applied: configmap/keep") && !line.contains("gone"), "{line}");
    assert!(exists("keep"), "{}", watch.output());

    std::fs::write(&file, "").unwrap();
    let line = watch.summary(3);
    assert!(line.contains("failed"), "{line}");
    watch.line("the cycle's error", |l| l.contains("no objects passed to apply"));
    assert!(exists("keep"), "{}", watch.output());
    drop(watch);

    // kubectl's --prune after --: every object goes to kubectl each cycle, so it prunes only
    // what left the files.
    std::fs::write(&file, format!("{}---\n{}", configmap("one", "1", true), configmap("two", "1", true))).unwrap();
    let cmd = ko(&["apply", "-f", "cm.yaml", "--watch", "--", "--prune", "-l", "app=keep"])
        .cwd(work.path())
        .env("KUBECONFIG", kubeconfig());
    let mut watch = Watching::start(&cmd);
    watch.summary(1);
    std::fs::write(&file, format!("{}---\n{}", configmap("one", "2", true), configmap("two", "1", true))).unwrap();
    watch.summary(2);
    assert!(exists("one") && exists("two"), "{}", watch.output());
    std::fs::write(&file, configmap("one", "2", true)).unwrap();
    let line = watch.summary(3);
    assert!(line.contains("gone: configmap/two (deleted)"), "{line}");
    assert!(exists("one") && !exists("two"), "kubectl prunes what left the files: {}", watch.output());
    drop(watch);
    kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}
