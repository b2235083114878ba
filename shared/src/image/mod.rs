//! The model: images as this tool holds them. Manifests and configs as exact bytes, blobs
//! that live either in the local cache or in a registry repository, indexes, the SBOMs
//! attached to them, media types and file capabilities. Values only: no I/O, no async, and
//! nothing about how layers are made (`crate::assemble`) or where images go (`crate::publish`).

pub mod caps;
pub mod manifest;
pub mod sink;

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::Repository;
use manifest::{Descriptor, Index, Manifest, MediaFamily};

/// The annotation naming the base an image or index was built on.
pub const ANNOTATION_BASE_NAME: &str = "org.opencontainers.image.base.name";
/// The annotation holding the base's digest.
pub const ANNOTATION_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// The base's name for [`ANNOTATION_BASE_NAME`], as ko writes it: a reference with both a tag
/// and a digest (`repo:v1@sha256:…`) is named by the digest alone (`repo@sha256:…`), since the
/// digest is what was used.
pub fn base_name(name: &str) -> String {
    match name.split_once('@') {
        Some((repository, digest)) => {
            let slash = repository.rfind('/').map_or(0, |i| i + 1);
            let untagged = match repository[slash..].find(':') {
                Some(colon) => &repository[..slash + colon],
                None => repository,
            };
            format!("{untagged}@{digest}")
        }
        None => name.to_string(),
    }
}

/// Where a blob's bytes can be read from.
#[derive(Clone, Debug, PartialEq)]
pub enum BlobSource {
    /// In the local cache, under its digest.
    Cache,
    /// In a registry repository (a base image layer not downloaded yet).
    Remote(Repository),
}

#[derive(Clone, Debug)]
pub struct Blob {
    pub descriptor: Descriptor,
    pub source: BlobSource,
}

/// One platform's base image, as `crate::base` resolved it.
#[derive(Clone, Debug)]
pub struct BaseImage {
    /// The reference written into the base-name annotation.
    pub name: String,
    pub digest: Digest,
    pub family: MediaFamily,
    pub manifest: Manifest,
    pub config: serde_json::Value,
    pub layers: Vec<Blob>,
    pub platform: Platform,
    /// The base index's descriptor for this image, when the base is an index.
    pub descriptor: Option<Descriptor>,
}

/// A document attached to an image or index by its digest: its SBOM.
#[derive(Clone, Debug)]
pub struct Sbom {
    pub media_type: &'static str,
    pub bytes: Bytes,
}

/// One image: a manifest, its config and its layers.
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest_bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
    pub config_bytes: Bytes,
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub platform: Platform,
    /// The image's SBOM, unless `--sbom=none`.
    pub sbom: Option<Sbom>,
    /// The SLSA provenance predicate, when the run attests provenance (`crate::sign`).
    pub provenance: Option<serde_json::Value>,
}

impl Image {
    /// The image's entry in an index: with its platform, and its config's media type as the
    /// `artifactType` (what go-containerregistry, so ko, writes for an image).
    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(&self.media_type, self.digest.clone(), self.manifest_bytes.len() as u64);
        d.platform = Some(self.platform.clone());
        d.artifact_type = Some(self.config.descriptor.media_type.clone());
        d
    }

    /// Every blob the manifest names, config first.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(self.layers.iter())
    }
}

/// An index over several platform images.
#[derive(Clone, Debug)]
pub struct IndexImage {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
    pub images: Vec<Image>,
    /// The index's own SBOM, unless `--sbom=none`.
    pub sbom: Option<Sbom>,
    /// The index's SLSA provenance predicate, when the run attests provenance.
    pub provenance: Option<serde_json::Value>,
}

impl IndexImage {
    /// An index over several platform images, in the order given; each entry takes the
    /// annotations, URLs and platform of the base's entry it was built on (by position).
    pub fn new(
        family: MediaFamily,
        images: Vec<Image>,
        annotations: BTreeMap<String, String>,
        base_descriptors: &[Option<Descriptor>],
    ) -> IndexImage {
        let manifests = images
            .iter()
            .enumerate()
            .map(|(i, img)| {
                let mut d = img.descriptor();
                if let Some(Some(base)) = base_descriptors.get(i) {
                    d.annotations = base.annotations.clone();
                    d.urls = base.urls.clone();
                    if base.platform.is_some() {
                        d.platform = base.platform.clone();
                    }
                }
                d
            })
            .collect();
        let index = Index {
            schema_version: 2,
            media_type: Some(family.index().to_string()),
            manifests,
            annotations: (!annotations.is_empty()).then_some(annotations),
        };
        let bytes = Bytes::from(manifest::to_bytes(&index));
        IndexImage {
            digest: Digest::of(&bytes),
            bytes,
            media_type: family.index().to_string(),
            images,
            sbom: None,
            provenance: None,
        }
    }
}

/// What a build produces: one image, or an index when several platforms were built.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // one per import path; boxing buys nothing
pub enum Artifact {
    Image(Image),
    Index(IndexImage),
}

impl Artifact {
    pub fn digest(&self) -> &Digest {
        match self {
            Artifact::Image(i) => &i.digest,
            Artifact::Index(i) => &i.digest,
        }
    }

    pub fn media_type(&self) -> &str {
        match self {
            Artifact::Image(i) => &i.media_type,
            Artifact::Index(i) => &i.media_type,
        }
    }

    pub fn manifest_bytes(&self) -> &Bytes {
        match self {
            Artifact::Image(i) => &i.manifest_bytes,
            Artifact::Index(i) => &i.bytes,
        }
    }

    pub fn images(&self) -> Vec<&Image> {
        match self {
            Artifact::Image(i) => vec![i],
            Artifact::Index(i) => i.images.iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_base_with_a_tag_and_a_digest_is_named_by_the_digest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let cases = [
            (format!("127.0.0.1:5000/lib/base:v1@{digest}"), format!("127.0.0.1:5000/lib/base@{digest}")),
            (format!("127.0.0.1:5000/lib/base@{digest}"), format!("127.0.0.1:5000/lib/base@{digest}")),
            ("cgr.dev/chainguard/static:latest".to_string(), "cgr.dev/chainguard/static:latest".to_string()),
            ("registry:5000/base".to_string(), "registry:5000/base".to_string()),
        ];
        for (name, want) in cases {
            assert_eq!(super::base_name(&name), want, "{name}");
        }
    }
}
