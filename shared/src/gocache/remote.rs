//! The registry tier of the Go build cache, in one repository (`KO_GOCACHE_REPO`).
//!
//! - An action's entry is a tiny manifest under the tag `a-<action ID in hex>` (its forms are
//!   in `entry.rs`). A lookup is one `GET` of that tag, so a miss costs one round trip and
//!   nothing is ever listed; a small output comes in that same answer.
//! - A larger output is a blob addressed by its sha256, which is Go's output ID. It is
//!   uploaded only after a `HEAD` says the repository lacks it, and a blob this process
//!   already pushed or found is not asked about again, so a blob any runner pushed is never
//!   pushed again. Every download is checked against the output ID.
//!
//! The tier is best-effort: any failure other than a miss or one corrupt entry turns it off
//! for the rest of the process with one warning (see `mod.rs`).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::entry::{EMPTY_BLOB, MANIFEST_MEDIA_TYPE, RemoteEntry, Stored, action_tag, entry_manifest, parse_entry};
use crate::digest::{Digest, HashingWriter};
use crate::registry::{BlobBody, Reference, RegistryClient, RegistryError, Repository};

/// Why an entry's output could not be made local.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The bytes do not hash to the output ID: not used.
    #[error("the bytes of output {output} (stored as {stored}) hash to {got}")]
    Corrupt { output: Digest, stored: Digest, got: Digest },
    /// The entry names a blob the repository no longer has (retention removed it): a miss.
    #[error("blob {0} is gone")]
    Gone(Digest),
    #[error(transparent)]
    Registry(RegistryError),
    #[error("writing {path}: {source}")]
    File { path: std::path::PathBuf, source: std::io::Error },
}

pub struct Remote {
    client: Arc<RegistryClient>,
    repo: Repository,
    /// Blobs known to be in the repository (pushed, or found by `HEAD`); one cell per digest,
    /// so two puts of one output at once ask and upload once.
    blobs: Mutex<HashMap<Digest, Arc<OnceCell<()>>>>,
}

