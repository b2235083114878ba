//! Registry errors: each names the registry, the repository and what was being done.

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "cannot reach registry {registry} ({detail}) after {attempts} attempts; check the address, or start the registry"
    )]
    Unreachable { registry: String, detail: String, attempts: u32 },
    #[error("{operation} on {registry}/{repository}: access denied ({status}{message}); {hint}")]
    Denied { registry: String, repository: String, operation: String, status: u16, message: String, hint: String },
    #[error("{operation} on {registry}/{repository}: registry answered {status}{message} after {attempts} attempts")]
    Status { registry: String, repository: String, operation: String, status: u16, message: String, attempts: u32 },
    #[error("{operation} on {registry}/{repository}: {detail}")]
    Protocol { registry: String, repository: String, operation: String, detail: String },
    #[error("{operation} on {registry}: reading {path}: {source}")]
    File { registry: String, operation: String, path: std::path::PathBuf, source: std::io::Error },
    #[error("{registry}: unauthorized: {detail}; {hint}")]
    Unauthorized { registry: String, detail: String, hint: String },
    #[error("getting a token for {registry} from {realm}: {detail}")]
    Token { registry: String, realm: String, detail: String },
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error("CA file {path}: {detail}; pass a PEM file with --registry-ca-file or SSL_CERT_FILE")]
    CaFile { path: std::path::PathBuf, detail: String },
    #[error("setting up TLS: {0}")]
    Tls(String),
}

impl RegistryError {
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Denied { status, .. } | RegistryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Formats the first entry of a registry's JSON error body as `: CODE: message`.
pub fn body_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => format!(": {}: {}", e.errors[0].code, e.errors[0].message),
        _ => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() || text.len() > 200 { String::new() } else { format!(": {}", text.replace('\n', " ")) }
        }
    }
}
