//! `KO_DOCKER_REPO=kind.local[/prefix]`: the image is imported into every node of the kind
//! cluster named by `KIND_CLUSTER_NAME` (default `kind`). Nodes are the running containers
//! kind labels `io.x-k8s.kind.cluster=<name>`; each gets the archive streamed into
//! `ctr --namespace=k8s.io images import --all-platforms -`, then one `ctr images tag` per tag,
//! as ko does. containerd stores indexes, so a multi-platform build is imported whole.

use std::path::Path;

use tokio::sync::OnceCell;

use crate::cache::Cache;
use crate::image::Artifact;
use crate::output;
use crate::platform::Platform;
use crate::registry::RegistryClient;
use crate::settings::Environment;

use super::Docker;
use crate::media::MediaError;
use crate::media::tarball::Tarball;

/// The label kind puts on every node container of a cluster.
/// `KO_DOCKER_REPO` prefix for a kind cluster.
pub const KIND_DOMAIN: &str = "kind.local";

/// The cluster `KIND_CLUSTER_NAME` names, else `kind` (as kind and ko choose it).
pub fn cluster_name(env: &Environment) -> String {
    env.text("KIND_CLUSTER_NAME").filter(|c| !c.is_empty()).unwrap_or("kind").to_string()
}

pub const CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";
/// The label kind gives each container its role: control-plane, worker, external-load-balancer.
pub const ROLE_LABEL: &str = "io.x-k8s.kind.role";

pub struct Kind {
    docker: Docker,
    cluster: String,
    nodes: OnceCell<Vec<String>>,
}

impl Kind {
    /// The kind cluster `cluster` (see [`cluster_name`]), reached through `docker`.
    pub fn new(docker: Docker, cluster: String) -> Kind {
        Kind { docker, cluster, nodes: OnceCell::new() }
    }

    /// The cluster's node containers; none is an error that says how to get some.
    pub async fn nodes(&self) -> Result<&[String], MediaError> {
        let nodes = self
            .nodes
            .get_or_try_init(|| async {
                let label = format!("{CLUSTER_LABEL}={}", self.cluster);
                // An HA cluster's load balancer carries the cluster label too, but runs no containerd.
                let nodes_of = |labelled: Vec<(String, String)>| -> Vec<String> {
                    labelled
                        .into_iter()
                        .filter(|(_, role)| role != "external-load-balancer")
                        .map(|(name, _)| name)
                        .collect()
                };
                let nodes = nodes_of(self.docker.containers_with_label(&label, ROLE_LABEL, false).await?);
                if nodes.is_empty() {
                    // Made but stopped (the machine restarted): `kind create` would fail.
                    let stopped = nodes_of(self.docker.containers_with_label(&label, ROLE_LABEL, true).await?);
                    if !stopped.is_empty() {
                        return Err(MediaError::KindStopped {
                            cluster: self.cluster.clone(),
                            nodes: stopped.join(" "),
                        });
                    }
                    return Err(MediaError::NoKindCluster { cluster: self.cluster.clone() });
                }
                Ok(nodes)
            })
            .await?;
        Ok(nodes)
    }

    /// Imports the artifact into every node and returns `<name>:<hex of its digest>`.
    pub async fn publish(
        &self,
        client: &RegistryClient,
        cache: &Cache,
        name: &str,
        artifact: &Artifact,
        tags: &[String],
    ) -> Result<String, MediaError> {
        let nodes = self.nodes().await?;
        let reference = format!("{name}:{}", artifact.digest().hex());
        let mut tarball = Tarball::default();
        tarball.add(artifact.clone(), vec![reference.clone()]);
        let archive = std::sync::Arc::new(tarball.archive(client, cache, &Platform::host()).await?);
        for node in nodes {
            output::step(format!("Loading {reference} into kind node {node}"));
            let feed = archive.clone();
            let import = ["exec", "-i", node, "ctr", "--namespace=k8s.io", "images", "import", "--all-platforms", "-"];
            let out = self.docker.pipe(&import, move |w| feed.write_to(w).map(drop)).await?;
            out.map_err(|e| e.at(Path::new("the stdin of ctr images import")))?;
            for tag in tags {
                let tagged = format!("{name}:{tag}");
                output::detail(format!("Adding tag {tagged} on {node}"));
                self.docker
                    .exec(node, &["ctr", "--namespace=k8s.io", "images", "tag", "--force", &reference, &tagged])
                    .await?;
            }
        }
        output::step(format!("Loaded {reference}"));
        Ok(reference)
    }
}
