//! Uploading a blob while it is still being made: the bytes go up in one chunked `PATCH` as
//! they arrive, and the digest, known only at the end, commits the upload. The transport half
//! of overlapping compressing a layer with pushing it (the publisher holds the session).

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use tokio::sync::mpsc;

use super::client::{location_of, with_query};
use super::{Access, RegistryClient, RegistryError, Repository};
use crate::digest::Digest;

impl RegistryClient {
    /// `POST` a session, then one `PATCH` whose body is the channel's chunks; returns where to
    /// commit the blob with [`RegistryClient::commit_upload`]. The body can be sent once.
    pub async fn patch_stream(
        &self,
        repo: &Repository,
        receiver: mpsc::Receiver<bytes::Bytes>,
    ) -> Result<String, RegistryError> {
        let operation = "uploading a blob while it is made".to_string();
        let scope = Self::scope(repo, Access::Push, None);
        let (endpoint, location) = self.open_upload(repo, &operation).await?;
        // The body can be sent once: a failure leaves the blob to the upload from the cache. A
        // redirect hop would get an empty body, which the commit then refuses.
        let chunks = std::sync::Mutex::new(Some(tokio_stream_of(receiver).map(Ok::<_, std::io::Error>)));
        let (response, attempts) = self
            .execute_once_on_failure(repo, &scope, &operation, &|c, _, activity| {
                let body = match chunks.lock().expect("body lock").take() {
                    Some(stream) => activity.body(stream),
                    None => reqwest::Body::from(""),
                };
                c.patch(&location).header(CONTENT_TYPE, "application/octet-stream").body(body)
            })
            .await?;
        if !matches!(response.status(), StatusCode::ACCEPTED | StatusCode::NO_CONTENT | StatusCode::CREATED) {
            return Err(self.fail(repo, &operation, response, attempts).await);
        }
        Ok(location_of(&endpoint.base, &response).unwrap_or(location))
    }

    /// Commits the upload session at `location` as the blob `digest`.
    pub async fn commit_upload(&self, repo: &Repository, location: &str, digest: &Digest) -> Result<(), RegistryError> {
        let operation = format!("uploading blob {digest}");
        let scope = Self::scope(repo, Access::Push, None);
        let commit = with_query(location, "digest", digest.as_str());
        let (response, attempts) =
            self.execute(repo, &scope, &operation, &|c, _, _| c.put(&commit).header(CONTENT_LENGTH, 0)).await?;
        if response.status() != StatusCode::CREATED {
            return Err(self.fail(repo, &operation, response, attempts).await);
        }
        Ok(())
    }
}

/// The receiver as a stream of chunks.
fn tokio_stream_of(mut receiver: mpsc::Receiver<bytes::Bytes>) -> impl futures_util::Stream<Item = bytes::Bytes> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}
