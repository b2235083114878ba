//! Signing images and attesting how they were built, so that the real `cosign verify` and
//! `cosign verify-attestation` accept them: keys (`key`), DSSE envelopes (`dsse`), in-toto
//! statements (`statement`), the SLSA provenance predicate (`provenance`) and the artifacts
//! they are stored as (`bundle`). Signing sits behind the [`Signer`] trait, so that keyless
//! signing (Fulcio, Rekor) can be added beside [`key::KeySigner`]. It reads the key file and
//! does no other I/O: pushing is `crate::publish`'s, and findings about cosign's storage are in `docs/signing.md`.

pub mod bundle;
pub mod dsse;
pub mod key;
pub mod provenance;
pub mod statement;

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::image::Sbom;
use crate::image::manifest::Descriptor;
use bundle::Attachment;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{path}: {detail}")]
    BadKey { path: PathBuf, detail: String },
    #[error("{path}: wrong password (COSIGN_PASSWORD does not open this key)")]
    WrongPassword { path: PathBuf },
    #[error("{path}: the key is encrypted; set COSIGN_PASSWORD to its password")]
    NoPassword { path: PathBuf },
    /// A key error with where the key was named: `--sign-key`, `KO_SIGN_KEY` or `.ko.yaml`.
    #[error("{origin} {source}")]
    Key { origin: String, source: Box<SignError> },
    #[error("signing failed")]
    Signing,
}

/// Something that signs bytes and says how a verifier finds its public half.
pub trait Signer: Send + Sync {
    /// A signature over `message` (for ECDSA, ASN.1 DER over its SHA-256).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;
    /// Whether `signature` over `message` was made with this signer's key.
    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool;
    /// The bundle's `verificationMaterial` (a key hint; for keyless, a certificate and log entry).
    fn verification_material(&self) -> Value;
}

/// How a run signs.
#[derive(Clone)]
pub struct SignSettings {
    pub signer: Arc<dyn Signer>,
    /// `--sign-legacy-tags`: also the `sha256-<hex>.sig` and `.att` tags cosign 2 reads.
    pub legacy_tags: bool,
}

impl std::fmt::Debug for SignSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignSettings").field("legacy_tags", &self.legacy_tags).finish_non_exhaustive()
    }
}

/// What is attached to one image or index in `repository`: its signature, its provenance
/// (when given) and its SBOM attestation (when it has an SBOM), as referrers; with legacy
/// tags, the same again in the tag form.
pub fn attachments(
    settings: &SignSettings,
    repository: &str,
    subject: &Descriptor,
    provenance: Option<&Value>,
    sbom: Option<&Sbom>,
) -> Result<Vec<Attachment>, SignError> {
    let signer = &*settings.signer;
    let envelope = |predicate_type: &str, predicate: Value, name: Option<&str>| {
        let payload = statement::statement(name, &subject.digest, predicate_type, predicate);
        dsse::sign(signer, dsse::IN_TOTO, &payload)
    };
    let referrer = |env: &dsse::Envelope, predicate_type: &str, what| {
        bundle::referrer(bundle::bundle_json(env, signer.verification_material()), predicate_type, subject, what)
    };
    let signature = envelope(statement::COSIGN_SIGN, json!({}), None)?;
    let mut out = vec![referrer(&signature, statement::COSIGN_SIGN, "signature")];
    let mut attested = Vec::new();
    if let Some(predicate) = provenance {
        let env = envelope(statement::SLSA_PROVENANCE_V1, predicate.clone(), Some(repository))?;
        out.push(referrer(&env, statement::SLSA_PROVENANCE_V1, "SLSA provenance"));
        attested.push((statement::SLSA_PROVENANCE_V1, env));
    }
    if let Some(sbom) = sbom {
        let document: Value = serde_json::from_slice(&sbom.bytes).unwrap_or(Value::Null);
        let predicate_type = statement::sbom_predicate_type(sbom.media_type);
        let env = envelope(predicate_type, document, Some(repository))?;
        out.push(referrer(&env, predicate_type, "SBOM attestation"));
        attested.push((predicate_type, env));
    }
    if settings.legacy_tags {
        out.extend(legacy(signer, repository, subject, &attested)?);
    }
    Ok(out)
}

/// The `.sig` and `.att` tags of cosign 2 and earlier.
fn legacy(
    signer: &dyn Signer,
    repository: &str,
    subject: &Descriptor,
    attested: &[(&str, dsse::Envelope)],
) -> Result<Vec<Attachment>, SignError> {
    let payload = bundle::simple_signing_payload(repository, &subject.digest);
    let sig = base64::engine::general_purpose::STANDARD.encode(signer.sign(&payload)?);
    let mut out = vec![bundle::legacy_signature(&subject.digest, payload, sig)];
    if !attested.is_empty() {
        let envelopes: Vec<(&str, &dsse::Envelope)> = attested.iter().map(|(t, e)| (*t, e)).collect();
        out.push(bundle::legacy_attestations(&subject.digest, &envelopes));
    }
    Ok(out)
}
