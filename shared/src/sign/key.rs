//! Private keys for signing: cosign's own format (`ENCRYPTED SIGSTORE PRIVATE KEY`, a JSON
//! document holding scrypt parameters and a NaCl secretbox that seals a PKCS#8 key) and a
//! plain PKCS#8 PEM (`PRIVATE KEY`). ECDSA P-256 (what `cosign generate-key-pair` makes) and
//! Ed25519 are taken: `cosign verify --key` checks DSSE envelopes made with either.
//! The password is never echoed: errors name the key file, not what was typed.

use std::path::Path;

use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::{SignError, Signer};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The DER prefix of a P-256 `SubjectPublicKeyInfo` before its 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The DER prefix of an Ed25519 `SubjectPublicKeyInfo` before its 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// A key read from a file: ECDSA P-256 signing with SHA-256 (ASN.1 DER signatures, as cosign),
/// or Ed25519.
pub struct KeySigner {
    pair: Pair,
    rng: SystemRandom,
}

enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySigner { .. }")
    }
}

/// cosign's sealed key: `{"kdf": {...}, "cipher": {...}, "ciphertext": "..."}`.
#[derive(Deserialize)]
struct Sealed {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct KdfParams {
    N: u64,
    r: u32,
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

impl KeySigner {
    /// Reads the key at `path`; `password` opens cosign's encrypted form (`COSIGN_PASSWORD`).
    pub fn load(path: &Path, password: Option<&str>) -> Result<KeySigner, SignError> {
        let text = fs_err::read_to_string(path).map_err(|e| bad(path, format!("cannot read it: {e}")))?;
        let (label, der) = pem(&text).ok_or_else(|| bad(path, "it is not a PEM file".into()))?;
        let pkcs8 = match label.as_str() {
            "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
                let password = password.ok_or_else(|| SignError::NoPassword { path: path.to_path_buf() })?;
                open_sealed(path, &der, password)?
            }
            "PRIVATE KEY" => der,
            other => {
                return Err(bad(
                    path,
                    format!(
                        "a \"{other}\" PEM block is not supported; use a cosign key or an unencrypted PKCS#8 ECDSA P-256 key (\"PRIVATE KEY\")"
                    ),
                ));
            }
        };
        let rng = SystemRandom::new();
        let pair = match EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &rng) {
            Ok(pair) => Pair::Ecdsa(pair),
            Err(e) => Pair::Ed25519(Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).map_err(|_| {
                bad(path, format!("not an ECDSA P-256 or Ed25519 PKCS#8 key ({e}); kubectl-ko signs with those only (cosign generate-key-pair makes a P-256 key)"))
            })?),
        };
        Ok(KeySigner { pair, rng })
    }

    /// The public key as cosign writes it in `cosign.pub` (DER `SubjectPublicKeyInfo`).
    pub fn public_key_der(&self) -> Vec<u8> {
        let (prefix, key): (&[u8], &[u8]) = match &self.pair {
            Pair::Ecdsa(pair) => (&P256_SPKI_PREFIX, pair.public_key().as_ref()),
            Pair::Ed25519(pair) => (&ED25519_SPKI_PREFIX, pair.public_key().as_ref()),
        };
        [prefix, key].concat()
    }
}

impl Signer for KeySigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.pair {
            Pair::Ecdsa(pair) => Ok(pair.sign(&self.rng, message).map_err(|_| SignError::Signing)?.as_ref().to_vec()),
            Pair::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let result = match &self.pair {
            Pair::Ecdsa(pair) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, pair.public_key().as_ref()).verify(message, signature)
            }
            Pair::Ed25519(pair) => {
                UnparsedPublicKey::new(&ED25519, pair.public_key().as_ref()).verify(message, signature)
            }
        };
        result.is_ok()
    }

    /// A bundle made with a key carries only a hint: the SHA-256 of the public key's DER.
    fn verification_material(&self) -> serde_json::Value {
        let hint = B64.encode(Sha256::digest(self.public_key_der()));
        serde_json::json!({ "publicKey": { "hint": hint } })
    }
}

fn bad(path: &Path, detail: String) -> SignError {
    SignError::BadKey { path: path.to_path_buf(), detail }
}

/// The label and the decoded body of the first PEM block.
fn pem(text: &str) -> Option<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + 5;
    let end = rest.find(&format!("-----END {label}-----"))?;
    let body: String = rest[body_start..end].chars().filter(|c| !c.is_whitespace()).collect();
    Some((label, B64.decode(body).ok()?))
}

/// Opens cosign's sealed key: scrypt derives the secretbox key from the password.
fn open_sealed(path: &Path, json: &[u8], password: &str) -> Result<Vec<u8>, SignError> {
    let sealed: Sealed =
        serde_json::from_slice(json).map_err(|e| bad(path, format!("not a cosign encrypted key: {e}")))?;
    if sealed.kdf.name != "scrypt" || sealed.cipher.name != "nacl/secretbox" {
        return Err(bad(path, format!("unknown encryption {}/{}", sealed.kdf.name, sealed.cipher.name)));
    }
    let decode = |field: &str, value: &str| B64.decode(value).map_err(|e| bad(path, format!("{field}: {e}")));
    let (salt, nonce) = (decode("salt", &sealed.kdf.salt)?, decode("nonce", &sealed.cipher.nonce)?);
    let ciphertext = decode("ciphertext", &sealed.ciphertext)?;
    let params = &sealed.kdf.params;
    let log_n = params.N.checked_ilog2().filter(|l| 1u64 << l == params.N && *l < 64);
    let params = log_n
        .and_then(|log_n| scrypt::Params::new(log_n as u8, params.r, params.p, 32).ok())
        .ok_or_else(|| bad(path, "bad scrypt parameters".into()))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password.as_bytes(), &salt, &params, &mut key).map_err(|_| bad(path, "scrypt failed".into()))?;
    if nonce.len() != 24 {
        return Err(bad(path, "the nonce is not 24 bytes".into()));
    }
    let cipher = XSalsa20Poly1305::new(&key.into());
    cipher
        .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
        .map_err(|_| SignError::WrongPassword { path: path.to_path_buf() })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A key `cosign generate-key-pair` wrote with COSIGN_PASSWORD=pw, and its cosign.pub.
    const COSIGN_KEY: &str = include_str!("testdata/cosign.key");
    const COSIGN_PUB: &str = include_str!("testdata/cosign.pub");

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cosign.key");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn opens_a_cosign_key_and_derives_its_public_key() {
        let (_dir, path) = write(COSIGN_KEY);
        let signer = KeySigner::load(&path, Some("pw")).unwrap();
        let (label, der) = pem(COSIGN_PUB).unwrap();
        assert_eq!(label, "PUBLIC KEY");
        assert_eq!(signer.public_key_der(), der);
        assert!(!signer.sign(b"message").unwrap().is_empty());
    }

    #[test]
    fn a_wrong_password_is_one_clear_error_without_the_password() {
        let (_dir, path) = write(COSIGN_KEY);
        let err = KeySigner::load(&path, Some("not-the-secret")).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, SignError::WrongPassword { .. }), "{text}");
        assert!(!text.contains("not-the-secret") && !text.contains('\n'), "{text}");
        assert!(matches!(KeySigner::load(&path, None), Err(SignError::NoPassword { .. })));
    }

    #[test]
    fn rejects_what_is_not_a_key() {
        let (_dir, path) = write("hello");
        assert!(matches!(KeySigner::load(&path, None), Err(SignError::BadKey { .. })));
    }
}
