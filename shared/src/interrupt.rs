//! Stopping a run early and leaving nothing behind. A run stops early on SIGINT or SIGTERM
//! (what a terminal, `timeout` and CI runners send to the tool's own PID), on SIGHUP unless it
//! was started with that ignored (`nohup`), or when stdout is closed (`| head`). This module owns the three things that takes:
//!
//! - the registry of child process groups: every program the tool runs (`go list`, `go
//!   build`, `go version -m`, git, the docker CLI) starts in a process group of its own
//!   through [`output`], [`output_std`], [`spawn`] or [`spawn_std`], so that `go build` and the
//!   `compile`/`link` processes under it are stopped together (SIGTERM, then SIGKILL for any
//!   that is still there after [`CHILD_GRACE`]);
//! - the signal listener, on a thread of its own so that it answers even while the work is
//!   busy, and a watchdog that ends the process by itself if the orderly way out (in
//!   [`crate::run_main`]) has not finished within [`WATCHDOG`];
//! - the exit codes: 130 after SIGINT, 143 after SIGTERM, 0 after a closed stdout, and 0 after
//!   either signal for a run that only ends that way (`apply --watch`, see [`signal_ends_well`]).
//!
//! It does not know what the work is: `run_main` drops the work's future (which aborts its
//! transfers and deletes its temporary files) and the cache removes this run's directory
//! under `tmp/` (see [`crate::cache`]).

use std::io;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

/// How long stopped children get to exit after SIGTERM before the rest of their process
/// group is killed.
pub const CHILD_GRACE: Duration = Duration::from_secs(1);

/// How long after a signal the process ends even if the orderly way out is stuck (the work
/// may be inside a long piece of synchronous code).
pub const WATCHDOG: Duration = Duration::from_millis(1800);

/// Why a run stops before its work is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (`timeout`, CI runners, `kill`).
    Terminate,
    /// SIGHUP (the terminal or SSH session went away).
    Hangup,
    /// stdout was closed (`kubectl ko resolve | head`): not an error.
    StdoutClosed,
}

impl Stop {
    /// 128 + the signal's number, as shells report a death by that signal; 0 for a closed
    /// stdout.
    pub fn exit_code(self) -> u8 {
        if SIGNAL_ENDS_WELL.load(Ordering::SeqCst) {
            return 0;
        }
        match self {
            Stop::Interrupt => 130,
            Stop::Terminate => 143,
            Stop::Hangup => 129,
            Stop::StdoutClosed => 0,
        }
    }

    /// The line a stopped run ends with, if any.
    pub fn message(self) -> Option<&'static str> {
        if SIGNAL_ENDS_WELL.load(Ordering::SeqCst) {
            return None;
        }
        match self {
            Stop::Interrupt => {
                Some("interrupted (SIGINT): stopped the programs it ran and removed its temporary files")
            }
            Stop::Terminate => {
                Some("terminated (SIGTERM): stopped the programs it ran and removed its temporary files")
            }
            Stop::Hangup => Some("hung up (SIGHUP): stopped the programs it ran and removed its temporary files"),
            Stop::StdoutClosed => None,
        }
    }
}

struct Group {
    /// The child's PID, which is also its process group's ID (unless `alone`).
    pgid: Pid,
    /// SIGTERM was sent to the group.
    terminated: bool,
    /// A child kept in the tool's own process group (see [`spawn_in_foreground`]): signals
    /// go to its PID only.
    alone: bool,
}

/// Sends `signal` to the group, or to the child alone when it has no group of its own. A
/// child alone is signalled only while it is this process's child and has not exited (once
/// reaped, its PID could name an unrelated process).
fn signal(pgid: Pid, alone: bool, signal: Signal) {
    let _ = if !alone {
        rustix::process::kill_process_group(pgid, signal)
    } else if leader_running(pgid) {
        rustix::process::kill_process(pgid, signal)
    } else {
        Ok(())
    };
}

#[derive(Default)]
struct State {
    stop: Option<Stop>,
    groups: Vec<Group>,
}

