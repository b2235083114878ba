//! Endpoint discovery: which scheme a registry answers on (`GET /v2/`, the ping), what
//! authentication its challenge asks for, and which credentials the keychain holds for it.
//! Each registry is discovered once per run; `check_login` pings it with the credentials.

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};

use super::RegistryClient;
use super::challenge::Challenge;
use super::error::{RegistryError, body_message};
use super::token::credential_hint;
use super::transfer::{self, Failure, MAX_ATTEMPTS, is_retryable, retry_delay};
use crate::auth::FoundCredential;
use crate::output;
use crate::reference::{DOCKER_HUB, is_plain_http_by_default};

/// A registry as discovered: its base URL and how it wants to be authenticated.
pub(super) struct Endpoint {
    pub(super) registry: String,
    pub(super) base: String,
    pub(super) insecure_tls: bool,
    pub(super) challenge: Challenge,
    /// What `GET /v2/` answered when the registry was found.
    pub(super) ping: StatusCode,
    pub(super) credential: Option<FoundCredential>,
}

/// What [`RegistryClient::check_login`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginCheck {
    /// The registry accepted the credentials.
    Accepted,
    /// The registry asks for no credentials.
    NotAsked,
    /// `/v2/` answered this status without asking for credentials: no registry API there.
    NoRegistryApi(String),
}

impl RegistryClient {
    pub(super) async fn endpoint(&self, registry: &str) -> Result<Arc<Endpoint>, RegistryError> {
        let cell = self.endpoints.lock().expect("endpoint lock").entry(registry.to_string()).or_default().clone();
        cell.get_or_try_init(|| self.discover(registry)).await.cloned()
    }

    /// Finds the scheme that answers and what authentication `/v2/` asks for. Loopback and
    /// private registries, and every registry with `--insecure-registry`, are tried over
    /// HTTPS first and then plain HTTP, as ko does; a candidate that fails moves on to the
    /// next at once, and only the last one is retried.
    async fn discover(&self, registry: &str) -> Result<Arc<Endpoint>, RegistryError> {
        let api_host = if registry == DOCKER_HUB { "registry-1.docker.io" } else { registry };
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
            let client = self.http(insecure_tls);
            // A candidate that answers is the registry's scheme: its 5xx and 429 answers are
            // retried as often as the last candidate's failures to connect.
            let tries = MAX_ATTEMPTS - 1;
            for attempt in 1..=tries {
                attempts += 1;
                match transfer::send(client.get(format!("{base}/v2/")), self.stall).await {
                    Ok(response) if response.status() == StatusCode::BAD_REQUEST && scheme == "http" => {
                        // An HTTPS server answering plain HTTP; the HTTPS error says why it failed.
                        errors.push(format!("{base} answered 400 Bad Request (it speaks HTTPS)"));
                        break;
                    }
                    // Not an answer about authentication: a registry that is down for a moment
                    // must not pass for one that asks for none.
                    Ok(response) if is_retryable(response.status()) => {
                        let status = response.status();
                        if attempt == tries {
                            errors.push(format!("{base}/v2/ answered {status}"));
                            failures.push(Failure::Other(format!("{base}/v2/ answered {status}")));
                            break;
                        }
                        tokio::time::sleep(retry_delay(attempt, Some(&response))).await;
                    }
                    Ok(response) => {
                        let ping = response.status();
                        let challenge = if ping == StatusCode::UNAUTHORIZED {
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
                            ping,
                            credential,
                        }));
                    }
                    Err(failure) => {
                        let detail = format!("{base}: {}", failure.describe());
                        // Only the last candidate is tried again: the next one may answer.
                        // Nor is an answer in the wrong protocol, which the next try gets too.
                        let give_up = matches!(failure, Failure::BadUrl(_) | Failure::PlainHttp) || !last_candidate;
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

    /// Checks that the registry accepts the keychain's credentials (`GET /v2/` with them, after
    /// a token exchange when the registry uses tokens).
    pub async fn check_login(&self, registry: &str) -> Result<LoginCheck, RegistryError> {
        let endpoint = self.endpoint(registry).await?;
        let authorization = match &endpoint.challenge {
            // No challenge: a registry open to all answered `/v2/` with 200; anything else (a
            // web server's 404) is no registry API at all.
            Challenge::None if endpoint.ping.is_success() => return Ok(LoginCheck::NotAsked),
            Challenge::None => return Ok(LoginCheck::NoRegistryApi(endpoint.ping.to_string())),
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
            return Ok(LoginCheck::Accepted);
        }
        let body = transfer::read_error_body(response, self.stall).await;
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
}
