//! Which certificates the registry client trusts: the system's roots, Mozilla's roots (so a
//! bare container without a CA bundle still works), and extra roots for registries with a
//! private or self-signed CA: `--registry-ca-file` and `SSL_CERT_FILE`.

use std::path::{Path, PathBuf};

use super::RegistryError;
use crate::settings::Environment;

/// The extra roots the environment names, as Go's TLS reads them: `SSL_CERT_FILE`, and the
/// files in each directory of `SSL_CERT_DIR` (colon-separated). Unlike `--registry-ca-file`
/// they are set for every program on the machine, so, as Go does, what cannot be read is
/// left out rather than failing the run: with a warning for the file, silently for the
/// directories (which hold other files too: hash links, revocation lists).
#[derive(Clone, Debug, Default)]
pub struct EnvRoots {
    pub file: Option<PathBuf>,
    pub dir_files: Vec<PathBuf>,
}

impl EnvRoots {
    pub fn from_env(env: &Environment) -> EnvRoots {
        let mut dir_files = Vec::new();
        for dir in env.text("SSL_CERT_DIR").unwrap_or_default().split(':').filter(|d| !d.is_empty()) {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            let mut found: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
            found.sort();
            dir_files.extend(found);
        }
        EnvRoots { file: env.path("SSL_CERT_FILE"), dir_files }
    }

    pub fn load(&self) -> Vec<rustls::pki_types::CertificateDer<'static>> {
        let mut roots = Vec::new();
        if let Some(file) = &self.file {
            match crate::tls::load_pem(file) {
                Ok(certs) => roots.extend(certs),
                Err(detail) => crate::output::warn(format!(
                    "SSL_CERT_FILE={}: {detail}; left out, as Go's programs leave it out",
                    file.display()
                )),
            }
        }
        for file in &self.dir_files {
            roots.extend(crate::tls::load_pem(file).unwrap_or_default());
        }
        roots
    }
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

    #[test]
    fn the_environments_roots_are_read_as_go_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).unwrap();
        // PEM framing is all that is read here (the verifier checks the certificate).
        std::fs::write(certs.join("ca.pem"), "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n")
            .unwrap();
        std::fs::write(certs.join("README"), "not a certificate").unwrap();
        let missing = dir.path().join("missing.pem").display().to_string();
        let dirs = format!("{}:/nonexistent", certs.display());
        let env = Environment::from_pairs([("SSL_CERT_FILE", missing.as_str()), ("SSL_CERT_DIR", dirs.as_str())]);
        let roots = EnvRoots::from_env(&env);
        assert_eq!(roots.dir_files.len(), 2);
        assert_eq!(roots.load().len(), 1, "the missing file and the README are left out");
    }
}
