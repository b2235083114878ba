//! `--watch` against the real kube-apiserver, registry and Docker daemon, on three apps of one Go
//! module (two of them importing a shared package): `apply` (`apply`: only what a change
//! touches is built and applied, flags after `--`, an unreachable cluster, `--prune`),
//! `resolve` (`resolve`: the stream again, the polling watcher, `KO_CONFIG_PATH`), the
//! local publishers (`local`), and what lies beyond one module's files (`modules`: a `go.work`
//! workspace, the stream written into the watched module). The helpers here are shared by those modules.

mod apply;
mod local;
mod modules;
mod resolve;

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

/// A Go module with three apps, each printing a greeting and (for its kodata) a file; alpha and
/// beta import the package `lib`.
fn module(dir: &Path) {
    std::fs::write(dir.join("go.mod"), "module example.com/watched\n\ngo 1.21\n").unwrap();
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::write(dir.join("lib/lib.go"), library("!")).unwrap();
    for app in APPS {
        let pkg = dir.join("cmd").join(app);
        std::fs::create_dir_all(pkg.join("kodata")).unwrap();
        std::fs::write(pkg.join("main.go"), source(app, "hello")).unwrap();
        std::fs::write(pkg.join("kodata/page.txt"), format!("{app} page\n")).unwrap();
    }
}

fn source(app: &str, greeting: &str) -> String {
    if app == "gamma" {
        return format!(
            "package main\n\nimport \"fmt\"\n\nvar greeting = \"{greeting} from {app}\"\n\nfunc main() {{ fmt.Println(greeting) }}\n"
        );
    }
    format!(
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/watched/lib\"\n)\n\nvar greeting = \"{greeting} from {app}\"\n\nfunc main() {{ fmt.Println(greeting + lib.Mark) }}\n"
    )
}

fn library(mark: &str) -> String {
    format!("package lib\n\n// Mark ends every greeting.\nconst Mark = \"{mark}\"\n")
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
        Watching::spawn(cmd, Stdio::piped())
    }

    /// Starts `cmd` with its stdout going to `file` (so `stdout` stays empty).
    fn start_into(cmd: &KoCmd, file: std::fs::File) -> Watching {
        Watching::spawn(cmd, Stdio::from(file))
    }

    fn spawn(cmd: &KoCmd, stdout: Stdio) -> Watching {
        let mut child = cmd
            .command()
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kubectl-ko-apply (build the binaries first: cargo build --workspace --bins)");
        let stderr = collect(child.stderr.take().unwrap());
        let stdout = child.stdout.take().map(collect).unwrap_or_default();
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
        self.wait_for(&format!("a summary line for cycle {n}"), |lines| {
            lines.iter().filter(|l| l.starts_with("watch: ")).nth(n - 1).cloned()
        })
    }

    /// Waits for a stderr line that `matches` (the error of a failed cycle comes after its
    /// summary line) and returns it.
    #[track_caller]
    fn line(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        self.wait_for(what, |lines| lines.iter().find(|l| matches(l)).cloned())
    }

    /// Waits until `find` finds something in stdout's lines and returns it. A summary line on
    /// stderr can be read before the stdout printed ahead of it: each pipe has its own reader.
    #[track_caller]
    fn wait_out(&mut self, what: &str, find: impl Fn(&[String]) -> Option<String>) -> String {
        let stdout = self.stdout.clone();
        self.wait_on(&stdout, what, find)
    }

    #[track_caller]
    fn wait_for(&mut self, what: &str, find: impl Fn(&[String]) -> Option<String>) -> String {
        let stderr = self.stderr.clone();
        self.wait_on(&stderr, what, find)
    }

    #[track_caller]
    fn wait_on(
        &mut self,
        lines: &Mutex<Vec<String>>,
        what: &str,
        find: impl Fn(&[String]) -> Option<String>,
    ) -> String {
        let deadline = Instant::now() + CYCLE_BOUND;
        loop {
            if let Some(line) = find(&lines.lock().unwrap()) {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the watch exited ({status}) before {what}:\n{}", self.output());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("no {what} within {CYCLE_BOUND:?}:\n{}", self.output());
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

/// Asserts that exactly the apps `changed` (by index into APPS) got a new resourceVersion, with
/// a new image when `image_too`.
#[track_caller]
fn only_changed(before: &[(String, String)], after: &[(String, String)], changed: &[usize], image_too: bool) {
    for (i, app) in APPS.iter().enumerate() {
        if changed.contains(&i) {
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
