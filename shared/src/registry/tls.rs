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
pub fn load_pem(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, RegistryError> {
    crate::tls::load_pem(path).map_err(|detail| RegistryError::CaFile { path: path.to_path_buf(), detail })
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
    }
}
