//! OCI image layouts on disk: blobs under `blobs/sha256/`, images listed in `index.json`.
//!
//! As a source: base images from `oci-layout://PATH[:TAG|@DIGEST]` (beyond ko), or the
//! containers-transport spelling `oci:PATH[:TAG]` that skopeo, podman and buildah use (and
//! that `build` prints for the local store). The entry is picked from `index.json` by its
//! `org.opencontainers.image.ref.name` annotation (`:TAG`), by digest (`@sha256:…`, which may
//! also name a blob of the layout that `index.json` does not list), or is the only entry. Blobs
//! are checked against their digest and copied (or hard-linked) into the cache, so the rest of
//! the build treats them like any cached blob.
//!
//! As a sink ([`Layout`]): `--oci-layout-path`, and the local store used when `KO_DOCKER_REPO`
//! is unset. Registry bases and the cache live elsewhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{MediaError, SourceError, blobs};
use crate::cache::{Cache, write_atomic};
use crate::digest::{Digest, digest_file};
use crate::image::manifest::{Descriptor, Index, OCI_INDEX, sniff_media_type};
use crate::image::{Artifact, Image};
use crate::registry::RegistryClient;

pub const SCHEME: &str = "oci-layout://";
/// The containers-transport prefix (`oci:PATH[:TAG]`).
pub const TRANSPORT: &str = "oci:";

/// Whether a base reference names an OCI layout: `oci-layout://…`, or `oci:PATH[:TAG]`. A
/// registry host called `oci` with a port (`oci:5000/app`) stays a registry reference.
pub fn is_layout(reference: &str) -> bool {
    if reference.starts_with(SCHEME) {
        return true;
    }
    let Some(rest) = reference.strip_prefix(TRANSPORT) else { return false };
    let port_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    !(port_len > 0 && rest[port_len..].starts_with('/'))
}
/// The annotation that names (tags) an entry of `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Which entry of the layout a reference names.
#[derive(Clone, Debug, PartialEq)]
pub enum Selector {
    Only,
    Tag(String),
    Digest(Digest),
}

#[derive(Clone, Debug, PartialEq)]
pub struct LayoutRef {
    pub root: PathBuf,
    pub selector: Selector,
}

/// A manifest or index read from the layout.
pub struct Found {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

fn invalid(reference: &str, detail: impl Into<String>) -> SourceError {
    SourceError::Invalid { reference: reference.to_string(), detail: detail.into() }
}

/// Parses what follows `oci-layout://`.
pub fn parse(reference: &str) -> Result<LayoutRef, SourceError> {
    if let Some(spec) = reference.strip_prefix(TRANSPORT) {
        // As in containers/image: the path ends at the first colon, the rest is the
        // `org.opencontainers.image.ref.name` to pick (which may hold colons itself).
        let (path, selector) = match spec.split_once(':') {
            Some((path, name)) if !name.is_empty() => (path, Selector::Tag(name.to_string())),
            Some((path, _)) => (path, Selector::Only),
            None => (spec, Selector::Only),
        };
        if path.is_empty() {
            return Err(invalid(reference, "no path; write oci:PATH[:TAG]"));
        }
        return Ok(LayoutRef { root: PathBuf::from(path), selector });
    }
    let spec = reference.strip_prefix(SCHEME).unwrap_or(reference);
    let (path, selector) = if let Some((path, digest)) = spec.rsplit_once('@') {
        let digest = Digest::parse(digest).map_err(|e| {
            invalid(
                reference,
                format!(
                    "{e}; write oci-layout://PATH@sha256:<64 hex digits>, oci-layout://PATH:TAG or oci-layout://PATH"
                ),
            )
        })?;
        (path, Selector::Digest(digest))
    } else {
        match spec.rsplit_once(':') {
            Some((path, tag)) if !tag.contains('/') && !tag.is_empty() => (path, Selector::Tag(tag.to_string())),
            _ => (spec, Selector::Only),
        }
    };
    if path.is_empty() {
        return Err(invalid(reference, "no path; write oci-layout://PATH[:TAG|@DIGEST]"));
    }
    Ok(LayoutRef { root: PathBuf::from(path), selector })
}

/// Reads a blob of the layout, checking its digest.
pub fn read_blob(reference: &str, root: &Path, digest: &Digest) -> Result<Vec<u8>, SourceError> {
    let path = blob_path(root, digest);
    let bytes = std::fs::read(&path).map_err(|source| SourceError::Io { reference: reference.into(), path, source })?;
    if &Digest::of(&bytes) != digest {
        return Err(invalid(reference, format!("blob {digest} in {} does not match its digest", root.display())));
    }
    Ok(bytes)
}

/// Whether the layout holds the blob (a foreign layer's may be left out).
pub fn has_blob(root: &Path, digest: &Digest) -> bool {
    blob_path(root, digest).is_file()
}

fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs").join("sha256").join(digest.hex())
}

