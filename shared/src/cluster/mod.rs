//! The Kubernetes side of `apply`, `create` and `delete`: connecting as kubectl would (kubeconfig,
//! context, namespace), mapping each object's apiVersion and kind to its resource, and
//! server-side apply or delete of each object.

mod apply;
mod connect;
mod delete;
mod objects;
mod request;
mod upgrade;

pub use apply::{ApplyOptions, DryRun, KindCache, Verb, apply, prepare};
pub use connect::{Cluster, Connection, connect};
pub use delete::{DeleteOptions, delete};
pub use objects::{Object, objects, objects_and_rejected};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "no kubeconfig found at {path}; point KUBECONFIG or --kubeconfig at one, or create it (for example with `kind create cluster`)"
    )]
    NoKubeconfig { path: PathBuf },
    #[error("kubeconfig {source_name}: {detail}")]
    Kubeconfig { source_name: String, detail: String },
    #[error(
        "cannot reach the Kubernetes API server at {server}: {detail}; check that the cluster is running and that the context ({context}) is the one you meant"
    )]
    Unreachable { server: String, context: String, detail: String },
    #[error(
        "the Kubernetes API server at {server} refused the credentials of context {context} (Unauthorized); log in again, or check the context's user in the kubeconfig"
    )]
    Unauthorized { server: String, context: String },
    #[error("{file}:{line}: {detail}")]
    NotObject { file: String, line: usize, detail: String },
    #[error(
        "{file}:{line}: the cluster at {server} does not serve kind {kind} in {api_version}; check the spelling, or apply the CustomResourceDefinition that defines it"
    )]
    UnknownKind { file: String, line: usize, kind: String, api_version: String, server: String },
    #[error(
        "{file}:{line}: the object's namespace {object:?} does not match --namespace {flag:?}; drop -n or change the file"
    )]
    NamespaceMismatch { file: String, line: usize, object: String, flag: String },
    #[error("{name}: {detail}")]
    Api { name: String, detail: String },
    #[error("customresourcedefinition {name}: {why}")]
    NotEstablished { name: String, why: String },
    #[error("{count} of {total} objects could not be {verb} (see the errors above)")]
    Failed { count: usize, total: usize, verb: &'static str },
    #[error("{count} of {total} objects cannot go to the cluster (see the errors above); nothing was sent")]
    Refused { count: usize, total: usize },
}
