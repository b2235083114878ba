//! Private keys for signing: cosign's own format (`ENCRYPTED SIGSTORE PRIVATE KEY`, a JSON
//! document holding scrypt parameters and a NaCl secretbox that seals a PKCS#8 key) and a
//! plain PKCS#8 PEM (`PRIVATE KEY`), or a PKCS#1 RSA key (`RSA PRIVATE KEY`). ECDSA P-256
//! (what `cosign generate-key-pair` makes), ECDSA P-384, RSA (2048 to 4096 bits) and Ed25519
//! are taken, each signing as cosign signs with it (`cosign import-key-pair` takes all four):
//! ECDSA and RSA (PKCS#1 v1.5) over a SHA-256 digest, Ed25519 over the message itself, which
//! is what `cosign verify --key` checks by default.
//! The password is never echoed: errors name the key file, not what was typed.

use std::path::Path;

use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use p384::ecdsa::signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
use p384::pkcs8::DecodePrivateKey as _;
use ring::rand::SystemRandom;
use ring::rsa::KeyPair as RsaKeyPair;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, UnparsedPublicKey,
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

/// The DER prefix of a P-384 `SubjectPublicKeyInfo` before its 97-byte uncompressed point.
const P384_SPKI_PREFIX: [u8; 23] = [
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00,
    0x22, 0x03, 0x62, 0x00,
];

/// The DER prefix of an Ed25519 `SubjectPublicKeyInfo` before its 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// The DER `AlgorithmIdentifier` of an RSA `SubjectPublicKeyInfo`: rsaEncryption, NULL
/// parameters (as Go's `x509.MarshalPKIXPublicKey` writes it, which cosign's key hint hashes).
const RSA_ALGORITHM: [u8; 15] =
    [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];

/// A key read from a file: ECDSA P-256 or P-384 (ASN.1 DER signatures over a SHA-256 digest,
/// as cosign), RSA PKCS#1 v1.5 with SHA-256, or Ed25519.
pub struct KeySigner {
    pair: Pair,
    rng: SystemRandom,
}

enum Pair {
    Ecdsa(EcdsaKeyPair),
    P384(p384::ecdsa::SigningKey),
    Rsa(RsaKeyPair),
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
        let der = match label.as_str() {
            "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
                let password = password.ok_or_else(|| SignError::NoPassword { path: path.to_path_buf() })?;
                open_sealed(path, &der, password)?
            }
            "PRIVATE KEY" => der,
            "RSA PRIVATE KEY" => {
                let pair = RsaKeyPair::from_der(&der).map_err(|e| {
                    bad(path, format!("not an RSA key of 2048 to 4096 bits that kubectl-ko can sign with ({e})"))
                })?;
                return Ok(KeySigner { pair: Pair::Rsa(pair), rng: SystemRandom::new() });
            }
            other => {
                return Err(bad(
                    path,
                    format!(
                        "a \"{other}\" PEM block is not supported; use a cosign key (cosign import-key-pair makes one from yours) or an unencrypted PKCS#8 key (\"PRIVATE KEY\": openssl pkcs8 -topk8 -nocrypt)"
                    ),
                ));
            }
        };
        let rng = SystemRandom::new();
        let pair = if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der, &rng) {
            Pair::Ecdsa(pair)
        } else if let Ok(pair) = RsaKeyPair::from_pkcs8(&der) {
            Pair::Rsa(pair)
        } else if let Ok(key) = p384::ecdsa::SigningKey::from_pkcs8_der(&der) {
            Pair::P384(key)
        } else if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
            Pair::Ed25519(pair)
        } else {
            return Err(bad(
                path,
                "not a PKCS#8 key kubectl-ko can sign with: ECDSA P-256 or P-384, RSA of 2048 to 4096 bits, or Ed25519 (cosign generate-key-pair makes a P-256 key)".into(),
            ));
        };
        Ok(KeySigner { pair, rng })
    }

    /// The public key as cosign writes it in `cosign.pub` (DER `SubjectPublicKeyInfo`).
    pub fn public_key_der(&self) -> Vec<u8> {
        match &self.pair {
            Pair::Ecdsa(pair) => [&P256_SPKI_PREFIX[..], pair.public_key().as_ref()].concat(),
            Pair::P384(key) => [&P384_SPKI_PREFIX[..], key.verifying_key().to_encoded_point(false).as_bytes()].concat(),
            Pair::Rsa(pair) => {
                // The key goes in a BIT STRING with no unused bits.
                let bits = der_tlv(0x03, &[&[0u8][..], pair.public().as_ref()].concat());
                der_tlv(0x30, &[&RSA_ALGORITHM[..], &bits].concat())
            }
            Pair::Ed25519(pair) => [&ED25519_SPKI_PREFIX[..], pair.public_key().as_ref()].concat(),
        }
    }
}

