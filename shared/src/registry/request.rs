//! Sending one registry request: authentication, the stall watchdog, redirects that keep
//! credentials with the registry, bounded retries (policy in `transfer.rs`), and the error
//! for a request that failed.
//!
//! Redirects: the HTTP client itself follows a redirect only while it stays on the origin of
//! the request's first URL (see [`redirect_policy`]); any hop to another origin comes back
//! here and is followed by [`RegistryClient::execute`], which sends credentials to a hop only
//! when that hop's origin is the registry's own. Every hop of a chain is compared with the
//! registry, never with the hop before it, so `registry -> B -> B` never shows B a credential.

use std::sync::Arc;

use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};

use super::challenge::Challenge;
use super::endpoint::Endpoint;
use super::error::body_message;
use super::token::credential_hint;
use super::transfer::{Activity, Failure, MAX_ATTEMPTS, is_retryable, read_error_body, retry_delay};
use super::{RegistryClient, RegistryError, Repository};
use crate::output;

/// Redirect hops per request.
const MAX_REDIRECTS: usize = 10;

/// Builds a request from the HTTP client, the registry's base URL and the request's progress
/// watch (for streamed bodies); called again for every attempt and every redirect hop.
pub(super) type Build<'a> = dyn Fn(&reqwest::Client, &str, &Arc<Activity>) -> reqwest::RequestBuilder + Sync + 'a;

/// Whether `url` has the scheme, host and port of the registry's `base` URL.
pub(super) fn same_origin(url: &reqwest::Url, base: &str) -> bool {
    reqwest::Url::parse(base).is_ok_and(|base| origin_of(&base) == origin_of(url))
}

fn origin_of(url: &reqwest::Url) -> (String, Option<String>, Option<u16>) {
    (url.scheme().to_string(), url.host_str().map(str::to_string), url.port_or_known_default())
}

/// The HTTP client's own redirect rule: follow only while on the first URL's origin.
pub(super) fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt.previous().first().is_some_and(|first| origin_of(first) == origin_of(attempt.url()));
        if same && attempt.previous().len() <= MAX_REDIRECTS { attempt.follow() } else { attempt.stop() }
    })
}

/// The URL a response's `Location` header names, resolved as a browser would against the URL
/// that answered (`/v2/...`, `<uuid>?_state=...` and `//host/...` are all relative forms
/// registries send); the registry's base is the fallback for a header that is no URL at all.
pub(super) fn location_of(base: &str, response: &reqwest::Response) -> Option<String> {
    let loc = response.headers().get(LOCATION)?.to_str().ok()?;
    Some(match response.url().join(loc) {
        Ok(url) => url.to_string(),
        Err(_) => format!("{base}{loc}"),
    })
}

/// `url` with one more query parameter (`value` must already be encoded).
pub(super) fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// Where a redirect response points, resolved against the URL that answered it.
fn redirect_target(response: &reqwest::Response) -> Option<reqwest::Url> {
    if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = response.headers().get(LOCATION)?.to_str().ok()?;
    response.url().join(location).ok()
}

impl RegistryClient {
    /// The error for a request whose last attempt failed below HTTP.
    pub(super) fn transport_error(
        &self,
        repository: &Repository,
        operation: &str,
        failure: &Failure,
        attempts: u32,
    ) -> RegistryError {
        if failure.is_connect() {
            RegistryError::Unreachable {
                registry: repository.registry.clone(),
                detail: format!("{operation}: {}", failure.describe()),
                attempts,
                hint: failure.hint().to_string(),
            }
        } else {
            RegistryError::Transfer {
                registry: repository.registry.clone(),
                repository: repository.path.clone(),
                operation: operation.to_string(),
                detail: failure.describe(),
                attempts,
                stalled: failure.is_stall(),
            }
        }
    }

    /// Sends a request built by `build` (called again for each attempt), with authentication and
    /// retries on connection failures, stalls, 429 and 5xx. A 401 refreshes the token once.
    pub(super) async fn execute(
        &self,
        repository: &Repository,
        scope: &str,
        operation: &str,
        build: &Build<'_>,
    ) -> Result<(reqwest::Response, u32), RegistryError> {
        self.execute_with(repository, scope, operation, build, true).await
    }