static STATE: Mutex<State> = Mutex::new(State { stop: None, groups: Vec::new() });
static STOPPED: LazyLock<tokio::sync::watch::Sender<Option<Stop>>> =
    LazyLock::new(|| tokio::sync::watch::Sender::new(None));
/// Set by whichever of the orderly way out and the watchdog ends the process.
static EXITING: AtomicBool = AtomicBool::new(false);
/// Set by a run that has no end of its own (a watch): a signal is how the user ends it.
static SIGNAL_ENDS_WELL: AtomicBool = AtomicBool::new(false);

/// Declares that this run ends only when the user stops it (`--watch`): SIGINT and SIGTERM
/// then stop it exactly as before (children stopped, temporary files removed) but exit 0,
/// without the `interrupted` line.
pub fn signal_ends_well() {
    SIGNAL_ENDS_WELL.store(true, Ordering::SeqCst);
}

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn terminate(group: &mut Group) {
    if !group.terminated {
        group.terminated = true;
        signal(group.pgid, group.alone, Signal::TERM);
    }
}

/// Why the run is stopping, once it is.
pub fn stopping() -> Option<Stop> {
    state().stop
}

/// Asks the run to stop (the first reason wins) and sends SIGTERM to every child process
/// group. Returns false when the run was already stopping.
pub fn request_stop(stop: Stop) -> bool {
    {
        let mut state = state();
        if state.stop.is_some() {
            return false;
        }
        state.stop = Some(stop);
        state.groups.iter_mut().for_each(terminate);
    }
    STOPPED.send_replace(Some(stop));
    true
}

/// Resolves once the run is asked to stop.
pub async fn stopped() -> Stop {
    let mut receiver = STOPPED.subscribe();
    match receiver.wait_for(Option::is_some).await {
        Ok(stop) => (*stop).expect("waited for a stop"),
        // The sender is a static and is never dropped.
        Err(_) => std::future::pending().await,
    }
}

/// The error a program gets when the run is stopping before it starts.
fn stopped_error(stop: Stop) -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, format!("not started: the run is stopping ({stop:?})"))
}

/// A child process group in the registry. When the child has been waited for, call
/// [`ChildGroup::finished`]; dropped before that (its future was cancelled), the group gets
/// SIGTERM, then SIGKILL after [`CHILD_GRACE`] for whatever is left of it.
#[must_use = "call finished() once the child has been waited for"]
pub struct ChildGroup {
    pgid: Pid,
    finished: bool,
}

impl ChildGroup {
    fn register(pid: Option<u32>, alone: bool) -> io::Result<ChildGroup> {
        let pgid = pid
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(Pid::from_raw)
            .ok_or_else(|| io::Error::other("the child process has no PID"))?;
        let mut state = state();
        let mut group = Group { pgid, terminated: false, alone };
        // A stop that came while it was starting: it stops at once.
        if state.stop.is_some() {
            terminate(&mut group);
        }
        state.groups.push(group);
        Ok(ChildGroup { pgid, finished: false })
    }

    /// The child was waited for: its group leaves the registry.
    pub fn finished(mut self) {
        self.finished = true;
    }
}

impl Drop for ChildGroup {
    fn drop(&mut self) {
        {
            let mut state = state();
            let Some(index) = state.groups.iter().position(|g| g.pgid == self.pgid) else { return };
            if self.finished {
                state.groups.swap_remove(index);
                return;
            }
            terminate(&mut state.groups[index]);
        }
        // Nobody waits for this child any more: finish it off in the background (the way
        // out of the run does the same for whatever is still listed then).
        let pgid = self.pgid;
        let alone = state().groups.iter().any(|g| g.pgid == pgid && g.alone);
        let spawned =
            std::thread::Builder::new().name("ko-child-stop".into()).spawn(move || stop_groups(&[pgid], CHILD_GRACE));
        if spawned.is_err() {
            signal(pgid, alone, Signal::KILL);
        }
    }
}

