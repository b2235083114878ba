//! in-toto v1 statements: a subject (an image or index by its sha256 digest), a predicate
//! type and a predicate. A cosign v3 signature is itself such a statement with the predicate
//! type `https://sigstore.dev/cosign/sign/v1` and an empty predicate; provenance and SBOM
//! attestations carry their documents as the predicate.

use serde_json::{Value, json};

use crate::digest::Digest;

pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// The predicate type of a cosign v3 image signature.
pub const COSIGN_SIGN: &str = "https://sigstore.dev/cosign/sign/v1";
/// SLSA provenance v1 (`cosign verify-attestation --type slsaprovenance1`).
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// SPDX (`--type spdxjson`) and CycloneDX (`--type cyclonedx`), as cosign names them.
pub const SPDX: &str = "https://spdx.dev/Document";
pub const CYCLONEDX: &str = "https://cyclonedx.org/bom";

/// The statement about the image `subject` (named `name`, its repository, when given).
pub fn statement(name: Option<&str>, subject: &Digest, predicate_type: &str, predicate: Value) -> Vec<u8> {
    let mut entry = json!({ "digest": { "sha256": subject.hex() } });
    if let Some(name) = name {
        entry["name"] = Value::String(name.to_string());
    }
    let statement = json!({
        "_type": STATEMENT_V1,
        "subject": [entry],
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    serde_json::to_vec(&statement).expect("a JSON value serialises")
}

/// The predicate type an attached SBOM is attested with, by its media type.
pub fn sbom_predicate_type(media_type: &str) -> &'static str {
    if media_type.contains("cyclonedx") { CYCLONEDX } else { SPDX }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_statement_names_the_digest_only() {
        let digest = Digest::of(b"image");
        let value: Value = serde_json::from_slice(&statement(None, &digest, COSIGN_SIGN, json!({}))).unwrap();
        assert_eq!(value["subject"][0]["digest"]["sha256"], digest.hex());
        assert!(value["subject"][0].get("name").is_none());
        assert_eq!(value["predicateType"], COSIGN_SIGN);
    }
}
