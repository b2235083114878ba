//! Downloads: manifests and blobs, each checked against its digest and retried like uploads.
//! A body that breaks off (reset, closed early, silent for the stall timeout) or arrives with
//! the wrong digest is fetched again from its start, up to [`MAX_ATTEMPTS`] times in all.

use std::path::Path;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use tokio::io::AsyncWriteExt;

use super::client::{Access, FetchedManifest};
use super::request::{MAX_ATTEMPTS, retry_delay};
use super::transfer::{Failure, next_chunk, read_body};
use super::{Reference, RegistryClient, RegistryError, Repository};
use crate::digest::Digest;
use crate::image::manifest::{ACCEPT_MANIFESTS, sniff_media_type};
use crate::output;

/// Why one try of a download failed.
enum TryError {
    /// Worth another try: the body broke off or did not match its digest.
    Again { detail: String, failure: Option<Failure> },
    /// Final: the registry answered an error, or the local file failed.
    Final(RegistryError),
}

impl From<RegistryError> for TryError {
    fn from(e: RegistryError) -> Self {
        TryError::Final(e)
    }
}

impl RegistryClient {
    /// Runs `one_try` until it succeeds, fails for good, or has failed [`MAX_ATTEMPTS`] times.
    async fn with_download_retries<T, F, Fut>(
        &self,
        repo: &Repository,
        operation: &str,
        mut one_try: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, TryError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match one_try().await {
                Ok(value) => return Ok(value),
                Err(TryError::Final(e)) => return Err(e),
                Err(TryError::Again { detail, failure }) => {
                    if attempt >= MAX_ATTEMPTS {
                        return Err(match failure {
                            Some(failure) => self.transport_error(repo, operation, &failure, attempt),
                            None => RegistryError::Transfer {
                                registry: repo.registry.clone(),
                                repository: repo.path.clone(),
                                operation: operation.to_string(),
                                detail,
                                attempts: attempt,
                                stalled: false,
                            },
                        });
                    }
                    output::detail(format!("{}: {operation}: {detail}; downloading it again", repo.registry));
                    tokio::time::sleep(retry_delay(attempt, None)).await;
                }
            }
        }
    }

    /// Fetches a manifest or index, verifying its digest when asked for by digest.
    pub async fn manifest(&self, reference: &Reference) -> Result<FetchedManifest, RegistryError> {
        let repo = &reference.repository;
        let identifier = reference.identifier();
        let operation = format!("fetching manifest {identifier}");
        let scope = Self::scope(repo, Access::Pull, None);
        let path = format!("/v2/{}/manifests/{identifier}", repo.path);
        let accept = ACCEPT_MANIFESTS.join(", ");
        let (scope, path, accept, operation_ref) = (&scope, &path, &accept, &operation);
        self.with_download_retries(repo, &operation, || async move {
            let operation = operation_ref;
            let (response, attempts) = self
                .execute(repo, scope, operation, &|c, base, _| c.get(format!("{base}{path}")).header(ACCEPT, accept))
                .await?;
            if !response.status().is_success() {
                return Err(self.fail(repo, operation, response, attempts).await.into());
            }
            let header_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
            let bytes = read_body(response, self.stall)
                .await
                .map_err(|f| TryError::Again { detail: f.describe(), failure: Some(f) })?;
            let digest = Digest::of(&bytes);
            if let Some(expected) = &reference.digest
                && expected != &digest
            {
                return Err(TryError::Again {
                    detail: format!("the registry sent a manifest with digest {digest}, not {expected}"),
                    failure: None,
                });
            }
            let media_type = sniff_media_type(&bytes, header_type.as_deref()).unwrap_or_default();
            Ok(FetchedManifest { bytes, media_type, digest })
        })
        .await
    }

    /// Downloads a blob into `dest`, checking its digest as it streams.
    pub async fn fetch_blob(&self, repo: &Repository, digest: &Digest, dest: &Path) -> Result<(), RegistryError> {
        let operation = format!("downloading blob {digest}");
        self.with_download_retries(repo, &operation, || self.fetch_blob_once(repo, digest, dest, &operation)).await
    }

    async fn fetch_blob_once(
        &self,
        repo: &Repository,
        digest: &Digest,
        dest: &Path,
        operation: &str,
    ) -> Result<(), TryError> {
        let scope = Self::scope(repo, Access::Pull, None);
        let path = format!("/v2/{}/blobs/{digest}", repo.path);
        let (response, attempts) =
            self.execute(repo, &scope, operation, &|c, base, _| c.get(format!("{base}{path}"))).await?;
        if !response.status().is_success() {
            return Err(self.fail(repo, operation, response, attempts).await.into());
        }
        let file_error = |source| {
            TryError::Final(RegistryError::File {
                registry: repo.registry.clone(),
                operation: operation.to_string(),
                path: dest.to_path_buf(),
                source,
            })
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(file_error)?;
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut stream = response.bytes_stream();
        loop {
            match next_chunk(&mut stream, self.stall).await {
                Ok(Some(chunk)) => {
                    sha2::Digest::update(&mut hasher, &chunk);
                    file.write_all(&chunk).await.map_err(file_error)?;
                }
                Ok(None) => break,
                Err(failure) => return Err(TryError::Again { detail: failure.describe(), failure: Some(failure) }),
            }
        }
        file.flush().await.map_err(file_error)?;
        let got = Digest::from_hasher(hasher);
        if &got != digest {
            return Err(TryError::Again {
                detail: format!("the registry sent content with digest {got}, not {digest}"),
                failure: None,
            });
        }
        Ok(())
    }
}
