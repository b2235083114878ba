//! Deterministic layers: tar entries with fixed owners, modes and times, gzip-compressed while
//! streaming into a cache file, hashing both the tar (the diff ID) and the gzip (the digest).
//! Same entries in, same bytes out, on every machine.
//!
//! Compression is parallel, pigz-style: the tar stream is cut into fixed blocks, each block is
//! deflated on its own (primed with the 32 KiB before it, so matches still reach back), and
//! the pieces are joined into one gzip member. A block whose bytes look random (already
//! compressed data, embedded assets) is stored instead, which costs a copy rather than a
//! fruitless search for matches. The bytes depend on the block size, the level, the test for
//! random blocks and the backend (zlib-rs), all fixed here, and not on the number of threads,
//! so the digest is the same on any machine; `layer_bytes_are_pinned` holds it.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};

use flate2::{Compress, Compression, Crc, FlushCompress};
use sha2::Digest as _;

use super::reuse::{BlockEntry, BlockIndex, BlockReuse, block_key, piece_check};
use crate::cache::{Cache, CacheError};
use crate::digest::{Digest, HashingWriter};

/// Level 2, not 1: zlib-rs's level 1 ("quick") uses static Huffman codes only, which makes Go
/// binaries about 12% larger than level 2 does, and grows random data by 5%.
const LEVEL: u32 = 2;
/// The unit of parallel work and of the stored-or-deflated choice.
const BLOCK: usize = 128 * 1024;
/// Deflate's window: each block is primed with this much of what precedes it.
const WINDOW: usize = 32 * 1024;
/// Blocks gathered before they are compressed together; a multiple of any thread count used.
const BATCH: usize = 8;
/// Threads per layer. The bytes do not depend on it; it is fixed rather than the core count
/// so that several layers built at once do not each start a thread per core.
const THREADS: usize = 2;

/// How a layer's bytes are made. Part of every cached record, so that a record written with
/// other settings does not parse, and counts as a miss rather than as a digest this build
/// would not reproduce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LayerFormat {
    #[default]
    #[serde(rename = "gzip-zlib-rs-2-blocks-128k-stored-random")]
    BlockGzipLevel2,
}

/// A finished layer, stored in the cache under its digest.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerRecord {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub format: LayerFormat,
}

/// True when a block's byte histogram is within 3% of uniform (by the sum of squared counts),
/// as in random or already compressed data, which deflate cannot shrink. Integer arithmetic
/// only, so every machine decides alike.
fn looks_random(block: &[u8]) -> bool {
    if block.len() < 4096 {
        return false;
    }
    let mut counts = [0u64; 256];
    for &b in block {
        counts[b as usize] += 1;
    }
    let n = block.len() as u64;
    let squares: u64 = counts.iter().map(|c| c * c).sum();
    256 * squares * 32 <= n * n * 33
}