/// Finds the manifest or index the reference names.
pub fn find(reference: &str, layout: &LayoutRef) -> Result<Found, SourceError> {
    let root = &layout.root;
    let index_path = root.join("index.json");
    let index_bytes = std::fs::read(&index_path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            invalid(
                reference,
                format!(
                    "{} is not an OCI image layout (it has no index.json); point oci-layout:// at a directory written by `skopeo copy ... oci:DIR:TAG` or `--oci-layout-path DIR`",
                    root.display()
                ),
            )
        } else {
            SourceError::Io { reference: reference.into(), path: index_path.clone(), source }
        }
    })?;
    let index: Index = serde_json::from_slice(&index_bytes)
        .map_err(|e| invalid(reference, format!("{} is not an OCI image index ({e})", index_path.display())))?;
    let tags = || {
        let names: Vec<&str> = index
            .manifests
            .iter()
            .filter_map(|d| d.annotations.as_ref().and_then(|a| a.get(REF_NAME)).map(String::as_str))
            .collect();
        if names.is_empty() { "no tagged entries".to_string() } else { format!("tags: {}", names.join(", ")) }
    };
    // Referrers (signatures, attestations) are not images.
    let images: Vec<&Descriptor> = index.manifests.iter().filter(|d| !d.is_referrer()).collect();
    let descriptor = match &layout.selector {
        Selector::Only => match images.as_slice() {
            [only] => Some((*only).clone()),
            [] => return Err(invalid(reference, format!("{} lists no images", index_path.display()))),
            many => {
                return Err(invalid(
                    reference,
                    format!(
                        "{} lists {} entries; name one as oci-layout://{}:TAG or @sha256:... ({})",
                        index_path.display(),
                        many.len(),
                        root.display(),
                        tags()
                    ),
                ));
            }
        },
        Selector::Tag(tag) => {
            let found = index.manifests.iter().find(|d| {
                d.annotations.as_ref().and_then(|a| a.get(REF_NAME)).is_some_and(|name| {
                    name == tag || name.rsplit_once(':').is_some_and(|(repo, t)| t == tag && !repo.ends_with('/'))
                })
            });
            Some(found.cloned().ok_or_else(|| {
                invalid(reference, format!("no image tagged {tag:?} in {} ({})", index_path.display(), tags()))
            })?)
        }
        Selector::Digest(digest) => index.manifests.iter().find(|d| &d.digest == digest).cloned(),
    };
    let digest = match (&descriptor, &layout.selector) {
        (Some(d), _) => d.digest.clone(),
        (None, Selector::Digest(digest)) => {
            if !blob_path(root, digest).is_file() {
                return Err(invalid(reference, format!("{digest} is not in {} ({})", root.display(), tags())));
            }
            digest.clone()
        }
        (None, _) => unreachable!("only a digest can miss index.json"),
    };
    let bytes = read_blob(reference, root, &digest)?;
    let declared = descriptor.map(|d| d.media_type);
    let media_type = sniff_media_type(&bytes, declared.as_deref())
        .ok_or_else(|| invalid(reference, format!("{digest} in {} is not a manifest", root.display())))?;
    Ok(Found { digest, media_type, bytes })
}

