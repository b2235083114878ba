//! OCI and Docker schema 2 manifest, index and descriptor types, and the media type family an
//! image belongs to. Serialised once; the digest is always taken over the exact bytes pushed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::platform::Platform;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Every manifest type we can read, for `Accept` headers.
pub const ACCEPT_MANIFESTS: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST];

/// Which family of media types an image uses; ours follows the base's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaFamily {
    Oci,
    Docker,
}

impl MediaFamily {
    pub fn of_manifest(media_type: &str) -> Option<MediaFamily> {
        match media_type {
            OCI_MANIFEST | OCI_INDEX => Some(MediaFamily::Oci),
            DOCKER_MANIFEST | DOCKER_MANIFEST_LIST => Some(MediaFamily::Docker),
            _ => None,
        }
    }

    pub fn manifest(self) -> &'static str {
        match self {
            MediaFamily::Oci => OCI_MANIFEST,
            MediaFamily::Docker => DOCKER_MANIFEST,
        }
    }

    pub fn index(self) -> &'static str {
        match self {
            MediaFamily::Oci => OCI_INDEX,
            MediaFamily::Docker => DOCKER_MANIFEST_LIST,
        }
    }

    pub fn layer_gzip(self) -> &'static str {
        match self {
            MediaFamily::Oci => OCI_LAYER_GZIP,
            MediaFamily::Docker => DOCKER_LAYER_GZIP,
        }
    }
}

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// False for a layer that may not be copied into another registry (a Docker "foreign"
    /// layer, an OCI "non-distributable" one: the old Windows base layers, served from the
    /// descriptor's `urls`). Pushes leave such layers to their URLs, as Docker and ko do.
    pub fn is_distributable(&self) -> bool {
        !(self.media_type == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
            || self.media_type.starts_with("application/vnd.oci.image.layer.nondistributable."))
    }

    /// An entry of an index or layout that is no image to run: a signature, an attestation or
    /// an SBOM, told by its `artifactType`. An image's entry has none, or (as go-containerregistry
    /// writes it, so ko and crane) its config's media type.
    pub fn is_referrer(&self) -> bool {
        self.artifact_type.as_deref().is_some_and(|t| t != OCI_CONFIG && t != DOCKER_CONFIG)
    }

    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Just enough of a manifest to tell an image from an index.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
}

/// The media type of manifest bytes: the declared one, else guessed from the shape.
pub fn sniff_media_type(bytes: &[u8], header: Option<&str>) -> Option<String> {
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    if let Some(mt) = probe.media_type {
        return Some(mt);
    }
    if let Some(h) = header.filter(|h| ACCEPT_MANIFESTS.contains(h)) {
        return Some(h.to_string());
    }
    Some(if probe.manifests.is_some() { OCI_INDEX } else { OCI_MANIFEST }.to_string())
}

/// Serialises a manifest or index to the exact bytes that will be pushed.
pub fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("manifests always serialize")
}
