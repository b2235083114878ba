//! Which certificates the registry client trusts: the system's roots, Mozilla's roots (so a
//! bare container without a CA bundle still works), and extra roots for registries with a
//! private or self-signed CA: `--registry-ca-file` and `SSL_CERT_FILE`.

use std::path::{Path, PathBuf};

use super::RegistryError;
use crate::settings::Environment;

/// The CA files to trust: the flag's, then `SSL_CERT_FILE` when set.
pub fn ca_files_with_env(flag_files: &[PathBuf], env: &Environment) -> Vec<PathBuf> {
    let mut files = flag_files.to_vec();
    if let Some(file) = env.path("SSL_CERT_FILE") {
        files.push(file);
    }
    files
}

/// Reads PEM certificates from a file; an unreadable file or one without a certificate is
/// an error that names it.
pub fn load_pem(path: &Path) -> Result<Vec<reqwest::Certificate>, RegistryError> {
    let bad = |detail: String| RegistryError::CaFile { path: path.to_path_buf(), detail };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&bytes).map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into()));
    }
    Ok(certs)
}

/// Mozilla's roots, as DER.
pub fn builtin_roots() -> Vec<reqwest::Certificate> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der.as_ref()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ca_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = load_pem(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here").unwrap();
        let err = load_pem(&empty).unwrap_err().to_string();
        assert!(err.contains("empty.pem") && err.contains("no PEM certificate"), "{err}");
        assert!(builtin_roots().len() > 100);
    }
}
