//! Where built images go, chosen from `KO_DOCKER_REPO` and the publish flags as ko chooses:
//! an OCI layout, a tarball and a registry (each optional, in that order; the last one's
//! reference is printed), a no-push reference, or the local store when no repository is set;
//! or, for `ko.local`/`--local` and `kind.local`, only the Docker daemon or the kind cluster.

mod attest;
pub mod naming;
mod outfile;
mod registry;
mod sbom;
mod sinks;
mod tarball;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Mutex;

pub use sinks::Published;
use sinks::{Item, Sink};

pub use naming::Naming;
pub use outfile::tarball_to_stdout;

use crate::cache::{Cache, CacheError};
use crate::digest::Digest;
use crate::image::Artifact;
use crate::image::sink::{LayerSink, LayerStream};
use crate::media::MediaError;
use crate::media::daemon::kind::KIND_DOMAIN;
use crate::media::daemon::{self, Docker, LOCAL_DOMAIN};
use crate::media::layout::Layout;
use crate::output;
use crate::registry::{Reference, ReferenceError, RegistryClient, RegistryError, Repository};

/// An index's lines in `--image-refs`, as ko writes them: the index, then each image in index
/// order, each as `<repository>@<digest>` with the repository normalised (`docker.io/x` is
/// `index.docker.io/library/x`). None for an image.
pub(crate) fn entities(name: &str, artifact: &Artifact) -> Vec<String> {
    let Artifact::Index(index) = artifact else { return Vec::new() };
    let repository = Repository::parse(name).map(|r| r.to_string()).unwrap_or_else(|_| name.to_string());
    std::iter::once(&index.digest)
        .chain(index.images.iter().map(|i| &i.digest))
        .map(|d| format!("{repository}@{d}"))
        .collect()
}

/// How many artifacts at least move their tags at once. A tag is one small `PUT` that waits
/// on the registry, not on this machine, and all of them come after the last image is made:
/// ten images and their SBOMs moved four at a time were six round trips after the build.
const TAGS_AT_ONCE: usize = 10;

