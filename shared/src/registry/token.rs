//! Credentials on the wire: the scope a request needs, the `Authorization` header for it
//! (basic, or a bearer token fetched from the challenge's realm, cached per registry and
//! scope, renewed before it expires and fetched anew when the registry refuses it). A token
//! cached for a wider scope serves a narrower one: a pull of a repository this run pushes to
//! needs no token of its own.

use std::time::{Duration, Instant};

use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use super::challenge::{Challenge, TokenResponse};
use super::client::Access;
use super::endpoint::Endpoint;
use super::error::{RegistryError, body_message};
use super::request::with_query;
use super::transfer::{self, Failure, MAX_ATTEMPTS, after_attempts, is_retryable, retry_delay};
use super::{RegistryClient, Repository};
use crate::auth::{Credential, FoundCredential};

/// A scope's token, or how getting it failed: once a token service has failed every attempt,
/// the requests that waited on it get that error instead of asking again, each in turn.
pub(super) type TokenSlot = std::sync::Arc<tokio::sync::Mutex<Option<Result<CachedToken, TokenFailure>>>>;

/// Why a token could not be had: the realm asked and what went wrong.
pub(super) struct TokenFailure {
    realm: String,
    detail: String,
}

/// A bearer token and when it stops being worth sending.
pub(super) struct CachedToken {
    value: String,
    renew_after: Option<Instant>,
}

impl CachedToken {
    /// `Bearer <token>`, while the token is fresh.
    fn header(&self) -> Option<String> {
        let fresh = self.renew_after.is_none_or(|at| Instant::now() < at);
        fresh.then(|| format!("Bearer {}", self.value))
    }
}

/// True when every `type:name:actions` item of `wanted` is granted by an item of `held` for
/// the same resource with at least those actions.
fn scope_covers(held: &str, wanted: &str) -> bool {
    fn items(scope: &str) -> impl Iterator<Item = (&str, &str)> {
        scope.split(' ').filter(|item| !item.is_empty()).map(|item| item.rsplit_once(':').unwrap_or((item, "")))
    }
    items(wanted).all(|(resource, actions)| {
        items(held).any(|(r, a)| r == resource && actions.split(',').all(|action| a.split(',').any(|x| x == action)))
    })
}

