//! The HTTPS client of the cloud sources: Mozilla's roots plus `SSL_CERT_FILE` (and, for AWS,
//! `AWS_CA_BUNDLE`, which the AWS SDKs trust), bounded timeouts, made on first use (most runs
//! never talk to a cloud). Token services and metadata
//! servers are small JSON endpoints, so this client has none of the registry client's
//! transfer machinery.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use super::super::AuthError;
use crate::settings::Environment;

/// How long a token service may take to connect and to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct CloudHttp {
    /// Extra roots: (the variable that named the file, the file).
    ca_files: Vec<(&'static str, PathBuf)>,
    client: OnceLock<Result<reqwest::Client, String>>,
}

impl CloudHttp {
    /// A client trusting the PEM files named by `SSL_CERT_FILE` and by each of `ca_vars`.
    pub fn new(env: &Environment, ca_vars: &[&'static str]) -> CloudHttp {
        let vars = std::iter::once("SSL_CERT_FILE").chain(ca_vars.iter().copied());
        let ca_files = vars.filter_map(|var| env.path(var).map(|file| (var, file))).collect();
        CloudHttp { ca_files, client: OnceLock::new() }
    }

    /// The client; `provider` names the source in the error when it cannot be made (an
    /// unreadable `SSL_CERT_FILE`).
    pub fn client(&self, provider: &'static str) -> Result<&reqwest::Client, AuthError> {
        self.client
            .get_or_init(|| self.build())
            .as_ref()
            .map_err(|detail| AuthError::Cloud { provider, detail: detail.clone() })
    }

    fn build(&self) -> Result<reqwest::Client, String> {
        let mut roots = Vec::new();
        for (var, file) in &self.ca_files {
            let extra =
                crate::tls::load_pem(file).map_err(|e| format!("{var} {}: {e}; fix or unset it", file.display()))?;
            roots.extend(extra);
        }
        let tls = crate::tls::lazily_verifying(roots).map_err(|e| format!("making an HTTPS client: {e}"))?;
        reqwest::Client::builder()
            .user_agent(concat!("kubectl-ko/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TIMEOUT)
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|e| format!("making an HTTPS client: {e}"))
    }
}