/// Puts a blob of the layout into the cache (hard link when possible), checking its digest.
pub fn import_blob(reference: &str, cache: &Cache, root: &Path, digest: &Digest, size: u64) -> Result<(), SourceError> {
    if cache.has_blob(digest, size) {
        return Ok(());
    }
    let src = blob_path(root, digest);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SourceError::Io { reference: reference.to_string(), path, source }
    };
    let (actual, _) = digest_file(&src).map_err(io(&src))?;
    if &actual != digest {
        return Err(invalid(reference, format!("blob {digest} in {} does not match its digest", root.display())));
    }
    let temp = cache.temp_file()?;
    let temp_path = temp.path().to_path_buf();
    // A hard link shares the bytes; otherwise copy them.
    let _ = std::fs::remove_file(&temp_path);
    if std::fs::hard_link(&src, &temp_path).is_err() {
        fs_err::copy(&src, &temp_path).map_err(io(&temp_path))?;
    }
    cache.commit_blob(temp, digest)?;
    Ok(())
}

/// An OCI layout written to: blobs are added, and each image is listed in `index.json`. Its
/// directory is made with the first thing written, so a run that fails before (a Go build
/// error, a signal) leaves no layout without an `index.json` behind, as ko leaves none.
pub struct Layout {
    root: PathBuf,
    made: std::sync::OnceLock<()>,
    /// The way out of an unreadable `index.json`, which depends on whose layout it is.
    fix: &'static str,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MediaError + '_ {
    move |source| MediaError::Io { path: path.to_path_buf(), source }
}

/// Fails unless the layout at `root` can be made: the directory nearest to it that exists
/// (`root` itself, or an ancestor) takes a new directory, tried and removed at once, so that
/// a place nothing can be written to (`/proc`, a read-only mount) is said before the build,
/// not after it; the layout itself is still made with its first entry.
fn writable(root: &Path) -> Result<(), MediaError> {
    let absolute = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    let existing = absolute.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/"));
    let refused = |detail: String| MediaError::Layout { path: root.to_path_buf(), detail };
    if !existing.is_dir() {
        return Err(refused(format!("cannot be made: {} is not a directory", existing.display())));
    }
    tempfile::Builder::new().prefix(".kubectl-ko-check").tempdir_in(existing).map(drop).map_err(|e| {
        refused(format!(
            "cannot be written ({e} in {}); point --oci-layout-path at a directory you can write",
            existing.display()
        ))
    })
}

/// Hard-links `src` (a blob of the cache) to `dest`, or copies it through a temporary sibling
/// of its own (another process may be copying the same blob) that is removed if the copy
/// fails or a signal ends the process.
fn link_or_copy(src: &Path, dest: &Path) -> Result<(), MediaError> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::hard_link(src, dest).is_ok() {
        // Caches written before blobs were made 0644 hold 0600 files; the layout's readers
        // (other users, a container engine) need to read them.
        if let Ok(meta) = std::fs::metadata(dest)
            && meta.permissions().mode() & 0o044 == 0
        {
            let _ = std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o644 & !crate::cache::umask()));
        }
        return Ok(());
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    let (mut temp, _guard) = crate::cache::temp_file_outside(dir, "blob", ".partial").map_err(io(dir))?;
    let mut from = fs_err::File::open(src).map_err(io(src))?;
    std::io::copy(&mut from, temp.as_file_mut()).map_err(io(temp.path()))?;
    temp.persist(dest).map_err(|e| MediaError::Io { path: dest.to_path_buf(), source: e.error })?;
    Ok(())
}

