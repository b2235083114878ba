//! Where built images go, chosen from `KO_DOCKER_REPO` and the publish flags as ko chooses:
//! an OCI layout, a tarball and a registry (each optional, in that order; the last one's
//! reference is printed), a no-push reference, or the local store when no repository is set;
//! or, for `ko.local`/`--local` and `kind.local`, only the Docker daemon or the kind cluster.

mod blobs;
mod daemon;
mod kind;
mod layout;
pub mod naming;
mod outfile;
mod registry;
mod sbom;
mod tarball;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Mutex;

pub use layout::Layout;
pub use naming::Naming;
pub use outfile::tarball_to_stdout;

use crate::cache::{Cache, CacheError};
use crate::digest::Digest;
use crate::docker::{Docker, DockerError};
use crate::image::Artifact;
use crate::image::sink::{LayerSink, LayerStream};
use crate::output;
use crate::registry::{Reference, ReferenceError, RegistryClient, RegistryError, Repository};

fn quoted(value: &str) -> String {
    ReferenceError::quote(value)
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "KO_DOCKER_REPO={} is not a valid repository: {}; use registry/repository, for example ghcr.io/you/app",
        quoted(value), source.reason
    )]
    BadRepo { value: String, source: ReferenceError },
    #[error(
        "COSIGN_REPOSITORY={} is not a valid repository: {}; use registry/repository, or unset it",
        quoted(value), source.reason
    )]
    BadSbomRepo { value: String, source: ReferenceError },
    #[error(
        "the image name {} for {import_path} is not a valid repository: {}; shorten KO_DOCKER_REPO or choose other naming flags (-B, --bare)",
        quoted(name), source.reason
    )]
    BadName { name: String, import_path: String, source: ReferenceError },
    #[error(
        "--tags: {} {reason}; a tag is letters, digits, '_', '.' and '-', at most 128 characters, not starting with '.' or '-'",
        quoted(tag)
    )]
    BadTag { tag: String, reason: String },
    #[error("{flag} {path}: {detail}")]
    BadOutput { flag: &'static str, path: PathBuf, detail: String },
    #[error("--tag-only needs exactly one tag other than latest (got {tags:?}); pass one with -t")]
    TagOnly { tags: Vec<String> },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("OCI layout {path}: unreadable index.json ({detail}); point --oci-layout-path at an empty directory")]
    Layout { path: PathBuf, detail: String },
    #[error("blob {digest} is missing from the cache at {path}; clear the cache and rebuild")]
    MissingBlob { digest: String, path: PathBuf },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(
        "{name}: no image was built for the Docker daemon's platform {daemon} (built: {built}); add {daemon} to --platform"
    )]
    NoDaemonPlatform { name: String, daemon: String, built: String },
    #[error(
        "no kind cluster {cluster:?}: no running container is labelled {label}={cluster}; create it with `kind create cluster --name {cluster}`, or set KIND_CLUSTER_NAME to an existing cluster (`kind get clusters`)",
        label = kind::CLUSTER_LABEL
    )]
    NoKindCluster { cluster: String },
}

/// `KO_DOCKER_REPO` prefix for the Docker daemon.
pub const LOCAL_DOMAIN: &str = "ko.local";
/// `KO_DOCKER_REPO` prefix for a kind cluster.
pub const KIND_DOMAIN: &str = "kind.local";

/// Publishing settings from the command line and environment.
#[derive(Clone, Debug, Default)]
pub struct PublishOptions {
    /// `KO_DOCKER_REPO`, trimmed; `None` when unset or empty.
    pub docker_repo: Option<String>,
    pub tags: Vec<String>,
    pub tag_only: bool,
    pub push: bool,
    pub oci_layout_path: Option<PathBuf>,
    pub tarball: Option<PathBuf>,
    pub image_refs: Option<PathBuf>,
    pub naming: Naming,
    pub jobs: usize,
    /// `COSIGN_REPOSITORY`: where SBOMs go instead of the image's repository, as in ko.
    pub sbom_repository: Option<String>,
    /// `-L/--local`: load into the Docker daemon whatever `KO_DOCKER_REPO` says.
    pub local: bool,
}

/// Where images go instead of the usual publishers, when `KO_DOCKER_REPO` or `--local` say so.
enum Local {
    Daemon(daemon::Daemon),
    Kind(kind::Kind),
}

