//! The registry client: its type, its options and how it is made. One client serves a whole
//! run, so endpoints are discovered and tokens fetched once per registry and scope. What it
//! does is in the files beside this one: `endpoint.rs` (discovery), `token.rs` (credentials),
//! `request.rs` (sending), `blobs.rs` and `upload.rs` (blobs), `manifests.rs` (manifests).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use super::endpoint::Endpoint;
use super::error::RegistryError;
use super::token::TokenSlot;
use crate::auth::Keychain;
use crate::settings::Environment;

// Kept under their old path for `stream.rs`, which names them from here.
pub(super) use super::request::{location_of, with_query};

#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Allow plain HTTP and skip certificate checks for every registry.
    pub insecure: bool,
    /// PEM files of extra trusted roots (`--registry-ca-file`).
    pub ca_files: Vec<PathBuf>,
    /// Those the environment names (`SSL_CERT_FILE`, `SSL_CERT_DIR`).
    pub env_roots: super::tls::EnvRoots,
    /// How long a transfer may go silent (`KUBECTL_KO_STALL_TIMEOUT`); `None` for the default.
    pub stall: Option<Duration>,
}

impl ClientOptions {
    /// The options of `--insecure-registry` and `--registry-ca-file`, with what `env` adds
    /// (`SSL_CERT_FILE`, `KUBECTL_KO_STALL_TIMEOUT`); a bad stall timeout is an error.
    pub fn new(insecure: bool, ca_flag_files: &[PathBuf], env: &Environment) -> Result<Self, RegistryError> {
        Ok(ClientOptions {
            insecure,
            ca_files: ca_flag_files.to_vec(),
            env_roots: super::tls::EnvRoots::from_env(env),
            stall: Some(super::transfer::stall_timeout(env)?),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

/// Where a blob's bytes come from when uploading.
pub enum BlobBody<'a> {
    File(&'a Path),
    Bytes(bytes::Bytes),
}

pub struct RegistryClient {
    secure: reqwest::Client,
    insecure: reqwest::Client,
    pub(super) options: ClientOptions,
    pub(super) keychain: Keychain,
    pub(super) endpoints: Mutex<HashMap<String, Arc<OnceCell<Arc<Endpoint>>>>>,
    /// One slot per (registry, scope): concurrent requests wait for one token fetch.
    pub(super) tokens: Mutex<HashMap<(String, String), TokenSlot>>,
    /// How long a request may go without progress (see `transfer.rs`).
    pub(super) stall: Duration,
    /// Registries that refused a blob sent whole in the commit `PUT` (405): their uploads
    /// always `PATCH` the bytes first.
    pub(super) no_monolithic: Mutex<std::collections::HashSet<String>>,
}

pub(super) fn http_client(
    insecure: bool,
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    stall: Duration,
) -> Result<reqwest::Client, RegistryError> {
    crate::tls::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("kubectl-ko/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        // No read timeout: silence is measured by the watchdog of `transfer.rs`, which a
        // long upload or download that keeps moving never trips.
        .redirect(super::request::redirect_policy());
    // Sent data the peer does not acknowledge within the stall timeout ends the connection.
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    {
        builder = builder.tcp_user_timeout(stall);
    }
    #[cfg(not(any(target_os = "android", target_os = "fuchsia", target_os = "linux")))]
    let _ = stall;
    builder = if insecure {
        builder.tls_danger_accept_invalid_certs(true)
    } else {
        let tls = crate::tls::lazily_verifying(extra_roots).map_err(|e| RegistryError::Tls(e.to_string()))?;
        builder.use_preconfigured_tls(tls)
    };
    builder.build().map_err(|e| RegistryError::Tls(e.to_string()))
}

impl RegistryClient {
    /// A client for a whole run. Fails when a CA file cannot be read.
    pub fn new(keychain: Keychain, options: ClientOptions) -> Result<Self, RegistryError> {
        let stall = options.stall.unwrap_or(super::transfer::DEFAULT_STALL);
        let mut roots = Vec::new();
        for file in &options.ca_files {
            roots.extend(super::tls::load_pem(file)?);
        }
        roots.extend(options.env_roots.load());
        Ok(RegistryClient {
            secure: http_client(false, roots, stall)?,
            insecure: http_client(true, Vec::new(), stall)?,
            options,
            keychain,
            endpoints: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            stall,
            no_monolithic: Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// The HTTP client for an endpoint: the one that skips certificate checks, or not.
    pub(super) fn http(&self, insecure_tls: bool) -> &reqwest::Client {
        if insecure_tls { &self.insecure } else { &self.secure }
    }

    pub(super) fn client(&self, endpoint: &Endpoint) -> &reqwest::Client {
        self.http(endpoint.insecure_tls)
    }
}