/// Starts `cmd` in a process group of its own, registered to be stopped with the run.
/// Refused once the run is stopping.
pub fn spawn(cmd: &mut tokio::process::Command) -> io::Result<(tokio::process::Child, ChildGroup)> {
    if let Some(stop) = stopping() {
        return Err(stopped_error(stop));
    }
    // The registry stops the whole group; tokio's kill-on-drop would kill only the leader.
    cmd.process_group(0).kill_on_drop(false);
    let child = cmd.spawn()?;
    let group = ChildGroup::register(child.id(), false)?;
    Ok((child, group))
}

/// Starts `cmd` in the tool's own process group, for a program that needs the terminal
/// (kubectl attached to a pod: it reads the terminal, and Ctrl-C reaches it with the tool),
/// registered so that a stop of the run (SIGTERM sent to the tool alone) reaches it too.
pub fn spawn_in_foreground(cmd: &mut tokio::process::Command) -> io::Result<(tokio::process::Child, ChildGroup)> {
    if let Some(stop) = stopping() {
        return Err(stopped_error(stop));
    }
    cmd.kill_on_drop(false);
    let child = cmd.spawn()?;
    let group = ChildGroup::register(child.id(), true)?;
    Ok((child, group))
}

/// [`spawn`] for a `std::process::Command` (run on a blocking thread).
pub fn spawn_std(cmd: &mut std::process::Command) -> io::Result<(std::process::Child, ChildGroup)> {
    use std::os::unix::process::CommandExt as _;
    if let Some(stop) = stopping() {
        return Err(stopped_error(stop));
    }
    cmd.process_group(0);
    let child = cmd.spawn()?;
    let group = ChildGroup::register(Some(child.id()), false)?;
    Ok((child, group))
}

/// Runs `cmd` to completion like `Command::output` (stdin empty, stdout and stderr
/// captured), in a process group of its own that is stopped with the run.
pub async fn output(cmd: &mut tokio::process::Command) -> io::Result<Output> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let (child, group) = spawn(cmd)?;
    let output = child.wait_with_output().await;
    group.finished();
    output
}

/// [`output`] for a `std::process::Command`; it blocks, so call it where blocking is fine.
pub fn output_std(cmd: &mut std::process::Command) -> io::Result<Output> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let (child, group) = spawn_std(cmd)?;
    let output = child.wait_with_output();
    group.finished();
    output
}

/// Whether the group's leader has not exited yet (a zombie has; so has a reaped one).
fn leader_running(pgid: Pid) -> bool {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    matches!(rustix::process::waitid(WaitId::Pid(pgid), options), Ok(None))
}

/// Stops every child process group still in the registry: SIGTERM, up to `grace` for their
/// leaders to exit, then SIGKILL for whatever is left of each group. Blocks (briefly).
pub fn stop_children(grace: Duration) {
    let groups: Vec<Pid> = state().groups.iter().map(|g| g.pgid).collect();
    stop_groups(&groups, grace);
}

fn stop_groups(groups: &[Pid], grace: Duration) {
    // Which are children without a group of their own, read before anything leaves the list.
    let alone: Vec<Pid> = state().groups.iter().filter(|g| g.alone).map(|g| g.pgid).collect();
    state().groups.iter_mut().filter(|g| groups.contains(&g.pgid)).for_each(terminate);
    if groups.is_empty() {
        return;
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && groups.iter().any(|&pgid| leader_running(pgid)) {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Each leader is either not yet reaped (so its PID still names the group) or the group
    // is gone: SIGKILL cannot reach an unrelated process. A child without a group of its
    // own is killed only while it has not exited (see `signal`).
    for &pgid in groups {
        signal(pgid, alone.contains(&pgid), Signal::KILL);
    }
    state().groups.retain(|g| !groups.contains(&g.pgid));
}

/// Claims the right to end the process: true for the first caller only (the orderly way out
/// or the watchdog), so that the two never both run the exit path.
pub fn claim_exit() -> bool {
    !EXITING.swap(true, Ordering::SeqCst)
}

/// Ends the process now: kills every child group, removes this run's temporary files and
/// exits with the stop's code. For the watchdog and a second signal, when the orderly way out
/// is stuck or not wanted; destructors do not run, which is why the cache's run directories
/// are removed by hand.
fn exit_now(stop: Stop) {
    if !claim_exit() {
        // The orderly way out is already ending the process.
        return;
    }
    stop_children(Duration::ZERO);
    crate::cache::remove_run_dirs();
    if let Some(message) = stop.message() {
        crate::output::error(message);
    }
    std::process::exit(i32::from(stop.exit_code()));
}

/// Whether this process started with SIGHUP ignored (`nohup`, some supervisors): read from
/// `/proc/self/status` (the workspace forbids the unsafe `sigaction` query). Where there is no
/// `/proc`, SIGHUP is taken as ignored, so its disposition is left as the process got it.
fn hangup_ignored() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return true };
    let ignored = status.lines().find_map(|l| l.strip_prefix("SigIgn:"));
    // Bit 0 is signal 1, SIGHUP.
    ignored.and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok()).is_none_or(|mask| mask & 1 == 1)
}

