//! Base images: the built-in static base, an image (or index) in a registry, in an OCI
//! layout on disk (`oci-layout://`) or in the Docker daemon (`ko.local/...`), resolved once
//! per reference per run, and narrowed to the platforms the user asked for.

pub mod builtin;
mod manifests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::assemble::layer::LayerError;
use crate::cache::{Cache, CacheError};
use crate::digest::Digest;
use crate::image::manifest::{DOCKER_CONFIG, Descriptor, Index, Manifest, MediaFamily, OCI_CONFIG, is_index};
use crate::image::{Blob, BlobSource};
use crate::media::SourceError;
use crate::media::daemon::{self, Docker};
use crate::media::layout;

pub use crate::image::BaseImage;
use crate::platform::{Platform, PlatformRequest};
use crate::registry::{Reference, ReferenceError, RegistryClient, RegistryError};

#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error("base image {reference:?}: {source}")]
    Reference { reference: String, source: ReferenceError },
    #[error("base image {reference}: {source}")]
    Registry { reference: String, source: RegistryError },
    #[error("base image {reference}: {detail}")]
    Invalid { reference: String, detail: String },
    #[error("base image {reference} has no image for {wanted}; it offers: {offered}")]
    NoPlatform { reference: String, wanted: String, offered: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("building the built-in base: {0}")]
    Layer(#[from] LayerError),
    #[error("base image {reference}: {path}: {source}")]
    LayoutIo { reference: String, path: PathBuf, source: std::io::Error },
    #[error("base image {reference} from the Docker daemon: {source}")]
    Daemon { reference: String, source: daemon::DockerError },
}

impl From<SourceError> for BaseError {
    fn from(error: SourceError) -> Self {
        match error {
            SourceError::Invalid { reference, detail } => BaseError::Invalid { reference, detail },
            SourceError::Io { reference, path, source } => BaseError::LayoutIo { reference, path, source },
            SourceError::Daemon { reference, source } => BaseError::Daemon { reference, source },
            SourceError::Cache(e) => BaseError::Cache(e),
        }
    }
}

/// The base images to build on, one per platform, and whether they came from an index.
#[derive(Clone, Debug)]
pub struct BaseSet {
    pub images: Vec<BaseImage>,
    /// The base index's name, digest and media family, when several platforms were picked from one.
    pub index: Option<(String, Digest, MediaFamily)>,
    /// The base as ko names it in "Using base": the reference with the digest of what it
    /// points at (the index, for a multi-platform base), once.
    pub shown: String,
}

/// `name@digest`, or `name` alone when it already names its digest.
fn shown(name: &str, digest: &Digest) -> String {
    if name.contains('@') { name.to_string() } else { format!("{name}@{digest}") }
}

/// Where a base's manifests and blobs are read from.
enum Origin {
    Registry(Reference),
    Layout(PathBuf),
}

struct RemoteIndex {
    name: String,
    digest: Digest,
    family: MediaFamily,
    origin: Origin,
    index: Index,
}

enum Resolved {
    Builtin,
    Image(Box<BaseImage>),
    Index(Box<RemoteIndex>),
}

/// A base saved from the Docker daemon: a Docker schema 2 image, never from an index.
fn from_daemon(saved: daemon::load::Saved) -> BaseImage {
    let daemon::load::Saved { name, digest, manifest, config, layers, platform } = saved;
    BaseImage { name, digest, family: MediaFamily::Docker, manifest, config, layers, platform, descriptor: None }
}

/// Resolves base references, each at most once per run.
pub struct BaseResolver {
    client: Arc<RegistryClient>,
    cache: Cache,
    docker: Docker,
    memo: Mutex<HashMap<String, Arc<OnceCell<Arc<Resolved>>>>>,
}

fn display_name(reference: &Reference) -> String {
    if reference.tag.is_none() && reference.digest.is_none() {
        format!("{reference}:latest")
    } else {
        reference.to_string()
    }
}

impl BaseResolver {
    pub fn new(client: Arc<RegistryClient>, cache: Cache, docker: Docker) -> Self {
        BaseResolver { client, cache, docker, memo: Mutex::new(HashMap::new()) }
    }

