//! Images as this tool holds them: manifests and configs as exact bytes, and blobs that live
//! either in the local cache or in a registry repository. Building layers and assembling
//! images on a base happen in the submodules.

pub mod app;
pub mod assemble;
pub mod caps;
pub mod kodata;
pub mod layer;
pub mod manifest;
pub mod reuse;

use bytes::Bytes;

use crate::digest::Digest;
use crate::platform::Platform;
use crate::registry::Repository;
use crate::sbom::Sbom;
use manifest::Descriptor;

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
}

impl Image {
    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(&self.media_type, self.digest.clone(), self.manifest_bytes.len() as u64);
        d.platform = Some(self.platform.clone());
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
