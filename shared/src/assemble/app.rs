//! The application layer: the Go binary at `/ko-app/<name>`, mode 0555, owner root, time 0.
//! Cached by the binary's content, so an unchanged binary is never tarred or compressed again.

use std::path::Path;

use sha2::Digest as _;

use super::layer::{EntryMeta, LayerCopy, LayerError, LayerRecord, LayerWriter};
use super::reuse::{BlockIndex, BlockReuse};
use super::target::ImageOs;
use crate::cache::{Cache, CacheError};
use crate::digest::digest_file;
use crate::gobuild::Built;

pub const APP_DIR: &str = "ko-app";
const LAYOUT_VERSION: &str = "app-layer-v1";

/// The binary's name in the image: the last element of the import path.
pub fn binary_name(import_path: &str) -> String {
    match import_path.rsplit('/').next() {
        Some(b) if !b.is_empty() && b != "." => b.to_string(),
        _ => "ko-app".to_string(),
    }
}

pub fn entrypoint(name: &str) -> String {
    format!("/{APP_DIR}/{name}")
}

/// How a binary goes into its layer: its name in `/ko-app`, the image's operating system
/// (the layout of the layer) and the extended attributes of the file (file capabilities).
#[derive(Clone, Copy)]
pub struct AppEntry<'a> {
    pub name: &'a str,
    pub os: ImageOs,
    pub xattrs: &'a [(String, Vec<u8>)],
}

impl AppEntry<'_> {
    /// A record key from the layout version, some parts and how the binary goes in.
    fn key(&self, parts: &[&[u8]]) -> String {
        let mut key = sha2::Sha256::new();
        key.update(LAYOUT_VERSION.as_bytes());
        key.update([0]);
        for part in parts.iter().chain([&self.name.as_bytes(), &self.os.key()]) {
            key.update(part);
            key.update([0]);
        }
        for (k, v) in self.xattrs {
            key.update(k.as_bytes());
            key.update([0]);
            key.update(v);
            key.update([0]);
        }
        hex::encode(key.finalize())
    }
}

/// What the layer of a binary in the cache was, with the file it was made from, so that a
/// binary Go did not relink need not be read again.
#[derive(serde::Serialize, serde::Deserialize)]
struct SlotRecord {
    inode: u64,
    size: u64,
    layer: LayerRecord,
}

/// [`entry_layer`] for a binary `go build` left in the cache: when Go found it up to date,
/// the layer made from it last time is used without reading the binary. A relinked binary is
/// new (Go relinks only when the output changes), so it is compressed without first being
/// hashed, and `start_copy` may give a sender for an upload that runs meanwhile.
pub fn built_binary_layer(
    cache: &Cache,
    built: &Built,
    entry: AppEntry<'_>,
    start_copy: &dyn Fn() -> Option<LayerCopy>,
) -> Result<LayerRecord, LayerError> {
    use std::os::unix::fs::MetadataExt as _;
    let binary = built.path();
    let meta = std::fs::metadata(binary).map_err(|source| CacheError { path: binary.to_path_buf(), source })?;
    let key = entry.key(&[b"slot", built.slot.as_os_str().as_encoded_bytes()]);
    if !built.relinked
        && let Some(slot) = cache.read_record::<SlotRecord>("layers", &key)
        && slot.inode == meta.ino()
        && slot.size == meta.len()
        && cache.has_blob(&slot.layer.digest, slot.layer.size)
    {
        return Ok(slot.layer);
    }
    let layer = if built.relinked {
        // The last layer of this binary lends the blocks that did not change.
        let index_key = entry.key(&[b"blocks", built.slot.as_os_str().as_encoded_bytes()]);
        let last = cache.read_record::<BlockIndex>("layers", &index_key);
        let reuse = last.as_ref().and_then(|i| BlockReuse::open(cache, i)).map(std::sync::Arc::new);
        let (layer, index) = write_binary_layer(cache, binary, meta.len(), entry, start_copy(), reuse)?;
        cache.write_record("layers", &index_key, &index)?;
        // The slot's last layer is named by nothing once its records below move on.
        if let Some(last) = last
            && *last.blob() != layer.digest
        {
            cache.supersede(last.blob());
        }
        layer
    } else {
        entry_layer(cache, binary, entry)?
    };
    let slot = SlotRecord { inode: meta.ino(), size: meta.len(), layer: layer.clone() };
    cache.write_record("layers", &key, &slot)?;
    Ok(layer)
}

