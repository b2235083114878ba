//! Stopping a build with a signal to the tool's own PID (what `timeout` and CI runners do)
//! while `go build` compiles: exit 143 after SIGTERM, 130 after SIGINT, 129 after SIGHUP, no `go` or `compile`
//! process of the run left, no temporary file left (in the cache's `tmp/` or in `TMPDIR`).
//! And what a SIGKILLed run leaves in the cache is removed by the next run, while the
//! temporary directory of a run still going on is left alone.
//!
//! The builds get a fresh, empty `GOCACHE`, so `go build` compiles the standard library and
//! is sure to be running `compile` when the signal comes; the tests wait until they see that
//! process in /proc before they send it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::util::*;

/// How long a signalled build may take to exit before the test fails (generous: the promise
/// is two seconds, and this is not a timing test).
const EXIT_BOUND: Duration = Duration::from_secs(20);
/// How long to wait for something the test needs to happen first (a compile to start).
const SETUP_BOUND: Duration = Duration::from_secs(300);

struct Proc {
    pid: u32,
    ppid: u32,
    comm: String,
    zombie: bool,
}

/// Every process in /proc, from its `stat` line.
fn processes() -> Vec<Proc> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) S ppid ...": comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let comm = stat[open + 1..close].to_string();
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().unwrap_or_default();
        let ppid = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        found.push(Proc { pid, ppid, comm, zombie: state == "Z" || state == "X" });
    }
    found
}

/// Live processes other than this test's whose command line or environment names `needle`
/// (a directory only this test uses), described for a failure message.
fn processes_naming(needle: &str) -> Vec<String> {
    let me = std::process::id();
    processes()
        .into_iter()
        .filter(|p| !p.zombie && p.pid != me)
        .filter(|p| {
            ["cmdline", "environ"].iter().any(|file| {
                std::fs::read(format!("/proc/{}/{file}", p.pid))
                    .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
            })
        })
        .map(|p| format!("{} ({})", p.pid, p.comm))
        .collect()
}

/// Asserts that no process of the run is left. A process killed an instant ago may still be
/// on its way out, so it gets a moment to go.
#[track_caller]
fn assert_no_process_left(needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = processes_naming(needle);
    while !left.is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        left = processes_naming(needle);
    }
    assert!(left.is_empty(), "processes of the stopped run are still running: {left:?}");
}

/// A tool process running in the background, its output collected.
struct Started {
    child: Child,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
}

fn start(cmd: &KoCmd) -> Started {
    let mut child = cmd
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kubectl-ko-build (build the binaries first: cargo build --workspace --bins)");
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = Some(read(Box::new(child.stdout.take().unwrap())));
    let err = Some(read(Box::new(child.stderr.take().unwrap())));
    Started { child, out, err }
}

impl Started {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (without collecting it).
    fn exited(&mut self) -> bool {
        self.child.try_wait().expect("wait for the build").is_some()
    }

    /// Waits for the exit, failing the test after `bound`.
    fn wait(&mut self, bound: Duration) -> Run {
        let deadline = Instant::now() + bound;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the build") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(20));
        };
        let join = |handle: Option<JoinHandle<String>>| handle.and_then(|h| h.join().ok()).unwrap_or_default();
        let (stdout, stderr) = (join(self.out.take()), join(self.err.take()));
        match status {
            Some(status) => Run { status, stdout, stderr },
            None => {
                panic!("the build did not exit within {bound:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}")
            }
        }
    }

    /// Fails the test with the build's output (it exited too early, or never got there).
    fn fail(&mut self, waiting_for: &str) -> ! {
        let _ = self.child.kill();
        let run = self.wait(EXIT_BOUND);
        panic!("the build did not get to {waiting_for}:\n{run}");
    }
}