    /// [`RegistryClient::execute`] for a request whose body must not be sent twice into its
    /// upload session: neither a failure below HTTP (reset, stall) nor a 429 or 5xx answer
    /// (the registry may have taken part of the body) is retried; the caller decides whether
    /// the upload is worth a new session.
    pub(super) async fn execute_once_on_failure(
        &self,
        repository: &Repository,
        scope: &str,
        operation: &str,
        build: &Build<'_>,
    ) -> Result<(reqwest::Response, u32), RegistryError> {
        self.execute_with(repository, scope, operation, build, false).await
    }

    async fn execute_with(
        &self,
        repository: &Repository,
        scope: &str,
        operation: &str,
        build: &Build<'_>,
        retry_failures: bool,
    ) -> Result<(reqwest::Response, u32), RegistryError> {
        let endpoint = self.endpoint(&repository.registry).await?;
        let mut refused: Option<String> = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send_following(&endpoint, repository, scope, operation, refused.as_deref(), build).await? {
                Err(failure) => {
                    if attempt >= MAX_ATTEMPTS || !retry_failures {
                        return Err(self.transport_error(repository, operation, &failure, attempt));
                    }
                    output::detail(format!(
                        "{}: {operation}: {}; trying again",
                        repository.registry,
                        failure.describe()
                    ));
                    tokio::time::sleep(retry_delay(attempt, None)).await;
                }
                Ok((response, authorization)) if response.status() == StatusCode::UNAUTHORIZED && refused.is_none() => {
                    // An expired or revoked token: fetch a new one, once.
                    if matches!(endpoint.challenge, Challenge::Bearer { .. }) && authorization.is_some() {
                        output::detail(format!("{}: token refused, fetching a new one", repository.registry));
                        refused = authorization;
                        continue;
                    }
                    return Ok((response, attempt));
                }
                Ok((response, _)) if is_retryable(response.status()) && attempt < MAX_ATTEMPTS && retry_failures => {
                    output::detail(format!(
                        "{}: {operation}: the registry answered {}; trying again",
                        repository.registry,
                        response.status()
                    ));
                    tokio::time::sleep(retry_delay(attempt, Some(&response))).await;
                }
                Ok((response, _)) => return Ok((response, attempt)),
            }
        }
    }

    /// One attempt: the request and the redirects it leads to, each hop under the stall
    /// watchdog. Returns the final response and the `Authorization` sent with the first hop.
    async fn send_following(
        &self,
        endpoint: &Endpoint,
        repository: &Repository,
        scope: &str,
        operation: &str,
        refused: Option<&str>,
        build: &Build<'_>,
    ) -> Result<Result<(reqwest::Response, Option<String>), Failure>, RegistryError> {
        let client = self.client(endpoint);
        let mut target: Option<(reqwest::Url, bool)> = None;
        let mut first_authorization = None;
        for hop in 0..=MAX_REDIRECTS {
            let activity = Activity::new();
            let (http, request) = build(client, &endpoint.base, &activity).build_split();
            let mut request = request.map_err(|e| RegistryError::Protocol {
                registry: endpoint.registry.clone(),
                repository: repository.path.clone(),
                operation: operation.to_string(),
                detail: format!("cannot make the request: {e}"),
            })?;
            if let Some((url, as_get)) = &target {
                *request.url_mut() = url.clone();
                if *as_get {
                    *request.method_mut() = Method::GET;
                    *request.body_mut() = None;
                    request.headers_mut().remove(CONTENT_TYPE);
                    request.headers_mut().remove(CONTENT_LENGTH);
                }
            }
            // Credentials go only to the registry itself: an upload `Location` or a redirect
            // may name another host (a storage backend), which must not see them.
            let authorization = if same_origin(request.url(), &endpoint.base) {
                self.authorization(endpoint, scope, refused).await?
            } else {
                None
            };
            if hop == 0 {
                first_authorization = authorization.clone();
            }
            if let Some(mut value) =
                authorization.as_deref().and_then(|v| reqwest::header::HeaderValue::from_str(v).ok())
            {
                value.set_sensitive(true);
                request.headers_mut().insert(AUTHORIZATION, value);
            }
            let method = request.method().clone();
            activity.touch();
            let response = tokio::select! {
                result = http.execute(request) => match result {
                    Ok(response) => response,
                    Err(e) => return Ok(Err(Failure::of(&e))),
                },
                () = activity.silence(self.stall) => return Ok(Err(Failure::Stalled(self.stall))),
            };
            match redirect_target(&response) {
                Some(next) => {
                    let as_get = response.status() == StatusCode::SEE_OTHER
                        || (method == Method::POST && matches!(response.status().as_u16(), 301 | 302));
                    output::detail(format!(
                        "{}: {operation}: redirected to {}",
                        endpoint.registry,
                        next.origin().ascii_serialization()
                    ));
                    target = Some((next, as_get));
                }
                None => return Ok(Ok((response, first_authorization))),
            }
        }
        Err(RegistryError::Protocol {
            registry: endpoint.registry.clone(),
            repository: repository.path.clone(),
            operation: operation.to_string(),
            detail: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    pub(super) async fn fail(
        &self,
        repository: &Repository,
        operation: &str,
        response: reqwest::Response,
        attempts: u32,
    ) -> RegistryError {
        let status = response.status().as_u16();
        let body = read_error_body(response, self.stall).await;
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::digest::Digest;
    use crate::registry::Reference;
    use crate::registry::testing::{Reply, anonymous_client, open_registry};

    #[test]
    fn credentials_stay_with_the_registrys_own_origin() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        assert!(same_origin(&url("https://ghcr.io/v2/x/blobs/uploads/1"), "https://ghcr.io"));
        assert!(same_origin(&url("http://127.0.0.1:5000/v2/"), "http://127.0.0.1:5000"));
        assert!(!same_origin(&url("https://storage.example/upload"), "https://ghcr.io"));
        assert!(!same_origin(&url("http://ghcr.io/v2/"), "https://ghcr.io"));
        assert!(!same_origin(&url("https://ghcr.io:8443/v2/"), "https://ghcr.io"));
        assert!(!same_origin(&url("http://127.0.0.2:5000/v2/"), "http://127.0.0.1:5000"));
    }

    #[tokio::test]
    async fn a_429_waits_as_retry_after_asks_then_succeeds() {
        let fake = open_registry().await;
        let digest = Digest::of(b"blob");
        let path = format!("/v2/app/blobs/{digest}");
        fake.route("HEAD", &path, [Reply::status(429).header("retry-after", "1"), Reply::status(200)]);
        let repo = Repository::parse(&format!("{}/app", fake.host())).unwrap();
        let started = std::time::Instant::now();
        assert!(anonymous_client().blob_exists(&repo, &digest).await.unwrap());
        assert!(started.elapsed() >= Duration::from_secs(1), "waited {:?}", started.elapsed());
        assert_eq!(fake.requests_to("HEAD", &path).len(), 2);
    }

    #[tokio::test]
    async fn a_503_is_retried_up_to_four_attempts() {
        let fake = open_registry().await;
        let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
        let media_type = "application/vnd.oci.image.manifest.v1+json";
        let ok = Reply::status(200).header("content-type", media_type).body(&manifest[..]);
        fake.route("GET", "/v2/app/manifests/v1", [Reply::status(503), Reply::status(503), ok]);
        let reference = Reference::parse(&format!("{}/app:v1", fake.host())).unwrap();
        let client = anonymous_client();
        let fetched = client.manifest(&reference).await.unwrap();
        assert_eq!(fetched.bytes, &manifest[..]);
        assert_eq!(fetched.media_type, media_type);
        assert_eq!(fake.requests_to("GET", "/v2/app/manifests/v1").len(), 3);

        fake.route("GET", "/v2/app/manifests/v2", [Reply::status(503).body("busy")]);
        let reference = Reference::parse(&format!("{}/app:v2", fake.host())).unwrap();
        match client.manifest(&reference).await {
            Err(RegistryError::Status { status: 503, attempts: 4, .. }) => {}
            other => panic!("expected a 503 after 4 attempts, got {:?}", other.err()),
        }
        assert_eq!(fake.requests_to("GET", "/v2/app/manifests/v2").len(), 4);
    }
}
