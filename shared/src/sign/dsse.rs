//! DSSE (Dead Simple Signing Envelope): the signature over an in-toto statement that cosign
//! checks for both signatures and attestations. The signature covers the pre-authentication
//! encoding (PAE) of the payload type and the payload, never the JSON around them.

use base64::Engine as _;
use serde::Serialize;

use super::{SignError, Signer};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The payload type of an in-toto statement.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// A signed envelope, serialised as the DSSE JSON form (base64 payload and signatures).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EnvelopeSignature {
    /// Empty key ids are left out, as cosign writes them.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    pub sig: String,
}

/// `DSSEv1 <len(type)> <type> <len(body)> <body>`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Signs `payload` of `payload_type` into an envelope.
pub fn sign(signer: &dyn Signer, payload_type: &str, payload: &[u8]) -> Result<Envelope, SignError> {
    let sig = signer.sign(&pae(payload_type, payload))?;
    Ok(Envelope {
        payload: B64.encode(payload),
        payload_type: payload_type.to_string(),
        signatures: vec![EnvelopeSignature { keyid: String::new(), sig: B64.encode(sig) }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_as_the_dsse_spec_writes_it() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }
}