impl Signer for KeySigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.pair {
            Pair::Ecdsa(pair) => Ok(pair.sign(&self.rng, message).map_err(|_| SignError::Signing)?.as_ref().to_vec()),
            Pair::P384(key) => {
                let signature: p384::ecdsa::Signature =
                    key.sign_prehash(&Sha256::digest(message)).map_err(|_| SignError::Signing)?;
                Ok(signature.to_der().as_bytes().to_vec())
            }
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature).map_err(|_| SignError::Signing)?;
                Ok(signature)
            }
            Pair::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let ring_verifies = |algorithm: &'static dyn ring::signature::VerificationAlgorithm, public: &[u8]| {
            UnparsedPublicKey::new(algorithm, public).verify(message, signature).is_ok()
        };
        match &self.pair {
            Pair::Ecdsa(pair) => ring_verifies(&ECDSA_P256_SHA256_ASN1, pair.public_key().as_ref()),
            Pair::P384(key) => p384::ecdsa::Signature::from_der(signature).is_ok_and(|signature| {
                key.verifying_key().verify_prehash(&Sha256::digest(message), &signature).is_ok()
            }),
            Pair::Rsa(pair) => ring_verifies(&RSA_PKCS1_2048_8192_SHA256, pair.public().as_ref()),
            Pair::Ed25519(pair) => ring_verifies(&ED25519, pair.public_key().as_ref()),
        }
    }

    /// A bundle made with a key carries only a hint: the SHA-256 of the public key's DER.
    fn verification_material(&self) -> serde_json::Value {
        let hint = B64.encode(Sha256::digest(self.public_key_der()));
        serde_json::json!({ "publicKey": { "hint": hint } })
    }
}

/// A DER element: `tag`, the length (short or long form), `content`.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
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

    /// Keys openssl made (`genpkey`, and `rsa -traditional` for PKCS#1), each with the public
    /// key openssl derived from it: our `SubjectPublicKeyInfo` must be the same bytes, since
    /// cosign's key hint is a digest of them.
    #[test]
    fn rsa_and_p384_keys_sign_and_give_openssls_public_key() {
        let rsa_pub = include_str!("testdata/rsa.pub");
        let cases = [
            (include_str!("testdata/rsa.key"), rsa_pub),
            (include_str!("testdata/rsa-pkcs1.key"), rsa_pub),
            (include_str!("testdata/p384.key"), include_str!("testdata/p384.pub")),
        ];
        for (key, public) in cases {
            let (_dir, path) = write(key);
            let signer = KeySigner::load(&path, None).unwrap();
            assert_eq!(signer.public_key_der(), pem(public).unwrap().1, "{}", &key[..40]);
            let signature = signer.sign(b"message").unwrap();
            assert!(signer.verifies(b"message", &signature));
            assert!(!signer.verifies(b"massage", &signature));
        }
    }

    #[test]
    fn an_unsupported_pem_block_names_the_conversion() {
        let (_dir, path) = write("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n");
        let text = KeySigner::load(&path, None).unwrap_err().to_string();
        assert!(text.contains("EC PRIVATE KEY") && text.contains("openssl pkcs8 -topk8"), "{text}");
    }

    #[test]
    fn rejects_what_is_not_a_key() {
        let (_dir, path) = write("hello");
        assert!(matches!(KeySigner::load(&path, None), Err(SignError::BadKey { .. })));
    }
}
