//! Pushing an SBOM next to its image or index, as ko does (cosign's tag scheme: the tag
//! `sha256-<hex>.sbom` in the same repository, an OCI image whose one uncompressed layer is the
//! SBOM) and, beyond ko, as an OCI 1.1 referrer: the same manifest carries `subject` and
//! `artifactType`. A registry without the referrers API gets the OCI fallback, an index of
//! referrers at the tag `sha256-<hex>`. `COSIGN_REPOSITORY` sends SBOMs to another
//! repository, by tag only.
//!
//! The first SBOM a run pushes to a registry goes up by digest, which shows whether the
//! registry takes a manifest with a `subject` and indexes it; later SBOMs there go up once,
//! by their tag, when tags move.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::PublishError;
use super::registry::Tagging;
use crate::digest::Digest;
use crate::image::Sbom;
use crate::image::manifest::{self, Descriptor, Index, Manifest, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use crate::output;
use crate::registry::{BlobBody, Reference, RegistryClient, Repository};

/// The SBOM tag of a subject: `sha256-<hex>.sbom`.
pub fn sbom_tag(subject: &Digest) -> String {
    format!("{}.sbom", subject.as_tag())
}

/// The attachment's config: an empty image config whose one layer is the SBOM.
fn config_bytes(layer: &Digest) -> Bytes {
    let config = serde_json::json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [layer.as_str()] },
    });
    Bytes::from(manifest::to_bytes(&config))
}

/// The attachment manifest, with or without the referrer fields.
fn attachment(sbom: &Sbom, config: &Descriptor, layer: &Descriptor, subject: Option<&Descriptor>) -> Bytes {
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        artifact_type: subject.map(|_| sbom.media_type.to_string()),
        config: config.clone(),
        layers: vec![layer.clone()],
        subject: subject.cloned(),
        annotations: None,
    };
    Bytes::from(manifest::to_bytes(&manifest))
}

/// Puts a small blob into `repo` unless it is there already (not asked when `known_new`);
/// true when it was uploaded.
pub(super) async fn ensure_blob(
    client: &RegistryClient,
    repo: &Repository,
    bytes: &Bytes,
    known_new: bool,
) -> Result<(Digest, bool), PublishError> {
    let digest = Digest::of(bytes);
    let missing = known_new || !client.blob_exists(repo, &digest).await?;
    if missing {
        client.upload_blob(repo, &digest, bytes.len() as u64, BlobBody::Bytes(bytes.clone())).await?;
    }
    Ok((digest, missing))
}

/// How a registry took the first SBOM manifest with a `subject` this run pushed there.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Subjects {
    /// Taken; `indexed` when the registry answered with `OCI-Subject` (it has the referrers API).
    Taken { indexed: bool },
    /// Refused: SBOMs go there without a subject.
    Refused,
}

/// What this run learned, per registry, from its first SBOM there. SBOMs pushed side by side
/// wait for the first one's answer rather than each asking by digest.
#[derive(Default)]
pub struct SubjectSupport {
    learned: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Subjects>>>>,
}

impl SubjectSupport {
    fn cell(&self, registry: &str) -> Arc<tokio::sync::OnceCell<Subjects>> {
        let mut learned = self.learned.lock().expect("subject support lock");
        learned.entry(registry.to_string()).or_default().clone()
    }
}

/// Puts the first SBOM manifest with a subject for its registry by digest, and tells how the
/// registry took it.
async fn learn_subjects(
    client: &RegistryClient,
    repo: &Repository,
    referrer: &Bytes,
) -> Result<Subjects, PublishError> {
    let digest = Digest::of(referrer).to_string();
    match client.put_manifest_with_subject(repo, &digest, OCI_MANIFEST, referrer).await {
        Ok(indexed) => Ok(Subjects::Taken { indexed }),
        Err(e) if e.status().is_some_and(|s| (400..500).contains(&s) && s != 401 && s != 403) => {
            output::detail(format!(
                "{} refused an SBOM manifest with a subject ({e}); pushing it by tag only",
                repo.registry
            ));
            Ok(Subjects::Refused)
        }
        Err(e) => Err(e.into()),
    }
}

/// True when the SBOM names its subject's digest (both formats do): a subject new to the
/// registry then makes the SBOM new too.
fn names_subject(sbom: &Sbom, subject: &Digest) -> bool {
    let hex = subject.hex().as_bytes();
    sbom.bytes.windows(hex.len()).any(|w| w == hex)
}