/// Deflate stored blocks (at most 65535 bytes each), not final. The stream must be at a byte
/// boundary, which it is after a sync flush or another stored block.
fn stored(data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(65535) {
        let len = chunk.len() as u16;
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

/// One block as raw deflate ending in a sync flush (so at a byte boundary, not final).
fn deflate_block(compressor: &mut Compress, block: &[u8], window: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(block.len() + block.len() / 8 + 1024);
    if looks_random(block) {
        stored(block, &mut out);
        return Ok(out);
    }
    compressor.reset();
    if !window.is_empty() {
        compressor.set_dictionary(window).map_err(io::Error::other)?;
    }
    let start_in = compressor.total_in();
    loop {
        let consumed = (compressor.total_in() - start_in) as usize;
        compressor.compress_vec(&block[consumed..], &mut out, FlushCompress::Sync).map_err(io::Error::other)?;
        let done = (compressor.total_in() - start_in) as usize == block.len();
        // The flush is complete when it left room in the output.
        if done && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(64 * 1024);
    }
}

/// Compressed blocks, in order, with what the next layer needs to reuse them.
type Blocks = Vec<(BlockEntry, Vec<u8>)>;

/// One block compressed, or copied from an earlier layer when it has it.
fn compress_block(
    compressor: &mut Compress,
    block: &[u8],
    window: &[u8],
    reuse: Option<&BlockReuse>,
) -> io::Result<(BlockEntry, Vec<u8>)> {
    // A stored block costs a copy either way: it is neither keyed nor looked up.
    if looks_random(block) {
        let mut piece = Vec::with_capacity(block.len() + 64);
        stored(block, &mut piece);
        return Ok((BlockEntry { key: None, len: piece.len() as u32, check: 0 }, piece));
    }
    let key = block_key(window, block);
    let piece = match reuse.and_then(|r| r.piece(&key)) {
        Some(piece) => piece,
        None => deflate_block(compressor, block, window)?,
    };
    let entry = BlockEntry { key: Some(key), len: piece.len() as u32, check: piece_check(&piece) };
    Ok((entry, piece))
}

/// What [`BlockGzip::finish`] gives back.
pub(crate) struct Finished<W> {
    pub inner: W,
    /// The digest of the uncompressed data.
    pub diff_id: Digest,
    /// Each compressed block, for reuse by the next layer of the same binary.
    pub blocks: Vec<BlockEntry>,
}

/// A gzip writer that compresses in parallel and gives the same bytes for the same input
/// whatever the thread count or the sizes of the writes. It also hashes its input (a layer's
/// diff ID). Work is pipelined by batch: while one batch is compressed, its input is hashed
/// and the previous batch's output is written, each on a thread of its own.
pub(crate) struct BlockGzip<W: Write + Send> {
    inner: W,
    /// Full blocks (and at the end a partial one) waiting to be compressed.
    pending: Vec<u8>,
    /// The last `WINDOW` bytes before `pending`.
    window: Vec<u8>,
    crc: Crc,
    input: sha2::Sha256,
    compressors: Vec<Compress>,
    /// The compressed blocks of the last batch, written while the next one is compressed.
    unwritten: Blocks,
    reuse: Option<std::sync::Arc<BlockReuse>>,
    written: Vec<BlockEntry>,
}

impl<W: Write + Send> BlockGzip<W> {
    pub(crate) fn new(inner: W) -> io::Result<Self> {
        Self::with_threads(inner, THREADS)
    }

    fn with_threads(mut inner: W, threads: usize) -> io::Result<Self> {
        // Magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
        inner.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255])?;
        Ok(BlockGzip {
            inner,
            pending: Vec::with_capacity(BLOCK * BATCH),
            window: Vec::new(),
            crc: Crc::new(),
            input: sha2::Sha256::new(),
            compressors: (0..threads.max(1)).map(|_| Compress::new(Compression::new(LEVEL), false)).collect(),
            unwritten: Vec::new(),
            reuse: None,
            written: Vec::new(),
        })
    }

    /// Copies blocks from an earlier layer where they are the same (see `reuse`).
    pub(crate) fn reusing(mut self, reuse: Option<std::sync::Arc<BlockReuse>>) -> Self {
        self.reuse = reuse;
        self
    }

    /// Compresses everything pending (whole blocks, and a partial last one at the end).
    fn compress_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return self.write_unwritten();
        }
        let BlockGzip { inner, pending, window, crc, input, compressors, unwritten, reuse, .. } = self;
        let reuse = reuse.as_deref();
        let blocks: Vec<&[u8]> = pending.chunks(BLOCK).collect();
        let windows: Vec<&[u8]> = (0..blocks.len())
            .map(|i| {
                if i == 0 {
                    window.as_slice()
                } else {
                    let before = &pending[..i * BLOCK];
                    &before[before.len().saturating_sub(WINDOW)..]
                }
            })
            .collect();
        let per_thread = blocks.len().div_ceil(compressors.len());
        let previous = std::mem::take(unwritten);
        let (pieces, written): (Vec<io::Result<Blocks>>, io::Result<()>) = std::thread::scope(|scope| {
            let handles: Vec<_> = compressors
                .iter_mut()
                .zip(blocks.chunks(per_thread).zip(windows.chunks(per_thread)))
                .map(|(compressor, (blocks, windows))| {
                    scope.spawn(move || {
                        blocks.iter().zip(windows).map(|(b, w)| compress_block(compressor, b, w, reuse)).collect()
                    })
                })
                .collect();
            let data: &[u8] = pending;
            let hashing = scope.spawn(move || {
                crc.update(data);
                input.update(data);
            });
            let previous = &previous;
            let writing = scope.spawn(move || previous.iter().try_for_each(|(_, block)| inner.write_all(block)));
            let pieces = handles.into_iter().map(|h| h.join().expect("compression thread")).collect();
            hashing.join().expect("hashing thread");
            (pieces, writing.join().expect("writing thread"))
        });
        written?;
        self.written.extend(previous.iter().map(|(entry, _)| *entry));
        for piece in pieces {
            self.unwritten.extend(piece?);
        }
        let keep = self.pending.len().min(WINDOW);
        let tail = &self.pending[self.pending.len() - keep..];
        if keep < WINDOW {
            let mut window = std::mem::take(&mut self.window);
            window.extend_from_slice(tail);
            let excess = window.len().saturating_sub(WINDOW);
            window.drain(..excess);
            self.window = window;
        } else {
            self.window = tail.to_vec();
        }
        self.pending.clear();
        Ok(())
    }

    fn write_unwritten(&mut self) -> io::Result<()> {
        for (entry, block) in std::mem::take(&mut self.unwritten) {
            self.inner.write_all(&block)?;
            self.written.push(entry);
        }
        Ok(())
    }

    /// Ends the deflate stream, writes the trailer and returns the inner writer, with the
    /// digest and size of what was written to this one (the uncompressed data).
    pub(crate) fn finish(mut self) -> io::Result<Finished<W>> {
        self.compress_pending()?;
        self.write_unwritten()?;
        // An empty final stored block.
        self.inner.write_all(&[1, 0, 0, 0xff, 0xff])?;
        self.inner.write_all(&self.crc.sum().to_le_bytes())?;
        self.inner.write_all(&self.crc.amount().to_le_bytes())?;
        Ok(Finished { inner: self.inner, diff_id: Digest::from_hasher(self.input), blocks: self.written })
    }
}

