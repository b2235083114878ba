//! Flags of `kubectl ko login` and `kubectl ko logout` (ko's, which are crane's).

use std::path::PathBuf;

use clap::builder::BoolishValueParser;

use super::GlobalArgs;

/// `kubectl ko login SERVER -u USER (-p PASS | --password-stdin)`
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "kubectl-ko-login",
    bin_name = "kubectl ko login",
    args_override_self = true,
    version,
    about = "Log in to a registry",
    long_about = "Checks the user name and password against the registry, stores them with the \
docker-credential-ko helper (in ~/.config/kubectl-ko/credentials.json, mode 0600) and sets \
credHelpers[SERVER] = \"ko\" in Docker's config.json, so kubectl ko and Docker both use them.",
    after_help = "Example:\n  kubectl ko login reg.example.com -u AzureDiamond --password-stdin < password.txt"
)]
pub struct LoginCommand {
    /// The registry: host[:port]
    #[arg(value_name = "SERVER")]
    pub server: String,
    /// Username
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password (visible to other users of this machine; prefer --password-stdin)
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub password_stdin: bool,
    /// Whether to skip TLS verification on the registry (and allow plain HTTP)
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub insecure_registry: bool,
    /// A PEM file of CA certificates to trust for the registry (repeatable; SSL_CERT_FILE also works)
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub registry_ca_file: Vec<PathBuf>,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// `kubectl ko logout SERVER`
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "kubectl-ko-logout",
    bin_name = "kubectl ko logout",
    args_override_self = true,
    version,
    about = "Log out of a registry",
    long_about = "Erases the credentials kubectl ko login stored for SERVER, and removes \
credHelpers[SERVER] and auths[SERVER] from Docker's config.json."
)]
pub struct LogoutCommand {
    /// The registry: host[:port]
    #[arg(value_name = "SERVER")]
    pub server: String,
    #[command(flatten)]
    pub global: GlobalArgs,
}
