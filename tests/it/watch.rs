//! `kubectl ko apply --watch` against the real kube-apiserver and registry: three apps in one Go
//! module, and after each change (an app's source, its kodata, a YAML field, a broken then
//! fixed build, a new Go file) only the object of the app that changed is applied again (the
//! others keep their resourceVersion), with one summary line per cycle. SIGINT ends it with
//! exit 0 and no `go` process left. Also `resolve --watch`, which prints the stream again
//! (through the polling watcher), an unreachable cluster, and `--prune`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::*;

/// How long one cycle (a Go build, a push, an apply) may take before the test fails.
const CYCLE_BOUND: Duration = Duration::from_secs(180);
const APPS: [&str; 3] = ["alpha", "beta", "gamma"];

/// A Go module with three apps, each printing a greeting and (for its kodata) a file.
fn module(dir: &Path) {
    std::fs::write(dir.join("go.mod"), "module example.com/watched\n\ngo 1.21\n").unwrap();
    for app in APPS {
        let pkg = dir.join("cmd").join(app);
        std::fs::create_dir_all(pkg.join("kodata")).unwrap();
        std::fs::write(pkg.join("main.go"), source(app, "hello")).unwrap();
        std::fs::write(pkg.join("kodata/page.txt"), format!("{app} page\n")).unwrap();
    }
}

fn source(app: &str, greeting: &str) -> String {
    format!(
        "package main\n\nimport \"fmt\"\n\nvar greeting = \"{greeting} from {app}\"\n\nfunc main() {{ fmt.Println(greeting) }}\n"
    )
}

/// The YAML: a Namespace and one Deployment per app.
fn config(dir: &Path, namespace: &str, gamma_replicas: u32) {
    let mut text = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n");
    for app in APPS {
        let replicas = if app == "gamma" { gamma_replicas } else { 1 };
        text.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\n  namespace: {namespace}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {app}}}\n  template:\n    metadata:\n      labels: {{app: {app}}}\n    spec:\n      containers:\n      - name: app\n        image: ko://example.com/watched/cmd/{app}\n"
        ));
    }
    std::fs::write(dir.join("apps.yaml"), text).unwrap();
}

/// A running watch, its stderr lines collected as they come.
struct Watching {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
}