impl<W: Write + Send> Write for BlockGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK * BATCH - self.pending.len();
        let n = buf.len().min(room);
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == BLOCK * BATCH {
            self.compress_pending()?;
        }
        Ok(n)
    }

    /// Blocks are cut at fixed offsets, so a flush cannot end one early; it only passes on.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("writing layer entry {entry}: {source}")]
    Entry { entry: String, source: io::Error },
}

type Sink = BlockGzip<HashingWriter<Copying<BufWriter<File>>>>;

/// Where a copy of the compressed bytes goes while they are written (an upload that runs
/// meanwhile, say). Written on the thread that writes the layer, so it may block.
pub type LayerCopy = Box<dyn Write + Send>;

/// A writer that also writes what it writes to a [`LayerCopy`]. The copy is best effort: once
/// it fails, writing goes on without it.
pub(crate) struct Copying<W: Write> {
    inner: W,
    copy: Option<LayerCopy>,
}

impl<W: Write> Copying<W> {
    fn new(inner: W, copy: Option<LayerCopy>) -> Self {
        Copying { inner, copy }
    }
}

impl<W: Write> Write for Copying<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(copy) = &mut self.copy
            && copy.write_all(&buf[..n]).is_err()
        {
            self.copy = None;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(copy) = &mut self.copy
            && copy.flush().is_err()
        {
            self.copy = None;
        }
        self.inner.flush()
    }
}

/// Ownership and timestamps shared by every entry of a layer.
#[derive(Clone, Copy, Debug)]
pub struct EntryMeta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

impl EntryMeta {
    pub fn root(mode: u32, mtime: u64) -> Self {
        EntryMeta { mode, uid: 0, gid: 0, mtime }
    }
}

pub struct LayerWriter {
    tar: tar::Builder<Sink>,
    temp: tempfile::NamedTempFile,
    cache: Cache,
}

impl LayerWriter {
    pub fn new(cache: &Cache) -> Result<Self, LayerError> {
        Self::with_copy(cache, None, None)
    }