impl RegistryClient {
    pub(super) fn scope(repository: &Repository, access: Access, mount_from: Option<&Repository>) -> String {
        let actions = match access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        };
        let mut scope = format!("repository:{}:{actions}", repository.path);
        if let Some(from) = mount_from.filter(|f| f.path != repository.path) {
            scope.push_str(&format!(" repository:{}:pull", from.path));
        }
        scope
    }

    /// The `Authorization` header for a request. `refused` is the header the registry just
    /// answered 401 to: a bearer token is then fetched anew, unless another request already did.
    pub(super) async fn authorization(
        &self,
        endpoint: &Endpoint,
        scope: &str,
        refused: Option<&str>,
    ) -> Result<Option<String>, RegistryError> {
        match &endpoint.challenge {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(match endpoint.credential.as_ref().map(|c| &c.credential) {
                Some(Credential::Basic { username, password }) => {
                    let raw = format!("{username}:{}", password.expose());
                    Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw)))
                }
                Some(Credential::RegistryToken(token)) => Some(format!("Bearer {}", token.expose())),
                _ => None,
            }),
            Challenge::Bearer { .. }
                if let Some(Credential::RegistryToken(token)) = endpoint.credential.as_ref().map(|c| &c.credential) =>
            {
                Ok(Some(format!("Bearer {}", token.expose())))
            }
            Challenge::Bearer { realm, service } => {
                let key = (endpoint.registry.clone(), scope.to_string());
                let slot = self.tokens.lock().expect("token lock").entry(key).or_default().clone();
                let mut cached = slot.lock().await;
                if let Some(Err(TokenFailure { realm, detail })) = cached.as_ref() {
                    let (realm, detail) = (realm.clone(), detail.clone());
                    return Err(RegistryError::Token { registry: endpoint.registry.clone(), realm, detail });
                }
                let fresh = cached.as_ref().and_then(|c| c.as_ref().ok()).and_then(CachedToken::header);
                if let Some(header) = fresh.filter(|h| refused != Some(h)) {
                    return Ok(Some(header));
                }
                // A token asked for a wider scope (a push token for a pull) serves as well: a
                // token service grants what it allows of what is asked, so it holds no less.
                if let Some(header) = self.covering_token(&endpoint.registry, scope).filter(|h| refused != Some(h)) {
                    return Ok(Some(header));
                }
                let fetched_at = Instant::now();
                let (token, expires_in) = match self.fetch_token(endpoint, realm, service.as_deref(), scope).await {
                    Ok(fetched) => fetched,
                    Err(RegistryError::Token { registry, realm, detail }) => {
                        *cached = Some(Err(TokenFailure { realm: realm.clone(), detail: detail.clone() }));
                        return Err(RegistryError::Token { registry, realm, detail });
                    }
                    Err(e) => return Err(e),
                };
                // Renew a little before the service says the token expires.
                // Renewed 10 s before it expires, or at half its life when it lives shorter
                // than 20 s (the spec asks for 60 s at least; some services give less).
                let renew_after = expires_in.map(|secs| fetched_at + renew_margin(secs));
                let header = format!("Bearer {token}");
                *cached = Some(Ok(CachedToken { value: token, renew_after }));
                Ok(Some(header))
            }
        }
    }

    /// The header of a fresh token cached for `registry` under another scope that covers
    /// `scope`; a slot being filled right now is passed over.
    fn covering_token(&self, registry: &str, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().expect("token lock");
        tokens
            .iter()
            .filter(|((r, s), _)| r == registry && s != scope && scope_covers(s, scope))
            .find_map(|(_, slot)| slot.try_lock().ok()?.as_ref()?.as_ref().ok()?.header())
    }

    pub(super) async fn fetch_token(
        &self,
        endpoint: &Endpoint,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, Option<u64>), RegistryError> {
        let fail = |detail: String| RegistryError::Token {
            registry: endpoint.registry.clone(),
            realm: realm.to_string(),
            detail,
        };
        let realm_is_safe = realm_may_receive_credentials(realm, &endpoint.base);
        let client = self.client(endpoint);
        let mut request = match endpoint.credential.as_ref().map(|c| &c.credential) {
            Some(Credential::IdentityToken(token)) => {
                if !realm_is_safe {
                    return Err(fail(
                        "refusing to send credentials to a token service over plain HTTP on another host".into(),
                    ));
                }
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.expose()),
                    ("client_id", "kubectl-ko"),
                ];
                if !scope.is_empty() {
                    form.push(("scope", scope));
                }
                if let Some(s) = service {
                    form.push(("service", s));
                }
                let body: String =
                    form.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&");
                client.post(realm).header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(body)
            }
            other => {
                let mut url = realm.to_string();
                if let Some(s) = service {
                    url = with_query(&url, "service", &urlencode(s));
                }
                for part in scope.split(' ').filter(|p| !p.is_empty()) {
                    url = with_query(&url, "scope", &urlencode(part));
                }
                let mut request = client.get(url);
                if let Some(Credential::Basic { username, password }) = other {
                    if !realm_is_safe {
                        return Err(fail(
                            "refusing to send credentials to a token service over plain HTTP on another host".into(),
                        ));
                    }
                    request = request.basic_auth(username, Some(password.expose()));
                }
                request
            }
        };
        request = request.header(ACCEPT, "application/json");
        // A token service that fails for a moment is tried again, as every registry request is.
        let mut attempt = 1;
        let (status, body) = loop {
            let this = request.try_clone().expect("a token request has no streamed body");
            let outcome = match transfer::send(this, self.stall).await {
                Ok(response) if is_retryable(response.status()) && attempt < MAX_ATTEMPTS => {
                    tokio::time::sleep(retry_delay(attempt, Some(&response))).await;
                    attempt += 1;
                    continue;
                }
                Ok(response) => {
                    let status = response.status();
                    transfer::read_body(response, self.stall, transfer::TOKEN_MAX).await.map(|body| (status, body))
                }
                Err(failure) => Err(failure),
            };
            match outcome {
                Ok(answer) => break answer,
                Err(failure)
                    if attempt < MAX_ATTEMPTS && !matches!(failure, Failure::BadUrl(_) | Failure::TooLarge(_)) =>
                {
                    tokio::time::sleep(retry_delay(attempt, None)).await;
                    attempt += 1;
                }
                Err(failure) => return Err(fail(format!("{} {}", failure.describe(), after_attempts(attempt)))),
            }
        };
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                registry: endpoint.registry.clone(),
                detail: format!("the token service {realm} answered {status}{}", body_message(&body)),
                hint: credential_hint(&endpoint.registry, endpoint.credential.as_ref()),
            });
        }
        if !status.is_success() {
            let source = endpoint.credential.as_ref().map(|c| c.source.as_str()).unwrap_or("no credentials found");
            let tries = if is_retryable(status) { format!(" {}", after_attempts(attempt)) } else { String::new() };
            return Err(fail(format!("{status}{}{tries} (credentials: {source})", body_message(&body))));
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| fail(format!("unreadable token response: {e}")))?;
        let expires_in = parsed.expires_in;
        let token = parsed.into_token().ok_or_else(|| fail("the token response holds no token".into()))?;
        Ok((token, expires_in))
    }
}

