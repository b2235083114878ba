//! ko-core: the library behind the kubectl-ko plugins, a reimplementation of ko (the
//! container image builder for Go applications). The binaries only parse and report; this
//! crate does the work.
//!
//! - [`commands`]: what each plugin does
//! - [`cli`]: the flags they share
//! - `gobuild`, `image`, `base`, `registry`, `publish`: build, assemble, resolve bases, push
//! - [`output`]: everything users see

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
pub fn run_main<F>(future: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = Result<(), Error>>,
{
    timing::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            output::error(format!("starting the async runtime: {e}"));
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(future) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            output::error(e.to_string());
            std::process::ExitCode::FAILURE
        }
    }
}
