//! The registry client: endpoint discovery (`GET /v2/`), authentication, bounded retries, and
//! the handful of distribution API calls ko needs: manifests, blob HEAD, mount, streamed upload
//! and download. One client serves a whole run, so tokens are fetched once per scope.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use tokio::sync::OnceCell;

use super::challenge::{Challenge, TokenResponse};
use super::error::{RegistryError, body_message};
use super::reference::{Repository, is_plain_http_by_default};
use super::request::{MAX_ATTEMPTS, retry_delay};
use super::transfer::{self, Failure};
use crate::auth::{Credential, FoundCredential, Keychain};
use crate::digest::Digest;
use crate::image::manifest::ACCEPT_MANIFESTS;
use crate::output;

#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Allow plain HTTP and skip certificate checks for every registry.
    pub insecure: bool,
    /// PEM files of extra trusted roots (`--registry-ca-file`, `SSL_CERT_FILE`).
    pub ca_files: Vec<PathBuf>,
}

type TokenSlot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

/// A bearer token and when it stops being worth sending.
struct CachedToken {
    value: String,
    renew_after: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

/// Where a blob's bytes come from when uploading.
pub enum BlobBody<'a> {
    File(&'a Path),
    Bytes(bytes::Bytes),
}

pub struct FetchedManifest {
    pub bytes: bytes::Bytes,
    pub media_type: String,
    pub digest: Digest,
}

pub(super) struct Endpoint {
    pub(super) registry: String,
    pub(super) base: String,
    insecure_tls: bool,
    pub(super) challenge: Challenge,
    pub(super) credential: Option<FoundCredential>,
}

pub struct RegistryClient {
    secure: reqwest::Client,
    insecure: reqwest::Client,
    options: ClientOptions,
    keychain: Keychain,
    endpoints: Mutex<HashMap<String, Arc<OnceCell<Arc<Endpoint>>>>>,
    /// One slot per (registry, scope): concurrent requests wait for one token fetch.
    tokens: Mutex<HashMap<(String, String), TokenSlot>>,
    /// How long a request may go without progress (see `transfer.rs`).
    pub(super) stall: Duration,
}

pub(super) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn http_client(
    insecure: bool,
    extra_roots: Vec<reqwest::Certificate>,
    stall: Duration,
) -> Result<reqwest::Client, RegistryError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("kubectl-ko/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        // No read timeout: silence is measured by the watchdog of `transfer.rs`, which a
        // long upload or download that keeps moving never trips.
        .redirect(super::request::redirect_policy());
    // Sent data the peer does not acknowledge within the stall timeout ends the connection.
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    {
        builder = builder.tcp_user_timeout(stall);
    }
    #[cfg(not(any(target_os = "android", target_os = "fuchsia", target_os = "linux")))]
    let _ = stall;
    builder = if insecure {
        builder.tls_danger_accept_invalid_certs(true)
    } else {
        builder.tls_certs_merge(super::tls::builtin_roots().into_iter().chain(extra_roots))
    };
    builder.build().map_err(|e| RegistryError::Tls(e.to_string()))
}

pub(super) fn location_of(base: &str, response: &reqwest::Response) -> Option<String> {
    let loc = response.headers().get(LOCATION)?.to_str().ok()?;
    Some(if loc.starts_with("http://") || loc.starts_with("https://") {
        loc.to_string()
    } else {
        format!("{base}{loc}")
    })
}

pub(super) fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

impl RegistryClient {
    /// A client for a whole run. Fails when a CA file cannot be read.
    pub fn new(keychain: Keychain, options: ClientOptions) -> Result<Self, RegistryError> {
        let stall = super::transfer::stall_timeout_from_env().map_err(|value| RegistryError::StallTimeout { value })?;
        let mut roots = Vec::new();
        for file in &options.ca_files {
            roots.extend(super::tls::load_pem(file)?);
        }
        Ok(RegistryClient {
            secure: http_client(false, roots, stall)?,
            insecure: http_client(true, Vec::new(), stall)?,
            options,
            keychain,
            endpoints: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            stall,
        })
    }