/// Whether no two of these image names are the same.
fn distinct<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> bool {
    let mut seen = std::collections::HashSet::new();
    names.into_iter().all(|name| seen.insert(name.as_ref().to_string()))
}

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
        "the image name {} for {import_path} is not a valid repository: {}; {fix}",
        quoted(name), source.reason
    )]
    BadName { name: String, import_path: String, source: ReferenceError, fix: &'static str },
    #[error(
        "--tags: {} {reason}; a tag is letters, digits, '_', '.' and '-', at most 128 characters, not starting with '.' or '-'",
        quoted(tag)
    )]
    BadTag { tag: String, reason: String },
    #[error("{flag} {path}: {detail}")]
    BadOutput { flag: &'static str, path: PathBuf, detail: String },
    #[error("--tag-only needs exactly one tag other than latest (got {tags:?}); pass one with -t")]
    TagOnly { tags: Vec<String> },
    #[error("--tag-only needs a tag to print in place of the digest (-t gave none); pass one with -t")]
    TagOnlyWithoutTag,
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Sign(#[from] crate::sign::SignError),
}

impl PublishError {
    /// An image name that is no repository, with the way out its fault calls for.
    pub(crate) fn bad_name(name: &str, import_path: &str, source: ReferenceError) -> PublishError {
        let fix = if name.is_empty() {
            "set KO_DOCKER_REPO to the registry and repository to push to"
        } else if name.chars().any(|c| c.is_ascii_uppercase()) {
            "import paths keep their case with --push=false, as in ko (a push lowercases them); push, or use --bare"
        } else {
            "shorten KO_DOCKER_REPO or choose other naming flags (-B, --bare)"
        };
        PublishError::BadName { name: name.to_string(), import_path: import_path.to_string(), source, fix }
    }
}

/// Publishing settings from the command line and environment.
#[derive(Clone, Debug, Default)]
pub struct PublishSettings {
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
    /// The Docker CLI, for `ko.local` and `kind.local`.
    pub docker: Docker,
    /// The kind cluster for `kind.local` (`KIND_CLUSTER_NAME`, else `kind`).
    pub kind_cluster: String,
    /// `--sign-key`: sign every image and index, and attest its provenance and SBOM.
    pub sign: Option<crate::sign::SignSettings>,
}

/// The publishers for one run.
pub struct Publisher {
    settings: PublishSettings,
    client: Arc<RegistryClient>,
    cache: Cache,
    /// The repository images are named under (for the local store, a placeholder).
    repo: String,
    /// Where each artifact goes, in this order; none: not pushed.
    sinks: Vec<Sink>,
    refs: Mutex<Vec<String>>,
    /// Artifacts pushed at once by [`Publisher::publish_built`].
    publishing: tokio::sync::Semaphore,
}

impl Publisher {
    pub fn new(
        mut settings: PublishSettings,
        client: Arc<RegistryClient>,
        cache: Cache,
    ) -> Result<Publisher, PublishError> {
        let mut seen = std::collections::HashSet::new();
        settings.tags.retain(|t| !t.is_empty() && seen.insert(t.clone()));
        // Every tag is checked before anything is built: a bad one found while pushing would
        // leave the good ones moved.
        for tag in &settings.tags {
            Reference::validate_tag(tag).map_err(|reason| PublishError::BadTag { tag: tag.clone(), reason })?;
        }
        if let Some(path) = &settings.image_refs {
            outfile::check("--image-refs", path, false)?;
        }
        let repo = settings.docker_repo.clone().unwrap_or_default();
        let (repo, sinks) = match local_sink(&settings, &repo) {
            Some(sink) => {
                check_repo(&repo)?;
                (if repo.is_empty() { LOCAL_DOMAIN.to_string() } else { repo }, vec![sink])
            }
            None => {
                let sinks = sinks(&settings, &repo, &client, &cache)?;
                // Without KO_DOCKER_REPO names stay bare as in ko (`hello-<md5>:latest@…`),
                // in the local store and a --tarball alike (a tarball tagged ko.local/… would
                // replace the daemon's own ko.local image on `docker load`). Only --bare,
                // which has no name of its own, takes a placeholder for the store.
                let placeholder = repo.is_empty() && settings.push && settings.naming == naming::Naming::Bare;
                (if placeholder { LOCAL_DOMAIN.to_string() } else { repo }, sinks)
            }
        };
        if settings.sign.is_some() {
            warn_unsigned(&sinks);
        }
        let publishing = tokio::sync::Semaphore::new(settings.jobs.max(1));
        Ok(Publisher { settings, client, cache, repo, sinks, refs: Mutex::new(vec![]), publishing })
    }

    /// Checks, before anything is built, that the Docker daemon or kind cluster to load
    /// into is there.
    pub async fn prepare(&self) -> Result<(), PublishError> {
        for sink in &self.sinks {
            sink.prepare().await?;
        }
        Ok(())
    }

    /// The image name an import path gets.
    pub fn name_for(&self, import_path: &str) -> String {
        let lowered;
        // Every publisher but the no-push one lowercases, as ko does.
        let ip = if !self.sinks.is_empty() {
            lowered = import_path.to_lowercase();
            &lowered
        } else {
            import_path
        };
        naming::image_name(&self.repo, ip, self.settings.naming)
    }

    /// Checks, before anything is built or pushed, that every import path's image name is a
    /// valid repository (grammar and length): the printed references must be usable.
    pub fn check_names(&self, import_paths: &[&str]) -> Result<(), PublishError> {
        for import_path in import_paths {
            let name = self.name_for(import_path);
            Repository::parse(&name).map_err(|source| PublishError::bad_name(&name, import_path, source))?;
        }
        Ok(())
    }

    /// Whether `--tarball -` (or /dev/stdout) sends the archive to stdout, so references must
    /// go elsewhere.
    pub fn tarball_to_stdout(&self) -> bool {
        self.sinks.iter().any(|s| matches!(s, Sink::Tarball { path, .. } if outfile::tarball_to_stdout(path)))
    }

    /// The registry an import path's image is pushed to, and its repository there, when it
    /// goes to one.
    fn push_repository(&self, import_path: &str) -> Option<(&registry::RegistrySink, Repository)> {
        let sink = self.sinks.iter().find_map(|s| match s {
            Sink::Registry { registry, .. } => Some(registry),
            _ => None,
        })?;
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
        let import_paths: Vec<&str> = items.iter().map(|(p, _)| *p).collect();
        self.check_names(&import_paths)?;
        let published: Vec<Published> = if !self.publishes_as_built(&import_paths) {
            let mut published = Vec::with_capacity(items.len());
            for (import_path, artifact) in items {
                published.push(self.publish_one(import_path, artifact).await?);
            }
            published
        } else {
            use futures_util::{StreamExt, TryStreamExt};
            futures_util::stream::iter(items.iter().map(|(p, a)| self.publish_one(p, a)))
                .buffered(self.settings.jobs.max(1))
                .try_collect()
                .await?
        };
        self.finish(published).await
    }

    /// Whether these artifacts may each be pushed as soon as it is built, in any order: only
    /// to registries (nothing writes a shared file in order) and under distinct names (two
    /// import paths with one image name would race for the same tags).
    pub fn publishes_as_built(&self, import_paths: &[&str]) -> bool {
        !self.sinks.iter().any(Sink::is_shared) && distinct(import_paths.iter().map(|p| self.name_for(p)))
    }

    /// Pushes one artifact by digest, its tags left to [`Publisher::finish`]; at most `-j`
    /// at once.
    pub async fn publish_built(&self, import_path: &str, artifact: &Artifact) -> Result<Published, PublishError> {
        let _permit = self.publishing.acquire().await.expect("semaphore open");
        self.publish_one(import_path, artifact).await
    }

    /// Once every artifact is pushed: moves the tags and returns the references, in order.
    /// The files (a tarball, `--image-refs`) are written first: one that cannot be written
    /// (a full disk, `/dev/full`) fails the run before any tag moves.
    pub async fn finish(&self, published: Vec<Published>) -> Result<Vec<String>, PublishError> {
        {
            let mut refs = self.refs.lock().await;
            for item in &published {
                if item.entities.is_empty() {
                    refs.push(item.reference.clone());
                } else {
                    refs.extend(item.entities.iter().cloned());
                }
            }
        }
        self.write_out().await?;
        let moved = std::sync::Mutex::new(Vec::new());
        if let Err(e) = self.move_tags(&published, &moved).await {
            let moved = moved.into_inner().expect("the moved tags are never poisoned");
            if !moved.is_empty() {
                output::warn(format!(
                    "tags moved before the run failed (at least these; each names a complete image, SBOM or signature): {}",
                    moved.join(", ")
                ));
            }
            return Err(e);
        }
        Ok(published.into_iter().map(|p| p.reference).collect())
    }

    /// Every artifact is pushed: now the tags, the SBOMs' first, so that a refused SBOM tag
    /// leaves every image tag where it was. Artifacts with names of their own move their tags
    /// [`TAGS_AT_ONCE`] or `-j` at once, whichever is more (each artifact's in order);
    /// artifacts that share a name, one after the other, so that the last one named wins.
    /// Each line that says an artifact is published is printed in order.
    async fn move_tags(
        &self,
        published: &[Published],
        moved: &std::sync::Mutex<Vec<String>>,
    ) -> Result<(), PublishError> {
        use futures_util::{StreamExt, TryStreamExt, stream};
        let at_once =
            if distinct(published.iter().map(|p| p.name.as_str())) { self.settings.jobs.max(TAGS_AT_ONCE) } else { 1 };
        stream::iter(published.iter().map(|item| registry::apply(&self.client, &item.pending.sboms, moved)))
            .buffered(at_once)
            .try_collect::<Vec<()>>()
            .await?;
        let mut tagged =
            stream::iter(published.iter().map(|item| async move {
                registry::apply(&self.client, &item.pending.tags, moved).await.map(|()| item)
            }))
            .buffered(at_once);
        while let Some(item) = tagged.try_next().await? {
            if let Some(done) = &item.done {
                output::step(done);
            }
        }
        Ok(())
    }

    /// Publishes one artifact everywhere it should go: the reference to print, and the
    /// registry tags still to move.
    async fn publish_one(&self, import_path: &str, artifact: &Artifact) -> Result<Published, PublishError> {
        let name = self.name_for(import_path);
        let (tags, tag_only) = (&self.settings.tags, self.settings.tag_only);
        let sign = self.settings.sign.as_ref();
        let item = Item { import_path, name: &name, artifact, tags, tag_only, sign };
        let mut published = Published {
            name: name.clone(),
            reference: naming::unpushed_reference(&name, tags, tag_only, artifact.digest()),
            pending: Default::default(),
            done: None,
            entities: entities(&name, artifact),
        };
        for sink in &self.sinks {
            sink.publish(&self.client, &self.cache, &item, &mut published).await?;
        }
        Ok(published)
    }

    /// Writes what is written once the images are made: the tarball and the `--image-refs`
    /// file (each replaced whole; see `outfile`).
    async fn write_out(&self) -> Result<(), PublishError> {
        // A file that cannot be written is named by its flag; no tag has moved yet.
        let named = |flag: &'static str| {
            move |e: PublishError| match e {
                PublishError::Io { path, source } => PublishError::BadOutput {
                    flag,
                    path,
                    detail: format!("cannot be written ({source}); no tag was moved"),
                },
                other => other,
            }
        };
        for sink in &self.sinks {
            sink.write_out(&self.client, &self.cache).await.map_err(named("--tarball"))?;
        }
        if let Some(path) = &self.settings.image_refs {
            let refs = self.refs.lock().await;
            let mut text = refs.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            outfile::write(path, false, true, |out| {
                out.write_all(text.as_bytes()).map_err(|source| PublishError::Io { path: path.clone(), source })
            })
            .map_err(named("--image-refs"))?;
        }
        Ok(())
    }

    /// Ends a run: says where the local store put the images.
    pub async fn close(&self) -> Result<(), PublishError> {
        for sink in &self.sinks {
            sink.report();
        }
        Ok(())
    }
}

