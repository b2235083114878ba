//! ko-core: the library behind the kubectl-ko plugins, a reimplementation of ko (the
//! container image builder for Go applications). The binaries only parse and report; this
//! crate does the work. This file is its table of contents.
//!
//! # Layers
//!
//! From the bottom up; a module may use the modules of its own layer and of the layers below
//! it, never one above, and no two top-level modules import each other (no cycles). The map,
//! the data flow and the reasons are in `docs/ARCHITECTURE.md`.
//!
//! 1. support: `output` (a leaf: it calls nothing else in the crate), `digest`, `platform`,
//!    `settings` (the environment as a value), `time`, `timing`, `tls`, `template`, `yaml`, `cache`,
//!    `interrupt`.
//! 2. model: `reference` (image names), `image` (manifests, configs, layers as values: no I/O,
//!    no async), `sbom`, `sign` (keys, DSSE, provenance: what cosign verifies), `config`
//!    (`.ko.yaml`).
//! 3. transport: `auth` (credentials), `registry` (HTTP, tokens, retries, blobs, manifests).
//! 4. Go driver: `gobuild` (go list, go build, fingerprints), `gocache` (Go's build cache over
//!    `GOCACHEPROG`, shared through a registry).
//! 5. layers: `assemble` (application and kodata layers, an image on its base).
//! 6. media: `media` (OCI layout, tarball, Docker daemon and kind: each one module with its
//!    source and its sink).
//! 7. assembly: `base` (base images from the registry or a medium), `builder` (Go binary +
//!    base -> image), `publish` (images -> the registry or media), `cluster` (Kubernetes).
//! 8. commands: `cli` (flags), `commands` (one per plugin), `error`, `run_main` (below).
//!
//! One exception: `error`, the top-level error wrapping each module's error, sits with the
//! commands but is also what `builder` returns (a build fails with the errors of half a dozen
//! modules); nothing else below the commands names it.

// Support.
/// The on-disk cache: blobs by digest, Go build outputs, layer records, the local image store.
mod cache;
/// sha256 digests, and writers that hash what passes through them.
mod digest;
/// Signals, child process groups and the way out of a stopped run.
mod interrupt;
/// Everything users see: results on stdout, steps, warnings and the error line on stderr.
pub mod output;
/// Target platforms: parsing, matching against a base, the Go environment each needs.
mod platform;
/// The process environment, read once into a value the library is handed.
mod settings;
/// The part of Go's `text/template` that ko applies to flags and ldflags.
mod template;
/// Timestamps: `SOURCE_DATE_EPOCH`-style values and RFC 3339 formatting.
mod time;
/// Phase timings for profiling (`KUBECTL_KO_TIMINGS=1`).
mod timing;
/// The roots HTTPS clients trust and the rustls crypto provider.
mod tls;
/// Kubernetes YAML: reading documents, `ko://` references, `-l` selectors.
mod yaml;

// Model.
/// `.ko.yaml` and the `KO_*` variables that override it: parsing and diagnostics.
mod config;
/// Images as values: manifests, configs, layers, indexes.
mod image;
/// Image references: registries, repositories, tags and digests, as ko and Docker read them.
mod reference;
/// Software bills of materials (SPDX, CycloneDX) from the binary's Go build info.
mod sbom;
/// Signatures and SLSA provenance that cosign verifies: keys, DSSE, in-toto, bundles.
mod sign;

// Transport.
/// Registry credentials: docker config, helpers, kubectl-ko's own store.
mod auth;
/// The registry HTTP API: endpoints, tokens, retries, blobs and manifests.
mod registry;

// Media.
/// OCI layout, tarball, Docker daemon and kind: each medium's source and sink.
mod media;

// Go driver.
/// `go list`, `go build`, fingerprints and the build cache of Go binaries.
mod gobuild;
/// Go's own build cache served over `GOCACHEPROG`: local disk, then a registry repository.
mod gocache;

// Assembly: base images, building, publishing, the cluster.
/// Writing layers (application, kodata) and putting an image together on a base.
mod assemble;
/// Base images: built-in, registry, OCI layout or Docker daemon, per platform.
mod base;
/// From import paths to images: Go binary, kodata and base, per platform.
mod builder;
/// Kubernetes: connecting as kubectl would, server-side apply and delete.
mod cluster;
/// Where built images go: registry, layout, tarball, daemon, kind, local store.
mod publish;

// Commands.
/// The flags of every plugin, as clap structs the binaries parse.
pub mod cli;
/// What each plugin does, from parsed arguments to printed results.
pub mod commands;
/// The top-level error, wrapping each module's error.
mod error;

/// `docker-credential-ko`: Docker's credential-helper protocol over the credential store.
pub use auth::serve as credential_helper;
pub use error::Error;
pub use settings::Environment;

/// Runs an async command on a multi-threaded runtime and turns the outcome into an exit code,
/// printing a failure as one `error:` line.
///
/// SIGINT and SIGTERM stop the run (see `interrupt`): the programs it started are stopped
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
    timing::init(Environment::process());
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
    if interrupt::stopping().is_none() {
        cache::sweep_superseded(false);
    }
    timing::report_cpu();
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
        (None, Some(Ok(()))) => match output::stdout_failure() {
            None => ExitCode::SUCCESS,
            Some(reason) => {
                output::error(format!("writing the results to stdout: {reason}"));
                ExitCode::FAILURE
            }
        },
        (None, Some(Err(e))) => {
            output::error(e.to_string());
            ExitCode::FAILURE
        }
        (None, None) => unreachable!("the run stopped without a reason"),
    }
}
