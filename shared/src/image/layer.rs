//! Deterministic layers: tar entries with fixed owners, modes and times, gzip-compressed while
//! streaming into a cache file, hashing both the tar (the diff ID) and the gzip (the digest).
//! Same entries in, same bytes out, on every machine.

use std::io::{self, BufWriter, Read, Write};

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::cache::{Cache, CacheError};
use crate::digest::{Digest, HashingWriter};

/// A finished layer, stored in the cache under its digest.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerRecord {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("writing layer entry {entry}: {source}")]
    Entry { entry: String, source: io::Error },
}

type Sink = HashingWriter<GzEncoder<HashingWriter<BufWriter<std::fs::File>>>>;

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
        let temp = cache.temp_file()?;
        let file = temp.reopen().map_err(|source| CacheError { path: temp.path().to_path_buf(), source })?;
        let compressed = HashingWriter::new(BufWriter::with_capacity(256 * 1024, file));
        let gzip = flate2::GzBuilder::new().mtime(0).write(compressed, Compression::fast());
        let mut tar = tar::Builder::new(HashingWriter::new(gzip));
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
            header.set_path(short.trim_start_matches('/')).map_err(err)?;
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

    pub fn add_symlink(&mut self, path: &str, target: &str, meta: EntryMeta) -> Result<(), LayerError> {
        let mut header = Self::header(tar::EntryType::Symlink, meta, 0);
        header.set_link_name(target).map_err(|source| LayerError::Entry { entry: path.to_string(), source })?;
        self.append(header, path, io::empty())
    }

    /// Closes the archive and moves it into the cache under its digest.
    pub fn finish(self) -> Result<LayerRecord, LayerError> {
        let err = |source| LayerError::Entry { entry: "(end of archive)".into(), source };
        let uncompressed = self.tar.into_inner().map_err(err)?;
        let (gzip, diff_id, _) = uncompressed.finish();
        let compressed = gzip.finish().map_err(err)?;
        let (mut file, digest, size) = compressed.finish();
        file.flush().map_err(err)?;
        drop(file);
        self.cache.commit_blob(self.temp, &digest)?;
        Ok(LayerRecord { digest, diff_id, size })
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
