//! Media: where images are read from and written to, other than a registry. Each medium holds
//! both its source (a base image read from it) and its sink (a built image written to it):
//!
//! - [`layout`]: an OCI image layout on disk (`oci-layout://`, `oci:DIR:TAG`, `--oci-layout-path`,
//!   the local store);
//! - [`tarball`]: one archive that is both an OCI layout and a `docker load` image;
//! - [`daemon`]: the Docker daemon through its CLI (`ko.local`), and kind clusters
//!   (`kind.local`) reached through it.
//!
//! Media read and write the model (`image`) with the cache and the registry transport; they
//! know nothing of base resolution or of the publishers that choose among them.

pub mod blobs;
pub mod daemon;
pub mod layout;
pub mod tarball;

use std::path::PathBuf;

use crate::cache::CacheError;
use crate::registry::RegistryError;

use daemon::DockerError;

/// Why writing an image to a medium failed. The publishers show these as they are.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("OCI layout {path}: {detail}")]
    Layout { path: PathBuf, detail: String },
    #[error(
        "base layer {digest} is a foreign (non-distributable) layer that {detail}; it can only be pushed to a registry, where it stays at {urls}: publish to a registry (KO_DOCKER_REPO) or use a base without foreign layers"
    )]
    Foreign { digest: String, urls: String, detail: String },
    #[error("blob {digest} is missing from the cache at {path}; clear the cache and rebuild")]
    MissingBlob { digest: String, path: PathBuf },
    #[error(
        "blob {digest} in the cache at {path} was damaged on disk (its content does not match its digest) and has been removed; run the command again to make it anew"
    )]
    DamagedBlob { digest: String, path: PathBuf },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(
        "{name}: no image was built for the Docker daemon's platform {daemon} (built: {built}); add {daemon} to --platform"
    )]
    NoDaemonPlatform { name: String, daemon: String, built: String },
    #[error(
        "no kind cluster {cluster:?}: no running container is labelled {label}={cluster}; create it with `kind create cluster --name {cluster}`, or set KIND_CLUSTER_NAME to an existing cluster (`kind get clusters`)",
        label = daemon::kind::CLUSTER_LABEL
    )]
    NoKindCluster { cluster: String },
    #[error("the nodes of kind cluster {cluster:?} are stopped; start them with `docker start {nodes}`")]
    KindStopped { cluster: String, nodes: String },
}

/// Why reading a base image from a medium failed; `reference` is the base as the user wrote it.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("base image {reference}: {detail}")]
    Invalid { reference: String, detail: String },
    #[error("base image {reference}: {path}: {source}")]
    Io { reference: String, path: PathBuf, source: std::io::Error },
    #[error("base image {reference} from the Docker daemon: {source}")]
    Daemon { reference: String, source: DockerError },
    #[error(transparent)]
    Cache(#[from] CacheError),
}
