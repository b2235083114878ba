//! The on-disk cache: content-addressed blobs, Go build outputs at stable paths, layer records
//! keyed by the binary's content, and the local image store. Writes go to a temporary file
//! and are renamed into place, so processes sharing the cache never see half-written entries.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
#[error("cache {path}: {source}")]
pub struct CacheError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

#[derive(Clone, Debug)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// `$KOCACHE`, else `$XDG_CACHE_HOME/kubectl-ko`, else `~/.cache/kubectl-ko`.
    pub fn from_env() -> Result<Cache, CacheError> {
        let root = match std::env::var_os("KOCACHE").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => user_cache_dir().join("kubectl-ko"),
        };
        Cache::at(root)
    }

    pub fn at(root: PathBuf) -> Result<Cache, CacheError> {
        let cache = Cache { root };
        for sub in ["blobs/sha256", "bin", "layers", "tmp"] {
            cache.ensure_dir(&cache.root.join(sub))?;
        }
        Ok(cache)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn ensure_dir(&self, path: &Path) -> Result<(), CacheError> {
        fs_err::create_dir_all(path).map_err(|source| CacheError { path: path.to_path_buf(), source })
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// A directory for one build output; Go relinks into it only when something changed.
    pub fn bin_dir(&self, key: &str) -> Result<PathBuf, CacheError> {
        let dir = self.root.join("bin").join(key);
        self.ensure_dir(&dir)?;
        Ok(dir)
    }

    /// A fresh temporary file inside the cache, on the same filesystem as its final place.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, CacheError> {
        let dir = self.root.join("tmp");
        tempfile::NamedTempFile::new_in(&dir).map_err(|source| CacheError { path: dir, source })
    }

    /// A fresh temporary directory inside the cache, on the same filesystem as `bin/`.
    pub fn temp_dir(&self) -> Result<tempfile::TempDir, CacheError> {
        let dir = self.root.join("tmp");
        tempfile::TempDir::new_in(&dir).map_err(|source| CacheError { path: dir, source })
    }

    /// Moves a finished temporary file to the blob's place (a no-op if another process won).
    pub fn commit_blob(&self, temp: tempfile::NamedTempFile, digest: &Digest) -> Result<PathBuf, CacheError> {
        let path = self.blob_path(digest);
        temp.persist(&path).map_err(|e| CacheError { path: path.clone(), source: e.error })?;
        Ok(path)
    }

    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<Digest, CacheError> {
        let digest = Digest::of(bytes);
        if !self.has_blob(&digest) {
            self.write_atomic(&self.blob_path(&digest), bytes)?;
        }
        Ok(digest)
    }

    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
        write_atomic(path, bytes).map_err(|source| CacheError { path: path.to_path_buf(), source })
    }

    /// A small JSON record under `layers/`; a missing or unreadable record is a cache miss.
    pub fn read_record<T: DeserializeOwned>(&self, kind: &str, key: &str) -> Option<T> {
        let bytes = std::fs::read(self.root.join(kind).join(format!("{key}.json"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn write_record<T: Serialize>(&self, kind: &str, key: &str, value: &T) -> Result<(), CacheError> {
        let dir = self.root.join(kind);
        self.ensure_dir(&dir)?;
        let bytes = serde_json::to_vec(value).expect("cache records serialize");
        self.write_atomic(&dir.join(format!("{key}.json")), &bytes)
    }

    /// The OCI layout that holds images built without `KO_DOCKER_REPO`.
    pub fn image_store(&self) -> PathBuf {
        self.root.join("images")
    }
}

/// Writes through a temporary sibling and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

pub fn user_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache"),
        None => std::env::temp_dir(),
    }
}
