//! The roots every HTTPS client of the suite trusts (the system's, and Mozilla's, so a bare
//! container without a CA bundle still works) and the one rustls crypto provider they use.
//! Shared by the registry client and the cloud credential sources, which sit side by side in
//! the transport layer.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Installs ring as rustls's process-wide provider (once; later calls do nothing).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Mozilla's roots.
fn builtin_roots() -> Vec<CertificateDer<'static>> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec()
}

/// The PEM certificates in a file. The error is a short cause, without the path, for the
/// caller to put in its own error naming the file and the setting it came from.
pub fn load_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let certs = CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

/// A TLS configuration that checks servers as reqwest's own does (the system's verifier,
/// `rustls-platform-verifier`, trusting the system's roots, Mozilla's and `extra`), except
/// that the verifier is made when the first certificate arrives: it reads the system's whole
/// CA directory, a sixth of a run that finds nothing to build, and a run against a registry
/// on this machine never gets a certificate (its HTTPS try meets a plain-HTTP answer).
pub fn lazily_verifying(extra: Vec<CertificateDer<'static>>) -> Result<rustls::ClientConfig, rustls::Error> {
    install_crypto_provider();
    let provider =
        CryptoProvider::get_default().cloned().unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let mut roots = builtin_roots();
    roots.extend(extra.iter().cloned());
    let verifier = LazyVerifier { roots, trusted: extra, provider: provider.clone(), made: OnceLock::new() };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // As reqwest offers them over TCP with HTTP/2 on.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The system's verifier, made on first use; every check is its, but for a server whose
/// certificate is one the user trusts by name (see [`LazyVerifier::verify_server_cert`]).
#[derive(Debug)]
struct LazyVerifier {
    roots: Vec<CertificateDer<'static>>,
    /// The certificates given with `--registry-ca-file` or `SSL_CERT_FILE`.
    trusted: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
    made: OnceLock<Result<rustls_platform_verifier::Verifier, rustls::Error>>,
}

impl LazyVerifier {
    fn verifier(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.made
            .get_or_init(|| {
                rustls_platform_verifier::Verifier::new_with_extra_roots(
                    self.roots.iter().cloned(),
                    self.provider.clone(),
                )
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for LazyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.verifier()?.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        match verified {
            // A self-signed registry certificate the user trusts itself, made as Docker's
            // registry guide makes it (OpenSSL 3 marks it CA:TRUE, which webpki refuses as a
            // server's certificate: CaUsedAsEndEntity): accepted, as Go (ko) accepts a leaf that
            // is in the trusted pool, when it names the server. The handshake's signature is
            // still checked against its key.
            Err(_) if self.trusted.iter().any(|t| t.as_ref() == end_entity.as_ref()) => {
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls13_signature(message, cert, dss)
    }

    /// The provider's, which is what the system's verifier answers on Linux (webpki's over the
    /// same provider). Asked for every handshake's first message, so not a reason to make the
    /// verifier: a registry on loopback is tried over HTTPS first and answers in plain HTTP,
    /// ending the handshake before any certificate is seen.
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mozillas_roots_are_built_in() {
        assert!(super::builtin_roots().len() > 100);
    }

    #[test]
    fn the_verifier_is_made_at_the_first_certificate_not_with_the_configuration() {
        let config = super::lazily_verifying(Vec::new()).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        let verifier = super::LazyVerifier {
            roots: Vec::new(),
            trusted: Vec::new(),
            provider: std::sync::Arc::new(rustls::crypto::ring::default_provider()),
            made: std::sync::OnceLock::new(),
        };
        use rustls::client::danger::ServerCertVerifier as _;
        let made = rustls_platform_verifier::Verifier::new_with_extra_roots([], verifier.provider.clone()).unwrap();
        assert_eq!(verifier.supported_verify_schemes(), made.supported_verify_schemes());
        assert!(verifier.made.get().is_none());
        let name = rustls::pki_types::ServerName::try_from("registry.example").unwrap();
        let garbage = rustls::pki_types::CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        let now = rustls::pki_types::UnixTime::now();
        assert!(verifier.verify_server_cert(&garbage, &[], &name, &[], now).is_err());
        assert!(verifier.made.get().is_some_and(|made| made.is_ok()));
    }
}