/// Starts listening for SIGINT and SIGTERM on a thread of its own; returns once the handlers
/// are in place. The first signal asks the run to stop (see [`request_stop`]) and starts the
/// watchdog; a second one ends the process at once.
pub fn listen() -> io::Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
    std::thread::Builder::new().name("ko-signals".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_io().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        runtime.block_on(async move {
            use tokio::signal::unix::{SignalKind, signal};
            // SIGHUP (the terminal or the SSH session closed) ends the run as SIGTERM does,
            // unless the run was started with it ignored (`nohup`), which stays so.
            let hangup = || if hangup_ignored() { Ok(None) } else { signal(SignalKind::hangup()).map(Some) };
            let signals =
                signal(SignalKind::interrupt()).and_then(|i| Ok((i, signal(SignalKind::terminate())?, hangup()?)));
            let (mut interrupt, mut terminate, mut hangup) = match signals {
                Ok(all) => all,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            loop {
                let stop = tokio::select! {
                    _ = interrupt.recv() => Stop::Interrupt,
                    _ = terminate.recv() => Stop::Terminate,
                    _ = async {
                        match &mut hangup {
                            Some(hangup) => hangup.recv().await,
                            None => std::future::pending().await,
                        }
                    } => Stop::Hangup,
                };
                if request_stop(stop) {
                    let _ = std::thread::Builder::new().name("ko-watchdog".into()).spawn(move || {
                        std::thread::sleep(WATCHDOG);
                        exit_now(stop);
                    });
                } else {
                    exit_now(stopping().unwrap_or(stop));
                }
            }
        });
    })?;
    ready_rx.recv().unwrap_or_else(|_| Err(io::Error::other("the signal listener thread ended")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(Stop::Interrupt.exit_code(), 130);
        assert_eq!(Stop::Terminate.exit_code(), 143);
        assert_eq!(Stop::Hangup.exit_code(), 129);
        assert_eq!(Stop::StdoutClosed.exit_code(), 0);
        assert!(Stop::StdoutClosed.message().is_none());
    }

    fn alive(pid: i32) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z') && !rest.trim().is_empty())
    }

    #[test]
    fn a_dropped_child_is_stopped_with_its_whole_group() {
        // A shell that ignores SIGTERM (and so does the grandchild it starts): only SIGKILL,
        // after the grace period, ends them.
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c").arg(format!("trap '' TERM; sleep 60 & echo $! > {}; wait", pidfile.display()));
        let (mut child, group) = spawn_std(&mut cmd).unwrap();
        while std::fs::read_to_string(&pidfile).map_or(true, |s| !s.ends_with('\n')) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let grandchild: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        assert!(alive(grandchild));
        // Dropped unfinished, as when the future waiting for it is cancelled.
        drop(group);
        let status = child.wait().unwrap();
        assert!(!status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(grandchild) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!alive(grandchild), "the grandchild {grandchild} still runs");
    }
}