/// ko's rule: `--local`, or a `KO_DOCKER_REPO` that starts with ko.local, means the daemon
/// only (named under the whole `KO_DOCKER_REPO`); kind.local means the kind cluster only.
/// `--push`, `--tarball`, `--oci-layout-path` and `--tag-only` do not apply to either.
fn local_sink(settings: &PublishSettings, repo: &str) -> Option<Sink> {
    let sink = if settings.local || repo.starts_with(LOCAL_DOMAIN) {
        if settings.local && repo.contains(LOCAL_DOMAIN) {
            output::warn("--local is not needed with KO_DOCKER_REPO=ko.local...; ko may deprecate the flag");
        }
        Sink::Daemon(daemon::Daemon::new(settings.docker.clone()))
    } else if repo.starts_with(KIND_DOMAIN) {
        Sink::Kind(daemon::Kind::new(settings.docker.clone(), settings.kind_cluster.clone()))
    } else {
        return None;
    };
    let ignored: Vec<&str> = [
        (settings.tarball.is_some(), "--tarball"),
        (settings.oci_layout_path.is_some(), "--oci-layout-path"),
        (settings.tag_only, "--tag-only"),
    ]
    .into_iter()
    .filter_map(|(set, flag)| set.then_some(flag))
    .collect();
    if !ignored.is_empty() {
        let target = if matches!(sink, Sink::Kind(_)) { "the kind cluster" } else { "the Docker daemon" };
        output::warn(format!("ignoring {}: images go only to {target} (as in ko)", ignored.join(", ")));
    }
    Some(sink)
}