/// What to tell a user whose credentials a registry refused, naming where they came from.
pub(super) fn credential_hint(registry: &str, credential: Option<&FoundCredential>) -> String {
    match credential {
        Some(c) => format!(
            "the registry refused the credentials from {}; check them, or log in again with `kubectl ko login {registry}`",
            c.source
        ),
        None => format!("no credentials found for {registry}; log in with `kubectl ko login {registry}`"),
    }
}

/// Credentials go to a token realm only over HTTPS, or to the registry's own host.
fn realm_may_receive_credentials(realm: &str, registry_base: &str) -> bool {
    let (Ok(realm), Ok(base)) = (reqwest::Url::parse(realm), reqwest::Url::parse(registry_base)) else {
        return false;
    };
    realm.scheme() == "https" || (realm.host_str().is_some() && realm.host_str() == base.host_str())
}

/// What a token request's query and form leave as they are: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes all but the unreserved characters (as `%XX`, upper case), byte by byte.
fn urlencode(value: &str) -> String {
    utf8_percent_encode(value, UNRESERVED).to_string()
}

/// How long after its fetch a token that lives `secs` seconds is renewed.
fn renew_margin(secs: u64) -> Duration {
    if secs >= 20 { Duration::from_secs(secs - 10) } else { Duration::from_millis(secs * 500) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_lived_tokens_are_used_for_half_their_life() {
        assert_eq!(renew_margin(300), Duration::from_secs(290));
        assert_eq!(renew_margin(20), Duration::from_secs(10));
        assert_eq!(renew_margin(3), Duration::from_millis(1500));
        assert_eq!(renew_margin(0), Duration::ZERO);
    }
    use crate::digest::Digest;
    use crate::registry::testing::{FakeRegistry, Reply, client_logged_in};

    #[test]
    fn credentials_go_to_token_realms_over_https_or_on_the_registry_host() {
        assert!(realm_may_receive_credentials("https://auth.example/token", "http://127.0.0.1:5000"));
        assert!(realm_may_receive_credentials("http://127.0.0.1:9000/token", "http://127.0.0.1:5000"));
        assert!(!realm_may_receive_credentials("http://127.0.0.10:9000/token", "http://127.0.0.1:5000"));
        assert!(!realm_may_receive_credentials("http://auth.example/token", "https://r.example"));
        assert!(!realm_may_receive_credentials("not a url", "https://r.example"));
    }

    #[test]
    fn scopes_ask_for_pull_on_a_mount_source() {
        let repo = Repository::parse("r.example/app").unwrap();
        let base = Repository::parse("r.example/base").unwrap();
        assert_eq!(RegistryClient::scope(&repo, Access::Pull, None), "repository:app:pull");
        assert_eq!(
            RegistryClient::scope(&repo, Access::Push, Some(&base)),
            "repository:app:pull,push repository:base:pull"
        );
        assert_eq!(RegistryClient::scope(&repo, Access::Push, Some(&repo)), "repository:app:pull,push");
    }

    /// What the hand-written encoder this replaced produced, byte for byte.
    fn old_urlencode(value: &str) -> String {
        value
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    #[test]
    fn token_requests_are_encoded_as_before() {
        assert_eq!(urlencode("repository:lib/app:pull,push"), "repository%3Alib%2Fapp%3Apull%2Cpush");
        assert_eq!(urlencode("registry.docker.io"), "registry.docker.io");
        assert_eq!(urlencode("a b+c&d=e?f#g%h~i_j-k"), "a%20b%2Bc%26d%3De%3Ff%23g%25h~i_j-k");
        assert_eq!(urlencode("ü/\u{7f}\u{1}"), "%C3%BC%2F%7F%01");
        let every_char: String = (1u32..0x800).filter_map(char::from_u32).collect();
        assert_eq!(urlencode(&every_char), old_urlencode(&every_char));
    }

    #[test]
    fn a_scope_covers_the_same_resources_with_fewer_actions() {
        let push = "repository:app:pull,push";
        assert!(scope_covers(push, "repository:app:pull"));
        assert!(scope_covers(push, push));
        assert!(scope_covers("repository:app:pull,push repository:base:pull", push));
        assert!(!scope_covers("repository:app:pull", push));
        assert!(!scope_covers(push, "repository:app:pull,push repository:base:pull"));
        assert!(!scope_covers("repository:application:pull,push", "repository:app:pull"));
        assert!(!scope_covers("registry:catalog:*", "repository:app:pull"));
    }

    /// A registry that asks for bearer tokens from its own `/token`, which hands out `tokens`
    /// in turn (valid for 300 s).
    async fn token_registry(tokens: &[&str]) -> FakeRegistry {
        let fake = FakeRegistry::start().await;
        let challenge = format!(r#"Bearer realm="{}/token",service="fake""#, fake.base());
        fake.route("GET", "/v2/", [Reply::status(401).header("www-authenticate", &challenge)]);
        let token = |t: &&str| Reply::status(200).body(format!(r#"{{"token":"{t}","expires_in":300}}"#));
        fake.route("GET", "/token", tokens.iter().map(token));
        fake
    }

    /// A registry or token service that answers 503 for a moment is tried again: the ping is not
    /// taken for "no authentication needed", and the token is fetched on the next attempt.
    #[tokio::test]
    async fn a_5xx_from_the_ping_or_the_token_service_is_retried() {
        let fake = FakeRegistry::start().await;
        let challenge = format!(r#"Bearer realm="{}/token",service="fake""#, fake.base());
        let unauthorized = Reply::status(401).header("www-authenticate", &challenge);
        fake.route("GET", "/v2/", [Reply::status(503), unauthorized]);
        let token = Reply::status(200).body(r#"{"token":"t1","expires_in":300}"#);
        fake.route("GET", "/token", [Reply::status(503), token]);
        let digest = Digest::of(b"blob");
        fake.route("HEAD", &format!("/v2/app/blobs/{digest}"), [Reply::status(200)]);

        let client = client_logged_in(&fake.host(), "user", "secret");
        let repo = Repository::parse(&format!("{}/app", fake.host())).unwrap();
        assert!(client.blob_exists(&repo, &digest).await.unwrap());
        assert_eq!(fake.requests_to("GET", "/v2/").len(), 2);
        let tokens = fake.requests_to("GET", "/token");
        assert_eq!(tokens.len(), 2);
        assert!(tokens[1].header("authorization").is_some_and(|a| a.starts_with("Basic ")), "{tokens:?}");
        let heads = fake.requests_to("HEAD", &format!("/v2/app/blobs/{digest}"));
        assert_eq!(heads[0].header("authorization"), Some("Bearer t1"));
    }

    /// A token service that fails every attempt is asked that many times in a run, not that
    /// many times again for each request that waited on the first.
    #[tokio::test]
    async fn a_token_service_that_keeps_failing_is_not_asked_again_in_the_run() {
        let fake = FakeRegistry::start().await;
        let challenge = format!(r#"Bearer realm="{}/token",service="fake""#, fake.base());
        fake.route("GET", "/v2/", [Reply::status(401).header("www-authenticate", &challenge)]);
        fake.route("GET", "/token", [Reply::status(503)]);
        let client = client_logged_in(&fake.host(), "user", "secret");
        let repo = Repository::parse(&format!("{}/app", fake.host())).unwrap();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let (first, second) = tokio::join!(client.blob_exists(&repo, &a), client.blob_exists(&repo, &b));
        for error in [first.unwrap_err(), second.unwrap_err()] {
            assert!(error.to_string().contains("503") && error.to_string().contains("after 4 attempts"), "{error}");
        }
        assert_eq!(fake.requests_to("GET", "/token").len(), 4);
    }

    /// A pull after a push to the same repository sends the push token: no second token.
    #[tokio::test]
    async fn a_push_token_serves_a_pull_of_the_same_repository() {
        let fake = token_registry(&["push", "other"]).await;
        let manifest = bytes::Bytes::from_static(br#"{"schemaVersion":2}"#);
        let media_type = "application/vnd.oci.image.manifest.v1+json";
        fake.route("PUT", "/v2/app/manifests/v1", [Reply::status(201)]);
        let found = Reply::status(200).header("content-type", media_type).body(manifest.clone());
        fake.route("GET", "/v2/app/manifests/v1", [found.clone()]);
        fake.route("GET", "/v2/other/manifests/v1", [found]);

        let client = client_logged_in(&fake.host(), "user", "secret");
        let app = Repository::parse(&format!("{}/app", fake.host())).unwrap();
        client.put_manifest(&app, "v1", media_type, &manifest).await.unwrap();
        let tag = |repository: &Repository| crate::reference::Reference {
            repository: repository.clone(),
            tag: Some("v1".into()),
            digest: None,
        };
        client.manifest(&tag(&app)).await.unwrap();
        let gets = fake.requests_to("GET", "/v2/app/manifests/v1");
        assert_eq!(gets[0].header("authorization"), Some("Bearer push"));
        assert_eq!(fake.requests_to("GET", "/token").len(), 1);
        // Another repository needs a token of its own.
        let other = Repository::parse(&format!("{}/other", fake.host())).unwrap();
        client.manifest(&tag(&other)).await.unwrap();
        let tokens = fake.requests_to("GET", "/token");
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[1].query.as_deref(), Some("service=fake&scope=repository%3Aother%3Apull"));
    }

    #[tokio::test]
    async fn a_bearer_challenge_fetches_a_token_and_a_refused_token_is_fetched_anew() {
        let fake = token_registry(&["t1", "t2"]).await;
        let digest = Digest::of(b"blob");
        let blob_path = format!("/v2/app/blobs/{digest}");
        fake.route("HEAD", &blob_path, [Reply::status(200)]);
        // The token expires mid-push: the manifest is refused once.
        fake.route("PUT", "/v2/app/manifests/v1", [Reply::status(401), Reply::status(201)]);

        let client = client_logged_in(&fake.host(), "user", "secret");
        let repo = Repository::parse(&format!("{}/app", fake.host())).unwrap();
        assert!(client.blob_exists(&repo, &digest).await.unwrap());
        let manifest = bytes::Bytes::from_static(b"{}");
        client.put_manifest(&repo, "v1", "application/vnd.oci.image.manifest.v1+json", &manifest).await.unwrap();

        let tokens = fake.requests_to("GET", "/token");
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0].query.as_deref(), Some("service=fake&scope=repository%3Aapp%3Apull%2Cpush"));
        assert_eq!(tokens[0].header("authorization"), Some("Basic dXNlcjpzZWNyZXQ="));
        let heads = fake.requests_to("HEAD", &blob_path);
        assert_eq!(heads[0].header("authorization"), Some("Bearer t1"));
        let puts = fake.requests_to("PUT", "/v2/app/manifests/v1");
        let sent: Vec<_> = puts.iter().map(|r| r.header("authorization").map(str::to_string)).collect();
        assert_eq!(sent, [Some("Bearer t1".to_string()), Some("Bearer t2".to_string())]);
    }
}