fn collect(pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

impl Watching {
    fn start(cmd: &KoCmd) -> Watching {
        let mut child = cmd
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kubectl-ko-apply (build the binaries first: cargo build --workspace --bins)");
        let stderr = collect(child.stderr.take().unwrap());
        let stdout = collect(child.stdout.take().unwrap());
        Watching { child, stderr, stdout }
    }

    fn output(&self) -> String {
        let out = self.stdout.lock().unwrap().join("\n");
        format!("--- stdout ---\n{out}\n--- stderr ---\n{}", self.stderr.lock().unwrap().join("\n"))
    }

    fn summaries(&self) -> Vec<String> {
        self.stderr.lock().unwrap().iter().filter(|l| l.starts_with("watch: ")).cloned().collect()
    }

    /// Waits for the `n`th summary line (counting from 1) and returns it.
    #[track_caller]
    fn summary(&mut self, n: usize) -> String {
        let deadline = Instant::now() + CYCLE_BOUND;
        loop {
            if let Some(line) = self.summaries().get(n - 1) {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the watch exited ({status}) before cycle {n}:\n{}", self.output());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("no summary line for cycle {n} within {CYCLE_BOUND:?}:\n{}", self.output());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each Deployment's resourceVersion and image, by app.
fn deployments(namespace: &str) -> Vec<(String, String)> {
    APPS.iter()
        .map(|app| {
            let run = kubectl(&[
                "get",
                "deployment",
                app,
                "-n",
                namespace,
                "-o",
                "jsonpath={.metadata.resourceVersion} {.spec.template.spec.containers[0].image}",
            ]);
            run.assert_success();
            let (version, image) = run.stdout.trim().split_once(' ').expect("resourceVersion and image");
            (version.to_string(), image.to_string())
        })
        .collect()
}

/// Asserts that exactly `changed` (by index into APPS) got a new resourceVersion.
#[track_caller]
fn only_changed(before: &[(String, String)], after: &[(String, String)], changed: Option<usize>, image_too: bool) {
    for (i, app) in APPS.iter().enumerate() {
        if Some(i) == changed {
            assert_ne!(before[i].0, after[i].0, "{app} was not applied again");
            assert_eq!(before[i].1 != after[i].1, image_too, "{app}'s image: {} -> {}", before[i].1, after[i].1);
        } else {
            assert_eq!(before[i], after[i], "{app} changed though its inputs did not");
        }
    }
}

/// Writes `path` and makes sure its modification time moves (the fingerprints read times).
fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
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
    assert!(first.contains("first run") && first.contains("images rebuilt: 3 of 3"), "{first}");
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
    only_changed(&before, &after, Some(0), true);
    before = after;

    // 2. Another app's kodata.
    write(&dir.join("cmd/beta/kodata/page.txt"), "beta page, edited\n");
    let line = watch.summary(3);
    assert!(line.contains("changed cmd/beta/kodata/page.txt"), "{line}");
    assert!(line.contains("images rebuilt: 1 of 3 (example.com/watched/cmd/beta)"), "{line}");
    assert!(line.contains("applied: deployment.apps/beta;"), "{line}");
    let after = deployments(&namespace);
    only_changed(&before, &after, Some(1), true);
    before = after;

    // 3. A YAML field: nothing is built, one object is applied.
    config(dir, &namespace, 2);
    let line = watch.summary(4);
    assert!(line.contains("changed apps.yaml") && line.contains("images rebuilt: 0 of 3"), "{line}");
    assert!(line.contains("only YAML changed: nothing built"), "{line}");
    assert!(line.contains("applied: deployment.apps/gamma;"), "{line}");
    let after = deployments(&namespace);
    only_changed(&before, &after, Some(2), false);
    before = after;

    // 4. A broken build is reported and the watch goes on; the fix is applied.
    write(&dir.join("cmd/alpha/main.go"), "package main\n\nfunc main() { undefined() }\n");
    let line = watch.summary(5);
    assert!(line.contains("failed") && line.contains("still watching"), "{line}");
    let errors = watch.stderr.lock().unwrap().join("\n");
    assert!(errors.contains("error: ") && errors.contains("undefined"), "{errors}");
    only_changed(&before, &deployments(&namespace), None, false);
    write(&dir.join("cmd/alpha/main.go"), &source("alpha", "fixed"));
    let line = watch.summary(6);
    assert!(line.contains("images rebuilt: 1 of 3 (example.com/watched/cmd/alpha)"), "{line}");
    assert!(line.contains("applied: deployment.apps/alpha;"), "{line}");
    let after = deployments(&namespace);
    only_changed(&before, &after, Some(0), true);
    before = after;

    // 5. A new Go file in a package.
    write(&dir.join("cmd/gamma/extra.go"), "package main\n\nfunc init() { greeting += \"!\" }\n");
    let line = watch.summary(7);
    assert!(line.contains("changed cmd/gamma/extra.go"), "{line}");
    assert!(line.contains("images rebuilt: 1 of 3 (example.com/watched/cmd/gamma)"), "{line}");
    assert!(line.contains("applied: deployment.apps/gamma;"), "{line}");
    only_changed(&before, &deployments(&namespace), Some(2), true);

    // SIGINT: a prompt exit 0, and nothing the watch started is left.
    let pid = watch.child.id().to_string();
    let status = std::process::Command::new(tool("kill")).args(["-s", "INT", "--", &pid]).status().unwrap();
    assert!(status.success());
    let sent = Instant::now();
    let exit = loop {
        if let Some(exit) = watch.child.try_wait().unwrap() {
            break exit;
        }
        assert!(sent.elapsed() < Duration::from_secs(10), "the watch did not stop:\n{}", watch.output());
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(exit.code(), Some(0), "{}", watch.output());
    assert!(sent.elapsed() < Duration::from_secs(3), "stopping took {:?}", sent.elapsed());
    assert_eq!(watch.summaries().len(), 7, "{}", watch.output());
    assert_no_go_left(&home);
    kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

/// No process whose environment names the watch's own HOME (so none it started) is alive.
#[track_caller]
fn assert_no_go_left(home: &Path) {
    let needle = home.to_string_lossy().into_owned();
    let me = std::process::id().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|pid| pid.parse::<u32>().is_ok() && *pid != me)
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle.as_bytes()))
            })
            .filter(|pid| !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z"))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "processes of the stopped watch are left: {left:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn resolve_watch_prints_the_stream_again_after_each_change() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    module(dir);
    config(dir, "unused", 1);
    // Through the polling fallback, which this test checks end to end.
    let cmd = ko(&["resolve", "-f", ".", "--watch"])
        .cwd(dir)
        .env("KO_DOCKER_REPO", unique_repo("watch-resolve"))
        .env("KUBECTL_KO_WATCH_POLL", "1");
    let mut watch = Watching::start(&cmd);
    let first = watch.summary(1);
    assert!(first.contains("images rebuilt: 3 of 3") && first.contains("printed the stream"), "{first}");
    config(dir, "unused", 3);
    let line = watch.summary(2);
    assert!(line.contains("images rebuilt: 0 of 3"), "{line}");
    // The first stream, the separator, then the second with the new field.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !watch.stdout.lock().unwrap().iter().any(|l| l.contains("replicas: 3")) {
        assert!(Instant::now() < deadline, "{}", watch.output());
        thread::sleep(Duration::from_millis(20));
    }
    let out = watch.stdout.lock().unwrap().clone();
    let separators = out.iter().filter(|l| l.as_str() == "---").count();
    assert_eq!(separators, 2 * 3 + 1, "{out:?}");
    assert!(!out.iter().any(|l| l.contains("ko://")), "{out:?}");
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
    assert!(!version("b").success(), "configmap b is still there");
    assert_eq!(version("a").assert_success().stdout, a, "configmap a was applied again");
    kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}
