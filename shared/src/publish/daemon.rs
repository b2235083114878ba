//! `KO_DOCKER_REPO=ko.local[/prefix]` and `-L/--local`: the daemon medium's sink
//! (`media::daemon::publish`), with its errors as publish errors.

use crate::cache::Cache;
use crate::image::Artifact;
use crate::media::daemon::Docker;
use crate::platform::Platform;
use crate::registry::RegistryClient;

use super::PublishError;

pub struct Daemon(crate::media::daemon::Daemon);

impl Daemon {
    pub fn new(docker: Docker) -> Daemon {
        Daemon(crate::media::daemon::Daemon::new(docker))
    }

    /// Checks that the daemon answers, and learns its platform.
    pub async fn platform(&self) -> Result<&Platform, PublishError> {
        Ok(self.0.platform().await?)
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
        Ok(self.0.publish(client, cache, name, artifact, tags).await?)
    }
}
