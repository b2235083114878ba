//! The application layer: the Go binary at `/ko-app/<name>`, mode 0555, owner root, time 0.
//! Cached by the binary's content, so an unchanged binary is never tarred or compressed again.

use std::path::Path;

use sha2::Digest as _;

use super::layer::{EntryMeta, LayerCopy, LayerError, LayerRecord, LayerWriter};
use super::reuse::{BlockIndex, BlockReuse};
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

/// Builds (or finds in the cache) the layer holding `binary` as `/ko-app/<name>`.
pub fn binary_layer(cache: &Cache, binary: &Path, name: &str) -> Result<LayerRecord, LayerError> {
    binary_layer_with_xattrs(cache, binary, name, &[])
}

/// What the layer of a binary in the cache was, with the file it was made from, so that a
/// binary Go did not relink need not be read again.
#[derive(serde::Serialize, serde::Deserialize)]
struct SlotRecord {
    inode: u64,
    size: u64,
    layer: LayerRecord,
}

/// [`binary_layer_with_xattrs`] for a binary `go build` left in the cache: when Go found it up
/// to date, the layer made from it last time is used without reading the binary. A relinked
/// binary is new (Go relinks only when the output changes), so it is compressed without
/// first being hashed, and `start_copy` may give a sender for an upload that runs meanwhile.
pub fn built_binary_layer(
    cache: &Cache,
    built: &Built,
    name: &str,
    xattrs: &[(String, Vec<u8>)],
    start_copy: &dyn Fn() -> Option<LayerCopy>,
) -> Result<LayerRecord, LayerError> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(&built.path).map_err(|source| CacheError { path: built.path.clone(), source })?;
    let key = layer_key(&[b"slot", built.path.as_os_str().as_encoded_bytes(), name.as_bytes()], xattrs);
    if !built.relinked
        && let Some(slot) = cache.read_record::<SlotRecord>("layers", &key)
        && slot.inode == meta.ino()
        && slot.size == meta.len()
        && cache.has_blob(&slot.layer.digest)
    {
        return Ok(slot.layer);
    }
    let layer = if built.relinked {
        // The last layer of this binary lends the blocks that did not change.
        let index_key = layer_key(&[b"blocks", built.path.as_os_str().as_encoded_bytes(), name.as_bytes()], xattrs);
        let reuse = cache
            .read_record::<BlockIndex>("layers", &index_key)
            .and_then(|i| BlockReuse::open(cache, &i))
            .map(std::sync::Arc::new);
        let (layer, index) = write_binary_layer(cache, &built.path, meta.len(), name, xattrs, start_copy(), reuse)?;
        cache.write_record("layers", &index_key, &index)?;
        layer
    } else {
        binary_layer_with_xattrs(cache, &built.path, name, xattrs)?
    };
    let slot = SlotRecord { inode: meta.ino(), size: meta.len(), layer: layer.clone() };
    cache.write_record("layers", &key, &slot)?;
    Ok(layer)
}

/// A record key from the layout version, some parts and the extended attributes.
fn layer_key(parts: &[&[u8]], xattrs: &[(String, Vec<u8>)]) -> String {
    let mut key = sha2::Sha256::new();
    key.update(LAYOUT_VERSION.as_bytes());
    key.update([0]);
    for part in parts {
        key.update(part);
        key.update([0]);
    }
    for (k, v) in xattrs {
        key.update(k.as_bytes());
        key.update([0]);
        key.update(v);
        key.update([0]);
    }
    hex::encode(key.finalize())
}

/// [`binary_layer`] with extended attributes on the binary (file capabilities).
pub fn binary_layer_with_xattrs(
    cache: &Cache,
    binary: &Path,
    name: &str,
    xattrs: &[(String, Vec<u8>)],
) -> Result<LayerRecord, LayerError> {
    let io = |source| CacheError { path: binary.to_path_buf(), source };
    let (content, size) = digest_file(binary).map_err(io)?;
    let key = layer_key(&[content.as_str().as_bytes(), name.as_bytes()], xattrs);
    if let Some(record) = cache.read_record::<LayerRecord>("layers", &key)
        && cache.has_blob(&record.digest)
    {
        return Ok(record);
    }
    let (record, _) = write_binary_layer(cache, binary, size, name, xattrs, None, None)?;
    cache.write_record("layers", &key, &record)?;
    Ok(record)
}

/// Tars and compresses the binary into a layer in the cache.
fn write_binary_layer(
    cache: &Cache,
    binary: &Path,
    size: u64,
    name: &str,
    xattrs: &[(String, Vec<u8>)],
    copy: Option<LayerCopy>,
    reuse: Option<std::sync::Arc<BlockReuse>>,
) -> Result<(LayerRecord, BlockIndex), LayerError> {
    let meta = EntryMeta::root(0o555, 0);
    let mut layer = LayerWriter::with_copy(cache, copy, reuse)?;
    layer.add_dir(APP_DIR, meta)?;
    let file = std::fs::File::open(binary).map_err(|source| CacheError { path: binary.to_path_buf(), source })?;
    layer.add_file_with_xattrs(&format!("{APP_DIR}/{name}"), meta, size, file, xattrs)?;
    layer.finish_with_index()
}