    async fn resolve(&self, reference: &str) -> Result<Arc<Resolved>, BaseError> {
        let cell = self.memo.lock().expect("base memo lock").entry(reference.to_string()).or_default().clone();
        cell.get_or_try_init(|| async {
            if builtin::is_builtin(reference) {
                return Ok(Arc::new(Resolved::Builtin));
            }
            if daemon::load::is_daemon(reference) {
                let saved = daemon::load::load(&self.docker, &self.cache, reference).await?;
                return Ok(Arc::new(Resolved::Image(Box::new(from_daemon(saved)))));
            }
            let (name, digest, media_type, bytes, origin) = if layout::is_layout(reference) {
                let parsed = layout::parse(reference)?;
                // index.json and one manifest: small reads, like the cached config below.
                let found = layout::find(reference, &parsed)?;
                (reference.to_string(), found.digest, found.media_type, found.bytes.into(), Origin::Layout(parsed.root))
            } else {
                let parsed = Reference::parse(reference)
                    .map_err(|source| BaseError::Reference { reference: reference.to_string(), source })?;
                let name = display_name(&parsed);
                let fetched = manifests::fetch(&self.client, &self.cache, &parsed)
                    .await
                    .map_err(|source| BaseError::Registry { reference: name.clone(), source })?;
                (name, fetched.digest, fetched.media_type, fetched.bytes, Origin::Registry(parsed))
            };
            let invalid = |detail: String| BaseError::Invalid { reference: name.clone(), detail };
            let family = MediaFamily::of_manifest(&media_type)
                .ok_or_else(|| invalid(manifests::what_is_wrong(&digest, &media_type, &bytes)))?;
            if is_index(&media_type) {
                let index: Index = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
                return Ok(Arc::new(Resolved::Index(Box::new(RemoteIndex { name, digest, family, origin, index }))));
            }
            let image = self.image_from_manifest(&origin, &name, digest, &bytes, family, None).await?;
            Ok(Arc::new(Resolved::Image(Box::new(image))))
        })
        .await
        .cloned()
    }

