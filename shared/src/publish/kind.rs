//! `KO_DOCKER_REPO=kind.local[/prefix]`: the kind sink (`media::daemon::kind`), with its
//! errors as publish errors.

use crate::cache::Cache;
use crate::image::Artifact;
use crate::media::daemon::Docker;
use crate::registry::RegistryClient;

use super::PublishError;

pub use crate::media::daemon::kind::CLUSTER_LABEL;

pub struct Kind(crate::media::daemon::Kind);

impl Kind {
    /// The cluster named by `KIND_CLUSTER_NAME`, else `kind`.
    pub fn from_env(docker: Docker) -> Kind {
        Kind(crate::media::daemon::Kind::from_env(docker))
    }

    /// The cluster's node containers; none is an error that says how to get some.
    pub async fn nodes(&self) -> Result<&[String], PublishError> {
        Ok(self.0.nodes().await?)
    }

    /// Imports the artifact into every node and returns `<name>:<hex of its digest>`.
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
