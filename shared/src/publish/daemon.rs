//! `KO_DOCKER_REPO=ko.local[/prefix]` and `-L/--local`: the image is loaded into the Docker
//! daemon with `docker load` (a docker-save stream written straight into its stdin) and named
//! `<name>:<hex digest>` plus `<name>:<tag>` for every tag, as ko names it. The daemon holds
//! one platform per name, so from an index the image for the daemon's own platform is loaded.

use std::path::Path;

use tokio::sync::OnceCell;

use crate::cache::Cache;
use crate::docker::Docker;
use crate::image::{Artifact, Image};
use crate::output;
use crate::platform::Platform;
use crate::registry::RegistryClient;

use super::PublishError;
use super::tarball::Tarball;

pub struct Daemon {
    docker: Docker,
    platform: OnceCell<Platform>,
}

/// The image of `artifact` that a daemon on `platform` can run.
pub fn pick<'a>(artifact: &'a Artifact, platform: &Platform, name: &str) -> Result<&'a Image, PublishError> {
    let images = artifact.images();
    if let [only] = images.as_slice() {
        return Ok(only);
    }
    images.iter().copied().find(|i| platform.matches(&i.platform)).ok_or_else(|| PublishError::NoDaemonPlatform {
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
    pub async fn platform(&self) -> Result<&Platform, PublishError> {
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
    ) -> Result<String, PublishError> {
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
        let out = self.docker.pipe(&["load"], move |w| archive.write_to(w).map(drop)).await?;
        out.map_err(|e| e.at(Path::new("the stdin of docker load")))?;
        for tag in tags {
            output::detail(format!("Added tag {name}:{tag}"));
        }
        output::step(format!("Loaded {reference}"));
        Ok(reference)
    }
}