/// One artifact pushed: its reference, and what is left to do once every artifact is pushed.
struct Published {
    reference: String,
    pending: registry::Pending,
    /// The line that says it is published, printed after its tags moved.
    done: Option<String>,
}

/// The publishers for one run.
pub struct Publisher {
    options: PublishOptions,
    client: Arc<RegistryClient>,
    cache: Cache,
    layout: Option<Layout>,
    tarball: Option<Mutex<tarball::Tarball>>,
    /// The repository images are named under (for the local store, a placeholder).
    repo: String,
    registry: Option<registry::RegistrySink>,
    local_store: Option<Layout>,
    sbom_repo: Option<Repository>,
    local: Option<Local>,
    refs: Mutex<Vec<String>>,
}

impl Publisher {
    pub fn new(
        mut options: PublishOptions,
        client: Arc<RegistryClient>,
        cache: Cache,
    ) -> Result<Publisher, PublishError> {
        let mut seen = std::collections::HashSet::new();
        options.tags.retain(|t| !t.is_empty() && seen.insert(t.clone()));
        // Every tag is checked before anything is built: a bad one found while pushing would
        // leave the good ones moved.
        for tag in &options.tags {
            Reference::validate_tag(tag).map_err(|reason| PublishError::BadTag { tag: tag.clone(), reason })?;
        }
        if let Some(path) = &options.image_refs {
            outfile::check("--image-refs", path, false)?;
        }
        let repo = options.docker_repo.clone().unwrap_or_default();
        // ko's rule: --local, or a KO_DOCKER_REPO that starts with ko.local, means the daemon
        // only (named under the whole KO_DOCKER_REPO); kind.local means the kind cluster only.
        // --push, --tarball, --oci-layout-path and --tag-only do not apply to either.
        let local = if options.local || repo.starts_with(LOCAL_DOMAIN) {
            if options.local && repo.contains(LOCAL_DOMAIN) {
                output::warn("--local is not needed with KO_DOCKER_REPO=ko.local...; ko may deprecate the flag");
            }
            Some(Local::Daemon(daemon::Daemon::new(Docker::from_env())))
        } else if repo.starts_with(KIND_DOMAIN) {
            Some(Local::Kind(kind::Kind::from_env(Docker::from_env())))
        } else {
            None
        };
        if let Some(local) = local {
            let ignored: Vec<&str> = [
                (options.tarball.is_some(), "--tarball"),
                (options.oci_layout_path.is_some(), "--oci-layout-path"),
                (options.tag_only, "--tag-only"),
            ]
            .into_iter()
            .filter_map(|(set, flag)| set.then_some(flag))
            .collect();
            if !ignored.is_empty() {
                let target = if matches!(local, Local::Kind(_)) { "the kind cluster" } else { "the Docker daemon" };
                output::warn(format!("ignoring {}: images go only to {target} (as in ko)", ignored.join(", ")));
            }
            let repo = if repo.is_empty() { LOCAL_DOMAIN.to_string() } else { repo };
            return Ok(Publisher {
                options,
                client,
                cache,
                layout: None,
                tarball: None,
                repo,
                registry: None,
                local_store: None,
                sbom_repo: None,
                local: Some(local),
                refs: Mutex::new(vec![]),
            });
        }
        if !repo.is_empty() {
            Repository::parse(&repo)
                .or_else(|e| {
                    // A bare registry (`ghcr.io`, `localhost:5000`) is a valid KO_DOCKER_REPO too.
                    if !repo.contains('/')
                        && (repo.contains('.') || repo.contains(':'))
                        && Reference::validate_registry(&repo).is_ok()
                    {
                        Ok(Repository { registry: repo.clone(), path: String::new() })
                    } else {
                        Err(e)
                    }
                })
                .map_err(|source| PublishError::BadRepo { value: repo.clone(), source })?;
        }
        if let Some(path) = &options.tarball {
            outfile::check("--tarball", path, true)?;
        }
        let registry = (options.push && !repo.is_empty())
            .then(|| registry::RegistrySink::new(client.clone(), cache.clone(), options.jobs));
        if registry.is_some() && options.tag_only && (options.tags.len() != 1 || options.tags[0] == "latest") {
            return Err(PublishError::TagOnly { tags: options.tags.clone() });
        }
        let sbom_repo = match options.sbom_repository.as_deref() {
            Some(value) => Some(
                Repository::parse(value)
                    .map_err(|source| PublishError::BadSbomRepo { value: value.to_string(), source })?,
            ),
            None => None,
        };
        let layout = options.oci_layout_path.as_deref().map(Layout::open).transpose()?;
        let local_store = (options.push && repo.is_empty()).then(|| Layout::open(&cache.image_store())).transpose()?;
        let tarball = options.tarball.is_some().then(|| Mutex::new(tarball::Tarball::default()));
        // The local store names its images under a placeholder; with nothing pushed, the
        // names stay bare as in ko (`hello-<md5>:latest@sha256:…`).
        let repo = if repo.is_empty() && options.push { LOCAL_DOMAIN.to_string() } else { repo };
        Ok(Publisher {
            options,
            client,
            cache,
            layout,
            tarball,
            repo,
            registry,
            local_store,
            sbom_repo,
            local: None,
            refs: Mutex::new(vec![]),
        })
    }

