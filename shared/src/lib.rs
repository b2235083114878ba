//! ko-core: the library behind the kubectl-ko plugins, a reimplementation of ko (the
//! container image builder for Go applications). The binaries only parse and report; this
//! crate does the work.
//!
//! - [`commands`]: what each plugin does
//! - [`cli`]: the flags they share
//! - `gobuild`, `image`, `base`, `registry`, `publish`: build, assemble, resolve bases, push
//! - [`output`]: everything users see
//! - [`interrupt`]: signals, child process groups and the way out of a stopped run

pub mod auth;
pub mod base;
mod builder;
pub mod cache;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod digest;
pub mod docker;
mod error;
pub mod gobuild;
pub mod image;
pub mod interrupt;
pub mod media;
pub mod output;
pub mod platform;
pub mod publish;
pub mod registry;
pub mod sbom;
pub mod template;
pub mod time;
pub mod timing;
pub mod yaml;

pub use error::Error;

/// Runs an async command on a multi-threaded runtime and turns the outcome into an exit code,
/// printing a failure as one `error:` line.
///
/// SIGINT and SIGTERM stop the run (see [`interrupt`]): the programs it started are stopped
/// with their process groups, the work is dropped (which aborts its transfers and deletes its
/// temporary files), this run's directory in the cache's `tmp/` is removed, and the exit code
/// is 130 or 143. A closed stdout stops the run the same way with exit code 0.
pub fn run_main<F>(future: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = Result<(), Error>>,
{
    use std::process::ExitCode;
    output::on_stdout_closed(|| {
        interrupt::request_stop(interrupt::Stop::StdoutClosed);
    });
    timing::init();
    if let Err(e) = interrupt::listen() {
        output::error(format!("listening for SIGINT and SIGTERM: {e}"));
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            output::error(format!("starting the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let mut work = Box::pin(future);
    let finished = runtime.block_on(async {
        tokio::select! {
            biased;
            _ = interrupt::stopped() => None,
            result = &mut work => Some(result),
        }
    });
    // Dropping unfinished work cancels it: transfers are aborted, temp files deleted, and the
    // programs it was waiting for are sent SIGTERM.
    {
        let _context = runtime.enter();
        drop(work);
    }
    // Spawned tasks (background blob checks and uploads) are dropped with the runtime.
    // Blocking tasks (layer compression) cannot be cancelled; they are not waited for long,
    // and whatever they write goes into this run's temp directory, removed below.
    runtime.shutdown_timeout(std::time::Duration::from_millis(300));
    interrupt::stop_children(interrupt::CHILD_GRACE);
    cache::remove_run_dirs();
    if !interrupt::claim_exit() {
        // The watchdog is ending the process.
        loop {
            std::thread::park();
        }
    }
    match (interrupt::stopping(), finished) {
        (Some(stop), _) => {
            if let Some(message) = stop.message() {
                output::error(message);
            }
            ExitCode::from(stop.exit_code())
        }
        (None, Some(Ok(()))) => ExitCode::SUCCESS,
        (None, Some(Err(e))) => {
            output::error(e.to_string());
            ExitCode::FAILURE
        }
        (None, None) => unreachable!("the run stopped without a reason"),
    }
}
