//! The places an artifact goes, as one ordered set the publisher walks: an OCI layout, a
//! tarball, a registry and the local store (each optional, in that order; the last one's
//! reference is printed), or alone the Docker daemon or a kind cluster. With none of them the
//! artifact is not pushed and its reference is made up from its name (`--push=false`). Each
//! sink is a thin adapter over its medium's module. With `--sign-key`, the layouts and the
//! tarball also get each image's signature and attestations as referrers.

use std::path::PathBuf;

use tokio::sync::Mutex;

use super::registry::{Pending, RegistrySink, Target};
use super::{PublishError, naming, output, tarball, tarball_to_stdout};
use crate::cache::Cache;
use crate::image::Artifact;
use crate::media::daemon::{Daemon, Kind};
use crate::media::layout::Layout;
use crate::registry::{Reference, RegistryClient, Repository};

/// One artifact on its way: what it is called and tagged.
pub(super) struct Item<'a> {
    pub import_path: &'a str,
    pub name: &'a str,
    pub artifact: &'a Artifact,
    pub tags: &'a [String],
    pub tag_only: bool,
    pub sign: Option<&'a crate::sign::SignSettings>,
}

/// One artifact published: its reference, and what is left to do once every artifact is pushed.
pub struct Published {
    /// The image name it is published under.
    pub(crate) name: String,
    pub(crate) reference: String,
    pub(crate) pending: Pending,
    /// The line that says it is published, printed after its tags moved.
    pub(crate) done: Option<String>,
    /// Its lines in `--image-refs` when it is an index, as ko writes them: the index, then
    /// each image in index order, as `<repository>@<digest>`. Empty for an image, whose line
    /// is its reference.
    pub(crate) entities: Vec<String>,
}

/// Where artifacts go.
pub(super) enum Sink {
    Layout(Layout),
    Tarball {
        tarball: Mutex<tarball::Tarball>,
        path: PathBuf,
    },
    Registry {
        registry: RegistrySink,
        sbom_repo: Option<Repository>,
    },
    /// The OCI layout in the cache, when `KO_DOCKER_REPO` is not set.
    LocalStore(Layout),
    Daemon(Daemon),
    Kind(Kind),
}

impl Sink {
    /// Whether the sink writes one file or store shared by every artifact (so artifacts go
    /// one at a time, in order), rather than to a registry.
    pub fn is_shared(&self) -> bool {
        !matches!(self, Sink::Registry { .. })
    }

    /// Checks, before anything is built, that the Docker daemon or kind cluster is there.
    pub async fn prepare(&self) -> Result<(), PublishError> {
        match self {
            Sink::Daemon(d) => Ok(d.platform().await.map(drop)?),
            Sink::Kind(k) => Ok(k.nodes().await.map(drop)?),
            _ => Ok(()),
        }
    }

    /// Publishes `item` here, updating what the publisher reports of it.
    pub async fn publish(
        &self,
        client: &RegistryClient,
        cache: &Cache,
        item: &Item<'_>,
        out: &mut Published,
    ) -> Result<(), PublishError> {
        let (name, artifact, digest) = (item.name, item.artifact, item.artifact.digest());
        match self {
            Sink::Layout(layout) => {
                output::step(format!("Saving {name} to {}", layout.root().display()));
                layout.write(client, cache, artifact, None).await?;
                if let Some(sign) = item.sign {
                    super::attest::to_layout(layout, sign, name, artifact)?;
                }
                out.reference = format!("{}@{digest}", layout.root().display());
                // An index's lines in `--image-refs` name the layout too, unless a registry
                // publish after this one names them there.
                out.entities = super::entities(&layout.root().display().to_string(), artifact);
            }
            Sink::Tarball { tarball, .. } => {
                let repo_tags = item.tags.iter().map(|t| format!("{name}:{t}")).collect();
                let mut tarball = tarball.lock().await;
                tarball.add(artifact.clone(), repo_tags);
                if let Some(sign) = item.sign {
                    tarball.add_referrers(super::attest::referrers(sign, name, artifact)?);
                }
                // A tarball keeps the digest under --tag-only, as in ko: the flag is the
                // registry's.
                out.reference = naming::registry_reference(name, item.tags, false, digest);
            }
            Sink::Registry { registry, sbom_repo } => {
                out.entities = super::entities(name, artifact);
                push(registry, sbom_repo.as_ref(), item, out).await?
            }
            Sink::LocalStore(store) => {
                // The containers-transport form (`oci:DIR:TAG`) that skopeo, podman and buildah
                // take as it is, and that `oci-layout://` bases accept too.
                let tag = naming::store_tag(name, digest);
                store.write(client, cache, artifact, Some(&tag)).await?;
                if let Some(sign) = item.sign {
                    super::attest::to_layout(store, sign, name, artifact)?;
                }
                // Absolute, so the reference works from any directory (KOCACHE may be relative).
                let root = std::path::absolute(store.root()).unwrap_or_else(|_| store.root().to_path_buf());
                out.reference = format!("oci:{}:{tag}", root.display());
                // `--image-refs` gets the one reference that names it in the store; per-image
                // `<name>@<digest>` lines would name a registry that holds nothing.
                out.entities.clear();
            }
            Sink::Daemon(d) => out.reference = d.publish(client, cache, name, artifact, item.tags).await?,
            Sink::Kind(k) => out.reference = k.publish(client, cache, name, artifact, item.tags).await?,
        }
        Ok(())
    }

    /// Writes what is written once at the end of a run (the tarball).
    pub async fn write_out(&self, client: &RegistryClient, cache: &Cache) -> Result<(), PublishError> {
        let Sink::Tarball { tarball, path } = self else { return Ok(()) };
        let tarball = tarball.lock().await;
        if tarball.is_empty() {
            return Ok(());
        }
        if tarball_to_stdout(path) {
            output::step("Writing the tarball to stdout");
        } else {
            output::step(format!("Saving {}", path.display()));
        }
        tarball.write(client, cache, path).await
    }

    /// Says, at the end of a run, where the local store put the images.
    pub fn report(&self) {
        let Sink::LocalStore(store) = self else { return };
        if store.root().to_string_lossy().contains(':') {
            output::warn(format!(
                "the local store {} has a ':' in its path, which the oci:DIR:TAG reference cannot hold; skopeo and podman will misread it (set KOCACHE to a path without ':')",
                store.root().display()
            ));
        }
        output::step(format!(
            "KO_DOCKER_REPO is not set, so the image was stored in the local OCI layout {}; set KO_DOCKER_REPO=<registry>/<repository> to push it",
            store.root().display()
        ));
    }
}

/// Pushes `item` to its registry by digest; its tags are left pending.
async fn push(
    registry: &RegistrySink,
    sbom_repo: Option<&Repository>,
    item: &Item<'_>,
    out: &mut Published,
) -> Result<(), PublishError> {
    let name = item.name;
    let repo =
        Reference::parse(name).map_err(|source| PublishError::bad_name(name, item.import_path, source))?.repository;
    match item.tags.first() {
        Some(tag) => output::step(format!("Publishing {name}:{tag}")),
        None => output::step(format!("Publishing {name}")),
    }
    let target = Target { repo: &repo, sbom_repo: sbom_repo.unwrap_or(&repo), sign: item.sign };
    out.pending = registry.push(&target, item.artifact, item.tags).await?;
    out.reference = naming::registry_reference(name, item.tags, item.tag_only, item.artifact.digest());
    out.done = Some(format!("Published {}", out.reference));
    Ok(())
}
