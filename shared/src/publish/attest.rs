//! Pushing an image's signature and attestations (`crate::sign`) into its own repository:
//! each one's blobs, then its manifest by digest, as an OCI 1.1 referrer of the image. A
//! registry without the referrers API gets the subject's fallback index (`sha256-<hex>`), and
//! the legacy `.sig`/`.att` forms their tags: both are tags, so both are returned as
//! [`Tagging`]s that move with the SBOMs', before any image tag.

use std::collections::BTreeSet;

use super::PublishError;
use super::registry::Tagging;
use super::sbom::ensure_blob;
use crate::digest::Digest;
use crate::image::manifest::{Descriptor, Manifest, OCI_MANIFEST};
use crate::image::{Artifact, Sbom};
use crate::media::layout::Layout;
use crate::registry::{Reference, RegistryClient, Repository};
use crate::sign::bundle::{self, Attachment};
use crate::sign::{self, SignSettings, Signer};

/// What is signed and attested for one image or index.
pub struct Subject<'a> {
    pub descriptor: Descriptor,
    pub provenance: Option<&'a serde_json::Value>,
    pub sbom: Option<&'a Sbom>,
}

/// Every image of `artifact`, then the index if it is one, as subjects to sign.
pub fn subjects(artifact: &Artifact) -> Vec<Subject<'_>> {
    let mut subjects: Vec<Subject<'_>> = artifact
        .images()
        .into_iter()
        .map(|image| Subject {
            descriptor: Descriptor::new(&image.media_type, image.digest.clone(), image.manifest_bytes.len() as u64),
            provenance: image.provenance.as_ref(),
            sbom: image.sbom.as_ref(),
        })
        .collect();
    if let Artifact::Index(index) = artifact {
        subjects.push(Subject {
            descriptor: Descriptor::new(&index.media_type, index.digest.clone(), index.bytes.len() as u64),
            provenance: index.provenance.as_ref(),
            sbom: index.sbom.as_ref(),
        });
    }
    subjects
}

/// The referrers (signature and attestations) of every image of `artifact`, named `name`,
/// for an OCI layout or archive; the legacy tag forms are registry-only.
pub fn referrers(settings: &SignSettings, name: &str, artifact: &Artifact) -> Result<Vec<Attachment>, PublishError> {
    let mut out = Vec::new();
    for subject in subjects(artifact) {
        let attachments = sign::attachments(settings, name, &subject.descriptor, subject.provenance, subject.sbom)?;
        out.extend(attachments.into_iter().filter(|a| a.tag.is_none()));
    }
    Ok(out)
}

/// Signs and attests every image of `artifact` into an OCI layout, as referrers listed in
/// its `index.json`.
pub fn to_layout(
    layout: &Layout,
    settings: &SignSettings,
    name: &str,
    artifact: &Artifact,
) -> Result<(), PublishError> {
    for a in referrers(settings, name, artifact)? {
        layout.write_referrer(&a.manifest, &a.artifact_type, &a.blobs)?;
    }
    Ok(())
}

/// Signs `subject`, an image of `image_repo`, attests its provenance and SBOM, pushes it all
/// by digest into `repo` (the image's own, or `COSIGN_REPOSITORY`, where cosign looks for
/// them) and returns the tags still to move.
pub async fn push(
    client: &RegistryClient,
    image_repo: &Repository,
    repo: &Repository,
    settings: &SignSettings,
    subject: Subject<'_>,
) -> Result<Vec<Tagging>, PublishError> {
    // The signature names the image it is for, wherever it is kept.
    let name = image_repo.to_string();
    let digest = &subject.descriptor.digest;
    let made = sign::attachments(settings, &name, &subject.descriptor, subject.provenance, subject.sbom)?;
    let wanted: BTreeSet<bundle::Claim> = made.iter().filter_map(bundle::claim_of).collect();
    let signed = signed_already(client, repo, &*settings.signer, digest, &wanted).await;
    let (attachments, already): (Vec<Attachment>, Vec<Attachment>) =
        made.into_iter().partition(|a| bundle::claim_of(a).is_none_or(|c| !signed.contains(&c)));
    if !already.is_empty() {
        let what: Vec<&str> = already.iter().map(|a| a.what).collect();
        crate::output::step(format!("Already signed with this key: {name}@{digest} ({})", what.join(", ")));
    }
    let mut taggings = Vec::new();
    let what: Vec<&str> = attachments.iter().filter(|a| a.tag.is_none()).map(|a| a.what).collect();
    if !what.is_empty() {
        crate::output::step(format!("Signing {name}@{digest} ({})", what.join(", ")));
    }
    for attachment in attachments {
        let attachment = match &attachment.tag {
            Some(tag) => onto_tag(client, repo, tag.clone(), attachment, &*settings.signer).await?,
            None => attachment,
        };
        for (_, bytes) in &attachment.blobs {
            ensure_blob(client, repo, bytes, false).await?;
        }
        let digest = attachment.digest().to_string();
        let done = format!("Published {} for {name}@{}", attachment.what, subject.descriptor.digest);
        match attachment.tag {
            Some(tag) => {
                client.put_manifest(repo, &digest, OCI_MANIFEST, &attachment.manifest).await?;
                let done = Some(format!("Published {} {}:{tag}", attachment.what, repo));
                let (media_type, bytes) = (OCI_MANIFEST.to_string(), attachment.manifest);
                taggings.push(Tagging::Tag { repo: repo.clone(), tag, media_type, bytes, done });
            }
            None => {
                let indexed =
                    client.put_manifest_with_subject(repo, &digest, OCI_MANIFEST, &attachment.manifest).await?;
                crate::output::detail(done);
                if !indexed {
                    taggings.push(Tagging::Referrer {
                        repo: repo.clone(),
                        subject: Box::new(subject.descriptor.clone()),
                        artifact_type: attachment.artifact_type,
                        referrer: attachment.manifest,
                    });
                }
            }
        }
    }
    Ok(taggings)
}