    pub(super) fn client(&self, endpoint: &Endpoint) -> &reqwest::Client {
        if endpoint.insecure_tls { &self.insecure } else { &self.secure }
    }

    pub(super) async fn endpoint(&self, registry: &str) -> Result<Arc<Endpoint>, RegistryError> {
        let cell = self.endpoints.lock().expect("endpoint lock").entry(registry.to_string()).or_default().clone();
        cell.get_or_try_init(|| self.discover(registry)).await.cloned()
    }

    /// Finds the scheme that answers and what authentication `/v2/` asks for. Loopback and
    /// private registries, and every registry with `--insecure-registry`, are tried over
    /// HTTPS first and then plain HTTP, as ko does; a candidate that fails moves on to the
    /// next at once, and only the last one is retried.
    async fn discover(&self, registry: &str) -> Result<Arc<Endpoint>, RegistryError> {
        let api_host = if registry == super::reference::DOCKER_HUB { "registry-1.docker.io" } else { registry };
        let insecure = self.options.insecure;
        let candidates: &[(&str, bool)] = if insecure {
            &[("https", true), ("http", true)]
        } else if is_plain_http_by_default(registry) {
            &[("https", false), ("http", false)]
        } else {
            &[("https", false)]
        };
        let mut errors: Vec<String> = Vec::new();
        let mut failures: Vec<Failure> = Vec::new();
        let mut attempts = 0;
        for (index, &(scheme, insecure_tls)) in candidates.iter().enumerate() {
            let last_candidate = index + 1 == candidates.len();
            let base = format!("{scheme}://{api_host}");
            let client = if insecure_tls { &self.insecure } else { &self.secure };
            let tries = if last_candidate { MAX_ATTEMPTS - 1 } else { 1 };
            for attempt in 1..=tries {
                attempts += 1;
                match transfer::send(client.get(format!("{base}/v2/")), self.stall).await {
                    Ok(response) if response.status() == StatusCode::BAD_REQUEST && scheme == "http" => {
                        // An HTTPS server answering plain HTTP; the HTTPS error says why it failed.
                        errors.push(format!("{base} answered 400 Bad Request (it speaks HTTPS)"));
                        break;
                    }
                    Ok(response) => {
                        let challenge = if response.status() == StatusCode::UNAUTHORIZED {
                            response
                                .headers()
                                .get(WWW_AUTHENTICATE)
                                .and_then(|v| v.to_str().ok())
                                .and_then(Challenge::parse)
                                .unwrap_or(Challenge::Basic)
                        } else {
                            Challenge::None
                        };
                        // Helpers are only run for registries that ask for credentials.
                        let credential = match challenge {
                            Challenge::None => None,
                            _ => self.keychain.lookup(registry).await?,
                        };
                        match &credential {
                            Some(found) => {
                                output::detail(format!("{registry}: using credentials from {}", found.source))
                            }
                            None if challenge != Challenge::None => {
                                output::detail(format!("{registry}: no credentials found, trying anonymously"))
                            }
                            None => {}
                        }
                        return Ok(Arc::new(Endpoint {
                            registry: registry.to_string(),
                            base,
                            insecure_tls,
                            challenge,
                            credential,
                        }));
                    }
                    Err(failure) => {
                        let detail = format!("{base}: {}", failure.describe());
                        let give_up = matches!(failure, Failure::BadUrl(_));
                        failures.push(failure);
                        if attempt == tries || give_up {
                            errors.push(detail);
                            if give_up {
                                break;
                            }
                        } else {
                            tokio::time::sleep(retry_delay(attempt, None)).await;
                        }
                    }
                }
            }
        }
        let detail = errors.join("; ");
        // A certificate problem is what to fix even when plain HTTP was tried after it.
        let hint = match failures.iter().find(|f| matches!(f, Failure::Tls(_))) {
            Some(tls) if !insecure => tls.hint(),
            _ => failures.last().map_or("check the registry", Failure::hint),
        };
        Err(RegistryError::Unreachable { registry: registry.to_string(), detail, attempts, hint: hint.to_string() })
    }

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
                _ => None,
            }),
            Challenge::Bearer { realm, service } => {
                let key = (endpoint.registry.clone(), scope.to_string());
                let slot = self.tokens.lock().expect("token lock").entry(key).or_default().clone();
                let mut cached = slot.lock().await;
                if let Some(token) = cached.as_ref() {
                    let header = format!("Bearer {}", token.value);
                    let fresh = token.renew_after.is_none_or(|at| Instant::now() < at);
                    if fresh && refused != Some(header.as_str()) {
                        return Ok(Some(header));
                    }
                }
                let fetched_at = Instant::now();
                let (token, expires_in) = self.fetch_token(endpoint, realm, service.as_deref(), scope).await?;
                // Renew a little before the service says the token expires.
                let renew_after = expires_in.map(|secs| fetched_at + Duration::from_secs(secs.saturating_sub(10)));
                let header = format!("Bearer {token}");
                *cached = Some(CachedToken { value: token, renew_after });
                Ok(Some(header))
            }
        }
    }

    async fn fetch_token(
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
        let response = transfer::send(request, self.stall).await.map_err(|e| fail(e.describe()))?;
        let status = response.status();
        let body = transfer::read_body(response, self.stall).await.map_err(|e| fail(e.describe()))?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                registry: endpoint.registry.clone(),
                detail: format!("the token service {realm} answered {status}{}", body_message(&body)),
                hint: credential_hint(&endpoint.registry, endpoint.credential.as_ref()),
            });
        }
        if !status.is_success() {
            let source = endpoint.credential.as_ref().map(|c| c.source.as_str()).unwrap_or("no credentials found");
            return Err(fail(format!("{status}{} (credentials: {source})", body_message(&body))));
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| fail(format!("unreadable token response: {e}")))?;
        let expires_in = parsed.expires_in;
        let token = parsed.into_token().ok_or_else(|| fail("the token response holds no token".into()))?;
        Ok((token, expires_in))
    }

    /// Checks that the registry accepts the keychain's credentials (`GET /v2/` with them, after
    /// a token exchange when the registry uses tokens). `false` when it asks for none.
    pub async fn check_login(&self, registry: &str) -> Result<bool, RegistryError> {
        let endpoint = self.endpoint(registry).await?;
        let authorization = match &endpoint.challenge {
            Challenge::None => return Ok(false),
            Challenge::Basic => self.authorization(&endpoint, "", None).await?,
            Challenge::Bearer { realm, service } => {
                let (token, _) = self.fetch_token(&endpoint, realm, service.as_deref(), "").await?;
                Some(format!("Bearer {token}"))
            }
        };
        let mut request = self.client(&endpoint).get(format!("{}/v2/", endpoint.base));
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let response = transfer::send(request, self.stall).await.map_err(|e| RegistryError::Unreachable {
            registry: registry.to_string(),
            detail: e.describe(),
            attempts: 1,
            hint: e.hint().to_string(),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(true);
        }
        let body = transfer::read_body(response, self.stall).await.unwrap_or_default();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                registry: registry.to_string(),
                detail: format!("the registry answered {status}{}", body_message(&body)),
                hint: credential_hint(registry, endpoint.credential.as_ref()),
            });
        }
        Err(RegistryError::Status {
            registry: registry.to_string(),
            repository: String::new(),
            operation: "checking credentials".into(),
            status: status.as_u16(),
            message: body_message(&body),
            attempts: 1,
        })
    }

    /// True when the repository already holds the manifest with this digest (a registry
    /// only stores a manifest whose blobs it has, so nothing of it needs pushing).
    pub async fn manifest_exists(&self, repo: &Repository, digest: &Digest) -> Result<bool, RegistryError> {
        let path = format!("/v2/{}/manifests/{digest}", repo.path);
        self.exists(repo, &path, &format!("checking manifest {digest}"), Some(&ACCEPT_MANIFESTS.join(", "))).await
    }

    pub async fn blob_exists(&self, repo: &Repository, digest: &Digest) -> Result<bool, RegistryError> {
        let path = format!("/v2/{}/blobs/{digest}", repo.path);
        self.exists(repo, &path, &format!("checking blob {digest}"), None).await
    }

    /// `HEAD` of a path in the repository: true when found, false when not.
    async fn exists(
        &self,
        repo: &Repository,
        path: &str,
        operation: &str,
        accept: Option<&str>,
    ) -> Result<bool, RegistryError> {
        let scope = Self::scope(repo, Access::Push, None);
        let (response, attempts) = self
            .execute(repo, &scope, operation, &|c, base, _| {
                let request = c.head(format!("{base}{path}"));
                match accept {
                    Some(accept) => request.header(ACCEPT, accept),
                    None => request,
                }
            })
            .await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.fail(repo, operation, response, attempts).await),
        }
    }

    /// Asks the registry to link a blob from another repository; `false` when it declined.
    pub async fn mount_blob(
        &self,
        repo: &Repository,
        from: &Repository,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let operation = format!("mounting blob {digest} from {}", from.path);
        let scope = Self::scope(repo, Access::Push, Some(from));
        let path = format!("/v2/{}/blobs/uploads/?mount={digest}&from={}", repo.path, from.path);
        let (response, attempts) =
            self.execute(repo, &scope, &operation, &|c, base, _| c.post(format!("{base}{path}"))).await?;
        match response.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => Ok(false), // an upload session we leave to expire
            _ => Err(self.fail(repo, &operation, response, attempts).await),
        }
    }

    pub async fn put_manifest(
        &self,
        repo: &Repository,
        identifier: &str,
        media_type: &str,
        bytes: &bytes::Bytes,
    ) -> Result<(), RegistryError> {
        self.put_manifest_with_subject(repo, identifier, media_type, bytes).await.map(|_| ())
    }

    /// Pushes a manifest and tells whether the registry answered with an `OCI-Subject` header,
    /// i.e. whether it indexes the manifest's `subject` for the referrers API (OCI 1.1).
    pub async fn put_manifest_with_subject(
        &self,
        repo: &Repository,
        identifier: &str,
        media_type: &str,
        bytes: &bytes::Bytes,
    ) -> Result<bool, RegistryError> {
        let operation = format!("pushing manifest {identifier}");
        let scope = Self::scope(repo, Access::Push, None);
        let path = format!("/v2/{}/manifests/{identifier}", repo.path);
        let mut round = 1;
        loop {
            let (response, attempts) = self
                .execute(repo, &scope, &operation, &|c, base, _| {
                    c.put(format!("{base}{path}")).header(CONTENT_TYPE, media_type).body(bytes.clone())
                })
                .await?;
            if response.status().is_success() {
                return Ok(response.headers().contains_key("oci-subject"));
            }
            let error = self.fail(repo, &operation, response, attempts).await;
            // Registries store a manifest as a blob too, and two processes pushing the same
            // one at once can meet the same race as blob uploads: the same PUT again settles it.
            if error.code() != Some("DIGEST_INVALID") || round >= super::upload::MAX_SESSIONS {
                return Err(error);
            }
            output::detail(format!("{}: {operation}: {error}; pushing it again", repo.registry));
            tokio::time::sleep(super::request::retry_delay(round, None) + super::upload::jitter()).await;
            round += 1;
        }
    }
}

/// What to tell a user whose credentials a registry refused, naming where they came from.
pub(super) fn credential_hint(registry: &str, credential: Option<&FoundCredential>) -> String {
    match credential {
        Some(c) => format!("the registry refused the credentials from {}", c.source),
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

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {

    use super::*;

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
}
