//! OCI image layouts on disk (`--oci-layout-path`, and the local store used when
//! `KO_DOCKER_REPO` is unset): blobs under `blobs/sha256/`, images listed in `index.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cache::{Cache, write_atomic};
use crate::image::manifest::{Descriptor, Index, OCI_INDEX};
use crate::image::{Artifact, Image};
use crate::registry::RegistryClient;

use super::{PublishError, blobs};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub struct Layout {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Io { path: path.to_path_buf(), source }
}

impl Layout {
    pub fn open(root: &Path) -> Result<Layout, PublishError> {
        let blobs = root.join("blobs/sha256");
        fs_err::create_dir_all(&blobs).map_err(io(&blobs))?;
        let marker = root.join("oci-layout");
        if !marker.exists() {
            write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io(&marker))?;
        }
        Ok(Layout { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn put_bytes(&self, digest: &crate::digest::Digest, bytes: &[u8]) -> Result<(), PublishError> {
        let path = self.root.join("blobs/sha256").join(digest.hex());
        if !path.exists() {
            write_atomic(&path, bytes).map_err(io(&path))?;
        }
        Ok(())
    }

    async fn put_image(&self, client: &RegistryClient, cache: &Cache, image: &Image) -> Result<(), PublishError> {
        for blob in image.blobs() {
            let dest = self.root.join("blobs/sha256").join(blob.descriptor.digest.hex());
            if dest.exists() {
                continue;
            }
            let src = blobs::local_path(client, cache, blob).await?;
            if std::fs::hard_link(&src, &dest).is_err() {
                let temp = dest.with_extension("partial");
                fs_err::copy(&src, &temp).map_err(io(&temp))?;
                fs_err::rename(&temp, &dest).map_err(io(&dest))?;
            }
        }
        self.put_bytes(&image.digest, &image.manifest_bytes)
    }

    /// Writes every blob of the artifact and lists it in `index.json` (with `ref_name`, if any).
    pub async fn write(
        &self,
        client: &RegistryClient,
        cache: &Cache,
        artifact: &Artifact,
        ref_name: Option<&str>,
    ) -> Result<(), PublishError> {
        for image in artifact.images() {
            self.put_image(client, cache, image).await?;
        }
        if let Artifact::Index(index) = artifact {
            self.put_bytes(&index.digest, &index.bytes)?;
        }
        let mut descriptor =
            Descriptor::new(artifact.media_type(), artifact.digest().clone(), artifact.manifest_bytes().len() as u64);
        if let Some(name) = ref_name {
            descriptor.annotations = Some(BTreeMap::from([(REF_NAME.to_string(), name.to_string())]));
        }
        self.add_to_index(descriptor)
    }

    fn add_to_index(&self, descriptor: Descriptor) -> Result<(), PublishError> {
        let path = self.root.join("index.json");
        let mut index = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Index>(&bytes)
                .map_err(|e| PublishError::Layout { path: path.clone(), detail: e.to_string() })?,
            Err(_) => {
                Index { schema_version: 2, media_type: Some(OCI_INDEX.into()), manifests: vec![], annotations: None }
            }
        };
        let name = descriptor.annotations.as_ref().and_then(|a| a.get(REF_NAME)).cloned();
        index.manifests.retain(|d| {
            let same_name = name.is_some() && d.annotations.as_ref().and_then(|a| a.get(REF_NAME)) == name.as_ref();
            d.digest != descriptor.digest && !same_name
        });
        index.manifests.push(descriptor);
        write_atomic(&path, &serde_json::to_vec_pretty(&index).expect("json")).map_err(io(&path))
    }
}