impl Remote {
    pub fn new(client: Arc<RegistryClient>, repo: Repository) -> Remote {
        Remote { client, repo, blobs: Mutex::new(HashMap::new()) }
    }

    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// The entry of an action: `None` when the registry has none (one round trip).
    pub async fn lookup(&self, action_id: &[u8]) -> Result<Option<RemoteEntry>, RegistryError> {
        let reference = Reference { repository: self.repo.clone(), tag: Some(action_tag(action_id)), digest: None };
        match self.client.manifest(&reference).await {
            Ok(fetched) => Ok(parse_entry(&fetched.bytes)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes an entry's output into `dest`, checked against the output ID.
    pub async fn fetch(&self, entry: &RemoteEntry, dest: &Path) -> Result<(), FetchError> {
        let file_error = |source| FetchError::File { path: dest.to_path_buf(), source };
        match &entry.stored {
            Stored::Inline(data) => {
                let got = Digest::of(data);
                if got != entry.output {
                    return Err(FetchError::Corrupt {
                        output: entry.output.clone(),
                        stored: entry.output.clone(),
                        got,
                    });
                }
                tokio::fs::write(dest, data).await.map_err(file_error)
            }
            Stored::Blob => self.download(&entry.output, dest).await,
            Stored::Gzip { blob, .. } => {
                let packed = tempfile::NamedTempFile::new_in(dest.parent().unwrap_or(Path::new(".")))
                    .map_err(file_error)?
                    .into_temp_path();
                self.download(blob, &packed).await.map_err(|e| match e {
                    FetchError::Corrupt { stored, got, .. } => {
                        FetchError::Corrupt { output: entry.output.clone(), stored, got }
                    }
                    other => other,
                })?;
                let (packed_path, dest_path) = (packed.to_path_buf(), dest.to_path_buf());
                let got = tokio::task::spawn_blocking(move || gunzip(&packed_path, &dest_path))
                    .await
                    .map_err(|e| file_error(std::io::Error::other(e)))?
                    .map_err(file_error)?;
                if got != entry.output {
                    return Err(FetchError::Corrupt { output: entry.output.clone(), stored: blob.clone(), got });
                }
                Ok(())
            }
        }
    }

    async fn download(&self, blob: &Digest, dest: &Path) -> Result<(), FetchError> {
        match self.client.fetch_blob(&self.repo, blob, dest).await {
            Ok(()) => Ok(()),
            Err(RegistryError::WrongContent { expected, got, .. }) => {
                Err(FetchError::Corrupt { output: expected.clone(), stored: expected, got })
            }
            Err(e) if e.status() == Some(404) => Err(FetchError::Gone(blob.clone())),
            Err(e) => Err(FetchError::Registry(e)),
        }
    }

    /// Pushes what the entry needs (its blob, unless the repository has it) and then the
    /// entry itself; `body` is the output's file. A gzip entry is made here, from `body`.
    pub async fn publish(&self, action_id: &[u8], entry: &RemoteEntry, body: &Path) -> Result<(), RegistryError> {
        let empty = Digest::of(EMPTY_BLOB);
        self.push_blob(&empty, EMPTY_BLOB.len() as u64, BlobBody::Bytes(bytes::Bytes::from_static(EMPTY_BLOB))).await?;
        let entry = match &entry.stored {
            Stored::Inline(_) => entry.clone(),
            Stored::Blob => {
                self.push_blob(&entry.output, entry.size, BlobBody::File(body)).await?;
                entry.clone()
            }
            Stored::Gzip { .. } => {
                let packed = gzip(body).await.map_err(|e| self.file_error(body, e))?;
                let (blob, size) = (Digest::of(&packed), packed.len() as u64);
                self.push_blob(&blob, size, BlobBody::Bytes(packed)).await?;
                RemoteEntry { stored: Stored::Gzip { blob, size }, ..entry.clone() }
            }
        };
        let manifest = entry_manifest(&entry);
        self.client.put_manifest(&self.repo, &action_tag(action_id), MANIFEST_MEDIA_TYPE, &manifest).await
    }

    fn file_error(&self, path: &Path, source: std::io::Error) -> RegistryError {
        let operation = "packing a Go build output".to_string();
        RegistryError::File { registry: self.repo.registry.clone(), operation, path: path.to_path_buf(), source }
    }

    /// A blob, uploaded unless this process or a `HEAD` knows the repository has it.
    async fn push_blob(&self, digest: &Digest, size: u64, body: BlobBody<'_>) -> Result<(), RegistryError> {
        let cell =
            self.blobs.lock().expect("the blob set is never poisoned").entry(digest.clone()).or_default().clone();
        cell.get_or_try_init(|| async {
            if !self.client.blob_exists(&self.repo, digest).await? {
                self.client.upload_blob(&self.repo, digest, size, body).await?;
            }
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// Forgets that the repository has a blob (it was found corrupt).
    pub fn forget(&self, digest: &Digest) {
        self.blobs.lock().expect("the blob set is never poisoned").remove(digest);
    }
}

async fn gzip(body: &Path) -> std::io::Result<bytes::Bytes> {
    let path = body.to_path_buf();
    let packed = tokio::task::spawn_blocking(move || {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::copy(&mut std::fs::File::open(&path)?, &mut encoder)?;
        encoder.finish()
    })
    .await
    .map_err(std::io::Error::other)??;
    Ok(bytes::Bytes::from(packed))
}

/// Unpacks `packed` into `dest`; returns the digest of what was written.
fn gunzip(packed: &Path, dest: &Path) -> std::io::Result<Digest> {
    let mut decoder = flate2::read::GzDecoder::new(std::fs::File::open(packed)?);
    let mut out = HashingWriter::new(std::fs::File::create(dest)?);
    std::io::copy(&mut decoder, &mut out)?;
    out.flush()?;
    Ok(out.finish().1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(dir: &Path) -> Remote {
        let env = crate::settings::Environment::from_pairs([("HOME", dir.join("home"))]);
        let keychain = crate::auth::Keychain::new(&env).unwrap();
        let client = RegistryClient::new(keychain, crate::registry::ClientOptions::default()).unwrap();
        Remote::new(Arc::new(client), Repository::parse("127.0.0.1:1/gocache").unwrap())
    }

    #[tokio::test]
    async fn an_inline_output_is_checked_against_its_output_id() {
        let dir = tempfile::tempdir().unwrap();
        let (remote, dest) = (remote(dir.path()), dir.path().join("out"));
        let data = bytes::Bytes::from_static(b"small archive");
        let good = RemoteEntry { output: Digest::of(&data), size: 13, stored: Stored::Inline(data.clone()) };
        remote.fetch(&good, &dest).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        let bad = RemoteEntry { stored: Stored::Inline(bytes::Bytes::from_static(b"other archive")), ..good };
        match remote.fetch(&bad, &dest).await {
            Err(FetchError::Corrupt { output, got, .. }) => {
                assert_eq!((output, got), (Digest::of(&data), Digest::of(b"other archive")));
            }
            other => panic!("expected a corrupt entry, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_gzip_form_unpacks_to_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let (body, packed, back) = (dir.path().join("o"), dir.path().join("o.gz"), dir.path().join("back"));
        std::fs::write(&body, b"a Go archive, repeated ".repeat(100)).unwrap();
        let bytes = gzip(&body).await.unwrap();
        std::fs::write(&packed, &bytes).unwrap();
        assert_eq!(gzip(&body).await.unwrap(), bytes, "deterministic");
        assert_eq!(gunzip(&packed, &back).unwrap(), Digest::of(&std::fs::read(&body).unwrap()));
        assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&body).unwrap());
    }
}
