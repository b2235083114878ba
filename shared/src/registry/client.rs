//! The registry client: endpoint discovery (`GET /v2/`), authentication, bounded retries, and
//! the handful of distribution API calls ko needs: manifests, blob HEAD, mount, streamed upload
//! and download. One client serves a whole run, so tokens are fetched once per scope.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;

use super::challenge::{Challenge, TokenResponse};
use super::error::{RegistryError, body_message};
use super::reference::{Reference, Repository, is_plain_http_by_default};
use crate::auth::{Credential, FoundCredential, Keychain};
use crate::digest::Digest;
use crate::image::manifest::{ACCEPT_MANIFESTS, sniff_media_type};
use crate::output::{self, Progress};

const MAX_ATTEMPTS: u32 = 4;

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
    registry: String,
    pub(super) base: String,
    insecure_tls: bool,
    challenge: Challenge,
    credential: Option<FoundCredential>,
}

pub struct RegistryClient {
    secure: reqwest::Client,
    insecure: reqwest::Client,
    options: ClientOptions,
    keychain: Keychain,
    endpoints: Mutex<HashMap<String, Arc<OnceCell<Arc<Endpoint>>>>>,
    /// One slot per (registry, scope): concurrent requests wait for one token fetch.
    tokens: Mutex<HashMap<(String, String), TokenSlot>>,
    /// What this run already knows or is finding out about blobs (see `known.rs`).
    pub(super) known: super::known::KnownBlobs,
}

/// Whether `url` has the scheme, host and port of the registry's `base` URL.
fn same_origin(url: &reqwest::Url, base: &str) -> bool {
    reqwest::Url::parse(base).is_ok_and(|base| {
        base.scheme() == url.scheme()
            && base.host_str() == url.host_str()
            && base.port_or_known_default() == url.port_or_known_default()
    })
}

fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn http_client(insecure: bool, extra_roots: Vec<reqwest::Certificate>) -> Result<reqwest::Client, RegistryError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("kubectl-ko/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        // A registry that accepts the connection and then stalls must not hang the run; the
        // timeout is between reads, so long uploads and downloads are not cut short.
        .read_timeout(Duration::from_secs(120));
    builder = if insecure {
        builder.tls_danger_accept_invalid_certs(true)
    } else {
        builder.tls_certs_merge(super::tls::builtin_roots().into_iter().chain(extra_roots))
    };
    builder.build().map_err(|e| RegistryError::Tls(describe(&e)))
}

/// Blobs up to this size are uploaded in the request that commits them.
const MONOLITHIC_MAX: u64 = 1024 * 1024;

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

