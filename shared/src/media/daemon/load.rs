//! `ko.local/...` base images, read from the Docker daemon: `docker save` into the cache's
//! temporary space, then `manifest.json` names the config and the layers. Layers that come
//! out uncompressed (the classic image store) are gzip-compressed into the cache once, keyed
//! by their diff ID, so a rebuild does not compress them again and the image's digest is
//! stable. The result is a Docker schema 2 image like any registry base.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Docker, LOCAL_DOMAIN};
use crate::assemble::gzip::BlockGzip;
use crate::assemble::layer::{LayerFormat, LayerRecord};
use crate::cache::Cache;
use crate::digest::{Digest, HashingWriter};
use crate::image::manifest::{self, DOCKER_CONFIG, DOCKER_LAYER_GZIP, Descriptor, Manifest};
use crate::image::{Blob, BlobSource};
use crate::media::SourceError;
use crate::platform::Platform;

/// Whether a base reference names an image in the Docker daemon.
pub fn is_daemon(reference: &str) -> bool {
    reference.strip_prefix(LOCAL_DOMAIN).is_some_and(|rest| rest.starts_with('/'))
}

/// The reference with `:latest` when it has neither tag nor digest (`docker save REPO` would
/// save every tag of the repository).
pub fn with_tag(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if last.contains(':') || last.contains('@') { reference.to_string() } else { format!("{reference}:latest") }
}

