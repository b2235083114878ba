//! Credential errors: each names the file, helper or registry at fault. None carries a secret.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("reading {path}: {detail}; fix or remove the file")]
    BadConfig { path: PathBuf, detail: String },
    #[error("the environment variable {var} is not valid: {detail}; fix or unset it")]
    BadEnv { var: &'static str, detail: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "credentials for {registry}: {source_desc}, but {helper} is not installed (not found on PATH); install it, or remove the entry from {config}"
    )]
    HelperMissing { registry: String, source_desc: String, helper: String, config: String },
    #[error("{helper} {action} for {registry} failed: {detail} ({source_desc})")]
    HelperFailed { registry: String, helper: String, action: String, detail: String, source_desc: String },
    #[error("the credential store {path} is malformed: {detail}; fix or remove the file")]
    BadStore { path: PathBuf, detail: String },
    #[error("{0}")]
    Protocol(String),
    /// A cloud source that is configured but could not produce credentials:
    /// `ECR: GetAuthorizationToken in us-east-1 was denied: ...`.
    #[error("{provider}: {detail}")]
    Cloud { provider: &'static str, detail: String },
}