    /// A layer whose compressed bytes are also sent to `copy` as they are made, copying
    /// unchanged blocks from `reuse`.
    pub fn with_copy(
        cache: &Cache,
        copy: Option<LayerCopy>,
        reuse: Option<std::sync::Arc<BlockReuse>>,
    ) -> Result<Self, LayerError> {
        let temp = cache.temp_file()?;
        let file = temp.reopen().map_err(|source| CacheError { path: temp.path().to_path_buf(), source })?;
        let compressed = HashingWriter::new(Copying::new(BufWriter::with_capacity(256 * 1024, file), copy));
        let gzip =
            BlockGzip::new(compressed).map_err(|source| CacheError { path: temp.path().to_path_buf(), source })?;
        let mut tar = tar::Builder::new(gzip.reusing(reuse));
        tar.mode(tar::HeaderMode::Deterministic);
        Ok(LayerWriter { tar, temp, cache: cache.clone() })
    }

    fn header(kind: tar::EntryType, meta: EntryMeta, size: u64) -> tar::Header {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(meta.mode);
        header.set_uid(meta.uid);
        header.set_gid(meta.gid);
        header.set_mtime(meta.mtime);
        header.set_size(size);
        header
    }

    /// Writes the header, using a PAX `path` record for names too long for ustar.
    fn append(&mut self, mut header: tar::Header, path: &str, data: impl Read) -> Result<(), LayerError> {
        let err = |source| LayerError::Entry { entry: path.to_string(), source };
        if header.set_path(path).is_err() {
            self.tar.append_pax_extensions([("path", path.as_bytes())]).map_err(err)?;
            let short: String = path.chars().rev().take(90).collect::<Vec<_>>().into_iter().rev().collect();
            if header.set_path(short.trim_start_matches('/')).is_err() {
                // Non-ASCII names can be too long in bytes: keep the last 90 bytes at most, cut
                // on a character boundary (the PAX record above carries the real name).
                let mut start = path.len().saturating_sub(90);
                while !path.is_char_boundary(start) {
                    start += 1;
                }
                header.set_path(path[start..].trim_start_matches('/')).map_err(err)?;
            }
        }
        header.set_cksum();
        self.tar.append(&header, data).map_err(err)
    }

    pub fn add_dir(&mut self, path: &str, meta: EntryMeta) -> Result<(), LayerError> {
        let header = Self::header(tar::EntryType::Directory, meta, 0);
        let path = format!("{}/", path.trim_end_matches('/'));
        self.append(header, &path, io::empty())
    }

    pub fn add_file(&mut self, path: &str, meta: EntryMeta, size: u64, data: impl Read) -> Result<(), LayerError> {
        let header = Self::header(tar::EntryType::Regular, meta, size);
        self.append(header, path, data)
    }

