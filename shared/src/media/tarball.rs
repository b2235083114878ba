//! Image archives: one tar that is at once an OCI image layout and a `docker load`-able image
//! (a `manifest.json` that points into the layout's blobs). `--tarball FILE` writes one when
//! the run ends (see `publish`); the daemon and kind sinks stream one into `docker load` and
//! `ctr images import`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::cache::Cache;
use crate::digest::Digest;
use crate::image::manifest::{Descriptor, Index, OCI_INDEX};
use crate::image::{Artifact, Image};
use crate::platform::Platform;
use crate::registry::RegistryClient;

use super::layout::REF_NAME;
use super::{MediaError, blobs};

/// Images collected for the archive, with the names `docker load` should tag them with.
#[derive(Default)]
pub struct Tarball {
    entries: Vec<(Artifact, Vec<String>)>,
    /// Signatures and attestations: a manifest, its artifact type and its blobs.
    referrers: Vec<Referrer>,
}

type Referrer = (bytes::Bytes, String, Vec<(Descriptor, bytes::Bytes)>);

impl Tarball {
    pub fn add(&mut self, artifact: Artifact, repo_tags: Vec<String>) {
        self.entries.push((artifact, repo_tags));
    }

    /// Adds a referrer (a manifest with a `subject`), listed in `index.json` with its type.
    pub fn add_referrer(
        &mut self,
        manifest: bytes::Bytes,
        artifact_type: String,
        blobs: Vec<(Descriptor, bytes::Bytes)>,
    ) {
        self.referrers.push((manifest, artifact_type, blobs));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Gathers the archive's contents, fetching any base layer not yet on disk. In
    /// `manifest.json`, an index is represented by its image for `platform` (else its first).
    pub async fn archive(
        &self,
        client: &RegistryClient,
        cache: &Cache,
        platform: &Platform,
    ) -> Result<Archive, MediaError> {
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        let mut inline: Vec<(String, Vec<u8>)> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut docker_manifest = Vec::new();
        let mut index =
            Index { schema_version: 2, media_type: Some(OCI_INDEX.into()), manifests: vec![], annotations: None };
        let blob_name = |d: &Digest| format!("blobs/sha256/{}", d.hex());

        for (artifact, tags) in &self.entries {
            let images: Vec<&Image> = artifact.images();
            for image in &images {
                for blob in image.blobs() {
                    if seen.insert(blob.descriptor.digest.clone()) {
                        files.push((blob_name(&blob.descriptor.digest), blobs::local_path(client, cache, blob).await?));
                    }
                }
                if seen.insert(image.digest.clone()) {
                    inline.push((blob_name(&image.digest), image.manifest_bytes.to_vec()));
                }
            }
            if let Artifact::Index(i) = artifact
                && seen.insert(i.digest.clone())
            {
                inline.push((blob_name(&i.digest), i.bytes.to_vec()));
            }
            for tag in tags.iter().map(Some).chain(tags.is_empty().then_some(None)) {
                let mut d = Descriptor::new(
                    artifact.media_type(),
                    artifact.digest().clone(),
                    artifact.manifest_bytes().len() as u64,
                );
                if let Some(tag) = tag {
                    d.annotations = Some(
                        [
                            ("io.containerd.image.name".to_string(), containerd_name(tag)),
                            (REF_NAME.to_string(), tag.clone()),
                        ]
                        .into(),
                    );
                }
                index.manifests.push(d);
            }
            // docker load takes one image per name; for an index, the one for the wanted
            // platform stands for it (the first one when none matches).
            let pick = images.iter().find(|i| platform.matches(&i.platform)).or(images.first());
            if let Some(first) = pick {
                docker_manifest.push(json!({
                    "Config": blob_name(&first.config.descriptor.digest),
                    "RepoTags": tags,
                    "Layers": first.layers.iter().map(|l| blob_name(&l.descriptor.digest)).collect::<Vec<_>>(),
                }));
            }
        }
        for (manifest, artifact_type, referrer_blobs) in &self.referrers {
            for (descriptor, bytes) in referrer_blobs {
                if seen.insert(descriptor.digest.clone()) {
                    inline.push((blob_name(&descriptor.digest), bytes.to_vec()));
                }
            }
            let digest = Digest::of(manifest);
            if seen.insert(digest.clone()) {
                inline.push((blob_name(&digest), manifest.to_vec()));
            }
            let mut d = Descriptor::new(crate::image::manifest::OCI_MANIFEST, digest, manifest.len() as u64);
            d.artifact_type = Some(artifact_type.clone());
            index.manifests.push(d);
        }
        inline.push(("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()));
        inline.push(("index.json".into(), serde_json::to_vec(&index).expect("json")));
        inline.push(("manifest.json".into(), serde_json::to_vec(&docker_manifest).expect("json")));
        Ok(Archive { files, inline })
    }
}

/// `tag` as containerd must be told it: containerd (so `ctr images import`, `kind load
/// image-archive`, Docker's containerd image store) keeps the name it finds in `index.json`
/// as written, and the kubelet looks images up fully qualified, as `docker save` writes them:
/// `hello:latest` → `docker.io/library/hello:latest`, `team/app:v1` → `docker.io/team/app:v1`.
fn containerd_name(tag: &str) -> String {
    match crate::reference::split_registry(tag) {
        ("", path) if path.contains('/') => format!("docker.io/{path}"),
        ("", path) => format!("docker.io/library/{path}"),
        _ => tag.to_string(),
    }
}

/// The contents of an archive, ready to be written to a file or a pipe.
pub struct Archive {
    files: Vec<(String, PathBuf)>,
    inline: Vec<(String, Vec<u8>)>,
}

/// Why writing an archive stopped: a blob that could not be read, or the destination.
#[derive(Debug)]
pub enum ArchiveError {
    Source { path: PathBuf, source: std::io::Error },
    Dest(std::io::Error),
}

impl ArchiveError {
    /// The error as a media error, naming `dest` when the destination failed.
    pub fn at(self, dest: &Path) -> MediaError {
        match self {
            ArchiveError::Source { path, source } => MediaError::Io { path, source },
            ArchiveError::Dest(source) => MediaError::Io { path: dest.to_path_buf(), source },
        }
    }
}

impl Archive {
    /// Writes the tar stream (deterministic headers) and returns the writer.
    pub fn write_to<W: Write>(&self, writer: W) -> Result<W, ArchiveError> {
        let mut tar = tar::Builder::new(writer);
        let header = |size: u64| {
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_size(size);
            h.set_entry_type(tar::EntryType::Regular);
            h
        };
        for dir_name in ["blobs/", "blobs/sha256/"] {
            let mut h = header(0);
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            tar.append_data(&mut h, dir_name, std::io::empty()).map_err(ArchiveError::Dest)?;
        }
        for (name, src) in &self.files {
            let source = |source| ArchiveError::Source { path: src.clone(), source };
            let file = std::fs::File::open(src).map_err(source)?;
            let size = file.metadata().map_err(source)?.len();
            tar.append_data(&mut header(size), name, file).map_err(ArchiveError::Dest)?;
        }
        for (name, bytes) in &self.inline {
            tar.append_data(&mut header(bytes.len() as u64), name, bytes.as_slice()).map_err(ArchiveError::Dest)?;
        }
        tar.into_inner().map_err(ArchiveError::Dest)
    }
}

#[cfg(test)]
mod tests {
    use super::containerd_name;

    #[test]
    fn containerd_gets_fully_qualified_names() {
        assert_eq!(containerd_name("hello:latest"), "docker.io/library/hello:latest");
        assert_eq!(containerd_name("team/app:v1"), "docker.io/team/app:v1");
        assert_eq!(containerd_name("127.0.0.1:5000/team/app:v1"), "127.0.0.1:5000/team/app:v1");
        assert_eq!(containerd_name("localhost/app:v1"), "localhost/app:v1");
        assert_eq!(containerd_name("ko.local/app:v1"), "ko.local/app:v1");
    }
}
