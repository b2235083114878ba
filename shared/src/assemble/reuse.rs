//! Reusing compressed blocks of an earlier layer. Deflate gives the same bytes for the same
//! block primed with the same 32 KiB before it, so a block that is unchanged, with what
//! precedes it, since the last build of a binary is copied from the last layer instead of
//! compressed again. After a small change most of a Go binary stays in place (a one-line
//! change keeps 62 of 64 blocks of a 8 MB binary), so this skips most of the compression
//! while the bytes stay exactly those a full compression gives.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::layer::LayerFormat;
use crate::cache::Cache;
use crate::digest::Digest;

/// The key of a block: a hash of the format, the window before the block, and the block.
pub(crate) type BlockKey = [u8; 16];

/// What every key starts with: the layer format and this build of the compressor, so a block
/// is only reused by the same code that made it and a layer never mixes two versions' output.
static KEY_PREFIX: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let format = serde_json::to_string(&LayerFormat::default()).unwrap_or_default();
    format!("{format}\0{}\0xxh3-128\0", env!("CARGO_PKG_VERSION")).into_bytes()
});

/// The key of `block` after `window`: a 128-bit XXH3 hash. A key only picks which piece of
/// the same binary's last layer to copy, in a cache of the user's own (anyone who can choose
/// the binary's bytes chooses the image anyway), so a fast non-cryptographic hash of this
/// width serves, at a tenth of SHA-256's cost over the 1.25 times the binary it reads.
pub(crate) fn block_key(window: &[u8], block: &[u8]) -> BlockKey {
    let mut hash = xxhash_rust::xxh3::Xxh3Default::new();
    hash.update(&KEY_PREFIX);
    hash.update(&(window.len() as u64).to_le_bytes());
    hash.update(window);
    hash.update(block);
    hash.digest128().to_le_bytes()
}

/// A check of a stored piece against damage on disk (the piece's bytes are not trusted
/// blindly, but they are our own: a CRC-32 is enough).
pub(crate) fn piece_check(piece: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(piece);
    crc.sum()
}

/// One compressed block of a layer, as the layer was written. Stored (incompressible)
/// blocks have no key: copying them again costs what copying them from the input costs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockEntry {
    pub key: Option<BlockKey>,
    pub len: u32,
    pub check: u32,
}

/// Where a layer's compressed blocks are in its blob, kept for the next layer of the same binary.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct BlockIndex {
    blob: Digest,
    /// Key (hex), offset in the blob, length and CRC-32 of each compressed piece.
    blocks: Vec<(String, u64, u32, u32)>,
}

/// The gzip header's length: the first block starts right after it.
const GZIP_HEADER: u64 = 10;

impl BlockIndex {
    pub(crate) fn new(blob: Digest, entries: &[BlockEntry]) -> BlockIndex {
        let mut offset = GZIP_HEADER;
        let blocks = entries
            .iter()
            .filter_map(|e| {
                let item = e.key.map(|key| (hex::encode(key), offset, e.len, e.check));
                offset += u64::from(e.len);
                item
            })
            .collect();
        BlockIndex { blob, blocks }
    }

    /// The layer whose blocks these are.
    pub(crate) fn blob(&self) -> &Digest {
        &self.blob
    }
}

/// The blocks of an earlier layer, ready to be copied.
pub struct BlockReuse {
    blocks: HashMap<BlockKey, (u64, u32, u32)>,
    file: File,
    copied: AtomicUsize,
}

impl BlockReuse {
    /// Opens the earlier layer an index describes; `None` when its blob left the cache.
    pub fn open(cache: &Cache, index: &BlockIndex) -> Option<BlockReuse> {
        let file = File::open(cache.blob_path(&index.blob)).ok()?;
        let mut blocks = HashMap::with_capacity(index.blocks.len());
        for (key, offset, len, check) in &index.blocks {
            let key: BlockKey = hex::decode(key).ok()?.try_into().ok()?;
            blocks.insert(key, (*offset, *len, *check));
        }
        Some(BlockReuse { blocks, file, copied: AtomicUsize::new(0) })
    }

    /// How many blocks were copied so far.
    #[cfg(test)]
    pub fn copied(&self) -> usize {
        self.copied.load(Ordering::Relaxed)
    }

    /// The compressed piece for `key`, if the earlier layer has it and it reads back intact.
    pub(crate) fn piece(&self, key: &BlockKey) -> Option<Vec<u8>> {
        let &(offset, len, check) = self.blocks.get(key)?;
        let mut piece = vec![0; len as usize];
        self.file.read_exact_at(&mut piece, offset).ok()?;
        let intact = piece_check(&piece) == check;
        if intact {
            self.copied.fetch_add(1, Ordering::Relaxed);
        }
        intact.then_some(piece)
    }
}
