//! Flags of the commands that reach the cluster: `apply`, `create` and `run` hand it built
//! images, `delete` removes objects; with the flag groups they share (which cluster, and what
//! `apply` and `create` share).

use std::path::PathBuf;

use clap::builder::BoolishValueParser;

use super::{BuildArgs, FileArgs, GlobalArgs, PublishArgs};

/// Which cluster to talk to, spelled as kubectl spells it.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct KubeArgs {
    /// Path to the kubeconfig file to use (default: KUBECONFIG, else ~/.kube/config)
    // An OsString, not a PathBuf: `--kubeconfig="$KC"` with the variable empty is no flag, as
    // in kubectl, where clap's path parser would refuse the empty value.
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath, value_parser = clap::value_parser!(std::ffi::OsString))]
    pub kubeconfig: Option<std::ffi::OsString>,
    /// The name of the kubeconfig context to use
    #[arg(long)]
    pub context: Option<String>,
    /// The name of the kubeconfig cluster to use
    #[arg(long)]
    pub cluster: Option<String>,
    /// The name of the kubeconfig user to use
    #[arg(long)]
    pub user: Option<String>,
    /// The namespace for objects that name none (default: the context's namespace)
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

impl From<&KubeArgs> for crate::cluster::Connection {
    fn from(args: &KubeArgs) -> Self {
        // An empty value is no flag, as kubectl reads `--context="$CTX"` with the variable empty.
        let given = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        crate::cluster::Connection {
            kubeconfig: args.kubeconfig.clone().filter(|p| !p.is_empty()).map(PathBuf::from),
            context: given(&args.context),
            cluster: given(&args.cluster),
            user: given(&args.user),
            namespace: given(&args.namespace),
        }
    }
}

/// `kubectl ko apply -f FILE...`
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "kubectl-ko-apply",
    bin_name = "kubectl ko apply",
    args_override_self = true,
    version,
    about = "Apply the input files with image references resolved to built/pushed image digests.",
    long_about = "Resolves the input files as `kubectl ko resolve` does, then server-side applies every \
object to the cluster (field manager kubectl-ko). Nothing is applied unless every image was built \
and published. Namespaces and CustomResourceDefinitions are applied first."
)]
pub struct ApplyCommand {
    #[command(flatten)]
    pub watch: WatchArgs,
    /// With --watch: delete the objects this watch applied once their documents are gone from the input
    // Checked by the command, whose error points a ko user to kubectl's own --prune.
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub prune: bool,
    /// Take ownership of fields another field manager owns (kubectl scale, an autoscaler, a create), as ko's client-side apply overwrites them; =false fails on such conflicts instead
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub force_conflicts: Option<bool>,
    #[command(flatten)]
    pub deploy: DeployArgs,
}

/// `--watch`, on `apply` and `resolve`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct WatchArgs {
    /// After the first run, watch the images' Go modules, kodata and .ko.yaml and the input files, and on each change rebuild what changed and apply (or print) it again, until Ctrl-C
    #[arg(short = 'W', long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub watch: bool,
}

/// What `apply` and `create` share: the inputs, the dry run, the cluster, how images are built
/// and published, and kubectl's flags after `--`.
#[derive(clap::Args, Clone, Debug)]
pub struct DeployArgs {
    #[command(flatten)]
    pub files: FileArgs,
    /// "server" to have the API server check the objects without persisting them, "client" to check them here and send nothing; "none" to change the cluster
    #[arg(long, value_name = "none|server|client", num_args = 0..=1, require_equals = true, default_value = "none", default_missing_value = "client")]
    pub dry_run: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub publish: PublishArgs,
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Flags for kubectl: with any, the resolved YAML is piped to `kubectl apply|create -f -` with them
    #[arg(last = true, value_name = "KUBECTL_FLAGS")]
    pub kubectl_args: Vec<String>,
}

/// `kubectl ko delete -f FILE...`
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "kubectl-ko-delete",
    bin_name = "kubectl ko delete",
    args_override_self = true,
    version,
    about = "Delete the objects named in the input files.",
    long_about = "Deletes every object named in the input files from the cluster, without building anything.\n\n\
Any other form of `kubectl delete` (`kubectl ko delete KIND NAME`, `--all`, ...) and flags after `--` \
are handed to kubectl delete, as ko does."
)]
pub struct DeleteCommand {
    #[command(flatten)]
    pub files: FileArgs,
    /// Treat objects that do not exist as deleted (the default with -l, as in kubectl)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub ignore_not_found: Option<bool>,
    /// Wait until the objects are gone (their finalizers done), as kubectl delete does
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub wait: bool,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Flags for `kubectl delete`: with any, kubectl deletes the objects of the files
    #[arg(last = true, value_name = "KUBECTL_FLAGS")]
    pub kubectl_args: Vec<String>,
}

/// `kubectl ko create -f FILE... [-- KUBECTL_FLAGS...]`
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "kubectl-ko-create",
    bin_name = "kubectl ko create",
    args_override_self = true,
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
    args_override_self = true,
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
