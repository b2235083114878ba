//! Making sure a blob's bytes are on local disk: cached blobs already are; a base layer that
//! lives in a registry is downloaded into the cache once. The layout and tarball sinks copy
//! from there.

use std::path::PathBuf;

use crate::cache::{BlobState, Cache};
use crate::image::{Blob, BlobSource};
use crate::registry::RegistryClient;

use super::MediaError;

pub async fn local_path(client: &RegistryClient, cache: &Cache, blob: &Blob) -> Result<PathBuf, MediaError> {
    let digest = &blob.descriptor.digest;
    let damaged = match cache.check_blob(digest, blob.descriptor.size)? {
        BlobState::Whole(path) => return Ok(path),
        BlobState::Missing => None,
        BlobState::Damaged(path) => Some(path),
    };
    let foreign = |detail: String| MediaError::Foreign {
        digest: digest.to_string(),
        urls: blob.descriptor.urls.clone().unwrap_or_default().join(", "),
        detail,
    };
    match &blob.source {
        BlobSource::Cache if !blob.descriptor.is_distributable() => {
            Err(foreign("the base's layout or daemon image does not hold".into()))
        }
        BlobSource::Cache => match damaged {
            Some(path) => Err(MediaError::DamagedBlob { digest: digest.to_string(), path }),
            None => Err(MediaError::MissingBlob { digest: digest.to_string(), path: cache.blob_path(digest) }),
        },
        BlobSource::Remote(repo) => {
            let temp = cache.temp_file()?;
            match client.fetch_blob(repo, digest, temp.path()).await {
                Ok(_) => Ok(cache.commit_blob(temp, digest)?),
                // The registry of a base may hold its foreign layers too; when it does not,
                // they are the user's to fetch (their licence is why they are foreign).
                Err(e) if !blob.descriptor.is_distributable() => Err(foreign(format!("{repo} does not serve ({e})"))),
                Err(e) => Err(e.into()),
            }
        }
    }
}