/// Pushes `sbom` for the manifest `subject` (media type, digest and size), which lives in
/// `subject_repo`, into `repo`, and returns its tags to move once the whole run is pushed.
/// Its blobs go up now; its manifest by digest only when it is the first SBOM with a subject
/// for this registry (see [`SubjectSupport`]), else with its tag. `fresh` says the subject
/// holds a layer this run uploaded to `repo`, so it is new there, and so is an SBOM naming it.
/// In another repository (`COSIGN_REPOSITORY`) an SBOM cannot be a referrer, so only the tag
/// scheme is used there.
pub async fn push(
    client: &RegistryClient,
    support: &SubjectSupport,
    repo: &Repository,
    subject_repo: &Repository,
    subject: &Descriptor,
    sbom: &Sbom,
    fresh: bool,
) -> Result<Vec<Tagging>, PublishError> {
    let known_new = fresh && repo == subject_repo && names_subject(sbom, &subject.digest);
    let (layer_digest, new_layer) = ensure_blob(client, repo, &sbom.bytes, known_new).await?;
    let layer = Descriptor::new(sbom.media_type, layer_digest.clone(), sbom.bytes.len() as u64);
    let config_bytes = config_bytes(&layer_digest);
    // The config names the layer: a new layer means a new config, not worth asking about.
    let (config_digest, _) = ensure_blob(client, repo, &config_bytes, new_layer).await?;
    let config = Descriptor::new(OCI_CONFIG, config_digest, config_bytes.len() as u64);

    let tag = sbom_tag(&subject.digest);
    let referrer = attachment(sbom, &config, &layer, Some(subject));
    let plain = || attachment(sbom, &config, &layer, None);
    // The manifest the tag will name, and whether the registry indexes its subject.
    let (manifest, indexed) = if repo != subject_repo {
        (plain(), true)
    } else {
        let cell = support.cell(&repo.registry);
        match cell.get_or_try_init(|| learn_subjects(client, repo, &referrer)).await? {
            Subjects::Taken { indexed } => (referrer, *indexed),
            Subjects::Refused => (plain(), true),
        }
    };
    let name = repo.to_string();
    let mut taggings = vec![Tagging::Tag {
        repo: repo.clone(),
        tag: tag.clone(),
        media_type: OCI_MANIFEST.to_string(),
        bytes: manifest.clone(),
        done: Some(format!("Published SBOM {name}:{tag}")),
    }];
    // After the tag, which puts the manifest the index lists.
    if !indexed {
        taggings.push(Tagging::Referrer {
            repo: repo.clone(),
            subject: Box::new(subject.clone()),
            artifact_type: sbom.media_type.to_string(),
            referrer: manifest,
        });
    }
    Ok(taggings)
}

/// The OCI 1.1 referrers tag schema: an index at `sha256-<hex>` listing the subject's referrers.
/// Returns whether the index changed (false when it listed the referrer already).
pub(super) async fn add_to_fallback_index(
    client: &RegistryClient,
    repo: &Repository,
    subject: &Descriptor,
    artifact_type: &str,
    referrer: &Bytes,
) -> Result<bool, PublishError> {
    let tag = subject.digest.as_tag();
    output::detail(format!(
        "{} does not index referrers; adding {artifact_type} to the fallback tag {tag}",
        repo.registry
    ));
    let reference = Reference { repository: repo.clone(), tag: Some(tag.clone()), digest: None };
    let found = client.manifest_if_present(&reference).await?;
    let mut index = found.and_then(|found| serde_json::from_slice::<Index>(&found.bytes).ok()).unwrap_or(Index {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_string()),
        manifests: vec![],
        annotations: None,
    });
    let digest = Digest::of(referrer);
    if index.manifests.iter().any(|d| d.digest == digest) {
        return Ok(false);
    }
    let mut entry = Descriptor::new(OCI_MANIFEST, digest, referrer.len() as u64);
    entry.artifact_type = Some(artifact_type.to_string());
    index.manifests.push(entry);
    index.media_type = Some(OCI_INDEX.to_string());
    client.put_manifest(repo, &tag, OCI_INDEX, &Bytes::from(manifest::to_bytes(&index))).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::SbomFormat;

    #[test]
    fn attachment_is_an_oci_image_with_the_sbom_as_its_layer() {
        let sbom = Sbom { media_type: SbomFormat::Spdx.media_type(), bytes: Bytes::from_static(b"{}") };
        let subject = Descriptor::new(OCI_MANIFEST, Digest::of(b"image"), 10);
        assert_eq!(sbom_tag(&subject.digest), format!("sha256-{}.sbom", subject.digest.hex()));
        let layer = Descriptor::new(sbom.media_type, Digest::of(&sbom.bytes), 2);
        let config = Descriptor::new(OCI_CONFIG, Digest::of(&config_bytes(&layer.digest)), 1);
        let with: serde_json::Value =
            serde_json::from_slice(&attachment(&sbom, &config, &layer, Some(&subject))).unwrap();
        assert_eq!(with["artifactType"], "text/spdx+json");
        assert_eq!(with["subject"]["digest"], subject.digest.as_str());
        assert_eq!(with["layers"][0]["mediaType"], "text/spdx+json");
        let without: serde_json::Value = serde_json::from_slice(&attachment(&sbom, &config, &layer, None)).unwrap();
        assert!(without.get("subject").is_none() && without.get("artifactType").is_none());
    }

    #[test]
    fn an_sbom_names_its_subject_when_it_holds_the_digests_hex() {
        let subject = Digest::of(b"image");
        let naming = format!(r#"{{"name":"sbom-{subject}"}}"#);
        let sbom = |text: String| Sbom { media_type: SbomFormat::Spdx.media_type(), bytes: Bytes::from(text) };
        assert!(names_subject(&sbom(naming), &subject));
        assert!(!names_subject(&sbom(format!("{{\"name\":\"sbom-{}\"}}", Digest::of(b"other"))), &subject));
        assert!(!names_subject(&sbom(String::new()), &subject));
    }
}