    async fn image_from_manifest(
        &self,
        origin: &Origin,
        name: &str,
        digest: Digest,
        bytes: &[u8],
        family: MediaFamily,
        descriptor: Option<Descriptor>,
    ) -> Result<BaseImage, BaseError> {
        let invalid = |detail: String| BaseError::Invalid { reference: name.to_string(), detail };
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("unreadable manifest: {e}")))?;
        if let Some(why) = not_an_image(&manifest) {
            return Err(invalid(format!(
                "{why}: an artifact (an SBOM, a signature, ...), not a container image to build on; name an image"
            )));
        }
        let config_digest = manifest.config.digest.clone();
        let repo = match origin {
            Origin::Registry(reference) => {
                let repo = &reference.repository;
                if self.cache.read_blob(&config_digest).is_none() {
                    let temp = self.cache.temp_file()?;
                    self.client
                        .fetch_blob(repo, &config_digest, temp.path())
                        .await
                        .map_err(|source| BaseError::Registry { reference: name.to_string(), source })?;
                    self.cache.commit_blob(temp, &config_digest)?;
                }
                Some(repo)
            }
            Origin::Layout(root) => {
                // A config damaged in the cache goes, so that it is imported again.
                let _ = self.cache.read_blob(&config_digest);
                // Layers are hashed while copied in: off the async threads.
                // A foreign layer is left out of a layout as it is out of a registry push.
                let layers =
                    manifest.layers.iter().filter(|d| d.is_distributable() || layout::has_blob(root, &d.digest));
                let blobs: Vec<(Digest, u64)> =
                    std::iter::once(&manifest.config).chain(layers).map(|d| (d.digest.clone(), d.size)).collect();
                let (name, cache, root) = (name.to_string(), self.cache.clone(), root.clone());
                tokio::task::spawn_blocking(move || {
                    blobs.iter().try_for_each(|(d, size)| layout::import_blob(&name, &cache, &root, d, *size))
                })
                .await
                .expect("layout import task")?;
                None
            }
        };
        let config_bytes = self
            .cache
            .read_blob(&config_digest)
            .ok_or_else(|| invalid(format!("config {config_digest} does not match its digest")))?;
        let config: serde_json::Value =
            serde_json::from_slice(&config_bytes).map_err(|e| invalid(format!("unreadable config: {e}")))?;
        let platform = Platform::from_config(&config);
        let layers = manifest
            .layers
            .iter()
            .map(|d| Blob {
                descriptor: d.clone(),
                source: match repo {
                    Some(repo) if !self.cache.has_blob(&d.digest, d.size) => BlobSource::Remote(repo.clone()),
                    _ => BlobSource::Cache,
                },
            })
            .collect();
        Ok(BaseImage { name: name.to_string(), digest, family, manifest, config, layers, platform, descriptor })
    }

    /// The base images for `reference` on the requested platforms. `None` means no platform
    /// was asked for: linux/amd64, which a single-image base must be.
    pub async fn images(&self, reference: &str, request: Option<&PlatformRequest>) -> Result<BaseSet, BaseError> {
        let resolved = self.resolve(reference).await?;
        match &*resolved {
            Resolved::Builtin => self.builtin_images(reference, request),
            Resolved::Image(image) => single_image(image, request),
            Resolved::Index(remote) => {
                let default = PlatformRequest::List(vec![Platform::linux("amd64")]);
                let chosen = choose_from_index(remote, request.unwrap_or(&default))?;
                let mut images = Vec::new();
                for entry in chosen {
                    images.push(self.index_entry(remote, entry).await?);
                }
                let RemoteIndex { name, digest, family, .. } = &**remote;
                let index = (images.len() > 1).then(|| (name.clone(), digest.clone(), *family));
                Ok(BaseSet { images, index, shown: shown(name, digest) })
            }
        }
    }

    /// The built-in base, made for each platform asked for (linux/amd64 when none is).
    fn builtin_images(&self, reference: &str, request: Option<&PlatformRequest>) -> Result<BaseSet, BaseError> {
        let platforms = match request {
            None => vec![Platform::linux("amd64")],
            Some(PlatformRequest::All) => builtin::all_platforms(),
            Some(PlatformRequest::List(list)) => {
                let mut platforms: Vec<Platform> = Vec::new();
                for p in list {
                    // `linux` and `linux/amd64` are one platform here: built once.
                    let p = complete_for_builtin(p, reference)?;
                    if !platforms.contains(&p) {
                        platforms.push(p);
                    }
                }
                platforms
            }
        };
        let images = platforms.iter().map(|p| builtin::image(&self.cache, p)).collect::<Result<Vec<_>, _>>()?;
        let shown = images.first().map(|i| shown(&i.name, &i.digest)).unwrap_or_default();
        Ok(BaseSet { images, index: None, shown })
    }

    /// One entry of a base index: its manifest (from the registry or the layout the index came
    /// from) as a base image, labelled with the platform the index gives it.
    async fn index_entry(&self, remote: &RemoteIndex, entry: &Descriptor) -> Result<BaseImage, BaseError> {
        let RemoteIndex { name, family, origin, .. } = remote;
        let (digest, bytes, media_type) = match origin {
            Origin::Registry(parsed) => {
                let child = Reference { digest: Some(entry.digest.clone()), ..parsed.clone() };
                let fetched = manifests::fetch(&self.client, &self.cache, &child)
                    .await
                    .map_err(|source| BaseError::Registry { reference: name.clone(), source })?;
                (fetched.digest, fetched.bytes, fetched.media_type)
            }
            Origin::Layout(root) => {
                let bytes = layout::read_blob(name, root, &entry.digest)?.into();
                (entry.digest.clone(), bytes, entry.media_type.clone())
            }
        };
        // Each image keeps its own media types, as ko never converts: an OCI index may list
        // Docker schema 2 manifests, and the reverse.
        let family = MediaFamily::of_manifest(&media_type).unwrap_or(*family);
        let mut image = self.image_from_manifest(origin, name, digest, &bytes, family, Some(entry.clone())).await?;
        if let Some(p) = &entry.platform {
            image.platform = p.clone();
        }
        Ok(image)
    }
}

/// A single-image base, when it offers a platform that was asked for.
/// Why `manifest` is not a container image, when it is not: an `artifactType`, a config that
/// is no image configuration, or a layer that is no filesystem (an SBOM's document, say).
fn not_an_image(manifest: &Manifest) -> Option<String> {
    if let Some(kind) = &manifest.artifact_type {
        return Some(format!("its manifest has artifactType {kind}"));
    }
    let config = &manifest.config.media_type;
    if config != OCI_CONFIG && config != DOCKER_CONFIG {
        return Some(format!("its config is {config}"));
    }
    let filesystem = |t: &str| {
        t.starts_with("application/vnd.oci.image.layer.") || t.starts_with("application/vnd.docker.image.rootfs.")
    };
    let other = manifest.layers.iter().find(|layer| !filesystem(&layer.media_type))?;
    Some(format!("its layer {} is {}", other.digest, other.media_type))
}