impl Layout {
    pub fn open(root: &Path) -> Result<Layout, MediaError> {
        if root.exists() && !root.is_dir() {
            return Err(MediaError::Layout {
                path: root.to_path_buf(),
                detail: "is not a directory; name a directory for the OCI layout".into(),
            });
        }
        writable(root)?;
        Layout::checked(root, "point --oci-layout-path at an empty directory")
    }

    /// The local image store in the cache (`$KOCACHE/images`), where images go without
    /// `KO_DOCKER_REPO`.
    pub fn open_store(root: &Path) -> Result<Layout, MediaError> {
        let fix = "it is the local image store in the cache: remove that index.json (the images it lists are forgotten) or set KO_DOCKER_REPO";
        Layout::checked(root, fix)
    }

    /// The layout at `root`, once its `index.json` (if it has one) reads: one that does not
    /// is an error before anything is built or written, not after.
    fn checked(root: &Path, fix: &'static str) -> Result<Layout, MediaError> {
        let layout = Layout { root: root.to_path_buf(), made: std::sync::OnceLock::new(), fix };
        layout.read_index()?;
        Ok(layout)
    }

    /// The layout's `index.json`, or an empty index when it has none yet.
    fn read_index(&self) -> Result<Index, MediaError> {
        let path = self.root.join("index.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Index>(&bytes).map_err(|e| MediaError::Layout {
                path: path.clone(),
                detail: format!("unreadable ({e}); {}", self.fix),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index {
                schema_version: 2,
                media_type: Some(OCI_INDEX.into()),
                manifests: vec![],
                annotations: None,
            }),
            Err(e) => Err(MediaError::Layout { path, detail: format!("unreadable ({e}); {}", self.fix) }),
        }
    }

    /// Makes the layout's directories and its `oci-layout` marker, once.
    fn make(&self) -> Result<(), MediaError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        if self.made.get().is_some() {
            return Ok(());
        }
        let blobs = self.root.join("blobs/sha256");
        fs_err::create_dir_all(&blobs).map_err(io(&blobs))?;
        // Made exclusively, never replaced: writers (other runs too) lock this file around
        // their changes to index.json, so two of them must not each make their own.
        let marker = self.root.join("oci-layout");
        let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&marker);
        match created {
            Ok(mut file) => {
                use std::io::Write as _;
                file.write_all(br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io(&marker))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&marker)(e)),
        }
        let _ = self.made.set(());
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn put_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<(), MediaError> {
        self.make()?;
        let path = blob_path(&self.root, digest);
        if !path.exists() {
            write_atomic(&path, bytes).map_err(io(&path))?;
        }
        Ok(())
    }

    async fn put_image(&self, client: &RegistryClient, cache: &Cache, image: &Image) -> Result<(), MediaError> {
        self.make()?;
        for blob in image.blobs() {
            let dest = blob_path(&self.root, &blob.descriptor.digest);
            if dest.exists() {
                continue;
            }
            let src = blobs::local_path(client, cache, blob).await?;
            // A copy of a whole layer blocks for as long as the disk takes.
            tokio::task::spawn_blocking(move || link_or_copy(&src, &dest)).await.expect("layout blob task")?;
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
    ) -> Result<(), MediaError> {
        for image in artifact.images() {
            self.put_image(client, cache, image).await?;
        }
        if let Artifact::Index(index) = artifact {
            self.put_bytes(&index.digest, &index.bytes)?;
        }
        let mut descriptor = match artifact {
            Artifact::Image(image) => image.descriptor(),
            Artifact::Index(index) => {
                Descriptor::new(&index.media_type, index.digest.clone(), index.bytes.len() as u64)
            }
        };
        // An image's own entry names no platform (as ko's), only its artifactType.
        descriptor.platform = None;
        if let Some(name) = ref_name {
            descriptor.annotations = Some(BTreeMap::from([(REF_NAME.to_string(), name.to_string())]));
        }
        self.add_to_index(descriptor)
    }

    /// Writes a referrer (a signature or attestation manifest with its `subject`) and its
    /// blobs, and lists it in `index.json` with its `artifactType`, as OCI 1.1 tools do.
    pub fn write_referrer(
        &self,
        manifest: &[u8],
        artifact_type: &str,
        blobs: &[(Descriptor, bytes::Bytes)],
    ) -> Result<(), MediaError> {
        for (descriptor, bytes) in blobs {
            self.put_bytes(&descriptor.digest, bytes)?;
        }
        let digest = Digest::of(manifest);
        self.put_bytes(&digest, manifest)?;
        let mut descriptor = Descriptor::new(crate::image::manifest::OCI_MANIFEST, digest, manifest.len() as u64);
        descriptor.artifact_type = Some(artifact_type.to_string());
        self.add_to_index(descriptor)
    }

    /// Lists `descriptor` in `index.json`: it replaces an entry of the same name (`ref.name`)
    /// and an unnamed entry of the same digest; entries of other names stay, whatever their
    /// digest. Processes writing to one layout (two runs sharing the local store) take turns,
    /// through a lock on the `oci-layout` file, so that neither loses the other's entries.
    fn add_to_index(&self, descriptor: Descriptor) -> Result<(), MediaError> {
        self.make()?;
        let marker = self.root.join("oci-layout");
        let lock = std::fs::File::open(&marker).map_err(io(&marker))?;
        lock.lock().map_err(io(&marker))?;
        let path = self.root.join("index.json");
        let mut index = self.read_index()?;
        let name = descriptor.annotations.as_ref().and_then(|a| a.get(REF_NAME)).cloned();
        index.manifests.retain(|d| {
            let theirs = d.annotations.as_ref().and_then(|a| a.get(REF_NAME));
            let same_name = name.is_some() && theirs == name.as_ref();
            let same_unnamed = theirs.is_none() && d.digest == descriptor.digest;
            !same_name && !same_unnamed
        });
        index.manifests.push(descriptor);
        write_atomic(&path, &serde_json::to_vec_pretty(&index).expect("json")).map_err(io(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_path_and_an_entry() {
        let d = Digest::of(b"x");
        assert_eq!(
            parse("oci-layout://./base").unwrap(),
            LayoutRef { root: "./base".into(), selector: Selector::Only }
        );
        assert_eq!(
            parse("oci-layout:///tmp/base:v1").unwrap(),
            LayoutRef { root: "/tmp/base".into(), selector: Selector::Tag("v1".into()) }
        );
        assert_eq!(
            parse(&format!("oci-layout://base@{d}")).unwrap(),
            LayoutRef { root: "base".into(), selector: Selector::Digest(d) }
        );
        // A colon inside the path is not a tag.
        assert_eq!(parse("oci-layout://a:b/c").unwrap().selector, Selector::Only);
        assert!(parse("oci-layout://").is_err());
        assert!(parse("oci-layout://base@sha256:abc").is_err());
    }

    fn named(digest: &Digest, name: Option<&str>) -> Descriptor {
        let mut descriptor = Descriptor::new(crate::image::manifest::OCI_MANIFEST, digest.clone(), 2);
        descriptor.annotations = name.map(|n| BTreeMap::from([(REF_NAME.to_string(), n.to_string())]));
        descriptor
    }

    fn entries(root: &Path) -> Vec<(String, Option<String>)> {
        let index: Index = serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
        index
            .manifests
            .iter()
            .map(|d| (d.digest.to_string(), d.annotations.as_ref().and_then(|a| a.get(REF_NAME)).cloned()))
            .collect()
    }

    #[test]
    fn a_layout_is_made_with_its_first_entry_and_never_half() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("out");
        let layout = Layout::open(&root).unwrap();
        assert!(!root.exists(), "nothing is made before the first entry");
        layout.add_to_index(named(&Digest::of(b"one"), None)).unwrap();
        assert!(
            root.join("oci-layout").is_file()
                && root.join("index.json").is_file()
                && root.join("blobs/sha256").is_dir()
        );
        std::fs::write(tmp.path().join("file"), "").unwrap();
        let error = Layout::open(&tmp.path().join("file")).err().unwrap().to_string();
        assert!(error.contains("is not a directory"), "{error}");

        // An index.json that does not read is refused when the layout is opened.
        let bad = tmp.path().join("bad");
        std::fs::create_dir_all(bad.join("index.json")).unwrap();
        let error = Layout::open(&bad).err().unwrap().to_string();
        assert!(error.contains("index.json: unreadable") && error.contains("empty directory"), "{error}");
        std::fs::remove_dir(bad.join("index.json")).unwrap();
        std::fs::write(bad.join("index.json"), "not json").unwrap();
        let error = Layout::open_store(&bad).err().unwrap().to_string();
        assert!(error.contains("index.json: unreadable") && error.contains("local image store"), "{error}");

        // Places no layout can be made are said when it is opened; nothing is left behind.
        let error = Layout::open(&tmp.path().join("file/under")).err().unwrap().to_string();
        assert!(error.contains("file is not a directory"), "{error}");
        let error = Layout::open(Path::new("/proc/kubectl-ko-layout")).err().unwrap().to_string();
        assert!(error.contains("cannot be written") && error.contains("--oci-layout-path"), "{error}");
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 3, "{left:?}");
    }

    #[test]
    fn an_entry_replaces_only_its_own_name_and_unnamed_copies() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::open(tmp.path()).unwrap();
        let (one, two) = (Digest::of(b"one"), Digest::of(b"two"));
        layout.add_to_index(named(&one, Some("keep"))).unwrap();
        layout.add_to_index(named(&one, None)).unwrap();
        layout.add_to_index(named(&one, None)).unwrap();
        let (one_text, two_text) = (one.to_string(), two.to_string());
        assert_eq!(entries(tmp.path()), [(one_text.clone(), Some("keep".into())), (one_text.clone(), None)]);
        // A name takes the place of an unnamed copy, and of its own earlier entry.
        layout.add_to_index(named(&one, Some("other"))).unwrap();
        layout.add_to_index(named(&two, Some("other"))).unwrap();
        assert_eq!(entries(tmp.path()), [(one_text, Some("keep".into())), (two_text, Some("other".into()))]);
    }

    #[test]
    fn writers_sharing_a_layout_lose_no_entries_and_files_are_readable() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let root = root.clone();
                std::thread::spawn(move || {
                    let layout = Layout::open(&root).unwrap();
                    for i in 0..25 {
                        let name = format!("w{w}-{i}");
                        layout.add_to_index(named(&Digest::of(name.as_bytes()), Some(&name))).unwrap();
                    }
                })
            })
            .collect();
        writers.into_iter().for_each(|w| w.join().unwrap());
        assert_eq!(entries(&root).len(), 100);
        let umask = crate::cache::umask();
        for file in ["index.json", "oci-layout"] {
            let mode = std::fs::metadata(root.join(file)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644 & !umask, "{file}");
        }
        // Nothing temporary is left beside them.
        let names: Vec<String> =
            std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn the_containers_transport_spelling_names_a_layout_too() {
        assert_eq!(
            parse("oci:/home/u/.cache/kubectl-ko/images:hello-abc-0123456789ab").unwrap(),
            LayoutRef {
                root: "/home/u/.cache/kubectl-ko/images".into(),
                selector: Selector::Tag("hello-abc-0123456789ab".into())
            }
        );
        assert_eq!(parse("oci:base").unwrap(), LayoutRef { root: "base".into(), selector: Selector::Only });
        assert_eq!(parse("oci:./b:ko.local/x:v1").unwrap().selector, Selector::Tag("ko.local/x:v1".into()));
        assert!(parse("oci:").is_err());
        assert!(is_layout("oci:/tmp/x:t") && is_layout("oci:rel") && is_layout("oci-layout://x"));
        assert!(!is_layout("oci:5000/app:v1") && !is_layout("oci-archive:/x") && !is_layout("ghcr.io/a/b"));
    }
}