/// The layer of `binary` as `entry` says, found in the cache by the binary's content.
pub fn entry_layer(cache: &Cache, binary: &Path, entry: AppEntry<'_>) -> Result<LayerRecord, LayerError> {
    let io = |source| CacheError { path: binary.to_path_buf(), source };
    let (content, size) = digest_file(binary).map_err(io)?;
    let key = entry.key(&[content.as_str().as_bytes()]);
    if let Some(record) = cache.read_record::<LayerRecord>("layers", &key)
        && cache.has_blob(&record.digest, record.size)
    {
        return Ok(record);
    }
    let (record, _) = write_binary_layer(cache, binary, size, entry, None, None)?;
    cache.write_record("layers", &key, &record)?;
    Ok(record)
}

/// Tars and compresses the binary into a layer in the cache.
fn write_binary_layer(
    cache: &Cache,
    binary: &Path,
    size: u64,
    entry: AppEntry<'_>,
    copy: Option<LayerCopy>,
    reuse: Option<std::sync::Arc<BlockReuse>>,
) -> Result<(LayerRecord, BlockIndex), LayerError> {
    let meta = EntryMeta::root(0o555, 0);
    let os = entry.os;
    let mut layer = LayerWriter::with_copy(cache, copy, reuse)?;
    for dir in os.layer_roots() {
        layer.add_dir(*dir, meta)?;
    }
    layer.add_dir(&os.entry(APP_DIR), meta)?;
    let file = std::fs::File::open(binary).map_err(|source| CacheError { path: binary.to_path_buf(), source })?;
    let mut records = os.file_records();
    records.extend(entry.xattrs.iter().map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.clone())));
    let path = os.entry(&format!("{APP_DIR}/{}", entry.name));
    layer.add_file_with_records(&path, meta, size, file, &records)?;
    layer.finish_with_index()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layer holding `binary` as `/ko-app/<name>` in a Linux image.
    fn binary_layer(cache: &Cache, binary: &Path, name: &str) -> Result<LayerRecord, LayerError> {
        entry_layer(cache, binary, AppEntry { name, os: ImageOs::Linux, xattrs: &[] })
    }

    fn record_files(cache: &Cache) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(cache.root().join("layers")).unwrap().map(|e| e.unwrap().path()).collect()
    }

    #[test]
    fn a_layer_blob_or_record_cut_short_is_a_miss_and_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("cache")).unwrap();
        let binary = dir.path().join("app");
        std::fs::write(&binary, b"\x7fELF not really a program".repeat(4096)).unwrap();
        let first = binary_layer(&cache, &binary, "app").unwrap();
        let blob = cache.blob_path(&first.digest);
        let whole = std::fs::read(&blob).unwrap();

        // What a power loss can leave of a file renamed into place before its data was written.
        std::fs::write(&blob, &whole[..whole.len() / 2]).unwrap();
        assert!(!cache.has_blob(&first.digest, first.size));
        let again = binary_layer(&cache, &binary, "app").unwrap();
        assert_eq!(again.digest, first.digest);
        assert_eq!(std::fs::read(&blob).unwrap(), whole);

        for record in record_files(&cache) {
            std::fs::write(record, b"").unwrap();
        }
        let third = binary_layer(&cache, &binary, "app").unwrap();
        assert_eq!(third.digest, first.digest);
        assert!(cache.has_blob(&third.digest, third.size));
    }
}