fn single_image(image: &BaseImage, request: Option<&PlatformRequest>) -> Result<BaseSet, BaseError> {
    // Each platform asked for must be the base's: one it lacks is named, not dropped. With
    // none asked for, the target is linux/amd64, as in ko: a base of another platform is
    // refused with the flag that takes it, not built for its platform unasked.
    let default = [Platform::linux("amd64")];
    let missing = match request {
        Some(PlatformRequest::All) => None,
        None => default.iter().find(|p| !p.matches(&image.platform)),
        Some(PlatformRequest::List(list)) => list.iter().find(|p| !p.matches(&image.platform)),
    };
    if let Some(want) = missing {
        let offered = image.platform.to_string();
        let offered = match request {
            None => format!(
                "{offered} (no platform was asked for, so the target is linux/amd64; pass --platform={offered} to build for the base's)"
            ),
            Some(_) => offered,
        };
        return Err(BaseError::NoPlatform { reference: image.name.clone(), wanted: want.to_string(), offered });
    }
    Ok(BaseSet { images: vec![image.clone()], index: None, shown: shown(&image.name, &image.digest) })
}

/// The entries of a base index that `request` picks: with `all`, every entry but attestations
/// (an entry naming no platform is built for its config's, as ko does); with a list, every
/// entry matching one of them, and each one listed must match.
fn choose_from_index<'a>(remote: &'a RemoteIndex, request: &PlatformRequest) -> Result<Vec<&'a Descriptor>, BaseError> {
    let name = &remote.name;
    let offered: Vec<(&Descriptor, Platform)> =
        remote.index.manifests.iter().map(|d| (d, d.platform.clone().unwrap_or_default())).collect();
    if let Some((d, _)) = offered.iter().find(|(d, _)| is_index(&d.media_type)) {
        return Err(BaseError::Invalid {
            reference: name.clone(),
            detail: format!("it nests another index ({}), which is not supported", d.digest),
        });
    }
    let list = match request {
        PlatformRequest::All => {
            let chosen: Vec<&Descriptor> = offered
                .iter()
                .filter(|(d, p)| d.platform.is_none() || Platform::default().matches(p))
                .map(|(d, _)| *d)
                .collect();
            if chosen.is_empty() {
                return Err(BaseError::NoPlatform {
                    reference: name.clone(),
                    wanted: "all (any named platform)".into(),
                    offered: describe_offered(&offered),
                });
            }
            return Ok(chosen);
        }
        PlatformRequest::List(list) => list,
    };
    if let Some(want) = list.iter().find(|want| !offered.iter().any(|(_, p)| want.matches(p))) {
        return Err(BaseError::NoPlatform {
            reference: name.clone(),
            wanted: want.to_string(),
            offered: describe_offered(&offered),
        });
    }
    Ok(offered.iter().filter(|(_, p)| list.iter().any(|w| w.matches(p))).map(|(d, _)| *d).collect())
}

/// The platforms an index offers, as an error lists them: without attestation manifests
/// (`unknown`) and entries that name no platform.
fn describe_offered(offered: &[(&Descriptor, Platform)]) -> String {
    let named: Vec<String> =
        offered.iter().filter(|(_, p)| p.os != "unknown" && !p.os.is_empty()).map(|(_, p)| p.to_string()).collect();
    if named.is_empty() { "no named platform".into() } else { named.join(", ") }
}

/// The built-in base serves any Linux platform Go targets; a bare `linux` means amd64.
fn complete_for_builtin(p: &Platform, reference: &str) -> Result<Platform, BaseError> {
    if p.os != "linux" {
        return Err(BaseError::NoPlatform {
            reference: reference.to_string(),
            wanted: p.to_string(),
            offered: "any linux platform".into(),
        });
    }
    let mut p = p.clone();
    if p.arch.is_empty() {
        p.arch = "amd64".into();
    }
    if p.arch == "arm" && p.variant.is_none() {
        p.variant = Some("v7".into());
    }
    Ok(p)
}