/// Says once which destinations of a signed run cannot hold signatures and attestations.
fn warn_unsigned(sinks: &[Sink]) {
    if sinks.is_empty() {
        output::warn("--sign-key: --push=false publishes nothing, so nothing is signed");
    }
    for sink in sinks {
        let place = match sink {
            Sink::Daemon(_) => "the Docker daemon",
            Sink::Kind(_) => "the kind cluster",
            Sink::Registry { .. } | Sink::Layout(_) | Sink::LocalStore(_) | Sink::Tarball { .. } => continue,
        };
        output::warn(format!(
            "--sign-key: {place} cannot hold signatures or attestations; what goes there is unsigned (a registry or --oci-layout-path keeps them)"
        ));
    }
}

/// `KO_DOCKER_REPO` checked: a repository, or a bare registry (`ghcr.io`, `localhost:5000`).
fn check_repo(repo: &str) -> Result<(), PublishError> {
    if repo.is_empty() {
        return Ok(());
    }
    Repository::parse(repo)
        .or_else(|e| {
            if !repo.contains('/')
                && (repo.contains('.') || repo.contains(':'))
                && Reference::validate_registry(repo).is_ok()
            {
                Ok(Repository { registry: repo.to_string(), path: String::new() })
            } else {
                Err(e)
            }
        })
        .map(drop)
        .map_err(|source| PublishError::BadRepo { value: repo.to_string(), source })
}