/// An image read from the daemon, as a Docker schema 2 image whose blobs are in the cache.
#[derive(Clone, Debug)]
pub struct Saved {
    /// The reference saved, with `:latest` when it named no tag.
    pub name: String,
    pub digest: Digest,
    pub manifest: Manifest,
    pub config: serde_json::Value,
    pub layers: Vec<Blob>,
    pub platform: Platform,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SavedImage {
    config: String,
    layers: Vec<String>,
}

fn io_err(reference: &str, path: &Path) -> impl FnOnce(std::io::Error) -> SourceError {
    let (reference, path) = (reference.to_string(), path.to_path_buf());
    move |source| SourceError::Io { reference, path, source }
}

/// Loads `reference` from the daemon.
pub async fn load(docker: &Docker, cache: &Cache, reference: &str) -> Result<Saved, SourceError> {
    let name = with_tag(reference);
    let dir = cache.temp_dir_named("docker-save-")?;
    let archive = dir.path().join("image.tar");
    docker.save(&name, &archive).await.map_err(|source| SourceError::Daemon { reference: name.clone(), source })?;
    let cache = cache.clone();
    let unpacked = dir.path().join("x");
    tokio::task::spawn_blocking(move || read_saved(&cache, &name, &archive, &unpacked)).await.expect("daemon base task")
}

fn read_saved(cache: &Cache, name: &str, archive: &Path, dir: &Path) -> Result<Saved, SourceError> {
    let invalid = |detail: String| SourceError::Invalid { reference: name.to_string(), detail };
    let file = std::fs::File::open(archive).map_err(io_err(name, archive))?;
    tar::Archive::new(file).unpack(dir).map_err(io_err(name, dir))?;
    let manifest_path = dir.join("manifest.json");
    let saved: Vec<SavedImage> =
        serde_json::from_slice(&std::fs::read(&manifest_path).map_err(io_err(name, &manifest_path))?)
            .map_err(|e| invalid(format!("docker save wrote an unreadable manifest.json ({e})")))?;
    let [saved] = saved.as_slice() else {
        return Err(invalid(format!("docker save wrote {} images, expected one", saved.len())));
    };
    let inside = |rel: &str| -> Result<PathBuf, SourceError> {
        if rel.split('/').any(|c| c == "..") || rel.starts_with('/') {
            return Err(invalid(format!("docker save names a file outside the archive: {rel}")));
        }
        Ok(dir.join(rel))
    };
    let config_path = inside(&saved.config)?;
    let config_bytes = std::fs::read(&config_path).map_err(io_err(name, &config_path))?;
    let config: serde_json::Value =
        serde_json::from_slice(&config_bytes).map_err(|e| invalid(format!("unreadable image config ({e})")))?;
    let config_digest = cache.put_blob_bytes(&config_bytes)?;

    let mut layers = Vec::new();
    for rel in &saved.layers {
        let record = gzip_layer(cache, name, &inside(rel)?)?;
        layers.push(Blob {
            descriptor: Descriptor::new(DOCKER_LAYER_GZIP, record.digest, record.size),
            source: BlobSource::Cache,
        });
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(manifest::DOCKER_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(DOCKER_CONFIG, config_digest, config_bytes.len() as u64),
        layers: layers.iter().map(|b| b.descriptor.clone()).collect(),
        subject: None,
        annotations: None,
    };
    let bytes = manifest::to_bytes(&manifest);
    let digest = Digest::of(&bytes);
    let platform = Platform::from_config(&config);
    Ok(Saved { name: name.to_string(), digest, manifest, config, layers, platform })
}

/// A saved layer as a gzip blob in the cache: compressed once per diff ID; a layer that is
/// already gzip (newer daemons) is stored as it is.
fn gzip_layer(cache: &Cache, name: &str, path: &Path) -> Result<LayerRecord, SourceError> {
    let mut file = std::fs::File::open(path).map_err(io_err(name, path))?;
    let mut magic = [0u8; 2];
    let gzipped = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    if gzipped {
        let (digest, size) = crate::digest::digest_file(path).map_err(io_err(name, path))?;
        let mut plain = HashingWriter::new(std::io::sink());
        let mut gz = flate2::read::GzDecoder::new(std::fs::File::open(path).map_err(io_err(name, path))?);
        std::io::copy(&mut gz, &mut plain).map_err(io_err(name, path))?;
        let (_, diff_id, _) = plain.finish();
        if !cache.has_blob(&digest, size) {
            let temp = cache.temp_file()?;
            fs_err::copy(path, temp.path()).map_err(io_err(name, path))?;
            cache.commit_blob(temp, &digest)?;
        }
        return Ok(LayerRecord { digest, diff_id, size, format: LayerFormat::default() });
    }
    let (diff_id, _) = crate::digest::digest_file(path).map_err(io_err(name, path))?;
    let key = format!("daemon-{}", diff_id.hex());
    if let Some(record) = cache.read_record::<LayerRecord>("layers", &key)
        && cache.has_blob(&record.digest, record.size)
    {
        return Ok(record);
    }
    let temp = cache.temp_file()?;
    let out = temp.reopen().map_err(io_err(name, temp.path()))?;
    let compressed = HashingWriter::new(BufWriter::with_capacity(256 * 1024, out));
    // The same compression as the layers we build, so a base read from the daemon digests alike
    // on every machine.
    let mut gzip = BlockGzip::new(compressed).map_err(io_err(name, temp.path()))?;
    let mut src = std::fs::File::open(path).map_err(io_err(name, path))?;
    std::io::copy(&mut src, &mut gzip).map_err(io_err(name, temp.path()))?;
    let compressed = gzip.finish().map_err(io_err(name, temp.path()))?.inner;
    let (mut out, digest, size) = compressed.finish();
    out.flush().map_err(io_err(name, temp.path()))?;
    drop(out);
    cache.commit_blob(temp, &digest)?;
    let record = LayerRecord { digest, diff_id, size, format: LayerFormat::default() };
    cache.write_record("layers", &key, &record)?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_references_get_a_tag() {
        assert!(is_daemon("ko.local/base"));
        assert!(!is_daemon("ko.localhost/base"));
        assert!(!is_daemon("ghcr.io/ko.local/base"));
        assert_eq!(with_tag("ko.local/base"), "ko.local/base:latest");
        assert_eq!(with_tag("ko.local/base:v1"), "ko.local/base:v1");
        assert_eq!(with_tag("ko.local:5000/base"), "ko.local:5000/base:latest");
    }
}