    /// Checks, before anything is built, that the Docker daemon or kind cluster to load
    /// into is there.
    pub async fn prepare(&self) -> Result<(), PublishError> {
        match &self.local {
            Some(Local::Daemon(d)) => d.platform().await.map(drop),
            Some(Local::Kind(k)) => k.nodes().await.map(drop),
            None => Ok(()),
        }
    }

    /// The image name an import path gets.
    pub fn name_for(&self, import_path: &str) -> String {
        let lowered;
        // Every publisher but the no-push one lowercases, as ko does.
        let ip = if self.registry.is_some()
            || self.layout.is_some()
            || self.tarball.is_some()
            || self.local_store.is_some()
            || self.local.is_some()
        {
            lowered = import_path.to_lowercase();
            &lowered
        } else {
            import_path
        };
        naming::image_name(&self.repo, ip, self.options.naming)
    }

    /// Checks, before anything is built or pushed, that every import path's image name is a
    /// valid repository (grammar and length): the printed references must be usable.
    pub fn check_names(&self, import_paths: &[&str]) -> Result<(), PublishError> {
        for import_path in import_paths {
            let name = self.name_for(import_path);
            Repository::parse(&name).map_err(|source| PublishError::BadName {
                name: name.clone(),
                import_path: import_path.to_string(),
                source,
            })?;
        }
        Ok(())
    }

    /// Whether `--tarball -` (or /dev/stdout) sends the archive to stdout, so references must
    /// go elsewhere.
    pub fn tarball_to_stdout(&self) -> bool {
        self.tarball.is_some() && self.options.tarball.as_deref().is_some_and(outfile::tarball_to_stdout)
    }

    /// The registry an import path's image is pushed to, and its repository there, when it
    /// goes to one.
    fn push_repository(&self, import_path: &str) -> Option<(&registry::RegistrySink, Repository)> {
        let sink = self.registry.as_ref().filter(|_| self.local.is_none())?;
        let repo = crate::registry::Reference::parse(&self.name_for(import_path)).ok()?.repository;
        Some((sink, repo))
    }

    /// Publishes several artifacts and returns their references in the given order. Pushes to
    /// a registry run concurrently; anything that writes one shared file (a layout, a
    /// tarball, the local store, the daemon) goes one artifact at a time, in order.
    ///
    /// No registry tag moves until every artifact (with its SBOMs) is in the registry by
    /// digest: a failed run leaves no tag pointing at anything new.
    pub async fn publish_all(&self, items: &[(&str, &Artifact)]) -> Result<Vec<String>, PublishError> {
        self.check_names(&items.iter().map(|(p, _)| *p).collect::<Vec<_>>())?;
        let shared_output =
            self.local.is_some() || self.layout.is_some() || self.tarball.is_some() || self.local_store.is_some();
        // Two import paths with one image name would race for the same tags.
        let mut names: Vec<String> = items.iter().map(|(p, _)| self.name_for(p)).collect();
        names.sort();
        names.dedup();
        let published: Vec<Published> = if shared_output || names.len() < items.len() {
            let mut published = Vec::with_capacity(items.len());
            for (import_path, artifact) in items {
                published.push(self.publish_one(import_path, artifact).await?);
            }
            published
        } else {
            use futures_util::{StreamExt, TryStreamExt};
            futures_util::stream::iter(items.iter().map(|(p, a)| self.publish_one(p, a)))
                .buffered(self.options.jobs.max(1))
                .try_collect()
                .await?
        };
        // Every artifact is pushed: now the tags, the SBOMs' first, so that a refused SBOM
        // tag leaves every image tag where it was.
        for item in &published {
            registry::apply(&self.client, &item.pending.sboms).await?;
        }
        for item in &published {
            registry::apply(&self.client, &item.pending.tags).await?;
            if let Some(done) = &item.done {
                output::step(done);
            }
        }
        let references: Vec<String> = published.into_iter().map(|p| p.reference).collect();
        self.refs.lock().await.extend(references.iter().cloned());
        Ok(references)
    }

