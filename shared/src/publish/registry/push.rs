//! Pushing artifacts: every blob is checked with HEAD and only the missing ones are mounted
//! (from a base in the same registry) or uploaded from disk, concurrently; a manifest goes up
//! (by digest) only after all its blobs, an index after all its images. Tags, the images' and
//! the SBOMs' alike, are not moved here: [`RegistrySink::push`] returns them as [`Tagging`]s,
//! which the publisher applies only once every artifact of the run is pushed.

use std::collections::HashSet;

use bytes::Bytes;

use futures_util::future::try_join_all;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::RegistrySink;
use crate::image::manifest::Descriptor;
use crate::image::{Artifact, Blob, BlobSource, Image};
use crate::media::blobs;
use crate::output;
use crate::publish::{PublishError, attest, sbom};
use crate::registry::{BlobBody, RegistryClient, Repository};

/// Where an artifact goes, and where its SBOMs go (the same repository unless `COSIGN_REPOSITORY`).
pub struct Target<'a> {
    pub repo: &'a Repository,
    pub sbom_repo: &'a Repository,
    /// `--sign-key`: signatures and attestations go beside the SBOMs (`sbom_repo`), where
    /// cosign looks for them: the image's repository, or `COSIGN_REPOSITORY`.
    pub sign: Option<&'a crate::sign::SignSettings>,
}

impl RegistrySink {
    /// Pushes a blob unless `repo` holds it; with `ask` false it is uploaded without asking.
    async fn push_blob(&self, repo: &Repository, blob: &Blob, ask: bool) -> Result<(), PublishError> {
        let (client, digest) = (&*self.client, &blob.descriptor.digest);
        let _span = crate::timing::span(|| format!("push blob {digest}"));
        if ask && (self.known.present(repo, digest).await || client.blob_exists(repo, digest).await?) {
            output::detail(format!("{digest} already in {repo}"));
            return Ok(());
        }
        if let BlobSource::Remote(from) = &blob.source
            && from.registry == repo.registry
        {
            // A mount is an offer: a registry may refuse it (401 or 403 when the token may not
            // read the source, as Harbor does) and the blob is uploaded instead.
            match client.mount_blob(repo, from, digest).await {
                Ok(true) => {
                    output::detail(format!("mounted {digest} from {}", from.path));
                    return Ok(());
                }
                Ok(false) => {}
                Err(e) => output::detail(format!("mounting {digest} from {} failed ({e}); uploading it", from.path)),
            }
        }
        let path = blobs::local_path(client, &self.cache, blob).await?;
        client.upload_blob(repo, digest, blob.descriptor.size, BlobBody::File(&path)).await?;
        output::detail(format!("uploaded {digest} ({} bytes)", blob.descriptor.size));
        Ok(())
    }

    /// Whether an image still has to be pushed: an image with a layer this run uploaded is
    /// new; any other may be in the repository already.
    async fn image_needed(&self, repo: &Repository, image: &Image) -> Result<bool, PublishError> {
        if !self.fresh(repo, std::slice::from_ref(image)) && self.client.manifest_exists(repo, &image.digest).await? {
            output::detail(format!("{} already in {repo}", image.digest));
            return Ok(false);
        }
        Ok(true)
    }

    /// True when one of `images` holds a layer this run uploaded to `repo`: they, and an
    /// index of them, are new there.
    fn fresh(&self, repo: &Repository, images: &[Image]) -> bool {
        images.iter().any(|image| self.known.uploaded_any(repo, image.layers.iter().map(|l| &l.descriptor.digest)))
    }

