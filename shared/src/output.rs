//! All user-facing output of the suite goes through here: results on stdout, and on stderr
//! one plain line per step (progress bars instead when stderr is a terminal), detail with `-v`,
//! warnings and the final error line. Nothing else in the library prints.

use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

struct Output {
    verbose: bool,
    bars: Option<MultiProgress>,
}

static OUTPUT: OnceLock<Output> = OnceLock::new();

fn output() -> &'static Output {
    OUTPUT.get_or_init(|| Output { verbose: false, bars: None })
}

/// Sets the verbosity and picks plain lines or progress bars. Call once, early in `main`.
pub fn init(verbose: bool) {
    let bars =
        io::stderr().is_terminal().then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)));
    let _ = OUTPUT.set(Output { verbose, bars });
}

pub fn is_verbose() -> bool {
    output().verbose
}

fn line(text: &str) {
    match &output().bars {
        Some(bars) => {
            let _ = bars.println(text);
        }
        None => {
            let _ = writeln!(io::stderr().lock(), "{text}");
        }
    }
}

/// One line per step of the work: "Building …", "Publishing …".
pub fn step(text: impl AsRef<str>) {
    line(text.as_ref());
}

/// Detail that only `-v` shows.
pub fn detail(text: impl AsRef<str>) {
    if is_verbose() {
        line(text.as_ref());
    }
}

pub fn warn(text: impl AsRef<str>) {
    line(&format!("warning: {}", text.as_ref()));
}

/// The one line a failed command prints.
pub fn error(text: impl AsRef<str>) {
    if let Some(bars) = &output().bars {
        let _ = bars.clear();
    }
    let _ = writeln!(io::stderr().lock(), "error: {}", text.as_ref());
}

/// What a closed stdout does besides silencing further results; set once by `run_main` (which
/// stops the run quietly with exit code 0). Output calls no other module: it is a leaf.
static ON_STDOUT_CLOSED: OnceLock<fn()> = OnceLock::new();

/// Sets what happens when stdout turns out to be closed. Call once, before any result.
pub fn on_stdout_closed(hook: fn()) {
    let _ = ON_STDOUT_CLOSED.set(hook);
}

/// Writes a result line to stdout. A closed pipe (`| head`) is not an error: the run stops
/// quietly with exit code 0 (see [`on_stdout_closed`]), and nothing more is written.
pub fn result(text: impl AsRef<str>) {
    let text = text.as_ref();
    write_result(|out| writeln!(out, "{text}"));
}

/// Writes raw bytes to stdout (resolved YAML), with the same closed-pipe rule.
pub fn result_bytes(bytes: &[u8]) {
    write_result(|out| out.write_all(bytes));
}

fn write_result(write: impl FnOnce(&mut io::StdoutLock<'static>) -> io::Result<()>) {
    static CLOSED: AtomicBool = AtomicBool::new(false);
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
            if let Some(hook) = ON_STDOUT_CLOSED.get() {
                hook();
            }
        }
        // A full disk under `resolve > release.yaml`: the rest is not written, and the run
        // fails (see `stdout_failure`) instead of leaving a cut-off file behind a success.
        Err(e) => {
            CLOSED.store(true, Ordering::Relaxed);
            let _ = STDOUT_FAILURE.set(e.to_string());
        }
    }
}

static STDOUT_FAILURE: OnceLock<String> = OnceLock::new();

/// Why writing a result to stdout failed, other than a closed pipe; the run's exit code says
/// so.
pub fn stdout_failure() -> Option<&'static str> {
    STDOUT_FAILURE.get().map(String::as_str)
}

/// A byte counter shown as a bar on a terminal and not at all otherwise.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    pub fn bytes(label: &str, total: u64) -> Progress {
        let Some(bars) = &output().bars else { return Progress(None) };
        let bar = bars.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template("{msg:40!} [{bar:30}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        Progress(Some(bar))
    }

    pub fn spinner(label: &str) -> Progress {
        let Some(bars) = &output().bars else { return Progress(None) };
        let bar = bars.add(ProgressBar::new_spinner());
        bar.set_message(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress(Some(bar))
    }

    /// A counter that can move into a stream that outlives this borrow.
    pub fn incrementer(&self) -> impl Fn(u64) + Send + Sync + 'static {
        let bar = self.0.clone();
        move |n| {
            if let Some(bar) = &bar {
                bar.inc(n);
            }
        }
    }

    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
            if let Some(bars) = &output().bars {
                bars.remove(&bar);
            }
        }
    }
}

/// The device and inode of the regular files behind stdout and stderr: what this process
/// writes must not be read back as input (`resolve --watch > config/out.yaml`).
#[cfg(unix)]
pub fn stream_files() -> Vec<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let (out, err) = (std::io::stdout(), std::io::stderr());
    [out.as_fd(), err.as_fd()]
        .into_iter()
        .filter_map(|fd| std::fs::File::from(fd.try_clone_to_owned().ok()?).metadata().ok())
        .filter(|meta| meta.is_file())
        .map(|meta| (meta.dev(), meta.ino()))
        .collect()
}

#[cfg(not(unix))]
pub fn stream_files() -> Vec<(u64, u64)> {
    Vec::new()
}

/// Whether `path` is one of `streams`.
#[cfg(unix)]
pub fn is_stream(streams: &[(u64, u64)], path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    !streams.is_empty() && std::fs::metadata(path).is_ok_and(|meta| streams.contains(&(meta.dev(), meta.ino())))
}

#[cfg(not(unix))]
pub fn is_stream(_: &[(u64, u64)], _: &std::path::Path) -> bool {
    false
}
