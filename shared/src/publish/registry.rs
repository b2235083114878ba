//! Pushing to a registry: every blob is checked with HEAD and only the missing ones are
//! mounted (from a base in the same registry) or uploaded from disk, concurrently; a manifest
//! goes up only after all its blobs, an index after all its images, tags last.

use futures_util::{StreamExt, TryStreamExt, stream};

use crate::cache::Cache;
use crate::image::manifest::Descriptor;
use crate::image::{Artifact, Blob, BlobSource, Image};
use crate::output;
use crate::registry::{BlobBody, RegistryClient, Repository};

use super::{PublishError, blobs, sbom};

async fn push_blob(client: &RegistryClient, cache: &Cache, repo: &Repository, blob: &Blob) -> Result<(), PublishError> {
    let digest = &blob.descriptor.digest;
    let _span = crate::timing::span(|| format!("push blob {digest}"));
    if client.known_present(repo, digest).await || client.blob_exists(repo, digest).await? {
        output::detail(format!("{digest} already in {repo}"));
        return Ok(());
    }
    if let BlobSource::Remote(from) = &blob.source
        && from.registry == repo.registry
        && client.mount_blob(repo, from, digest).await?
    {
        output::detail(format!("mounted {digest} from {}", from.path));
        return Ok(());
    }
    let path = blobs::local_path(client, cache, blob).await?;
    client.upload_blob(repo, digest, blob.descriptor.size, BlobBody::File(&path)).await?;
    output::detail(format!("uploaded {digest} ({} bytes)", blob.descriptor.size));
    Ok(())
}

/// Where an artifact goes, and where its SBOMs go (the same repository unless `COSIGN_REPOSITORY`).
pub struct Target<'a> {
    pub repo: &'a Repository,
    pub sbom_repo: &'a Repository,
}

async fn push_image(
    client: &RegistryClient,
    cache: &Cache,
    target: &Target<'_>,
    image: &Image,
    jobs: usize,
) -> Result<(), PublishError> {
    let repo = target.repo;
    // An image with a layer this run uploaded is new; any other may be there already.
    let fresh = client.uploaded_any(repo, image.layers.iter().map(|l| &l.descriptor.digest));
    if !fresh && client.manifest_exists(repo, &image.digest).await? {
        output::detail(format!("{} already in {repo}", image.digest));
    } else {
        stream::iter(image.blobs())
            .map(|blob| push_blob(client, cache, repo, blob))
            .buffer_unordered(jobs.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        let span = crate::timing::span(|| format!("put manifest {}", image.digest));
        client.put_manifest(repo, image.digest.as_str(), &image.media_type, &image.manifest_bytes).await?;
        drop(span);
    }
    if let Some(doc) = &image.sbom {
        let subject = Descriptor::new(&image.media_type, image.digest.clone(), image.manifest_bytes.len() as u64);
        sbom::push(client, target.sbom_repo, repo, &subject, doc).await?;
    }
    Ok(())
}

/// Pushes an artifact (and each SBOM right after its manifest) and points every tag at it (by digest alone when there are no tags).
pub async fn push(
    client: &RegistryClient,
    cache: &Cache,
    target: &Target<'_>,
    artifact: &Artifact,
    tags: &[String],
    jobs: usize,
) -> Result<(), PublishError> {
    let repo = target.repo;
    match artifact {
        Artifact::Image(image) => push_image(client, cache, target, image, jobs).await?,
        Artifact::Index(index) => {
            // The platform images go up together; the index only after all of them.
            futures_util::future::try_join_all(
                index.images.iter().map(|image| push_image(client, cache, target, image, jobs)),
            )
            .await?;
            client.put_manifest(repo, index.digest.as_str(), &index.media_type, &index.bytes).await?;
            if let Some(doc) = &index.sbom {
                let subject = Descriptor::new(&index.media_type, index.digest.clone(), index.bytes.len() as u64);
                sbom::push(client, target.sbom_repo, repo, &subject, doc).await?;
            }
        }
    }
    for tag in tags {
        client.put_manifest(repo, tag, artifact.media_type(), artifact.manifest_bytes()).await?;
    }
    Ok(())
}
