//! `KO_DOCKER_REPO=ko.local[/prefix]` and `-L/--local`: the image is loaded into the Docker
//! daemon with `docker load` (a docker-save stream written straight into its stdin) and named
//! `<name>:<hex digest>` plus `<name>:<tag>` for every tag, as ko names it. The daemon holds
//! one platform per name, so from an index the image for the daemon's own platform is loaded.

use std::path::Path;

use tokio::sync::OnceCell;

use crate::cache::Cache;
use crate::image::{Artifact, Image};
use crate::output;
use crate::platform::Platform;
use crate::registry::RegistryClient;

use super::Docker;
use crate::media::MediaError;
use crate::media::tarball::Tarball;

pub struct Daemon {
    docker: Docker,
    platform: OnceCell<Platform>,
}

/// The image of `artifact` that a daemon on `platform` can run.
pub fn pick<'a>(artifact: &'a Artifact, platform: &Platform, name: &str) -> Result<&'a Image, MediaError> {
    let images = artifact.images();
    if let [only] = images.as_slice() {
        return Ok(only);
    }
    images.iter().copied().find(|i| platform.matches(&i.platform)).ok_or_else(|| MediaError::NoDaemonPlatform {
        name: name.to_string(),
        daemon: platform.to_string(),
        built: images.iter().map(|i| i.platform.to_string()).collect::<Vec<_>>().join(", "),
    })
}

impl Daemon {
    pub fn new(docker: Docker) -> Daemon {
        Daemon { docker, platform: OnceCell::new() }
    }

    /// Checks that the daemon answers, and learns its platform.
    pub async fn platform(&self) -> Result<&Platform, MediaError> {
        Ok(self.platform.get_or_try_init(|| self.docker.server_platform()).await?)
    }

    /// Loads the image and returns `<name>:<hex of the image digest>`.
    pub async fn publish(
        &self,
        client: &RegistryClient,
        cache: &Cache,
        name: &str,
        artifact: &Artifact,
        tags: &[String],
    ) -> Result<String, MediaError> {
        let platform = self.platform().await?;
        let image = pick(artifact, platform, name)?;
        if matches!(artifact, Artifact::Index(_)) {
            output::step(format!(
                "The Docker daemon runs {platform}: loading the {} image of {name} ({})",
                image.platform, image.digest
            ));
        }
        let reference = format!("{name}:{}", image.digest.hex());
        let mut names = vec![reference.clone()];
        names.extend(tags.iter().map(|t| format!("{name}:{t}")));
        let mut tarball = Tarball::default();
        tarball.add(Artifact::Image(image.clone()), names);
        let archive = tarball.archive(client, cache, platform).await?;
        output::step(format!("Loading {reference}"));
        let out = self.docker.load(move |w| archive.write_to(w).map(drop)).await?;
        out.map_err(|e| e.at(Path::new("the archive for docker load")))?;
        for tag in tags {
            output::detail(format!("Added tag {name}:{tag}"));
        }
        output::step(format!("Loaded {reference}"));
        Ok(reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::image::manifest::{Descriptor, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
    use crate::image::{Blob, BlobSource, IndexImage};

    fn image(platform: Platform) -> Image {
        let bytes = bytes::Bytes::from(platform.to_string());
        Image {
            digest: Digest::of(&bytes),
            manifest_bytes: bytes.clone(),
            media_type: OCI_MANIFEST.into(),
            config_bytes: bytes.clone(),
            config: Blob { descriptor: Descriptor::new(OCI_CONFIG, Digest::of(&bytes), 1), source: BlobSource::Cache },
            layers: vec![],
            platform,
            sbom: None,
            provenance: None,
        }
    }

    #[test]
    fn the_daemons_platform_is_picked_from_an_index() {
        let images = vec![image(Platform::linux("amd64")), image(Platform::linux("arm64"))];
        let index = Artifact::Index(IndexImage {
            bytes: bytes::Bytes::from_static(b"{}"),
            media_type: OCI_INDEX.into(),
            digest: Digest::of(b"{}"),
            images,
            sbom: None,
            provenance: None,
        });
        assert_eq!(pick(&index, &Platform::linux("arm64"), "n").unwrap().platform, Platform::linux("arm64"));
        assert_eq!(pick(&index, &Platform::linux("amd64"), "n").unwrap().platform, Platform::linux("amd64"));
        let e = pick(&index, &Platform::linux("s390x"), "ko.local/n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "ko.local/n: no image was built for the Docker daemon's platform linux/s390x (built: linux/amd64, linux/arm64); add linux/s390x to --platform"
        );
        // A single image is loaded whatever the daemon runs (docker can emulate it).
        let single = Artifact::Image(image(Platform::linux("arm64")));
        assert!(pick(&single, &Platform::linux("amd64"), "n").is_ok());
    }
}