/// Waits until the build's `go` (its child) runs `compile` (a child of go) and returns go's
/// PID, which is also the process group of everything go runs.
fn wait_for_compile(build: &mut Started) -> u32 {
    let deadline = Instant::now() + SETUP_BOUND;
    loop {
        let all = processes();
        let go = all.iter().find(|go| {
            go.ppid == build.pid()
                && go.comm == "go"
                && all.iter().any(|c| c.ppid == go.pid && c.comm == "compile" && !c.zombie)
        });
        if let Some(go) = go {
            return go.pid;
        }
        if build.exited() || Instant::now() >= deadline {
            build.fail("go build running compile");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn send(signal: &str, target: &str) {
    let status = Command::new(tool("kill")).arg("-s").arg(signal).arg("--").arg(target).status().expect("run kill");
    assert!(status.success(), "kill -s {signal} {target} failed");
}

/// The entries of a directory (the cache's `tmp/`, `TMPDIR`).
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A build of the hello fixture whose `go build` compiles for a while (a fresh GOCACHE),
/// with its cache, Go cache and TMPDIR all under `dir`.
fn slow_build(dir: &Path) -> KoCmd {
    slow_build_under(dir, ko(&["build", "."]))
}

/// [`slow_build`]'s setup for `cmd`: `kubectl-ko-build .`, or a program that execs it.
fn slow_build_under(dir: &Path, cmd: KoCmd) -> KoCmd {
    let tmpdir = dir.join("tmpdir");
    std::fs::create_dir_all(&tmpdir).unwrap();
    cmd.cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", unique_repo("interrupted"))
        .env("KOCACHE", dir.join("cache"))
        .env("GOCACHE", dir.join("gocache"))
        .env("TMPDIR", tmpdir)
}

/// `kubectl-ko-build .` started with SIGHUP's disposition as `disposition` (`SIG_DFL` or
/// `SIG_IGN`, set by Python before it execs), whatever the test harness got (a `nohup`'d
/// `scripts/test.sh` passes SIGHUP on ignored).
fn with_sighup(disposition: &str) -> KoCmd {
    let script = format!(
        "import os, signal, sys; signal.signal(signal.SIGHUP, signal.{disposition}); os.execv(sys.argv[1], sys.argv[1:])"
    );
    KoCmd::program("python3").args(["-c", &script]).arg(bin("kubectl-ko-build")).arg(".")
}

fn signal_stops_the_build(signal: &str, code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let needle = dir.path().to_string_lossy().into_owned();
    let cmd =
        if signal == "HUP" { slow_build_under(dir.path(), with_sighup("SIG_DFL")) } else { slow_build(dir.path()) };
    let mut build = start(&cmd);
    wait_for_compile(&mut build);
    // To the tool's PID only, not its group: the tool must pass it on.
    send(signal, &build.pid().to_string());
    let run = build.wait(EXIT_BOUND);
    assert_eq!(run.code(), Some(code), "{run}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: ") && last.contains(signal), "{run}");
    assert!(run.stdout.is_empty(), "{run}");
    assert_no_process_left(&needle);
    assert_eq!(entries(&dir.path().join("cache/tmp")), Vec::<String>::new(), "temporary files left in the cache");
    assert_eq!(entries(&dir.path().join("tmpdir")), Vec::<String>::new(), "temporary files left in TMPDIR");
}

#[test]
fn sigterm_stops_go_build_and_exits_143() {
    signal_stops_the_build("TERM", 143);
}

#[test]
fn sigint_stops_go_build_and_exits_130() {
    signal_stops_the_build("INT", 130);
}

/// A closed terminal or SSH session: the run stops as for SIGTERM, `go build` with it.
#[test]
fn sighup_stops_go_build_and_exits_129() {
    signal_stops_the_build("HUP", 129);
}

/// A run started with SIGHUP ignored (`nohup`) keeps it ignored: it builds to the end.
#[test]
fn sighup_is_left_ignored_under_nohup() {
    let dir = tempfile::tempdir().unwrap();
    // SIGHUP ignored before the exec is what nohup does.
    let mut run = start(&slow_build_under(dir.path(), with_sighup("SIG_IGN")));
    wait_for_compile(&mut run);
    send("HUP", &run.pid().to_string());
    // It goes on compiling the standard library (a fresh GOCACHE): minutes on a busy machine.
    let run = run.wait(Duration::from_secs(600));
    run.assert_success();
    assert!(!run.stderr.contains("SIGHUP"), "{run}");
}

/// A `go` that, for `go build`, says so in a file and waits for another file first: a run
/// that is still going on, for as long as the test wants.
fn blocking_go(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (script, blocked, release) = (dir.join("go-blocking"), dir.join("blocked"), dir.join("release"));
    let text = format!(
        "#!/bin/sh\nif [ \"$1\" = build ]; then\n  : > '{}'\n  while [ ! -e '{}' ]; do sleep 0.05; done\nfi\nexec go \"$@\"\n",
        blocked.display(),
        release.display()
    );
    write_executable(&script, &text);
    (script, blocked, release)
}

#[test]
fn what_a_killed_run_left_is_removed_by_the_next_run_but_a_live_run_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let needle = dir.path().to_string_lossy().into_owned();
    let cache = dir.path().join("cache");
    let tmp = cache.join("tmp");

    // A run killed with SIGKILL mid-build leaves its temp directory behind, and its go
    // children run on as orphans (nothing can stop them): the test stops them.
    let mut killed = start(&slow_build(dir.path()));
    let go = wait_for_compile(&mut killed);
    send("KILL", &killed.pid().to_string());
    let run = killed.wait(EXIT_BOUND);
    assert_eq!(run.status.code(), None, "{run}");
    send("KILL", &format!("-{go}"));
    assert_no_process_left(&needle);
    let left = entries(&tmp);
    assert_eq!(left.len(), 1, "the killed run's directory: {left:?}");
    let dead = tmp.join(&left[0]);
    assert!(!entries(&dead).is_empty(), "go's work files were in the killed run's directory");

    // The next run removes it as it opens the cache; it goes on (blocked in go build).
    let (go_path, blocked, release) = blocking_go(dir.path());
    let live_repo = unique_repo("live");
    let mut live = start(
        &ko(&["build", "."])
            .cwd(fixture("hello"))
            .env("KO_DOCKER_REPO", &live_repo)
            .env("KOCACHE", &cache)
            .env("KO_GO_PATH", &go_path),
    );
    let deadline = Instant::now() + SETUP_BOUND;
    while !blocked.exists() {
        if live.exited() || Instant::now() >= deadline {
            live.fail("go build");
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(!dead.exists(), "the killed run's directory is still there: {:?}", entries(&tmp));
    let live_dirs = entries(&tmp);
    assert_eq!(live_dirs.len(), 1, "the live run's directory: {live_dirs:?}");

    // A run meanwhile leaves the live run's directory alone.
    let other =
        ko(&["build", "."]).cwd(fixture("hello")).env("KO_DOCKER_REPO", unique_repo("other")).env("KOCACHE", &cache);
    other.run().assert_success();
    assert_eq!(entries(&tmp), live_dirs, "the run in between touched the live run's directory");

    // The live run finishes as if alone, and takes its directory with it.
    std::fs::write(&release, "").unwrap();
    let run = live.wait(DEFAULT_TIMEOUT);
    run.assert_success();
    assert!(run.stdout.trim().starts_with(&live_repo), "{run}");
    assert_eq!(entries(&tmp), Vec::<String>::new());
}

#[test]
fn a_closed_stdout_ends_the_run_quietly_with_nothing_left() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = ko(&["build", "."])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", unique_repo("closed-stdout"))
        .env("KOCACHE", dir.path().join("cache"));
    let mut child = cmd.command().stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Nobody reads stdout: the reference the build prints meets a closed pipe.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("error:"), "{stderr}");
    assert!(stderr.contains("Published "), "the build got to the end: {stderr}");
    assert_eq!(entries(&dir.path().join("cache/tmp")), Vec::<String>::new());
}

#[test]
fn sigterm_stops_a_run_waiting_on_a_registry_that_never_answers() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A "registry" that accepts connections and never says a word: the build waits on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cmd = ko(&["build", "."])
        .cwd(fixture("hello"))
        .env("KO_DOCKER_REPO", format!("127.0.0.1:{port}/silent"))
        .env("KOCACHE", dir.path().join("cache"));
    let mut build = start(&cmd);
    let deadline = Instant::now() + SETUP_BOUND;
    while accepted.load(Ordering::SeqCst) == 0 {
        if build.exited() || Instant::now() >= deadline {
            build.fail("connecting to the registry");
        }
        thread::sleep(Duration::from_millis(20));
    }
    send("TERM", &build.pid().to_string());
    let run = build.wait(EXIT_BOUND);
    assert_eq!(run.code(), Some(143), "{run}");
    assert!(run.stderr.lines().last().unwrap_or_default().contains("SIGTERM"), "{run}");
    assert_eq!(entries(&dir.path().join("cache/tmp")), Vec::<String>::new());
}