    /// A regular file with extended attributes (PAX `SCHILY.xattr.*` records).
    pub fn add_file_with_xattrs(
        &mut self,
        path: &str,
        meta: EntryMeta,
        size: u64,
        data: impl Read,
        xattrs: &[(String, Vec<u8>)],
    ) -> Result<(), LayerError> {
        if !xattrs.is_empty() {
            let records: Vec<(String, &[u8])> =
                xattrs.iter().map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice())).collect();
            self.tar
                .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(|source| LayerError::Entry { entry: path.to_string(), source })?;
        }
        self.add_file(path, meta, size, data)
    }

    pub fn add_bytes(&mut self, path: &str, meta: EntryMeta, bytes: &[u8]) -> Result<(), LayerError> {
        self.add_file(path, meta, bytes.len() as u64, bytes)
    }

    /// Closes the archive and moves it into the cache under its digest.
    pub fn finish(self) -> Result<LayerRecord, LayerError> {
        self.finish_with_index().map(|(record, _)| record)
    }

    /// [`LayerWriter::finish`], with where its compressed blocks are, for the next layer of
    /// the same content to reuse.
    pub fn finish_with_index(self) -> Result<(LayerRecord, BlockIndex), LayerError> {
        let err = |source| LayerError::Entry { entry: "(end of archive)".into(), source };
        let gzip = self.tar.into_inner().map_err(err)?;
        let Finished { inner: compressed, diff_id, blocks, .. } = gzip.finish().map_err(err)?;
        let (mut file, digest, size) = compressed.finish();
        file.flush().map_err(err)?;
        drop(file);
        self.cache.commit_blob(self.temp, &digest)?;
        let index = BlockIndex::new(digest.clone(), &blocks);
        Ok((LayerRecord { digest, diff_id, size, format: LayerFormat::default() }, index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(cache: &Cache) -> LayerRecord {
        let mut layer = LayerWriter::new(cache).unwrap();
        layer.add_dir("ko-app", EntryMeta::root(0o555, 0)).unwrap();
        layer.add_bytes("ko-app/app", EntryMeta::root(0o555, 0), b"\x7fELF pretend").unwrap();
        let long = format!("var/run/ko/{}/file.txt", "d".repeat(300));
        layer.add_bytes(&long, EntryMeta::root(0o555, 0), b"deep").unwrap();
        layer.finish().unwrap()
    }

    /// The layer's bytes are part of the contract (same digest on every machine), so a change
    /// of compression must show up here and be made on purpose.
    #[test]
    fn layer_bytes_are_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().to_path_buf()).unwrap();
        let data = sample_data();
        let mut layer = LayerWriter::new(&cache).unwrap();
        layer.add_dir("ko-app", EntryMeta::root(0o555, 0)).unwrap();
        layer.add_bytes("ko-app/app", EntryMeta::root(0o555, 0), &data).unwrap();
        let record = layer.finish().unwrap();
        assert_eq!(record.diff_id.as_str(), "sha256:178bc905d97f268c439d559c3fd6c6468654faf021c4f80b116e477917f2d212");
        assert_eq!(record.digest.as_str(), "sha256:15f2174d66db0cbf5c1d7a99a76e7954e05bc21c8293536092f32cb3bc499154");

        let file = std::fs::File::open(cache.blob_path(&record.digest)).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut entries = archive.entries().unwrap();
        entries.next().unwrap().unwrap();
        let mut read = Vec::new();
        entries.next().unwrap().unwrap().read_to_end(&mut read).unwrap();
        assert!(read == data, "the archive holds other bytes than were written");
    }

    /// Several blocks: text, then pseudo-random bytes (stored), then text again.
    fn sample_data() -> Vec<u8> {
        let mut data = Vec::new();
        while data.len() < 200 * 1024 {
            data.extend_from_slice(format!("line {} of a layer\n", data.len() % 97).as_bytes());
        }
        let mut x: u32 = 1;
        for _ in 0..300 * 1024 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            data.push((x >> 24) as u8);
        }
        while data.len() < 620 * 1024 + 17 {
            data.extend_from_slice(format!("{} more lines\n", data.len() % 89).as_bytes());
        }
        data
    }

    fn gzip(data: &[u8], threads: usize, write_size: usize) -> Vec<u8> {
        let mut gz = BlockGzip::with_threads(Vec::new(), threads).unwrap();
        for piece in data.chunks(write_size.max(1)) {
            gz.write_all(piece).unwrap();
        }
        gz.finish().unwrap().inner
    }

    #[test]
    fn the_bytes_depend_neither_on_threads_nor_on_write_sizes() {
        let data = sample_data();
        let reference = gzip(&data, 2, 64 * 1024);
        for (threads, write_size) in [(1, 1 << 20), (3, 4096), (8, 1000), (2, 3 * BLOCK * BATCH)] {
            assert!(gzip(&data, threads, write_size) == reference, "{threads} threads, writes of {write_size}");
        }
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(reference.as_slice()).read_to_end(&mut decoded).unwrap();
        assert!(decoded == data);
        assert!(reference.len() < data.len() * 3 / 5, "{} of {}", reference.len(), data.len());
    }

    fn layer_of(cache: &Cache, data: &[u8], reuse: Option<std::sync::Arc<BlockReuse>>) -> (LayerRecord, BlockIndex) {
        let mut layer = LayerWriter::with_copy(cache, None, reuse).unwrap();
        layer.add_bytes("ko-app/app", EntryMeta::root(0o555, 0), data).unwrap();
        layer.finish_with_index().unwrap()
    }

    /// A copy that shares what it is given, and one that fails after the first write.
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    struct Broken(bool);
    impl Write for Broken {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if std::mem::replace(&mut self.0, true) { Err(io::ErrorKind::BrokenPipe.into()) } else { Ok(buf.len()) }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_copy_gets_the_blob_and_a_failing_copy_does_not_fail_the_layer() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().to_path_buf()).unwrap();
        let data = sample_data();
        let copied = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut layer = LayerWriter::with_copy(&cache, Some(Box::new(Shared(copied.clone()))), None).unwrap();
        layer.add_bytes("ko-app/app", EntryMeta::root(0o555, 0), &data).unwrap();
        let record = layer.finish().unwrap();
        let blob = std::fs::read(cache.blob_path(&record.digest)).unwrap();
        assert!(*copied.lock().unwrap() == blob, "the copy differs from the blob");

        let mut layer = LayerWriter::with_copy(&cache, Some(Box::new(Broken(false))), None).unwrap();
        layer.add_bytes("ko-app/app", EntryMeta::root(0o555, 0), &data).unwrap();
        assert_eq!(layer.finish().unwrap(), record);
    }

    #[test]
    fn reused_blocks_give_the_bytes_a_full_compression_gives() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().to_path_buf()).unwrap();
        let before = sample_data();
        let (_, index) = layer_of(&cache, &before, None);

        // One byte changes in the middle: the blocks before it, and those after it whose
        // window does not reach back to it, come from the earlier layer.
        let mut after = before.clone();
        after[300 * 1024] ^= 0xff;
        let (full, _) = layer_of(&cache, &after, None);
        let reuse = std::sync::Arc::new(BlockReuse::open(&cache, &index).unwrap());
        let (reused, _) = layer_of(&cache, &after, Some(reuse.clone()));
        assert_eq!(reused, full);
        let blocks = (after.len() + 1024).div_ceil(BLOCK);
        assert!(reuse.copied() >= blocks - 3, "{} of {blocks} blocks copied", reuse.copied());

        // A piece that does not read back as written is compressed again.
        let (first, index) = layer_of(&cache, &before, None);
        let path = cache.blob_path(&first.digest);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&path, perms).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let reuse = std::sync::Arc::new(BlockReuse::open(&cache, &index).unwrap());
        let (again, _) = layer_of(&cache, &after, Some(reuse));
        assert_eq!(again, full);
    }

    #[test]
    fn empty_and_tiny_inputs_are_valid_gzip() {
        for data in [&b""[..], b"x", &[7u8; BLOCK][..], &[9u8; BLOCK + 1][..]] {
            let mut decoded = Vec::new();
            flate2::read::GzDecoder::new(gzip(data, 2, 100).as_slice()).read_to_end(&mut decoded).unwrap();
            assert_eq!(decoded, data);
        }
    }

    #[test]
    fn random_blocks_are_stored_and_text_is_compressed() {
        let data = sample_data();
        assert!(!looks_random(&data[..BLOCK]));
        assert!(looks_random(&data[200 * 1024..200 * 1024 + BLOCK]));
        let random = &data[200 * 1024..500 * 1024];
        let out = gzip(random, 2, BLOCK);
        // Stored: a few bytes of framing per 64 KiB, nothing more.
        assert!(out.len() <= random.len() + random.len() / 1000, "{} for {}", out.len(), random.len());
    }

    #[test]
    fn long_non_ascii_names_get_a_pax_path() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().to_path_buf()).unwrap();
        let name = format!("var/run/ko/{}.txt", "名".repeat(40));
        let mut layer = LayerWriter::new(&cache).unwrap();
        layer.add_bytes(&name, EntryMeta::root(0o555, 0), b"x").unwrap();
        let record = layer.finish().unwrap();
        let blob = std::fs::File::open(cache.blob_path(&record.digest)).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
        let paths: Vec<String> =
            archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        assert_eq!(paths, [name]);
    }

    #[test]
    fn records_of_another_format_are_not_read() {
        let old = r#"{"digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","diff_id":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":1}"#;
        assert!(serde_json::from_str::<LayerRecord>(old).is_err());
    }

    #[test]
    fn same_entries_give_the_same_digest_and_a_readable_archive() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().to_path_buf()).unwrap();
        let first = build(&cache);
        let second = build(&cache);
        assert_eq!(first, second);

        let file = std::fs::File::open(cache.blob_path(&first.digest)).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let names: Vec<String> =
            archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names[0], "ko-app/");
        assert_eq!(names[1], "ko-app/app");
        assert!(names[2].ends_with("/file.txt") && names[2].len() > 300, "{names:?}");
    }
}