    /// Pushes the blobs of the images that need it, each distinct blob once, concurrently.
    /// The config of an image with a layer this run uploaded is new too (it names the
    /// layer's diff ID), so it is uploaded without asking.
    async fn push_blobs(&self, repo: &Repository, images: &[(&Image, bool)]) -> Result<(), PublishError> {
        let mut seen = HashSet::new();
        let needed: Vec<&Image> = images.iter().filter(|(_, needed)| *needed).map(|(image, _)| *image).collect();
        let new_configs: HashSet<&crate::digest::Digest> = needed
            .iter()
            .filter(|image| self.fresh(repo, std::slice::from_ref(*image)))
            .map(|image| &image.config.descriptor.digest)
            .collect();
        // A foreign layer stays where its URLs say: it is neither checked nor copied.
        let blobs: Vec<&Blob> = needed
            .iter()
            .flat_map(|image| image.blobs())
            .filter(|blob| blob.descriptor.is_distributable() && seen.insert(&blob.descriptor.digest))
            .collect();
        stream::iter(blobs)
            .map(|blob| self.push_blob(repo, blob, !new_configs.contains(&blob.descriptor.digest)))
            .buffer_unordered(self.jobs.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// An image's manifest (when `put`; its blobs are there) and its SBOM, both by digest;
    /// the SBOM's tags are returned.
    async fn finish_image(&self, target: &Target<'_>, image: &Image, put: bool) -> Result<Vec<Tagging>, PublishError> {
        let repo = target.repo;
        if put {
            let _span = crate::timing::span(|| format!("put manifest {}", image.digest));
            self.client.put_manifest(repo, image.digest.as_str(), &image.media_type, &image.manifest_bytes).await?;
        }
        let subject = Descriptor::new(&image.media_type, image.digest.clone(), image.manifest_bytes.len() as u64);
        let mut tags = match &image.sbom {
            Some(doc) => {
                let fresh = self.fresh(repo, std::slice::from_ref(image));
                sbom::push(&self.client, &self.subjects, target.sbom_repo, repo, &subject, doc, fresh).await?
            }
            None => Vec::new(),
        };
        tags.extend(self.attest(target, subject, image.provenance.as_ref(), image.sbom.as_ref()).await?);
        Ok(tags)
    }

    /// With `--sign-key`: the signature and attestations of one image or index.
    async fn attest(
        &self,
        target: &Target<'_>,
        descriptor: Descriptor,
        provenance: Option<&serde_json::Value>,
        sbom: Option<&crate::image::Sbom>,
    ) -> Result<Vec<Tagging>, PublishError> {
        let Some(settings) = target.sign else { return Ok(Vec::new()) };
        let subject = attest::Subject { descriptor, provenance, sbom };
        attest::push(&self.client, target.repo, target.sbom_repo, settings, subject).await
    }

    /// Pushes images together: their blobs (each once), then their manifests (unless
    /// `by_tag`) and SBOMs.
    async fn push_images(
        &self,
        target: &Target<'_>,
        images: &[Image],
        by_tag: bool,
    ) -> Result<Vec<Tagging>, PublishError> {
        let needed = try_join_all(images.iter().map(|image| self.image_needed(target.repo, image))).await?;
        let pairs: Vec<(&Image, bool)> = images.iter().zip(needed).collect();
        self.push_blobs(target.repo, &pairs).await?;
        let tags =
            try_join_all(pairs.iter().map(|(image, needed)| self.finish_image(target, image, *needed && !by_tag)))
                .await?;
        Ok(tags.into_iter().flatten().collect())
    }

    /// Pushes an artifact and its SBOMs, every manifest by digest, and returns the tags to
    /// move later: its SBOMs' and its own (none when it is published by digest alone).
    ///
    /// An image that nothing refers to by digest before its tags move (no SBOM, no signature,
    /// not in an index) and that has a tag is not put by digest: putting the tag uploads the
    /// same manifest, so the first put would only cost the registry a request (3-10 ms of its
    /// CPU each on the test registry). Nothing of it is tagged before every artifact is
    /// pushed, as for the others.
    pub async fn push(
        &self,
        target: &Target<'_>,
        artifact: &Artifact,
        tags: &[String],
    ) -> Result<Pending, PublishError> {
        let repo = target.repo;
        let sboms = match artifact {
            Artifact::Image(image) => {
                let by_tag = !tags.is_empty() && image.sbom.is_none() && target.sign.is_none();
                self.push_images(target, std::slice::from_ref(image), by_tag).await?
            }
            Artifact::Index(index) => {
                // The platform images go up together; the index only after all of them.
                let mut sboms = self.push_images(target, &index.images, false).await?;
                self.client.put_manifest(repo, index.digest.as_str(), &index.media_type, &index.bytes).await?;
                let subject = Descriptor::new(&index.media_type, index.digest.clone(), index.bytes.len() as u64);
                if let Some(doc) = &index.sbom {
                    let fresh = self.fresh(repo, &index.images);
                    sboms.extend(
                        sbom::push(&self.client, &self.subjects, target.sbom_repo, repo, &subject, doc, fresh).await?,
                    );
                }
                sboms.extend(self.attest(target, subject, index.provenance.as_ref(), index.sbom.as_ref()).await?);
                sboms
            }
        };
        // The first tag is the one `Publishing` names; the others are said as they move, as ko
        // says them.
        let tags = tags
            .iter()
            .enumerate()
            .map(|(i, tag)| Tagging::Tag {
                repo: repo.clone(),
                tag: tag.clone(),
                media_type: artifact.media_type().to_string(),
                bytes: artifact.manifest_bytes().clone(),
                done: (i > 0).then(|| format!("Tagging {repo}:{tag}")),
            })
            .collect();
        Ok(Pending { sboms, tags })
    }
}

/// A tag to move once every artifact of the run is in the registry.
pub enum Tagging {
    /// Point `tag` at the manifest `bytes` (pushed by digest already, or by this put).
    Tag { repo: Repository, tag: String, media_type: String, bytes: Bytes, done: Option<String> },
    /// Add an SBOM to its subject's OCI referrers fallback index (the tag `sha256-<hex>`).
    Referrer { repo: Repository, subject: Box<Descriptor>, artifact_type: String, referrer: Bytes },
}

/// Moves the tags, one after the other, prints what each published and notes each tag moved
/// in `moved` (for a run that fails later to say which did).
pub async fn apply(
    client: &RegistryClient,
    taggings: &[Tagging],
    moved: &std::sync::Mutex<Vec<String>>,
) -> Result<(), PublishError> {
    let note = |repo: &Repository, tag: &str| {
        moved.lock().expect("the moved tags are never poisoned").push(format!("{repo}:{tag}"));
    };
    for tagging in taggings {
        match tagging {
            Tagging::Tag { repo, tag, media_type, bytes, done } => {
                client.put_manifest(repo, tag, media_type, bytes).await?;
                note(repo, tag);
                if let Some(done) = done {
                    output::step(done);
                }
            }
            Tagging::Referrer { repo, subject, artifact_type, referrer } => {
                if sbom::add_to_fallback_index(client, repo, subject, artifact_type, referrer).await? {
                    note(repo, &subject.digest.as_tag());
                }
            }
        }
    }
    Ok(())
}

/// The tags an artifact's push leaves to move: its SBOMs' (moved first), then its own.
#[derive(Default)]
pub struct Pending {
    pub sboms: Vec<Tagging>,
    pub tags: Vec<Tagging>,
}
