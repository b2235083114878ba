//! Flags of `kubectl ko create` and `kubectl ko run`, the two commands that hand built images
//! to the cluster besides `apply`.

use super::{BuildArgs, DeployArgs, GlobalArgs, PublishArgs};

/// `kubectl ko create -f FILE... [-- KUBECTL_FLAGS...]`
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "kubectl-ko-create",
    bin_name = "kubectl ko create",
    version,
    about = "Create the input files with image references resolved to built/pushed image digests.",
    long_about = "Resolves the input files as `kubectl ko resolve` does, then creates every object in the \
cluster. An object that already exists is an error, as with `kubectl create`; the others are still \
created. Nothing is created unless every image was built and published.\n\n\
Flags after `--` go to kubectl: the resolved YAML is then piped to `kubectl create -f -` with them."
)]
pub struct CreateCommand {
    #[command(flatten)]
    pub deploy: DeployArgs,
}

/// `kubectl ko run IMPORTPATH [-- KUBECTL_RUN_FLAGS... [-- ARGS...]]`
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "kubectl-ko-run",
    bin_name = "kubectl ko run",
    version,
    about = "A variant of `kubectl run` that containerizes IMPORTPATH first.",
    long_about = "Builds and publishes IMPORTPATH as `kubectl ko build` does, then runs the image in a pod \
with `kubectl run NAME --image REF --attach --rm --restart=Never`, where NAME is the image's \
repository name. Flags after `--` go to kubectl run (a later flag wins, so `--rm=false` keeps the \
pod); arguments after a second `--` go to the container, for example:\n\n  \
kubectl ko run ./cmd/app -- --labels=team=a -- --port=8080"
)]
pub struct RunCommand {
    /// The import path of the `package main` to run
    #[arg(value_name = "IMPORTPATH", value_hint = clap::ValueHint::DirPath, required = true)]
    pub import_paths: Vec<String>,
    #[command(flatten)]
    pub publish: PublishArgs,
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Flags for `kubectl run`, then `--` and the container's arguments
    #[arg(last = true, value_name = "KUBECTL_RUN_FLAGS", allow_hyphen_values = true)]
    pub kubectl_args: Vec<String>,
}
