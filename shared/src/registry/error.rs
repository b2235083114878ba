//! Registry errors: each names the registry, the repository and what was being done.

use super::transfer::after_attempts;
use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No connection could be made: refused, DNS, TLS or connect timeout (`hint` says which fix).
    #[error("cannot reach registry {registry} ({detail}) {}; {hint}", after_attempts(*.attempts))]
    Unreachable { registry: String, detail: String, attempts: u32, hint: String },
    /// The registry was reached, but the transfer failed: reset, closed early, or silent.
    #[error("{operation} on {registry}/{repository}: {detail} {}", after_attempts(*.attempts))]
    Transfer { registry: String, repository: String, operation: String, detail: String, attempts: u32, stalled: bool },
    #[error("{operation} on {registry}/{repository}: access denied ({status}{message}); {hint}")]
    Denied { registry: String, repository: String, operation: String, status: u16, message: String, hint: String },
    #[error("{operation} on {registry}/{repository}: registry answered {status}{message} {}", after_attempts(*.attempts))]
    Status { registry: String, repository: String, operation: String, status: u16, message: String, attempts: u32 },
    /// A download kept arriving with another digest than asked for: the registry holds
    /// corrupt bytes under that digest.
    #[error("{operation} on {registry}/{repository}: the registry sent content with digest {got}, not {expected} {}", after_attempts(*.attempts))]
    WrongContent {
        registry: String,
        repository: String,
        operation: String,
        expected: Digest,
        got: Digest,
        attempts: u32,
    },
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
    #[error(
        "{}={value:?} is not a number of seconds; set it to a positive number (the default is 30), or unset it",
        super::transfer::STALL_TIMEOUT_ENV
    )]
    StallTimeout { value: String },
}

impl RegistryError {
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Denied { status, .. } | RegistryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the answer means "not there": a 404, or a 403 that does not say access was
    /// denied (Artifactory answers 403 for a manifest or tag it does not have). A 403 coded
    /// `DENIED` or `UNAUTHORIZED` is a real refusal.
    pub fn is_absent(&self) -> bool {
        match self.status() {
            Some(404) => true,
            Some(403) => !matches!(self.code(), Some("DENIED" | "UNAUTHORIZED")),
            _ => false,
        }
    }

    /// The registry's error code (`DIGEST_INVALID`), when it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            RegistryError::Status { message, .. } | RegistryError::Denied { message, .. } => message
                .strip_prefix(": ")?
                .split(':')
                .next()
                .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')),
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
    // One line of a readable length, whatever the registry sent.
    const MESSAGE_MAX: usize = 300;
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => {
            let message = e.errors[0].message.split_whitespace().collect::<Vec<_>>().join(" ");
            let message = match message.char_indices().nth(MESSAGE_MAX) {
                Some((cut, _)) => format!("{}…", &message[..cut]),
                None => message,
            };
            format!(": {}: {message}", e.errors[0].code)
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() || text.len() > 200 { String::new() } else { format!(": {}", text.replace('\n', " ")) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(status: u16, message: &str) -> RegistryError {
        RegistryError::Denied {
            registry: "r".into(),
            repository: "p".into(),
            operation: "fetching manifest x".into(),
            status,
            message: message.into(),
            hint: String::new(),
        }
    }

    #[test]
    fn a_403_is_absent_unless_it_says_access_was_denied() {
        assert!(denied(404, ": MANIFEST_UNKNOWN: manifest unknown").is_absent());
        assert!(denied(403, "").is_absent());
        assert!(denied(403, ": MANIFEST_UNKNOWN: not found").is_absent());
        assert!(!denied(403, ": DENIED: requested access to the resource is denied").is_absent());
        assert!(!denied(401, ": UNAUTHORIZED: authentication required").is_absent());
    }

    #[test]
    fn a_registry_message_is_one_line_of_a_readable_length() {
        let body = |message: &str| format!(r#"{{"errors":[{{"code":"UNKNOWN","message":{message:?}}}]}}"#);
        assert_eq!(body_message(body("two\nlines").as_bytes()), ": UNKNOWN: two lines");
        let long = body_message(body(&"é".repeat(5000)).as_bytes());
        assert_eq!(long.chars().count(), ": UNKNOWN: ".len() + 300 + 1, "{long}");
        assert!(long.ends_with('…'));
        assert_eq!(body_message(&[b'x'; 500]), "", "a long plain body says nothing");
    }
}
