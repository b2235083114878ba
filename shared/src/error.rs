//! The library's top-level error: each variant wraps one module's error, whose message names
//! the input at fault and how to fix it. Binaries print it as one line. Beside it, the errors
//! of the command layer itself (a usage error, the user's kubectl).

use std::path::PathBuf;

use crate::{
    assemble, auth, base, cache, cluster, config, gobuild, gocache, image, platform, publish, registry, sbom, template,
    time, yaml,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Go(#[from] gobuild::GoBuildError),
    #[error(transparent)]
    GoCache(#[from] gocache::GoCacheError),
    #[error(transparent)]
    Platform(#[from] platform::PlatformError),
    #[error(transparent)]
    Base(#[from] base::BaseError),
    #[error(transparent)]
    Kodata(#[from] assemble::kodata::KodataError),
    #[error(transparent)]
    Layer(#[from] assemble::layer::LayerError),
    #[error(transparent)]
    Caps(#[from] image::caps::CapsError),
    #[error(transparent)]
    Sbom(#[from] sbom::SbomError),
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    #[error(transparent)]
    Publish(#[from] publish::PublishError),
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    #[error(transparent)]
    Epoch(#[from] time::EpochError),
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error(transparent)]
    Manifest(#[from] yaml::ManifestError),
    #[error(transparent)]
    Kubectl(#[from] KubectlError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// A `ko://` string in an input file that could not be built or published.
    #[error("{file}:{line}: {value}: {source}")]
    Reference { file: String, line: usize, value: String, source: Box<Error> },
    /// A flag or argument that cannot be used as given.
    #[error("{flag}: {detail}")]
    Usage { flag: String, detail: String },
}

/// The user's own kubectl, which the commands hand work to (see `commands::kubectl`); kept
/// here so the error type depends on no command.
#[derive(Debug, thiserror::Error)]
pub enum KubectlError {
    #[error("kubectl is not on PATH; {why} needs it (install kubectl, or put it on PATH)")]
    Missing { why: String },
    #[error("running {program}: {source}")]
    Spawn { program: PathBuf, source: std::io::Error },
    #[error("`kubectl {verb}` failed ({status}); its errors are above")]
    Failed { verb: String, status: String },
}

/// Watching files for `--watch` (see `commands::watch`); kept here, as `KubectlError` is.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("starting the file watcher: {source}")]
    Start { source: notify::Error },
    #[error("watching {}: {source}", path.display())]
    Watch { path: PathBuf, source: notify::Error },
    #[error("--watch: {detail}")]
    Input { detail: String },
}

impl Error {
    pub fn usage(flag: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Usage { flag: flag.into(), detail: detail.into() }
    }
}
