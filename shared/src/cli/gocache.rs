//! The flags of `kubectl ko gocache`, the program Go runs as `GOCACHEPROG`.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;

use super::GlobalArgs;

#[derive(clap::Parser, Debug)]
#[command(
    name = "kubectl-ko-gocache",
    bin_name = "kubectl ko gocache",
    args_override_self = true,
    version,
    about = "Serve Go's build cache over GOCACHEPROG, shared through a registry (KO_GOCACHE_REPO)",
    long_about = "Go runs this program when GOCACHEPROG names it (Go 1.24+), e.g. \
GOCACHEPROG=\"kubectl-ko gocache\" go build ./... It speaks Go's protocol on stdin and stdout. \
Outputs are kept under the kubectl-ko cache (KOCACHE)/gocache, bounded by KO_GOCACHE_MAX_SIZE \
(default 10G, least recently used first out). With KO_GOCACHE_REPO=REGISTRY/REPO, entries are \
also looked up in and pushed to that repository with your registry credentials, so CI runners \
share what they compiled; a registry that fails or is slow is dropped with one warning. \
kubectl ko build, resolve and apply set GOCACHEPROG themselves when KO_GOCACHE_REPO is set."
)]
pub struct GocacheCommand {
    /// Whether to skip TLS verification on the cache's registry (and allow plain HTTP)
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub insecure_registry: bool,
    /// A PEM file of CA certificates to trust for the cache's registry (repeatable; SSL_CERT_FILE also works)
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub registry_ca_file: Vec<PathBuf>,
    #[command(flatten)]
    pub global: GlobalArgs,
}