fn retry_delay(attempt: u32, response: Option<&reqwest::Response>) -> Duration {
    let header = response
        .and_then(|r| r.headers().get(RETRY_AFTER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match header {
        Some(secs) => Duration::from_secs(secs.min(30)),
        None => Duration::from_millis(250 * 2u64.pow(attempt.saturating_sub(1))),
    }
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// The innermost cause of a transport error ("Connection refused (os error 111)"), which is
/// what a user can act on, with the URL when there is one.
fn describe(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if error.is_timeout() {
        return "timed out".to_string();
    }
    cause.to_string()
}

impl RegistryClient {
    /// A client for a whole run. Fails when a CA file cannot be read.
    pub fn new(keychain: Keychain, options: ClientOptions) -> Result<Self, RegistryError> {
        let mut roots = Vec::new();
        for file in &options.ca_files {
            roots.extend(super::tls::load_pem(file)?);
        }
        Ok(RegistryClient {
            secure: http_client(false, roots)?,
            insecure: http_client(true, Vec::new())?,
            options,
            keychain,
            endpoints: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            known: Default::default(),
        })
    }

    fn client(&self, endpoint: &Endpoint) -> &reqwest::Client {
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
        let mut attempts = 0;
        for (index, &(scheme, insecure_tls)) in candidates.iter().enumerate() {
            let last_candidate = index + 1 == candidates.len();
            let base = format!("{scheme}://{api_host}");
            let client = if insecure_tls { &self.insecure } else { &self.secure };
            let tries = if last_candidate { MAX_ATTEMPTS - 1 } else { 1 };
            for attempt in 1..=tries {
                attempts += 1;
                match client.get(format!("{base}/v2/")).send().await {
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
                    Err(e) => {
                        let detail = format!("{base}: {}", describe(&e));
                        if attempt == tries {
                            errors.push(detail);
                        } else {
                            tokio::time::sleep(retry_delay(attempt, None)).await;
                        }
                    }
                }
            }
        }
        let mut detail = errors.join("; ");
        if !insecure && (detail.contains("certificate") || detail.contains("Certificate")) {
            detail.push_str(
                "; trust the registry's CA with --registry-ca-file or SSL_CERT_FILE, or skip the check with --insecure-registry",
            );
        }
        Err(RegistryError::Unreachable { registry: registry.to_string(), detail, attempts })
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
    async fn authorization(
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
        let response = request.send().await.map_err(|e| fail(describe(&e)))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| fail(describe(&e)))?;
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

    /// Sends a request built by `build` (called again for each attempt), with authentication and
    /// retries on connection errors, 429 and 5xx. A 401 refreshes the token once.
    pub(super) async fn execute(
        &self,
        repository: &Repository,
        scope: &str,
        operation: &str,
        build: &(dyn Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder + Sync),
    ) -> Result<(reqwest::Response, u32), RegistryError> {
        let endpoint = self.endpoint(&repository.registry).await?;
        let client = self.client(&endpoint);
        let mut refused: Option<String> = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (http, request) = build(client, &endpoint.base).build_split();
            let mut request = request.map_err(|e| RegistryError::Unreachable {
                registry: repository.registry.clone(),
                detail: format!("{operation}: {}", describe(&e)),
                attempts: attempt,
            })?;
            // Credentials go only to the registry itself: an upload `Location` may name
            // another host (a storage backend), which must not see them.
            let authorization = if same_origin(request.url(), &endpoint.base) {
                self.authorization(&endpoint, scope, refused.as_deref()).await?
            } else {
                None
            };
            if let Some(mut value) =
                authorization.as_deref().and_then(|v| reqwest::header::HeaderValue::from_str(v).ok())
            {
                value.set_sensitive(true);
                request.headers_mut().insert(AUTHORIZATION, value);
            }
            match http.execute(request).await {
                Err(e) => {
                    if attempt >= MAX_ATTEMPTS {
                        return Err(RegistryError::Unreachable {
                            registry: repository.registry.clone(),
                            detail: format!("{operation}: {}", describe(&e)),
                            attempts: attempt,
                        });
                    }
                    tokio::time::sleep(retry_delay(attempt, None)).await;
                }
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED && refused.is_none() => {
                    // An expired or revoked token: fetch a new one, once.
                    if matches!(endpoint.challenge, Challenge::Bearer { .. }) && authorization.is_some() {
                        output::detail(format!("{}: token refused, fetching a new one", repository.registry));
                        refused = authorization;
                        continue;
                    }
                    return Ok((response, attempt));
                }
                Ok(response) if is_retryable(response.status()) && attempt < MAX_ATTEMPTS => {
                    tokio::time::sleep(retry_delay(attempt, Some(&response))).await;
                }
                Ok(response) => return Ok((response, attempt)),
            }
        }
    }

    pub(super) async fn fail(
        &self,
        repository: &Repository,
        operation: &str,
        response: reqwest::Response,
        attempts: u32,
    ) -> RegistryError {
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        let message = body_message(&body);
        if status == 401 || status == 403 {
            let endpoint = self.endpoint(&repository.registry).await.ok();
            let hint = credential_hint(&repository.registry, endpoint.as_ref().and_then(|e| e.credential.as_ref()));
            return RegistryError::Denied {
                registry: repository.registry.clone(),
                repository: repository.path.clone(),
                operation: operation.to_string(),
                status,
                message,
                hint,
            };
        }
        RegistryError::Status {
            registry: repository.registry.clone(),
            repository: repository.path.clone(),
            operation: operation.to_string(),
            status,
            message,
            attempts,
        }
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
        let response = request.send().await.map_err(|e| RegistryError::Unreachable {
            registry: registry.to_string(),
            detail: describe(&e),
            attempts: 1,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(true);
        }
        let body = response.bytes().await.unwrap_or_default();
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

    /// Fetches a manifest or index, verifying its digest when asked for by digest.
    pub async fn manifest(&self, reference: &Reference) -> Result<FetchedManifest, RegistryError> {
        let repo = &reference.repository;
        let identifier = reference.identifier();
        let operation = format!("fetching manifest {identifier}");
        let scope = Self::scope(repo, Access::Pull, None);
        let path = format!("/v2/{}/manifests/{identifier}", repo.path);
        let accept = ACCEPT_MANIFESTS.join(", ");
        let (response, attempts) = self
            .execute(repo, &scope, &operation, &|c, base| c.get(format!("{base}{path}")).header(ACCEPT, &accept))
            .await?;
        if !response.status().is_success() {
            return Err(self.fail(repo, &operation, response, attempts).await);
        }
        let header_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = response.bytes().await.map_err(|e| RegistryError::Protocol {
            registry: repo.registry.clone(),
            repository: repo.path.clone(),
            operation: operation.clone(),
            detail: describe(&e),
        })?;
        let digest = Digest::of(&bytes);
        if let Some(expected) = &reference.digest
            && expected != &digest
        {
            return Err(RegistryError::Protocol {
                registry: repo.registry.clone(),
                repository: repo.path.clone(),
                operation,
                detail: format!("the registry sent a manifest with digest {digest}"),
            });
        }
        let media_type = sniff_media_type(&bytes, header_type.as_deref()).unwrap_or_default();
        Ok(FetchedManifest { bytes, media_type, digest })
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
            .execute(repo, &scope, operation, &|c, base| {
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
            self.execute(repo, &scope, &operation, &|c, base| c.post(format!("{base}{path}"))).await?;
        match response.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => Ok(false), // an upload session we leave to expire
            _ => Err(self.fail(repo, &operation, response, attempts).await),
        }
    }

    /// Uploads one blob: open a session, stream the bytes, commit with the digest.
    pub async fn upload_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        body: BlobBody<'_>,
    ) -> Result<(), RegistryError> {
        // A session that failed mid-stream may already hold part of the bytes, and re-sending
        // the whole blob to it is refused: a failed upload starts over in a new session, once.
        match self.upload_session(repo, digest, size, &body).await {
            Err(RegistryError::Unreachable { .. } | RegistryError::Status { .. } | RegistryError::Protocol { .. }) => {
                output::detail(format!("{}: uploading {digest} again in a new session", repo.registry));
                self.upload_session(repo, digest, size, &body).await
            }
            other => other,
        }
    }

    async fn upload_session(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        body: &BlobBody<'_>,
    ) -> Result<(), RegistryError> {
        let operation = format!("uploading blob {digest}");
        let scope = Self::scope(repo, Access::Push, None);
        let (endpoint, location) = self.open_upload(repo, &operation).await?;

        let progress = Progress::bytes(&format!("{} {}", &digest.hex()[..12], repo.path), size);
        let file_error = |path: &Path, source| RegistryError::File {
            registry: repo.registry.clone(),
            operation: operation.clone(),
            path: path.to_path_buf(),
            source,
        };
        let progress_inc = std::sync::Arc::new(progress.incrementer());
        if let BlobBody::File(path) = &body {
            std::fs::metadata(path).map_err(|e| file_error(path, e))?;
        }
        // Each attempt reads the file afresh from its start, so a retried PATCH sends it whole.
        let make_body = || -> reqwest::Body {
            match &body {
                BlobBody::Bytes(b) => reqwest::Body::from(b.clone()),
                BlobBody::File(path) => match std::fs::File::open(path) {
                    Ok(file) => {
                        let inc = progress_inc.clone();
                        let file = tokio::fs::File::from_std(file);
                        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).map(move |chunk| {
                            if let Ok(bytes) = &chunk {
                                inc(bytes.len() as u64);
                            }
                            chunk
                        });
                        reqwest::Body::wrap_stream(stream)
                    }
                    Err(e) => reqwest::Body::wrap_stream(futures_util::stream::once(async move {
                        Err::<bytes::Bytes, std::io::Error>(e)
                    })),
                },
            }
        };
        // A small blob goes up with the commit itself (the spec's POST-then-PUT upload), which
        // saves a round trip per config and SBOM.
        if size <= MONOLITHIC_MAX {
            let commit = with_query(&location, "digest", digest.as_str());
            let (response, attempts) = self
                .execute(repo, &scope, &operation, &|c, _| {
                    c.put(&commit)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, size)
                        .body(make_body())
                })
                .await?;
            if response.status() != StatusCode::CREATED {
                return Err(self.fail(repo, &operation, response, attempts).await);
            }
            return Ok(());
        }
        let patch_location = location.clone();
        let (response, attempts) = self
            .execute(repo, &scope, &operation, &|c, _| {
                c.request(Method::PATCH, &patch_location)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(make_body())
            })
            .await?;
        if response.status() != StatusCode::ACCEPTED
            && response.status() != StatusCode::NO_CONTENT
            && response.status() != StatusCode::CREATED
        {
            return Err(self.fail(repo, &operation, response, attempts).await);
        }
        let commit = with_query(&location_of(&endpoint.base, &response).unwrap_or(location), "digest", digest.as_str());
        let (response, attempts) =
            self.execute(repo, &scope, &operation, &|c, _| c.put(&commit).header(CONTENT_LENGTH, 0)).await?;
        if response.status() != StatusCode::CREATED {
            return Err(self.fail(repo, &operation, response, attempts).await);
        }
        Ok(())
    }

    /// Opens an upload session in `repo`: the registry's endpoint and the session's URL.
    pub(super) async fn open_upload(
        &self,
        repo: &Repository,
        operation: &str,
    ) -> Result<(Arc<Endpoint>, String), RegistryError> {
        let scope = Self::scope(repo, Access::Push, None);
        let start = format!("/v2/{}/blobs/uploads/", repo.path);
        let (response, attempts) =
            self.execute(repo, &scope, operation, &|c, base| c.post(format!("{base}{start}"))).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.fail(repo, operation, response, attempts).await);
        }
        let endpoint = self.endpoint(&repo.registry).await?;
        let location = location_of(&endpoint.base, &response).ok_or_else(|| RegistryError::Protocol {
            registry: repo.registry.clone(),
            repository: repo.path.clone(),
            operation: operation.to_string(),
            detail: "the registry opened an upload session without a Location header".into(),
        })?;
        Ok((endpoint, location))
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
        let (response, attempts) = self
            .execute(repo, &scope, &operation, &|c, base| {
                c.put(format!("{base}{path}")).header(CONTENT_TYPE, media_type).body(bytes.clone())
            })
            .await?;
        if response.status() != StatusCode::CREATED && !response.status().is_success() {
            return Err(self.fail(repo, &operation, response, attempts).await);
        }
        Ok(response.headers().contains_key("oci-subject"))
    }

    /// Downloads a blob into `dest`, checking its digest as it streams.
    pub async fn fetch_blob(&self, repo: &Repository, digest: &Digest, dest: &Path) -> Result<(), RegistryError> {
        let operation = format!("downloading blob {digest}");
        let scope = Self::scope(repo, Access::Pull, None);
        let path = format!("/v2/{}/blobs/{digest}", repo.path);
        let (response, attempts) =
            self.execute(repo, &scope, &operation, &|c, base| c.get(format!("{base}{path}"))).await?;
        if !response.status().is_success() {
            return Err(self.fail(repo, &operation, response, attempts).await);
        }
        let protocol = |detail: String| RegistryError::Protocol {
            registry: repo.registry.clone(),
            repository: repo.path.clone(),
            operation: operation.clone(),
            detail,
        };
        let file_error = |source| RegistryError::File {
            registry: repo.registry.clone(),
            operation: operation.clone(),
            path: dest.to_path_buf(),
            source,
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(file_error)?;
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| protocol(describe(&e)))?;
            sha2::Digest::update(&mut hasher, &chunk);
            file.write_all(&chunk).await.map_err(file_error)?;
        }
        file.flush().await.map_err(file_error)?;
        let got = Digest::from_hasher(hasher);
        if &got != digest {
            return Err(protocol(format!("the registry sent content with digest {got}")));
        }
        Ok(())
    }
}

/// What to tell a user whose credentials a registry refused, naming where they came from.
fn credential_hint(registry: &str, credential: Option<&FoundCredential>) -> String {
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

    #[test]
    fn credentials_stay_with_the_registrys_own_origin() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        assert!(super::same_origin(&url("https://ghcr.io/v2/x/blobs/uploads/1"), "https://ghcr.io"));
        assert!(super::same_origin(&url("http://127.0.0.1:5000/v2/"), "http://127.0.0.1:5000"));
        assert!(!super::same_origin(&url("https://storage.example/upload"), "https://ghcr.io"));
        assert!(!super::same_origin(&url("http://ghcr.io/v2/"), "https://ghcr.io"));
        assert!(!super::same_origin(&url("https://ghcr.io:8443/v2/"), "https://ghcr.io"));
    }

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
