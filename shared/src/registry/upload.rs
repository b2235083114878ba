//! Uploading a blob from disk or memory: open a session, stream the bytes, commit with the
//! digest; small blobs go up with the commit itself.
//!
//! A session that failed may hold part of the bytes (or, in a registry's race between two
//! uploads of one blob, be answered `DIGEST_INVALID` or `BLOB_UPLOAD_UNKNOWN`), so a failed
//! upload is never resent into the same session: the blob is first checked with `HEAD` (a
//! concurrent upload may have put it there), then uploaded again in a new session, up to
//! [`MAX_SESSIONS`] sessions in all.

use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use super::client::{Access, BlobBody};
use super::endpoint::Endpoint;
use super::request::{location_of, with_query};
use super::transfer::{Activity, MAX_ATTEMPTS, jitter, retry_delay};
use super::{RegistryClient, RegistryError, Repository};
use crate::digest::Digest;
use crate::output::{self, Progress};

/// Blobs up to this size are uploaded in the request that commits them.
const MONOLITHIC_MAX: u64 = 1024 * 1024;
/// Upload sessions per blob: the first and three more.
pub(super) const MAX_SESSIONS: u32 = 4;

/// Registry error codes that say the session, not the blob, went wrong.
const SESSION_CODES: &[&str] = &["DIGEST_INVALID", "BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID", "SIZE_INVALID"];

/// Whether a failed session is worth a new one.
fn worth_a_new_session(error: &RegistryError) -> bool {
    match error {
        RegistryError::Status { status, .. } => {
            error.code().is_some_and(|c| SESSION_CODES.contains(&c))
                // 405: a commit PUT with the bytes refused; the next session PATCHes them.
                || matches!(status, 404 | 405 | 416 | 429)
                || (500..600).contains(status)
        }
        // A body that broke off (tried once, see `upload_session`); a stall that already used
        // every attempt of its request is final, so silence costs at most 4 stall timeouts.
        RegistryError::Transfer { attempts, stalled, .. } => !*stalled || *attempts < MAX_ATTEMPTS,
        RegistryError::Protocol { .. } => true,
        _ => false,
    }
}

