//! The roots every HTTPS client of the suite trusts (Mozilla's, so a bare container without a
//! CA bundle still works) and the one rustls crypto provider they use. Shared by the registry
//! client and the cloud credential sources, which sit side by side in the transport layer.

use std::path::Path;

/// Installs ring as rustls's process-wide provider (once; later calls do nothing).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Mozilla's roots.
pub fn builtin_roots() -> Vec<reqwest::Certificate> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der.as_ref()).ok())
        .collect()
}

/// The PEM certificates in a file. The error is a short cause, without the path, for the
/// caller to put in its own error naming the file and the setting it came from.
pub fn load_pem(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let certs = reqwest::Certificate::from_pem_bundle(&bytes).map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn mozillas_roots_are_built_in() {
        assert!(super::builtin_roots().len() > 100);
    }
}