/// `run` hands the pod to `kubectl run`, which stays in the tool's process group (it may
/// read the terminal); a SIGTERM to the tool alone still stops it. No kubelet runs in the test
/// cluster, so `kubectl run --attach` would wait for the pod for a minute.
#[test]
fn sigterm_stops_the_kubectl_that_run_started() {
    let namespace = unique_name("run-term");
    kubectl(&["create", "namespace", &namespace]).assert_success();
    let cmd = ko(&["run", ".", "--", "-n", &namespace])
        .cwd(fixture("hello"))
        .env("KUBECONFIG", kubeconfig())
        .env("KO_DOCKER_REPO", unique_repo("run-term"));
    let mut run = start(&cmd);
    let deadline = Instant::now() + SETUP_BOUND;
    let kubectl_run = loop {
        let all = processes();
        if let Some(child) = all.iter().find(|p| p.ppid == run.pid() && p.comm == "kubectl" && !p.zombie) {
            break child.pid;
        }
        if run.exited() || Instant::now() >= deadline {
            run.fail("kubectl run");
        }
        thread::sleep(Duration::from_millis(20));
    };
    // Give kubectl a moment to create the pod and start waiting for it.
    thread::sleep(Duration::from_millis(500));
    send("TERM", &run.pid().to_string());
    let stopped = run.wait(EXIT_BOUND);
    assert_eq!(stopped.code(), Some(143), "{stopped}");
    assert!(stopped.stderr.contains("$ kubectl run"), "ko shows the kubectl command line: {stopped}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{kubectl_run}")).exists()
        && !processes().iter().any(|p| p.pid == kubectl_run && p.zombie)
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(50));
    }
    assert_no_process_left(&namespace);
    kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