/// How many of a subject's bundle referrers are read to find this key's own.
const REFERRERS_READ: usize = 32;

/// Which of the `wanted` claims `signer` has signed already for `subject` in `repo` (the
/// signature, an SBOM attestation of the same SBOM, provenance of the same build): building
/// an unchanged image again leaves its referrers as they are instead of adding another copy
/// of each, while a claim that changed (another SBOM, another Go) is attested anew.
/// Best-effort: what cannot be read is signed again.
async fn signed_already(
    client: &RegistryClient,
    repo: &Repository,
    signer: &dyn Signer,
    subject: &Digest,
    wanted: &BTreeSet<bundle::Claim>,
) -> BTreeSet<bundle::Claim> {
    let mut found = BTreeSet::new();
    let referrers = match client.referrers(repo, subject).await {
        Ok(referrers) => referrers,
        Err(e) => {
            crate::output::detail(format!("{e}; signing {subject} again"));
            return found;
        }
    };
    let bundles = referrers.iter().filter(|d| d.artifact_type.as_deref() == Some(bundle::BUNDLE_V03));
    for referrer in bundles.take(REFERRERS_READ) {
        if found.len() == wanted.len() {
            break;
        }
        let reference = Reference { repository: repo.clone(), tag: None, digest: Some(referrer.digest.clone()) };
        let Ok(Some(fetched)) = client.manifest_if_present(&reference).await else { continue };
        let Ok(manifest) = serde_json::from_slice::<Manifest>(&fetched.bytes) else { continue };
        let Some(layer) = manifest.layers.first().filter(|l| l.media_type == bundle::BUNDLE_V03 && l.size < 1 << 22)
        else {
            continue;
        };
        let Ok(temp) = tempfile::NamedTempFile::new() else { continue };
        if client.fetch_blob(repo, &layer.digest, temp.path()).await.is_err() {
            continue;
        }
        let Ok(bytes) = std::fs::read(temp.path()) else { continue };
        found.extend(bundle::signed_claim(&bytes, signer, subject).filter(|c| wanted.contains(c)));
    }
    found
}

/// A legacy `.sig`/`.att` attachment merged with what its tag holds already, so that other
/// signers' signatures and attestations stay (cosign adds to the tag; it never replaces it).
/// This key's own earlier signature of the same payload is replaced rather than repeated.
async fn onto_tag(
    client: &RegistryClient,
    repo: &Repository,
    tag: String,
    ours: Attachment,
    signer: &dyn Signer,
) -> Result<Attachment, PublishError> {
    let reference = Reference { repository: repo.clone(), tag: Some(tag), digest: None };
    let Some(found) = client.manifest_if_present(&reference).await? else { return Ok(ours) };
    // Not an image manifest: nothing cosign could read is lost by replacing it.
    let Ok(existing) = serde_json::from_slice::<Manifest>(&found.bytes) else { return Ok(ours) };
    let replaced = |layer: &Descriptor| {
        let payload = ours.blobs.iter().find(|(d, _)| d.digest == layer.digest).map(|(_, body)| body);
        match (payload, bundle::legacy_signature_of(layer)) {
            (Some(payload), Some(signature)) => signer.verifies(payload, &signature),
            _ => false,
        }
    };
    Ok(bundle::onto_existing(ours.clone(), &existing, replaced))
}