impl RegistryClient {
    /// Uploads one blob: open a session, stream the bytes, commit with the digest.
    pub async fn upload_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        body: BlobBody<'_>,
    ) -> Result<(), RegistryError> {
        let mut session = 1;
        let mut stalls = 0;
        loop {
            let error = match self.upload_session(repo, digest, size, &body).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            // A registry that stopped answering gets one more session, not three.
            if matches!(error, RegistryError::Transfer { stalled: true, .. }) {
                stalls += 1;
            }
            if session >= MAX_SESSIONS || stalls >= 2 || !worth_a_new_session(&error) {
                // A body that broke off is sent once per session: count the sessions.
                return Err(match error {
                    RegistryError::Transfer { registry, repository, operation, detail, attempts, stalled } => {
                        RegistryError::Transfer {
                            registry,
                            repository,
                            operation,
                            detail,
                            attempts: attempts.max(session),
                            stalled,
                        }
                    }
                    other => other,
                });
            }
            // Another process may have uploaded the same blob meanwhile: then it is done.
            if self.blob_exists(repo, digest).await.unwrap_or(false) {
                output::detail(format!("{}: {digest} is there after all ({error})", repo.registry));
                return Ok(());
            }
            output::detail(format!("{}: uploading {digest} again in a new session ({error})", repo.registry));
            tokio::time::sleep(retry_delay(session, None) + jitter()).await;
            session += 1;
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
        let file_error = |path: &Path, source| RegistryError::File {
            registry: repo.registry.clone(),
            operation: operation.clone(),
            path: path.to_path_buf(),
            source,
        };
        if let BlobBody::File(path) = &body {
            std::fs::metadata(path).map_err(|e| file_error(path, e))?;
        }
        let (endpoint, location) = self.open_upload(repo, &operation).await?;

        let progress = Progress::bytes(&format!("{} {}", &digest.hex()[..12], repo.path), size);
        let progress_inc = Arc::new(progress.incrementer());
        // Each request reads the file afresh from its start; each chunk taken by the connection
        // counts as progress for the stall watchdog.
        let make_body = |activity: &Arc<Activity>| -> reqwest::Body {
            match &body {
                BlobBody::Bytes(b) => activity.bytes_body(b.clone()),
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
                        activity.body(stream)
                    }
                    Err(e) => reqwest::Body::wrap_stream(futures_util::stream::once(async move {
                        Err::<bytes::Bytes, std::io::Error>(e)
                    })),
                },
            }
        };
        // A small blob goes up with the commit itself (the spec's POST-then-PUT upload), which
        // saves a round trip per config and SBOM. A request that carries the bytes is sent
        // once: after a broken body the session is abandoned (see `upload_blob`).
        let monolithic = size <= MONOLITHIC_MAX
            && !self.no_monolithic.lock().expect("the registry set is never poisoned").contains(&repo.registry);
        if monolithic {
            let commit = with_query(&location, "digest", digest.as_str());
            let (response, attempts) = self
                .execute_once_on_failure(repo, &scope, &operation, &|c, _, activity| {
                    c.put(&commit)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, size)
                        .body(make_body(activity))
                })
                .await?;
            if response.status() == StatusCode::METHOD_NOT_ALLOWED {
                // Bytes only in a PATCH (some Pulp and Nexus versions): this registry's uploads
                // PATCH from now on, starting with a new session for this blob.
                self.no_monolithic.lock().expect("the registry set is never poisoned").insert(repo.registry.clone());
                output::detail(format!("{} refuses a blob in the commit PUT; uploading with PATCH", repo.registry));
            }
            if response.status() != StatusCode::CREATED {
                return Err(self.fail(repo, &operation, response, attempts).await);
            }
            return Ok(());
        }
        let patch_location = location.clone();
        let (response, attempts) = self
            .execute_once_on_failure(repo, &scope, &operation, &|c, _, activity| {
                c.request(Method::PATCH, &patch_location)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(make_body(activity))
            })
            .await?;
        if !matches!(response.status(), StatusCode::ACCEPTED | StatusCode::NO_CONTENT | StatusCode::CREATED) {
            return Err(self.fail(repo, &operation, response, attempts).await);
        }
        let commit = with_query(&location_of(&endpoint.base, &response).unwrap_or(location), "digest", digest.as_str());
        let (response, attempts) =
            self.execute(repo, &scope, &operation, &|c, _, _| c.put(&commit).header(CONTENT_LENGTH, 0)).await?;
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
            self.execute(repo, &scope, operation, &|c, base, _| c.post(format!("{base}{start}"))).await?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, message: &str) -> RegistryError {
        RegistryError::Status {
            registry: "r".into(),
            repository: "p".into(),
            operation: "o".into(),
            status,
            message: message.into(),
            attempts: 1,
        }
    }

    #[test]
    fn a_raced_or_broken_session_is_worth_a_new_one() {
        assert!(worth_a_new_session(&status(400, ": DIGEST_INVALID: provided digest did not match uploaded content")));
        assert!(worth_a_new_session(&status(404, ": BLOB_UPLOAD_UNKNOWN: blob upload unknown to registry")));
        assert!(worth_a_new_session(&status(503, "")));
        assert!(!worth_a_new_session(&status(400, ": NAME_INVALID: invalid repository name")));
        let transfer = |attempts, stalled| RegistryError::Transfer {
            registry: "r".into(),
            repository: "p".into(),
            operation: "o".into(),
            detail: "d".into(),
            attempts,
            stalled,
        };
        assert!(worth_a_new_session(&transfer(1, false)));
        assert!(worth_a_new_session(&transfer(1, true)));
        assert!(!worth_a_new_session(&transfer(MAX_ATTEMPTS, true)));
    }
}