    /// Publishes one artifact everywhere it should go: the reference to print, and the
    /// registry tags still to move.
    async fn publish_one(&self, import_path: &str, artifact: &Artifact) -> Result<Published, PublishError> {
        let name = self.name_for(import_path);
        let digest = artifact.digest();
        let tags = &self.options.tags;
        if let Some(local) = &self.local {
            let reference = match local {
                Local::Daemon(d) => d.publish(&self.client, &self.cache, &name, artifact, tags).await?,
                Local::Kind(k) => k.publish(&self.client, &self.cache, &name, artifact, tags).await?,
            };
            return Ok(Published { reference, pending: Default::default(), done: None });
        }
        let mut reference = naming::unpushed_reference(&name, tags, self.options.tag_only, digest);
        let mut pending = registry::Pending::default();
        let mut done = None;
        if let Some(layout) = &self.layout {
            output::step(format!("Saving {name} to {}", layout.root().display()));
            layout.write(&self.client, &self.cache, artifact, None).await?;
            reference = format!("{}@{digest}", layout.root().display());
        }
        if let Some(tarball) = &self.tarball {
            let repo_tags = tags.iter().map(|t| format!("{name}:{t}")).collect();
            tarball.lock().await.add(artifact.clone(), repo_tags);
            reference = naming::registry_reference(&name, tags, self.options.tag_only, digest);
        }
        if let Some(sink) = &self.registry {
            let repo = crate::registry::Reference::parse(&name)
                .map_err(|source| PublishError::BadName {
                    name: name.clone(),
                    import_path: import_path.to_string(),
                    source,
                })?
                .repository;
            output::step(format!("Publishing {name}"));
            let target = registry::Target { repo: &repo, sbom_repo: self.sbom_repo.as_ref().unwrap_or(&repo) };
            pending = sink.push(&target, artifact, tags).await?;
            reference = naming::registry_reference(&name, tags, self.options.tag_only, digest);
            done = Some(format!("Published {reference}"));
        }
        if let Some(store) = &self.local_store {
            // The containers-transport form (`oci:DIR:TAG`) that skopeo, podman and buildah
            // take as it is, and that `oci-layout://` bases accept too.
            let tag = naming::store_tag(&name, digest);
            store.write(&self.client, &self.cache, artifact, Some(&tag)).await?;
            // Absolute, so the reference works from any directory (KOCACHE may be relative).
            let root = std::path::absolute(store.root()).unwrap_or_else(|_| store.root().to_path_buf());
            reference = format!("oci:{}:{tag}", root.display());
        }
        Ok(Published { reference, pending, done })
    }

    /// Finishes what is written at the end of a run: the tarball and the `--image-refs` file.
    pub async fn close(&self) -> Result<(), PublishError> {
        if let (Some(tarball), Some(path)) = (&self.tarball, &self.options.tarball) {
            let tarball = tarball.lock().await;
            if !tarball.is_empty() {
                if tarball_to_stdout(path) {
                    output::step("Writing the tarball to stdout");
                } else {
                    output::step(format!("Saving {}", path.display()));
                }
                tarball.write(&self.client, &self.cache, path).await?;
            }
        }
        if let Some(path) = &self.options.image_refs {
            let refs = self.refs.lock().await;
            let mut text = refs.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            outfile::write(path, false, true, |out| {
                out.write_all(text.as_bytes()).map_err(|source| PublishError::Io { path: path.clone(), source })
            })?;
        }
        if let Some(store) = &self.local_store {
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
        Ok(())
    }
}

/// The publisher hears of layers while they are made: a registry starts checking which blobs
/// it has and uploading new layers while they are compressed.
impl LayerSink for Publisher {
    fn expect(&self, import_path: &str, digests: &[&Digest]) {
        if let Some((sink, repo)) = self.push_repository(import_path) {
            sink.expect(&repo, digests);
        }
    }

    fn stream(&self, import_path: &str) -> Option<LayerStream> {
        let (sink, repo) = self.push_repository(import_path)?;
        sink.stream(repo)
    }
}
