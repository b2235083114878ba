//! Uploading a layer while it is compressed: a session opened when the layer starts, fed from
//! the compressing thread through a [`std::io::Write`], committed under the digest once the
//! layer is complete. Best effort: a failure leaves the blob to the ordinary upload from the
//! cache, which checks [`KnownBlobs`] first.

use std::io::{self, Write};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::known::KnownBlobs;
use crate::digest::Digest;
use crate::registry::{RegistryClient, RegistryError, Repository};

/// Chunks in flight between the producer and the request; the producer waits beyond this.
const CHANNEL_CHUNKS: usize = 32;
/// Size of the chunks sent. Each is allocated at this size once and filled, never grown, and
/// it stays under the allocator's threshold for fresh mappings (128 KiB in glibc), so chunks
/// reuse freed memory instead of faulting in new pages for every piece of every layer.
const COPY_CHUNK: usize = 64 * 1024;

/// An upload session fed from a blocking thread through [`StreamUpload::writer`].
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

    /// Where the producer writes the blob's bytes, in order (off the async runtime: it blocks
    /// while the upload is behind).
    pub fn writer(&self) -> Option<ChunkWriter> {
        self.sender.clone().map(|sender| ChunkWriter { sender, pending: Vec::new() })
    }

    /// [`StreamUpload::finish`] in the background; pushing the blob later waits for it.
    pub fn finish_in_background(self, digest: &Digest, known: &KnownBlobs) {
        let (repo, digest) = (self.repo.clone(), digest.clone());
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
        known.expect_uploaded(&repo, &digest, committed);
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

/// A blocking writer that sends what it is given, in chunks, to an upload. Fails once the
/// upload is gone.
pub struct ChunkWriter {
    sender: mpsc::Sender<bytes::Bytes>,
    pending: Vec<u8>,
}

impl ChunkWriter {
    fn send_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::take(&mut self.pending));
        self.sender.blocking_send(chunk).map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pending.capacity() == 0 {
            self.pending.reserve_exact(COPY_CHUNK);
        }
        let n = buf.len().min(COPY_CHUNK - self.pending.len());
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == COPY_CHUNK {
            self.send_pending()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_pending()
    }
}