/// The sinks for a run that does not go to the daemon or kind: an OCI layout, a tarball, a
/// registry and the local store, each when the settings ask for it, in that order.
fn sinks(
    settings: &PublishSettings,
    repo: &str,
    client: &Arc<RegistryClient>,
    cache: &Cache,
) -> Result<Vec<Sink>, PublishError> {
    check_repo(repo)?;
    if let Some(path) = &settings.tarball {
        outfile::check("--tarball", path, true)?;
    }
    let registry = settings.push && !repo.is_empty();
    if registry && settings.tag_only && (settings.tags.len() != 1 || settings.tags[0] == "latest") {
        return Err(PublishError::TagOnly { tags: settings.tags.clone() });
    }
    // With nothing but the printed reference, --tag-only needs a tag to print; a tarball or
    // layout is written anyway, and its reference keeps the digest (as in ko).
    let written = settings.tarball.is_some() || settings.oci_layout_path.is_some();
    if settings.tag_only && settings.tags.is_empty() && !written {
        return Err(PublishError::TagOnlyWithoutTag);
    }
    let sbom_repo = match settings.sbom_repository.as_deref() {
        Some(value) => Some(
            Repository::parse(value)
                .map_err(|source| PublishError::BadSbomRepo { value: value.to_string(), source })?,
        ),
        None => None,
    };
    let mut sinks = Vec::new();
    if let Some(path) = settings.oci_layout_path.as_deref() {
        sinks.push(Sink::Layout(Layout::open(path)?));
    }
    if let Some(path) = &settings.tarball {
        sinks.push(Sink::Tarball { tarball: Default::default(), path: path.clone() });
    }
    if registry {
        let registry = registry::RegistrySink::new(client.clone(), cache.clone(), settings.jobs);
        sinks.push(Sink::Registry { registry, sbom_repo });
    }
    if settings.push && repo.is_empty() {
        // A tarball beside the store takes the tags; the store names each image itself.
        let tagged = settings.tag_only || settings.tags.iter().any(|t| t != "latest");
        if tagged && settings.tarball.is_none() {
            output::warn(
                "-t/--tags and --tag-only name tags in a registry: with KO_DOCKER_REPO unset, the local store tags each image <name>-<digest>; set KO_DOCKER_REPO to push under those tags",
            );
        }
        sinks.push(Sink::LocalStore(Layout::open_store(&cache.image_store()?)?));
    }
    Ok(sinks)
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
