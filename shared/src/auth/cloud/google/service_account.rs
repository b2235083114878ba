//! A service account key file (`"type": "service_account"`): a JWT assertion signed RS256
//! with the file's private key, exchanged at its `token_uri` for an access token (Google's
//! "OAuth 2.0 for server to server applications" flow, RFC 7523). The key is read from PEM
//! (PKCS#8, or PKCS#1 as older tools wrote it) with `ring`; it never leaves this module.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::json;

use super::adc::Fields;
use super::token::{self, AccessToken, SCOPE, error};
use crate::auth::{AuthError, Secret};

/// Where a key file without `token_uri` exchanges its assertion.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How long an assertion is good for: Google accepts at most an hour.
const LIFETIME: i64 = 3600;

#[derive(Debug)]
pub struct ServiceAccount {
    pub file: PathBuf,
    pub client_email: String,
    private_key: Secret,
    private_key_id: Option<String>,
    pub token_uri: String,
}

impl ServiceAccount {
    pub fn from_fields(fields: &Fields) -> Result<ServiceAccount, AuthError> {
        Ok(ServiceAccount {
            file: fields.file.to_path_buf(),
            client_email: fields.required("client_email")?.to_string(),
            private_key: Secret::new(fields.required("private_key")?),
            private_key_id: fields.optional("private_key_id")?.map(str::to_string),
            token_uri: fields.optional("token_uri")?.unwrap_or(DEFAULT_TOKEN_URI).to_string(),
        })
    }

    /// An access token for the account.
    pub async fn fetch(&self, client: &reqwest::Client) -> Result<AccessToken, AuthError> {
        let assertion = self.assertion(crate::time::now_unix())?;
        let request =
            token::form_post(client, &self.token_uri, &[("grant_type", JWT_BEARER), ("assertion", assertion.expose())]);
        let refused =
            format!("the token service at {} refused the service account {}", self.token_uri, self.client_email);
        let answer = token::send(request, &self.token_uri, &refused).await?;
        token::access_token(&answer, &self.token_uri)
    }

    /// The signed JWT `header.claims.signature` asking for [`SCOPE`], issued at `now`.
    pub fn assertion(&self, now: i64) -> Result<Secret, AuthError> {
        let key = self.key_pair()?;
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": self.client_email, "scope": SCOPE, "aud": self.token_uri, "iat": now, "exp": now + LIFETIME,
        });
        let encode = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let signing_input = format!("{}.{}", encode(header), encode(claims));
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signing_input.as_bytes(), &mut signature)
            .map_err(|_| error(format!("signing with the private_key in {} failed", self.file.display())))?;
        Ok(Secret::new(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))))
    }

    fn key_pair(&self) -> Result<RsaKeyPair, AuthError> {
        let bad =
            |why: String| error(format!("the private_key in {} is not a usable RSA key: {why}", self.file.display()));
        let (label, der) = pem(self.private_key.expose()).map_err(|why| bad(why.to_string()))?;
        match label.as_str() {
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            other => return Err(bad(format!("it is a PEM {other}, not a PRIVATE KEY"))),
        }
        .map_err(|rejected| bad(rejected.to_string()))
    }
}

/// The label and bytes of the first PEM block in `text`.
fn pem(text: &str) -> Result<(String, Vec<u8>), &'static str> {
    let start = text.find("-----BEGIN ").ok_or("it has no -----BEGIN line")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let (label, rest) = rest.split_once("-----").ok_or("its -----BEGIN line is not closed")?;
    let end = format!("-----END {label}-----");
    let body = &rest[..rest.find(&end).ok_or("it has no matching -----END line")?];
    let base64: String = body.split_whitespace().collect();
    let der = STANDARD.decode(base64).map_err(|_| "its PEM body is not base64")?;
    Ok((label.to_string(), der))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use ring::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use serde_json::Value;

    use super::*;

    const KEY: &str = include_str!("testdata/test-key.pem");
    const KEY_PKCS1: &str = include_str!("testdata/test-key-pkcs1.pem");

    fn account(key: &str) -> ServiceAccount {
        let file = json!({
            "type": "service_account", "client_email": "ko@kotest.iam.gserviceaccount.com",
            "private_key": key, "private_key_id": "k1", "token_uri": "https://t.example/token",
        });
        ServiceAccount::from_fields(&Fields { value: &file, file: Path::new("/k.json") }).unwrap()
    }

    fn part(jwt: &str, n: usize) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(n).unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn the_assertion_is_signed_rs256_with_the_documented_claims() {
        for key in [KEY, KEY_PKCS1] {
            let jwt = account(key).assertion(1_700_000_000).unwrap();
            let jwt = jwt.expose();
            assert_eq!(part(jwt, 0), json!({"alg": "RS256", "typ": "JWT", "kid": "k1"}));
            let claims = json!({
                "iss": "ko@kotest.iam.gserviceaccount.com", "scope": SCOPE, "aud": "https://t.example/token",
                "iat": 1_700_000_000, "exp": 1_700_003_600,
            });
            assert_eq!(part(jwt, 1), claims);
            let (input, signature) = jwt.rsplit_once('.').unwrap();
            let public = account(KEY).key_pair().unwrap().public_key().as_ref().to_vec();
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
                .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(signature).unwrap())
                .expect("the signature verifies with the key's public half");
        }
    }

    #[test]
    fn a_bad_private_key_says_so_without_showing_it() {
        let err = |key: &str| account(key).assertion(0).err().unwrap().to_string();
        assert_eq!(
            err("nonsense"),
            "Google: the private_key in /k.json is not a usable RSA key: it has no -----BEGIN line"
        );
        let garbled = KEY.replace("MII", "!!!");
        assert!(err(&garbled).ends_with("its PEM body is not base64"));
        let truncated = "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADAN\n-----END PRIVATE KEY-----\n";
        let message = err(truncated);
        assert!(message.starts_with("Google: the private_key in /k.json is not a usable RSA key: "), "{message}");
        assert!(!message.contains("MIIBVQIBADAN"));
        assert!(err("-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----").contains("PEM CERTIFICATE"));
    }

    #[test]
    fn the_token_uri_defaults_to_googles() {
        let file = json!({"type": "service_account", "client_email": "e", "private_key": KEY});
        let sa = ServiceAccount::from_fields(&Fields { value: &file, file: Path::new("/k.json") }).unwrap();
        assert_eq!((sa.token_uri.as_str(), sa.private_key_id.as_deref()), (DEFAULT_TOKEN_URI, None));
        assert!(!format!("{sa:?}").contains("PRIVATE"), "Debug hides the key");
    }
}
