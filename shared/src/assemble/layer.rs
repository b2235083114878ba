//! Deterministic layers: tar entries with fixed owners, modes and times, gzip-compressed while
//! streaming into a cache file, hashing both the tar (the diff ID) and the gzip (the digest).
//! Same entries in, same bytes out, on every machine. The compression is [`super::gzip`]'s.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};

use super::gzip::{BlockGzip, Finished};
use super::reuse::{BlockIndex, BlockReuse};
use crate::cache::{Cache, CacheError};
use crate::digest::{Digest, HashingWriter};

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
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("writing layer entry {entry}: {source}{}", crate::cache::advice(source))]
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
    /// Seconds since 1970; a time before it goes into a PAX `mtime` record, as Go's tar
    /// writes it (the ustar field holds no sign).
    pub mtime: i64,
}

impl EntryMeta {
    pub fn root(mode: u32, mtime: i64) -> Self {
        EntryMeta { mode, uid: 0, gid: 0, mtime }
    }
}

/// `records`, with an `mtime` record when the entry's time is before 1970.
fn with_mtime(meta: EntryMeta, records: &[(String, Vec<u8>)]) -> std::borrow::Cow<'_, [(String, Vec<u8>)]> {
    if meta.mtime >= 0 {
        return records.into();
    }
    let mut all = records.to_vec();
    all.push(("mtime".to_string(), meta.mtime.to_string().into_bytes()));
    all.into()
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
        header.set_mtime(u64::try_from(meta.mtime).unwrap_or(0));
        header.set_size(size);
        header
    }

    /// Writes the header, with one PAX extension header before it for `records` and, when
    /// the name is too long for ustar, a `path` record. Names are bytes: a file name that is
    /// not UTF-8 goes into the layer as it is on disk.
    fn append(
        &mut self,
        mut header: tar::Header,
        path: &[u8],
        data: impl Read,
        records: &[(String, Vec<u8>)],
    ) -> Result<(), LayerError> {
        use std::os::unix::ffi::OsStrExt as _;
        let as_path = |bytes: &[u8]| std::path::Path::new(std::ffi::OsStr::from_bytes(bytes)).to_path_buf();
        let err = |source| LayerError::Entry { entry: String::from_utf8_lossy(path).into_owned(), source };
        let mut pax: Vec<(&str, &[u8])> = records.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        if header.set_path(as_path(path)).is_err() {
            pax.push(("path", path));
            // The ustar name keeps the last 90 bytes at most, cut where a UTF-8 character
            // starts (the PAX record above carries the real name).
            let mut start = path.len().saturating_sub(90);
            while start < path.len() && path[start] & 0xC0 == 0x80 {
                start += 1;
            }
            let short = &path[start..];
            let short = &short[short.iter().take_while(|b| **b == b'/').count()..];
            // A tail the ustar field refuses (empty, or starting `../`): any name will do.
            if header.set_path(as_path(short)).is_err() {
                header.set_path("ko-pax-named").map_err(err)?;
            }
        }
        if !pax.is_empty() {
            // In key order, as Go's tar writes them.
            pax.sort_by_key(|(k, _)| *k);
            self.tar.append_pax_extensions(pax).map_err(err)?;
        }
        header.set_cksum();
        // What `tar::Builder::append` writes (the header, the data, zeros to the next 512
        // bytes), with the data read straight into the compressor's batch.
        let expected = header.size().map_err(err)?;
        let sink = self.tar.get_mut();
        sink.write_all(header.as_bytes()).map_err(err)?;
        let len = sink.read_from(data).map_err(err)?;
        // A file that grew or shrank since its size was taken would leave a broken archive.
        if len != expected {
            return Err(err(io::Error::other(format!(
                "{len} bytes were read where its size was {expected} bytes when the layer began: it changed \
                 while the image was built; build again once it stays put"
            ))));
        }
        let padding = (512 - len % 512) % 512;
        sink.write_all(&[0u8; 512][..padding as usize]).map_err(err)
    }

    pub fn add_dir(&mut self, path: &(impl AsRef<[u8]> + ?Sized), meta: EntryMeta) -> Result<(), LayerError> {
        let header = Self::header(tar::EntryType::Directory, meta, 0);
        let path = path.as_ref();
        let mut with_slash = path[..path.len() - path.iter().rev().take_while(|b| **b == b'/').count()].to_vec();
        with_slash.push(b'/');
        self.append(header, &with_slash, io::empty(), &with_mtime(meta, &[]))
    }

    pub fn add_file(
        &mut self,
        path: &(impl AsRef<[u8]> + ?Sized),
        meta: EntryMeta,
        size: u64,
        data: impl Read,
    ) -> Result<(), LayerError> {
        self.add_file_with_records(path, meta, size, data, &[])
    }

    /// A regular file with PAX records in its extension header (extended attributes as
    /// `SCHILY.xattr.*`, a Windows security descriptor as `MSWINDOWS.rawsd`).
    pub fn add_file_with_records(
        &mut self,
        path: &(impl AsRef<[u8]> + ?Sized),
        meta: EntryMeta,
        size: u64,
        data: impl Read,
        records: &[(String, Vec<u8>)],
    ) -> Result<(), LayerError> {
        let header = Self::header(tar::EntryType::Regular, meta, size);
        self.append(header, path.as_ref(), data, &with_mtime(meta, records))
    }

    pub fn add_bytes(
        &mut self,
        path: &(impl AsRef<[u8]> + ?Sized),
        meta: EntryMeta,
        bytes: &[u8],
    ) -> Result<(), LayerError> {
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
    use crate::assemble::gzip::BLOCK;
    use crate::assemble::gzip::tests::sample_data;

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

        // A tail of continuation bytes only (no character starts in it): still one entry.
        let raw = [&b"var/run/ko/"[..], &[0xa1; 120][..]].concat();
        let mut layer = LayerWriter::new(&cache).unwrap();
        layer.add_bytes(&raw, EntryMeta::root(0o555, 0), b"x").unwrap();
        let record = layer.finish().unwrap();
        let blob = std::fs::File::open(cache.blob_path(&record.digest)).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
        let paths: Vec<Vec<u8>> = archive.entries().unwrap().map(|e| e.unwrap().path_bytes().into_owned()).collect();
        assert_eq!(paths, [raw]);
    }

    #[test]
    fn records_of_another_format_are_not_read() {
        let old = r#"{"digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","diff_id":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":1}"#;
        assert!(serde_json::from_str::<LayerRecord>(old).is_err());
    }

    #[test]
    fn a_file_that_changed_size_while_it_was_read_is_an_error_not_a_broken_archive() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().to_path_buf()).unwrap();
        let meta = EntryMeta::root(0o644, 0);
        for (size, data) in [(10, &b"short"[..]), (3, &b"longer"[..])] {
            let mut layer = LayerWriter::new(&cache).unwrap();
            let e = layer.add_file("var/run/ko/data.txt", meta, size, data).unwrap_err().to_string();
            assert!(e.contains("var/run/ko/data.txt") && e.contains("changed while the image was built"), "{e}");
        }
        let mut layer = LayerWriter::new(&cache).unwrap();
        layer.add_file("var/run/ko/data.txt", meta, 6, &b"stable"[..]).unwrap();
        layer.finish().unwrap();
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

    #[test]
    fn a_time_before_1970_goes_into_a_pax_mtime_record() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().to_path_buf()).unwrap();
        let mut layer = LayerWriter::new(&cache).unwrap();
        layer.add_dir("var/run/ko", EntryMeta::root(0o555, -100_000_000)).unwrap();
        layer.add_bytes("var/run/ko/a.txt", EntryMeta::root(0o555, 1_700_000_000), b"a").unwrap();
        let record = layer.finish().unwrap();
        let file = std::fs::File::open(cache.blob_path(&record.digest)).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let times: Vec<(u64, Option<String>)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let pax = e.pax_extensions().unwrap().map(|p| {
                    p.map(|p| p.unwrap())
                        .map(|p| format!("{}={}", p.key().unwrap(), p.value().unwrap()))
                        .collect::<Vec<_>>()
                        .join(",")
                });
                (e.header().mtime().unwrap(), pax)
            })
            .collect();
        assert_eq!(times, [(0, Some("mtime=-100000000".into())), (1_700_000_000, None)]);
    }
}