/// A signal while a large tarball is written: the file it would replace stays as it was, no
/// reference is printed, and the temporary file goes. The app embeds 160 MiB of random bytes,
/// so the tarball's write lasts long enough to be caught.
#[test]
fn sigterm_while_the_tarball_is_written_keeps_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir_all(app.join("kodata")).unwrap();
    std::fs::write(app.join("go.mod"), "module example.com/big\n\ngo 1.22\n").unwrap();
    std::fs::write(app.join("main.go"), "package main\n\nfunc main() { println(\"big\") }\n").unwrap();
    let random = Command::new("head").args(["-c", "167772160", "/dev/urandom"]).output().expect("run head");
    std::fs::write(app.join("kodata/blob"), random.stdout).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let tarball = out.join("image.tar");
    std::fs::write(&tarball, "old\n").unwrap();
    let mut build = start(
        &ko(&["build", ".", "--push=false", "--sbom=none", "--tarball"])
            .arg(&tarball)
            .cwd(&app)
            .env("KO_DOCKER_REPO", unique_repo("interrupted-tarball"))
            .env("KOCACHE", dir.path().join("cache")),
    );
    let deadline = Instant::now() + SETUP_BOUND;
    while !entries(&out).iter().any(|name| name.ends_with(".tmp")) {
        if build.exited() || Instant::now() >= deadline {
            build.fail("writing the tarball");
        }
        thread::sleep(Duration::from_millis(2));
    }
    send("TERM", &build.pid().to_string());
    let run = build.wait(EXIT_BOUND);
    assert_eq!(run.code(), Some(143), "{run}");
    assert!(run.stdout.is_empty(), "{run}");
    assert_eq!(std::fs::read_to_string(&tarball).unwrap(), "old\n", "{run}");
    assert_eq!(entries(&out), ["image.tar"], "{run}");
}
