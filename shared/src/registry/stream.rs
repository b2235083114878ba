//! Uploading a blob while it is still being made: the bytes go up in one chunked `PATCH` as
//! they are produced, and the digest, known only at the end, commits the upload. Used to
//! overlap compressing a layer with pushing it. Best effort: a failure leaves the blob to the
//! ordinary upload from the cache, which checks for it first.

use std::sync::Arc;

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use tokio::sync::mpsc;

use super::client::{location_of, with_query};
use super::{Access, RegistryClient, RegistryError, Repository};
use crate::digest::Digest;

/// Chunks in flight between the producer and the request; the producer waits beyond this.
const CHANNEL_CHUNKS: usize = 16;

/// An upload session fed from a blocking thread through [`StreamUpload::sender`].
pub struct StreamUpload {
    client: Arc<RegistryClient>,
    repo: Repository,
    sender: Option<mpsc::Sender<bytes::Bytes>>,
    task: tokio::task::JoinHandle<Result<String, RegistryError>>,
}

impl StreamUpload {
    /// Opens a session in `repo` and starts sending whatever arrives on the sender.
    pub fn start(client: Arc<RegistryClient>, repo: Repository, runtime: &tokio::runtime::Handle) -> StreamUpload {
        let (sender, receiver) = mpsc::channel::<bytes::Bytes>(CHANNEL_CHUNKS);
        let task = runtime.spawn({
            let client = client.clone();
            let repo = repo.clone();
            async move { client.patch_stream(&repo, receiver).await }
        });
        StreamUpload { client, repo, sender: Some(sender), task }
    }

    /// Where the producer sends the blob's bytes, in order.
    pub fn sender(&self) -> Option<mpsc::Sender<bytes::Bytes>> {
        self.sender.clone()
    }

    /// [`StreamUpload::finish`] in the background; pushing the blob later waits for it.
    pub fn finish_in_background(self, digest: &Digest) {
        let (client, repo, digest) = (self.client.clone(), self.repo.clone(), digest.clone());
        let committed = {
            let digest = digest.clone();
            async move {
                let _span = crate::timing::span(|| format!("commit streamed upload {digest}"));
                match self.finish(&digest).await {
                    Ok(()) => true,
                    Err(e) => {
                        crate::output::detail(format!(
                            "uploading {digest} while compressing it failed ({e}); it goes up from the cache"
                        ));
                        false
                    }
                }
            }
        };
        client.expect_uploaded_blob(&repo, &digest, committed);
    }

    /// Ends the stream and commits the blob under `digest`.
    pub async fn finish(mut self, digest: &Digest) -> Result<(), RegistryError> {
        drop(self.sender.take());
        let location = self.task.await.map_err(|e| RegistryError::Protocol {
            registry: self.repo.registry.clone(),
            repository: self.repo.path.clone(),
            operation: format!("uploading blob {digest}"),
            detail: e.to_string(),
        })??;
        self.client.commit_upload(&self.repo, &location, digest).await
    }
}

impl RegistryClient {
    /// `POST` a session, then one `PATCH` whose body is the channel's chunks; returns where to commit.
    async fn patch_stream(
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

    async fn commit_upload(&self, repo: &Repository, location: &str, digest: &Digest) -> Result<(), RegistryError> {
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
